//! Tracing and profiling on the command line: `testbed --trace` writes a Chrome trace-event file
//! with every event kind of ARCHITECTURE.md §2 (seed 001) on both engines, its slices well formed and
//! properly nested per thread, and nothing at all when the run fails; `--profile` writes folded
//! stacks that add up to the report's samples, none malformed with seed 003's checks; bad
//! `--trace`/`--profile` inputs exit 2 with one line; `trace_overhead` writes its CSV.
//!
//! Every run is small (8 goroutines, depth 50 to 100, 2 or 3 cycles, a 256 KiB heap minimum
//! where the event kind allows), so the file stays fast in a debug build.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use common::{args_over, describe, run, run_with_env, text};
use serde_json::Value;

/// The brief's configuration: `testbed --workload mixed --goroutines 8 --depth 50 --cycles 3`.
const MIXED: &[(&str, &str)] = &[
    ("--workload", "mixed"),
    ("--goroutines", "8"),
    ("--depth", "50"),
    ("--cycles", "3"),
];

/// Deep stacks unwound many frames at a time, a barrier on every frame: hits, removals at mark
/// termination and unwinds past barriers.
const UNWIND: &[(&str, &str)] = &[
    ("--workload", "deep-unwind"),
    ("--goroutines", "8"),
    ("--depth", "100"),
    ("--cycles", "2"),
    ("--stack-barriers", "all"),
    ("--heap-minimum", "262144"),
];

/// Stacks that grow and shrink: copystack.
const COPY: &[(&str, &str)] = &[
    ("--workload", "copy-heavy"),
    ("--goroutines", "8"),
    ("--depth", "50"),
    ("--cycles", "2"),
    ("--heap-minimum", "262144"),
];

const THREADED: &[(&str, &str)] = &[("--engine", "threaded"), ("--procs", "2")];

/// The `tid` of the GC phase slices (`experiments::trace_export::GC_PHASES_TID`).
const GC_PHASES_TID: u64 = 1000;

/// Runs `testbed` expecting success; returns its output.
fn run_ok(args: &[String]) -> Output {
    let out = run(args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(args, None, &out));
    out
}

/// `base` with `engine`'s flags, `--trace` into `dir`, run; the parsed trace.
fn traced(base: &[(&str, &str)], engine: &[(&str, &str)], dir: &Path, name: &str) -> Value {
    let file = dir.join(name);
    let file_arg = file.display().to_string();
    let args = args_over(base, engine, &["--trace", &file_arg]);
    run_ok(&args);
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON ({e}): testbed {}",
            file.display(),
            args.join(" ")
        )
    })
}

fn events(trace: &Value) -> &[Value] {
    trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
}

/// An event's kind: its name, with goroutine slices (`G12`) folded into `G<n>`.
fn kind(e: &Value) -> String {
    let name = e["name"].as_str().expect("every event has a name");
    match name.strip_prefix('G') {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => "G<n>".into(),
        _ => name.into(),
    }
}

/// The thread names the metadata gives, by `tid`.
fn thread_names(trace: &Value) -> BTreeMap<u64, String> {
    events(trace)
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every event is well formed: `pid` 1, a named thread, a category; a slice has `ts` ≥ 0 and
/// `dur` ≥ 0, an instant `ts` ≥ 0 and thread scope; and the slices of each thread nest (the
/// format requires it: Perfetto drops a slice that overlaps its predecessor).
fn assert_well_formed(trace: &Value, ctx: &str) {
    let names = thread_names(trace);
    let mut slices: BTreeMap<u64, Vec<(f64, f64, String)>> = BTreeMap::new();
    for e in events(trace).iter().filter(|e| e["ph"] != "M") {
        assert_eq!(e["pid"], 1, "{ctx}: {e}");
        let tid = e["tid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{ctx}: tid: {e}"));
        assert!(names.contains_key(&tid), "{ctx}: thread {tid} unnamed: {e}");
        assert!(e["cat"].is_string(), "{ctx}: cat: {e}");
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("{ctx}: ts: {e}"));
        assert!(ts >= 0.0, "{ctx}: negative ts: {e}");
        match e["ph"].as_str() {
            Some("X") => {
                let dur = e["dur"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{ctx}: dur: {e}"));
                assert!(dur >= 0.0, "{ctx}: negative dur: {e}");
                slices.entry(tid).or_default().push((ts, ts + dur, kind(e)));
            }
            Some("i") => assert_eq!(e["s"], "t", "{ctx}: {e}"),
            other => panic!("{ctx}: unexpected ph {other:?}: {e}"),
        }
    }
    for (tid, mut list) in slices {
        // By start, the longer first: each slice must end within every slice still open.
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<&(f64, f64, String)> = Vec::new();
        for s in &list {
            while open.last().is_some_and(|o| o.1 <= s.0) {
                open.pop();
            }
            if let Some(parent) = open.last() {
                assert!(
                    s.1 <= parent.1,
                    "{ctx}: on {} {s:?} overlaps {parent:?} without nesting in it",
                    names[&tid]
                );
            }
            open.push(s);
        }
    }
}

