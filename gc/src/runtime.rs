//! The runtime: the state every P, M and mark worker shares, the scheduler's operations, the
//! mutator interpreter and the one write-barrier entry point.
//!
//! Invariant: everything in [`Runtime`] is shared (`Sync`) and reached through `&self`; what a
//! thread owns alone — a [`P`], a mark worker's [`GcWork`] — is passed in by `&mut`. Both engines
//! drive the same functions: [`Runtime::mutator_run`] runs a P's current goroutine operation by
//! operation (every boundary a safe point); the collector's steps live in `mgc`, `mark` and
//! `sweep`. A goroutine's stack is touched only under its [`GOwner`] (see `sched`).
//!
//! The interpreter keeps, for a goroutine scanned in this cycle, the watermark of DESIGN §4 (the
//! highest frame that has run since the scan): returns, unwinds and runtime bulk writes raise it;
//! calls and local stores happen below it. Mark termination turns it into `oracle_rescan_bytes`.
//!
//! Switches. A goroutine reaches its P's M through `gogo` and leaves it through `mcall`, each a
//! few separate register stores with a micro-operation boundary between them, where a profiling
//! signal may land (see `profile`); so do the stores of a barrier hit, install or removal on the
//! running goroutine's own stack (`stacks::signal`). The scheduler, the switches and the code
//! that runs with the world stopped are `nowritebarrier` regions (see `nowb`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rand::{RngExt, SeedableRng};
use stacks::{
    Addr, Call, FuncId, FuncKind, GStack, Program, Ret, StackBarrierMode, StackError, StackPool,
    WORD, bad_pointer_value,
};

use crate::debug::{DebugKnobs, DroppedBarrier, FaultLog, Inject, seeded_fraction};
use crate::error::{RuntimeError, TRACEBACK_FRAMES, short_traceback, stack_place, traceback};
use crate::heap::{Globals, Heap, Lookup, ObjRef, ObjType, lock};
use crate::mgc::GcState;
use crate::mutator::{Behaviour, Ctx, Op, Rng};
use crate::nowb::nowritebarrier;
use crate::profile::{BarrierSignals, Curg, MProf, MState, ProfileConfig, Where};
use crate::sanitizer::{ProcCtx, Sanitizer};
use crate::sched::{G, GIndex, GOwner, GState, P, ScanTrack, status};
use crate::trace::{
    PHASE_MARK, PHASE_SWEEP, STW_MARK_TERMINATION, Trace, TraceEv, TraceEvent, Track,
};
use crate::wbarrier::{BarrierDesign, Dijkstra, StackPolicy};
use crate::workbuf::GcWork;

/// Test-only faults that make the collector wrong on purpose, so tests can show the checkers
/// catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Faults {
    /// A wrong re-scan bound: stop the mark-termination re-scan one frame before the frame holding
    /// the lowest un-hit barrier.
    pub rescan_stop_one_frame_short: bool,
}

/// Everything that configures a run of the collector.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// The write-barrier design.
    pub design: &'static dyn BarrierDesign,
    /// Stack barriers for the `dijkstra` re-scan (`Off` for designs that never re-scan).
    pub stack_barriers: StackBarrierMode,
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
    /// The seed.
    pub seed: u64,
    /// Debug knobs.
    pub debug: DebugKnobs,
    /// Faults injected on purpose (`--inject`), for showing the checkers catch them.
    pub inject: Inject,
    /// Deliberate bugs, for testing the checkers.
    pub faults: Faults,
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
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            design: &Dijkstra,
            stack_barriers: StackBarrierMode::GO,
            gogc: Some(100),
            heap_minimum: 4 << 20,
            heap_max: 1 << 30,
            max_stack_size: stacks::stack::DEFAULT_MAX_STACK_SIZE,
            procs: 4,
            gc_share: 0.25,
            mark_step_bytes: crate::mark::MARK_STEP_BYTES,
            force_gc_ops: None,
            seed: 1,
            debug: DebugKnobs::default(),
            inject: Inject::default(),
            faults: Faults::default(),
            sanitizer: None,
            procs_schedule: Vec::new(),
            record_rescans: false,
            trace: false,
            profile: None,
        }
    }
}

/// How the sanitizer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SanitizerOptions {
    /// Sweep tells the sweeping P's context of every object it frees (seed 004); without it the
    /// metadata of dead objects is never released.
    pub free_notify: bool,
}

impl GcConfig {
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

/// Where a barriered store writes: Go's `writebarrierptr` destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Pointer word `1` of heap object `0`.
    Field(ObjRef, usize),
    /// A global.
    Global(usize),
    /// A slot of an outer frame of the storing goroutine's own stack.
    Stack(Addr),
}

