//! The runtime's shared state: everything every P, M and mark worker reaches through `&self`.
//!
//! Invariant: everything in [`Runtime`] is shared (`Sync`) and reached through `&self`; what a
//! thread owns alone — a [`P`], a mark worker's [`GcWork`] — is passed in by `&mut`. A
//! goroutine's stack is touched only under its [`GOwner`] (see `sched`). Both engines drive the
//! same functions, which live beside the concern they serve, as Go splits its runtime into files:
//! the scheduler in `proc` (`proc.go`), the mutator interpreter in `interp`, the write-barrier
//! entry point in `wbarrier` (`mbarrier.go`), allocation in `malloc` (`malloc.go`), the collector's
//! steps in `mgc`, `mark` and `sweep`, and the tracer's and profiler's helpers in `trace` and
//! `profile`. This module holds the configuration ([`GcConfig`]), the workload's image and the
//! [`Runtime`] struct with its constructor and accessors.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use stacks::{Program, StackBarrierMode, StackPool};

use crate::debug::{DebugKnobs, FaultLog, Inject};
use crate::error::RuntimeError;
use crate::heap::{Globals, Heap, ObjType, lock};
use crate::mgc::GcState;
use crate::mutator::Behaviour;
use crate::proc::PFlags;
use crate::profile::ProfileConfig;
use crate::sanitizer::Sanitizer;
use crate::sched::{G, GIndex, GState, P};
use crate::trace::Trace;
use crate::wbarrier::{BarrierDesign, Dijkstra, StackPolicy};

/// Everything that configures a run of the collector.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// The write-barrier design.
    pub design: &'static dyn BarrierDesign,
    /// Stack barriers for the `dijkstra` re-scan (`Off` for designs that never re-scan).
    pub stack_barriers: StackBarrierMode,
    /// When the barriers a cycle installed are removed.
    pub barrier_removal: BarrierRemoval,
    /// How long a goroutine runs before the scheduler asks it to give up its P at its next
    /// call (Go's `forcePreemptNS`, 10 ms, enforced by `sysmon`). The threaded engine measures
    /// it in wall time; the deterministic engine on its own clock (see `engine`).
    pub time_slice_ns: u64,
    /// GOGC; `None` is `off` (cycles only when forced).
    pub gogc: Option<u32>,
    /// The smallest heap goal (Go's `heapminimum`, 4 MiB).
    pub heap_minimum: u64,
    /// The heap's address-space limit.
    pub heap_max: usize,
    /// The largest goroutine stack.
    pub max_stack_size: usize,
    /// Number of Ps.
    pub procs: usize,
    /// Fraction of scheduling steps given to the collector while it has work (Go's 25 %).
    pub gc_share: f64,
    /// Heap bytes one collector step of the deterministic engine scans at most (at least one
    /// object): the marker's speed relative to the mutator's. See [`crate::mark::MARK_STEP_BYTES`].
    pub mark_step_bytes: u64,
    /// Force a cycle after this many mutator operations without one.
    pub force_gc_ops: Option<u64>,
    /// The program's seed: the workload's choices (each goroutine's draws) and the injected
    /// faults.
    pub seed: u64,
    /// The schedule's seed: the deterministic engine's choice of P and of the collector's turn,
    /// the threaded engine's per-P draws for the collector's share, and when profiling signals
    /// arrive. Separate from `seed` so that a sweep can vary the program and the schedule one at
    /// a time; `None`: the same as `seed` (see [`GcConfig::sched_seed`]).
    pub sched_seed: Option<u64>,
    /// Debug knobs.
    pub debug: DebugKnobs,
    /// Faults injected on purpose (`--inject`), for showing the checkers catch them.
    pub inject: Inject,
    /// The sanitizer (seed 004's per-P race contexts), if on.
    pub sanitizer: Option<SanitizerOptions>,
    /// GOMAXPROCS changes during the run: `(cycle, procs)` makes the P count `procs` at the
    /// stop-the-world that starts `cycle` (Go's `procresize`), in increasing cycle order.
    pub procs_schedule: Vec<(u32, usize)>,
    /// Keep a [`crate::RescanRecord`] per re-scanned goroutine.
    pub record_rescans: bool,
    /// Trace the run (see `trace`); the events go to the sink set on [`Runtime::trace`].
    pub trace: bool,
    /// Profile the run (see `profile`).
    pub profile: Option<ProfileConfig>,
    /// How a concurrent scan treats a stack: whole while the goroutine waits (Go), or lazily
    /// behind a watermark (see `stacks::watermark`; `hybrid` only).
    pub stack_scan: StackScan,
}

