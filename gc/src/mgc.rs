//! The collector: cycle phases, root marking, the concurrent stack scan, mark termination with its
//! stack re-scan, checkmark, and sweep (Go's `mgc.go` and `mgcmark.go`, Go 1.5–1.7 shape).
//!
//! Invariant: a cycle goes off → sweep termination (world stopped) → concurrent mark → mark
//! termination (world stopped) → concurrent sweep → off, and at the end of mark termination every
//! object reachable from a root — a global or any goroutine's stack — is marked. The write barrier
//! is on from sweep termination to the end of mark termination, for every goroutine, before any
//! stack is scanned (mstkbar.go's "Gotchas").
//!
//! Roots. Sweep termination snapshots `allg`; the concurrent phase scans the globals and each of
//! those goroutines once (Go's `markroot`). A goroutine that is not running is scanned by the
//! marker holding its `SCAN` status bit; a running one is asked to scan its own stack at its next
//! safe point (Go's `preemptscan`). The concurrent scan shrinks the stack first if it uses less
//! than a quarter (Go 1.7), shades every pointer slot and, for `dijkstra`, installs stack barriers
//! at `first_offset·2^n`. `yuasa` instead scans every stack whole inside the sweep-termination pause.
//!
//! Re-scan (`dijkstra` only, Go 1.7's re-scan list). A goroutine scanned in this cycle sets
//! `gcscanvalid`; when it next starts running, the scheduler clears it and queues the goroutine for
//! re-scan. Goroutines created during mark are queued too, never scanned. Mark termination re-scans
//! exactly that list: a never-scanned stack whole; a scanned one, with stack barriers on, only up to
//! and including the frame holding its lowest barrier not hit (all of it if every barrier was hit);
//! with barriers off, whole. It then drains, runs checkmark if asked, removes every remaining
//! barrier and turns the write barrier off.
//!
//! Mark work. Grey objects live in work buffers (`workbuf`): each mark worker and each P (for the
//! objects its write barriers and self-scans shade) has a `GcWork`; marking is done when the roots
//! are done and every buffer is empty, which an engine checks after flushing every P's buffer.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use stacks::{Addr, ScanKind, StackBarrierMode, StkbarCounters, scan_frames, scanstack};

use crate::error::{RuntimeError, stack_place};
use crate::heap::{Lookup, lock};
use crate::runtime::{GcConfig, Runtime};
use crate::sched::{GIndex, GOwner, GState, P, PCounters, status};
use crate::stats::{CycleStats, RescanBound, RescanRecord};
use crate::wbarrier::StackPolicy;
use crate::workbuf::{GcWork, WorkbufPool};

/// The default of [`GcConfig::mark_step_bytes`]: a collector step scans one 32-byte object, or
/// one larger object. Calibrated so that a step of the deterministic engine is about as long as a
/// mutator step, as it is on real threads: mark throughput here is about 370 MiB/s (0.4 B/ns)
/// and the interpreter runs an operation in 10–20 ns, so a marker scans 4–8 bytes in the time
/// the mutator runs one operation; one object is the smallest unit of marking. A budget of
/// kilobytes makes the mark phase so short, in mutator operations, that most goroutines never
/// run between their scan and mark termination and re-scans look rarer than they are.
pub const MARK_STEP_BYTES: u64 = 32;

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

/// What a mark step did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MarkProgress {
    /// Some work was done.
    Worked,
    /// Nothing to do now, but running goroutines still have to scan their own stacks.
    Waiting,
    /// No roots left and this worker found no grey object: the engine should flush every P's
    /// buffer and, if the pool is still empty, terminate.
    Done,
}

#[derive(Debug, Default)]
struct Roots {
    globals_done: bool,
    next: usize,
    end: usize,
    retry: VecDeque<GIndex>,
}

/// Counters of the cycle in progress.
#[derive(Debug, Default)]
struct Accum {
    stats: CycleStats,
    stkbar: StkbarCounters,
    heap_at_start: u64,
}

/// The collector's shared state.
#[derive(Debug)]
pub struct GcState {
    phase: AtomicU8,
    cycle: AtomicU32,
    /// The global full and empty work-buffer lists.
    pub pool: WorkbufPool,
    roots: Mutex<Roots>,
    rescan: Mutex<Vec<GIndex>>,
    barriered: Mutex<Vec<GIndex>>,
    acc: Mutex<Accum>,
    next_gc: AtomicU64,
    start_requested: AtomicBool,
    history: Mutex<Vec<CycleStats>>,
    rescans: Mutex<Vec<RescanRecord>>,
    rescan_bound: Mutex<RescanBound>,
    mark_start: Mutex<Option<Instant>>,
    started: Instant,
    gc_ns: AtomicU64,
    total_ops: AtomicU64,
    procs: usize,
}

