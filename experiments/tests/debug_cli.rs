//! The `testbed` binary's debug modes end to end: bad `--debug` knobs (flag and `STKBAR_DEBUG`),
//! `--inject` specs and `--procs-schedule` values exit 2 with one line; an injected missing write
//! barrier is caught by wbshadow (at a store, and at the checkmark walk) with a traceback;
//! clean runs report no violations under every design; `allocfreetrace`; procresize with the
//! sanitizer; the sanitizer's memory with and without free notification; `rescan-skip`; `--help`.
//!
//! Every run is tiny (8 goroutines, depth 50, 3 cycles, a 256 KiB heap minimum) so the whole
//! file stays fast in a debug build. Every run but the threaded ones is deterministic, so the
//! values asserted exactly below are functions of the flags and the seed.

mod common;

use std::process::Output;

use common::{args_over, describe, run, run_with_env, text};
use serde_json::Value;

/// A small configuration every test starts from; `(flag, value)` pairs, no flag twice.
const BASE: &[(&str, &str)] = &[
    ("--workload", "mixed"),
    ("--goroutines", "8"),
    ("--depth", "50"),
    ("--cycles", "3"),
    ("--heap-minimum", "262144"),
];

/// The base arguments with `overrides` replacing same-named flags (or appended), then `extra`
/// appended verbatim.
fn args(overrides: &[(&str, &str)], extra: &[&str]) -> Vec<String> {
    args_over(BASE, overrides, extra)
}

/// Bad knob strings: each must be rejected, as `--debug` and as `STKBAR_DEBUG`.
const BAD_KNOBS: &[&str] = &[
    "nosuch=1",
    "GCTRACE=1",
    "gctrace",
    "gctrace=",
    "gctrace=x",
    "gctrace=-1",
    "gctrace=3",
    "gctrace=1.5",
    "gctrace=99999999999999999999",
    "wbshadow=3",
    "wbshadow=yes",
    "wbshadow=1 2",
    "gccheckmark=2",
    "allocfreetrace=2",
    "invalidptr=on",
    "invalidptr=-0",
    "gcstackbarrieroff=2",
    "gcstackbarrierall=yes",
    "a=1,,b=1",
    "gctrace=1,,gccheckmark=1",
    "gctrace=1,",
    ",gctrace=1",
    ",",
    "=1",
    " = ",
    "gctrace==1",
    "gctrace=1;gccheckmark=1",
    "gcstackbarrieroff=1,gcstackbarrierall=1",
];

/// Asserts a bad-input rejection: exit 2, exactly one stderr line starting `testbed: `, empty
/// stdout, no panic. Returns the line.
fn assert_rejected(args: &[String], env_debug: Option<&str>, out: &Output) -> String {
    let ctx = describe(args, env_debug, out);
    assert_eq!(out.status.code(), Some(2), "{ctx}");
    assert!(out.stdout.is_empty(), "stdout not empty: {ctx}");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {ctx}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want exactly one stderr line: {ctx}");
    assert!(lines[0].starts_with("testbed: "), "{ctx}");
    assert!(lines[0].len() > "testbed: ".len(), "empty message: {ctx}");
    lines[0].to_owned()
}

/// Runs `args` expecting a rejection; returns the one stderr line.
fn rejects(args: &[String]) -> String {
    assert_rejected(args, None, &run(args))
}