/// How the concurrent scan of one stack is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StackScan {
    /// The whole stack while the goroutine is stopped (every Go release).
    #[default]
    Eager,
    /// The first frames while the goroutine is stopped, the rest behind a moving return barrier,
    /// by the marker concurrently and by the goroutine's own returns (JDK ZGC's stack
    /// watermarks; proposal 17503's "low-pause stack scans").
    Lazy {
        /// Frames scanned at the stop (at least the running one).
        first_frames: usize,
        /// Frames one marker step scans above the watermark, holding the stack-barrier lock.
        step_frames: usize,
    },
}

impl StackScan {
    /// Lazy scanning with one frame at the stop and [`LAZY_STEP_FRAMES`] per marker step.
    pub const LAZY: StackScan = StackScan::Lazy {
        first_frames: 1,
        step_frames: LAZY_STEP_FRAMES,
    };

    /// `eager` or `lazy`.
    pub fn name(self) -> &'static str {
        match self {
            StackScan::Eager => "eager",
            StackScan::Lazy { .. } => "lazy",
        }
    }
}

/// Frames a marker scans above a watermark per step, holding the stack-barrier lock, so a
/// goroutine returning into its watermark waits for at most this many: a few microseconds of
/// 32–64-byte frames. A step pays its bookkeeping once (the root queue, the lock, one move of the
/// watermark); on `deep-oscillate` 64 × 10,000 (threaded, 2 Ps, two runs each) the mark phase took
/// 81–109 ms a cycle eager, 90–119 with steps of 16 frames, 71–84 with 64, 77–93 with 256.
pub const LAZY_STEP_FRAMES: usize = 64;

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            design: &Dijkstra,
            stack_barriers: StackBarrierMode::GO,
            barrier_removal: BarrierRemoval::AfterRestart,
            time_slice_ns: FORCE_PREEMPT_NS,
            gogc: Some(100),
            heap_minimum: 4 << 20,
            heap_max: 1 << 30,
            max_stack_size: stacks::stack::DEFAULT_MAX_STACK_SIZE,
            procs: 4,
            gc_share: 0.25,
            mark_step_bytes: crate::mark::MARK_STEP_BYTES,
            force_gc_ops: None,
            seed: 1,
            sched_seed: None,
            debug: DebugKnobs::default(),
            inject: Inject::default(),
            sanitizer: None,
            procs_schedule: Vec::new(),
            record_rescans: false,
            trace: false,
            profile: None,
            stack_scan: StackScan::Eager,
        }
    }
}

/// When the stack barriers a cycle installed are removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BarrierRemoval {
    /// Go 1.7 (`gcTryRemoveAllStackBarriers`): after the world restarts, best effort, by a walk
    /// over every goroutine on one P; a running goroutine is skipped, keeps its barriers (it may
    /// hit them while the world runs) and loses them as stale at its next scan.
    #[default]
    AfterRestart,
    /// Go 1.5/1.6: inside the mark-termination pause, every goroutine that got barriers this
    /// cycle, one after another on the thread running mark termination. Go 1.6 spread that
    /// work over its parallel helpers as part of re-scanning every stack; this mode keeps Go
    /// 1.7's re-scan list and removes serially, so it is what the removal alone adds to a
    /// pause, not a model of Go 1.6's whole mark termination.
    InPause,
}

impl std::str::FromStr for BarrierRemoval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "after-restart" => Ok(BarrierRemoval::AfterRestart),
            "in-pause" => Ok(BarrierRemoval::InPause),
            _ => Err(format!(
                "unknown barrier removal {s:?} (valid: after-restart, in-pause)"
            )),
        }
    }
}

impl std::fmt::Display for BarrierRemoval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BarrierRemoval::AfterRestart => "after-restart",
            BarrierRemoval::InPause => "in-pause",
        })
    }
}

