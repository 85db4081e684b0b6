//! `wbshadow_faults`: Detection rate and delay of injected missing write barriers (--inject wb-drop=F) for wbshadow=1, wbshadow=2 with checkmark, and checkmark alone (seed 000), and each mode's overhead.
//! Writes `OUT/wbshadow_faults.csv`, `OUT/wbshadow_faults_runs.csv`, `OUT/wbshadow_overhead.csv` and their `.json`; exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::WbshadowFaultsArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::WbshadowFaultsArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<WbshadowFaultsArgs>()
}
