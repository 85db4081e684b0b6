//! One configuration end to end: the `testbed` flags, their validation into a [`Resolved`]
//! configuration, the run, and the report of ARCHITECTURE.md §7.
//!
//! Invariant: every flag combination either resolves to a configuration the runtime can run, or is
//! rejected here with a one-line message (the binary exits 2); nothing the user typed reaches the
//! runtime unchecked. The report's `config` holds every resolved option, defaults included, so a
//! row of results names everything needed to reproduce it.

use clap::Parser;
use gc::wbarrier::{self, StackPolicy};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gc::mmu::MmuPoint;
use gc::runtime::{BarrierRemoval, StackScan};
use gc::{
    CycleStats, DebugKnobs, Deterministic, GcConfig, Inject, Limits, ProfileConfig, RescanBound,
    RunResult, Runtime, RuntimeError, SampleCounts, SanitizerOptions, Threaded, Totals, TraceStats,
};
use serde::Serialize;
use stacks::StackBarrierMode;

use crate::cli;
use crate::trace_export::{ChromeTraceWriter, SharedSink};
use crate::workload::{self, Workload, WorkloadParams};

/// `testbed`: run one configuration of the collector on one workload.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "testbed",
    version,
    about = "Run one configuration of the simulated Go collector on one workload and report its re-scan figures.",
    after_help = "Examples:\n  testbed --workload deep-oscillate --goroutines 64 --depth 1000 --json\n  testbed --workload mixed --barrier hybrid --debug gctrace=1,gccheckmark=1\n  testbed --workload mixed --inject wb-drop=0.01 --debug wbshadow=2,gccheckmark=1   (exits 3)\n  testbed --workload mixed --goroutines 32 --depth 200 --inject rescan-skip=0.5 --debug stackshadow=1   (exits 3)\n  testbed --workload sync-leak --sanitizer --procs 2 --procs-schedule 3:8,6:1 --gogc 50\n  testbed --workload mixed --trace trace.json   (open trace.json in https://ui.perfetto.dev)\n  testbed --workload switch-heavy --profile cpu.folded   (folded stacks for flame graphs)\n\n\
Debug knobs (--debug, else the STKBAR_DEBUG environment variable; comma-separated name=value,\nGo's GODEBUG names; the flag wins over the variable):\n  gctrace=1|2          one line per cycle on stderr, Go's shape plus re-scan figures\n  gccheckmark=1        re-mark from every root after mark termination; a missed object exits 3\n  wbshadow=1|2         a shadow copy of every heap and global pointer word, checked at each\n                       barriered store: a store that bypassed the write barrier exits 3 naming\n                       the word, its object, type and field, and the writer's traceback;\n                       2 also checks every word the checkmark walk scans (and runs that walk)\n  stackshadow=1        record what each concurrent stack scan saw; a frame the mark-termination\n                       re-scan skipped that changed since exits 3 naming goroutine, frame, slot,\n                       both values and the stkbar array\n  gcstackbarrieroff=1  no stack barriers (same as --stack-barriers off)\n  gcstackbarrierall=1  a barrier on every frame (same as --stack-barriers all)\n  allocfreetrace=1     a line on stderr per allocation (with a short traceback) and per free\n  invalidptr=0|1       (default 1) a first-page value in a pointer slot is fatal, with a\n                       traceback (poison values always are)\n\n\
Fault injection (--inject, comma-separated name=value, F a fraction in [0, 1]):\n  wb-drop=F            skip the write barrier (shading and shadow) at a seeded fraction of heap\n                       and global pointer stores; wbshadow=2,gccheckmark=1 catches every one\n                       that loses an object\n  rescan-skip=F        skip a seeded fraction of the frames mark termination's re-scans visit\n  bound-short=N        every re-scan stops N frames below its bound\n  hit-lost=F           a fraction of barrier hits never reach the collector's stkbar_pos\n  unwind-skip=F        a fraction of bulk writes skip gcUnwindBarriers, of unwinds hide theirs\n                       (stackshadow=1 catches every re-scan fault that skipped a changed frame)\n\n\
Exit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 the run could not complete."
)]
pub struct TestbedArgs {
    /// Workload: deep-oscillate, deep-unwind, many-shallow, mixed, copy-heavy, adversarial,
    /// sync-leak, switch-heavy, replay (with --replay FILE).
    #[arg(long)]
    pub workload: String,
    /// The trace `--workload replay` replays (format `stkbar-replay 1`; see experiments/data/).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<std::path::PathBuf>,
    /// Goroutines to start.
    #[arg(long, default_value_t = 64)]
    pub goroutines: usize,
    /// Stack depth in frames the workload works at.
    #[arg(long, default_value_t = 1000)]
    pub depth: usize,
    /// Seed for the program: the workload's choices and injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seed for the schedule: the deterministic engine's choice of P and of the collector's
    /// turn, the threaded engine's collector draws, when profiling signals arrive [default:
    /// --seed].
    #[arg(long, value_name = "SEED")]
    pub sched_seed: Option<u64>,
    /// GC cycles to complete.
    #[arg(long, default_value_t = 10)]
    pub cycles: u32,
    /// GC cycles to run first and leave out of `cycles` and `totals` (the stacks' build-up), so
    /// the report is the steady state; `mutator_ops` and MMU still cover the whole run.
    #[arg(long, default_value_t = 0)]
    pub warmup_cycles: u32,
    /// Write-barrier design: dijkstra, hybrid, yuasa.
    #[arg(long, default_value = "dijkstra")]
    pub barrier: String,
    /// Stack barriers (dijkstra only): on, off, all [default: on].
    #[arg(long)]
    pub stack_barriers: Option<String>,
    /// Bytes above the SP of the first stack barrier (Go's firstStackBarrierOffset) [default: 1024].
    #[arg(long)]
    pub first_offset: Option<usize>,
    /// How a concurrent scan treats a stack: eager (every Go release: the whole stack while the
    /// goroutine waits) or lazy (hybrid only: the first frames while it waits, the rest behind a
    /// moving return barrier, the watermark, by the markers and by its own returns).
    #[arg(long, default_value = "eager", value_name = "eager|lazy")]
    pub stack_scan: String,
    /// Lazy scans: frames scanned while the goroutine waits (at least its running frame).
    #[arg(long, value_name = "FRAMES")]
    pub lazy_first_frames: Option<usize>,
    /// Lazy scans: frames a marker scans above a watermark per step, holding the goroutine's
    /// stack-barrier lock (a return into the watermark waits for at most one step).
    #[arg(long, value_name = "FRAMES")]
    pub lazy_step_frames: Option<usize>,
    /// When the stack barriers a cycle installed are removed: after-restart (Go 1.7's
    /// gcTryRemoveAllStackBarriers: after the world restarts, best effort, running goroutines
    /// skipped and cleaned at their next scan) or in-pause (Go 1.5/1.6: inside the
    /// mark-termination pause, serially).
    #[arg(
        long,
        default_value = "after-restart",
        value_name = "after-restart|in-pause"
    )]
    pub barrier_removal: String,
    /// The scheduler's time slice in milliseconds (Go's forcePreemptNS, enforced by sysmon): a
    /// goroutine that has run this long gives up its P at its next call. The deterministic
    /// engine measures it on its own clock (75 ns of a P's time per step).
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "MS",
        allow_hyphen_values = true
    )]
    pub time_slice: f64,
    /// Mean operations between two blocks of a goroutine in its steady state (0: never) [default:
    /// the workload's; see --help on each workload in README].
    #[arg(long, value_name = "OPS")]
    pub block_every: Option<u32>,
    /// Parked goroutines the network poller wakes per millisecond [default: the workload's;
    /// many-shallow: 10].
    #[arg(long, value_name = "PER_MS", allow_hyphen_values = true)]
    pub wake_rate: Option<f64>,
    /// many-shallow: goroutines that never block (busy workers) [default: 4].
    #[arg(long, value_name = "N")]
    pub running: Option<usize>,
    /// many-shallow: mean operations a woken goroutine runs before it blocks again [default: 20].
    #[arg(long, value_name = "OPS")]
    pub burst: Option<u32>,
    /// Engine: deterministic (one thread, seeded schedule, exact counters) or threaded (a
    /// thread per P, real stop-the-world, real pause times and MMU).
    #[arg(long, default_value = "deterministic", value_parser = ["deterministic", "threaded"])]
    pub engine: String,
    /// Ps (processors) the engine schedules goroutines on, 1 to 256 [default: 4 for the
    /// deterministic engine, so its counters do not depend on the machine; the number of CPUs
    /// for the threaded engine].
    #[arg(long)]
    pub procs: Option<usize>,
    /// The collector's share of CPU while it has work, in (0, 1): Go's 25 % background mark
    /// utilisation (deterministic: a fraction of scheduling steps; threaded: dedicated and
    /// fractional mark workers on the Ps).
    #[arg(long, default_value_t = 0.25, allow_hyphen_values = true)]
    pub gc_share: f64,
    /// Deterministic engine only: heap bytes one collector step scans at most (at least one
    /// object), the marker's speed relative to the mutator's [default: 32].
    #[arg(long)]
    pub mark_step_bytes: Option<u64>,
    /// Threaded engine only: give up after this many seconds of wall time [default: 300].
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// GOGC: heap growth percent that triggers a cycle, or `off`.
    #[arg(long, default_value = "100")]
    pub gogc: String,
    /// Smallest heap goal in bytes (Go's heapminimum).
    #[arg(long, default_value_t = DEFAULT_HEAP_MINIMUM)]
    pub heap_minimum: u64,
    /// Force a cycle after this many mutator operations without one.
    #[arg(long)]
    pub force_gc_every: Option<u64>,
    /// Give up after this many mutator operations.
    #[arg(long, default_value_t = 2_000_000_000)]
    pub max_ops: u64,
    /// Debug knobs, e.g. gctrace=1,gccheckmark=1,wbshadow=2 (overrides STKBAR_DEBUG; see below).
    #[arg(long)]
    pub debug: Option<String>,
    /// Faults to inject so the checkers can be seen to catch them, e.g. wb-drop=0.01 (see below).
    #[arg(long, value_name = "SPEC")]
    pub inject: Option<String>,
    /// Change the P count during the run: CYCLE:PROCS,… makes GOMAXPROCS PROCS at the
    /// stop-the-world starting cycle CYCLE (counting warm-up cycles, from 1), as Go's
    /// procresize does; e.g. 3:8,6:2.
    #[arg(long, value_name = "SCHEDULE")]
    pub procs_schedule: Option<String>,
    /// Run the sanitizer (seed 004's per-P race contexts): per-object metadata told of every
    /// allocation, atomic operation and free.
    #[arg(long)]
    pub sanitizer: bool,
    /// With --sanitizer: sweep does not tell the contexts of the objects it frees (the leak
    /// seed 004 fixed).
    #[arg(long, requires = "sanitizer")]
    pub no_free_notify: bool,
    /// Trace the run (seed 001) into FILE as Chrome trace-event JSON, for https://ui.perfetto.dev:
    /// GC phases, stop-the-world pauses, stack scans and re-scans (goid, bytes), stack-barrier
    /// installs, hits, removals and unwinds, copystack, sweep, goroutines on each P, mark workers.
    /// FILE appears only when the run succeeds; its directory must exist.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Profile the run with the sampling profiler (Go's `sigprof`) and write its folded stacks
    /// (`frame;frame;… count`, for flame graphs) to FILE; its directory must exist.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// With --profile, deterministic engine: mean micro-operation boundaries between two signals
    /// to an M, at least 1 [default: 64].
    #[arg(long, value_name = "N")]
    pub profile_period: Option<u64>,
    /// With --profile, threaded engine: mean microseconds between two signals from the profiler
    /// thread, more than 0 [default: 100].
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub profile_interval_us: Option<f64>,
    /// With --profile: the signal handler's rules. go1.7: Go 1.7's sigprof (unwinds a sample
    /// inside the stack-barrier trampoline through the fix-up; runtime work on g0 gives g0
    /// tracebacks); seed003: seed 003's 2013 rule (a user goroutine's stack only) with this
    /// testbed's first stack-barrier refusals, for the historical comparison; none: no checks, as
    /// Go before seed 003 (it then unwinds half-switched goroutines) [default: go1.7].
    #[arg(long, value_name = "go1.7|seed003|none")]
    pub profile_rules: Option<String>,
    /// Print one JSON object (config, totals, cycles) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The configuration every option resolves to, as the report's `config` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigReport {
    /// Workload name.
    pub workload: &'static str,
    /// The replayed trace file (`replay` only).
    pub replay: Option<String>,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed (the program's unless `--sched-seed` set another).
    pub sched_seed: u64,
    /// Cycles.
    pub cycles: u32,
    /// Warm-up cycles run before them and left out of the report.
    pub warmup_cycles: u32,
    /// Write-barrier design.
    pub barrier: &'static str,
    /// `on`, `off` or `all`.
    pub stack_barriers: &'static str,
    /// First barrier offset in bytes, `null` unless `on`.
    pub first_offset: Option<usize>,
    /// `after-restart` or `in-pause`.
    pub barrier_removal: String,
    /// `eager` or `lazy`.
    pub stack_scan: &'static str,
    /// Lazy scans' first budget and marker step, in frames; `null` for eager.
    pub lazy_first_frames: Option<usize>,
    /// See `lazy_first_frames`.
    pub lazy_step_frames: Option<usize>,
    /// The scheduler's time slice, ms.
    pub time_slice_ms: f64,
    /// Where the goroutines block, every field resolved (the workload's defaults where no flag
    /// was given).
    pub blocking: workload::Blocking,
    /// Engine.
    pub engine: &'static str,
    /// Ps.
    pub procs: usize,
    /// Collector share.
    pub gc_share: f64,
    /// Heap bytes per collector step (deterministic engine; `null` for threaded).
    pub mark_step_bytes: Option<u64>,
    /// Wall-clock limit in seconds (threaded engine; `null` for deterministic).
    pub time_limit: Option<f64>,
    /// GOGC, `null` for off.
    pub gogc: Option<u32>,
    /// Heap minimum.
    pub heap_minimum: u64,
    /// Forced-cycle interval.
    pub force_gc_every: Option<u64>,
    /// Operation limit.
    pub max_ops: u64,
    /// Maximum stack size.
    pub max_stack_size: usize,
    /// The debug knobs, in knob syntax.
    pub debug: String,
    /// The injected faults, in `--inject` syntax.
    pub inject: String,
    /// The procs schedule, `CYCLE:PROCS,…` (empty for none).
    pub procs_schedule: String,
    /// The sanitizer: `off`, `free-notify` or `no-free-notify`.
    pub sanitizer: &'static str,
    /// The Chrome trace file (`--trace`), `null` when not tracing.
    pub trace: Option<String>,
    /// The folded-stacks file (`--profile`), `null` when not profiling.
    pub profile: Option<String>,
    /// The profiler's rules, `go1.7`, `seed003` or `none`; `null` when not profiling.
    pub profile_rules: Option<&'static str>,
    /// Mean micro-operation boundaries between signals (profiling with the deterministic
    /// engine; `null` otherwise).
    pub profile_period: Option<u64>,
    /// Mean microseconds between signals (profiling with the threaded engine; `null`
    /// otherwise).
    pub profile_interval_us: Option<f64>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The workload.
    pub workload: Arc<dyn Workload>,
    /// Its parameters.
    pub params: WorkloadParams,
    /// The collector's configuration.
    pub config: GcConfig,
    /// Cycles to complete.
    pub cycles: u32,
    /// Operation limit.
    pub max_ops: u64,
    /// Where the Chrome trace goes (`--trace`; `config.trace` is then on).
    pub trace_file: Option<PathBuf>,
    /// Where the folded profile goes (`--profile`; `config.profile` is then set).
    pub profile_file: Option<PathBuf>,
    /// The report's `config`.
    pub report: ConfigReport,
}