/// Go's `forcePreemptNS`: the time slice after which `sysmon` preempts a goroutine.
pub const FORCE_PREEMPT_NS: u64 = 10_000_000;

/// How the sanitizer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SanitizerOptions {
    /// Sweep tells the sweeping P's context of every object it frees (seed 004); without it the
    /// metadata of dead objects is never released.
    pub free_notify: bool,
}

impl GcConfig {
    /// The schedule's seed: `sched_seed`, or the program's seed when it is unset.
    pub fn sched_seed(&self) -> u64 {
        self.sched_seed.unwrap_or(self.seed)
    }

    /// The most Ps the run ever has: the engines make this many and keep the ones beyond the
    /// current count dead.
    pub fn max_procs(&self) -> usize {
        self.procs_schedule
            .iter()
            .map(|&(_, n)| n)
            .chain(std::iter::once(self.procs))
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The P count the schedule sets at the start of `cycle`, if it changes it then.
    pub fn procs_at_cycle(&self, cycle: u32) -> Option<usize> {
        self.procs_schedule
            .iter()
            .find(|&&(c, _)| c == cycle)
            .map(|&(_, n)| n)
    }
}

/// What a workload gives the runtime: its code, its types, its globals and its first goroutines.
#[derive(Debug)]
pub struct WorkloadImage {
    /// The simulated program.
    pub program: Program,
    /// Object types.
    pub types: Vec<ObjType>,
    /// Number of global pointer words.
    pub globals: usize,
    /// The goroutines to start, in order.
    pub goroutines: Vec<Box<dyn Behaviour>>,
    /// How many parked goroutines the network poller wakes per millisecond (requests arriving
    /// at a server, timers firing); 0 for none. See [`Runtime::netpoll`].
    pub wakes_per_ms: f64,
}

/// What a mutator step did to its goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An operation ran; the goroutine is still current.
    Ran,
    /// The goroutine left the P (yield, block, exit, preemption).
    Switched,
    /// The P had nothing to run.
    Idle,
}

/// The shared runtime.
#[derive(Debug)]
pub struct Runtime {
    /// The simulated program.
    pub prog: Program,
    /// The heap.
    pub heap: Heap,
    /// The globals.
    pub globals: Globals,
    /// The configuration.
    pub config: GcConfig,
    /// Collector state.
    pub gc: GcState,
    /// Pointer-slot word indices of every function, back to back; function `f`'s are
    /// `ptr_slot_words[ptr_slot_range[f]]`.
    pub(crate) ptr_slot_words: Box<[u32]>,
    pub(crate) ptr_slot_range: Box<[(u32, u32)]>,
    /// Per function, the word index that each slot operand `k` (0–255) names: its pointer slot
    /// `k mod n`, resolved once here so the interpreter's operand is one load (0 where the
    /// function has no pointer slots).
    pub(crate) operand_words: Box<[[u32; 256]]>,
    pub(crate) stackpool: Mutex<StackPool>,
    pub(crate) allg: boxcar::Vec<G>,
    pub(crate) gfree: Mutex<Vec<GIndex>>,
    pub(crate) globrunq: Mutex<VecDeque<GIndex>>,
    pub(crate) parked: Mutex<Vec<GIndex>>,
    pub(crate) next_goid: AtomicU64,
    pub(crate) live_gs: AtomicUsize,
    pub(crate) shade_old: bool,
    pub(crate) shade_new: bool,
    pub(crate) wb_on: AtomicBool,
    /// Heap and global stores take the checked path: wbshadow is on or barriers may be dropped.
    pub(crate) checked_stores: bool,
    /// Stripes serialising a word's shadow check with its store (see `wbshadow`).
    pub(crate) shadow_locks: Box<[Mutex<()>]>,
    /// What the injected faults did, and the store clock.
    pub fault_log: FaultLog,
    /// The sanitizer, if on.
    pub sanitizer: Option<Sanitizer>,
    /// The current P count (Go's `gomaxprocs`); Ps beyond it are dead.
    pub(crate) gomaxprocs: AtomicUsize,
    /// Per P: come to the scheduler at the next safe point (Go's `preempt` flag, set for every
    /// running goroutine by `preemptall` when the world stops). Only the threaded engine sets it.
    pub(crate) preempt: PFlags,
    /// Per P: a profiling signal is pending for its M (set by the threaded engine's profiler
    /// thread).
    pub(crate) sigpending: PFlags,
    /// Per P: its thread is not asleep (the threaded engine keeps it), so its M uses CPU time and
    /// may be sent a profiling signal.
    pub(crate) oncpu: PFlags,
    /// The tracer, while tracing.
    pub trace: Option<Trace>,
    /// Goroutines keep their true frames for the profiler to check its samples against.
    pub(crate) keep_true_frames: bool,
    /// The concurrent GC phase whose trace slice is open (`trace::PHASE_*`, 0 for none), and
    /// when it began, in trace time.
    pub(crate) trace_open_phase: AtomicU64,
    /// The workload's wake rate for parked goroutines (the network poller), per nanosecond.
    pub(crate) wake_per_ns: f64,
    /// Wakes the poller has made due so far.
    pub(crate) netpoll_woken: AtomicU64,
    pub(crate) trace_phase_since: AtomicU64,
}

