//! Every experiment binary by name: its command line (a clap struct) and the function it runs.
//!
//! Invariant: an experiment binary (`src/bin/NAME.rs`, one call to [`crate::suite::main`]) and
//! the `merge` binary run an experiment through the same entry here — the same clap struct parses
//! the flags, the same function runs — so the files `merge` writes from shard files are the files
//! the binary writes, and a flag added to an experiment reaches both at once.
//!
//! The algorithm. [`EXPERIMENTS`] lists each experiment's name with its re-run entry,
//! `rerun::<A>`: parse the arguments a shard file recorded with `A`, put `--out` and the merge
//! session (whose run lists answer from the shards) into its [`SuiteArgs`], run `A::run`, and
//! check that the experiment made every call the shards hold.

use std::path::Path;

use clap::Parser;

use crate::profiler_switch::{self, ProfilerArgs};
use crate::shard::{Session, ShardSet};
use crate::suite::{SuiteArgs, SuiteError};
use crate::trace_overhead::{self, Options};
use crate::{cli, debug_modes, provenance, soundness, sweeps};

/// An experiment binary's flags: they hold the suite's, and say what to run.
pub trait ExperimentArgs: Parser {
    /// The binary's name, which is also the experiment's (shard files carry it).
    const NAME: &'static str;

    /// The suite's flags.
    fn suite(&self) -> &SuiteArgs;

    /// The suite's flags, to set `--out` and the session.
    fn suite_mut(&mut self) -> &mut SuiteArgs;

    /// Runs the experiment: its summary, or why it stopped.
    fn run(&self) -> Result<String, SuiteError>;
}

/// An experiment whose only flags are the suite's: `$args` runs `$run(&suite)`.
macro_rules! suite_experiment {
    ($(#[$attr:meta])* $args:ident, $name:literal, $run:path) => {
        #[derive(Parser, Debug)]
        $(#[$attr])*
        pub struct $args {
            /// The flags every experiment takes.
            #[command(flatten)]
            pub suite: SuiteArgs,
        }

        impl ExperimentArgs for $args {
            const NAME: &'static str = $name;

            fn suite(&self) -> &SuiteArgs {
                &self.suite
            }

            fn suite_mut(&mut self) -> &mut SuiteArgs {
                &mut self.suite
            }

            fn run(&self) -> Result<String, SuiteError> {
                $run(&self.suite)
            }
        }
    };
}

suite_experiment!(
    /// Re-scan avoided at every stack-barrier offset on every workload.
    #[command(
        name = "rescan_offsets",
        version,
        about = "Re-scan avoided at every stack-barrier offset (every frame, 256 … 8192 bytes, off) on every workload, with exact counters from the deterministic engine.",
        after_help = "Examples:\n  rescan_offsets --quick\n  rescan_offsets --full --seed 7 --out /tmp/results\n  rescan_offsets --full --plan   (the runs, one JSON line each)\n  rescan_offsets --full --shard 2/4 --out shards/2   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    RescanOffsetsArgs,
    "rescan_offsets",
    sweeps::rescan_offsets
);

suite_experiment!(
    /// Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow
    /// from 10 to 10,000 frames.
    #[command(
        name = "depth_sweep",
        version,
        about = "Re-scan bytes and mark-termination pauses of every design as deep-oscillate's stacks grow from 10 to 10,000 frames.",
        after_help = "Examples:\n  depth_sweep --quick\n  depth_sweep --full --seed 7 --out /tmp/results\n  depth_sweep --full --shard 2/4 --out shards/2   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    DepthSweepArgs,
    "depth_sweep",
    sweeps::depth_sweep
);

suite_experiment!(
    /// Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine
    /// count grows.
    #[command(
        name = "goroutine_sweep",
        version,
        about = "Re-scan bytes and mark-termination pauses of every design as many-shallow's goroutine count grows.",
        after_help = "Examples:\n  goroutine_sweep --quick\n  goroutine_sweep --full --seed 7 --out /tmp/results\n  goroutine_sweep --full --shard 2/4 --out shards/2   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    GoroutineSweepArgs,
    "goroutine_sweep",
    sweeps::goroutine_sweep
);

suite_experiment!(
    /// Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack
    /// barriers, the hybrid barrier and Yuasa, on real threads.
    #[command(
        name = "barrier_designs",
        version,
        about = "Pauses, MMU, mark time, write-barrier cost and mutator throughput of full re-scan, stack barriers, the hybrid barrier and Yuasa, on real threads.",
        after_help = "Examples:\n  barrier_designs --quick\n  barrier_designs --full --seed 7 --out /tmp/results\n  barrier_designs --full --shard 2/4 --procs 8 --out shards/2   (then: merge --out results shards/*;\n    its figures are timings: give the shards identical machines)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    BarrierDesignsArgs,
    "barrier_designs",
    sweeps::barrier_designs
);

suite_experiment!(
    /// How long the scan of a goroutine's own stack keeps it from running, against stack depth
    /// and goroutine count, on real threads.
    #[command(
        name = "scan_stall",
        version,
        about = "How long the scan of a goroutine's own stack keeps it from running — full re-scan, stack barriers, the hybrid barrier, and the hybrid barrier with lazy stack scans behind a watermark — against stack depth and goroutine count, on real threads.",
        after_help = "Examples:\n  scan_stall --quick\n  scan_stall --full --seed 7 --out /tmp/results\n  scan_stall --full --shard 2/4 --procs 8 --out shards/2   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    ScanStallArgs,
    "scan_stall",
    sweeps::scan_stall
);

suite_experiment!(
    /// Pauses of full re-scan, stack barriers and the hybrid barrier (eager and lazy) as
    /// GOMAXPROCS, GOGC, the heap minimum and the collector's CPU share move, on real threads.
    #[command(
        name = "sensitivity",
        version,
        about = "Pauses of full re-scan, stack barriers and the hybrid barrier (eager and lazy) as GOMAXPROCS, GOGC, the heap minimum and the collector's CPU share each move away from a base, on deep-oscillate and many-shallow, on real threads.",
        after_help = "Examples:\n  sensitivity --quick\n  sensitivity --full --gogc 200   (the base at GOGC 200; the other axes around it)\n  sensitivity --full --workloads many-shallow --offsets 512,1024\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    SensitivityArgs,
    "sensitivity",
    sweeps::sensitivity
);

suite_experiment!(
    /// Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free
    /// notification at sweep (seed 004).
    #[command(
        name = "sanitizer_leak",
        version,
        about = "Sanitizer context memory under BenchmarkSyncLeak's workload, with and without free notification at sweep (seed 004), under a procs schedule that grows and shrinks the P count.",
        after_help = "Examples:\n  sanitizer_leak --quick\n  sanitizer_leak --full --seeds 3 --out /tmp/results\n  sanitizer_leak --full --shard 1/2 --out shards/1   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    SanitizerLeakArgs,
    "sanitizer_leak",
    debug_modes::sanitizer_leak
);

suite_experiment!(
    /// Detection rate and delay of injected missing write barriers for wbshadow=1, wbshadow=2
    /// with checkmark, and checkmark alone (seed 000), and each mode's overhead.
    #[command(
        name = "wbshadow_faults",
        version,
        about = "Detection rate and delay of injected missing write barriers (--inject wb-drop=F) for wbshadow=1, wbshadow=2 with checkmark, and checkmark alone (seed 000), and each mode's overhead.",
        after_help = "Examples:\n  wbshadow_faults --quick\n  wbshadow_faults --full --seeds 64 --out /tmp/results\n  wbshadow_faults --full --shard 3/8 --out shards/3   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
    )]
    WbshadowFaultsArgs,
    "wbshadow_faults",
    debug_modes::wbshadow_faults
);

