//! `sanitizer_leak`: Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free notification at sweep (seed 004), under a procs schedule that grows and shrinks the P count.
//! Writes `OUT/sanitizer_leak.csv` and `.json` (ARCHITECTURE.md §7: mode, step, live_objects, sanitizer_bytes, …); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::SanitizerLeakArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::SanitizerLeakArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<SanitizerLeakArgs>()
}
