//! `scan_stall`: How long the scan of a goroutine's own stack keeps it from running — full re-scan, stack barriers, the hybrid barrier, and the hybrid barrier with lazy stack scans behind a watermark — against stack depth and goroutine count, on real threads.
//! Writes `OUT/scan_stall.csv` and `OUT/scan_stall.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::sweeps;

/// How long the scan of a goroutine's own stack keeps it from running — full re-scan, stack barriers, the hybrid barrier, and the hybrid barrier with lazy stack scans behind a watermark — against stack depth and goroutine count, on real threads.
#[derive(Parser, Debug)]
#[command(
    name = "scan_stall",
    version,
    about = "How long the scan of a goroutine's own stack keeps it from running — full re-scan, stack barriers, the hybrid barrier, and the hybrid barrier with lazy stack scans behind a watermark — against stack depth and goroutine count, on real threads.",
    after_help = "Examples:\n  scan_stall --quick\n  scan_stall --full --seed 7 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("scan_stall", |a| sweeps::scan_stall(&a.suite))
}