impl GcState {
    pub(crate) fn new(config: &GcConfig) -> GcState {
        GcState {
            phase: AtomicU8::new(Phase::Off as u8),
            cycle: AtomicU32::new(0),
            pool: WorkbufPool::new(),
            roots: Mutex::default(),
            rescan: Mutex::default(),
            barriered: Mutex::default(),
            acc: Mutex::default(),
            next_gc: AtomicU64::new(config.heap_minimum),
            start_requested: AtomicBool::new(false),
            history: Mutex::default(),
            rescans: Mutex::default(),
            rescan_bound: Mutex::default(),
            mark_start: Mutex::default(),
            started: Instant::now(),
            gc_ns: AtomicU64::new(0),
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

    fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
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
        self.next_gc.load(Ordering::Relaxed)
    }

    /// The stats of every completed cycle.
    pub fn history(&self) -> Vec<CycleStats> {
        lock(&self.history).clone()
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
        if rt.config.gogc.is_some()
            && !self.start_requested.load(Ordering::Relaxed)
            && rt.heap.heap_live() >= self.next_gc()
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

    fn fold_p(&self, c: PCounters) {
        let mut acc = lock(&self.acc);
        acc.stats.wb_calls += c.wb_calls;
        acc.stats.copystacks += c.copystacks;
        drop(acc);
        self.total_ops.fetch_add(c.ops, Ordering::Relaxed);
    }
}

/// How a checkmark pass reached an object, for its report.
#[derive(Clone, Copy, Debug)]
enum Via {
    Global(usize),
    Stack(u64, Addr),
    Field(Addr),
}

impl Runtime {
    /// Stops `p` at a safe point for a stop-the-world: its goroutine goes back to the run queue,
    /// its grey objects to the global lists, its mcache spans to the heap, its counters to the
    /// cycle.
    pub fn stop_p(&self, p: &mut P) {
        self.deschedule(p);
        p.gcw.dispose(&self.gc.pool);
        self.heap.flush_mcache(&mut p.mcache);
        self.gc.fold_p(std::mem::take(&mut p.counters));
    }

    /// Sweep termination and the start of mark (Go's `gcStart`); the world is stopped (every P
    /// went through [`Runtime::stop_p`]).
    pub fn gc_start(&self, worker: &mut GcWork) -> Result<(), RuntimeError> {
        let t0 = Instant::now();
        let gc = &self.gc;
        self.heap.finish_sweep(|_, _| {});
        let cycle = gc.cycle.fetch_add(1, Ordering::AcqRel) + 1;
        self.heap.start_mark();
        lock(&gc.acc).heap_at_start = self.heap.heap_live();
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
        };
        lock(&gc.rescan).clear();
        lock(&gc.barriered).clear();
        self.wb_on.store(true, Ordering::Release);
        gc.set_phase(Phase::Mark);
        gc.start_requested.store(false, Ordering::Relaxed);
        if policy == StackPolicy::StwScanAtStart {
            for index in 0..self.allglen() as GIndex {
                let g = self.g(index);
                if let Some((mut owner, restore)) = g.try_own_for_scan() {
                    let r = self.scan_g(&mut owner, worker, cycle);
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

    /// The concurrent scan of one goroutine's stack, by its owner (a marker holding the `SCAN`
    /// bit, or the goroutine itself at a safe point).
    fn scan_g(&self, owner: &mut GOwner, gcw: &mut GcWork, cycle: u32) -> Result<(), RuntimeError> {
        let index = owner.index();
        let g = self.g(index);
        let Some(st) = g.state(owner).as_mut() else {
            return Ok(());
        };
        if st.gs.shrinkstack(&mut lock(&self.stackpool), &self.prog)? {
            lock(&self.gc.acc).stats.copystacks += 1;
        }
        let rescans = self.stack_policy() == StackPolicy::ConcurrentScanRescan;
        let mode = if rescans {
            self.config.stack_barriers
        } else {
            StackBarrierMode::Off
        };
        let goid = st.gs.goid();
        let mut err = None;
        let stats = scanstack(&self.prog, &mut st.gs, ScanKind::Mark(mode), |slot, v| {
            if err.is_none()
                && let Err(e) = self.shade(v, gcw, "")
            {
                err = Some(relocate(e, goid, slot));
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        {
            let mut acc = lock(&self.gc.acc);
            acc.stats.stacks_scanned += 1;
            acc.stats.scan_bytes += stats.bytes as u64;
        }
        if stats.barriers_installed > 0 || stats.stale_barriers_removed > 0 {
            lock(&self.gc.barriered).push(index);
        }
        if rescans {
            st.gcscanvalid = true;
            self.begin_track(st);
        }
        g.scan_done_cycle.store(cycle, Ordering::Release);
        Ok(())
    }

    /// A running goroutine scans its own stack at a safe point (Go's `preemptscan`), then goes on
    /// running, so it joins the re-scan list at once.
    pub(crate) fn self_scan_impl(&self, owner: &mut GOwner, p: &mut P) -> Result<(), RuntimeError> {
        let cycle = self.gc.cycle();
        let g = self.g(owner.index());
        if self.gc.phase() != Phase::Mark || g.scan_done_cycle.load(Ordering::Acquire) == cycle {
            return Ok(());
        }
        self.scan_g(owner, &mut p.gcw, cycle)?;
        if let Some(st) = g.state(owner).as_mut()
            && st.gcscanvalid
        {
            st.gcscanvalid = false;
            self.gc.queue_rescan(owner.index());
        }
        Ok(())
    }

    /// One unit of concurrent mark work for a mark worker: a root (the globals, or one stack), or
    /// up to `mark_step_bytes` of heap objects (at least one).
    pub fn mark_step(&self, worker: &mut GcWork) -> Result<MarkProgress, RuntimeError> {
        if self.gc.phase() != Phase::Mark {
            return Ok(MarkProgress::Done);
        }
        enum Job {
            Globals,
            Stack(GIndex),
        }
        let job = {
            let mut roots = lock(&self.gc.roots);
            if !roots.globals_done {
                roots.globals_done = true;
                Some(Job::Globals)
            } else if roots.next < roots.end {
                roots.next += 1;
                Some(Job::Stack(roots.next as GIndex - 1))
            } else {
                roots.retry.pop_front().map(Job::Stack)
            }
        };
        let cycle = self.gc.cycle();
        match job {
            Some(Job::Globals) => {
                for i in 0..self.globals.len() {
                    let place = format!("global {i}");
                    self.shade(self.globals.read(i), worker, &place)?;
                }
                Ok(MarkProgress::Worked)
            }
            Some(Job::Stack(index)) => {
                let g = self.g(index);
                if g.scan_done_cycle.load(Ordering::Acquire) == cycle {
                    return Ok(MarkProgress::Worked);
                }
                if let Some((mut owner, restore)) = g.try_own_for_scan() {
                    let r = self.scan_g(&mut owner, worker, cycle);
                    g.release(owner, restore);
                    r?;
                    return Ok(MarkProgress::Worked);
                }
                if g.status() == status::DEAD {
                    return Ok(MarkProgress::Worked);
                }
                // Running (or being created): ask it to scan itself at its next safe point.
                g.preempt_scan.store(true, Ordering::Release);
                lock(&self.gc.roots).retry.push_back(index);
                Ok(MarkProgress::Waiting)
            }
            None => {
                if self.drain(worker, self.config.mark_step_bytes.max(1))? > 0 {
                    Ok(MarkProgress::Worked)
                } else {
                    Ok(MarkProgress::Done)
                }
            }
        }
    }

    /// Whether concurrent marking has nothing left: roots done and no grey object published.
    /// Call after flushing every P's buffer and the worker's.
    pub fn mark_complete(&self) -> bool {
        let roots = lock(&self.gc.roots);
        roots.globals_done
            && roots.next >= roots.end
            && roots.retry.is_empty()
            && !self.gc.pool.has_full()
    }

    /// Scans grey objects until `budget` bytes are scanned or none is left (Go's `gcDrain`).
    /// Returns the bytes scanned.
    pub fn drain(&self, gcw: &mut GcWork, budget: u64) -> Result<u64, RuntimeError> {
        let mut scanned = 0;
        while scanned < budget {
            let Some(obj) = gcw.try_get(&self.gc.pool) else {
                break;
            };
            scanned += self.scanobject(obj, |v| self.shade(v, gcw, ""))?;
        }
        Ok(scanned)
    }

    /// Calls `shade` on every pointer field of the object at `base`; returns its size.
    fn scanobject(
        &self,
        base: Addr,
        mut shade: impl FnMut(u64) -> Result<(), RuntimeError>,
    ) -> Result<u64, RuntimeError> {
        let Lookup::Object(o) = self.heap.find_object(base.0) else {
            return Err(RuntimeError::BadPointer {
                value: base.0,
                place: "a work buffer".into(),
                why: "a grey object that is not allocated",
            });
        };
        let t = self.heap.type_of(self.heap.object_type(o));
        for &w in t.ptr_fields.iter() {
            let v = self.heap.read_word(o, w as usize);
            if v != 0 {
                // The field is named only on the error path: formatting it per field costs more
                // than the shade.
                shade(v).map_err(|e| match e {
                    RuntimeError::BadPointer { value, why, .. } => RuntimeError::BadPointer {
                        value,
                        place: format!("field {w} of {} object {}", t.name, o.base),
                        why,
                    },
                    e => e,
                })?;
            }
        }
        Ok(self.heap.span(o).elem_size() as u64)
    }

    /// Mark termination (Go's `gcMarkTermination`); the world is stopped. Returns the cycle's
    /// stats, or the checker's error.
    pub fn mark_termination(&self, worker: &mut GcWork) -> Result<CycleStats, RuntimeError> {
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
        let (failures, report) = if self.config.debug.gccheckmark {
            self.checkmark()?
        } else {
            (0, String::new())
        };
        let checkmark_ns = t_check.elapsed().as_nanos() as u64;
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
                        .map(|_| stkbar.add(&st.gs.take_counters())),
                    None => Ok(()),
                };
                g.release(owner, restore);
                r?;
            }
        }
        self.wb_on.store(false, Ordering::Release);
        let heap_end = self.heap.heap_live();
        let marked = self.heap.finish_mark();
        if let Some(gogc) = self.config.gogc {
            let goal = marked.saturating_mul(100 + u64::from(gogc)) / 100;
            gc.next_gc
                .store(goal.max(self.config.heap_minimum), Ordering::Relaxed);
        }
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
        stats.sweep_term_ns = acc.stats.sweep_term_ns;
        stats.mark_ns = mark_ns;
        stats.mark_term_ns = mark_term_ns;
        stats.checkmark_failures = failures;
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
        if self.config.debug.gctrace > 0 {
            eprintln!("{}", self.gctrace_line(&stats, acc.heap_at_start, heap_end));
        }
        if failures > 0 {
            return Err(RuntimeError::CheckmarkFailed {
                cycle,
                failures,
                report,
            });
        }
        Ok(stats)
    }

    /// Re-scans one goroutine at mark termination.
    fn rescan_g(
        &self,
        index: GIndex,
        worker: &mut GcWork,
        cycle: u32,
        stats: &mut CycleStats,
        records: &mut Vec<RescanRecord>,
    ) -> Result<(), RuntimeError> {
        let g = self.g(index);
        let Some((mut owner, restore)) = g.try_own_for_scan() else {
            return Ok(()); // dead
        };
        let scanned = g.scan_done_cycle.load(Ordering::Acquire) == cycle;
        let r = match g.state(&mut owner).as_mut() {
            Some(st) => self.rescan_state(st, scanned, worker, cycle, stats, records),
            None => Ok(()),
        };
        g.release(owner, restore);
        r
    }

    fn rescan_state(
        &self,
        st: &mut GState,
        scanned: bool,
        worker: &mut GcWork,
        cycle: u32,
        stats: &mut CycleStats,
        records: &mut Vec<RescanRecord>,
    ) -> Result<(), RuntimeError> {
        let gs = &st.gs;
        let mut limit = if scanned { gs.rescan_limit() } else { None };
        if self.config.faults.rescan_stop_one_frame_short
            && let Some(l) = limit
        {
            // The deliberately wrong bound: the frame below the one holding the barrier.
            let mut prev = None;
            for frame in gs.frames(&self.prog) {
                let frame = frame?;
                if frame.lr_slot() >= l {
                    break;
                }
                prev = Some(frame.lr_slot());
            }
            limit = prev.or(Some(stacks::Addr(0)));
        }
        let goid = gs.goid();
        let mut err = None;
        let mut last_frame_size = 0;
        let scan = if limit == Some(stacks::Addr(0)) {
            stacks::ScanStats::default()
        } else {
            scan_frames(
                &self.prog,
                gs,
                limit,
                |f| last_frame_size = f.size(),
                |slot, v| {
                    if err.is_none()
                        && let Err(e) = self.shade(v, worker, "")
                    {
                        err = Some(relocate(e, goid, slot));
                    }
                },
            )?
        };
        if let Some(e) = err {
            return Err(e);
        }
        let used = gs.used();
        let oracle = match st.track {
            Some(t) if scanned => used - t.changed_top_depth.min(used),
            _ => used,
        };
        stats.rescan_bytes += scan.bytes as u64;
        stats.rescan_frames += scan.frames as u64;
        stats.full_rescan_bytes += used as u64;
        stats.oracle_rescan_bytes += oracle as u64;
        let t = st.track;
        records.push(RescanRecord {
            cycle,
            goid,
            scanned,
            bounded: limit.is_some(),
            used,
            sp0_depth: t.map_or(used, |t| t.sp0_depth),
            ret_slot_depth: t.map_or(usize::MAX, |t| t.ret_slot_depth),
            rescan_bytes: scan.bytes,
            oracle_bytes: oracle,
            last_frame_size,
        });
        Ok(())
    }

    /// Marks again from every root into the checkmark bits, with the world stopped, and counts
    /// reachable objects the real mark missed (Go's `gccheckmark`).
    fn checkmark(&self) -> Result<(u64, String), RuntimeError> {
        self.heap.clear_checkmarks();
        self.heap.set_checkmark_active(true);
        let mut work: Vec<Addr> = Vec::new();
        let mut failures = 0u64;
        let mut report = String::new();
        let mut visit = |v: u64, via: Via, work: &mut Vec<Addr>| -> Result<(), RuntimeError> {
            if v == 0 {
                return Ok(());
            }
            match self.heap.find_object(v) {
                Lookup::NotHeap => Ok(()),
                Lookup::Free(_) => self.shade(v, &mut GcWork::new(), &describe(via)),
                Lookup::Object(o) => {
                    if self.heap.try_checkmark(o) {
                        if !self.heap.is_marked(o) {
                            failures += 1;
                            if failures <= 10 {
                                let t = self.heap.type_of(self.heap.object_type(o));
                                let _ = writeln!(
                                    report,
                                    "runtime: checkmark: {} object {} reachable from {} was not marked",
                                    t.name,
                                    o.base,
                                    describe(via)
                                );
                            }
                        }
                        work.push(o.base);
                    }
                    Ok(())
                }
            }
        };
        for i in 0..self.globals.len() {
            visit(self.globals.read(i), Via::Global(i), &mut work)?;
        }
        for index in 0..self.allglen() as GIndex {
            let g = self.g(index);
            let Some((mut owner, restore)) = g.try_own_for_scan() else {
                continue;
            };
            let mut r = Ok(());
            if let Some(st) = g.state(&mut owner).as_ref() {
                let goid = st.gs.goid();
                let mut slots = Vec::new();
                r = scan_frames(
                    &self.prog,
                    &st.gs,
                    None,
                    |_| {},
                    |slot, v| slots.push((slot, v)),
                )
                .map_err(RuntimeError::from)
                .and_then(|_| {
                    slots
                        .into_iter()
                        .try_for_each(|(slot, v)| visit(v, Via::Stack(goid, slot), &mut work))
                });
            }
            g.release(owner, restore);
            r?;
        }
        while let Some(base) = work.pop() {
            let mut fields = Vec::new();
            self.scanobject(base, |v| {
                fields.push(v);
                Ok(())
            })?;
            for v in fields {
                visit(v, Via::Field(base), &mut work)?;
            }
        }
        self.heap.set_checkmark_active(false);
        if failures > 10 {
            let _ = writeln!(report, "runtime: checkmark: … and {} more", failures - 10);
        }
        Ok((failures, report))
    }

    /// One unit of concurrent sweep; false when the heap is swept (the phase is then off).
    pub fn sweep_step(&self) -> bool {
        if self.gc.phase() != Phase::Sweep {
            return false;
        }
        if self.heap.sweep_one(|_, _| {}).is_some() {
            return true;
        }
        self.gc.set_phase(Phase::Off);
        false
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

impl GcState {
    /// See [`Runtime::self_scan_impl`].
    pub(crate) fn self_scan(
        &self,
        rt: &Runtime,
        owner: &mut GOwner,
        p: &mut P,
    ) -> Result<(), RuntimeError> {
        rt.self_scan_impl(owner, p)
    }
}

fn describe(via: Via) -> String {
    match via {
        Via::Global(i) => format!("global {i}"),
        Via::Stack(goid, slot) => stack_place(goid, slot),
        Via::Field(base) => format!("a field of object {base}"),
    }
}

/// Names the stack slot in a bad-pointer error raised by a stack scan.
fn relocate(e: RuntimeError, goid: u64, slot: Addr) -> RuntimeError {
    match e {
        RuntimeError::BadPointer { value, why, .. } => RuntimeError::BadPointer {
            value,
            place: stack_place(goid, slot),
            why,
        },
        e => e,
    }
}
