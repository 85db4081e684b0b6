//! The `testbed` binary end to end: bad input exits 2 with one line, `--help`, the `--json`
//! report's shape and invariants, determinism, resolved defaults, `gctrace`, and every workload
//! under every write-barrier design with checkmark on.
//!
//! Every run is tiny (a few goroutines, shallow stacks, two cycles, a small heap minimum) so the
//! whole file stays fast in a debug build.

mod common;

use std::process::Output;

use common::{args_over, describe, run, run_with_env, text};
use serde_json::{Map, Value};

/// A small configuration every test starts from; `(flag, value)` pairs, no flag twice.
const BASE: &[(&str, &str)] = &[
    ("--workload", "deep-oscillate"),
    ("--goroutines", "4"),
    ("--depth", "40"),
    ("--cycles", "2"),
    ("--heap-minimum", "65536"),
];

/// The base arguments with `overrides` replacing same-named flags (or appended), then `extra`
/// appended verbatim.
fn args(overrides: &[(&str, &str)], extra: &[&str]) -> Vec<String> {
    args_over(BASE, overrides, extra)
}

/// Every registered workload's name (`replay` needs a trace: its own tests give one).
fn workloads() -> impl Iterator<Item = &'static str> {
    experiments::workload::WORKLOADS.iter().map(|w| w.name())
}

const BARRIERS: &[&str] = &["dijkstra", "hybrid", "yuasa"];

/// Every `CycleStats` counter, the keys of each `cycles` row and of `totals`.
const CYCLE_KEYS: &[&str] = &[
    "cycle",
    "heap_live_bytes",
    "stack_bytes_used",
    "stacks_scanned",
    "scan_bytes",
    "scan_stalls",
    "scan_stall_ns_p50",
    "scan_stall_ns_p99",
    "scan_stall_ns_max",
    "watermark_hits",
    "mutator_scanned_frames",
    "marker_lazy_frames",
    "rescan_bytes",
    "rescan_frames",
    "full_rescan_bytes",
    "oracle_rescan_bytes",
    "barriers_installed",
    "barriers_hit",
    "barriers_removed",
    "stkbar_reserved_bytes",
    "copystacks",
    "wb_calls",
    "assist_scan_bytes",
    "sweep_term_ns",
    "mark_ns",
    "mark_term_ns",
    "checkmark_failures",
    "wbshadow_violations",
];

/// The summaries `totals` has beyond the summed counters.
const TOTALS_EXTRA_KEYS: &[&str] = &[
    "cycles",
    "mark_term_ns_p50",
    "mark_term_ns_p99",
    "mark_term_ns_max",
    "sweep_term_ns_p50",
    "sweep_term_ns_p99",
    "sweep_term_ns_max",
    "rescan_avoided",
    "mutator_ops",
];

/// Every resolved option `config` reports.
const CONFIG_KEYS: &[&str] = &[
    "workload",
    "goroutines",
    "depth",
    "seed",
    "cycles",
    "barrier",
    "stack_barriers",
    "first_offset",
    "stack_scan",
    "engine",
    "procs",
    "gc_share",
    "mark_step_bytes",
    "time_limit",
    "gogc",
    "heap_minimum",
    "force_gc_every",
    "max_ops",
    "max_stack_size",
    "debug",
];

/// Asserts a bad-input rejection: exit 2, exactly one non-empty stderr line, empty stdout, no
/// panic.
fn assert_rejected(args: &[String], out: &Output) {
    let ctx = describe(args, None, out);
    assert_eq!(out.status.code(), Some(2), "{ctx}");
    assert!(out.stdout.is_empty(), "stdout not empty: {ctx}");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {ctx}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want exactly one stderr line: {ctx}");
    assert!(!lines[0].trim().is_empty(), "empty stderr line: {ctx}");
}

fn rejects(overrides: &[(&str, &str)], extra: &[&str]) {
    let a = args(overrides, extra);
    assert_rejected(&a, &run(&a));
}

/// Runs successfully and returns the parsed `--json` report.
fn report(overrides: &[(&str, &str)], extra: &[&str]) -> Value {
    let mut a = args(overrides, extra);
    a.push("--json".to_owned());
    let out = run(&a);
    let ctx = describe(&a, None, &out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {ctx}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {ctx}"))
}

fn obj<'a>(v: &'a Value, key: &str) -> &'a Map<String, Value> {
    v[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} is not an object: {v}"))
}