suite_experiment!(
    /// The mutation table and the soundness campaign.
    #[command(
        name = "soundness",
        version,
        mut_arg("procs", |a| a.help("Ps of the threaded campaign's runs [default: 2]")),
        mut_arg("heap_minimum", |a| a.help("The smallest heap goal of every run, bytes [default: 256 KiB for the table, 128 KiB for the campaign, times --scale]")),
        about = "The collector's soundness evidence: injected faults (wb-drop, rescan-skip, bound-short, hit-lost, unwind-skip) against each checker (checkmark, wbshadow=2, stackshadow=1, both) on four workloads, and a checkmark and stackshadow campaign over many seeds, every design and both engines.",
        after_help = "Examples:\n  soundness --quick\n  soundness --full --out /tmp/results\n  soundness --full --shard 5/16 --out shards/5   (then: merge --out results shards/*)\n\n\
--seeds N sets the seeds of every part (default: 2 per table cell, 30 deterministic and 4 threaded\n\
campaign seeds with --quick; 16, 1000 and 100 with --full); --scale sizes the workloads; --cycles\n\
sets a fault run's cycles (default 6); --procs the threaded campaign's Ps (default 2).\n\n\
Exit codes: 0 success, 2 bad input, 3 stackshadow missed a run where a re-scan fault took effect,\n\
wbshadow=2 missed a run that lost an object, or a campaign run found a violation, 1 a run could\n\
not complete."
    )]
    SoundnessArgs,
    "soundness",
    soundness::soundness
);