/// The kinds of event each engine's traces must hold between them (ARCHITECTURE.md §2's list).
const KINDS: &[&str] = &[
    "mark",
    "sweep",
    "STW sweep termination",
    "STW mark termination",
    "stack scan",
    "re-scan",
    "stkbar install",
    "stkbar hit",
    "stkbar remove",
    "stkbar unwind",
    "copystack",
    "G<n>",
    "go create",
];

fn check_engine(engine: &[(&str, &str)], label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let traces = [
        ("mixed", traced(MIXED, engine, dir.path(), "mixed.json")),
        (
            "deep-unwind",
            traced(UNWIND, engine, dir.path(), "unwind.json"),
        ),
        ("copy-heavy", traced(COPY, engine, dir.path(), "copy.json")),
    ];
    let threaded = !engine.is_empty();
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (workload, trace) in &traces {
        let ctx = format!("{label} {workload}");
        assert_well_formed(trace, &ctx);
        let names = thread_names(trace);
        for want in ["GC", "GC phases", "P0", "P1", "mark worker 0"] {
            assert!(
                names.values().any(|n| n == want),
                "{ctx}: no thread {want}: {names:?}"
            );
        }
        assert_eq!(trace["displayTimeUnit"], "ns", "{ctx}");
        assert_eq!(trace["otherData"]["config"]["workload"], *workload, "{ctx}");
        let stats = &trace["otherData"]["trace"];
        let non_meta = events(trace).iter().filter(|e| e["ph"] != "M").count() as u64;
        assert_eq!(stats["events"].as_u64(), Some(non_meta), "{ctx}: {stats}");
        assert_eq!(stats["events_read"], stats["events"], "{ctx}: {stats}");
        for e in events(trace).iter().filter(|e| e["ph"] != "M") {
            let tid = e["tid"].as_u64().unwrap();
            seen.entry(kind(e)).or_default().insert(names[&tid].clone());
            match kind(e).as_str() {
                "stack scan" | "re-scan" => {
                    assert!(e["args"]["goid"].is_u64(), "{ctx}: {e}");
                    assert!(e["args"]["bytes"].is_u64(), "{ctx}: {e}");
                }
                "mark" | "sweep" if tid == GC_PHASES_TID => {
                    assert_eq!(e["cat"], "gc", "{ctx}: {e}");
                    assert!(e["args"]["cycle"].as_u64() >= Some(1), "{ctx}: {e}");
                }
                "G<n>" => {
                    let goid = e["args"]["goid"].as_u64().expect("goid");
                    assert_eq!(e["name"], format!("G{goid}"), "{ctx}: {e}");
                    assert!(names[&tid].starts_with('P'), "{ctx}: {e}");
                }
                _ => {}
            }
        }
        let stw = |what: &str| {
            events(trace)
                .iter()
                .filter(|e| e["name"] == what && e["tid"] == 0)
                .count()
        };
        let cycles = trace["otherData"]["config"]["cycles"].as_u64().unwrap() as usize;
        assert_eq!(stw("STW sweep termination"), cycles, "{ctx}");
        assert_eq!(stw("STW mark termination"), cycles, "{ctx}");
    }
    for want in KINDS {
        assert!(
            seen.contains_key(*want),
            "{label}: no {want:?} event in any trace; kinds seen: {:?}",
            seen.keys().collect::<Vec<_>>()
        );
    }
    // Each kind on the threads it belongs to.
    let on = |k: &str| &seen[k];
    assert_eq!(
        on("mark"),
        &BTreeSet::from(["GC phases".to_owned()]),
        "{label}"
    );
    // Mark termination's re-scans: on the collector's thread, and on the worker thread of a P
    // that helped it (`gcprocs`).
    assert!(
        on("re-scan")
            .iter()
            .all(|t| t == "GC" || t.starts_with("mark worker")),
        "{label}"
    );
    assert!(
        on("STW mark termination").iter().all(|t| t == "GC"),
        "{label}"
    );
    assert!(on("G<n>").iter().all(|t| t.starts_with('P')), "{label}");
    assert!(
        on("stkbar hit").iter().all(|t| t.starts_with('P')),
        "{label}"
    );
    assert!(
        on("sweep").iter().any(|t| t.starts_with('P')),
        "{label}: sweep slices on a P"
    );
    if threaded {
        assert!(
            seen.contains_key("mark worker"),
            "{label}: mark worker slices"
        );
    }
}

