//! `barrier_designs`: Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack barriers, the hybrid barrier and Yuasa, on real threads.
//! Writes `OUT/barrier_designs.csv`, `OUT/barrier_designs_mmu.csv` and their `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::sweeps;

/// Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack barriers, the hybrid barrier and Yuasa, on real threads.
#[derive(Parser, Debug)]
#[command(
    name = "barrier_designs",
    version,
    about = "Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack barriers, the hybrid barrier and Yuasa, on real threads.",
    after_help = "Examples:\n  barrier_designs --quick\n  barrier_designs --full --seed 7 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("barrier_designs", |a| sweeps::barrier_designs(&a.suite))
}
