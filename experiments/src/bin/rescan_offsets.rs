//! `rescan_offsets`: Re-scan avoided at every stack-barrier offset (every frame, 256 … 8192 bytes, off) on every workload, with exact counters from the deterministic engine.
//! Writes `OUT/rescan_offsets.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::sweeps;

/// Re-scan avoided at every stack-barrier offset (every frame, 256 … 8192 bytes, off) on every workload, with exact counters from the deterministic engine.
#[derive(Parser, Debug)]
#[command(
    name = "rescan_offsets",
    version,
    about = "Re-scan avoided at every stack-barrier offset (every frame, 256 … 8192 bytes, off) on every workload, with exact counters from the deterministic engine.",
    after_help = "Examples:\n  rescan_offsets --quick\n  rescan_offsets --full --seed 7 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("rescan_offsets", |a| sweeps::rescan_offsets(&a.suite))
}
