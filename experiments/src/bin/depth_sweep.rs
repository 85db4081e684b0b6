//! `depth_sweep`: Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow from 10 to 10,000 frames.
//! Writes `OUT/depth_sweep.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::DepthSweepArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::DepthSweepArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<DepthSweepArgs>()
}