impl Runtime {
    /// A runtime for `image`, its goroutines created and queued round-robin on `ps`.
    pub fn new(
        config: GcConfig,
        image: WorkloadImage,
        ps: &mut [P],
    ) -> Result<Runtime, RuntimeError> {
        let mut ptr_slot_words = Vec::new();
        let mut ptr_slot_range = Vec::new();
        let mut operand_words = Vec::new();
        for f in image.program.funcs() {
            let start = ptr_slot_words.len();
            ptr_slot_words.extend(f.ptr_map.iter_ones().map(|w| w as u32));
            let slots = &ptr_slot_words[start..];
            ptr_slot_range.push((start as u32, ptr_slot_words.len() as u32));
            operand_words.push(std::array::from_fn(|k| {
                if slots.is_empty() {
                    0
                } else {
                    slots[k % slots.len()]
                }
            }));
        }
        let design = config.design;
        let wbshadow = config.debug.wbshadow > 0;
        let heap = Heap::new(image.types, config.heap_max);
        let rt = Runtime {
            heap: if wbshadow { heap.with_wbshadow() } else { heap },
            globals: Globals::new(image.globals, wbshadow),
            gc: GcState::new(&config),
            ptr_slot_words: ptr_slot_words.into(),
            ptr_slot_range: ptr_slot_range.into(),
            operand_words: operand_words.into(),
            stackpool: Mutex::new({
                let mut pool =
                    StackPool::with_max_stack_size(config.stack_barriers, config.max_stack_size);
                pool.set_invalidptr(config.debug.invalidptr);
                pool
            }),
            allg: boxcar::Vec::new(),
            gfree: Mutex::default(),
            globrunq: Mutex::default(),
            parked: Mutex::default(),
            next_goid: AtomicU64::new(1),
            live_gs: AtomicUsize::new(0),
            shade_old: design.shades_old(),
            shade_new: design.shades_new(),
            wb_on: AtomicBool::new(false),
            checked_stores: wbshadow || config.inject.wb_drop > 0.0,
            shadow_locks: (0..if wbshadow {
                crate::wbshadow::SHADOW_LOCKS
            } else {
                0
            })
                .map(|_| Mutex::new(()))
                .collect(),
            fault_log: FaultLog::default(),
            sanitizer: config.sanitizer.map(|_| Sanitizer::new()),
            gomaxprocs: AtomicUsize::new(config.procs.clamp(1, ps.len().max(1))),
            preempt: PFlags::new(ps.len()),
            sigpending: PFlags::new(ps.len()),
            oncpu: PFlags::new(ps.len()),
            trace: config.trace.then(Trace::new),
            keep_true_frames: config.profile.is_some_and(|c| c.validate),
            trace_open_phase: AtomicU64::new(0),
            wake_per_ns: image.wakes_per_ms.max(0.0) / 1e6,
            netpoll_woken: AtomicU64::new(0),
            trace_phase_since: AtomicU64::new(0),
            prog: image.program,
            config,
        };
        let nprocs = rt.gomaxprocs();
        for p in ps.iter_mut() {
            p.dead = p.id >= nprocs;
            if !p.dead
                && let Some(san) = &rt.sanitizer
            {
                p.racectx = Some(san.proc_create());
            }
        }
        for (i, b) in image.goroutines.into_iter().enumerate() {
            rt.newproc(b, &mut ps[i % nprocs])?;
        }
        Ok(rt)
    }