impl std::fmt::Debug for dyn Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The testbed's report (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Every resolved option.
    pub config: ConfigReport,
    /// Summed counters and summaries.
    pub totals: Totals,
    /// One row per cycle.
    pub cycles: Vec<CycleStats>,
    /// ARCHITECTURE.md §4's per-goroutine bound over every barrier-bounded re-scan.
    pub rescan_bound: RescanBound,
    /// Minimum mutator utilisation, window 100 µs to 1 s (threaded engine; empty for the
    /// deterministic engine, which has no clock).
    pub mmu: Vec<MmuPoint>,
    /// The stack barriers no cycle's row has finished with when the run ends.
    pub barriers_outstanding: BarriersOutstanding,
    /// The tracer's counters over the whole run, warm-up included (`--trace` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceStats>,
    /// The profiler's counts over the whole run, warm-up included (`--profile` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSummary>,
}

/// The report's `barriers_outstanding`: with barriers removed after the restart (Go 1.7), a
/// goroutine the walk skipped keeps its barriers into the next cycle, so a run ends with some
/// barriers still on stacks, and some that ended (hit, or removed) after the last row was made.
/// Over a run without warm-up cycles, `totals.barriers_installed = barriers_hit +
/// barriers_removed + on_stacks + ended_unreported`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BarriersOutstanding {
    /// Barriers still on goroutine stacks.
    pub on_stacks: u64,
    /// Barriers hit, unwound or removed whose counts no cycle's row holds yet.
    pub ended_unreported: u64,
}

