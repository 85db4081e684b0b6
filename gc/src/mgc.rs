//! The collector's cycle (Go's `mgc.go`, Go 1.5–1.7 shape): its shared state, sweep termination,
//! mark termination and the gctrace line. Marking lives in `mark`, sweeping in `sweep`.
//!
//! Invariant: a cycle goes off → sweep termination (world stopped) → concurrent mark → mark
//! termination (world stopped) → concurrent sweep → off, and at the end of mark termination every
//! object reachable from a root — a global or any goroutine's stack — is marked. The write barrier
//! is on from sweep termination to the end of mark termination, for every goroutine, before any
//! stack is scanned (mstkbar.go's "Gotchas").
//!
//! Mark termination, with the world stopped: re-scan the stacks on the re-scan list (see `mark`),
//! drain, run checkmark if asked, remove every remaining stack barrier, turn the write barrier off,
//! then hand the heap to the sweeper. Sweep termination, with the world stopped: finish the last
//! cycle's sweep, turn the write barrier on, and queue the roots; `yuasa` also scans every stack
//! whole inside this pause (a snapshot at the beginning).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use stacks::{NoSignals, StkbarCounters};

use crate::error::RuntimeError;
use crate::heap::lock;
use crate::nowb::nowritebarrier;
use crate::pacer::Pacer;
use crate::runtime::{GcConfig, Runtime};
use crate::sched::{GIndex, P, PCounters};
use crate::stats::{CycleStats, RescanBound, RescanRecord};
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
    /// Stack jobs a marker has taken and not yet finished or put back on `retry`.
    pub(crate) in_flight: usize,
}

impl Roots {
    /// Whether every root job is finished.
    pub(crate) fn done(&self) -> bool {
        self.globals_done && self.next >= self.end && self.retry.is_empty() && self.in_flight == 0
    }
}

/// Counters of the cycle in progress.
#[derive(Debug, Default)]
pub(crate) struct Accum {
    pub(crate) stats: CycleStats,
    pub(crate) stkbar: StkbarCounters,
    pub(crate) heap_at_start: u64,
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
    pub(crate) rescan: Mutex<Vec<GIndex>>,
    pub(crate) barriered: Mutex<Vec<GIndex>>,
    pub(crate) acc: Mutex<Accum>,
    /// The GC controller: trigger, goal, assist ratio.
    pub pacer: Pacer,
    pub(crate) start_requested: AtomicBool,
    pub(crate) history: Mutex<Vec<CycleStats>>,
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
            acc: Mutex::default(),
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

    /// Cycles completed so far (without copying the history: the engines ask at every step).
    pub fn cycles_completed(&self) -> usize {
        lock(&self.history).len()
    }

    /// The per-goroutine re-scan records (when `record_rescans` is on).
    pub fn rescan_records(&self) -> Vec<RescanRecord> {
        lock(&self.rescans).clone()
    }

    /// DESIGN §4's bound over every re-scan so far.
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

    /// Go 1.7's `queueRescan`.
    pub(crate) fn queue_rescan(&self, index: GIndex) {
        lock(&self.rescan).push(index);
    }