fn u(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {row}"))
}

/// `v` without timing keys (ending in `_ns` or containing `_ns_`) in `totals` and each cycle.
fn without_timings(mut v: Value) -> Value {
    let timing = |k: &str| k.ends_with("_ns") || k.contains("_ns_");
    if let Some(t) = v["totals"].as_object_mut() {
        t.retain(|k, _| !timing(k));
    }
    if let Some(cs) = v["cycles"].as_array_mut() {
        for c in cs {
            if let Some(c) = c.as_object_mut() {
                c.retain(|k, _| !timing(k));
            }
        }
    }
    v
}

// ---- 1. Bad input: exit 2, one line on stderr, nothing on stdout, no panic. ----

macro_rules! bad_input {
    ($($name:ident: [$($flag:literal => $value:literal),*] [$($extra:literal),*];)*) => {
        $(
            #[test]
            fn $name() {
                rejects(&[$(($flag, $value)),*], &[$($extra),*]);
            }
        )*
    };
}

bad_input! {
    unknown_flag_is_rejected_with_one_line: [] ["--no-such-flag"];
    unknown_workload_is_rejected_with_one_line: ["--workload" => "no-such-workload"] [];
    unknown_barrier_is_rejected_with_one_line: ["--barrier" => "steele"] [];
    zero_goroutines_is_rejected_with_one_line: ["--goroutines" => "0"] [];
    zero_depth_is_rejected_with_one_line: ["--depth" => "0"] [];
    zero_cycles_is_rejected_with_one_line: ["--cycles" => "0"] [];
    zero_procs_is_rejected_with_one_line: ["--procs" => "0"] [];
    procs_over_256_is_rejected_with_one_line: ["--procs" => "300"] [];
    gc_share_zero_is_rejected_with_one_line: ["--gc-share" => "0"] [];
    gc_share_above_one_is_rejected_with_one_line: ["--gc-share" => "1.5"] [];
    gogc_zero_is_rejected_with_one_line: ["--gogc" => "0"] [];
    gogc_non_numeric_is_rejected_with_one_line: ["--gogc" => "abc"] [];
    gogc_off_without_force_gc_every_is_rejected_with_one_line: ["--gogc" => "off"] [];
    first_offset_zero_is_rejected_with_one_line: ["--first-offset" => "0"] [];
    first_offset_not_multiple_of_8_is_rejected_with_one_line: ["--first-offset" => "12"] [];
    unknown_stack_barriers_mode_is_rejected_with_one_line: ["--stack-barriers" => "maybe"] [];
    first_offset_with_stack_barriers_all_is_rejected_with_one_line:
        ["--first-offset" => "1024", "--stack-barriers" => "all"] [];
    stack_barriers_on_with_hybrid_barrier_is_rejected_with_one_line:
        ["--barrier" => "hybrid", "--stack-barriers" => "on"] [];
    unknown_debug_knob_is_rejected_with_one_line: ["--debug" => "nosuch=1"] [];
    debug_knob_without_value_is_rejected_with_one_line: ["--debug" => "gctrace"] [];
    gcstackbarrieroff_contradicting_stack_barriers_all_is_rejected_with_one_line:
        ["--debug" => "gcstackbarrieroff=1", "--stack-barriers" => "all"] [];
    unknown_engine_is_rejected_with_one_line: ["--engine" => "green"] [];
    threaded_zero_procs_is_rejected_with_one_line: ["--engine" => "threaded", "--procs" => "0"] [];
    threaded_gc_share_one_is_rejected_with_one_line: ["--engine" => "threaded", "--gc-share" => "1"] [];
    threaded_negative_gc_share_is_rejected_with_one_line:
        ["--engine" => "threaded", "--gc-share" => "-0.25"] [];
    time_limit_with_deterministic_engine_is_rejected_with_one_line: ["--time-limit" => "5"] [];
    mark_step_bytes_with_threaded_engine_is_rejected_with_one_line:
        ["--engine" => "threaded", "--mark-step-bytes" => "64"] [];
    zero_time_limit_is_rejected_with_one_line: ["--engine" => "threaded", "--time-limit" => "0"] [];
    depth_beyond_stack_limit_is_rejected_with_one_line: ["--depth" => "100000000"] [];
    non_numeric_seed_is_rejected_with_one_line: ["--seed" => "abc"] [];
    zero_mark_step_bytes_is_rejected_with_one_line: ["--mark-step-bytes" => "0"] [];
    unknown_stack_scan_is_rejected_with_one_line: ["--stack-scan" => "sometimes"] [];
    lazy_stack_scan_with_dijkstra_is_rejected_with_one_line: ["--stack-scan" => "lazy"] [];
    lazy_stack_scan_with_yuasa_is_rejected_with_one_line:
        ["--barrier" => "yuasa", "--stack-scan" => "lazy"] [];
    lazy_budget_with_eager_scan_is_rejected_with_one_line:
        ["--barrier" => "hybrid", "--lazy-first-frames" => "2"] [];
    zero_lazy_first_frames_is_rejected_with_one_line:
        ["--barrier" => "hybrid", "--stack-scan" => "lazy", "--lazy-first-frames" => "0"] [];
    zero_lazy_step_frames_is_rejected_with_one_line:
        ["--barrier" => "hybrid", "--stack-scan" => "lazy", "--lazy-step-frames" => "0"] [];
}

