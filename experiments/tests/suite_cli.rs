//! The experiment binaries end to end on tiny configurations (`--quick --scale 0.02 --cycles 2
//! --heap-minimum 262144`):
//! their CSV and JSON outputs (columns, row counts, the invariants every row must keep), the
//! reproducibility of a row from its `command`, the paper-table refresh, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

// Only the binaries' paths: the rest of the shared module runs `testbed`.
#[allow(dead_code)]
mod common;

/// ARCHITECTURE.md §5's core columns, in order: every run CSV starts with them.
const CORE_COLUMNS: [&str; 19] = [
    "workload",
    "barrier",
    "stack_barriers",
    "first_offset",
    "goroutines",
    "depth",
    "seed",
    "cycles",
    "stack_bytes_used",
    "full_rescan_bytes",
    "rescan_bytes",
    "oracle_rescan_bytes",
    "rescan_avoided",
    "barriers_installed",
    "barriers_hit",
    "stkbar_reserved_bytes",
    "mark_term_ns_p50",
    "mark_term_ns_max",
    "checkmark_failures",
];

/// The flags that make a sweep tiny: a fiftieth of the sizes, two cycles, a 256 KiB heap goal.
const TINY: [&str; 10] = [
    "--quick",
    "--scale",
    "0.02",
    "--cycles",
    "2",
    "--heap-minimum",
    "262144",
    "--procs",
    "2",
    "--quiet",
];

fn bin(name: &str) -> Command {
    Command::new(common::bin_path(name))
}

/// The shipped traces.
fn traces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Runs experiment `name` with `args`, writing into `out`; it must succeed.
fn run_ok(name: &str, args: &[&str], out: &Path) -> Output {
    let output = bin(name)
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--traces")
        .arg(traces())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run_tiny(name: &str, out: &Path) -> Output {
    run_ok(name, &TINY, out)
}

/// A CSV as a header and rows of fields.
/// Runs a results row's reproducing `testbed` command and expects its verdict again: exit 3.
fn reproduces_exit_3(command: &str) -> Output {
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let again = bin("testbed").args(&args).output().unwrap();
    assert_eq!(again.status.code(), Some(3), "{command}");
    again
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r.records().map(Result::unwrap).collect();
    (header, rows)
}

fn field<'a>(header: &[String], row: &'a csv::StringRecord, name: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    &row[i]
}

fn u(header: &[String], row: &csv::StringRecord, name: &str) -> u64 {
    field(header, row, name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} = {:?}: {e}", field(header, row, name)))
}