    /// A goroutine was created: it has never been scanned; during a `dijkstra` mark it must be
    /// re-scanned (whole) at mark termination.
    pub(crate) fn note_new_goroutine(&self, rt: &Runtime, index: GIndex) {
        rt.g(index).scan_done_cycle.store(0, Ordering::Release);
        if self.phase() == Phase::Mark && rt.stack_policy() == StackPolicy::ConcurrentScanRescan {
            self.queue_rescan(index);
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
    /// measurement, less the time checkmark took inside it.
    pub fn set_mark_term_pause(&self, ns: u64) {
        let check = self.last_checkmark_ns.load(Ordering::Relaxed);
        if let Some(last) = lock(&self.history).last_mut() {
            last.mark_term_ns = ns.saturating_sub(check);
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

    /// Mark termination (Go's `gcMarkTermination`); the world is stopped. Returns the cycle's
    /// stats, or the checker's error.
    pub fn mark_termination(&self, worker: &mut GcWork) -> Result<CycleStats, RuntimeError> {
        let _nowb = nowritebarrier("gcMarkTermination");
        let t0 = Instant::now();
        let gc = &self.gc;
        let cycle = gc.cycle();
        let mark_ns = lock(&gc.mark_start)
            .take()
            .map_or(0, |t| t0.duration_since(t).as_nanos() as u64);
        let mut rescan = std::mem::take(&mut *lock(&gc.rescan));
        rescan.sort_unstable();
        rescan.dedup();
        let mut stats = CycleStats {
            cycle,
            ..Default::default()
        };
        let mut records = Vec::new();
        for &index in &rescan {
            self.rescan_g(index, worker, cycle, &mut stats, &mut records)?;
        }
        self.drain(worker, u64::MAX)?;
        // Checkmark is a debugging pass: it runs inside the pause but is not part of its figure.
        let t_check = Instant::now();
        let (failures, report, missed) = if self.config.debug.checkmark_walk() {
            self.checkmark()?
        } else {
            (0, String::new(), Vec::new())
        };
        let checkmark_ns = t_check.elapsed().as_nanos() as u64;
        gc.last_checkmark_ns.store(checkmark_ns, Ordering::Relaxed);
        // Remove every barrier left (gcRemoveStackBarriers) and collect the barrier counters.
        let mut stkbar = StkbarCounters::default();
        let barriered = std::mem::take(&mut *lock(&gc.barriered));
        for index in barriered {
            let g = self.g(index);
            if let Some((mut owner, restore)) = g.try_own_for_scan() {
                let r = match g.state(&mut owner).as_mut() {
                    Some(st) => st
                        .gs
                        .remove_stack_barriers(&self.prog)
                        .inspect(|_| stkbar.add(&st.gs.take_counters())),
                    None => Ok(0),
                };
                g.release(owner, restore);
                let removed = r?;
                if removed > 0 {
                    let args = [g.goid(), removed as u64];
                    self.trace_global(Track::Gc, TraceEv::BarrierRemove, None, args);
                }
            }
        }
        self.wb_on.store(false, Ordering::Release);
        let heap_end = self.heap.heap_live();
        let marked = self.heap.finish_mark();
        let assist_scan_bytes = gc.pacer.assist_work();
        gc.pacer.set_after_cycle(marked, &self.config);
        gc.set_phase(Phase::Sweep);
        let mark_term_ns = (t0.elapsed().as_nanos() as u64).saturating_sub(checkmark_ns);

        // Book-keeping after the pause proper (still stopped): stack use and the cycle's row.
        let mut stack_bytes_used = 0;
        for index in 0..self.allglen() as GIndex {
            let g = self.g(index);
            if let Some((mut owner, restore)) = g.try_own_for_scan() {
                if let Some(st) = g.state(&mut owner).as_mut() {
                    stack_bytes_used += st.gs.used() as u64;
                    st.track = None;
                    st.gcscanvalid = false;
                    st.gc_assist_bytes = 0;
                }
                g.release(owner, restore);
            }
        }
        let mut acc = std::mem::take(&mut *lock(&gc.acc));
        acc.stkbar.add(&stkbar);
        stats.heap_live_bytes = marked;
        stats.stack_bytes_used = stack_bytes_used;
        stats.stacks_scanned = acc.stats.stacks_scanned;
        stats.scan_bytes = acc.stats.scan_bytes;
        stats.barriers_installed = acc.stkbar.installed;
        stats.barriers_hit = acc.stkbar.hit + acc.stkbar.unwound;
        stats.barriers_removed = acc.stkbar.removed;
        stats.stkbar_reserved_bytes = lock(&self.stackpool).stats().stkbar_reserved_bytes as u64;
        stats.copystacks = acc.stats.copystacks;
        stats.wb_calls = acc.stats.wb_calls;
        stats.assist_scan_bytes = assist_scan_bytes;
        stats.sweep_term_ns = acc.stats.sweep_term_ns;
        stats.mark_ns = mark_ns;
        stats.mark_term_ns = mark_term_ns;
        stats.checkmark_failures = failures;
        stats.procs = acc.stats.procs;
        (stats.wb_dropped, stats.rescan_frames_skipped) = self.fault_log.since_last_report();
        stats.shadow_bytes = self.shadow_bytes();
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
        eprintln!("{}", self.gctrace_line(&stats, heap0, heap1));
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
             stacks {} scanned {} B; rescan {} B {} frames of {} B full ({:.1}% avoided), oracle {} B; \
             stkbar {} installed {} hit {} removed",
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
            s.rescan_bytes,
            s.rescan_frames,
            s.full_rescan_bytes,
            avoided,
            s.oracle_rescan_bytes,
            s.barriers_installed,
            s.barriers_hit,
            s.barriers_removed
        )
    }
}
