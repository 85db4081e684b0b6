//! `profiler_switch` end to end: `--quick --json` draws at least 10^5 samples under each of Go
//! 1.7's and seed 003's rules, none malformed, some inside switches and some inside barrier
//! operations — unwound under `go1.7`, refused under `seed003` — and writes its CSV
//! (ARCHITECTURE.md §7's columns), JSON and folded profile; with `--profile-rules none` the totals
//! show malformed tracebacks and it still exits 0; bad flags exit 2 with one line.

// Only `text` is used here: the rest of the shared module runs `testbed`.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::text;
use serde_json::Value;

/// The CSV's columns, in order (the README's, then the extra counters).
const COLUMNS: [&str; 37] = [
    "workload",
    "engine",
    "procs",
    "goroutines",
    "depth",
    "stack_barriers",
    "seed",
    "sched_seed",
    "rules",
    "period_or_interval",
    "cycles",
    "samples",
    "user_samples",
    "g0_samples",
    "system_samples",
    "samples_mid_switch",
    "samples_mid_barrier",
    "samples_mid_copystack",
    "samples_on_g0",
    "malformed",
    "malformed_mid_switch",
    "malformed_mid_barrier",
    "validated",
    "refused_g0",
    "refused_sp",
    "refused_sets_sp",
    "refused_stack_barrier_pc",
    "refused_stkbar_lock",
    "signals_sent",
    "wall_ms",
    "unwound_mid_switch",
    "unwound_mid_barrier",
    "sample_target",
    "mutator_ops",
    "barriers_installed",
    "barriers_hit",
    "barriers_removed",
];

fn profiler_switch(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profiler_switch"))
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .output()
        .expect("profiler_switch runs")
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "profiler_switch {}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Runs `args`, expects exit 0 and ARCHITECTURE.md §7's JSON on stdout; returns its `totals`.
fn run_json(args: &[&str], out: &Path) -> Value {
    let run = profiler_switch(args, out);
    assert_eq!(run.status.code(), Some(0), "{}", describe(args, &run));
    let json: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            describe(args, &run)
        )
    });
    let keys: Vec<&String> = json.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["config", "totals"], "ARCHITECTURE.md §7's two keys");
    json["totals"].clone()
}

fn count(totals: &Value, name: &str) -> u64 {
    totals[name]
        .as_u64()
        .unwrap_or_else(|| panic!("totals has no count {name}: {totals}"))
}