/// Checks `OUT/name.csv` and `.json` and returns the CSV.
fn check_run_csv(
    out: &Path,
    name: &str,
    rows_expected: usize,
) -> (Vec<String>, Vec<csv::StringRecord>) {
    let (header, rows) = read_csv(&out.join(format!("{name}.csv")));
    assert_eq!(
        &header[..CORE_COLUMNS.len()],
        CORE_COLUMNS,
        "{name}: core columns"
    );
    for col in [
        "experiment",
        "mode",
        "design",
        "engine",
        "procs",
        "gc_share",
        "debug",
        "command",
    ] {
        assert!(header.iter().any(|h| h == col), "{name}: no {col} column");
    }
    assert_eq!(rows.len(), rows_expected, "{name}: rows");
    for row in &rows {
        let ctx = field(&header, row, "command").to_owned();
        assert_eq!(field(&header, row, "experiment"), name);
        assert_eq!(field(&header, row, "mode"), "quick");
        assert_eq!(u(&header, row, "cycles"), 2, "{ctx}");
        assert!(ctx.starts_with("testbed --workload "), "{ctx}");
        assert!(
            ctx.contains(&format!("--seed {}", field(&header, row, "seed"))),
            "{ctx}"
        );
        assert_eq!(u(&header, row, "checkmark_failures"), 0, "{ctx}");
        assert_eq!(u(&header, row, "outside_bound"), 0, "{ctx}");
        let (oracle, rescan, full) = (
            u(&header, row, "oracle_rescan_bytes"),
            u(&header, row, "rescan_bytes"),
            u(&header, row, "full_rescan_bytes"),
        );
        if field(&header, row, "barrier") == "dijkstra" {
            assert!(
                oracle <= rescan && rescan <= full,
                "{ctx}: {oracle} ≤ {rescan} ≤ {full}"
            );
        } else {
            assert_eq!(rescan, 0, "{ctx}: a no-re-scan design re-scanned");
        }
        let avoided: f64 = field(&header, row, "rescan_avoided").parse().unwrap();
        assert!((0.0..=1.0).contains(&avoided), "{ctx}");
        let first_offset = field(&header, row, "first_offset");
        assert_eq!(
            first_offset.is_empty(),
            field(&header, row, "stack_barriers") != "on",
            "{ctx}"
        );
        if field(&header, row, "engine") == "threaded" {
            assert!(
                u(&header, row, "mark_term_ns_p50") > 0,
                "{ctx}: a real pause"
            );
        }
    }
    let json: Value = serde_json::from_slice(
        &std::fs::read(out.join(format!("{name}.json"))).expect("the JSON file exists"),
    )
    .expect("valid JSON");
    assert_eq!(json["experiment"], name);
    assert_eq!(json["mode"], "quick");
    let jrows = json["rows"].as_array().expect("rows");
    assert_eq!(jrows.len(), rows.len());
    for (j, c) in jrows.iter().zip(&rows) {
        assert_eq!(j["command"].as_str(), Some(field(&header, c, "command")));
        assert!(j["seed"].is_u64() && j["engine"].is_string() && j["gc_share"].is_f64());
    }
    (header, rows)
}

fn trace_count() -> usize {
    std::fs::read_dir(traces())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "trace")
        })
        .count()
}

#[test]
fn rescan_offsets_covers_every_offset_and_workload_and_rows_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny("rescan_offsets", dir.path());
    let workloads = 6 + trace_count();
    // Every offset on every workload (deterministic), and on deep-oscillate threaded.
    let (header, rows) = check_run_csv(dir.path(), "rescan_offsets", workloads * 8 + 8);
    let threaded: Vec<_> = rows
        .iter()
        .filter(|r| field(&header, r, "engine") == "threaded")
        .collect();
    assert_eq!(threaded.len(), 8);
    assert!(
        threaded
            .iter()
            .all(|r| field(&header, r, "workload") == "deep-oscillate")
    );
    let every: Vec<&str> = threaded
        .iter()
        .map(|r| field(&header, r, "design"))
        .collect();
    check_cycles_and_pauses(dir.path(), "rescan_offsets", &header, &rows, &every);
    let rows: Vec<csv::StringRecord> = rows
        .into_iter()
        .filter(|r| field(&header, r, "engine") == "deterministic")
        .collect();
    let designs: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| field(&header, r, "design")).collect();
    assert_eq!(
        designs.into_iter().collect::<Vec<_>>(),
        [
            "full-rescan",
            "stkbar-1024",
            "stkbar-2048",
            "stkbar-256",
            "stkbar-4096",
            "stkbar-512",
            "stkbar-8192",
            "stkbar-all"
        ]
    );
    assert!(
        rows.iter()
            .all(|r| field(&header, r, "engine") == "deterministic")
    );
    assert!(
        rows.iter()
            .any(|r| field(&header, r, "workload") == "replay"
                && !field(&header, r, "replay").is_empty()),
        "the replayed traces are in the sweep"
    );
    // A row's command reproduces its counters exactly (deterministic engine).
    let row = rows
        .iter()
        .find(|r| field(&header, r, "design") == "stkbar-1024")
        .unwrap();
    let command = field(&header, row, "command");
    let out = bin("testbed")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .args(command.split_whitespace().skip(1))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for col in [
        "rescan_bytes",
        "full_rescan_bytes",
        "oracle_rescan_bytes",
        "barriers_hit",
    ] {
        assert_eq!(
            v["totals"][col].as_u64(),
            Some(u(&header, row, col)),
            "{col} of `{command}`"
        );
    }
}