/// The report's `profile`: what the samples were, and how many signals were sent.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProfileSummary {
    /// The sample counts (`samples`, `user_samples`, `system_samples`, `malformed`, …).
    #[serde(flatten)]
    pub counts: SampleCounts,
    /// Signals the threaded engine's profiler thread sent (0 under the deterministic engine,
    /// where every signal raised is handled).
    pub signals_sent: u64,
    /// Distinct stacks, the lines of the folded file.
    pub stacks: usize,
}

/// Resolves and validates the flags; the error is the one-line message for exit code 2.
pub fn resolve(args: &TestbedArgs) -> Result<Resolved, String> {
    let workload = workload::resolve(&args.workload, args.replay.as_deref())?;
    resolve_with(args, workload)
}

/// [`resolve`] with `workload` in place of the one `--workload` names: every other flag applies
/// as it would. A workload not yet in the registry (`workload::WORKLOADS`) runs this way — how
/// `experiments/tests/toy_workload.rs` runs the README's example before registering it.
pub fn resolve_with(args: &TestbedArgs, workload: Arc<dyn Workload>) -> Result<Resolved, String> {
    let design = wbarrier::design(&args.barrier).ok_or_else(|| {
        format!(
            "unknown --barrier {:?} (valid: {})",
            args.barrier,
            wbarrier::design_names()
        )
    })?;
    let debug = DebugKnobs::from_flag_or_env(args.debug.as_deref()).map_err(|e| e.to_string())?;
    let inject = Inject::parse(args.inject.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    if !(1..=1_000_000).contains(&args.goroutines) {
        return Err(format!(
            "--goroutines {} must be between 1 and 1000000",
            args.goroutines
        ));
    }
    if args.depth == 0 {
        return Err("--depth must be at least 1".into());
    }
    if args.cycles == 0 {
        return Err("--cycles must be at least 1".into());
    }
    if args.cycles.checked_add(args.warmup_cycles).is_none() {
        return Err(format!(
            "--cycles {} plus --warmup-cycles {} is more cycles than a run can count",
            args.cycles, args.warmup_cycles
        ));
    }
    let threaded = match args.engine.as_str() {
        "threaded" => true,
        "deterministic" => false,
        other => {
            return Err(format!(
                "unknown --engine {other:?} (valid: deterministic, threaded)"
            ));
        }
    };
    let procs = args.procs.unwrap_or(if threaded {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        4
    });
    crate::limits::check_range(
        "--procs",
        procs,
        1,
        crate::limits::MAX_PROCS,
        "Go's most Ps",
    )?;
    let procs_schedule = match &args.procs_schedule {
        Some(s) => parse_procs_schedule(s)?,
        None => Vec::new(),
    };
    if threaded && args.mark_step_bytes.is_some() {
        return Err(
            "--mark-step-bytes applies only to --engine deterministic (threaded mark workers run at real speed)"
                .into(),
        );
    }
    if !threaded && args.time_limit.is_some() {
        return Err(
            "--time-limit applies only to --engine threaded (the deterministic engine is bounded by --max-ops)"
                .into(),
        );
    }
    let mark_step_bytes =
        (!threaded).then(|| args.mark_step_bytes.unwrap_or(gc::mark::MARK_STEP_BYTES));
    let time_limit = threaded.then(|| args.time_limit.unwrap_or(300.0));
    if let Some(t) = time_limit
        && !(t > 0.0 && t <= 86_400.0)
    {
        return Err(format!(
            "--time-limit {} must be a number of seconds in (0, 86400]",
            crate::limits::shown(t)
        ));
    }
    if !(args.gc_share >= crate::limits::MIN_GC_SHARE && args.gc_share < 1.0) {
        return Err(format!(
            "--gc-share {} must lie in [{}, 1) (below, the collector's turns are so rare that the heap outgrows its limit before a mark ends)",
            crate::limits::shown(args.gc_share),
            crate::limits::MIN_GC_SHARE
        ));
    }
    let gogc = match args.gogc.as_str() {
        "off" => None,
        s => match s.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("--gogc {s:?} must be a positive integer or off")),
        },
    };
    if gogc.is_none() && args.force_gc_every.is_none() {
        return Err("--gogc off needs --force-gc-every OPS, or no cycle would ever start".into());
    }
    if mark_step_bytes == Some(0) {
        return Err("--mark-step-bytes must be at least 1".into());
    }
    crate::limits::check_range(
        "--heap-minimum",
        args.heap_minimum,
        1,
        crate::limits::MAX_HEAP_MINIMUM,
        "half of a run's 1 GiB heap limit",
    )?;
    if args.max_ops == 0 {
        return Err("--max-ops must be at least 1".into());
    }
    if args.force_gc_every == Some(0) {
        return Err("--force-gc-every must be at least 1".into());
    }
    let stack_barriers = resolve_stack_barriers(args, &debug, design.stack_policy())?;
    let profile = resolve_profile(args, threaded)?;
    if let Some(p) = &args.trace {
        cli::check_output_file("--trace", p)?;
    }
    if let Some(p) = &args.profile {
        cli::check_output_file("--profile", p)?;
    }
    if let (Some(t), Some(p)) = (&args.trace, &args.profile)
        && t == p
    {
        return Err(format!(
            "--trace and --profile both name {}; give each its own file",
            t.display()
        ));
    }
    let barrier_removal: BarrierRemoval = args.barrier_removal.parse()?;
    let stack_scan = resolve_stack_scan(args, design.stack_policy())?;
    if !(args.time_slice > 0.0 && args.time_slice <= 60_000.0) {
        return Err(format!(
            "--time-slice {} must be a number of milliseconds in (0, 60000]",
            args.time_slice
        ));
    }
    let blocking = resolve_blocking(args, &*workload)?;
    let params = WorkloadParams {
        goroutines: args.goroutines,
        depth: args.depth,
        seed: args.seed,
        blocking,
    };
    let config = GcConfig {
        design,
        stack_barriers,
        barrier_removal,
        time_slice_ns: (args.time_slice * 1e6).round() as u64,
        gogc,
        heap_minimum: args.heap_minimum,
        procs,
        gc_share: args.gc_share,
        mark_step_bytes: mark_step_bytes.unwrap_or(gc::mark::MARK_STEP_BYTES),
        force_gc_ops: args.force_gc_every,
        seed: args.seed,
        sched_seed: args.sched_seed,
        debug,
        inject,
        sanitizer: args.sanitizer.then_some(SanitizerOptions {
            free_notify: !args.no_free_notify,
        }),
        procs_schedule: procs_schedule.clone(),
        trace: args.trace.is_some(),
        profile,
        stack_scan,
        ..GcConfig::default()
    };
    check_depth_fits(&*workload, &params, &config)?;
    let report = ConfigReport {
        workload: workload.name(),
        replay: args.replay.as_ref().map(|p| p.display().to_string()),
        goroutines: args.goroutines,
        depth: args.depth,
        seed: args.seed,
        sched_seed: args.sched_seed.unwrap_or(args.seed),
        cycles: args.cycles,
        warmup_cycles: args.warmup_cycles,
        barrier: design.name(),
        stack_barriers: match stack_barriers {
            StackBarrierMode::Off => "off",
            StackBarrierMode::On { first_offset: 0 } => "all",
            StackBarrierMode::On { .. } => "on",
        },
        first_offset: match stack_barriers {
            StackBarrierMode::On { first_offset } if first_offset > 0 => Some(first_offset),
            _ => None,
        },
        barrier_removal: barrier_removal.to_string(),
        stack_scan: stack_scan.name(),
        lazy_first_frames: match stack_scan {
            StackScan::Lazy { first_frames, .. } => Some(first_frames),
            StackScan::Eager => None,
        },
        lazy_step_frames: match stack_scan {
            StackScan::Lazy { step_frames, .. } => Some(step_frames),
            StackScan::Eager => None,
        },
        time_slice_ms: args.time_slice,
        blocking,
        engine: if threaded {
            "threaded"
        } else {
            "deterministic"
        },
        procs,
        gc_share: args.gc_share,
        mark_step_bytes,
        time_limit,
        gogc,
        heap_minimum: config.heap_minimum,
        force_gc_every: args.force_gc_every,
        max_ops: args.max_ops,
        max_stack_size: config.max_stack_size,
        debug: debug.to_string(),
        inject: inject.to_string(),
        procs_schedule: procs_schedule
            .iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
        sanitizer: match (args.sanitizer, args.no_free_notify) {
            (false, _) => "off",
            (true, false) => "free-notify",
            (true, true) => "no-free-notify",
        },
        trace: args.trace.as_ref().map(|p| p.display().to_string()),
        profile: args.profile.as_ref().map(|p| p.display().to_string()),
        profile_rules: profile.map(|p| p.rules.name()),
        profile_period: profile.filter(|_| !threaded).map(|p| p.period),
        profile_interval_us: profile
            .filter(|_| threaded)
            .map(|p| p.interval.as_secs_f64() * 1e6),
    };
    Ok(Resolved {
        workload,
        params,
        config,
        cycles: args.cycles,
        max_ops: args.max_ops,
        trace_file: args.trace.clone(),
        profile_file: args.profile.clone(),
        report,
    })
}

