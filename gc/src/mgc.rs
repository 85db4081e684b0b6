//! The collector's cycle (Go's `mgc.go`, Go 1.5–1.7 shape): its shared state, sweep termination,
//! mark termination and the gctrace line. Marking lives in `mark`, sweeping in `sweep`.
//!
//! Invariant: a cycle goes off → sweep termination (world stopped) → concurrent mark → mark
//! termination (world stopped) → concurrent sweep → off, and at the end of mark termination every
//! object reachable from a root — a global or any goroutine's stack — is marked. The write barrier
//! is on from sweep termination to the end of mark termination, for every goroutine, before any
//! stack is scanned (mstkbar.go's "Gotchas").
//!
//! Mark termination (Go 1.7's `gcMarkTermination`), with the world stopped: re-scan the stacks on
//! the re-scan list and drain, on as many threads as the engine gives it (see `mark`'s
//! [`MarkTermWork`]); run checkmark if asked; remove the barriers inside the pause only in
//! `--barrier-removal in-pause` mode (Go 1.5/1.6); turn the write barrier off; hand the heap to
//! the sweeper. Nothing in it is done per goroutine beyond the re-scan list: the per-goroutine
//! mark state Go resets in `gcResetMarkState` is stamped with the cycle number instead, and
//! after the world restarts one walk over every goroutine (Go's `gcTryRemoveAllStackBarriers`,
//! [`Runtime::removal_step`]) removes the barriers left — best effort, skipping running
//! goroutines — and sums stack use. Sweep termination, with the world stopped: finish the last
//! cycle's sweep, turn the write barrier on, and queue the roots; `yuasa` also scans every stack
//! whole inside this pause (a snapshot at the beginning, which no Go release did).
//!
//! Every figure of a cycle's row is final once its after-restart walk is through; the engines
//! print the `gctrace` line then, and the next cycle waits for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stacks::stack::StackBarrierLock;
use stacks::{NoSignals, StkbarCounters};

use crate::error::RuntimeError;
use crate::heap::lock;
use crate::mark::MarkTermWork;
use crate::nowb::nowritebarrier;
use crate::pacer::Pacer;
use crate::runtime::{BarrierRemoval, GcConfig, Runtime};
use crate::sched::{GIndex, P, PCounters, status};
use crate::stackshadow::ShadowPass;
use crate::stats::{CycleStats, PauseSummary, RescanBound, RescanRecord};
use crate::trace::TraceTo;
use crate::trace::{TraceEv, Track};
use crate::wbarrier::StackPolicy;
use crate::workbuf::{GcWork, WorkbufPool};

/// Collector phase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    /// No cycle running; the heap is swept.
    Off = 0,
    /// Concurrent mark: the write barrier is on.
    Mark = 1,
    /// Concurrent sweep after mark termination.
    Sweep = 2,
}

#[derive(Debug, Default)]
pub(crate) struct Roots {
    pub(crate) globals_done: bool,
    pub(crate) next: usize,
    pub(crate) end: usize,
    /// Running goroutines asked to scan themselves, to be checked again.
    pub(crate) retry: VecDeque<GIndex>,
    /// Stack jobs a marker has taken and not yet finished or put back on `retry` or `lazy`.
    pub(crate) in_flight: usize,
    /// Stacks a lazy scan left grey, with the handle the marker scans them through (the
    /// goroutine's stack-barrier lock): a root job each until its watermark reaches the top.
    pub(crate) lazy: VecDeque<(GIndex, Arc<StackBarrierLock>)>,
}

impl Roots {
    /// Whether every root job is finished: every stack black.
    pub(crate) fn done(&self) -> bool {
        self.globals_done
            && self.next >= self.end
            && self.retry.is_empty()
            && self.lazy.is_empty()
            && self.in_flight == 0
    }
}

/// The walk over every goroutine that follows a mark termination once the world has restarted
/// (Go's `gcTryRemoveAllStackBarriers`): it removes the barriers left (after-restart mode) and
/// sums the stack in use.
#[derive(Debug)]
pub(crate) struct RemovalPass {
    next: GIndex,
    end: GIndex,
    remove: bool,
    skipped: u64,
    stack_bytes_used: u64,
    counters: StkbarCounters,
    ns: u64,
    /// The cycle's scan stalls, summarised once the world runs again: the summary is O(scans),
    /// so it stays out of the pause.
    scan_stalls: Vec<u64>,
}