#[test]
fn depth_and_goroutine_sweeps_report_counters_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    for (name, points) in [("depth_sweep", 4), ("goroutine_sweep", 4)] {
        run_tiny(name, dir.path());
        // Per point: 3 re-scanning designs on the deterministic engine, 5 on the threaded one
        // and 2 more there with the barriers removed inside the pause.
        let (header, rows) = check_run_csv(dir.path(), name, points * 10);
        let threaded = rows
            .iter()
            .filter(|r| field(&header, r, "engine") == "threaded")
            .count();
        assert_eq!(threaded, points * 7, "{name}");
        let in_pause: Vec<_> = rows
            .iter()
            .filter(|r| field(&header, r, "barrier_removal") == "in-pause")
            .collect();
        assert_eq!(in_pause.len(), points * 2, "{name}");
        for r in in_pause {
            assert!(
                ["stkbar-1024", "stkbar-all"].contains(&field(&header, r, "design")),
                "{name}"
            );
            assert!(
                field(&header, r, "command").contains("--barrier-removal in-pause"),
                "{name}"
            );
        }
        let counted = ["full-rescan", "stkbar-1024", "stkbar-all"];
        check_cycles_and_pauses(dir.path(), name, &header, &rows, &counted);
    }
}

/// `NAME_cycles.csv` holds every reported cycle of every threaded run of `NAME.csv` (each run's
/// `mark_term_ns_max` is the largest of its cycles), and `NAME_pauses.csv` one row per threaded
/// configuration pooling them: a median inside its interval, the tail named by the sample
/// count, and the deterministic counters beside where the sweep ran them.
fn check_cycles_and_pauses(
    out: &Path,
    name: &str,
    header: &[String],
    rows: &[csv::StringRecord],
    counted: &[&str],
) {
    let (ch, cycles) = read_csv(&out.join(format!("{name}_cycles.csv")));
    let threaded: Vec<_> = rows
        .iter()
        .filter(|r| field(header, r, "engine") == "threaded")
        .collect();
    let reported: u64 = threaded.iter().map(|r| u(header, r, "cycles")).sum();
    assert_eq!(
        cycles.len() as u64,
        reported,
        "{name}: one row per reported cycle"
    );
    for run in &threaded {
        let command = field(header, run, "command");
        let mine: Vec<_> = cycles
            .iter()
            .filter(|c| field(&ch, c, "command") == command)
            .collect();
        assert_eq!(mine.len() as u64, u(header, run, "cycles"), "{command}");
        let max = mine
            .iter()
            .map(|c| u(&ch, c, "mark_term_ns"))
            .max()
            .unwrap();
        assert_eq!(max, u(header, run, "mark_term_ns_max"), "{command}");
    }
    let (ph, pauses) = read_csv(&out.join(format!("{name}_pauses.csv")));
    let f = |r: &csv::StringRecord, col: &str| -> f64 { field(&ph, r, col).parse().unwrap() };
    assert_eq!(
        pauses.len(),
        threaded.len(),
        "{name}: one seed, one run per configuration"
    );
    for p in &pauses {
        assert_eq!(u(&ph, p, "samples"), 2, "--cycles 2");
        assert!(f(p, "mark_term_ns_p50_lo") <= f(p, "mark_term_ns_p50"));
        assert!(f(p, "mark_term_ns_p50") <= f(p, "mark_term_ns_p50_hi"));
        assert_eq!(
            field(&ph, p, "mark_term_tail"),
            "max",
            "2 samples have no p99"
        );
        assert_eq!(f(p, "mark_term_ns_tail"), f(p, "mark_term_ns_max"));
        let design = field(&ph, p, "design");
        let counted =
            counted.contains(&design) && field(&ph, p, "barrier_removal") == "after-restart";
        assert_eq!(
            !field(&ph, p, "det_rescan_bytes_per_cycle").is_empty(),
            counted,
            "{name} {design}: deterministic counters where the sweep ran them"
        );
    }
}

