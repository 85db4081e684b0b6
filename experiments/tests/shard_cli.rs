//! `--plan`, `--shard K/N` and `merge` end to end, on sweeps small enough for a debug build:
//! a deterministic sweep run whole and in 3 shards joined by `merge` writes the same CSV and JSON
//! (every column but the timings byte for byte); `--plan` lists exactly the runs a whole run
//! makes, each with its command; two shards run concurrently (GNU parallel when installed, else
//! two background processes) merge into the whole run's files byte for byte; an experiment of two
//! run lists shards and merges too; bad `--shard` values and bad shard sets are one-line errors
//! with exit code 2; and every experiment binary takes `--plan`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

// Only the binaries' paths and `text`: the rest of the shared module runs `testbed`.
#[allow(dead_code)]
mod common;
use common::{EXPERIMENTS, bin_path, text};

/// `rescan_offsets` small and deterministic — every workload but `deep-oscillate`, whose offsets it
/// also runs on real threads (their pauses differ from run to run) — at a hundredth of its sizes,
/// one reported cycle, one seed, a 128 KiB heap goal: a few seconds in a debug build.
const OFFSETS: [&str; 12] = [
    "--workloads",
    "deep-unwind,many-shallow,mixed,copy-heavy,adversarial,replay",
    "--quick",
    "--scale",
    "0.01",
    "--cycles",
    "1",
    "--seeds",
    "1",
    "--heap-minimum",
    "131072",
    "--quiet",
];

/// `sanitizer_leak` (deterministic, no timing column) small: 2 modes × 3 seeds.
const LEAK: [&str; 8] = [
    "--quick", "--scale", "0.05", "--cycles", "4", "--seeds", "3", "--quiet",
];

/// Runs `name` with `args` (and `--out out` when given).
fn run(name: &str, args: &[&str], out: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin_path(name));
    cmd.args(args);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    cmd.output().expect("the binary runs")
}

/// [`run`], which must succeed.
fn run_ok(name: &str, args: &[&str], out: Option<&Path>) -> Output {
    let o = run(name, args, out);
    assert!(
        o.status.success(),
        "{name} {args:?} failed ({:?}): {}",
        o.status,
        text(&o.stderr)
    );
    o
}

/// `merge --out out` over `dirs`.
fn merge(out: &Path, dirs: &[PathBuf]) -> Output {
    let mut cmd = Command::new(bin_path("merge"));
    cmd.arg("--out").arg(out).args(dirs);
    cmd.output().expect("merge runs")
}

/// Exit code 2 and exactly one line on stderr, which contains `needle`.
fn assert_bad_input(o: &Output, needle: &str, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
}

/// A column or JSON field that times something: it differs between two runs of the same
/// configuration (ARCHITECTURE.md §7: every field not ending in `_ns…`, and the rates and ratios
/// of wall time).
fn is_timing(column: &str) -> bool {
    column.contains("_ns")
        || column.starts_with("wall_")
        || column == "mutator_ops_per_s"
        || column == "slowdown"
}

/// Compares two CSVs: the same header, the same number of rows, every non-timing field equal.
fn assert_csv_same_but_timings(a: &Path, b: &Path) {
    let read = |p: &Path| {
        let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        (header, rows)
    };
    let (ha, ra) = read(a);
    let (hb, rb) = read(b);
    assert_eq!(ha, hb, "{}: header", b.display());
    assert_eq!(ra.len(), rb.len(), "{}: rows", b.display());
    assert!(!ra.is_empty(), "{}: no rows", a.display());
    let timing: Vec<bool> = ha.iter().map(|c| is_timing(c)).collect();
    assert!(
        timing.iter().any(|t| !t),
        "{}: nothing left to compare",
        a.display()
    );
    for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
        for (c, (u, v)) in x.iter().zip(y.iter()).enumerate() {
            if !timing[c] {
                assert_eq!(u, v, "{} row {i} column {}", b.display(), ha[c]);
            }
        }
    }
}