/// Refuses run `r` if its estimated peak ([`estimate_peak_bytes`]) exceeds this machine's
/// memory: the `testbed` binary's check after [`resolve`] (a suite checks the runs it holds at
/// once instead).
pub fn check_fits_memory(r: &Resolved) -> Result<(), String> {
    let physical = crate::limits::physical_memory();
    let remedy = "fewer --goroutines or a smaller --depth fit";
    crate::limits::check_memory(estimate_peak_bytes(r), physical, "the run", remedy)
}

/// `--profile` and its knobs: the profiler's configuration, or `None` without `--profile`.
fn resolve_profile(args: &TestbedArgs, threaded: bool) -> Result<Option<ProfileConfig>, String> {
    let defaults = ProfileConfig::default();
    if args.profile_period == Some(0) {
        return Err("--profile-period must be at least 1 micro-operation boundary".into());
    }
    if let Some(us) = args.profile_interval_us
        && !(us > 0.0 && us <= MAX_PROFILE_INTERVAL_US)
    {
        return Err(format!(
            "--profile-interval-us {us} must be a number of microseconds in (0, {MAX_PROFILE_INTERVAL_US}]"
        ));
    }
    let rules = match args.profile_rules.as_deref() {
        None => defaults.rules,
        Some(r) => r.parse().map_err(|e| format!("--profile-rules: {e}"))?,
    };
    if args.profile.is_none() {
        let knob = [
            ("--profile-period", args.profile_period.is_some()),
            ("--profile-interval-us", args.profile_interval_us.is_some()),
            ("--profile-rules", args.profile_rules.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag));
        return match knob {
            Some(flag) => Err(format!("{flag} applies only with --profile FILE")),
            None => Ok(None),
        };
    }
    if threaded && args.profile_period.is_some() {
        return Err(
            "--profile-period applies only to --engine deterministic (the threaded engine's profiler thread signals every --profile-interval-us)"
                .into(),
        );
    }
    if !threaded && args.profile_interval_us.is_some() {
        return Err(
            "--profile-interval-us applies only to --engine threaded (the deterministic engine signals every --profile-period boundaries)"
                .into(),
        );
    }
    Ok(Some(ProfileConfig {
        rules,
        period: args.profile_period.unwrap_or(defaults.period),
        interval: args
            .profile_interval_us
            .map_or(defaults.interval, |us| Duration::from_secs_f64(us / 1e6)),
        ..defaults
    }))
}