impl Slot {
    /// The slot's address.
    pub(crate) fn addr(self, rt: &Runtime) -> u64 {
        match self {
            Slot::Field(o, w) => o.base.add(w * stacks::WORD).0,
            Slot::Global(i) => rt.globals.addr(i).0,
            Slot::Stack(a) => a.0,
        }
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
    ptr_slot_words: Box<[u16]>,
    ptr_slot_range: Box<[(u32, u32)]>,
    pub(crate) stackpool: Mutex<StackPool>,
    pub(crate) allg: boxcar::Vec<G>,
    gfree: Mutex<Vec<GIndex>>,
    pub(crate) globrunq: Mutex<VecDeque<GIndex>>,
    parked: Mutex<Vec<GIndex>>,
    next_goid: AtomicU64,
    live_gs: AtomicUsize,
    shade_old: bool,
    shade_new: bool,
    pub(crate) wb_on: AtomicBool,
    /// Heap and global stores take the checked path: wbshadow is on or barriers may be dropped.
    checked_stores: bool,
    /// Stripes serialising a word's shadow check with its store (see `wbshadow`).
    pub(crate) shadow_locks: Box<[Mutex<()>]>,
    /// What the injected faults did, and the store clock.
    pub fault_log: FaultLog,
    /// The sanitizer, if on.
    pub sanitizer: Option<Sanitizer>,
    /// The current P count (Go's `gomaxprocs`); Ps beyond it are dead.
    gomaxprocs: AtomicUsize,
    /// Per P: come to the scheduler at the next safe point (Go's `preempt` flag, set for every
    /// running goroutine by `preemptall` when the world stops). Only the threaded engine sets it.
    preempt: PFlags,
    /// Per P: a profiling signal is pending for its M (set by the threaded engine's profiler
    /// thread).
    sigpending: PFlags,
    /// The tracer, while tracing.
    pub trace: Option<Trace>,
    /// Goroutines keep their true frames for the profiler to check its samples against.
    keep_true_frames: bool,
    /// The concurrent GC phase whose trace slice is open (`trace::PHASE_*`, 0 for none), and
    /// when it began, in trace time.
    trace_open_phase: AtomicU64,
    trace_phase_since: AtomicU64,
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
        for f in image.program.funcs() {
            let start = ptr_slot_words.len() as u32;
            ptr_slot_words.extend(f.ptr_map.iter_ones().map(|w| w as u16));
            ptr_slot_range.push((start, ptr_slot_words.len() as u32));
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
            trace: config.trace.then(Trace::new),
            keep_true_frames: config.profile.is_some_and(|c| c.validate),
            trace_open_phase: AtomicU64::new(0),
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

    /// Changes the P count to `nprocs` (Go's `procresize`), with the world stopped: `ps` is every
    /// P the engine has, each stopped by [`Runtime::stop_p`]. A P that dies hands its run queue to
    /// the global queue and destroys its sanitizer context (`raceprocdestroy`); a P that comes
    /// alive gets a fresh context (`raceproccreate`). Dead Ps stay allocated, as in Go. Then the
    /// sanitizer's books are checked: every context is a live P's, every metadata slot is in
    /// the table, a live context's cache or the global pool.
    pub fn procresize<'p>(
        &self,
        ps: impl IntoIterator<Item = &'p mut P>,
        nprocs: usize,
    ) -> Result<(), RuntimeError> {
        let _nowb = nowritebarrier("procresize");
        let mut contexts = Vec::new();
        for p in ps {
            let dead = p.id >= nprocs;
            if dead && !p.dead {
                debug_assert!(p.curg.is_none(), "stop_p descheduled it");
                if let Some(tr) = &self.trace {
                    tr.release(&mut p.tracebuf);
                }
                lock(&self.globrunq).extend(p.runq.drain(..));
                p.gcw.dispose(&self.gc.pool);
                self.heap.flush_mcache(&mut p.mcache);
                if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.take()) {
                    san.proc_destroy(ctx);
                }
            } else if !dead
                && p.dead
                && let Some(san) = &self.sanitizer
            {
                p.racectx = Some(san.proc_create());
            }
            p.dead = dead;
            contexts.extend(p.racectx.as_ref());
        }
        self.gomaxprocs.store(nprocs, Ordering::Relaxed);
        match &self.sanitizer {
            Some(san) => san
                .check_accounting(&contexts)
                .map_err(RuntimeError::SanitizerAccounting),
            None => Ok(()),
        }
    }

    /// The goroutine at `index`.
    #[inline]
    pub fn g(&self, index: GIndex) -> &G {
        &self.allg[index as usize]
    }