impl RemovalPass {
    fn new(end: GIndex, mode: BarrierRemoval, scan_stalls: Vec<u64>) -> RemovalPass {
        RemovalPass {
            next: 0,
            end,
            remove: mode == BarrierRemoval::AfterRestart,
            skipped: 0,
            stack_bytes_used: 0,
            counters: StkbarCounters::default(),
            ns: 0,
            scan_stalls,
        }
    }
}

/// Counters of the cycle in progress.
#[derive(Debug, Default)]
pub(crate) struct Accum {
    pub(crate) stats: CycleStats,
    pub(crate) stkbar: StkbarCounters,
    pub(crate) heap_at_start: u64,
    /// Each concurrent (or start-of-cycle) scan's stop, in nanoseconds.
    pub(crate) scan_stalls: Vec<u64>,
}

/// The collector's shared state.
#[derive(Debug)]
pub struct GcState {
    pub(crate) phase: AtomicU8,
    pub(crate) cycle: AtomicU32,
    /// The global full and empty work-buffer lists.
    pub pool: WorkbufPool,
    pub(crate) roots: Mutex<Roots>,
    /// Set once `roots` is done in this cycle, so mark workers stop taking its lock.
    pub(crate) roots_done: AtomicBool,
    /// Go 1.7's re-scan list (`work.rescan`); each listed goroutine's `rescan_slot` says where.
    pub(crate) rescan: Mutex<Vec<GIndex>>,
    /// Goroutines with barriers this cycle, for the in-pause removal.
    pub(crate) barriered: Mutex<Vec<GIndex>>,
    /// The after-restart walk the last mark termination owes.
    pub(crate) removal: Mutex<Option<RemovalPass>>,
    /// When the running mark termination began (its pause, less the stop).
    pub(crate) mark_term_at: Mutex<Option<Instant>>,
    /// Goroutines reached through [`Runtime::g`] while `counting_g_visits` is on: mark
    /// termination counts them, to show it visits the re-scan list and nothing else.
    pub(crate) g_visits: AtomicU64,
    pub(crate) counting_g_visits: AtomicBool,
    /// The last mark termination's visits and its re-scan list's length.
    pub(crate) last_g_visits: Mutex<(u64, u64)>,
    pub(crate) acc: Mutex<Accum>,
    /// The GC controller: trigger, goal, assist ratio.
    pub pacer: Pacer,
    pub(crate) start_requested: AtomicBool,
    pub(crate) history: Mutex<Vec<CycleStats>>,
    /// Every scan's stop since the engine started, as `(cycle, ns)`: the run's distribution.
    pub(crate) scan_stalls: Mutex<Vec<(u32, u64)>>,
    pub(crate) rescans: Mutex<Vec<RescanRecord>>,
    pub(crate) rescan_bound: Mutex<RescanBound>,
    pub(crate) mark_start: Mutex<Option<Instant>>,
    pub(crate) started: Instant,
    pub(crate) gc_ns: AtomicU64,
    /// Checkmark's time in the last mark termination: a debugging pass, left out of the pause.
    pub(crate) last_checkmark_ns: AtomicU64,
    /// The live heap at the start and end of the last cycle's mark, for its gctrace line.
    pub(crate) trace_heap: Mutex<(u64, u64)>,
    pub(crate) total_ops: AtomicU64,
    pub(crate) procs: usize,
}

