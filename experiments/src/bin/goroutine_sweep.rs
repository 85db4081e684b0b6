//! `goroutine_sweep`: Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine count grows.
//! Writes `OUT/goroutine_sweep.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::sweeps;

/// Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine count grows.
#[derive(Parser, Debug)]
#[command(
    name = "goroutine_sweep",
    version,
    about = "Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine count grows.",
    after_help = "Examples:\n  goroutine_sweep --quick\n  goroutine_sweep --full --seed 7 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("goroutine_sweep", |a| sweeps::goroutine_sweep(&a.suite))
}