/// The longest `--profile-interval-us`: 10 s between signals.
const MAX_PROFILE_INTERVAL_US: f64 = 1e7;

/// `--procs-schedule CYCLE:PROCS,…`: cycles from 1, strictly increasing, Ps 1 to 256.
pub fn parse_procs_schedule(s: &str) -> Result<Vec<(u32, usize)>, String> {
    let bad = |item: &str, why: &str| {
        format!("bad --procs-schedule item {item:?}: {why} (expected CYCLE:PROCS,…, e.g. 3:8,6:2)")
    };
    let mut out: Vec<(u32, usize)> = Vec::new();
    for item in s.split(',') {
        let (c, n) = item
            .split_once(':')
            .ok_or_else(|| bad(item, "expected CYCLE:PROCS"))?;
        let c: u32 = c
            .trim()
            .parse()
            .map_err(|_| bad(item, "the cycle must be a positive integer"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| bad(item, "the P count must be a positive integer"))?;
        if c == 0 {
            return Err(bad(item, "cycles count from 1"));
        }
        if !(1..=256).contains(&n) {
            return Err(bad(item, "the P count must be between 1 and 256"));
        }
        if out.last().is_some_and(|&(last, _)| c <= last) {
            return Err(bad(item, "cycles must increase"));
        }
        out.push((c, n));
    }
    Ok(out)
}

/// `--block-every`, `--wake-rate`, `--running` and `--burst` over the workload's defaults:
/// every field set, or a one-line error.
fn resolve_blocking(args: &TestbedArgs, w: &dyn Workload) -> Result<workload::Blocking, String> {
    let b = workload::Blocking {
        block_every: args.block_every,
        wakes_per_ms: args.wake_rate,
        running: args.running,
        burst: args.burst,
    }
    .or(w.blocking());
    if let Some(r) = args.wake_rate
        && !(r.is_finite() && (0.0..=1e6).contains(&r))
    {
        return Err(format!(
            "--wake-rate {r} must be a number of wakes per millisecond in [0, 1000000]"
        ));
    }
    if args.burst == Some(0) {
        return Err("--burst must be at least 1 operation".into());
    }
    if let Some(n) = args.running
        && n > args.goroutines
    {
        return Err(format!(
            "--running {n} is more than the {} goroutines",
            args.goroutines
        ));
    }
    if b.block_every.unwrap_or(0) > 0 && b.wakes_per_ms.unwrap_or(0.0) <= 0.0 {
        return Err(format!(
            "--block-every makes {}'s goroutines block, but nothing would wake them: give --wake-rate PER_MS",
            w.name()
        ));
    }
    Ok(b)
}

/// `--stack-scan` and its budgets.
fn resolve_stack_scan(args: &TestbedArgs, policy: StackPolicy) -> Result<StackScan, String> {
    let budgets = args.lazy_first_frames.is_some() || args.lazy_step_frames.is_some();
    match args.stack_scan.as_str() {
        "eager" if budgets => {
            Err("--lazy-first-frames and --lazy-step-frames apply only to --stack-scan lazy".into())
        }
        "eager" => Ok(StackScan::Eager),
        "lazy" if policy != StackPolicy::ConcurrentScanOnce => Err(format!(
            "--stack-scan lazy needs --barrier hybrid: its soundness rests on the barrier shading \
             deleted pointers, which --barrier {} does not do for stacks",
            args.barrier
        )),
        "lazy" => {
            let first = args.lazy_first_frames.unwrap_or(1);
            let step = args
                .lazy_step_frames
                .unwrap_or(gc::runtime::LAZY_STEP_FRAMES);
            if first == 0 || step == 0 {
                return Err(
                    "--lazy-first-frames and --lazy-step-frames must be at least 1 frame".into(),
                );
            }
            Ok(StackScan::Lazy {
                first_frames: first,
                step_frames: step,
            })
        }
        other => Err(format!("--stack-scan {other:?} must be eager or lazy")),
    }
}

/// `--stack-barriers`, `--first-offset` and the two knobs, reconciled.
fn resolve_stack_barriers(
    args: &TestbedArgs,
    debug: &DebugKnobs,
    policy: StackPolicy,
) -> Result<StackBarrierMode, String> {
    if policy != StackPolicy::ConcurrentScanRescan {
        if args.stack_barriers.as_deref().is_some_and(|s| s != "off")
            || args.first_offset.is_some()
            || debug.gcstackbarrierall
        {
            return Err(format!(
                "stack barriers apply only to --barrier dijkstra; --barrier {} never re-scans stacks",
                args.barrier
            ));
        }
        return Ok(StackBarrierMode::Off);
    }
    let from_knobs = if debug.gcstackbarrieroff {
        Some("off")
    } else if debug.gcstackbarrierall {
        Some("all")
    } else {
        None
    };
    let choice = match (args.stack_barriers.as_deref(), from_knobs) {
        (Some(f), Some(k)) if f != k => {
            return Err(format!(
                "--stack-barriers {f} contradicts the debug knob gcstackbarrier{k}=1"
            ));
        }
        (Some(f), _) => f,
        (None, Some(k)) => k,
        (None, None) => "on",
    };
    match choice {
        "on" => {
            let off = args.first_offset.unwrap_or(1024);
            if off == 0 || !off.is_multiple_of(8) || off > 1 << 30 {
                return Err(format!(
                    "--first-offset {off} must be a positive multiple of 8 up to 1 GiB (use --stack-barriers all for every frame)"
                ));
            }
            Ok(StackBarrierMode::On { first_offset: off })
        }
        "off" | "all" if args.first_offset.is_some() => Err(format!(
            "--first-offset applies only to --stack-barriers on, not {choice}"
        )),
        "off" => Ok(StackBarrierMode::Off),
        "all" => Ok(StackBarrierMode::EVERY_FRAME),
        other => Err(format!("--stack-barriers {other:?} must be on, off or all")),
    }
}

/// What sizes a run's stacks: the workload's deepest call depth, its largest frame (of any
/// function), its mean frame (over its user functions), and the pool its stacks come from.
struct StackNeeds {
    max_depth: usize,
    max_frame: usize,
    mean_frame: usize,
    pool: stacks::StackPool,
}

impl StackNeeds {
    fn of(workload: &dyn Workload, params: &WorkloadParams, config: &GcConfig) -> StackNeeds {
        let image = workload.build(&WorkloadParams {
            goroutines: 1,
            ..*params
        });
        let funcs = image.program.funcs();
        let user: Vec<usize> = funcs
            .iter()
            .filter(|f| f.kind == stacks::FuncKind::User)
            .map(|f| f.frame_size)
            .collect();
        StackNeeds {
            max_depth: workload.max_depth(params),
            max_frame: funcs.iter().map(|f| f.frame_size).max().unwrap_or(0),
            mean_frame: user.iter().sum::<usize>() / user.len().max(1),
            pool: stacks::StackPool::with_max_stack_size(
                config.stack_barriers,
                config.max_stack_size,
            ),
        }
    }
}

/// Refuses a `--depth` whose deepest stack, every frame the largest, would not fit in the
/// largest stack.
fn check_depth_fits(
    workload: &dyn Workload,
    params: &WorkloadParams,
    config: &GcConfig,
) -> Result<(), String> {
    let s = StackNeeds::of(workload, params, config);
    let need = s.max_depth.saturating_mul(s.max_frame);
    let usable = s.pool.usable_size(s.pool.max_stack_size());
    if need > usable {
        return Err(format!(
            "the deepest stack of workload {} ({} frames at --depth {}: a replayed trace adds its own) of frames up to {} bytes may need {need} bytes, over the {usable} usable bytes of the largest ({}-byte) stack",
            workload.name(),
            s.max_depth,
            params.depth,
            s.max_frame,
            s.pool.max_stack_size()
        ));
    }
    Ok(())
}

/// Bookkeeping per goroutine beside its stack: its `g`, interpreter state, behaviour and the
/// heap objects a workload's goroutine keeps.
const GOROUTINE_BYTES: u64 = 4 << 10;

/// What a run holds whatever its size: the program, the engine, buffers (the smallest runs
/// peak at 14 MB).
const FIXED_RUN_BYTES: u64 = 32 << 20;

/// An upper estimate of the memory run `r` holds at its peak, from what sizes it before it
/// starts: every goroutine at the workload's deepest point in a stack of the power of two
/// `newstack` doubles to for frames of the program's mean size, its bookkeeping
/// ([`GOROUTINE_BYTES`]), a heap of twice the heap minimum (a cycle's allocation runs on while
/// it marks) and [`FIXED_RUN_BYTES`]. Peaks measured with `/usr/bin/time` (many-shallow at
/// 100,000 goroutines of depth 10 and 100, and 10,000 of depth 1000; deep-oscillate, 16 of
/// depth 10,000; mixed, 1000 of depth 1000) lie between a sixth of it and all of it: goroutines
/// of most workloads are not all at their deepest at once.
pub fn estimate_peak_bytes(r: &Resolved) -> u64 {
    let s = StackNeeds::of(&*r.workload, &r.params, &r.config);
    let need = s.max_depth.saturating_mul(s.mean_frame);
    let mut stack = stacks::stack::FIXED_STACK;
    while s.pool.usable_size(stack) < need.saturating_add(stacks::stack::STACK_GUARD)
        && stack < s.pool.max_stack_size()
    {
        stack *= 2;
    }
    let goroutines = r.params.goroutines as u64;
    goroutines
        .saturating_mul(stack as u64 + GOROUTINE_BYTES)
        .saturating_add(r.config.heap_minimum.saturating_mul(2))
        .saturating_add(FIXED_RUN_BYTES)
}

/// `--heap-minimum`'s default: Go's `heapminimum`, 4 MiB.
pub const DEFAULT_HEAP_MINIMUM: u64 = 4 << 20;

/// Why a run produced no report: the runtime failed, or an output file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime's error: a checker's violation, or a run that could not complete.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Writing `--trace` or `--profile` failed.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl RunError {
    /// Whether a checker found a violation (exit code 3).
    pub fn is_checker_violation(&self) -> bool {
        matches!(self, RunError::Runtime(e) if e.is_checker_violation())
    }

    fn output(path: &Path, source: io::Error) -> RunError {
        RunError::Output {
            path: path.to_owned(),
            source,
        }
    }
}