/// `v` with every timing field (at any depth) removed.
fn strip_timings(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_timing(k))
                .map(|(k, x)| (k.clone(), strip_timings(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_timings).collect()),
        other => other.clone(),
    }
}

/// Compares two JSON result files, timing fields aside.
fn assert_json_same_but_timings(a: &Path, b: &Path) {
    let read = |p: &Path| -> Value {
        let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(
        strip_timings(&read(a)),
        strip_timings(&read(b)),
        "{}",
        b.display()
    );
}

/// The files of `dir`, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The plan lines of `stdout`, each parsed.
fn plan_lines(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn a_deterministic_sweep_in_three_shards_merges_into_the_whole_runs_files() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok("rescan_offsets", &OFFSETS, Some(&whole));

    // --plan lists exactly the runs the whole run made, each with its command.
    let plan = run_ok(
        "rescan_offsets",
        &[&OFFSETS[..], &["--plan"]].concat(),
        None,
    );
    let lines = plan_lines(&plan.stdout);
    let rows = csv::Reader::from_path(whole.join("rescan_offsets.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(lines.len(), rows, "one plan line per run");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["experiment"], "rescan_offsets");
        assert_eq!(l["call"], 0);
        assert_eq!(l["index"], i);
        assert_eq!(l["total"], rows);
        assert_eq!(l["engine"], "deterministic");
        assert!(
            l["command"]
                .as_str()
                .unwrap()
                .starts_with("testbed --workload ")
        );
    }
    let commands: Vec<String> = csv::Reader::from_path(whole.join("rescan_offsets.csv"))
        .unwrap()
        .deserialize::<BTreeMap<String, String>>()
        .map(|r| r.unwrap()["command"].clone())
        .collect();
    let planned: Vec<&str> = lines
        .iter()
        .map(|l| l["command"].as_str().unwrap())
        .collect();
    assert_eq!(planned, commands, "the plan's commands are the rows'");

    // Three shards, each its share; the plan of a shard lists that share.
    let mut dirs = Vec::new();
    let mut ran = 0;
    for k in 1..=3 {
        let dir = tmp.path().join(format!("shard{k}"));
        let shard = format!("{k}/3");
        let o = run_ok(
            "rescan_offsets",
            &[&OFFSETS[..], &["--shard", &shard]].concat(),
            Some(&dir),
        );
        let summary = text(&o.stdout);
        assert!(summary.contains(&format!("shard {k}/3")), "{summary}");
        assert!(summary.contains("merge --out"), "{summary}");
        let names: Vec<String> = files(&dir).into_keys().collect();
        assert_eq!(
            names,
            [format!("rescan_offsets.shard-{k}-of-3.json")],
            "a shard writes its shard file and no results"
        );
        let share = run_ok(
            "rescan_offsets",
            &[&OFFSETS[..], &["--plan", "--shard", &shard]].concat(),
            None,
        );
        let share = plan_lines(&share.stdout);
        assert!(
            share
                .iter()
                .all(|l| l["index"].as_u64().unwrap() % 3 == k - 1)
        );
        ran += share.len();
        dirs.push(dir);
    }
    assert_eq!(ran, rows, "the shards' plans cover the whole plan");

    let merged = tmp.path().join("merged");
    let o = merge(&merged, &dirs);
    assert!(o.status.success(), "merge: {}", text(&o.stderr));
    let summary = text(&o.stdout);
    assert!(
        summary.starts_with(&format!("rescan_offsets: {rows} runs")),
        "{summary}"
    );
    assert_eq!(
        files(&merged).into_keys().collect::<Vec<_>>(),
        files(&whole).into_keys().collect::<Vec<_>>(),
        "merge writes the files the whole run wrote"
    );
    assert_csv_same_but_timings(
        &whole.join("rescan_offsets.csv"),
        &merged.join("rescan_offsets.csv"),
    );
    assert_json_same_but_timings(
        &whole.join("rescan_offsets.json"),
        &merged.join("rescan_offsets.json"),
    );
}

/// Whether `parallel` is GNU parallel (moreutils has a `parallel` of another syntax).
fn gnu_parallel() -> bool {
    Command::new("parallel")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && text(&o.stdout).contains("GNU parallel"))
}

#[test]
fn two_shards_run_concurrently_merge_into_the_whole_runs_files_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok("sanitizer_leak", &LEAK, Some(&whole));
    let shards = tmp.path().join("shards");
    let bin = bin_path("sanitizer_leak");
    if gnu_parallel() {
        let o = Command::new("parallel")
            .args(["--will-cite", "--halt", "now,fail=1", "-j2", bin])
            .args(LEAK)
            .args(["--jobs", "1", "--shard", "{}/2", "--out"])
            .arg(shards.join("{}"))
            .args([":::", "1", "2"])
            .stdin(Stdio::null())
            .output()
            .expect("GNU parallel runs");
        assert!(o.status.success(), "parallel: {}", text(&o.stderr));
    } else {
        let children: Vec<_> = (1..=2)
            .map(|k| {
                Command::new(bin)
                    .args(LEAK)
                    .args(["--jobs", "1", "--shard", &format!("{k}/2"), "--out"])
                    .arg(shards.join(k.to_string()))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("a shard starts")
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "a shard: {}", text(&o.stderr));
        }
    }
    let merged = tmp.path().join("merged");
    let o = merge(&merged, &[shards.join("1"), shards.join("2")]);
    assert!(o.status.success(), "merge: {}", text(&o.stderr));
    // No column of sanitizer_leak times anything: the files are the same bytes, all but the
    // provenance, which says how each directory was made.
    let (mut merged_files, mut whole_files) = (files(&merged), files(&whole));
    let provenance = merged_files
        .remove("provenance.json")
        .expect("merge writes provenance");
    whole_files
        .remove("provenance.json")
        .expect("a whole run writes provenance");
    assert_eq!(merged_files, whole_files);
    let provenance: Value = serde_json::from_slice(&provenance).unwrap();
    let entry = &provenance["experiments"]["sanitizer_leak"];
    let command = entry["command"].as_str().unwrap();
    assert!(
        command.starts_with("sanitizer_leak ") && !command.contains("--shard"),
        "the merged entry names the whole run: {command}"
    );
    let shards = entry["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{provenance}");
    for (k, shard) in (1..).zip(shards) {
        let command = shard["command"].as_str().unwrap();
        assert!(command.contains(&format!("--shard {k}/2")), "{command}");
    }
}