// ---- (a), (b): every event kind, well formed, on both engines. ----

#[test]
fn deterministic_traces_hold_every_event_kind_well_formed() {
    check_engine(&[], "deterministic");
}

#[test]
fn threaded_traces_hold_every_event_kind_well_formed() {
    check_engine(THREADED, "threaded");
}

#[test]
fn json_report_has_trace_stats_only_when_tracing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.json").display().to_string();
    let plain = run_ok(&args_over(MIXED, &[("--cycles", "1")], &["--json"]));
    let v: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(
        v.get("trace").is_none() && v.get("profile").is_none(),
        "{v}"
    );
    assert_eq!(v["config"]["trace"], Value::Null);
    let out = run_ok(&args_over(
        MIXED,
        &[("--cycles", "1")],
        &["--json", "--trace", &file],
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["trace"], file.as_str());
    let t = &v["trace"];
    for k in [
        "events",
        "events_read",
        "buffers_allocated",
        "buffers_flushed",
        "buffer_bytes",
    ] {
        assert!(t[k].is_u64(), "trace lacks {k}: {v}");
    }
    assert!(t["events"].as_u64() > Some(0));
    assert_eq!(t["events"], t["events_read"], "{v}");
    // Tracing changes no counter of the deterministic engine.
    assert_eq!(
        v["totals"]["mutator_ops"],
        serde_json::from_slice::<Value>(&plain.stdout).unwrap()["totals"]["mutator_ops"]
    );
}

#[test]
fn a_run_stopped_by_a_checker_leaves_no_trace_nor_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.json");
    let file_arg = file.display().to_string();
    let args = args_over(
        MIXED,
        &[],
        &[
            "--inject",
            "wb-drop=0.3",
            "--debug",
            "wbshadow=1",
            "--trace",
            &file_arg,
        ],
    );
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        describe(&args, None, &out)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

// ---- (c): bad inputs. ----

/// Asserts exit 2, one stderr line naming `needle`, nothing on stdout.
fn rejects(args: &[String], needle: &str) {
    let out = run_with_env(args, None);
    let ctx = describe(args, None, &out);
    assert_eq!(out.status.code(), Some(2), "{ctx}");
    assert!(out.stdout.is_empty(), "{ctx}");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line: {ctx}");
    assert!(lines[0].starts_with("testbed: "), "{ctx}");
    assert!(lines[0].contains(needle), "want {needle:?}: {ctx}");
}

