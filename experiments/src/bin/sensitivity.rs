//! `sensitivity`: the pauses of full re-scan, stack barriers and the hybrid barrier (eager and lazy) as GOMAXPROCS, GOGC, the heap minimum and the collector's CPU share each move away from a base, on real threads.
//! Writes `OUT/sensitivity.csv`, `OUT/sensitivity_cycles.csv`, `OUT/sensitivity_pauses.csv` and the JSON of the first and last (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::SensitivityArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::SensitivityArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<SensitivityArgs>()
}