    /// Number of `G`s ever created (live, dead or reusable).
    pub fn allglen(&self) -> usize {
        self.allg.count()
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

    /// Asks P `id` to leave its goroutine at the next safe point and return to its scheduler
    /// loop (`mutator_run` and preemptible mark work return early).
    pub fn preempt_p(&self, id: usize) {
        self.preempt.set(id);
    }

    /// Clears P `id`'s preemption request; its scheduler loop calls this before looking at why
    /// it was preempted.
    pub fn clear_preempt(&self, id: usize) {
        self.preempt.clear(id);
    }

    /// Whether P `id` has been asked to come to a safe point.
    #[inline]
    pub fn preempt_requested(&self, id: usize) -> bool {
        self.preempt.is_set(id)
    }

    /// The write-barrier design's stack policy.
    pub fn stack_policy(&self) -> StackPolicy {
        self.config.design.stack_policy()
    }

    // ---------------------------------------------------------------------------------------
    // Scheduler.

    /// Creates a goroutine running `behaviour` and queues it on `p` (Go's `newproc`).
    pub fn newproc(&self, behaviour: Box<dyn Behaviour>, p: &mut P) -> Result<(), RuntimeError> {
        let index = match lock(&self.gfree).pop() {
            Some(i) => i,
            None => {
                let i = self.allg.count() as GIndex;
                let pushed = self.allg.push(G::new(i));
                debug_assert_eq!(pushed as GIndex, i);
                pushed as GIndex
            }
        };
        let g = self.g(index);
        let mut owner = g
            .try_own(status::DEAD, status::IDLE)
            .expect("a free G is dead and unowned");
        let goid = self.next_goid.fetch_add(1, Ordering::Relaxed);
        g.set_goid(goid);
        // A request to scan the G's previous goroutine does not carry over to this one.
        g.preempt_scan.store(false, Ordering::Relaxed);
        let stack = lock(&self.stackpool).stackalloc(stacks::stack::FIXED_STACK)?;
        let rng = Rng::seed_from_u64(self.config.seed ^ goid.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *g.state(&mut owner) = Some(GState {
            gs: stacks::GStack::new(goid, stack, &self.prog),
            depth: 0,
            behaviour,
            rng,
            gcscanvalid: false,
            track: None,
            gc_assist_bytes: 0,
            true_frames: Vec::new(),
        });
        self.live_gs.fetch_add(1, Ordering::Relaxed);
        p.counters.spawned += 1;
        self.trace_p(p, TraceEv::GoCreate, [goid, 0]);
        self.gc.note_new_goroutine(self, index);
        g.release(owner, status::RUNNABLE);
        p.runq.push_back(index);
        Ok(())
    }

    /// Makes the next runnable goroutine `p`'s current one; false if there is none.
    pub fn schedule(&self, p: &mut P) -> bool {
        let _nowb = nowritebarrier("schedule");
        debug_assert!(p.curg.is_none());
        for _ in 0..p.runq.len() + 1 {
            p.schedtick = p.schedtick.wrapping_add(1);
            let global_first = p.schedtick.is_multiple_of(61);
            let next = global_first
                .then(|| lock(&self.globrunq).pop_front())
                .flatten()
                .or_else(|| p.runq.pop_front())
                .or_else(|| lock(&self.globrunq).pop_front());
            let Some(index) = next else { return false };
            let g = self.g(index);
            let Some(mut owner) = g.try_own(status::RUNNABLE, status::RUNNING) else {
                // A marker holds its stack: try it again later.
                p.runq.push_back(index);
                continue;
            };
            let st = g
                .state(&mut owner)
                .as_mut()
                .expect("a runnable goroutine has state");
            if st.gcscanvalid {
                // It runs again after its scan: its stack is no longer known good (queueRescan).
                st.gcscanvalid = false;
                self.gc.queue_rescan(index);
            }
            p.curg = Some(owner);
            return true;
        }
        false
    }

    /// Takes `p`'s current goroutine off it, leaving it runnable at the front of `p`'s queue
    /// (preemption at a safe point, and stopping the world).
    pub fn deschedule(&self, p: &mut P) {
        if let Some(owner) = p.curg.take() {
            let index = owner.index();
            self.trace_go_left(p, index, crate::trace::LEFT_PREEMPT);
            p.m = MState::Scheduler;
            self.g(index).release(owner, status::RUNNABLE);
            p.runq.push_front(index);
        }
    }

    /// Moves the back half of `p`'s run queue, beyond `keep` goroutines, to the global queue
    /// where idle Ps find it (Go's `runqputslow`).
    pub fn spill_runq(&self, p: &mut P, keep: usize) {
        if p.runq.len() <= keep {
            return;
        }
        let n = if keep == 0 {
            p.runq.len()
        } else {
            (p.runq.len() - keep).div_ceil(2)
        };
        let at = p.runq.len() - n;
        lock(&self.globrunq).extend(p.runq.drain(at..));
    }

    /// Wakes one blocked goroutine, if the P has nothing to do and no goroutine can run anywhere
    /// (the engine's stand-in for a timer or the network poller). Returns whether it did.
    pub fn wake_one_if_all_blocked(&self, p: &mut P, rng: &mut Rng) -> bool {
        let mut parked = lock(&self.parked);
        if parked.is_empty() {
            return false;
        }
        let i = rng.random_range(0..parked.len());
        let index = parked.swap_remove(i);
        drop(parked);
        self.ready(index, p);
        true
    }

    /// Moves a blocked goroutine to `p`'s run queue (Go's `ready`).
    fn ready(&self, index: GIndex, p: &mut P) {
        let g = self.g(index);
        loop {
            if let Some(owner) = g.try_own(status::WAITING, status::RUNNABLE) {
                g.release(owner, status::RUNNABLE);
                break;
            }
            // A marker is scanning it; it releases the stack in a bounded time.
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        p.runq.push_back(index);
    }

    // ---------------------------------------------------------------------------------------
    // The mutator.

    /// Runs one operation of `p`'s current goroutine, scheduling one first if there is none.
    #[inline]
    pub fn mutator_step(&self, p: &mut P) -> Result<Step, RuntimeError> {
        self.mutator_run(p, 1)
    }

    /// Runs up to `max_ops` operations of `p`'s current goroutine (scheduling one first if there
    /// is none), stopping early when it leaves the P. Every operation boundary is a safe point:
    /// a marker's request to scan the stack (Go's preemptscan) is honoured there. Returns
    /// [`Step::Ran`] if the goroutine is still current; `p.counters.ops` counts what ran.
    pub fn mutator_run(&self, p: &mut P, max_ops: u64) -> Result<Step, RuntimeError> {
        if p.curg.is_none() {
            self.sig_boundary(&mut p.prof, p.id, MState::Scheduler, None, Where::Scheduler);
            if !self.schedule(p) {
                return Ok(Step::Idle);
            }
            self.gogo(p);
        }
        let mut owner = p.curg.take().expect("scheduled");
        let index = owner.index();
        let g = self.g(index);
        for _ in 0..max_ops {
            if self.preempt_requested(p.id) {
                break;
            }
            if g.preempt_scan.load(Ordering::Acquire) {
                // A marker asked us to scan our own stack at this safe point.
                g.preempt_scan.store(false, Ordering::Relaxed);
                if let Err(e) = self.self_scan(&mut owner, p) {
                    p.curg = Some(owner);
                    return Err(e);
                }
            }
            let st = g
                .state(&mut owner)
                .as_mut()
                .expect("a running goroutine has state");
            if p.prof.is_some() {
                let curg = Curg {
                    index,
                    gs: &st.gs,
                    true_frames: &st.true_frames,
                };
                self.sig_boundary(&mut p.prof, p.id, MState::User, Some(curg), Where::Op);
            }
            let op = st.behaviour.next_op(&Ctx { depth: st.depth }, &mut st.rng);
            p.counters.ops += 1;
            let leave = match self.exec(op, index, st, p) {
                Ok(Flow::Continue) => continue,
                Ok(Flow::Spawn) => {
                    if let Some(child) = st.behaviour.spawn(&mut st.rng)
                        && let Err(e) = self.newproc(child, p)
                    {
                        p.curg = Some(owner);
                        return Err(e);
                    }
                    continue;
                }
                Ok(Flow::Leave(leave)) => leave,
                Err(e) => {
                    p.curg = Some(owner);
                    return Err(e);
                }
            };
            let curg = Curg {
                index,
                gs: &st.gs,
                true_frames: &st.true_frames,
            };
            self.mcall(p, curg);
            match leave {
                Leave::Yield => {
                    self.trace_go_left(p, index, crate::trace::LEFT_YIELD);
                    g.release(owner, status::RUNNABLE);
                    p.runq.push_back(index);
                }
                Leave::Block => {
                    self.trace_go_left(p, index, crate::trace::LEFT_BLOCK);
                    g.release(owner, status::WAITING);
                    lock(&self.parked).push(index);
                }
                Leave::Exit => {
                    self.trace_go_left(p, index, crate::trace::LEFT_EXIT);
                    self.goexit(owner, p)?;
                }
            }
            return Ok(Step::Switched);
        }
        p.curg = Some(owner);
        Ok(Step::Ran)
    }

    /// Switches `p`'s M to its newly scheduled goroutine (Go's `gogo`): g, then SP, then PC, a
    /// signal boundary after each store but the last (see `profile`).
    fn gogo(&self, p: &mut P) {
        let _nowb = nowritebarrier("gogo");
        let mut owner = p.curg.take().expect("schedule made it current");
        let index = owner.index();
        let st = self
            .g(index)
            .state(&mut owner)
            .as_ref()
            .expect("a scheduled goroutine has state");
        if let Some(tr) = &self.trace {
            p.trace_running_since = tr.now_ns();
        }
        for step in 0..3 {
            p.m = MState::Gogo(step);
            let curg = Curg {
                index,
                gs: &st.gs,
                true_frames: &st.true_frames,
            };
            self.sig_boundary(&mut p.prof, p.id, p.m, Some(curg), Where::Switch);
        }
        p.m = MState::User;
        p.curg = Some(owner);
    }

    /// Switches `p`'s M from its goroutine, whose gobuf is saved, to g0 (Go's `mcall`): g, then
    /// SP, a signal boundary after each, then the jump to the scheduler.
    fn mcall(&self, p: &mut P, curg: Curg<'_>) {
        let _nowb = nowritebarrier("mcall");
        for step in 0..2 {
            p.m = MState::Mcall(step);
            self.sig_boundary(&mut p.prof, p.id, p.m, Some(curg), Where::Switch);
        }
        p.m = MState::Scheduler;
    }

    /// Ends the owned goroutine: its remaining barriers are passed, its stack returns to the pool
    /// and its `G` to the free list (seed 002's `gfput`: the barriers go with the goroutine).
    fn goexit(&self, mut owner: GOwner, p: &mut P) -> Result<(), RuntimeError> {
        let index = owner.index();
        let g = self.g(index);
        let mut st = g
            .state(&mut owner)
            .take()
            .expect("a running goroutine has state");
        let hi = st.gs.stack().hi();
        let mut sig = BarrierSignals {
            rt: self,
            prof: &mut p.prof,
            p_id: p.id,
            index,
            true_frames: &st.true_frames,
        };
        let passed = st
            .gs
            .unwind_barriers_with_signals(&self.prog, hi, &mut sig)?;
        if passed > 0 {
            self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
        }
        self.gc.note_goroutine_exit(&st.gs.take_counters());
        lock(&self.stackpool).stackfree(st.gs.into_stack());
        self.live_gs.fetch_sub(1, Ordering::Relaxed);
        g.release(owner, status::DEAD);
        lock(&self.gfree).push(index);
        Ok(())
    }

    /// The word indices of `f`'s pointer slots.
    #[inline]
    fn ptr_slots(&self, f: FuncId) -> &[u16] {
        let (start, end) = self.ptr_slot_range[f.0 as usize];
        &self.ptr_slot_words[start as usize..end as usize]
    }

    /// The running frame's pointer slots: one frame lookup per operation, however many slots it
    /// reads and writes. A goroutine with no frames has none.
    #[inline]
    fn locals<'s>(&'s self, st: &'s mut GState) -> Result<Locals<'s>, RuntimeError> {
        let sp = st.gs.sp();
        if st.gs.is_empty() {
            return Ok(Locals {
                sp,
                words: &mut [],
                slots: &[],
            });
        }
        let (f, words) = st.gs.running_locals_mut(&self.prog)?;
        Ok(Locals {
            sp,
            words,
            slots: self.ptr_slots(f),
        })
    }

    /// Whether `v` points into the goroutine's live stack.
    #[inline]
    fn is_stack_ptr(st: &GState, v: u64) -> bool {
        let s = st.gs.stack();
        v >= st.gs.sp().0 && v < s.hi().0
    }

    /// Whether `v` is a stack address: such a value is never stored outside the frame holding it
    /// (Go's escape analysis would have moved the local to the heap), so the store does nothing.
    #[inline]
    fn escapes(v: u64) -> bool {
        (stacks::stack::STACK_BASE.0..stacks::stack::STACK_END.0).contains(&v)
    }

    /// The heap object `v` points to; `None` for nil and non-heap values; an error for a dangling
    /// heap pointer.
    fn deref(
        &self,
        goid: u64,
        v: u64,
        place: Addr,
    ) -> Result<Option<crate::heap::ObjRef>, RuntimeError> {
        if v == 0 {
            return Ok(None);
        }
        match self.heap.find_object(v) {
            Lookup::Object(o) => Ok(Some(o)),
            Lookup::NotHeap => Ok(None),
            Lookup::Free(_) => Err(RuntimeError::BadPointer {
                value: v,
                place: stack_place(goid, place),
                why: "the mutator dereferenced a freed object (use after free: the collector freed a reachable object)",
                traceback: String::new(),
            }),
        }
    }

    /// The heap object slot `obj` of the running frame points to, and the word index of its
    /// pointer field `field` (modulo their number): `None` for a nil or non-heap value or a type
    /// with no pointer fields; an error for a dangling heap pointer.
    #[inline]
    fn pointer_field(
        &self,
        goid: u64,
        locals: &Locals<'_>,
        obj: u8,
        field: u8,
    ) -> Result<Option<(crate::heap::ObjRef, usize)>, RuntimeError> {
        let Some((place, v)) = locals.get(obj) else {
            return Ok(None);
        };
        let Some(o) = self.deref(goid, v, place)? else {
            return Ok(None);
        };
        let t = self.heap.type_of(self.heap.object_type(o));
        Ok((!t.ptr_fields.is_empty()).then(|| {
            (
                o,
                t.ptr_fields[field as usize % t.ptr_fields.len()] as usize,
            )
        }))
    }

    /// Executes one operation.
    #[inline]
    fn exec(
        &self,
        op: Op,
        index: GIndex,
        st: &mut GState,
        p: &mut P,
    ) -> Result<Flow, RuntimeError> {
        let prog = &self.prog;
        match op {
            Op::Call { func, site } => {
                if prog.func(func).kind != FuncKind::User {
                    return Err(RuntimeError::Mutator {
                        goid: st.gs.goid(),
                        what: format!("calls runtime function {}", prog.func(func).name),
                    });
                }
                if let Call::MoreStack { needed } = st.gs.call(prog, func, u32::from(site))? {
                    st.gs
                        .newstack(&mut lock(&self.stackpool), prog, needed)
                        .map_err(|e| self.copystack_error(e, &st.gs))?;
                    p.counters.copystacks += 1;
                    let size = st.gs.stack().alloc_size() as u64;
                    self.trace_p(p, TraceEv::CopyStack, [st.gs.goid(), size]);
                    let again = st.gs.call(prog, func, u32::from(site))?;
                    debug_assert_eq!(again, Call::Pushed);
                }
                st.depth += 1;
                if self.keep_true_frames {
                    st.true_frames.push(func);
                }
            }
            Op::Ret => {
                if st.depth == 0 {
                    return Ok(Flow::Leave(Leave::Exit));
                }
                // The frame is gone once the return pops it: a signal inside the trampoline
                // sees the caller's frames.
                if self.keep_true_frames {
                    st.true_frames.pop();
                }
                let mut sig = BarrierSignals {
                    rt: self,
                    prof: &mut p.prof,
                    p_id: p.id,
                    index,
                    true_frames: &st.true_frames,
                };
                match st.gs.ret_with_signals(prog, &mut sig)? {
                    Ret::Exited => return Ok(Flow::Leave(Leave::Exit)),
                    Ret::Returned { hit_barrier } => {
                        st.depth -= 1;
                        self.note_return(st);
                        if hit_barrier {
                            let pos = st.gs.stkbar_pos() as u64;
                            self.trace_p(p, TraceEv::BarrierHit, [st.gs.goid(), pos]);
                        }
                    }
                }
            }
            Op::Alloc { ty, dst } => {
                let mut locals = self.locals(st)?;
                if locals.has_slots() {
                    let black = self.gc.allocate_black();
                    let P {
                        id,
                        mcache,
                        racectx,
                        ..
                    } = p;
                    let a = self.heap.alloc(mcache, ty, black, |a, size| {
                        self.note_free(*id, racectx, a, size)
                    })?;
                    locals.set(dst, a.0);
                    self.note_malloc(p, st, a, ty);
                    self.gc.note_alloc(self);
                    if black {
                        self.gc_assist_alloc(st, p, self.heap.type_of(ty).size)?;
                    }
                }
            }
            Op::Copy { src, dst } => {
                let mut locals = self.locals(st)?;
                if let Some((_, v)) = locals.get(src) {
                    locals.set(dst, v);
                }
            }
            Op::Clear { dst } => self.locals(st)?.set(dst, 0),
            Op::LoadField { obj, field, dst } => {
                let goid = st.gs.goid();
                let mut locals = self.locals(st)?;
                if let Some((o, w)) = self.pointer_field(goid, &locals, obj, field)? {
                    locals.set(dst, self.heap.read_word(o, w));
                }
            }
            Op::StoreField { obj, field, src } => {
                let goid = st.gs.goid();
                let store = {
                    let locals = self.locals(st)?;
                    self.pointer_field(goid, &locals, obj, field)?
                        .map(|(o, w)| (o, w, locals.source(src)))
                };
                if let Some((o, w, new)) = store
                    && !Self::escapes(new)
                {
                    self.writebarrierptr(p, st, Slot::Field(o, w), new)?;
                }
            }
            Op::SwapField {
                obj,
                field,
                src,
                dst,
            } => {
                let goid = st.gs.goid();
                let swap = {
                    let locals = self.locals(st)?;
                    self.pointer_field(goid, &locals, obj, field)?
                        .map(|(o, w)| (o, w, locals.source(src)))
                };
                if let Some((o, w, new)) = swap
                    && !Self::escapes(new)
                {
                    let old = self.atomic_swap(p, o, w, new)?;
                    self.locals(st)?.set(dst, old);
                }
            }
            Op::LoadGlobal { global, dst } => {
                if !self.globals.is_empty() {
                    let v = self.globals.read(global as usize % self.globals.len());
                    self.locals(st)?.set(dst, v);
                }
            }
            Op::StoreGlobal { global, src } => {
                if !self.globals.is_empty() {
                    let i = global as usize % self.globals.len();
                    let new = self.locals(st)?.source(src);
                    if !Self::escapes(new) {
                        self.writebarrierptr(p, st, Slot::Global(i), new)?;
                    }
                }
            }
            Op::TakeAddr { up, slot, dst } => {
                if up == 0 || usize::from(up) >= st.depth || !self.locals(st)?.has_slots() {
                    return Ok(Flow::Continue);
                }
                let frame = st
                    .gs
                    .frames(prog)
                    .nth(usize::from(up))
                    .expect("depth counts the frames")?;
                let slots = self.ptr_slots(frame.func);
                if !slots.is_empty() {
                    let w = slots[slot as usize % slots.len()] as usize;
                    self.locals(st)?.set(dst, frame.sp.add(w * WORD).0);
                }
            }
            Op::StoreThrough { ptr, src } => {
                let (target, new) = {
                    let locals = self.locals(st)?;
                    let Some((_, target)) = locals.get(ptr) else {
                        return Ok(Flow::Continue);
                    };
                    (target, locals.source(src))
                };
                if Self::is_stack_ptr(st, target) && !Self::escapes(new) {
                    self.writebarrierptr(p, st, Slot::Stack(Addr(target)), new)?;
                }
            }
            Op::BulkWrite { ptr, src } => {
                let (target, v) = {
                    let locals = self.locals(st)?;
                    let Some((_, target)) = locals.get(ptr) else {
                        return Ok(Flow::Continue);
                    };
                    (target, locals.source(Some(src)))
                };
                if Self::is_stack_ptr(st, target) && !Self::escapes(v) {
                    let mut sig = BarrierSignals {
                        rt: self,
                        prof: &mut p.prof,
                        p_id: p.id,
                        index,
                        true_frames: &st.true_frames,
                    };
                    let passed = st.gs.runtime_bulk_write_with_signals(
                        prog,
                        Addr(target),
                        &[v],
                        &mut sig,
                    )?;
                    self.note_bulk_write(st, Addr(target))?;
                    if passed > 0 {
                        self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
                    }
                }
            }
            Op::Unwind { frames } => {
                let n = usize::from(frames).min(st.depth.saturating_sub(1));
                if n > 0 {
                    let mut sig = BarrierSignals {
                        rt: self,
                        prof: &mut p.prof,
                        p_id: p.id,
                        index,
                        true_frames: &st.true_frames,
                    };
                    let passed = st.gs.unwind_frames_with_signals(prog, n, &mut sig)?;
                    st.depth -= n;
                    let keep = st.true_frames.len().saturating_sub(n);
                    st.true_frames.truncate(keep);
                    self.note_return(st);
                    if passed > 0 {
                        self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
                    }
                }
            }
            Op::Spawn => return Ok(Flow::Spawn),
            Op::Yield => return Ok(Flow::Leave(Leave::Yield)),
            Op::Block => return Ok(Flow::Leave(Leave::Block)),
            Op::Wake => {
                let woken = {
                    let mut parked = lock(&self.parked);
                    (!parked.is_empty()).then(|| {
                        let i = st.rng.random_range(0..parked.len());
                        parked.swap_remove(i)
                    })
                };
                if let Some(index) = woken {
                    self.ready(index, p);
                }
            }
            Op::Exit => return Ok(Flow::Leave(Leave::Exit)),
        }
        Ok(Flow::Continue)
    }

    /// The watermark after a return or unwind: the frame now running has run since the scan.
    #[inline]
    fn note_return(&self, st: &mut GState) {
        let Some(t) = st.track.as_mut() else { return };
        let depth = st.gs.used();
        t.ret_slot_depth = t.ret_slot_depth.min(depth + WORD);
        if depth < t.changed_sp_depth {
            let size = self.prog.findframe(st.gs.pc()).map_or(0, |(_, s)| s);
            t.changed_sp_depth = depth;
            t.changed_top_depth = depth - size;
        }
    }

    /// The watermark after a runtime bulk write at `dst`: the frame holding it has changed.
    fn note_bulk_write(&self, st: &mut GState, dst: Addr) -> Result<(), RuntimeError> {
        let Some(mut t) = st.track else {
            return Ok(());
        };
        let hi = st.gs.stack().hi();
        for frame in st.gs.frames(&self.prog) {
            let frame = frame?;
            if frame.fp > dst {
                let sp_depth = hi.offset_from(frame.sp);
                t.ret_slot_depth = t.ret_slot_depth.min(hi.offset_from(dst) + WORD);
                if sp_depth < t.changed_sp_depth {
                    t.changed_sp_depth = sp_depth;
                    t.changed_top_depth = hi.offset_from(frame.fp);
                }
                break;
            }
        }
        st.track = Some(t);
        Ok(())
    }

    /// Every pointer store into a heap object, a global or an outer frame (Go's
    /// `writebarrierptr`): the injected fault, if this store is one of the dropped fraction; the
    /// wbshadow check and update of heap and global words; the design's barrier; the store.
    #[inline]
    pub(crate) fn writebarrierptr(
        &self,
        p: &mut P,
        st: &mut GState,
        slot: Slot,
        new: u64,
    ) -> Result<(), RuntimeError> {
        if self.checked_stores && !matches!(slot, Slot::Stack(_)) {
            let store = self.fault_log.next_store();
            let wb_drop = self.config.inject.wb_drop;
            if seeded_fraction(self.config.seed, DROP_STREAM, store, wb_drop) {
                self.fault_log.note_dropped(DroppedBarrier {
                    store,
                    addr: slot.addr(self),
                    new,
                    goid: st.gs.goid(),
                });
                return self.write_slot(st, slot, new);
            }
            if let Some(shadow) = self.shadow_of(slot) {
                let _stripe = self.shadow_lock(slot.addr(self));
                let old = self.read_slot(st, slot)?;
                self.check_shadow(slot, shadow, old, Some(new), store, Some(&st.gs))?;
                shadow.store(new, Ordering::Relaxed);
                self.write_barrier(p, old, new)?;
                return self.write_slot(st, slot, new);
            }
        }
        let old = self.read_slot(st, slot)?;
        self.write_barrier(p, old, new)?;
        self.write_slot(st, slot, new)
    }

    #[inline]
    fn read_slot(&self, st: &GState, slot: Slot) -> Result<u64, RuntimeError> {
        Ok(match slot {
            Slot::Field(o, w) => self.heap.read_word(o, w),
            Slot::Global(i) => self.globals.read(i),
            Slot::Stack(a) => st.gs.read(a)?,
        })
    }

    #[inline]
    fn write_slot(&self, st: &mut GState, slot: Slot, v: u64) -> Result<(), RuntimeError> {
        match slot {
            Slot::Field(o, w) => self.heap.write_word(o, w, v),
            Slot::Global(i) => self.globals.write(i, v),
            Slot::Stack(a) => st.gs.write(a, v)?,
        }
        Ok(())
    }

    /// An atomic swap of pointer field `w` of `o` (Go's `atomic.SwapPointer`): the word is
    /// exchanged in one step, the design's barrier runs on the old and new values, the word's
    /// wbshadow copy becomes `noShadow` (a word written atomically cannot have its shadow kept in
    /// step: two racing swaps may update word and shadow in opposite orders), and the sanitizer
    /// records a synchronization object at the word. Returns the old value.
    fn atomic_swap(&self, p: &mut P, o: ObjRef, w: usize, new: u64) -> Result<u64, RuntimeError> {
        if self.checked_stores {
            self.fault_log.next_store();
        }
        let old = self.heap.swap_word(o, w, new);
        if let Some(shadow) = self.heap.shadow_word(o, w) {
            shadow.store(crate::wbshadow::NO_SHADOW, Ordering::Relaxed);
        }
        if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.as_mut()) {
            san.sync(ctx, Slot::Field(o, w).addr(self));
        }
        self.write_barrier(p, old, new)?;
        Ok(old)
    }

    /// An allocation: `allocfreetrace`'s line, and the sanitizer told (`racemalloc`).
    fn note_malloc(&self, p: &mut P, st: &GState, a: Addr, ty: crate::heap::TypeId) {
        let size = self.heap.type_of(ty).size;
        if self.config.debug.allocfreetrace {
            eprintln!(
                "tracealloc({a}, {size:#x}, {}) goroutine {} on P{}: {}",
                self.heap.type_of(ty).name,
                st.gs.goid(),
                p.id,
                short_traceback(&self.prog, &st.gs, ALLOCFREETRACE_FRAMES)
            );
        }
        if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.as_mut()) {
            san.malloc(ctx, a.0, size as u64);
        }
    }

    /// An object freed by a sweep on P `p_id`, whose sanitizer context is `racectx`:
    /// `allocfreetrace`'s line, and the context told (`racefree`) when free notification is on.
    pub(crate) fn note_free(
        &self,
        p_id: usize,
        racectx: &mut Option<ProcCtx>,
        addr: Addr,
        size: usize,
    ) {
        if self.config.debug.allocfreetrace {
            eprintln!("tracefree({addr}, {size:#x}) swept on P{p_id}");
        }
        if let (Some(san), Some(ctx), Some(opts)) =
            (&self.sanitizer, racectx.as_mut(), self.config.sanitizer)
            && opts.free_notify
        {
            san.free(ctx, addr.0, size as u64);
        }
    }

    /// A stack error from moving `gs`; a pointer slot holding junk (Go's "invalid pointer found
    /// on stack" in `adjustpointers`) becomes a bad-pointer error with the goroutine's traceback.
    pub(crate) fn copystack_error(&self, e: StackError, gs: &GStack) -> RuntimeError {
        match e {
            StackError::InvalidPointer {
                slot,
                value,
                func,
                why,
                ..
            } => RuntimeError::BadPointer {
                value,
                place: format!(
                    "{} (a frame of {func}) while moving the stack",
                    stack_place(gs.goid(), slot)
                ),
                why,
                traceback: traceback(&self.prog, gs, TRACEBACK_FRAMES),
            },
            e => e.into(),
        }
    }

    /// The write barrier: every store into a heap object, a global or an outer frame comes here
    /// first with the slot's old value and the value being stored.
    #[inline]
    pub fn write_barrier(&self, p: &mut P, old: u64, new: u64) -> Result<(), RuntimeError> {
        if let Some(region) = crate::nowb::current_region() {
            return Err(RuntimeError::WriteBarrierInNoWriteBarrier { region });
        }
        if !self.wb_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        p.counters.wb_calls += 1;
        if self.shade_old {
            self.shade(old, &mut p.gcw, "a slot's old value in the write barrier")?;
        }
        if self.shade_new {
            self.shade(new, &mut p.gcw, "a stored value in the write barrier")?;
        }
        Ok(())
    }

    /// Greys the object `v` points to, if it is white (Go's `shade`/`greyobject`). Nil and
    /// non-heap values (stack addresses, globals) are ignored; with `invalidptr`, values in the
    /// first page and heap addresses outside every object are fatal.
    #[inline]
    pub fn shade(&self, v: u64, gcw: &mut GcWork, place: &str) -> Result<(), RuntimeError> {
        if v == 0 {
            return Ok(());
        }
        if let Some(why) = bad_pointer_value(v, self.config.debug.invalidptr) {
            return Err(RuntimeError::BadPointer {
                value: v,
                place: place.to_owned(),
                why,
                traceback: String::new(),
            });
        }
        match self.heap.find_object(v) {
            Lookup::NotHeap => Ok(()),
            Lookup::Free(_) => {
                self.bad_pointer(v, place, "a heap address outside every allocated object")
            }
            Lookup::Object(o) => {
                if self.heap.try_mark(o) {
                    gcw.put(&self.gc.pool, o.base);
                }
                Ok(())
            }
        }
    }

    fn bad_pointer(&self, value: u64, place: &str, why: &'static str) -> Result<(), RuntimeError> {
        if self.config.debug.invalidptr {
            Err(RuntimeError::BadPointer {
                value,
                place: place.to_owned(),
                why,
                traceback: String::new(),
            })
        } else {
            Ok(())
        }
    }

    // ---------------------------------------------------------------------------------------
    // Tracing and profiling.

    /// Trace time now (0 when not tracing).
    #[inline]
    pub fn trace_now(&self) -> u64 {
        self.trace.as_ref().map_or(0, Trace::now_ns)
    }

    /// Writes an instant event on `p`'s track into its buffer.
    #[inline]
    pub(crate) fn trace_p(&self, p: &mut P, ev: TraceEv, args: [u64; 2]) {
        if let Some(tr) = &self.trace {
            let track = Track::P(p.id as u16);
            tr.event(&mut p.tracebuf, TraceEvent::instant(tr, track, ev, args));
        }
    }

    /// Writes a slice from `since` until now on `track` into `p`'s buffer.
    #[inline]
    pub fn trace_slice_p(&self, p: &mut P, track: Track, ev: TraceEv, since: u64, args: [u64; 2]) {
        if let Some(tr) = &self.trace {
            tr.event(
                &mut p.tracebuf,
                TraceEvent::slice(tr, track, ev, since, args),
            );
        }
    }

    /// Writes an instant event (`since` = `None`) or a slice into the global buffer, for code
    /// running without a P.
    pub fn trace_global(&self, track: Track, ev: TraceEv, since: Option<u64>, args: [u64; 2]) {
        if let Some(tr) = &self.trace {
            tr.event_global(match since {
                Some(t) => TraceEvent::slice(tr, track, ev, t, args),
                None => TraceEvent::instant(tr, track, ev, args),
            });
        }
    }

    /// The slice of the goroutine `index` that has just left `p` (how: `trace::LEFT_*`).
    fn trace_go_left(&self, p: &mut P, index: GIndex, left: u64) {
        if self.trace.is_some() {
            let goid = self.g(index).goid();
            let since = p.trace_running_since;
            self.trace_slice_p(
                p,
                Track::P(p.id as u16),
                TraceEv::GoRun,
                since,
                [goid, left],
            );
        }
    }

    /// Ends the open concurrent phase's slice if it is `phase` (`trace::PHASE_*`), at `at` or now;
    /// exactly once, whichever thread gets there first.
    pub(crate) fn trace_phase_end(&self, phase: u64, at: Option<u64>) {
        if let Some(tr) = &self.trace
            && self
                .trace_open_phase
                .compare_exchange(phase, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let since = self.trace_phase_since.load(Ordering::Acquire);
            let end = at.unwrap_or_else(|| tr.now_ns()).max(since);
            let cycle = u64::from(self.gc.cycle());
            tr.event_global(TraceEvent::between(
                Track::Gc,
                TraceEv::GcPhase,
                since,
                end,
                [phase, cycle],
            ));
        }
    }

    /// Opens a concurrent phase's slice at `at`.
    fn trace_phase_begin(&self, phase: u64, at: u64) {
        self.trace_phase_since.store(at, Ordering::Release);
        self.trace_open_phase.store(phase, Ordering::Release);
    }

    /// A stop-the-world pause that began at `since` (trace time) and has just ended. The phases
    /// are stamped at the pauses' edges, so they never overlap them: sweep termination ends the
    /// sweep (if the Ps had not finished it) when the world stops and begins the mark when it
    /// restarts; mark termination ends the mark when the world stops and begins the sweep.
    pub fn trace_stw(&self, reason: u64, since: u64) {
        let Some(tr) = &self.trace else { return };
        let now = tr.now_ns();
        let cycle = u64::from(self.gc.cycle());
        let (ended, next) = if reason == STW_MARK_TERMINATION {
            (PHASE_MARK, PHASE_SWEEP)
        } else {
            (PHASE_SWEEP, PHASE_MARK)
        };
        self.trace_phase_end(ended, Some(since));
        tr.event_global(TraceEvent::between(
            Track::Gc,
            TraceEv::Stw,
            since,
            now,
            [reason, cycle],
        ));
        self.trace_phase_begin(next, now);
    }

    /// Queues every P's and the global trace buffer for the reader and reads them all: the end
    /// of a run (Go's `StopTrace`). An open phase's slice ends here and a new one begins, so
    /// tracing goes on if the engine runs again.
    pub fn trace_flush<'p>(&self, ps: impl IntoIterator<Item = &'p mut P>) {
        if let Some(tr) = &self.trace {
            let open = self.trace_open_phase.load(Ordering::Acquire);
            if open != 0 {
                let now = tr.now_ns();
                self.trace_phase_end(open, Some(now));
                self.trace_phase_begin(open, now);
            }
            for p in ps {
                tr.release(&mut p.tracebuf);
            }
            tr.release_global();
            tr.read();
        }
    }