/// Runs successfully and returns the parsed `--json` report.
fn report_with_env(args: &[String], env_debug: Option<&str>) -> Value {
    let mut a = args.to_vec();
    a.push("--json".to_owned());
    let out = run_with_env(&a, env_debug);
    let ctx = describe(&a, env_debug, &out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {ctx}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {ctx}"))
}

fn report(args: &[String]) -> Value {
    report_with_env(args, None)
}

fn u(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {row}"))
}

fn cycles(v: &Value) -> &Vec<Value> {
    v["cycles"].as_array().expect("cycles is an array")
}

/// A run a checker stops: exit 3, nothing on stdout, no panic. Returns stderr.
fn violation(args: &[String]) -> String {
    let out = run(args);
    let ctx = describe(args, None, &out);
    assert_eq!(out.status.code(), Some(3), "{ctx}");
    assert!(out.stdout.is_empty(), "stdout not empty: {ctx}");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {ctx}");
    assert!(err.starts_with("testbed: "), "{ctx}");
    err
}

/// `N` in a report's `… after N heap stores`.
fn heap_stores(err: &str) -> u64 {
    let (before, _) = err
        .split_once(" heap stores")
        .unwrap_or_else(|| panic!("no `heap stores` in {err}"));
    let n = before.rsplit(' ').next().unwrap_or_default();
    n.parse()
        .unwrap_or_else(|_| panic!("no store count before `heap stores` in {err}"))
}

// ---- 1. Bad knobs: exit 2, one line naming the valid knobs; flag and environment. ----

#[test]
fn bad_knob_strings_exit_2_with_one_line() {
    assert!(BAD_KNOBS.len() >= 22);
    for bad in BAD_KNOBS {
        let a = args(&[("--debug", bad)], &[]);
        let line = rejects(&a);
        for want in ["valid knobs", "wbshadow", "allocfreetrace"] {
            assert!(
                line.contains(want),
                "--debug {bad:?}: {line:?} lacks {want}"
            );
        }

        // The same string from the environment, no flag.
        let a = args(&[], &[]);
        let out = run_with_env(&a, Some(bad));
        let line = assert_rejected(&a, Some(bad), &out);
        assert!(
            line.contains("valid knobs"),
            "STKBAR_DEBUG={bad:?}: {line:?}"
        );

        // The flag wins over the variable: the bad variable is never parsed.
        let a = args(&[("--debug", "gctrace=0")], &[]);
        let out = run_with_env(&a, Some(bad));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            describe(&a, Some(bad), &out)
        );
    }

    // A good variable is used when there is no flag, and ignored when there is one.
    let v = report_with_env(&args(&[], &[]), Some("gccheckmark=1, wbshadow=2"));
    assert_eq!(
        v["config"]["debug"],
        "gctrace=0,gccheckmark=1,wbshadow=2,stackshadow=0,gcstackbarrieroff=0,gcstackbarrierall=0,\
         allocfreetrace=0,invalidptr=1"
    );
    let v = report_with_env(
        &args(&[("--debug", "gctrace=0")], &[]),
        Some("gccheckmark=1"),
    );
    assert_eq!(
        v["config"]["debug"],
        "gctrace=0,gccheckmark=0,wbshadow=0,stackshadow=0,gcstackbarrieroff=0,gcstackbarrierall=0,\
         allocfreetrace=0,invalidptr=1"
    );
}

// ---- 2. Bad --inject, --procs-schedule, --no-free-notify. ----

#[test]
fn bad_inject_specs_and_procs_schedules_exit_2() {
    for bad in [
        "wb-drop",
        "wb-drop=",
        "wb-drop=x",
        "wb-drop=1.5",
        "wb-drop=-0.1",
        "wb-drop=NaN",
        "wb-drop=inf",
        "wb_drop=0.1",
        "rescan-skip=2",
        "nosuch=0.1",
        "wb-drop=0.1,",
        "wb-drop=0.1,,rescan-skip=0.1",
        ",",
    ] {
        let line = rejects(&args(&[("--inject", bad)], &[]));
        assert!(
            line.contains("--inject")
                && line.contains("wb-drop=F")
                && line.contains("rescan-skip=F"),
            "--inject {bad:?}: {line:?}"
        );
    }
    for bad in [
        "0:2",
        "3:0",
        "3:300",
        "3",
        "3:2,2:4",
        "3:2,3:4",
        "a:b",
        "3:2,,4:1",
        "3:2,",
        "",
        ":",
        "3:-1",
        "3:2:1",
        "4294967296:2",
    ] {
        let line = rejects(&args(&[("--procs-schedule", bad)], &[]));
        assert!(
            line.contains("--procs-schedule"),
            "--procs-schedule {bad:?}: {line:?}"
        );
    }
    let line = rejects(&args(&[], &["--no-free-notify"]));
    assert!(line.contains("--sanitizer"), "{line:?}");
}

// ---- 3. wb-drop caught by wbshadow at a store: the word, the writer's traceback. ----