/// The violation a finished run's report shows, if any: a malformed profiler traceback under
/// checked rules (`go1.7`, `seed003`), where every traceback must match the true frames. The
/// report is still printed; the exit code is 3.
pub fn report_violation(report: &Report) -> Option<String> {
    let p = report.profile.as_ref()?;
    let rules = report.config.profile_rules?;
    let checked = rules
        .parse::<gc::profile::ProfileRules>()
        .is_ok_and(|r| r.checked());
    (checked && p.counts.malformed > 0).then(|| {
        format!(
            "{} malformed profiler traceback(s) of {} validated under the {rules} rules (the folded profile marks them runtime._Malformed)",
            p.counts.malformed, p.counts.validated
        )
    })
}

/// Runs a resolved configuration to completion.
pub fn run(r: &Resolved) -> Result<Report, RunError> {
    run_timed(r).map(|(report, _)| report)
}

/// One engine, whichever the configuration picked (the threaded one when it has a time limit),
/// behind one `run`: what every experiment that drives a resolved run itself uses.
#[derive(Debug)]
pub enum Engine {
    /// The deterministic engine.
    Deterministic(Box<Deterministic>),
    /// The threaded engine and its limits.
    Threaded(Box<Threaded>, Limits),
}

impl Engine {
    /// The engine `r` asks for, running `image`.
    pub fn new(r: &Resolved, image: gc::WorkloadImage) -> Result<Engine, RuntimeError> {
        Ok(match r.report.time_limit {
            None => Engine::Deterministic(Box::new(Deterministic::new(r.config.clone(), image)?)),
            Some(secs) => Engine::Threaded(
                Box::new(Threaded::new(r.config.clone(), image)?),
                Limits {
                    max_ops: r.max_ops,
                    time_limit: Duration::from_secs_f64(secs),
                },
            ),
        })
    }