    /// Reads the full trace buffers, if any (the engines call it as they run).
    #[inline]
    pub fn trace_read_pending(&self) {
        if let Some(tr) = &self.trace
            && tr.full_pending()
        {
            tr.read();
        }
    }

    /// Gives every P's M a profiler state, if the configuration profiles: a seeded countdown
    /// under the deterministic engine, the profiler thread's flag under the threaded one.
    pub fn start_profiling<'p>(&self, ps: impl IntoIterator<Item = &'p mut P>, threaded: bool) {
        if let Some(cfg) = &self.config.profile {
            for p in ps {
                p.prof = Some(Box::new(MProf::new(cfg, self.config.seed, p.id, threaded)));
            }
        }
    }

    /// The profile every P's M has recorded so far, if profiling.
    pub fn profile<'p>(&self, ps: impl IntoIterator<Item = &'p P>) -> Option<crate::Profile> {
        self.config.profile?;
        let mut total = crate::Profile::default();
        for p in ps {
            if let Some(m) = &p.prof {
                total.add(m.profile());
            }
        }
        Some(total)
    }

    /// Sends a profiling signal to P `id`'s M (the threaded engine's profiler thread).
    pub fn signal_p(&self, id: usize) {
        self.sigpending.set(id);
    }

    /// Drops P `id`'s pending profiling signal: its thread slept through it. `ITIMER_PROF` counts
    /// CPU time, so a thread that is not running is not signalled.
    pub fn clear_sigpending(&self, id: usize) {
        self.sigpending.clear(id);
    }

    /// Takes P `id`'s pending profiling signal, if any.
    #[inline]
    pub(crate) fn take_sigpending(&self, id: usize) -> bool {
        self.sigpending.take(id)
    }

    /// A boundary of `p`'s own loop outside the mutator (sweeping, marking, idle): a pending
    /// signal finds its M on g0.
    #[inline]
    pub fn sig_boundary_system(&self, p: &mut P) {
        self.sig_boundary(&mut p.prof, p.id, MState::Scheduler, None, Where::Scheduler);
    }

    /// Starts a scan track for a goroutine whose stack was just scanned.
    pub(crate) fn begin_track(&self, st: &mut GState) {
        let used = st.gs.used();
        let top = if st.gs.is_empty() {
            used
        } else {
            used - self.prog.findframe(st.gs.pc()).map_or(0, |(_, s)| s)
        };
        st.track = Some(ScanTrack {
            sp0_depth: used,
            changed_top_depth: top,
            changed_sp_depth: used,
            ret_slot_depth: usize::MAX,
        });
    }
}