#[test]
fn bad_stkbar_debug_env_is_rejected_with_one_line() {
    let a = args(&[], &[]);
    let out = run_with_env(&a, Some("bogus=1"));
    assert_rejected(&a, &out);
}

#[test]
fn debug_flag_overrides_bad_stkbar_debug_env() {
    let a = args(&[("--debug", "gctrace=0")], &[]);
    let out = run_with_env(&a, Some("bogus=1"));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&a, None, &out));
}

// ---- 2. --help. ----

#[test]
fn help_exits_0_and_shows_an_example_and_the_debug_knobs() {
    let a = vec!["--help".to_owned()];
    let out = run(&a);
    let ctx = describe(&a, None, &out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let help = text(&out.stdout);
    assert!(help.contains("Example"), "{ctx}");
    assert!(help.contains("testbed --workload"), "{ctx}");
    for knob in [
        "gctrace=1",
        "gccheckmark=1",
        "gcstackbarrieroff=1",
        "gcstackbarrierall=1",
        "invalidptr",
        "STKBAR_DEBUG",
    ] {
        assert!(help.contains(knob), "help lacks {knob}: {ctx}");
    }
}

// ---- 3. --json shape and per-cycle invariants. ----

#[test]
fn json_report_has_config_totals_and_one_row_per_cycle() {
    let v = report(&[("--cycles", "3")], &[]);
    let top = v.as_object().expect("top level is an object");
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "barriers_outstanding",
            "config",
            "cycles",
            "mmu",
            "rescan_bound",
            "totals"
        ],
        "{v}"
    );
    assert_eq!(
        v["mmu"],
        Value::Array(vec![]),
        "the deterministic engine has no clock"
    );

    let config = obj(&v, "config");
    for k in CONFIG_KEYS {
        assert!(config.contains_key(*k), "config lacks {k}: {v}");
    }
    assert_eq!(config["workload"], "deep-oscillate");
    assert_eq!(config["goroutines"], 4);
    assert_eq!(config["depth"], 40);
    assert_eq!(config["seed"], 1);
    assert_eq!(config["cycles"], 3);
    assert_eq!(config["barrier"], "dijkstra");
    assert_eq!(config["engine"], "deterministic");
    assert_eq!(config["procs"], 4);
    assert_eq!(config["gc_share"], 0.25);
    assert_eq!(config["gogc"], 100);
    assert_eq!(config["heap_minimum"], 65536);
    assert_eq!(config["mark_step_bytes"], 32);
    assert_eq!(config["time_limit"], Value::Null);
    assert!(
        config["debug"]
            .as_str()
            .is_some_and(|d| d.contains("gctrace=0"))
    );

    let totals = obj(&v, "totals");
    for k in CYCLE_KEYS.iter().chain(TOTALS_EXTRA_KEYS) {
        assert!(totals.contains_key(*k), "totals lacks {k}: {v}");
    }
    assert_eq!(u(&v["totals"], "cycles"), 3);

    let cycles = v["cycles"].as_array().expect("cycles is an array");
    assert_eq!(cycles.len(), 3, "{v}");
    for (i, row) in cycles.iter().enumerate() {
        let row_obj = row.as_object().expect("a cycle row is an object");
        for k in CYCLE_KEYS {
            assert!(row_obj.contains_key(*k), "cycle {i} lacks {k}: {row}");
        }
        assert_eq!(u(row, "cycle"), i as u64 + 1, "{row}");
    }
    let bound = obj(&v, "rescan_bound");
    for k in [
        "bounded_rescans",
        "outside_bound",
        "past_first_offset",
        "max_reach_ratio",
    ] {
        assert!(bound.contains_key(k), "rescan_bound lacks {k}: {v}");
    }
    assert_eq!(u(&v["rescan_bound"], "outside_bound"), 0, "{v}");
    // Summed counters in totals are the sums of the rows; the scan stall's summaries are over
    // every scan of the run, so its longest is the longest of the rows'.
    let stall_summary = |k: &str| k.starts_with("scan_stall_ns_");
    for k in CYCLE_KEYS
        .iter()
        .filter(|k| **k != "cycle" && !stall_summary(k))
    {
        let sum: u64 = cycles.iter().map(|r| u(r, k)).sum();
        assert_eq!(u(&v["totals"], k), sum, "totals.{k}");
    }
    let longest = cycles.iter().map(|r| u(r, "scan_stall_ns_max")).max();
    assert_eq!(Some(u(&v["totals"], "scan_stall_ns_max")), longest);
}