#[test]
fn wb_drop_is_caught_by_wbshadow_with_the_word_and_a_traceback() {
    let a = args(
        &[("--inject", "wb-drop=0.05"), ("--debug", "wbshadow=1")],
        &[],
    );
    let err = violation(&a);
    let ctx = format!("testbed {}\nstderr:\n{err}", a.join(" "));
    assert!(err.contains("missed write barrier"), "{ctx}");
    assert!(err.contains("object") || err.contains("global"), "{ctx}");
    assert!(err.contains("found at a barriered store"), "{ctx}");
    assert!(err.contains("heap stores"), "{ctx}");
    assert!(
        err.lines().any(|l| l.starts_with("goroutine ")),
        "no traceback header: {ctx}"
    );
    assert!(
        err.lines().any(|l| l.trim_start().starts_with("main.f")),
        "no main.f frame line: {ctx}"
    );
    // Deterministic: the same command reports the same thing, byte for byte.
    assert_eq!(violation(&a), err, "two runs of the same command differ");

    let a2 = args(
        &[
            ("--inject", "wb-drop=0.05"),
            ("--debug", "wbshadow=2,gccheckmark=1"),
        ],
        &[],
    );
    let err2 = violation(&a2);
    assert!(err2.contains("missed write barrier"), "{err2}");
    assert!(err2.contains("heap stores"), "{err2}");
    assert_eq!(violation(&a2), err2, "two runs of the same command differ");
}

// ---- 4. wbshadow=2 at the checkmark walk. ----

/// Found by trying workloads, seeds and fractions at the base size: in this configuration one
/// barrier dropped on a store to global 1 is never followed by another barriered store to that
/// global before the next mark termination, so `wbshadow=2` (which checks every word the
/// checkmark walk scans) reports it there, `wbshadow=1` only at a later barriered store, and
/// checkmark alone finds nothing (the dropped store lost no object). This is the hard-coded
/// configuration, not the seeds-1..=6 fallback.
#[test]
fn wbshadow_2_catches_a_dropped_global_store_at_the_checkmark_walk() {
    let with = |knobs: &'static str| {
        args(
            &[
                ("--workload", "many-shallow"),
                ("--seed", "2"),
                ("--inject", "wb-drop=0.003"),
                ("--debug", knobs),
            ],
            &[],
        )
    };
    let word = "missed write barrier: global 4 at 0x600020 ";

    let err = violation(&with("wbshadow=2,gccheckmark=1"));
    assert!(err.contains(word), "{err}");
    assert!(err.contains("found by the checkmark walk after "), "{err}");
    assert!(
        !err.lines().any(|l| l.starts_with("goroutine ")),
        "the checkmark walk has no writer, so no traceback: {err}"
    );
    // wbshadow=2 runs the walk itself: the same report without gccheckmark.
    assert_eq!(violation(&with("wbshadow=2")), err);

    // wbshadow=1 finds the same word, later, at the next barriered store to it.
    let err1 = violation(&with("wbshadow=1"));
    assert!(err1.contains(word), "{err1}");
    assert!(err1.contains("found at a barriered store after "), "{err1}");
    assert!(
        heap_stores(&err1) > heap_stores(&err),
        "wbshadow=1 at store {} should come after wbshadow=2 at {}",
        heap_stores(&err1),
        heap_stores(&err)
    );

    // Checkmark alone: the dropped barrier hid no reachable object.
    let v = report(&with("gccheckmark=1"));
    assert_eq!(u(&v["totals"], "checkmark_failures"), 0, "{v}");
    assert_eq!(
        v["config"]["inject"],
        "wb-drop=0.003,rescan-skip=0,bound-short=0,hit-lost=0,unwind-skip=0"
    );
}

// ---- 5. Clean runs: no violations under every design. ----

fn assert_clean(v: &Value) {
    let t = &v["totals"];
    let ctx = &v["config"];
    assert_eq!(u(t, "checkmark_failures"), 0, "{ctx}");
    assert_eq!(u(t, "wbshadow_violations"), 0, "{ctx}");
    assert_eq!(u(t, "wb_dropped"), 0, "{ctx}");
    assert!(u(t, "shadow_bytes") > 0, "{ctx}");
    assert_eq!(u(t, "cycles"), 3, "{ctx}");
    assert_eq!(
        ctx["inject"],
        "wb-drop=0,rescan-skip=0,bound-short=0,hit-lost=0,unwind-skip=0"
    );
    for row in cycles(v) {
        assert!(u(row, "shadow_bytes") > 0, "{row}\n{ctx}");
    }
}