#[test]
fn bad_trace_and_profile_inputs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let f = dir.path().join("p.folded").display().to_string();
    let bad: &[(&[&str], &str)] = &[
        (&["--trace", "/nonexistent-dir/x.json"], "does not exist"),
        (
            &["--profile", "/nonexistent-dir/p.folded"],
            "does not exist",
        ),
        (&["--trace", &d], "is a directory"),
        (&["--trace", ""], "--trace"),
        (&["--trace", &f, "--profile", &f], "both name"),
        (
            &["--profile", &f, "--profile-period", "0"],
            "--profile-period",
        ),
        (&["--profile-period", "0"], "--profile-period"),
        (
            &["--profile", &f, "--profile-rules", "go1.5"],
            "--profile-rules",
        ),
        (&["--profile-rules", "maybe"], "--profile-rules"),
        (&["--profile-period", "5"], "--profile"),
        (&["--profile-rules", "none"], "--profile"),
        (&["--profile-interval-us", "50"], "--profile"),
        (
            &["--profile", &f, "--profile-interval-us", "0"],
            "--profile-interval-us",
        ),
        (
            &["--profile", &f, "--profile-interval-us", "nan"],
            "--profile-interval-us",
        ),
        (
            &["--profile", &f, "--profile-interval-us", "-5"],
            "--profile-interval-us",
        ),
        (
            &["--profile", &f, "--profile-interval-us", "50"],
            "--engine threaded",
        ),
        (
            &["--profile", &f, "--profile-period", "x"],
            "--profile-period",
        ),
    ];
    for (extra, needle) in bad {
        rejects(&args_over(MIXED, &[], extra), needle);
    }
    rejects(
        &args_over(MIXED, THREADED, &["--profile", &f, "--profile-period", "5"]),
        "--engine deterministic",
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a rejected run writes nothing"
    );
}

#[test]
fn help_shows_the_trace_and_profile_examples() {
    let a = vec!["--help".to_owned()];
    let out = run(&a);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for s in [
        "testbed --workload mixed --trace trace.json",
        "https://ui.perfetto.dev",
        "testbed --workload switch-heavy --profile cpu.folded",
        "--profile-period",
        "--profile-interval-us",
        "--profile-rules",
    ] {
        assert!(help.contains(s), "help lacks {s:?}:\n{help}");
    }
}

// ---- (d): the folded profile. ----