/// The cost of execution tracing, Chrome JSON export included: each workload on both engines
/// with tracing off and on.
#[derive(Parser, Debug)]
#[command(
    name = "trace_overhead",
    version,
    mut_arg("jobs", |a| a.help("Checked as for every experiment, but unused: the runs go one at a time")),
    mut_arg("heap_minimum", |a| a.help("The smallest heap goal of every run, bytes [default: 1 MiB, times --scale]")),
    about = "The cost of execution tracing (seed 001), Chrome JSON export included: mixed, many-shallow, switch-heavy and deep-oscillate (stack barriers on every frame) on the deterministic and threaded engines, with tracing off and on; median wall times, events, trace bytes.",
    after_help = "Runs go one at a time, alternating off and on; --jobs is checked but not used. Every run has a 1 MiB heap minimum (times --scale) unless --heap-minimum says otherwise; one seed unless --seeds is given. A run of --plan and --shard is one configuration: its reps, off and on.\n\nExamples:\n  trace_overhead --quick\n  trace_overhead --full --reps 11 --out /tmp/results\n  trace_overhead --full --procs 8 --shard 2/4 --out shards/2   (then: merge --out results shards/*)\n\nExit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 a run could not complete."
)]
pub struct TraceOverheadArgs {
    /// The flags every experiment takes.
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Runs per side (off, on) of each configuration; the row reports the median [default: 3
    /// with --quick, 7 with --full].
    #[arg(long)]
    pub reps: Option<usize>,
}

impl ExperimentArgs for TraceOverheadArgs {
    const NAME: &'static str = trace_overhead::NAME;

    fn suite(&self) -> &SuiteArgs {
        &self.suite
    }

    fn suite_mut(&mut self) -> &mut SuiteArgs {
        &mut self.suite
    }

    fn run(&self) -> Result<String, SuiteError> {
        trace_overhead::trace_overhead(&self.suite, Options { reps: self.reps })
    }
}

impl ExperimentArgs for ProfilerArgs {
    const NAME: &'static str = "profiler_switch";

    fn suite(&self) -> &SuiteArgs {
        &self.suite
    }

    fn suite_mut(&mut self) -> &mut SuiteArgs {
        &mut self.suite
    }

    fn run(&self) -> Result<String, SuiteError> {
        profiler_switch::profiler_switch(self)
    }
}

/// An experiment `merge` can re-run from shard files.
#[derive(Clone, Copy, Debug)]
pub struct Experiment {
    /// Its name (its binary's).
    pub name: &'static str,
    rerun: fn(&[String], &Path, Session) -> Result<String, SuiteError>,
}

impl Experiment {
    /// Runs the experiment with the arguments `shards` recorded, writing into `out`, its run
    /// lists answered from `shards`: its summary, or why it stopped.
    /// Its provenance in `out` names the whole run's command, the merge's machine and each
    /// shard's.
    pub fn merge(&self, shards: ShardSet, out: &Path) -> Result<String, SuiteError> {
        let argv = shards.argv.clone();
        let session = Session::merging(shards);
        let whole_run = std::iter::once(self.name.to_owned())
            .chain(argv.iter().cloned())
            .chain(["--out".to_owned(), out.display().to_string()]);
        session.start_run(provenance::Run::start(&whole_run.collect::<Vec<_>>()));
        (self.rerun)(&argv, out, session)
    }
}

const fn entry<A: ExperimentArgs>() -> Experiment {
    Experiment {
        name: A::NAME,
        rerun: rerun::<A>,
    }
}

/// Every experiment binary, in the order `scripts/run-all.sh` runs them.
pub const EXPERIMENTS: [Experiment; 11] = [
    entry::<RescanOffsetsArgs>(),
    entry::<DepthSweepArgs>(),
    entry::<GoroutineSweepArgs>(),
    entry::<BarrierDesignsArgs>(),
    entry::<ScanStallArgs>(),
    entry::<SensitivityArgs>(),
    entry::<SanitizerLeakArgs>(),
    entry::<WbshadowFaultsArgs>(),
    entry::<SoundnessArgs>(),
    entry::<ProfilerArgs>(),
    entry::<TraceOverheadArgs>(),
];

/// The experiment named `name`.
pub fn find(name: &str) -> Option<Experiment> {
    EXPERIMENTS.iter().copied().find(|e| e.name == name)
}

/// Parses `argv` (without the program name) as `A`'s flags, with `--out out` and `session`, runs
/// the experiment, and checks it made every call the session's shards hold.
fn rerun<A: ExperimentArgs>(
    argv: &[String],
    out: &Path,
    session: Session,
) -> Result<String, SuiteError> {
    let program = std::iter::once(A::NAME.to_owned());
    let mut args = A::try_parse_from(program.chain(argv.iter().cloned())).map_err(|e| {
        SuiteError::BadInput(format!(
            "{}: the shards' flags `{}` do not parse: {}",
            A::NAME,
            argv.join(" "),
            cli::one_line(&e.to_string())
        ))
    })?;
    let suite = args.suite_mut();
    suite.out = out.to_owned();
    suite.session = session.clone();
    let summary = args.run()?;
    session.check_merged()?;
    if let Some(p) = session.provenance() {
        provenance::record(out, A::NAME, p)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_experiment_is_listed_once_by_its_binary_name() {
        let names: Vec<&str> = EXPERIMENTS.iter().map(|e| e.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
            assert_eq!(find(n).map(|e| e.name), Some(*n));
            let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/bin/{n}.rs"));
            assert!(bin.is_file(), "{} missing", bin.display());
        }
        assert!(find("merge").is_none());
    }
}