    /// The current P count.
    #[inline]
    pub fn gomaxprocs(&self) -> usize {
        self.gomaxprocs.load(Ordering::Relaxed)
    }

    /// The goroutine at `index`. While mark termination counts the goroutines it visits, this
    /// is where they are counted: every way to a goroutine passes here.
    #[inline]
    pub fn g(&self, index: GIndex) -> &G {
        if self.gc.counting_g_visits.load(Ordering::Relaxed) {
            self.gc.g_visits.fetch_add(1, Ordering::Relaxed);
        }
        &self.allg[index as usize]
    }

    /// Calls `f` with the state of every goroutine that has one and can be taken as a scan takes
    /// it — with the world stopped, every live one — releasing each after; stops at `f`'s first
    /// error. The read-only walks over every goroutine (checkmark, stackshadow, the barrier books)
    /// go through here.
    pub(crate) fn for_each_g_state<E>(
        &self,
        mut f: impl FnMut(&GState) -> Result<(), E>,
    ) -> Result<(), E> {
        for index in 0..self.allglen() as GIndex {
            let g = self.g(index);
            let Some((mut owner, restore)) = g.try_own_for_scan() else {
                continue;
            };
            let r = g.state(&mut owner).as_ref().map_or(Ok(()), &mut f);
            g.release(owner, restore);
            r?;
        }
        Ok(())
    }

    /// Number of `G`s ever created (live, dead or reusable).
    pub fn allglen(&self) -> usize {
        self.allg.count()
    }

    /// Whether concurrent scans keep stackshadow's records: the checker is on, or a fault that
    /// changes what re-scans shade is injected (its effect is then counted, not fatal).
    pub fn keeps_stack_records(&self) -> bool {
        self.config.debug.stackshadow || self.config.inject.rescan_faults()
    }

    /// Goroutines alive now.
    pub fn live_goroutines(&self) -> usize {
        self.live_gs.load(Ordering::Relaxed)
    }

    /// Whether the global run queue is empty.
    pub fn globrunq_is_empty(&self) -> bool {
        lock(&self.globrunq).is_empty()
    }

    /// Goroutines blocked now.
    pub fn parked_goroutines(&self) -> usize {
        lock(&self.parked).len()
    }

    /// The write-barrier design's stack policy.
    pub fn stack_policy(&self) -> StackPolicy {
        self.config.design.stack_policy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutator::{Behaviour, Ctx, Op, Rng};
    use crate::sched::P;
    use stacks::Program;

    #[derive(Debug)]
    struct Idle;

    impl Behaviour for Idle {
        fn next_op(&mut self, _: &Ctx, _: &mut Rng) -> Op {
            Op::Yield
        }
    }

    #[test]
    fn pointer_slots_of_a_frame_larger_than_512_kib_keep_their_word_indices() {
        // A 1 MiB frame (the largest the builder accepts) with pointer slots past word 65,535.
        let words = [0, 70_000, 131_070];
        let program = Program::builder()
            .func_with_pointers("main.huge", 1 << 20, &words)
            .build()
            .unwrap();
        let f = program.lookup("main.huge").unwrap();
        let image = WorkloadImage {
            program,
            types: Vec::new(),
            globals: 1,
            goroutines: vec![Box::new(Idle) as Box<dyn Behaviour>],
            wakes_per_ms: 0.0,
        };
        let mut ps = vec![P::new(0)];
        let rt = Runtime::new(GcConfig::default(), image, &mut ps).unwrap();
        let got: Vec<usize> = rt.ptr_slots(f).iter().map(|&w| w as usize).collect();
        assert_eq!(got, words);
        // Slot operand k names pointer slot k mod 3.
        for k in 0..256 {
            assert_eq!(
                rt.operand_words[f.0 as usize][k] as usize,
                words[k % 3],
                "operand {k}"
            );
        }
    }
}