impl GcState {
    pub(crate) fn new(config: &GcConfig) -> GcState {
        GcState {
            phase: AtomicU8::new(Phase::Off as u8),
            cycle: AtomicU32::new(0),
            pool: WorkbufPool::new(),
            roots: Mutex::default(),
            roots_done: AtomicBool::new(false),
            rescan: Mutex::default(),
            barriered: Mutex::default(),
            removal: Mutex::default(),
            mark_term_at: Mutex::default(),
            g_visits: AtomicU64::new(0),
            counting_g_visits: AtomicBool::new(false),
            last_g_visits: Mutex::default(),
            acc: Mutex::default(),
            scan_stalls: Mutex::default(),
            pacer: Pacer::new(config),
            start_requested: AtomicBool::new(false),
            history: Mutex::default(),
            rescans: Mutex::default(),
            rescan_bound: Mutex::default(),
            mark_start: Mutex::default(),
            started: Instant::now(),
            gc_ns: AtomicU64::new(0),
            last_checkmark_ns: AtomicU64::new(0),
            trace_heap: Mutex::default(),
            total_ops: AtomicU64::new(0),
            procs: config.procs,
        }
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Off,
            1 => Phase::Mark,
            _ => Phase::Sweep,
        }
    }

    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    /// Moves the phase from `from` to `to`; false if another thread moved it first (two Ps that
    /// sweep the last spans at once both try to end the sweep).
    pub(crate) fn cas_phase(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The current (or last) cycle number; 0 before the first.
    pub fn cycle(&self) -> u32 {
        self.cycle.load(Ordering::Acquire)
    }

    /// Whether a cycle should start at the next scheduling point.
    pub fn start_requested(&self) -> bool {
        self.start_requested.load(Ordering::Relaxed)
    }

    /// Asks for a cycle (a forced GC, Go's `runtime.GC`), unless one is marking.
    pub fn request_start(&self) {
        if self.phase() != Phase::Mark {
            self.start_requested.store(true, Ordering::Relaxed);
        }
    }

    /// The heap goal.
    pub fn next_gc(&self) -> u64 {
        self.pacer.goal()
    }

    /// The stats of every completed cycle.
    pub fn history(&self) -> Vec<CycleStats> {
        lock(&self.history).clone()
    }

    /// Every scan's stop so far, as `(cycle, ns)`.
    pub fn scan_stall_log(&self) -> Vec<(u32, u64)> {
        lock(&self.scan_stalls).clone()
    }

    /// Cycles completed so far (without copying the history: the engines ask at every step).
    pub fn cycles_completed(&self) -> usize {
        lock(&self.history).len()
    }

    /// The per-goroutine re-scan records (when `record_rescans` is on).
    pub fn rescan_records(&self) -> Vec<RescanRecord> {
        lock(&self.rescans).clone()
    }

    /// ARCHITECTURE.md §4's bound over every re-scan so far.
    pub fn rescan_bound(&self) -> RescanBound {
        *lock(&self.rescan_bound)
    }

    /// Mutator operations folded in from stopped Ps.
    pub fn total_ops(&self) -> u64 {
        self.total_ops.load(Ordering::Relaxed)
    }

    /// Objects allocated now are black (marked) while marking.
    #[inline]
    pub(crate) fn allocate_black(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == Phase::Mark as u8
    }

    /// GOGC's trigger, after an allocation.
    #[inline]
    pub(crate) fn note_alloc(&self, rt: &Runtime) {
        if !self.start_requested.load(Ordering::Relaxed)
            && rt.heap.heap_live() >= self.pacer.trigger()
        {
            self.request_start();
        }
    }

    /// Go 1.7's `queueRescan`: puts goroutine `index` on the re-scan list, if the collector is
    /// marking (checked under the list's lock, so mark termination's taking of the list and a
    /// late queueing cannot cross) and it is not on it already (a recycled `G` may be).
    pub(crate) fn queue_rescan(&self, rt: &Runtime, index: GIndex) {
        let mut list = lock(&self.rescan);
        if self.phase() != Phase::Mark {
            return;
        }
        let cycle = u64::from(self.cycle());
        let g = rt.g(index);
        if g.rescan_slot.load(Ordering::Relaxed) >> 32 == cycle {
            return;
        }
        g.rescan_slot
            .store(cycle << 32 | list.len() as u64, Ordering::Relaxed);
        list.push(index);
    }

    /// Go 1.7's `dequeueRescan`: a goroutine whose stack was just scanned in `cycle` leaves the
    /// re-scan list if it is on it; the list's last entry takes its place.
    pub(crate) fn dequeue_rescan(&self, rt: &Runtime, index: GIndex, cycle: u32) {
        let g = rt.g(index);
        if g.rescan_slot.load(Ordering::Relaxed) >> 32 != u64::from(cycle) {
            return;
        }
        let mut list = lock(&self.rescan);
        let slot = g.rescan_slot.load(Ordering::Relaxed);
        if slot >> 32 != u64::from(cycle) {
            return;
        }
        let at = (slot & 0xffff_ffff) as usize;
        debug_assert_eq!(list.get(at), Some(&index), "bad dequeueRescan");
        list.swap_remove(at);
        if let Some(&moved) = list.get(at) {
            rt.g(moved)
                .rescan_slot
                .store(u64::from(cycle) << 32 | at as u64, Ordering::Relaxed);
        }
        g.rescan_slot.store(0, Ordering::Relaxed);
    }

    /// How many goroutines the last mark termination visited through [`Runtime::g`] (checkmark
    /// excepted) and how many its re-scan list held: Go 1.7's mark termination does nothing
    /// per goroutine beyond the list.
    pub fn last_mark_term_visits(&self) -> (u64, u64) {
        *lock(&self.last_g_visits)
    }

    /// A goroutine was created: it has never been scanned; during a `dijkstra` mark it must be
    /// re-scanned (whole) at mark termination.
    pub(crate) fn note_new_goroutine(&self, rt: &Runtime, index: GIndex) {
        let g = rt.g(index);
        g.scan_done_cycle.store(0, Ordering::Release);
        g.scan_valid_cycle.store(0, Ordering::Relaxed);
        if rt.stack_policy() == StackPolicy::ConcurrentScanRescan {
            self.queue_rescan(rt, index);
        }
    }

    /// A goroutine exited: fold its barrier counters into the cycle.
    pub(crate) fn note_goroutine_exit(&self, c: &StkbarCounters) {
        lock(&self.acc).stkbar.add(c);
    }

    /// Replaces the sweep-termination pause of the cycle in progress with the engine's own
    /// measurement (the threaded engine's, from the stop request to the restart).
    pub fn set_sweep_term_pause(&self, ns: u64) {
        lock(&self.acc).stats.sweep_term_ns = ns;
    }

    /// Replaces the last completed cycle's mark-termination pause with the engine's own
    /// measurement, less the time checkmark took inside it; its stop part is `stop_ns`.
    pub fn set_mark_term_pause(&self, ns: u64, stop_ns: u64) {
        let check = self.last_checkmark_ns.load(Ordering::Relaxed);
        if let Some(last) = lock(&self.history).last_mut() {
            last.mark_term_ns = ns.saturating_sub(check);
            last.stw_stop_ns = stop_ns;
            last.set_mark_term_other();
        }
    }

    pub(crate) fn fold_p(&self, c: PCounters) {
        let mut acc = lock(&self.acc);
        acc.stats.wb_calls += c.wb_calls;
        acc.stats.copystacks += c.copystacks;
        drop(acc);
        self.total_ops.fetch_add(c.ops, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Sweep termination and the start of mark (Go's `gcStart`); the world is stopped (every P
    /// went through [`Runtime::stop_p`]), and `p` is the P whose goroutine started the cycle: the
    /// rest of the last cycle's sweep runs on it (Go's `finishsweep_m`).
    pub fn gc_start(&self, worker: &mut GcWork, p: &mut P) -> Result<(), RuntimeError> {
        let _nowb = nowritebarrier("gcStart");
        let t0 = Instant::now();
        let gc = &self.gc;
        {
            let P { id, racectx, .. } = p;
            self.heap
                .finish_sweep(|a, size| self.note_free(*id, racectx, a, size));
        }
        let cycle = gc.cycle.fetch_add(1, Ordering::AcqRel) + 1;
        self.heap.start_mark();
        let heap_live = self.heap.heap_live();
        {
            let mut acc = lock(&gc.acc);
            acc.heap_at_start = heap_live;
            acc.stats.procs = self.gomaxprocs() as u64;
            if let Some(san) = &self.sanitizer {
                let s = san.stats();
                acc.stats.live_objects = self.heap.allocated_objects() as u64;
                acc.stats.sanitizer_bytes = s.bytes;
                acc.stats.sanitizer_sync_vars = s.sync_vars;
                acc.stats.sanitizer_blocks = s.blocks;
                acc.stats.sanitizer_contexts = s.contexts_live;
            }
        }

        gc.pacer.start_cycle(heap_live);
        let policy = self.stack_policy();
        *lock(&gc.roots) = Roots {
            globals_done: false,
            next: 0,
            end: if policy == StackPolicy::StwScanAtStart {
                0
            } else {
                self.allglen()
            },
            retry: VecDeque::new(),
            in_flight: 0,
            lazy: VecDeque::new(),
        };
        gc.roots_done.store(false, Ordering::Release);
        lock(&gc.rescan).clear();
        lock(&gc.barriered).clear();
        self.wb_on.store(true, Ordering::Release);
        gc.set_phase(Phase::Mark);
        gc.start_requested.store(false, Ordering::Relaxed);
        if policy == StackPolicy::StwScanAtStart {
            for index in 0..self.allglen() as GIndex {
                let g = self.g(index);
                if let Some((mut owner, restore)) = g.try_own_for_scan() {
                    let mut to = TraceTo::Global(Track::Gc);
                    let r = self.scan_g(&mut owner, worker, cycle, &mut to, &mut NoSignals);
                    g.release(owner, restore);
                    r?;
                }
            }
        }
        let ns = t0.elapsed().as_nanos() as u64;
        lock(&gc.acc).stats.sweep_term_ns = ns;
        gc.gc_ns.fetch_add(ns, Ordering::Relaxed);
        *lock(&gc.mark_start) = Some(Instant::now());
        Ok(())
    }

    /// Mark termination (Go's `gcMarkTermination`) on one thread: [`Runtime::mark_termination_start`],
    /// [`Runtime::gchelper`] with `worker`, [`Runtime::mark_termination_finish`]. The world is
    /// stopped; `stop_ns` is how long stopping it took. Returns the cycle's stats, or the
    /// checker's error.
    pub fn mark_termination(
        &self,
        worker: &mut GcWork,
        stop_ns: u64,
    ) -> Result<CycleStats, RuntimeError> {
        let work = self.mark_termination_start();
        self.gchelper(&work, worker, false, Track::Gc);
        self.mark_termination_finish(&work, stop_ns)
    }

    /// The start of mark termination, with the world stopped: takes the re-scan list (Go 1.7
    /// re-scans exactly the goroutines on it, nothing else) as the parallel work every helper
    /// then shares ([`Runtime::gchelper`]). From here to [`Runtime::mark_termination_finish`]
    /// the runtime counts the goroutines it visits, to show that none but the listed ones are.
    pub fn mark_termination_start(&self) -> MarkTermWork {
        let gc = &self.gc;
        *lock(&gc.mark_term_at) = Some(Instant::now());
        gc.g_visits.store(0, Ordering::Relaxed);
        gc.counting_g_visits.store(true, Ordering::Relaxed);
        let rescan = std::mem::take(&mut *lock(&gc.rescan));
        MarkTermWork::new(gc.cycle(), rescan)
    }

    /// The end of mark termination, once every helper has left `work`: checkmark if asked (a
    /// debugging pass, never part of the pause figure), the in-pause barrier removal if that is
    /// the mode, the write barrier off, the heap handed to the sweeper, and the cycle's row.
    /// After the world restarts, [`Runtime::removal_step`] removes the barriers (after-restart
    /// mode) and sums stack use.
    pub fn mark_termination_finish(
        &self,
        work: &MarkTermWork,
        stop_ns: u64,
    ) -> Result<CycleStats, RuntimeError> {
        let _nowb = nowritebarrier("gcMarkTermination");
        let gc = &self.gc;
        work.wait_all_left();
        let t0 = lock(&gc.mark_term_at).take().unwrap_or_else(Instant::now);
        let cycle = work.cycle;
        let mark_ns = lock(&gc.mark_start)
            .take()
            .map_or(0, |t| t0.duration_since(t).as_nanos() as u64);
        let (mut stats, records, error) = work.finish();
        gc.counting_g_visits.store(false, Ordering::Relaxed);
        *lock(&gc.last_g_visits) = (gc.g_visits.load(Ordering::Relaxed), stats.rescan_goroutines);
        if let Some(e) = error {
            return Err(e);
        }
        stats.cycle = cycle;
        // Checkmark is a debugging pass: it runs inside the pause but is not part of its figure,
        // and it only reads the stacks (see `checkmark`).
        let t_check = Instant::now();
        let (failures, report, missed) = if self.config.debug.checkmark_walk() {
            self.checkmark()?
        } else {
            (0, String::new(), Vec::new())
        };
        // So is stackshadow's verification of the frames the re-scans skipped.
        let shadow = if self.keeps_stack_records() {
            self.stackshadow_pass(cycle)?
        } else {
            ShadowPass::default()
        };
        let checkmark_ns = t_check.elapsed().as_nanos() as u64;
        gc.last_checkmark_ns.store(checkmark_ns, Ordering::Relaxed);
        let mut removed = StkbarCounters::default();
        if self.config.barrier_removal == BarrierRemoval::InPause {
            // Go 1.5/1.6: every barrier left is removed before the world restarts.
            let t_remove = Instant::now();
            let barriered = std::mem::take(&mut *lock(&gc.barriered));
            for index in barriered {
                if let Some((_, counters)) = self.take_for_removal(index, true)? {
                    removed.add(&counters);
                }
            }
            stats.barrier_removal_ns = t_remove.elapsed().as_nanos() as u64;
        }
        self.wb_on.store(false, Ordering::Release);
        let heap_end = self.heap.heap_live();
        let marked = self.heap.finish_mark(gc.pool.take_bytes_marked());
        let assist_scan_bytes = gc.pacer.assist_work();
        gc.pacer.set_after_cycle(marked, &self.config);
        gc.set_phase(Phase::Sweep);
        let mark_term_ns = stop_ns + (t0.elapsed().as_nanos() as u64).saturating_sub(checkmark_ns);

        let mut acc = std::mem::take(&mut *lock(&gc.acc));
        acc.stkbar.add(&removed);
        stats.heap_live_bytes = marked;
        stats.stacks_scanned = acc.stats.stacks_scanned;
        stats.scan_bytes = acc.stats.scan_bytes;
        stats.barriers_installed = acc.stkbar.installed;
        stats.barriers_hit = acc.stkbar.hit + acc.stkbar.unwound;
        stats.barriers_removed = acc.stkbar.removed;
        stats.watermark_hits = acc.stkbar.watermark_hits;
        stats.mutator_scanned_frames = acc.stkbar.watermark_frames;
        stats.mutator_scanned_bytes = acc.stkbar.watermark_bytes;
        stats.marker_lazy_frames = acc.stats.marker_lazy_frames;
        stats.marker_lazy_bytes = acc.stats.marker_lazy_bytes;
        stats.scan_bytes += acc.stkbar.watermark_bytes + acc.stats.marker_lazy_bytes;
        // The stalls' summary waits for the after-restart walk: it is O(scans).
        stats.scan_stalls = acc.scan_stalls.len() as u64;
        stats.stkbar_reserved_bytes = lock(&self.stackpool).stats().stkbar_reserved_bytes as u64;
        stats.copystacks = acc.stats.copystacks;
        stats.wb_calls = acc.stats.wb_calls;
        stats.assist_scan_bytes = assist_scan_bytes;
        stats.sweep_term_ns = acc.stats.sweep_term_ns;
        stats.mark_ns = mark_ns;
        stats.mark_term_ns = mark_term_ns;
        stats.stw_stop_ns = stop_ns;
        stats.set_mark_term_other();
        stats.checkmark_failures = failures;
        stats.procs = acc.stats.procs;
        let faults = self.fault_log.since_last_report();
        stats.wb_dropped = faults.wb_dropped;
        stats.rescan_frames_skipped = faults.rescan_frames_skipped;
        stats.rescans_shortened = faults.rescans_shortened;
        stats.hits_lost = faults.hits_lost;
        stats.unwinds_skipped = faults.unwinds_skipped;
        stats.shadow_bytes = self.shadow_bytes();
        stats.stackshadow_frames_verified = shadow.verified.frames;
        if self.keeps_stack_records() {
            // A lazy scan's checker verifies every frame scanned above a watermark.
            stats.stackshadow_frames_verified +=
                acc.stats.marker_lazy_frames + acc.stkbar.watermark_frames;
        }
        stats.stackshadow_bytes_verified = shadow.verified.bytes;
        stats.skipped_frames_changed = shadow.verified.changed;
        stats.stackshadow_bytes = shadow.record_bytes;
        stats.content_rescan_bytes = shadow.verified.content_bytes;
        stats.live_objects = acc.stats.live_objects;
        stats.sanitizer_bytes = acc.stats.sanitizer_bytes;
        stats.sanitizer_sync_vars = acc.stats.sanitizer_sync_vars;
        stats.sanitizer_blocks = acc.stats.sanitizer_blocks;
        stats.sanitizer_contexts = acc.stats.sanitizer_contexts;
        // The concurrent phase costs the collector its share of the CPU.
        let mark_cpu = (mark_ns as f64 * self.config.gc_share) as u64;
        gc.gc_ns
            .fetch_add(mark_term_ns + mark_cpu, Ordering::Relaxed);
        lock(&gc.history).push(stats);
        // What the world owes this cycle once it restarts: the walk over every goroutine that
        // removes barriers (after-restart mode) and sums stack use.
        *lock(&gc.removal) = Some(RemovalPass::new(
            self.allglen() as GIndex,
            self.config.barrier_removal,
            std::mem::take(&mut acc.scan_stalls),
        ));
        {
            let first_offset = self.config.stack_barriers.first_offset().unwrap_or(0);
            let mut bound = lock(&gc.rescan_bound);
            for rec in &records {
                bound.add(rec, first_offset);
            }
        }
        if self.config.record_rescans {
            lock(&gc.rescans).extend(records);
        }
        *lock(&gc.trace_heap) = (acc.heap_at_start, heap_end);
        if let Some(report) = shadow.violation.filter(|_| self.config.debug.stackshadow) {
            return Err(RuntimeError::StackShadowViolation { cycle, report });
        }
        if failures > 0 {
            return Err(RuntimeError::CheckmarkFailed {
                cycle,
                failures,
                report,
                missed,
                at_store: self.fault_log.stores(),
            });
        }
        Ok(stats)
    }

    /// Takes goroutine `index`'s stack as a scan would, if it is not running, and returns the
    /// bytes of stack it uses and, with `remove`, its barrier counters after removing every
    /// barrier left (Go's `gcRemoveStackBarriers`); `None` if it is running, dead or being
    /// created.
    fn take_for_removal(
        &self,
        index: GIndex,
        remove: bool,
    ) -> Result<Option<(u64, StkbarCounters)>, RuntimeError> {
        let g = self.g(index);
        let Some((mut owner, restore)) = g.try_own_for_scan() else {
            return Ok(None);
        };
        let r = match g.state(&mut owner).as_mut() {
            Some(st) if remove => st.gs.remove_stack_barriers(&self.prog).map(|n| {
                if n > 0 {
                    let args = [st.gs.goid(), n as u64];
                    self.trace_global(Track::Gc, TraceEv::BarrierRemove, None, args);
                }
                Some((st.gs.used() as u64, st.gs.take_counters()))
            }),
            Some(st) => Ok(Some((st.gs.used() as u64, StkbarCounters::default()))),
            None => Ok(None),
        };
        g.release(owner, restore);
        Ok(r?)
    }

    /// The stack-barrier books outside the reported cycles, read with the world stopped (as it
    /// is between two engine runs): the barriers still on stacks, and the barriers that ended —
    /// hit, passed by an unwind, removed — whose counters no cycle's row holds yet. With them a
    /// run's rows balance exactly: `installed = hit + removed + ended + on_stacks` (every
    /// barrier's installation is counted at the scan that made it).
    pub fn stkbar_books(&self) -> (u64, u64) {
        let acc = lock(&self.gc.acc).stkbar;
        let (mut on_stacks, mut ended) = (0, acc.hit + acc.unwound + acc.removed);
        let walked: Result<(), std::convert::Infallible> = self.for_each_g_state(|st| {
            on_stacks += (st.gs.stkbar_len() - st.gs.stkbar_pos()) as u64;
            let c = st.gs.counters();
            ended += c.hit + c.unwound + c.removed;
            Ok(())
        });
        let Ok(()) = walked;
        (on_stacks, ended)
    }

    /// Whether the after-restart walk of the last mark termination is still owed.
    pub fn removal_pending(&self) -> bool {
        lock(&self.gc.removal).is_some()
    }

    /// Runs the after-restart walk of the last mark termination over up to `max_gs` more
    /// goroutines (Go's `gcTryRemoveAllStackBarriers`, best effort): each goroutine that is not
    /// running is taken as a scan takes it, its barriers removed (after-restart mode) and its
    /// stack use summed; a running one keeps its barriers — it may hit them while the world
    /// runs and loses them as stale at its next scan — and counts as skipped. The world is
    /// running; the caller runs on a P (its time is GC time there). When the walk is through,
    /// its figures go into the last cycle's row and it returns true.
    pub fn removal_step(&self, max_gs: usize) -> Result<bool, RuntimeError> {
        let mut slot = lock(&self.gc.removal);
        let Some(pass) = slot.as_mut() else {
            return Ok(true);
        };
        let t0 = Instant::now();
        let end = pass.end.min(pass.next.saturating_add(max_gs as GIndex));
        while pass.next < end {
            let index = pass.next;
            pass.next += 1;
            match self.take_for_removal(index, pass.remove)? {
                Some((used, counters)) => {
                    pass.stack_bytes_used += used;
                    pass.counters.add(&counters);
                }
                None => {
                    let g = self.g(index);
                    if g.status() == status::RUNNING {
                        pass.skipped += u64::from(pass.remove);
                        pass.stack_bytes_used += g.stack_used.load(Ordering::Relaxed);
                    }
                }
            }
        }
        pass.ns += t0.elapsed().as_nanos() as u64;
        if pass.next < pass.end {
            return Ok(false);
        }
        let pass = slot.take().expect("checked above");
        drop(slot);
        self.gc.gc_ns.fetch_add(pass.ns, Ordering::Relaxed);
        let stalls = PauseSummary::of(pass.scan_stalls.iter().copied());
        if let Some(last) = lock(&self.gc.history).last_mut() {
            last.stack_bytes_used = pass.stack_bytes_used;
            (
                last.scan_stall_ns_p50,
                last.scan_stall_ns_p99,
                last.scan_stall_ns_max,
            ) = (stalls.p50, stalls.p99, stalls.max);
            let cycle = last.cycle;
            lock(&self.gc.scan_stalls).extend(pass.scan_stalls.iter().map(|&ns| (cycle, ns)));
            if pass.remove {
                last.barrier_removal_ns = pass.ns;
                last.removal_skipped = pass.skipped;
                last.barriers_hit += pass.counters.hit + pass.counters.unwound;
                last.barriers_removed += pass.counters.removed;
                last.barriers_installed += pass.counters.installed;
                last.watermark_hits += pass.counters.watermark_hits;
                last.mutator_scanned_frames += pass.counters.watermark_frames;
                last.mutator_scanned_bytes += pass.counters.watermark_bytes;
                last.scan_bytes += pass.counters.watermark_bytes;
            }
        }
        Ok(true)
    }

    /// Prints the last completed cycle's `gctrace` line, if the knob asks for it. Engines call it
    /// once the world has restarted and the cycle's pauses are final.
    pub fn trace_cycle(&self) {
        if self.config.debug.gctrace == 0 {
            return;
        }
        let Some(stats) = lock(&self.gc.history).last().copied() else {
            return;
        };
        let (heap0, heap1) = *lock(&self.gc.trace_heap);
        crate::debug::debug_line(format_args!("{}", self.gctrace_line(&stats, heap0, heap1)));
    }

    fn gctrace_line(&self, s: &CycleStats, heap0: u64, heap1: u64) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        let mb = |b: u64| b >> 20;
        let elapsed = self.gc.started.elapsed();
        let pct =
            100.0 * self.gc.gc_ns.load(Ordering::Relaxed) as f64 / elapsed.as_nanos().max(1) as f64;
        let avoided = if s.full_rescan_bytes == 0 {
            100.0
        } else {
            100.0 * (1.0 - s.rescan_bytes as f64 / s.full_rescan_bytes as f64)
        };
        format!(
            "gc {} @{:.3}s {:.0}%: {:.3}+{:.3}+{:.3} ms clock, {}->{}->{} MB, {} MB goal, {} P; \
             stacks {} scanned {} B; rescan {} G {} B {} frames of {} B full ({:.1}% avoided), oracle {} B; \
             stkbar {} installed {} hit {} removed; \
             mark term {:.3} stop + {:.3} rescan + {:.3} drain + {:.3} other ms; \
             removal {:.3} ms {} skipped",
            s.cycle,
            elapsed.as_secs_f64(),
            pct,
            ms(s.sweep_term_ns),
            ms(s.mark_ns),
            ms(s.mark_term_ns),
            mb(heap0),
            mb(heap1),
            mb(s.heap_live_bytes),
            mb(self.gc.next_gc()),
            self.gc.procs,
            s.stacks_scanned,
            s.scan_bytes,
            s.rescan_goroutines,
            s.rescan_bytes,
            s.rescan_frames,
            s.full_rescan_bytes,
            avoided,
            s.oracle_rescan_bytes,
            s.barriers_installed,
            s.barriers_hit,
            s.barriers_removed,
            ms(s.stw_stop_ns),
            ms(s.mark_term_rescan_ns),
            ms(s.mark_term_drain_ns),
            ms(s.mark_term_other_ns),
            ms(s.barrier_removal_ns),
            s.removal_skipped
        )
    }
}
