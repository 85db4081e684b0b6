//! `soundness`: the mutation table (injected faults × checkers × workloads: where each fault took
//! effect, which checker caught it, which runs lost an object) and the checkmark and stackshadow
//! campaign over many seeds, every design and both engines.
//! Writes `OUT/soundness.csv`, `OUT/soundness_runs.csv`, `OUT/soundness_campaign.csv` and their
//! `.json`; exit codes as ARCHITECTURE.md §7.

use std::process::ExitCode;

use clap::Parser;
use experiments::soundness;
use experiments::suite::{self, SuiteArgs};

/// The mutation table and the soundness campaign.
#[derive(Parser, Debug)]
#[command(
    name = "soundness",
    version,
    about = "The collector's soundness evidence: injected faults (wb-drop, rescan-skip, bound-short, hit-lost, unwind-skip) against each checker (checkmark, wbshadow=2, stackshadow=1, both) on four workloads, and a checkmark and stackshadow campaign over many seeds, every design and both engines.",
    after_help = "Examples:\n  soundness --quick\n  soundness --full --out /tmp/results\n\n\
--seeds N sets the seeds of every part (default: 2 per table cell, 30 deterministic and 4 threaded\n\
campaign seeds with --quick; 16, 1000 and 100 with --full); --scale sizes the workloads; --cycles\n\
sets a fault run's cycles (default 6); --procs the threaded campaign's Ps (default 2).\n\n\
Exit codes: 0 success, 2 bad input, 3 stackshadow missed a run where a re-scan fault took effect,\n\
wbshadow=2 missed a run that lost an object, or a campaign run found a violation, 1 a run could\n\
not complete."
)]
struct Args {
    #[command(flatten)]
    suite: SuiteArgs,
}

fn main() -> ExitCode {
    suite::main::<Args>("soundness", |a| soundness::soundness(&a.suite))
}