#[test]
fn barrier_designs_reports_every_design_with_mmu_curves() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny("barrier_designs", dir.path());
    let workloads = 5 + trace_count();
    let (header, rows) = check_run_csv(dir.path(), "barrier_designs", workloads * 4);
    for row in &rows {
        assert_eq!(field(&header, row, "engine"), "threaded");
        let wb: f64 = field(&header, row, "wb_ns_per_store").parse().unwrap();
        assert!(wb.is_finite() && wb > 0.0);
        assert!(u(&header, row, "mutator_ops") > 0);
    }
    let (mh, mrows) = read_csv(&dir.path().join("barrier_designs_mmu.csv"));
    assert!(!mrows.is_empty());
    for r in &mrows {
        let mmu: f64 = field(&mh, r, "mmu").parse().unwrap();
        assert!((0.0..=1.0).contains(&mmu));
        assert!(u(&mh, r, "window_ns") >= 100_000);
    }
}

#[test]
fn sensitivity_moves_one_setting_at_a_time_around_its_base() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        "sensitivity",
        &[
            &TINY[..],
            &["--gogc", "150", "--workloads", "deep-oscillate"],
        ]
        .concat(),
        dir.path(),
    );
    let (header, rows) = read_csv(&dir.path().join("sensitivity.csv"));
    let setting = |r: &csv::StringRecord| {
        (
            u(&header, r, "procs"),
            u(&header, r, "gogc"),
            u(&header, r, "heap_minimum"),
            field(&header, r, "gc_share").to_owned(),
        )
    };
    // The base: --procs 2 (TINY), GOGC 150 (the flag), the scaled heap minimum (TINY's), Go's
    // GC share.
    let base = (2, 150, 262_144, "0.25".to_owned());
    let mut points: Vec<_> = rows.iter().map(setting).collect();
    points.sort();
    points.dedup();
    for p in &points {
        let moved = [p.0 != base.0, p.1 != base.1, p.2 != base.2, p.3 != base.3];
        assert!(
            moved.iter().filter(|&&m| m).count() <= 1,
            "one setting at a time: {p:?}"
        );
    }
    let procs: Vec<u64> = points
        .iter()
        .filter(|p| p.1 == 150 && p.2 == base.2 && p.3 == base.3)
        .map(|p| p.0)
        .collect();
    assert!(procs.starts_with(&[1, 2, 4]), "{procs:?}");
    let gogc: Vec<u64> = points
        .iter()
        .filter(|p| p.0 == 2 && p.2 == base.2 && p.3 == base.3)
        .map(|p| p.1)
        .collect();
    assert_eq!(gogc, [50, 100, 150, 200]);
    let heap: Vec<u64> = points
        .iter()
        .filter(|p| p.0 == 2 && p.1 == 150 && p.3 == base.3)
        .map(|p| p.2)
        .collect();
    assert_eq!(heap, [65_536, 262_144, 1_048_576]);
    let mut share: Vec<&str> = points
        .iter()
        .filter(|p| p.0 == 2 && p.1 == 150 && p.2 == base.2)
        .map(|p| p.3.as_str())
        .collect();
    share.sort();
    assert_eq!(share, ["0.1", "0.25", "0.5"]);
    // Every point under each of the four designs, once (one seed), all threaded.
    let designs = ["full-rescan", "stkbar-1024", "hybrid", "hybrid-lazy"];
    assert_eq!(rows.len(), points.len() * designs.len());
    for r in &rows {
        assert_eq!(field(&header, r, "engine"), "threaded");
        assert!(designs.contains(&field(&header, r, "design")));
    }
    let (ph, pauses) = read_csv(&dir.path().join("sensitivity_pauses.csv"));
    assert_eq!(
        pauses.len(),
        rows.len(),
        "one configuration per run at one seed"
    );
    for p in &pauses {
        assert!(!field(&ph, p, "configuration").contains("--seed"));
    }
}