#[test]
fn quick_draws_10e5_samples_per_rule_set_with_none_malformed_and_writes_its_results() {
    let out = tempfile::tempdir().expect("temp dir");
    let totals = run_json(&["--quick", "--json"], out.path());
    let keys: Vec<&String> = totals.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys,
        ["go1.7", "none", "seed003"],
        "totals per rule set (keys sorted)"
    );
    for rules in ["go1.7", "seed003"] {
        let t = &totals[rules];
        assert_eq!(count(t, "malformed"), 0, "{rules}: {t}");
        assert!(count(t, "samples") >= 100_000, "{rules}: {t}");
        assert!(count(t, "samples_mid_switch") > 0, "{rules}: {t}");
        assert!(count(t, "samples_mid_barrier") > 0, "{rules}: {t}");
        assert_eq!(
            count(t, "user_samples") + count(t, "g0_samples") + count(t, "system_samples"),
            count(t, "samples")
        );
        assert_eq!(
            count(t, "validated"),
            count(t, "user_samples") + count(t, "g0_samples"),
            "{t}"
        );
        assert_eq!(count(t, "unwound_mid_switch"), 0, "{t}");
    }
    // Go 1.7 unwinds mid-hit samples and traces g0; seed 003 refuses both.
    let (go17, seed003) = (&totals["go1.7"], &totals["seed003"]);
    assert!(count(go17, "unwound_mid_barrier") > 0, "{go17}");
    assert!(count(go17, "g0_samples") > 0, "{go17}");
    assert_eq!(
        count(go17, "refused_g0") + count(go17, "refused_stack_barrier_pc"),
        0
    );
    assert_eq!(
        count(seed003, "unwound_mid_barrier") + count(seed003, "g0_samples"),
        0
    );
    assert!(count(seed003, "refused_g0") > 0 && count(seed003, "refused_stack_barrier_pc") > 0);
    assert!(
        go17["system_share"].as_f64() < seed003["system_share"].as_f64(),
        "{go17} {seed003}"
    );
    assert!(
        count(&totals["none"], "malformed") > 0,
        "{}",
        totals["none"]
    );

    let csv_path = out.path().join("profiler_switch.csv");
    let mut reader = csv::Reader::from_path(&csv_path).expect("the CSV");
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // Four workloads × two engines × three rule sets.
    assert_eq!(rows.len(), 24);
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).expect("column");
    for row in &rows {
        if &row[col("rules")] != "none" {
            assert_eq!(&row[col("malformed")], "0", "{row:?}");
        }
        assert!(row[col("samples")].parse::<u64>().unwrap() > 0, "{row:?}");
    }

    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("profiler_switch.json")).expect("the JSON file"),
    )
    .expect("JSON");
    assert_eq!(file["totals"], totals);
    assert_eq!(
        file["config"]["rules"],
        serde_json::json!(["go1.7", "seed003", "none"])
    );
    assert_eq!(file["rows"].as_array().map(Vec::len), Some(24));

    let mut folded: Vec<String> = std::fs::read_dir(out.path())
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".folded"))
        .collect();
    folded.sort();
    assert_eq!(folded, ["profiler_switch_switch-heavy.folded"]);
    let switch = std::fs::read_to_string(out.path().join(&folded[0])).expect("folded");
    let total: u64 = switch
        .lines()
        .map(|l| {
            l.rsplit_once(' ')
                .expect("`stack count`")
                .1
                .parse::<u64>()
                .expect("a count")
        })
        .sum();
    assert!(total >= 25_000, "{total}");
    assert!(
        switch
            .lines()
            .any(|l| l.starts_with("runtime._System;runtime.gogo "))
    );
    assert!(
        switch
            .lines()
            .any(|l| l.starts_with("runtime.mcall;runtime.gosched_m;runtime.schedule ")),
        "the go1.7 run's scheduler samples are g0 tracebacks"
    );
    assert!(!switch.contains("runtime._Malformed"));
}

#[test]
fn without_checks_the_totals_show_malformed_tracebacks_and_exit_0() {
    let out = tempfile::tempdir().expect("temp dir");
    let totals = run_json(
        &[
            "--quick",
            "--json",
            "--profile-rules",
            "none",
            "--samples",
            "40000",
        ],
        out.path(),
    );
    let t = &totals["none"];
    assert!(count(t, "malformed") > 0, "{t}");
    assert!(count(t, "malformed_mid_switch") > 0, "{t}");
    assert!(count(t, "samples") >= 40_000, "{t}");
    assert_eq!(totals.as_object().map(|o| o.len()), Some(1), "{totals}");
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("profiler_switch.json")).expect("the JSON file"),
    )
    .expect("JSON");
    assert_eq!(file["config"]["rules"], serde_json::json!(["none"]));
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let out = tempfile::tempdir().expect("temp dir");
    for args in [
        &["--bogus"][..],
        &["--quick", "--full"],
        &["--quick", "--samples", "0"],
        &["--quick", "--samples", "many"],
        &["--quick", "--scale", "0"],
        &["--quick", "--seeds", "0"],
        &["--quick", "--jobs", "0"],
        &["--quick", "--profile-rules", "go1.5"],
        &["--quick", "--profile-rules", "go1.7,"],
    ] {
        let run = profiler_switch(args, out.path());
        assert_eq!(run.status.code(), Some(2), "{}", describe(args, &run));
        let err = text(&run.stderr);
        assert_eq!(err.lines().count(), 1, "{}", describe(args, &run));
        assert!(err.starts_with("profiler_switch: "), "{err}");
        assert!(run.stdout.is_empty(), "{}", describe(args, &run));
    }
    assert_eq!(
        std::fs::read_dir(out.path()).expect("out").count(),
        0,
        "bad input writes nothing"
    );
}

#[test]
fn help_has_an_example_and_hides_the_test_override() {
    let run = Command::new(env!("CARGO_BIN_EXE_profiler_switch"))
        .arg("--help")
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(0));
    let help = text(&run.stdout);
    assert!(help.contains("profiler_switch --quick"), "{help}");
    assert!(help.contains("--profile-rules none"), "{help}");
    assert!(!help.contains("--samples"), "{help}");
}