#[test]
fn an_experiment_of_two_run_lists_shards_and_merges() {
    // wbshadow_faults: the fault runs, then each seed's overhead runs.
    let args = [
        "--quick",
        "--scale",
        "0.02",
        "--seeds",
        "2",
        "--heap-minimum",
        "131072",
        "--quiet",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok("wbshadow_faults", &args, Some(&whole));
    let plan =
        plan_lines(&run_ok("wbshadow_faults", &[&args[..], &["--plan"]].concat(), None).stdout);
    let calls: Vec<u64> = plan.iter().map(|l| l["call"].as_u64().unwrap()).collect();
    assert!(calls.contains(&0) && calls.contains(&1), "two run lists");
    let overhead = plan.iter().find(|l| l["call"] == 1).unwrap();
    let command = overhead["command"].as_str().unwrap();
    assert!(
        command.contains(" --debug '' ") && command.contains(" && testbed "),
        "one seed's four overhead runs, `off` with an empty --debug that survives a shell: {command}"
    );
    let dirs: Vec<PathBuf> = (1..=2)
        .map(|k| {
            let dir = tmp.path().join(format!("s{k}"));
            run_ok(
                "wbshadow_faults",
                &[&args[..], &["--shard", &format!("{k}/2")]].concat(),
                Some(&dir),
            );
            dir
        })
        .collect();
    let merged = tmp.path().join("merged");
    let o = merge(&merged, &dirs);
    assert!(o.status.success(), "merge: {}", text(&o.stderr));
    let (w, m) = (files(&whole), files(&merged));
    assert_eq!(w.keys().collect::<Vec<_>>(), m.keys().collect::<Vec<_>>());
    for name in ["wbshadow_faults", "wbshadow_faults_runs"] {
        for ext in ["csv", "json"] {
            let f = format!("{name}.{ext}");
            assert!(w[&f] == m[&f], "{f} differs");
        }
    }
    assert_csv_same_but_timings(
        &whole.join("wbshadow_overhead.csv"),
        &merged.join("wbshadow_overhead.csv"),
    );
    assert_json_same_but_timings(
        &whole.join("wbshadow_overhead.json"),
        &merged.join("wbshadow_overhead.json"),
    );
}

#[test]
fn bad_shards_and_bad_shard_sets_are_one_line_errors_with_exit_2() {
    for bad in ["0/3", "4/3", "x", "3", "1/0"] {
        let o = run("sanitizer_leak", &["--quick", "--shard", bad], None);
        assert_bad_input(&o, "--shard", &format!("--shard {bad}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    let small = ["--quick", "--scale", "0.05", "--cycles", "2", "--quiet"];
    let shard = |k: u32, seeds: &str, out: &Path| {
        run_ok(
            "sanitizer_leak",
            &[
                &small[..],
                &["--seeds", seeds, "--shard", &format!("{k}/2")],
            ]
            .concat(),
            Some(out),
        );
    };
    shard(1, "1", &dir("a1"));
    shard(2, "1", &dir("a2"));
    shard(2, "2", &dir("b2"));
    let out = dir("merged");

    let o = merge(&out, &[dir("a1")]);
    assert_bad_input(&o, "shard 2/2 is missing", "a missing shard");
    let o = merge(&out, &[dir("a1"), dir("b2")]);
    assert_bad_input(&o, "different sweeps", "shards of different sweeps");
    std::fs::create_dir_all(dir("empty")).unwrap();
    let o = merge(&out, &[dir("empty")]);
    assert_bad_input(&o, "no shard files", "no shard files");
    let o = merge(&out, &[dir("a1"), dir("a1"), dir("a2")]);
    assert_bad_input(&o, "given twice", "a shard twice");
    let o = merge(&out, &[dir("nowhere")]);
    assert_bad_input(&o, "no such directory", "a missing directory");
    let o = Command::new(bin_path("merge"))
        .arg("--out")
        .arg(&out)
        .args(["--experiment", "soundness"])
        .arg(dir("a1"))
        .arg(dir("a2"))
        .output()
        .unwrap();
    assert_bad_input(&o, "no shards of soundness", "--experiment not found");
    assert!(!out.exists(), "nothing was written");
    let o = Command::new(bin_path("merge"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_bad_input(&o, "SHARD_DIR", "no shard directory");

    // The good set merges.
    let o = merge(&out, &[dir("a1"), dir("a2")]);
    assert!(o.status.success(), "merge: {}", text(&o.stderr));
    assert!(out.join("sanitizer_leak.csv").is_file());
    let help = Command::new(bin_path("merge"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("Examples:"));
}

#[test]
fn every_experiment_binary_plans_its_runs() {
    let small = [
        "--quick", "--scale", "0.02", "--seeds", "1", "--cycles", "1", "--plan",
    ];
    for name in EXPERIMENTS {
        let o = run_ok(name, &small, None);
        let lines = plan_lines(&o.stdout);
        assert!(!lines.is_empty(), "{name}: no plan");
        for l in &lines {
            assert_eq!(l["experiment"], name, "{l}");
            assert!(l["index"].as_u64().unwrap() < l["total"].as_u64().unwrap());
            assert!(!l["command"].as_str().unwrap().is_empty(), "{l}");
        }
        let help = run_ok(name, &["--help"], None);
        let help = text(&help.stdout);
        assert!(
            help.contains("--plan") && help.contains("--shard <K/N>"),
            "{name}"
        );
    }
}