#[test]
fn scan_stall_runs_each_point_of_both_sweeps_once_under_every_design() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tiny("scan_stall", dir.path());
    // At a fiftieth: the depth sweep is 1 goroutine at depths 1, 2, 20 and 200, the goroutine
    // sweep 1, 1 and 5 goroutines at depth 20; their union is five points.
    let (header, rows) = check_run_csv(dir.path(), "scan_stall", 5 * 4);
    let mut points: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| (u(&header, r, "goroutines"), u(&header, r, "depth")))
        .collect();
    points.dedup();
    assert_eq!(points, [(1, 1), (1, 2), (1, 20), (1, 200), (5, 20)]);
    for (i, row) in rows.iter().enumerate() {
        let design = ["full-rescan", "stkbar-1024", "hybrid", "hybrid-lazy"][i % 4];
        assert_eq!(field(&header, row, "design"), design);
        assert_eq!(field(&header, row, "engine"), "threaded");
        assert_eq!(field(&header, row, "workload"), "deep-oscillate");
        let debug = field(&header, row, "debug");
        assert!(
            debug.contains("gccheckmark=0") && debug.contains("stackshadow=0"),
            "no checker: {debug}"
        );
        let scans = u(&header, row, "scan_stalls");
        assert_eq!(
            scans,
            2 * u(&header, row, "goroutines"),
            "one scan a goroutine a cycle"
        );
        assert!(u(&header, row, "scan_stall_ns_p50") <= u(&header, row, "scan_stall_ns_p99"));
        assert!(u(&header, row, "scan_stall_ns_p99") <= u(&header, row, "scan_stall_ns_max"));
        assert_eq!(
            field(&header, row, "stack_scan"),
            if design == "hybrid-lazy" {
                "lazy"
            } else {
                "eager"
            }
        );
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("at 1 G × depth 200: scan stall max, hybrid-lazy"),
        "{summary}"
    );
}

#[test]
fn paper_tables_refresh_is_idempotent_and_rejects_broken_markers() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny("rescan_offsets", dir.path());
    let paper = dir.path().join("paper.md");
    let original =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../paper.md"))
            .expect("paper.md exists");
    std::fs::write(&paper, &original).unwrap();
    let refresh = || {
        let out = bin("paper_tables")
            .arg("--results")
            .arg(dir.path())
            .arg("--paper")
            .arg(&paper)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&paper).unwrap()
    };
    let once = refresh();
    assert!(
        once.contains("| `deep-oscillate` |"),
        "the offsets table was filled in"
    );
    let twice = refresh();
    assert_eq!(once, twice, "a second refresh changes nothing");

    std::fs::write(&paper, "<!-- generated:rescan_offsets -->\nno end marker\n").unwrap();
    rejects(
        "paper_tables",
        &[
            "--results",
            dir.path().to_str().unwrap(),
            "--paper",
            paper.to_str().unwrap(),
        ],
    );
}

/// Runs `name` with `args`; it must exit 2 with one line on stderr and nothing on stdout.
fn rejects(name: &str, args: &[&str]) {
    let out = bin(name).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{name} {args:?}: {stderr}");
    assert!(stderr.starts_with(&format!("{name}: ")), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    for name in [
        "rescan_offsets",
        "depth_sweep",
        "goroutine_sweep",
        "barrier_designs",
        "scan_stall",
        "sanitizer_leak",
        "wbshadow_faults",
        "soundness",
    ] {
        rejects(name, &["--bogus"]);
        rejects(name, &["--quick", "--full"]);
        rejects(name, &["--quick", "--scale", "0", "--out", out]);
        rejects(name, &["--quick", "--scale", "x"]);
        rejects(name, &["--quick", "--cycles", "0", "--out", out]);
        rejects(name, &["--quick", "--seeds", "0", "--out", out]);
        rejects(name, &["--quick", "--seed", "-1"]);
        rejects(name, &["--quick", "--jobs", "0", "--out", out]);
    }
    rejects(
        "rescan_offsets",
        &["--quick", "--traces", "/nonexistent-dir", "--out", out],
    );
    rejects("paper_tables", &["--paper", "/nonexistent/paper.md"]);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "rejected runs write nothing"
    );
}