#[test]
fn clean_runs_report_no_violations_across_designs_and_seeds() {
    // `(barrier, --stack-barriers)`: hybrid and yuasa never re-scan stacks, so they take no
    // stack-barrier flag but `off`.
    let designs: &[(&str, Option<&str>)] = &[
        ("dijkstra", Some("on")),
        ("dijkstra", Some("off")),
        ("dijkstra", Some("all")),
        ("hybrid", None),
        ("hybrid", Some("off")),
        ("yuasa", None),
        ("yuasa", Some("off")),
    ];
    for workload in ["mixed", "sync-leak"] {
        for &(barrier, sb) in designs {
            for seed in ["1", "2", "3"] {
                let mut o = vec![
                    ("--workload", workload),
                    ("--barrier", barrier),
                    ("--seed", seed),
                    ("--debug", "wbshadow=2,gccheckmark=1"),
                ];
                if let Some(sb) = sb {
                    o.push(("--stack-barriers", sb));
                }
                let v = report(&args(&o, &[]));
                assert_clean(&v);
                assert_eq!(v["config"]["barrier"], barrier);
                assert_eq!(v["config"]["stack_barriers"], sb.unwrap_or("off"));
            }
        }
    }
    // One threaded run: real threads, same checkers.
    let v = report(&args(
        &[
            ("--engine", "threaded"),
            ("--procs", "2"),
            ("--debug", "wbshadow=2,gccheckmark=1"),
        ],
        &[],
    ));
    assert_eq!(v["config"]["engine"], "threaded");
    assert_clean(&v);
}

// ---- 6. allocfreetrace. ----

#[test]
fn allocfreetrace_prints_a_line_per_alloc_and_free() {
    let a = args(&[("--debug", "allocfreetrace=1")], &[]);
    let out = run(&a);
    let ctx = || describe(&a, None, &out);
    assert_eq!(out.status.code(), Some(0), "{}", ctx());
    assert!(!out.stdout.is_empty(), "the summary is on stdout");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{}", ctx());
    let allocs: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("tracealloc(0x"))
        .collect();
    let frees: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("tracefree(0x"))
        .collect();
    assert!(!allocs.is_empty(), "no tracealloc lines");
    assert!(!frees.is_empty(), "no tracefree lines");
    assert_eq!(
        allocs.len() + frees.len(),
        err.lines().count(),
        "every stderr line is a tracealloc or tracefree line"
    );
    for l in &allocs {
        assert!(l.contains(" goroutine "), "{l}");
        assert!(l.contains(", main."), "no type name: {l}");
    }
    assert!(allocs.iter().any(|l| l.contains("main.node")));

    // Every free is of a live allocation of the same size; no allocation overlaps a live one's
    // base. Lines look like `tracealloc(0xADDR, 0xSIZE, TYPE) …` and `tracefree(0xADDR, 0xSIZE) …`.
    let addr_size = |l: &str| -> (String, String) {
        let inner = l.split_once('(').and_then(|(_, r)| r.split_once(')'));
        let (inner, _) = inner.unwrap_or_else(|| panic!("malformed: {l}"));
        let mut parts = inner.split(", ");
        let addr = parts.next().unwrap_or_default().to_owned();
        let size = parts.next().unwrap_or_default().to_owned();
        (addr, size)
    };
    let mut live = std::collections::HashMap::new();
    for l in err.lines() {
        let (addr, size) = addr_size(l);
        if l.starts_with("tracealloc(") {
            assert!(
                live.insert(addr, size).is_none(),
                "allocated over a live object: {l}"
            );
        } else {
            assert_eq!(
                live.remove(&addr).as_ref(),
                Some(&size),
                "freed what was not allocated at that size: {l}"
            );
        }
    }
}

// ---- 7. procresize with the sanitizer. ----

#[test]
fn procresize_up_and_down_keeps_every_context_accounted_for() {
    for engine in ["deterministic", "threaded"] {
        let v = report(&args(
            &[
                ("--workload", "sync-leak"),
                ("--engine", engine),
                ("--procs", "2"),
                ("--procs-schedule", "2:5,3:1,4:3"),
                ("--cycles", "5"),
            ],
            &["--sanitizer"],
        ));
        let ctx = &v["config"];
        assert_eq!(ctx["procs_schedule"], "2:5,3:1,4:3", "{engine}");
        assert_eq!(ctx["sanitizer"], "free-notify", "{engine}");
        assert_eq!(ctx["procs"], 2, "{engine}");
        let rows = cycles(&v);
        let procs: Vec<u64> = rows.iter().map(|r| u(r, "procs")).collect();
        assert_eq!(procs, [2, 5, 1, 3, 3], "{engine}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(u(row, "cycle"), i as u64 + 1, "{engine}: {row}");
            assert_eq!(
                u(row, "sanitizer_contexts"),
                u(row, "procs"),
                "{engine}: {row}"
            );
            assert!(u(row, "sanitizer_bytes") > 0, "{engine}: {row}");
        }
    }
}

