//! What the command-line tests share: every binary's path, argument lists built from a base,
//! running `testbed` (with `STKBAR_DEBUG` under the test's control), and describing a run for
//! assertion messages.

use std::process::{Command, Output};

/// `base` with `overrides` replacing same-named flags (or appended), then `extra` appended
/// verbatim.
pub(crate) fn args_over(
    base: &[(&str, &str)],
    overrides: &[(&str, &str)],
    extra: &[&str],
) -> Vec<String> {
    let mut pairs: Vec<(&str, &str)> = base.to_vec();
    for &(flag, value) in overrides {
        match pairs.iter_mut().find(|(f, _)| *f == flag) {
            Some(p) => p.1 = value,
            None => pairs.push((flag, value)),
        }
    }
    let mut v: Vec<String> = pairs
        .iter()
        .flat_map(|&(f, val)| [f.to_owned(), val.to_owned()])
        .collect();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// Every experiment binary.
#[allow(dead_code)] // not every test file lists the experiments
pub(crate) const EXPERIMENTS: [&str; 11] = [
    "rescan_offsets",
    "depth_sweep",
    "goroutine_sweep",
    "barrier_designs",
    "scan_stall",
    "sensitivity",
    "sanitizer_leak",
    "wbshadow_faults",
    "soundness",
    "profiler_switch",
    "trace_overhead",
];

/// The path of the package's binary `name` (Cargo builds every one for the integration tests).
pub(crate) fn bin_path(name: &str) -> &'static str {
    match name {
        "testbed" => env!("CARGO_BIN_EXE_testbed"),
        "rescan_offsets" => env!("CARGO_BIN_EXE_rescan_offsets"),
        "depth_sweep" => env!("CARGO_BIN_EXE_depth_sweep"),
        "goroutine_sweep" => env!("CARGO_BIN_EXE_goroutine_sweep"),
        "barrier_designs" => env!("CARGO_BIN_EXE_barrier_designs"),
        "scan_stall" => env!("CARGO_BIN_EXE_scan_stall"),
        "sensitivity" => env!("CARGO_BIN_EXE_sensitivity"),
        "sanitizer_leak" => env!("CARGO_BIN_EXE_sanitizer_leak"),
        "wbshadow_faults" => env!("CARGO_BIN_EXE_wbshadow_faults"),
        "soundness" => env!("CARGO_BIN_EXE_soundness"),
        "profiler_switch" => env!("CARGO_BIN_EXE_profiler_switch"),
        "trace_overhead" => env!("CARGO_BIN_EXE_trace_overhead"),
        "merge" => env!("CARGO_BIN_EXE_merge"),
        "paper_tables" => env!("CARGO_BIN_EXE_paper_tables"),
        "plot" => env!("CARGO_BIN_EXE_plot"),
        other => panic!("no binary {other}"),
    }
}

/// Runs `testbed` with `args`, `STKBAR_DEBUG` removed unless `env_debug` sets it.
pub(crate) fn run_with_env(args: &[String], env_debug: Option<&str>) -> Output {
    let mut cmd = Command::new(bin_path("testbed"));
    cmd.args(args).env_remove("STKBAR_DEBUG");
    if let Some(d) = env_debug {
        cmd.env("STKBAR_DEBUG", d);
    }
    cmd.output().expect("testbed runs")
}

/// Runs `testbed` with `args` and no `STKBAR_DEBUG`.
pub(crate) fn run(args: &[String]) -> Output {
    run_with_env(args, None)
}

/// Output bytes as text.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The command, its status and both streams, for an assertion message.
pub(crate) fn describe(args: &[String], env_debug: Option<&str>, out: &Output) -> String {
    let env = env_debug.map_or(String::new(), |d| format!("STKBAR_DEBUG={d:?} "));
    format!(
        "{env}testbed {}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}