    /// Its runtime.
    pub fn runtime(&self) -> &Runtime {
        match self {
            Engine::Deterministic(e) => e.runtime(),
            Engine::Threaded(e, _) => e.runtime(),
        }
    }

    /// Runs `cycles` more cycles (the threaded engine within its limits).
    pub fn run(&mut self, cycles: u32, max_ops: u64) -> Result<RunResult, RuntimeError> {
        match self {
            Engine::Deterministic(e) => e.run(cycles, max_ops),
            Engine::Threaded(e, limits) => e.run(cycles, *limits),
        }
    }
}

/// [`run`], also giving the wall time of the engine's run (the workload's build excluded): the
/// denominator of mutator throughput.
pub fn run_timed(r: &Resolved) -> Result<(Report, Duration), RunError> {
    run_measured(r).map(|(report, t)| (report, t.run))
}

/// Where a run's wall time went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// The engine's run, from its creation to its last cycle (the workload's build excluded).
    pub run: Duration,
    /// Finishing `--trace` (waiting for the encoder to write what it was handed, the metadata,
    /// the rename) and writing `--profile`; zero without them.
    pub outputs: Duration,
}

/// [`run`], with [`Timings`].
///
/// With `--trace`, a [`ChromeTraceWriter`] is the trace's sink for the whole run (warm-up
/// included) and is finished, its `otherData` the resolved configuration and the tracer's
/// counters, only when the run succeeds; with `--profile`, the folded stacks are written
/// atomically after it. A failed run leaves neither file (nor a partial one) behind.
pub fn run_measured(r: &Resolved) -> Result<(Report, Timings), RunError> {
    let image = r.workload.build(&r.params);
    let trace_sink = match &r.trace_file {
        Some(path) => Some(SharedSink::new(
            ChromeTraceWriter::create(path).map_err(|e| RunError::output(path, e))?,
        )),
        None => None,
    };
    let start = std::time::Instant::now();
    let warmup = r.report.warmup_cycles;
    let all_cycles = r.cycles + warmup;
    let mut engine = Engine::new(r, image)?;
    if let (Some(sink), Some(tr)) = (&trace_sink, &engine.runtime().trace) {
        tr.set_sink(Box::new(sink.clone()));
    }
    let RunResult {
        cycles,
        totals,
        rescan_bound,
        mmu,
        profile,
        trace,
        scan_stalls,
        ..
    } = engine.run(all_cycles, r.max_ops)?;
    let wall = start.elapsed();
    let (on_stacks, ended_unreported) = engine.runtime().stkbar_books();
    let outputs_start = std::time::Instant::now();
    if let (Some(sink), Some(path)) = (trace_sink, &r.trace_file) {
        finish_trace(engine.runtime(), &sink, path, &r.report)?;
    }
    if let (Some(prof), Some(path)) = (&profile, &r.profile_file) {
        let folded = if prof.stacks.is_empty() {
            String::new()
        } else {
            prof.folded(&engine.runtime().prog)
        };
        cli::write_atomically(path, |w| w.write_all(folded.as_bytes()))
            .map_err(|e| RunError::output(path, e))?;
    }
    let timings = Timings {
        run: wall,
        outputs: outputs_start.elapsed(),
    };
    let cycles: Vec<CycleStats> = cycles.into_iter().skip(warmup as usize).collect();
    let totals = if warmup == 0 {
        totals
    } else {
        let stalls = gc::stats::scan_stalls_of(&scan_stalls, &cycles);
        Totals::of(&cycles, totals.mutator_ops, stalls)
    };
    Ok((
        Report {
            config: r.report.clone(),
            totals,
            cycles,
            rescan_bound,
            mmu,
            barriers_outstanding: BarriersOutstanding {
                on_stacks,
                ended_unreported,
            },
            trace,
            profile: profile.map(|p| ProfileSummary {
                counts: p.counts,
                signals_sent: p.signals_sent,
                stacks: p.stacks.len(),
            }),
        },
        timings,
    ))
}

/// Takes the trace's sink back after the run (every buffer read) and finishes the file, unless
/// the sink failed on the way: the trace would then lack events, and is dropped.
fn finish_trace(
    rt: &Runtime,
    sink: &SharedSink<ChromeTraceWriter>,
    path: &Path,
    config: &ConfigReport,
) -> Result<(), RunError> {
    let stats = rt.trace.as_ref().map(gc::Trace::stats);
    let error = rt.trace.as_ref().and_then(|tr| tr.take_sink().1);
    let writer = sink.take();
    if let Some(e) = error {
        return Err(RunError::output(path, e));
    }
    let writer = writer
        .ok_or_else(|| RunError::output(path, io::Error::other("the trace writer was lost")))?;
    let other_data = serde_json::json!({ "config": config, "trace": stats });
    writer
        .finish(other_data)
        .map_err(|e| RunError::output(path, e))
}