// ---- 8. Free notification keeps the sanitizer's memory flat. ----

/// Measured (deterministic, 8 goroutines, 4 Ps, 8 cycles): with free notification the
/// sanitizer holds 114288 bytes from cycle 2 on; without, 214144 at cycle 3 growing to 460160
/// at cycle 8 (2.15x); 487 live objects every cycle in both modes.
#[test]
fn free_notification_keeps_sanitizer_memory_flat() {
    let run_mode = |extra: &[&str]| {
        let mut flags = vec!["--sanitizer"];
        flags.extend_from_slice(extra);
        let v = report(&args(
            &[("--workload", "sync-leak"), ("--cycles", "8")],
            &flags,
        ));
        assert_eq!(cycles(&v).len(), 8);
        v
    };
    let notify = run_mode(&[]);
    let leak = run_mode(&["--no-free-notify"]);
    assert_eq!(notify["config"]["sanitizer"], "free-notify");
    assert_eq!(leak["config"]["sanitizer"], "no-free-notify");
    let at = |v: &Value, i: usize, key: &str| u(&cycles(v)[i], key) as f64;

    // Nothing has been swept before the first cycle: both modes start the same.
    assert_eq!(
        at(&notify, 0, "sanitizer_bytes"),
        at(&leak, 0, "sanitizer_bytes")
    );
    let (n3, n8) = (
        at(&notify, 2, "sanitizer_bytes"),
        at(&notify, 7, "sanitizer_bytes"),
    );
    assert!(
        (n8 - n3).abs() <= 0.1 * n3,
        "free-notify: cycle 8 {n8} not within 10 % of cycle 3 {n3}"
    );
    let (l3, l8) = (
        at(&leak, 2, "sanitizer_bytes"),
        at(&leak, 7, "sanitizer_bytes"),
    );
    assert!(
        l8 > 1.5 * l3,
        "no-free-notify: cycle 8 {l8} not above 1.5x cycle 3 {l3}"
    );
    let (nl, ll) = (at(&notify, 7, "live_objects"), at(&leak, 7, "live_objects"));
    assert!(nl > 0.0, "live objects are counted with the sanitizer on");
    assert!(
        (nl - ll).abs() < 0.1 * nl.max(ll),
        "live objects differ: free-notify {nl}, no-free-notify {ll}"
    );
}

// ---- 9. rescan-skip. ----

#[test]
fn rescan_skip_runs_and_is_reported_in_the_config() {
    let a = args(
        &[
            ("--inject", "rescan-skip=0.5"),
            ("--debug", "gccheckmark=1"),
        ],
        &["--json"],
    );
    let out = run(&a);
    let ctx = describe(&a, None, &out);
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{ctx}");
    match out.status.code() {
        // Today this configuration exits 0: the skipped frames hide no object checkmark finds.
        Some(0) => {
            let v: Value = serde_json::from_str(text(&out.stdout).trim())
                .unwrap_or_else(|e| panic!("bad JSON ({e}): {ctx}"));
            assert_eq!(
                v["config"]["inject"],
                "wb-drop=0,rescan-skip=0.5,bound-short=0,hit-lost=0,unwind-skip=0",
                "{ctx}"
            );
            assert_eq!(u(&v["totals"], "checkmark_failures"), 0, "{ctx}");
            // What checkmark cannot see, the records count: the re-scans skipped changed frames.
            assert!(u(&v["totals"], "skipped_frames_changed") > 0, "{ctx}");
        }
        Some(3) => assert!(err.contains("checkmark"), "{ctx}"),
        _ => panic!("want exit 0 or 3: {ctx}"),
    }
}

// ---- 10. --help. ----

#[test]
fn help_documents_every_knob_and_fault() {
    let a = vec!["--help".to_owned()];
    let out = run(&a);
    let ctx = describe(&a, None, &out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let help = text(&out.stdout);
    for word in [
        "gctrace",
        "gccheckmark",
        "wbshadow",
        "gcstackbarrieroff",
        "gcstackbarrierall",
        "allocfreetrace",
        "invalidptr",
        "wb-drop",
        "rescan-skip",
        "STKBAR_DEBUG",
        "procs-schedule",
        "sanitizer",
        "no-free-notify",
        "--inject",
    ] {
        assert!(help.contains(word), "help lacks {word}: {ctx}");
    }
}
