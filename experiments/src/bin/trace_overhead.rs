//! `trace_overhead`: the cost of execution tracing (seed 001), Chrome JSON export included: each
//! workload on both engines with tracing off and on, median wall times, events and trace bytes.
//! Writes `OUT/trace_overhead.csv` and `OUT/trace_overhead.json`; exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::TraceOverheadArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::TraceOverheadArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<TraceOverheadArgs>()
}
