//! `sanitizer_leak`: Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free notification at sweep (seed 004), under a procs schedule that grows and shrinks the P count.
//! Writes `OUT/sanitizer_leak.csv` and `.json` (ARCHITECTURE.md §7: mode, step, live_objects, sanitizer_bytes, …); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::debug_modes;
use experiments::suite::{self, SuiteArgs};

/// Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free notification at sweep (seed 004), under a procs schedule that grows and shrinks the P count.
#[derive(Parser, Debug)]
#[command(
    name = "sanitizer_leak",
    version,
    about = "Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free notification at sweep (seed 004), under a procs schedule that grows and shrinks the P count.",
    after_help = "Examples:\n  sanitizer_leak --quick\n  sanitizer_leak --full --seeds 3 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("sanitizer_leak", |a| debug_modes::sanitizer_leak(&a.suite))
}