/// Runs with `--profile` and `--json`; returns the report and the folded lines as (stack,
/// count).
fn profiled(base: &[(&str, &str)], extra: &[&str]) -> (Value, Vec<(String, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.folded");
    let file_arg = file.display().to_string();
    let mut flags = vec!["--json", "--profile", &file_arg];
    flags.extend_from_slice(extra);
    let args = args_over(base, &[], &flags);
    let out = run_ok(&args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let folded = std::fs::read_to_string(&file).unwrap();
    let lines = folded
        .lines()
        .map(|l| {
            let (stack, n) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not `stack count`: {l:?}"));
            assert!(!stack.is_empty(), "empty stack: {l:?}");
            assert!(
                stack.split(';').all(|f| !f.is_empty() && !f.contains(' ')),
                "bad frames: {l:?}"
            );
            (
                stack.to_owned(),
                n.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")),
            )
        })
        .collect();
    (v, lines)
}

#[test]
fn folded_profile_adds_up_to_the_samples_with_none_malformed() {
    let switch = &[
        ("--workload", "switch-heavy"),
        ("--goroutines", "8"),
        ("--depth", "50"),
        ("--cycles", "2"),
        ("--heap-minimum", "262144"),
    ];
    let (v, lines) = profiled(switch, &["--profile-period", "16"]);
    let p = &v["profile"];
    let samples = p["samples"].as_u64().expect("profile.samples");
    assert!(samples > 100, "{p}");
    assert_eq!(lines.iter().map(|(_, n)| n).sum::<u64>(), samples, "{p}");
    assert_eq!(p["stacks"].as_u64(), Some(lines.len() as u64), "{p}");
    assert_eq!(p["malformed"], 0, "Go 1.7's rules: {p}");
    assert!(p["user_samples"].as_u64() > Some(0), "{p}");
    assert!(p["g0_samples"].as_u64() > Some(0), "{p}");
    assert!(
        lines.iter().any(|(s, _)| s.starts_with("main.")),
        "user stacks"
    );
    assert!(
        lines
            .iter()
            .any(|(s, _)| s.starts_with("runtime.mcall;runtime.gosched_m;runtime.schedule")),
        "the scheduler's g0 stacks"
    );
    assert_eq!(v["config"]["profile_rules"], "go1.7");
    assert_eq!(v["config"]["profile_period"], 16);
    assert_eq!(v["config"]["profile_interval_us"], Value::Null);

    // The threaded engine: the profiler thread's signals, and the same accounting.
    let (v, lines) = profiled(
        MIXED,
        &[
            "--engine",
            "threaded",
            "--procs",
            "2",
            "--profile-interval-us",
            "50",
        ],
    );
    let p = &v["profile"];
    let samples = p["samples"].as_u64().unwrap();
    assert_eq!(lines.iter().map(|(_, n)| n).sum::<u64>(), samples, "{p}");
    assert_eq!(p["malformed"], 0, "{p}");
    assert!(p["signals_sent"].as_u64() >= Some(samples), "{p}");
    assert_eq!(v["config"]["profile_interval_us"], 50.0);
    assert_eq!(v["config"]["profile_period"], Value::Null);
}

#[test]
fn profile_rules_are_reported() {
    let (v, lines) = profiled(
        &[
            ("--workload", "switch-heavy"),
            ("--goroutines", "8"),
            ("--depth", "50"),
            ("--cycles", "1"),
            ("--heap-minimum", "262144"),
        ],
        &["--profile-rules", "seed003"],
    );
    assert_eq!(v["config"]["profile_rules"], "seed003");
    let samples = v["profile"]["samples"].as_u64().unwrap();
    assert_eq!(lines.iter().map(|(_, n)| n).sum::<u64>(), samples);
    assert_eq!(v["profile"]["g0_samples"], 0, "seed 003 never unwinds g0");
    assert!(!lines.iter().any(|(s, _)| s.starts_with("runtime.mcall")));
}

// ---- (e): trace_overhead. ----

const OVERHEAD_COLUMNS: [&str; 18] = [
    "workload",
    "engine",
    "procs",
    "goroutines",
    "depth",
    "seed",
    "cycles",
    "reps",
    "wall_ms_off",
    "wall_ms_on",
    "overhead",
    "mutator_ops",
    "events",
    "events_per_sec",
    "trace_bytes",
    "buffers_allocated",
    "mark_term_ns_p50_off",
    "mark_term_ns_p50_on",
];

#[test]
fn trace_overhead_quick_writes_one_row_per_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trace_overhead"))
        .args([
            "--quick",
            "--scale",
            "0.05",
            "--cycles",
            "1",
            "--reps",
            "1",
            "--heap-minimum",
            "262144",
            "--procs",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("trace_overhead runs");
    assert!(
        out.status.success(),
        "trace_overhead failed: {}",
        text(&out.stderr)
    );
    let mut csv = csv::Reader::from_path(dir.path().join("trace_overhead.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, OVERHEAD_COLUMNS);
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let keys: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r[0].to_owned(), r[1].to_owned()))
        .collect();
    assert_eq!(rows.len(), 8, "four workloads × two engines: {rows:?}");
    assert_eq!(keys.len(), 8, "one row per configuration: {rows:?}");
    for r in &rows {
        let f = |i: usize| -> f64 { r[i].parse().unwrap_or_else(|e| panic!("{r:?}[{i}]: {e}")) };
        let (off, on, overhead) = (f(8), f(9), f(10));
        assert!(off > 0.0 && on > 0.0, "{r:?}");
        assert!((overhead - (on / off - 1.0)).abs() < 1e-9, "{r:?}");
        assert!(f(12) > 0.0, "events: {r:?}");
        assert!(f(14) > 0.0, "trace bytes: {r:?}");
        assert!(f(15) >= 1.0, "buffers: {r:?}");
        assert_eq!(&r[7], "1", "reps: {r:?}");
        assert_eq!(&r[2], if &r[1] == "threaded" { "2" } else { "4" }, "{r:?}");
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("trace_overhead.json")).unwrap())
            .unwrap();
    assert_eq!(json["experiment"], "trace_overhead");
    let configs = json["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 8);
    assert!(
        configs
            .iter()
            .all(|c| c["config"]["heap_minimum"] == 262144)
    );
    assert!(configs.iter().all(|c| {
        c["command"]
            .as_str()
            .is_some_and(|s| s.starts_with("testbed "))
    }));
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "provenance.json",
            "trace_overhead.csv",
            "trace_overhead.json"
        ],
        "the CSV, the JSON and their provenance only"
    );
}
