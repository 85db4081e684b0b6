//! `barrier_designs`: Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack barriers, the hybrid barrier and Yuasa, on real threads.
//! Writes `OUT/barrier_designs.csv`, `OUT/barrier_designs_mmu.csv` and their `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::BarrierDesignsArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::BarrierDesignsArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<BarrierDesignsArgs>()
}