#[test]
fn bad_replay_files_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.trace");
    std::fs::write(&bad, "# ok\nstkbar-replay 1\nfunc f 64\ncall f\ncall g\n").unwrap();
    let bad = bad.to_str().unwrap();
    rejects("testbed", &["--workload", "replay", "--replay", bad]);
    let out = bin("testbed")
        .args(["--workload", "replay", "--replay", bad])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{bad}:5:")), "{stderr}");
    rejects("testbed", &["--workload", "replay"]);
    rejects(
        "testbed",
        &["--workload", "replay", "--replay", "/nonexistent.trace"],
    );
    rejects("testbed", &["--workload", "mixed", "--replay", bad]);
    // A bad trace in a --traces directory stops a sweep before it runs anything.
    rejects(
        "rescan_offsets",
        &[
            "--quick",
            "--quiet",
            "--traces",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ],
    );
}

#[test]
fn a_shipped_trace_replays_soundly_under_every_design() {
    for trace in std::fs::read_dir(traces()).unwrap() {
        let path = trace.unwrap().path();
        if path.extension().is_none_or(|x| x != "trace") {
            continue;
        }
        for design in [
            ["--stack-barriers", "on"],
            ["--stack-barriers", "all"],
            ["--barrier", "hybrid"],
        ] {
            let out = bin("testbed")
                .args([
                    "--workload",
                    "replay",
                    "--goroutines",
                    "4",
                    "--depth",
                    "3",
                    "--cycles",
                    "2",
                ])
                .arg("--replay")
                .arg(&path)
                .args(design)
                .args(["--debug", "gccheckmark=1", "--json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["totals"]["checkmark_failures"], 0);
            assert_eq!(v["rescan_bound"]["outside_bound"], 0);
            assert!(v["config"]["replay"].as_str().unwrap().ends_with(".trace"));
        }
    }
}

#[test]
fn sanitizer_leak_writes_one_row_per_cycle_with_contexts_following_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--quick", "--scale", "0.25", "--cycles", "8", "--quiet"];
    run_ok("sanitizer_leak", &args, dir.path());
    let (header, rows) = read_csv(&dir.path().join("sanitizer_leak.csv"));
    assert_eq!(
        &header[..4],
        ["mode", "step", "live_objects", "sanitizer_bytes"],
        "ARCHITECTURE.md §7's columns first"
    );
    assert_eq!(rows.len(), 2 * 8, "two modes × one seed × 8 cycles");
    // The schedule for 8 cycles: 2 Ps, 4 from cycle 3, 1 from cycle 5, 3 from cycle 7.
    let procs: Vec<u64> = rows[..8].iter().map(|r| u(&header, r, "procs")).collect();
    assert_eq!(procs, [2, 2, 4, 4, 1, 1, 3, 3]);
    for r in &rows {
        assert_eq!(u(&header, r, "contexts"), u(&header, r, "procs"));
    }
    let bytes = |mode: &str, step: u64| {
        rows.iter()
            .find(|r| field(&header, r, "mode") == mode && u(&header, r, "step") == step)
            .map(|r| u(&header, r, "sanitizer_bytes"))
            .unwrap()
    };
    // Flat after warm-up: within 5 % (the per-P caches hold a few slots more or less as the P
    // count changes).
    let (warm, last) = (bytes("free-notify", 2), bytes("free-notify", 7));
    assert!(last.abs_diff(warm) * 20 < warm, "{warm} then {last}");
    assert!(
        bytes("no-free-notify", 7) > 2 * bytes("no-free-notify", 2),
        "grows without"
    );
}

#[test]
fn wbshadow_faults_catches_every_run_that_lost_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--quick",
        "--scale",
        "0.1",
        "--seeds",
        "2",
        "--heap-minimum",
        "262144",
        "--quiet",
    ];
    run_ok("wbshadow_faults", &args, dir.path());
    let (header, rows) = read_csv(&dir.path().join("wbshadow_faults.csv"));
    assert_eq!(rows.len(), 3 * 4, "three modes × four fractions");
    for r in &rows {
        let mode = field(&header, r, "mode");
        let by = ["by_store", "by_gc", "by_checkmark"].map(|c| u(&header, r, c));
        assert!(by.iter().sum::<u64>() <= u(&header, r, "detected"));
        if mode != "wbshadow=1" {
            assert_eq!(
                u(&header, r, "lost_caught"),
                u(&header, r, "lost_runs"),
                "{mode}"
            );
        }
        if mode == "checkmark" {
            assert_eq!(by[0] + by[1], 0, "checkmark alone has no shadow");
        }
    }
    let (runs_header, runs) = read_csv(&dir.path().join("wbshadow_faults_runs.csv"));
    assert_eq!(runs.len(), 3 * 4 * 2);
    // A detected run's command reproduces its verdict: exit 3.
    let detected = runs
        .iter()
        .find(|r| field(&runs_header, r, "detected") == "true")
        .expect("some run is caught");
    reproduces_exit_3(field(&runs_header, detected, "command"));
    let (oh, overhead) = read_csv(&dir.path().join("wbshadow_overhead.csv"));
    assert_eq!(overhead.len(), 4 * 2, "off and three modes × two seeds");
    assert!(overhead.iter().all(|r| (field(&oh, r, "mode") == "off"
        || field(&oh, r, "mode") == "checkmark")
        == (u(&oh, r, "shadow_bytes") == 0)));
}

