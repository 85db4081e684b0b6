//! `depth_sweep`: Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow from 10 to 10,000 frames.
//! Writes `OUT/depth_sweep.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::sweeps;

/// Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow from 10 to 10,000 frames.
#[derive(Parser, Debug)]
#[command(
    name = "depth_sweep",
    version,
    about = "Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow from 10 to 10,000 frames.",
    after_help = "Examples:\n  depth_sweep --quick\n  depth_sweep --full --seed 7 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("depth_sweep", |a| sweeps::depth_sweep(&a.suite))
}