/// The human-readable summary `testbed` prints without `--json`.
pub fn summary(report: &Report) -> String {
    let t = &report.totals;
    let c = &report.config;
    let kib = |b: u64| b as f64 / 1024.0;
    let ms = |ns: u64| ns as f64 / 1e6;
    let oracle_ratio = if t.sum.oracle_rescan_bytes == 0 {
        0.0
    } else {
        t.sum.rescan_bytes as f64 / t.sum.oracle_rescan_bytes as f64
    };
    let mut out = format!(
        "workload {} ({} goroutines, depth {}), barrier {}, stack barriers {}{}, seed {}\n\
         cycles {}, mutator ops {}\n\
         re-scanned {:.1} KiB of {:.1} KiB full ({:.2}% avoided), oracle {:.1} KiB ({:.2}x); \
         {} goroutines on the re-scan lists (median {} a cycle)\n\
         barriers installed {}, hit {}, removed {}, {} left on stacks; stkbar reserved {:.1} KiB \
         (summed over cycles)\n\
         {}\n\
         mark termination p50 {:.3} ms, max {:.3} ms (medians: stop {:.3} + re-scan {:.3} + drain \
         {:.3} + other {:.3} ms); barrier removal ({}) p50 {:.3} ms, {} goroutines skipped; \
         checkmark failures {}",
        c.workload,
        c.goroutines,
        c.depth,
        c.barrier,
        c.stack_barriers,
        c.first_offset
            .map_or(String::new(), |o| format!(" at {o} B")),
        c.seed,
        t.cycles,
        t.mutator_ops,
        kib(t.sum.rescan_bytes),
        kib(t.sum.full_rescan_bytes),
        100.0 * t.rescan_avoided,
        kib(t.sum.oracle_rescan_bytes),
        oracle_ratio,
        t.sum.rescan_goroutines,
        t.rescan_goroutines_p50,
        t.sum.barriers_installed,
        t.sum.barriers_hit,
        t.sum.barriers_removed,
        report.barriers_outstanding.on_stacks,
        kib(t.sum.stkbar_reserved_bytes),
        bound_line(&report.rescan_bound),
        ms(t.mark_term_ns_p50),
        ms(t.mark_term_ns_max),
        ms(t.stw_stop_ns_p50),
        ms(t.mark_term_rescan_ns_p50),
        ms(t.mark_term_drain_ns_p50),
        ms(t.mark_term_other_ns_p50),
        c.barrier_removal,
        ms(t.barrier_removal_ns_p50),
        t.sum.removal_skipped,
        t.sum.checkmark_failures
    );
    let sum = &t.sum;
    if sum.stackshadow_frames_verified > 0 || sum.skipped_frames_changed > 0 {
        out.push_str(&format!(
            "\nstackshadow: {} frames ({:.1} KiB) the re-scans skipped verified, {} changed; content oracle {:.1} KiB of {:.1} KiB re-scanned; records {:.1} KiB",
            sum.stackshadow_frames_verified,
            kib(sum.stackshadow_bytes_verified),
            sum.skipped_frames_changed,
            kib(sum.content_rescan_bytes),
            kib(sum.rescan_bytes),
            kib(sum.stackshadow_bytes),
        ));
    }
    let took = [
        ("wb-drop", sum.wb_dropped),
        ("rescan-skip", sum.rescan_frames_skipped),
        ("bound-short or a lagging bound", sum.rescans_shortened),
        ("hit-lost", sum.hits_lost),
        ("unwind-skip", sum.unwinds_skipped),
    ];
    if took.iter().any(|(_, n)| *n > 0) {
        let parts: Vec<String> = took
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        out.push_str(&format!("\nfaults took effect: {}", parts.join(", ")));
    }
    if let (Some(tr), Some(file)) = (&report.trace, &c.trace) {
        out.push_str(&format!(
            "\ntrace: {} events, {} buffers of {:.0} KiB allocated -> {file}",
            tr.events,
            tr.buffers_allocated,
            kib(tr.buffer_bytes) / tr.buffers_allocated.max(1) as f64,
        ));
    }
    if let (Some(p), Some(file)) = (&report.profile, &c.profile) {
        let n = &p.counts;
        out.push_str(&format!(
            "\nprofile ({} rules): {} samples ({} goroutine tracebacks, {} g0 tracebacks, {} System, {} malformed), {} stacks -> {file}",
            c.profile_rules.unwrap_or("?"),
            n.samples,
            n.user_samples,
            n.g0_samples,
            n.system_samples,
            n.malformed,
            p.stacks
        ));
    }
    out
}

/// The summary's line on ARCHITECTURE.md §4's bound.
fn bound_line(b: &RescanBound) -> String {
    let past = if b.past_first_offset == 0 {
        "none returned past the first offset".to_owned()
    } else {
        format!(
            "{} returned past the first offset, re-scan reach at most {:.2}x the return height",
            b.past_first_offset, b.max_reach_ratio
        )
    };
    format!(
        "bounded re-scans {}, {} within the ARCHITECTURE.md §4 bound; {past}",
        b.bounded_rescans,
        b.bounded_rescans - b.outside_bound
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn resolve_flags(flags: &[&str]) -> Result<Resolved, String> {
        let argv = ["testbed", "--workload", "mixed"].iter().chain(flags);
        resolve(&TestbedArgs::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    #[test]
    fn tracing_and_profiling_are_off_unless_asked() {
        let r = resolve_flags(&[]).unwrap();
        assert!(!r.config.trace);
        assert_eq!(r.config.profile, None);
        assert_eq!((r.trace_file, r.profile_file), (None, None));
        let c = &r.report;
        assert_eq!(
            (&c.trace, &c.profile, c.profile_rules),
            (&None, &None, None)
        );
        assert_eq!((c.profile_period, c.profile_interval_us), (None, None));
    }

    #[test]
    fn profile_knobs_resolve_per_engine_with_the_profilers_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cpu.folded").display().to_string();
        let defaults = ProfileConfig::default();
        let r = resolve_flags(&["--profile", &f]).unwrap();
        assert_eq!(r.config.profile, Some(defaults));
        assert_eq!(r.report.profile_period, Some(defaults.period));
        assert_eq!(r.report.profile_interval_us, None);
        assert_eq!(r.report.profile_rules, Some("go1.7"));
        let r = resolve_flags(&[
            "--profile",
            &f,
            "--engine",
            "threaded",
            "--profile-interval-us",
            "250",
            "--profile-rules",
            "seed003",
        ])
        .unwrap();
        let p = r.config.profile.unwrap();
        assert_eq!(p.interval, Duration::from_micros(250));
        assert_eq!(p.rules, gc::profile::ProfileRules::Seed003);
        assert_eq!(r.report.profile_interval_us, Some(250.0));
        assert_eq!(r.report.profile_period, None);
        assert_eq!(r.report.profile_rules, Some("seed003"));
        // Nothing was created by the check that the directory takes a file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn help_states_the_profilers_defaults() {
        let cmd = TestbedArgs::command();
        let help = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
        };
        let d = ProfileConfig::default();
        assert!(
            help("profile_period").contains(&format!("[default: {}]", d.period)),
            "{}",
            help("profile_period")
        );
        let us = d.interval.as_micros();
        assert!(
            help("profile_interval_us").contains(&format!("[default: {us}]")),
            "{}",
            help("profile_interval_us")
        );
        assert!(
            help("profile_rules").contains(&format!("[default: {}]", d.rules)),
            "{}",
            help("profile_rules")
        );
    }

    /// A malformed traceback is a checker violation under checked rules, and the expected
    /// outcome without them.
    #[test]
    fn a_malformed_sample_is_a_violation_only_under_checked_rules() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cpu.folded").display().to_string();
        for (rules, violation) in [("go1.7", true), ("seed003", true), ("none", false)] {
            let flags = [
                "--goroutines",
                "4",
                "--depth",
                "10",
                "--cycles",
                "1",
                "--heap-minimum",
                "262144",
                "--profile",
                &f,
            ];
            let r = resolve_flags(&[&flags[..], &["--profile-rules", rules]].concat()).unwrap();
            let mut report = run(&r).unwrap();
            assert_eq!(report_violation(&report), None, "{rules}: a clean run");
            report.profile.as_mut().unwrap().counts.malformed = 1;
            let v = report_violation(&report);
            assert_eq!(v.is_some(), violation, "{rules}: {v:?}");
            if let Some(v) = v {
                assert!(v.contains(&format!("under the {rules} rules")), "{v}");
            }
        }
    }
}
