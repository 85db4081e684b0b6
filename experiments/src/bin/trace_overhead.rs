//! `trace_overhead`: the cost of execution tracing (seed 001), Chrome JSON export included: each
//! workload on both engines with tracing off and on, median wall times, events and trace bytes.
//! Writes `OUT/trace_overhead.csv` and `OUT/trace_overhead.json`; exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::suite::{self, SuiteArgs};
use experiments::trace_overhead::{self, Options};

/// The cost of execution tracing, Chrome JSON export included: each workload on both engines
/// with tracing off and on.
#[derive(Parser, Debug)]
#[command(
    name = "trace_overhead",
    version,
    about = "The cost of execution tracing (seed 001), Chrome JSON export included: mixed, many-shallow, switch-heavy and deep-oscillate (stack barriers on every frame) on the deterministic and threaded engines, with tracing off and on; median wall times, events, trace bytes.",
    after_help = "Runs go one at a time, alternating off and on; --jobs is not used. Every run has a 1 MiB heap minimum unless --heap-minimum says otherwise; one seed unless --seeds is given.\n\nExamples:\n  trace_overhead --quick\n  trace_overhead --full --reps 11 --out /tmp/results\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
    /// Runs per side (off, on) of each configuration; the row reports the median [default: 3
    /// with --quick, 7 with --full].
    #[arg(long)]
    reps: Option<usize>,
}

fn main() -> ExitCode {
    suite::main::<Args>("trace_overhead", |a| {
        trace_overhead::trace_overhead(&a.suite, Options { reps: a.reps })
    })
}