/// One flag per P, raised by another thread and looked at by the P's own at its safe points:
/// a preemption request (Go's `preempt`), a pending profiling signal. Ids beyond the Ps are
/// never set.
#[derive(Debug)]
struct PFlags(Box<[AtomicBool]>);

impl PFlags {
    fn new(procs: usize) -> PFlags {
        PFlags((0..procs).map(|_| AtomicBool::new(false)).collect())
    }

    fn set(&self, id: usize) {
        if let Some(f) = self.0.get(id) {
            f.store(true, Ordering::Release);
        }
    }

    fn clear(&self, id: usize) {
        if let Some(f) = self.0.get(id) {
            f.store(false, Ordering::Release);
        }
    }

    /// Whether P `id`'s flag is up (a relaxed look, cheap at every operation).
    #[inline]
    fn is_set(&self, id: usize) -> bool {
        self.0.get(id).is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Lowers P `id`'s flag; whether it was up.
    #[inline]
    fn take(&self, id: usize) -> bool {
        self.is_set(id) && self.0[id].swap(false, Ordering::Acquire)
    }
}

/// Where a piece of runtime code writes its trace events: its P's buffer, or (without a P) the
/// global buffer, on a track.
pub(crate) enum TraceTo<'a> {
    /// P `1`'s buffer and track.
    P(&'a mut Option<crate::trace::TraceBuf>, usize),
    /// The global buffer, on this track.
    Global(Track),
}

impl Runtime {
    /// Writes an instant event (`since` = `None`) or a slice where `to` says.
    pub(crate) fn trace_to(
        &self,
        to: &mut TraceTo<'_>,
        ev: TraceEv,
        since: Option<u64>,
        args: [u64; 2],
    ) {
        let Some(tr) = &self.trace else { return };
        match to {
            TraceTo::P(buf, id) => {
                let track = Track::P(*id as u16);
                let e = match since {
                    Some(t) => TraceEvent::slice(tr, track, ev, t, args),
                    None => TraceEvent::instant(tr, track, ev, args),
                };
                tr.event(buf, e);
            }
            TraceTo::Global(track) => self.trace_global(*track, ev, since, args),
        }
    }
}

/// The `seeded_fraction` stream `--inject wb-drop` draws from.
const DROP_STREAM: u64 = 0xd0;

/// Frames of the allocating goroutine an `allocfreetrace` line names.
const ALLOCFREETRACE_FRAMES: usize = 4;

/// The running frame's pointer slots as the interpreter sees them: slot `k` of an operation is the
/// frame's `k`-th pointer slot, modulo their number; a frame without pointer slots ignores every
/// local operation.
struct Locals<'s> {
    sp: Addr,
    words: &'s mut [u64],
    slots: &'s [u16],
}

