//! `wbshadow_faults`: Detection rate and delay of injected missing write barriers (--inject wb-drop=F) for wbshadow=1, wbshadow=2 with checkmark, and checkmark alone (seed 000), and each mode's overhead.
//! Writes `OUT/wbshadow_faults.csv`, `OUT/wbshadow_faults_runs.csv`, `OUT/wbshadow_overhead.csv` and their `.json`; exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::debug_modes;
use experiments::suite::{self, SuiteArgs};

/// Detection rate and delay of injected missing write barriers (--inject wb-drop=F) for wbshadow=1, wbshadow=2 with checkmark, and checkmark alone (seed 000), and each mode's overhead.
#[derive(Parser, Debug)]
#[command(
    name = "wbshadow_faults",
    version,
    about = "Detection rate and delay of injected missing write barriers (--inject wb-drop=F) for wbshadow=1, wbshadow=2 with checkmark, and checkmark alone (seed 000), and each mode's overhead.",
    after_help = "Examples:\n  wbshadow_faults --quick\n  wbshadow_faults --full --seeds 64 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("wbshadow_faults", |a| {
        debug_modes::wbshadow_faults(&a.suite)
    })
}