#[test]
fn threaded_engine_reports_real_pauses_and_the_mmu_curve() {
    let v = report(
        &[
            ("--engine", "threaded"),
            ("--procs", "3"),
            ("--workload", "mixed"),
            ("--cycles", "3"),
        ],
        &["--debug", "gccheckmark=1"],
    );
    let config = obj(&v, "config");
    assert_eq!(config["engine"], "threaded");
    assert_eq!(config["procs"], 3);
    assert_eq!(config["mark_step_bytes"], Value::Null);
    assert_eq!(config["time_limit"], 300.0);
    assert_cycle_invariants(&v);
    for row in v["cycles"].as_array().unwrap() {
        assert!(
            u(row, "mark_term_ns") > 0 && u(row, "sweep_term_ns") > 0,
            "{row}"
        );
    }
    let t = &v["totals"];
    assert!(u(t, "mark_term_ns_p50") <= u(t, "mark_term_ns_p99"), "{t}");
    assert!(u(t, "mark_term_ns_p99") <= u(t, "mark_term_ns_max"), "{t}");
    let mmu = v["mmu"].as_array().expect("mmu is an array");
    assert!(!mmu.is_empty(), "{v}");
    assert_eq!(u(&mmu[0], "window_ns"), 100_000);
    for point in mmu {
        let m = point["mmu"].as_f64().expect("mmu is a number");
        assert!((0.0..=1.0).contains(&m), "{point}");
    }
}

