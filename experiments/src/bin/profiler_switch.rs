//! `profiler_switch`: the sampling profiler (seed 003) at a high rate across goroutine switches
//! and stack-barrier operations, every unwound traceback validated against the true frames.
//! Writes `OUT/profiler_switch.csv`, `.json` and `OUT/profiler_switch_<workload>.folded`; with
//! `--json` prints ARCHITECTURE.md §7's `{"config": …, "totals": …}`. Exit codes as ARCHITECTURE.md §7: 3 when a
//! sample is malformed with the checks on.
//! Its flags are `experiments::profiler_switch::ProfilerArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::profiler_switch::ProfilerArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<ProfilerArgs>()
}
