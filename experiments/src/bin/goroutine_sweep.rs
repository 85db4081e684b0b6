//! `goroutine_sweep`: Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine count grows.
//! Writes `OUT/goroutine_sweep.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::GoroutineSweepArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::GoroutineSweepArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<GoroutineSweepArgs>()
}