#[test]
fn threaded_engine_defaults_to_one_p_per_cpu() {
    let v = report(&[("--engine", "threaded"), ("--cycles", "1")], &[]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(v["config"]["procs"], cpus as u64);
}

fn assert_cycle_invariants(v: &Value) {
    let rows = v["cycles"].as_array().expect("cycles is an array");
    assert!(!rows.is_empty(), "{v}");
    for row in rows {
        let (oracle, rescan, full) = (
            u(row, "oracle_rescan_bytes"),
            u(row, "rescan_bytes"),
            u(row, "full_rescan_bytes"),
        );
        assert!(
            oracle <= rescan && rescan <= full,
            "want oracle {oracle} <= rescan {rescan} <= full {full}: {row}\nconfig {}",
            v["config"]
        );
        if v["config"]["barrier_removal"] == "in-pause" {
            assert_eq!(
                u(row, "barriers_installed"),
                u(row, "barriers_hit") + u(row, "barriers_removed"),
                "installed != hit + removed: {row}\nconfig {}",
                v["config"]
            );
        }
        assert_eq!(
            u(row, "checkmark_failures"),
            0,
            "{row}\nconfig {}",
            v["config"]
        );
    }
    // Over the run, every barrier is hit, removed, or still outstanding at the end.
    let t = &v["totals"];
    let left = &v["barriers_outstanding"];
    if v["config"]["warmup_cycles"] == 0 {
        assert_eq!(
            u(t, "barriers_installed"),
            u(t, "barriers_hit")
                + u(t, "barriers_removed")
                + u(left, "on_stacks")
                + u(left, "ended_unreported"),
            "barrier books: {t}\n{left}\nconfig {}",
            v["config"]
        );
    }
}

#[test]
fn every_cycle_row_keeps_rescan_order_barrier_balance_and_no_checkmark_failures() {
    for workload in workloads() {
        for sb in ["on", "off", "all"] {
            for removal in ["after-restart", "in-pause"] {
                let v = report(
                    &[
                        ("--workload", workload),
                        ("--stack-barriers", sb),
                        ("--barrier-removal", removal),
                    ],
                    &[],
                );
                assert_cycle_invariants(&v);
            }
        }
    }
}

// ---- 4. Determinism. ----

#[test]
fn same_flags_and_seed_give_identical_json_apart_from_timings() {
    for workload in workloads() {
        let o = [("--workload", workload), ("--seed", "7")];
        let a = without_timings(report(&o, &[]));
        let b = without_timings(report(&o, &[]));
        assert_eq!(a, b, "{workload}");
    }
}

#[test]
fn a_different_seed_gives_different_counters() {
    let a = without_timings(report(&[("--seed", "1")], &[]));
    let b = without_timings(report(&[("--seed", "2")], &[]));
    assert_ne!(
        (&a["totals"], &a["cycles"]),
        (&b["totals"], &b["cycles"]),
        "seeds 1 and 2 gave the same counters"
    );
}

#[test]
fn every_registered_workload_is_in_the_help_and_the_readme() {
    let help = text(&run(&["--help".to_owned()]).stdout);
    let readme = include_str!("../../README.md");
    for name in workloads() {
        assert!(help.contains(name), "testbed --help does not name {name}");
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not name `{name}`"
        );
    }
}

#[test]
fn the_schedule_seed_defaults_to_the_program_seed_and_varies_alone() {
    let counters = |v: &Value| (v["totals"].clone(), v["cycles"].clone());
    let run = |extra: &[&str]| without_timings(report(&[("--seed", "3")], extra));
    let default = run(&[]);
    assert_eq!(default["config"]["sched_seed"], 3);
    let same = run(&["--sched-seed", "3"]);
    assert_eq!(
        default, same,
        "--sched-seed equal to --seed changes nothing"
    );
    let other = run(&["--sched-seed", "4"]);
    assert_eq!(other["config"]["seed"], 3);
    assert_eq!(other["config"]["sched_seed"], 4);
    assert_ne!(
        counters(&default),
        counters(&other),
        "another schedule on the deterministic engine runs the cycles differently"
    );
    assert_eq!(
        other,
        run(&["--sched-seed", "4"]),
        "a (program, schedule) pair is still reproducible"
    );
    rejects(&[], &["--sched-seed", "x"]);
}

// ---- 5. Defaults resolve as documented. ----

#[test]
fn stack_barriers_default_to_on_at_1024_bytes() {
    let v = report(&[], &[]);
    assert_eq!(v["config"]["stack_barriers"], "on", "{}", v["config"]);
    assert_eq!(v["config"]["first_offset"], 1024, "{}", v["config"]);
}

#[test]
fn stack_barriers_all_reports_all_and_null_first_offset() {
    let v = report(&[("--stack-barriers", "all")], &[]);
    assert_eq!(v["config"]["stack_barriers"], "all", "{}", v["config"]);
    assert!(v["config"]["first_offset"].is_null(), "{}", v["config"]);
}

#[test]
fn hybrid_barrier_resolves_stack_barriers_off() {
    let v = report(&[("--barrier", "hybrid")], &[]);
    assert_eq!(v["config"]["barrier"], "hybrid", "{}", v["config"]);
    assert_eq!(v["config"]["stack_barriers"], "off", "{}", v["config"]);
    assert!(v["config"]["first_offset"].is_null(), "{}", v["config"]);
}

#[test]
fn gcstackbarrierall_knob_resolves_stack_barriers_all() {
    let v = report(&[("--debug", "gcstackbarrierall=1")], &[]);
    assert_eq!(v["config"]["stack_barriers"], "all", "{}", v["config"]);
    assert!(v["config"]["first_offset"].is_null(), "{}", v["config"]);
}

// ---- 6. gctrace. ----