/// The mutation table and the campaign: every fault × checker × workload cell, stackshadow
/// catching every run in which a re-scan fault skipped a changed frame, no campaign failure,
/// and a caught run's command reproducing its exit 3.
#[test]
fn soundness_catches_every_effective_rescan_fault_and_the_campaign_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--quick", "--scale", "0.5", "--seeds", "2", "--quiet"];
    run_ok("soundness", &args, dir.path());
    let (header, rows) = read_csv(&dir.path().join("soundness.csv"));
    assert_eq!(
        rows.len(),
        5 * 4 * 4,
        "five faults × four checkers × four workloads"
    );
    let mut effective_rescan_faults = 0;
    for r in &rows {
        let (fault, checker) = (field(&header, r, "fault"), field(&header, r, "checker"));
        let (eff, caught) = (
            u(&header, r, "runs_effective"),
            u(&header, r, "caught_effective"),
        );
        assert!(caught <= eff && eff <= u(&header, r, "runs_fired"), "{r:?}");
        if fault != "wb-drop" && (checker == "stackshadow" || checker == "both") {
            assert_eq!(caught, eff, "{fault} {checker}");
            effective_rescan_faults += eff;
        }
        if fault != "wb-drop" && checker == "wbshadow=2" {
            assert_eq!(
                caught,
                u(&header, r, "lost_caught"),
                "wbshadow sees no stack fault"
            );
        }
    }
    assert!(
        effective_rescan_faults > 0,
        "some re-scan fault took effect"
    );
    let (ch, campaign) = read_csv(&dir.path().join("soundness_campaign.csv"));
    assert_eq!(
        campaign.len(),
        6 * 2 + 7 * 2,
        "six designs × two engines on mixed, hybrid-lazy × two engines on the seven others"
    );
    for r in &campaign {
        assert_eq!(u(&ch, r, "failures"), 0, "{r:?}");
        assert_eq!(u(&ch, r, "seeds"), 2);
        let (design, workload) = (field(&ch, r, "design"), field(&ch, r, "workload"));
        assert!(workload == "mixed" || design == "hybrid-lazy", "{r:?}");
        if workload == "mixed" {
            // The re-scanning designs verify skipped frames, the lazy one frames above its
            // watermarks; the others have nothing to verify.
            let verifies = !matches!(design, "hybrid" | "yuasa");
            assert_eq!(
                u(&ch, r, "stackshadow_frames_verified") > 0,
                verifies,
                "{r:?}"
            );
        }
    }
    let (rh, runs) = read_csv(&dir.path().join("soundness_runs.csv"));
    let caught = runs
        .iter()
        .find(|r| field(&rh, r, "caught_by") == "stackshadow")
        .expect("stackshadow caught some run");
    let command = field(&rh, caught, "command");
    let again = reproduces_exit_3(command);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("stackshadow: goroutine"),
        "{command}"
    );
}
