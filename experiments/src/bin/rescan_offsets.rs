//! `rescan_offsets`: Re-scan avoided at every stack-barrier offset (every frame, 256 … 8192 bytes, off) on every workload, with exact counters from the deterministic engine.
//! Writes `OUT/rescan_offsets.csv` and `.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::RescanOffsetsArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::RescanOffsetsArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<RescanOffsetsArgs>()
}