impl Locals<'_> {
    /// The word index of slot `k`.
    #[inline]
    fn word(&self, k: u8) -> Option<usize> {
        (!self.slots.is_empty()).then(|| usize::from(self.slots[usize::from(k) % self.slots.len()]))
    }

    /// Whether the frame has pointer slots (then every slot number names one).
    #[inline]
    fn has_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Slot `k`'s address and value.
    #[inline]
    fn get(&self, k: u8) -> Option<(Addr, u64)> {
        self.word(k).map(|w| (self.sp.add(w * WORD), self.words[w]))
    }

    /// The value of optional source slot `src`: nil for `None` or a frame without slots.
    #[inline]
    fn source(&self, src: Option<u8>) -> u64 {
        src.and_then(|k| self.get(k)).map_or(0, |(_, v)| v)
    }

    /// Stores `v` into slot `k`: a store to the frame's own local, with no write barrier.
    #[inline]
    fn set(&mut self, k: u8, v: u64) {
        if let Some(w) = self.word(k) {
            self.words[w] = v;
        }
    }
}

/// What the interpreter tells the scheduler after an operation.
enum Flow {
    /// The goroutine keeps the P.
    Continue,
    /// The goroutine keeps the P and starts a child (its behaviour says which).
    Spawn,
    /// The goroutine leaves the P.
    Leave(Leave),
}

/// How a goroutine leaves its P.
enum Leave {
    Yield,
    Block,
    Exit,
}