#[test]
fn gctrace_prints_one_stderr_line_per_cycle() {
    let a = args(&[("--debug", "gctrace=1")], &[]);
    let out = run(&a);
    let ctx = describe(&a, None, &out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{ctx}");
    for (i, line) in lines.iter().enumerate() {
        let want = format!("gc {} @", i + 1);
        assert!(line.starts_with(&want), "line {i} {line:?} lacks {want:?}");
    }
}

// ---- 7. Every workload under every barrier with checkmark. ----

#[test]
fn every_workload_under_every_barrier_passes_checkmark() {
    for workload in workloads() {
        for barrier in BARRIERS {
            let v = report(
                &[
                    ("--workload", workload),
                    ("--barrier", barrier),
                    ("--debug", "gccheckmark=1"),
                ],
                &[],
            );
            assert_eq!(
                u(&v["totals"], "checkmark_failures"),
                0,
                "{workload} {barrier}"
            );
            assert_cycle_invariants(&v);
        }
    }
}

// ---- Warm-up cycles. ----

#[test]
fn warmup_cycles_run_first_and_stay_out_of_the_report() {
    let plain = report(&[("--cycles", "3")], &[]);
    let warm = report(&[("--cycles", "2"), ("--warmup-cycles", "1")], &[]);
    assert_eq!(warm["config"]["warmup_cycles"], 1);
    let cycles = warm["cycles"].as_array().expect("cycles");
    assert_eq!(cycles.len(), 2);
    assert_eq!(warm["totals"]["cycles"], 2);
    // The same run: the reported cycles are the plain run's last two, and the totals their sums.
    let plain_cycles = plain["cycles"].as_array().expect("cycles");
    let untimed = |c: &Value| {
        let mut c = c.as_object().expect("a cycle is an object").clone();
        c.retain(|k, _| !k.ends_with("_ns") && !k.contains("_ns_"));
        c
    };
    for (w, p) in cycles.iter().zip(&plain_cycles[1..]) {
        assert_eq!(untimed(w), untimed(p));
    }
    let sum = |key: &str| {
        plain_cycles[1..]
            .iter()
            .map(|c| c[key].as_u64().unwrap())
            .sum::<u64>()
    };
    for key in ["rescan_bytes", "full_rescan_bytes", "barriers_hit"] {
        assert_eq!(warm["totals"][key].as_u64(), Some(sum(key)), "{key}");
    }
}

/// `--stack-scan lazy`: the config says so, every scan is a stop of its first frames, the
/// markers scan the rest above the watermarks, and the stop is far shorter than an eager
/// scan's of the same 400-frame stacks (its longest against the eager median: a ratio, not a
/// time, and a wide margin: the eager scans walk 400 frames, the lazy stops one).
#[test]
fn lazy_stack_scans_report_their_stops_and_their_work() {
    let flags = [
        ("--workload", "deep-oscillate"),
        ("--depth", "400"),
        ("--barrier", "hybrid"),
    ];
    let eager = report(&flags, &[]);
    let mut lazy_flags = flags.to_vec();
    lazy_flags.push(("--stack-scan", "lazy"));
    let lazy = report(&lazy_flags, &[]);
    assert_eq!(lazy["config"]["stack_scan"], "lazy");
    assert_eq!(lazy["config"]["lazy_first_frames"], 1);
    assert_eq!(lazy["config"]["lazy_step_frames"], 64);
    assert_eq!(eager["config"]["stack_scan"], "eager");
    assert!(eager["config"]["lazy_first_frames"].is_null());
    let (e, l) = (&eager["totals"], &lazy["totals"]);
    assert_eq!(u(l, "scan_stalls"), u(l, "stacks_scanned"));
    assert_eq!(u(e, "scan_stalls"), u(e, "stacks_scanned"));
    assert!(u(l, "marker_lazy_frames") > 0, "{l}");
    assert_eq!(
        u(e, "marker_lazy_frames") + u(e, "mutator_scanned_frames"),
        0
    );
    assert!(
        u(l, "scan_stall_ns_max") < u(e, "scan_stall_ns_p50"),
        "lazy stops {} ns at most, eager scans {} ns at the median",
        u(l, "scan_stall_ns_max"),
        u(e, "scan_stall_ns_p50")
    );
}

bad_input! {
    warmup_overflowing_the_cycle_count_is_rejected: ["--cycles" => "4294967295", "--warmup-cycles" => "1"] [];
    negative_warmup_is_rejected: ["--warmup-cycles" => "-1"] [];
}
