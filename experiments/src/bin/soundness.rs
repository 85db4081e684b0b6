//! `soundness`: the mutation table (injected faults × checkers × workloads: where each fault took
//! effect, which checker caught it, which runs lost an object) and the checkmark and stackshadow
//! campaign over many seeds, every design and both engines.
//! Writes `OUT/soundness.csv`, `OUT/soundness_runs.csv`, `OUT/soundness_campaign.csv` and their
//! `.json`; exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::SoundnessArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::SoundnessArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<SoundnessArgs>()
}
