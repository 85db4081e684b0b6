//! `go_peer` end to end: with a stand-in `go` command (a shell script that answers `go version`
//! and whose `go build` writes a program printing fixed gctrace lines), so the pipeline — the
//! build, the environment the program runs in, the parsing, the files — is checked on any
//! machine; and with the real toolchain where one is on PATH (`.ci/run` installs Debian's
//! golang-go when it can).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[allow(dead_code)] // each test file uses a part of the shared helpers
mod common;
use common::text;

/// A stand-in `go` in `dir`: version `go1.7.4`; `go build -o OUT FILE` writes OUT, a program
/// that prints five gctrace cycles (Go 1.7's format) whose P count is its GOMAXPROCS and whose
/// mark-termination pauses are 10…50 µs, then echoes its GODEBUG and arguments and ends in the
/// middle of a sixth cycle's line, as a port stopped at its deadline may.
fn fake_go(dir: &Path) -> std::path::PathBuf {
    let go = dir.join("go");
    std::fs::write(
        &go,
        r#"#!/bin/sh
case "$1" in
version) echo "go version go1.7.4 linux/amd64" ;;
build)
    cat > "$3" <<'PROGRAM'
#!/bin/sh
for i in 1 2 3 4 5; do
    echo "gc $i @0.$i""s 1%: 0.02$i+1.$i+0.0$i ms clock, 0.1+0.2/0.3/0.4+0.5 ms cpu, 4->5->$i MB, 6 MB goal, $GOMAXPROCS P" >&2
done
echo "scvg0: inuse: 4, idle: 0" >&2
echo "GODEBUG=$GODEBUG args=$*" >&2
printf "gc 6 @0.6s 1%%: 0.026+1." >&2
PROGRAM
    chmod +x "$3" ;;
*) exit 1 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    go
}

fn go_peer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_go_peer"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_pauses_go_reports_become_rows_and_pooled_pauses() {
    let tmp = tempfile::tempdir().unwrap();
    let go = fake_go(tmp.path());
    let out = tmp.path().join("out");
    let o = go_peer(&[
        "--quick",
        "--go",
        go.to_str().unwrap(),
        "--procs",
        "3",
        "--godebug",
        "gcstackbarrieroff=1",
        "--seeds",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("under go1.7.4"),
        "{}",
        text(&o.stdout)
    );
    let mut r = csv::Reader::from_path(out.join("go_peer.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let col = |row: &csv::StringRecord, name: &str| -> String {
        row[header.iter().position(|h| h == name).unwrap()].to_owned()
    };
    // Every port × two seeds × cycles 2–5 (the first, the stacks' build-up, left out).
    let ports = experiments::go_peer::PORTS.len();
    assert_eq!(rows.len(), ports * 2 * 4);
    for row in &rows {
        assert_eq!(col(row, "go_version"), "go1.7.4");
        assert_eq!(col(row, "procs"), "3");
        assert_eq!(col(row, "godebug"), "gctrace=1,gcstackbarrieroff=1");
        let cycle: u64 = col(row, "cycle").parse().unwrap();
        assert!((2..=5).contains(&cycle));
        let mark_term: f64 = col(row, "mark_term_ns").parse().unwrap();
        assert_eq!(mark_term, cycle as f64 * 10_000.0);
        assert_eq!(col(row, "heap_live_mb"), cycle.to_string());
        assert!(
            col(row, "command")
                .starts_with("GOMAXPROCS=3 GOGC=100 GODEBUG=gctrace=1,gcstackbarrieroff=1 ./")
        );
    }
    let pauses: Value =
        serde_json::from_slice(&std::fs::read(out.join("go_peer_pauses.json")).unwrap()).unwrap();
    for p in pauses.as_array().unwrap() {
        assert_eq!(p["samples"], 8);
        assert_eq!(
            p["mark_term_ns_p50"], 35_000.0,
            "the median of 20, 30, 40, 50 µs twice"
        );
        assert_eq!(p["mark_term_tail"], "max", "8 samples have no p99");
        assert_eq!(p["mark_term_ns_max"], 50_000.0);
    }
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(out.join("provenance.json")).unwrap()).unwrap();
    assert!(
        provenance["experiments"]["go_peer"]["command"]
            .as_str()
            .unwrap()
            .starts_with("go_peer --quick")
    );
}

#[test]
fn bad_input_and_a_missing_toolchain_are_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let out = out.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--go", "/nonexistent/go"],
            "no Go toolchain at /nonexistent/go",
        ),
        (
            vec!["--workloads", "sync-leak"],
            "\"sync-leak\" has no Go port",
        ),
        (vec!["--procs", "0"], "--procs 0 must lie between 1 and 256"),
        (vec!["--seconds", "0"], "--seconds 0 must lie in (0, 3600]"),
        (
            vec!["--godebug", "gcstackbarrieroff"],
            "is not a NAME=VALUE setting",
        ),
        (vec!["--scale", "9"], "--scale 9 must lie in (0, 5]"),
    ] {
        let o = go_peer(&[&args[..], &["--out", out]].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn under_the_real_toolchain_every_port_reports_cycles() {
    let Ok(v) = Command::new("go").arg("version").output() else {
        eprintln!("no `go` on PATH: install golang-go to run this test against a real runtime");
        return;
    };
    assert!(v.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let o = go_peer(&[
        "--quick",
        "--scale",
        "0.2",
        "--seconds",
        "1",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pauses: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("go_peer_pauses.json")).unwrap())
            .unwrap();
    let pauses = pauses.as_array().unwrap();
    assert_eq!(pauses.len(), experiments::go_peer::PORTS.len());
    for p in pauses {
        assert!(p["go_version"].as_str().unwrap().starts_with("go1"));
        assert!(p["samples"].as_u64().unwrap() >= 1);
        let p50 = p["mark_term_ns_p50"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 < 1e9, "{p}");
    }
}
