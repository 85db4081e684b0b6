//! Marking (Go's `mgcmark.go`): root jobs, the concurrent stack scan, draining grey objects, the
//! mark-termination re-scan and checkmark.
//!
//! Invariant: an object is shaded (marked and queued grey) at most once per cycle, by whoever sets
//! its mark bit; marking is complete when the roots are done and no work buffer holds a grey
//! object; and when mark termination returns, every object reachable from a global or any
//! goroutine's stack is marked — checkmark, when asked, proves it by marking again from scratch.
//!
//! Roots. Sweep termination snapshots `allg`; the concurrent phase scans the globals and each of
//! those goroutines once (Go's `markroot`). A goroutine that is not running is scanned by the
//! marker holding its `SCAN` status bit; a running one is asked to scan its own stack at its next
//! call (Go's `preemptscan`, served at the function prologue). The concurrent scan shrinks the
//! stack first if it uses little of it (Go 1.7's `shrinkstack`), removes the barriers an earlier
//! cycle left (stale ones, on a goroutine the after-restart walk skipped), shades every pointer
//! slot and, for `dijkstra`, installs stack barriers at `first_offset·2^n` (never on the running
//! frame), then takes the goroutine off the re-scan list if it is on it (Go's `dequeueRescan`).
//! With `hybrid` and `--stack-scan lazy` the scan covers only the first frames and leaves a
//! watermark (see `stacks::watermark`); the stack then stays a root job, `Roots::lazy`, that
//! markers advance `step_frames` frames at a time without owning the goroutine, until the
//! watermark reaches the top: roots are not done while any stack is grey. Every scan's stop —
//! from the moment its scanner holds the stack to the moment the goroutine may run — is timed
//! (`scan_stall_ns`).
//!
//! Re-scan (`dijkstra` only, Go 1.7's re-scan list). A goroutine scanned in this cycle has
//! `gcscanvalid` (a cycle stamp); when it next starts running, the scheduler clears it and queues
//! the goroutine for re-scan. Goroutines created during mark are queued too, and stay queued
//! unless the mark scans them. Mark termination re-scans exactly that list, as root jobs shared
//! with the drain by every thread that helps ([`MarkTermWork`]): a never-scanned stack whole; a
//! scanned one, with stack barriers on, only up to and including the frame holding its lowest
//! barrier not hit (all of it if every barrier was hit); with barriers off, whole. Each re-scan is
//! recorded against the oracle and ARCHITECTURE.md §4's bound.
//!
//! Mark work. Grey objects live in work buffers (`workbuf`): each mark worker and each P (for the
//! objects its write barriers and self-scans shade) has a `GcWork`; a mark step is one root job
//! or `mark_step_bytes` of grey objects, and marking is done when the roots are done and every
//! buffer is empty, which an engine checks after flushing every P's buffer. A drain keeps
//! several cache misses in flight instead of waiting for each: grey objects and the pointers
//! their scans find pass through two short FIFOs, prefetched as they enter (see
//! `drain_until`); neither outlives the drain, so the invariant above holds between
//! drains unchanged. Each `GcWork` counts the bytes it marks and hands the count to the pool
//! when disposed (Go's `gcWork.bytesMarked`), so markers share no counter per object.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stacks::{
    Addr, NoSignals, ScanKind, Signals, StackBarrierMode, bad_pointer_value, scan_frames,
    scanstack_with_signals,
};

use crate::debug::seeded_fraction;
use crate::error::{RuntimeError, TRACEBACK_FRAMES, stack_place, traceback};
use crate::heap::{Lookup, ObjRef, lock};
use crate::mgc::Phase;
use crate::pacer::GC_OVER_ASSIST_WORK;
use crate::profile::BarrierSignals;
use crate::runtime::{BarrierRemoval, Runtime, StackScan};
use crate::sched::{GIndex, GOwner, GState, P, ScanTrack, status};
use crate::stackshadow::StackShadow;
use crate::stats::{CycleStats, RescanRecord};
use crate::trace::TraceTo;
use crate::trace::{TraceEv, Track};
use crate::wbarrier::StackPolicy;
use crate::workbuf::GcWork;
use stacks::advance_watermark;
use stacks::stack::StackBarrierLock;

/// The default of [`crate::GcConfig::mark_step_bytes`]: a collector step scans one 32-byte
/// object, or one larger object. Calibrated so that a step of the deterministic engine is about as long as a
/// mutator step, as it is on real threads: mark throughput here is 280–590 MiB/s (0.3–0.6 B/ns:
/// `mark/parallel_MB_per_s/1` on a 32 MB heap, `mark/heap_MB_per_s/drain` on 1.6 MB) and the
/// interpreter runs an operation in 7–20 ns, so a marker scans 2–12 bytes in the time the
/// mutator runs one operation; one object is the smallest unit of marking. A budget of
/// kilobytes makes the mark phase so short, in mutator operations, that most goroutines never
/// run between their scan and mark termination and re-scans look rarer than they are.
pub const MARK_STEP_BYTES: u64 = 32;

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

/// Mark termination's parallel work (Go's `gcMark` with `helpgc`): the re-scan list as root jobs
/// and the final drain, shared by every thread that helps — the coordinator and, in the threaded
/// engine, the stopped Ps' threads (`gcprocs` of them).
///
/// Termination. Participants are counted in `state` (its low bits; the top bit says the work is
/// over). A participant that finds neither a re-scan job nor a grey object — its own work buffer
/// disposed to the global lists — stops counting itself and waits; it counts itself again when a
/// full buffer appears on the global lists. Grey objects are made only by counted participants,
/// so once none is counted and the lists hold no full buffer, nothing is left: the last to see
/// that sets the top bit (Go's `getfull` with `work.nwait == work.nproc`). A helper that wakes
/// after that, or when no job and no full buffer is left to take, leaves without touching
/// anything, so no participant waits for a helper that has nothing to do.
#[derive(Debug)]
pub struct MarkTermWork {
    pub(crate) cycle: u32,
    rescan: Vec<GIndex>,
    next: AtomicUsize,
    rescans_left: AtomicUsize,
    state: AtomicU64,
    start: Instant,
    rescan_end_ns: AtomicU64,
    drain_end_ns: AtomicU64,
    found: Mutex<(CycleStats, Vec<RescanRecord>)>,
    error: Mutex<Option<RuntimeError>>,
}

/// `MarkTermWork::state`'s bit saying the work is over.
const MARK_TERM_DONE: u64 = 1 << 63;

impl MarkTermWork {
    /// The work of re-scanning `rescan` in `cycle`, with one participant (the caller) counted.
    pub(crate) fn new(cycle: u32, rescan: Vec<GIndex>) -> MarkTermWork {
        MarkTermWork {
            cycle,
            rescans_left: AtomicUsize::new(rescan.len()),
            rescan,
            next: AtomicUsize::new(0),
            state: AtomicU64::new(1),
            start: Instant::now(),
            rescan_end_ns: AtomicU64::new(0),
            drain_end_ns: AtomicU64::new(0),
            found: Mutex::default(),
            error: Mutex::default(),
        }
    }

    /// Goroutines on the re-scan list.
    pub fn rescan_goroutines(&self) -> usize {
        self.rescan.len()
    }

    /// Nanoseconds since the work began.
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Counts a late helper in, unless the work is over.
    fn join(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & MARK_TERM_DONE == 0).then_some(s + 1)
            })
            .is_ok()
    }

    /// Whether a re-scan job or a full buffer is there for a late helper to take. A helper that
    /// joined only to find nothing would make every participant wait until it leaves — and on a
    /// machine with fewer cores than threads it may be descheduled for a scheduler tick first.
    fn has_work(&self, pool: &crate::workbuf::WorkbufPool) -> bool {
        self.next.load(Ordering::Relaxed) < self.rescan.len() || pool.has_full()
    }

    fn next_rescan(&self) -> Option<GIndex> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.rescan.get(i).copied()
    }

    /// A re-scan job finished; the last one stamps the end of the re-scan part.
    fn rescan_done(&self) {
        if self.rescans_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.rescan_end_ns.store(self.now_ns(), Ordering::Relaxed);
        }
    }

    /// Adds a participant's findings to the shared sums and empties its own.
    fn merge(&self, stats: &mut CycleStats, records: &mut Vec<RescanRecord>) {
        let mut found = lock(&self.found);
        let s = std::mem::take(stats);
        found.0.rescan_goroutines += s.rescan_goroutines;
        found.0.rescan_bytes += s.rescan_bytes;
        found.0.rescan_frames += s.rescan_frames;
        found.0.full_rescan_bytes += s.full_rescan_bytes;
        found.0.oracle_rescan_bytes += s.oracle_rescan_bytes;
        found.1.append(records);
    }

    /// Stops counting the caller and waits until a full buffer appears (true: count again and go
    /// on) or the work is over (false).
    fn idle_until_work(&self, pool: &crate::workbuf::WorkbufPool) -> bool {
        let mut s = self.state.fetch_sub(1, Ordering::AcqRel) - 1;
        loop {
            if s & MARK_TERM_DONE != 0 {
                return false;
            }
            if pool.has_full() {
                if self.join() {
                    return true;
                }
            } else if s == 0 {
                // Nobody counted and nothing grey: the work is over, unless a participant came
                // back in between (then the exchange fails and we look again).
                if self
                    .state
                    .compare_exchange(0, MARK_TERM_DONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.drain_end_ns.store(self.now_ns(), Ordering::Relaxed);
                    return false;
                }
            }
            std::hint::spin_loop();
            std::thread::yield_now();
            s = self.state.load(Ordering::Acquire);
        }
    }

    /// Records a participant's error, ends the work for everyone (the others leave at their
    /// next idle moment) and stops counting the caller.
    fn fail(&self, e: RuntimeError) {
        lock(&self.error).get_or_insert(e);
        self.state.fetch_or(MARK_TERM_DONE, Ordering::AcqRel);
        self.state.fetch_sub(1, Ordering::AcqRel);
    }

    /// Waits until the work is over and no participant is left in it (at once after a normal
    /// end, which needs every participant idle; after an error, until the others notice).
    pub fn wait_all_left(&self) {
        while self.state.load(Ordering::Acquire) != MARK_TERM_DONE {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    /// The sums (with the re-scan part's duration, and the drain's from the last re-scan to
    /// the end), the records and the first error, once the work is over.
    pub(crate) fn finish(&self) -> (CycleStats, Vec<RescanRecord>, Option<RuntimeError>) {
        let (mut stats, mut records) = std::mem::take(&mut *lock(&self.found));
        records.sort_by_key(|r| r.goid);
        let rescan_end = self.rescan_end_ns.load(Ordering::Relaxed);
        let drain_end = self.drain_end_ns.load(Ordering::Relaxed).max(rescan_end);
        stats.mark_term_rescan_ns = rescan_end;
        stats.mark_term_drain_ns = drain_end - rescan_end;
        (stats, records, lock(&self.error).take())
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
    /// The concurrent scan of one goroutine's stack, by its owner (a marker holding the `SCAN`
    /// bit, or the goroutine itself at a safe point).
    pub(crate) fn scan_g(
        &self,
        owner: &mut GOwner,
        gcw: &mut GcWork,
        cycle: u32,
        to: &mut TraceTo<'_>,
        sig: &mut impl Signals,
    ) -> Result<(), RuntimeError> {
        let index = owner.index();
        let g = self.g(index);
        let Some(st) = g.state(owner).as_mut() else {
            return Ok(());
        };
        let held = Instant::now();
        let t0 = self.trace_now();
        let goid = st.gs.goid();
        if st
            .gs
            .shrinkstack(&mut lock(&self.stackpool), &self.prog)
            .map_err(|e| self.copystack_error(e, &st.gs))?
        {
            lock(&self.gc.acc).stats.copystacks += 1;
            let size = st.gs.stack().alloc_size() as u64;
            self.trace_to(to, TraceEv::CopyStack, None, [goid, size]);
        }
        let rescans = self.stack_policy() == StackPolicy::ConcurrentScanRescan;
        let mode = if rescans {
            self.config.stack_barriers
        } else {
            StackBarrierMode::Off
        };
        let mut err = None;
        let visit = |slot, v| {
            if err.is_none()
                && let Err(e) = self.shade(v, gcw, "")
            {
                err = Some((e, slot));
            }
        };
        let stats = match self.config.stack_scan {
            StackScan::Lazy { first_frames, .. }
                if self.stack_policy() == StackPolicy::ConcurrentScanOnce =>
            {
                let shadow = self.keeps_stack_records();
                st.gs
                    .scan_lazy(&self.prog, first_frames, shadow, sig, visit)?
            }
            _ => scanstack_with_signals(&self.prog, &mut st.gs, ScanKind::Mark(mode), sig, visit)?,
        };
        if let Some((e, slot)) = err {
            return Err(self.relocate(e, &st.gs, slot));
        }
        if st.gs.has_watermark() {
            // Grey until the watermark reaches the top: a root job for the markers.
            lock(&self.gc.roots)
                .lazy
                .push_back((index, st.gs.stack_barrier_lock()));
        }
        {
            // The stack's barrier counters since they were last taken — stale barriers removed
            // here, hits since the last removal, and this scan's installs — fold into this cycle.
            let mut acc = lock(&self.gc.acc);
            acc.stats.stacks_scanned += 1;
            acc.stats.scan_bytes += stats.bytes as u64;
            acc.stkbar.add(&st.gs.take_counters());
        }
        g.stack_used.store(st.gs.used() as u64, Ordering::Relaxed);
        if self.config.barrier_removal == BarrierRemoval::InPause
            && (stats.barriers_installed > 0 || stats.stale_barriers_removed > 0)
        {
            lock(&self.gc.barriered).push(index);
        }
        if self.trace.is_some() {
            let (stale, installed) = (stats.stale_barriers_removed, stats.barriers_installed);
            if stale > 0 {
                self.trace_to(to, TraceEv::BarrierRemove, None, [goid, stale as u64]);
            }
            if installed > 0 {
                self.trace_to(to, TraceEv::BarrierInstall, None, [goid, installed as u64]);
            }
            self.trace_to(to, TraceEv::StackScan, Some(t0), [goid, stats.bytes as u64]);
        }
        if rescans {
            // Clean now: off the re-scan list it may have joined since the cycle began (Go's
            // `dequeueRescan` in `scanstack`), and valid until it next runs.
            self.gc.dequeue_rescan(self, index, cycle);
            g.scan_valid_cycle.store(cycle, Ordering::Relaxed);
            self.begin_track(st, cycle);
            if self.keeps_stack_records() {
                st.shadow = Some(StackShadow::record(self, &st.gs, cycle)?);
            }
        }
        g.scan_done_cycle.store(cycle, Ordering::Release);
        let stall = held.elapsed().as_nanos() as u64;
        lock(&self.gc.acc).scan_stalls.push(stall);
        Ok(())
    }

    /// A running goroutine scans its own stack at a safe point (Go's `preemptscan`), then goes on
    /// running, so it joins the re-scan list at once.
    /// It scans on its own M, on g0 (`morestack;newstack;scanstack`: the caller has switched),
    /// so a profiling signal may land inside a barrier install there.
    pub(crate) fn self_scan(&self, owner: &mut GOwner, p: &mut P) -> Result<(), RuntimeError> {
        let cycle = self.gc.cycle();
        let index = owner.index();
        let g = self.g(index);
        if self.gc.phase() != Phase::Mark || g.scan_done_cycle.load(Ordering::Acquire) == cycle {
            return Ok(());
        }
        // The true frames stay put while the scan borrows the stack.
        let true_frames = g
            .state(owner)
            .as_mut()
            .map(|st| std::mem::take(&mut st.true_frames))
            .unwrap_or_default();
        let P {
            id,
            gcw,
            tracebuf,
            prof,
            ..
        } = p;
        let mut sig = BarrierSignals {
            rt: self,
            prof,
            p_id: *id,
            index,
            true_frames: &true_frames,
        };
        let mut to = TraceTo::P(tracebuf, *id);
        let r = self.scan_g(owner, gcw, cycle, &mut to, &mut sig);
        if let Some(st) = g.state(owner).as_mut() {
            st.true_frames = true_frames;
        }
        r?;
        // It goes on running: its stack is no longer known good (`queueRescan` as it runs).
        if g.scan_valid_cycle.load(Ordering::Relaxed) == cycle {
            g.scan_valid_cycle.store(0, Ordering::Relaxed);
            self.gc.queue_rescan(self, index);
        }
        Ok(())
    }

    /// One unit of concurrent mark work for the deterministic engine's mark worker: a root (the
    /// globals, or one stack), or up to `mark_step_bytes` of heap objects (at least one).
    pub fn mark_step(&self, worker: &mut GcWork) -> Result<MarkProgress, RuntimeError> {
        self.mark_work(worker, self.config.mark_step_bytes.max(1), None)
    }

    /// One unit of concurrent mark work: a root job if any is left, else up to `budget` bytes of
    /// grey objects (at least one). With `preempt_p`, the drain stops early when that P is asked
    /// to come to a safe point (a stop-the-world), as Go's preemptible `gcDrain` does.
    pub fn mark_work(
        &self,
        worker: &mut GcWork,
        budget: u64,
        preempt_p: Option<usize>,
    ) -> Result<MarkProgress, RuntimeError> {
        if self.gc.phase() != Phase::Mark {
            return Ok(MarkProgress::Done);
        }
        enum Job {
            Globals,
            Stack(GIndex),
            /// Frames above a lazy scan's watermark.
            Lazy(GIndex, Arc<StackBarrierLock>),
        }
        let job = if self.gc.roots_done.load(Ordering::Acquire) {
            None
        } else {
            let mut roots = lock(&self.gc.roots);
            let job = if !roots.globals_done {
                roots.globals_done = true;
                Some(Job::Globals)
            } else if roots.next < roots.end {
                roots.next += 1;
                Some(Job::Stack(roots.next as GIndex - 1))
            } else if let Some((index, lock)) = roots.lazy.pop_front() {
                // Before the retries: a lazy job always makes progress, a retry waits for its
                // goroutine to stop.
                Some(Job::Lazy(index, lock))
            } else {
                roots.retry.pop_front().map(Job::Stack)
            };
            match job {
                Some(Job::Stack(_) | Job::Lazy(..)) => roots.in_flight += 1,
                Some(Job::Globals) => {}
                None if roots.done() => self.gc.roots_done.store(true, Ordering::Release),
                None => {}
            }
            job
        };
        let cycle = self.gc.cycle();
        let stop = || preempt_p.is_some_and(|id| self.preempt_requested(id));
        match job {
            Some(Job::Globals) => {
                for i in 0..self.globals.len() {
                    let place = format!("global {i}");
                    self.shade(self.globals.read(i), worker, &place)?;
                }
                Ok(MarkProgress::Worked)
            }
            Some(Job::Lazy(index, stack_lock)) => {
                let r = self.advance_lazy(&stack_lock, worker);
                let mut roots = lock(&self.gc.roots);
                roots.in_flight -= 1;
                if matches!(r, Ok(false)) {
                    roots.lazy.push_back((index, stack_lock));
                }
                drop(roots);
                r?;
                Ok(MarkProgress::Worked)
            }
            Some(Job::Stack(index)) => {
                let g = self.g(index);
                let finished = |rt: &Runtime| lock(&rt.gc.roots).in_flight -= 1;
                if g.scan_done_cycle.load(Ordering::Acquire) == cycle {
                    finished(self);
                    return Ok(MarkProgress::Worked);
                }
                if let Some((mut owner, restore)) = g.try_own_for_scan() {
                    // Look again under the SCAN bit (Go's `scang`: `if !gp.gcscandone`): the
                    // goroutine may have scanned itself since the look above.
                    let r = if g.scan_done_cycle.load(Ordering::Acquire) == cycle {
                        Ok(())
                    } else {
                        let mut to = TraceTo::Global(Track::Worker(preempt_p.unwrap_or(0) as u16));
                        self.scan_g(&mut owner, worker, cycle, &mut to, &mut NoSignals)
                    };
                    g.release(owner, restore);
                    finished(self);
                    r?;
                    return Ok(MarkProgress::Worked);
                }
                if g.status() == status::DEAD {
                    finished(self);
                    return Ok(MarkProgress::Worked);
                }
                // Running (or being created): ask it to scan itself at its next safe point, and
                // mark heap objects meanwhile.
                g.preempt_scan.store(true, Ordering::Release);
                {
                    let mut roots = lock(&self.gc.roots);
                    roots.retry.push_back(index);
                    roots.in_flight -= 1;
                }
                let scanned = self.background_drain(worker, budget, stop)?;
                Ok(if scanned > 0 {
                    MarkProgress::Worked
                } else {
                    MarkProgress::Waiting
                })
            }
            None => {
                let scanned = self.background_drain(worker, budget, stop)?;
                if scanned > 0 {
                    Ok(MarkProgress::Worked)
                } else if self.gc.roots_done.load(Ordering::Acquire) {
                    Ok(MarkProgress::Done)
                } else {
                    // Another marker holds a stack job.
                    Ok(MarkProgress::Waiting)
                }
            }
        }
    }

    /// One marker step on a lazily scanned stack: up to `step_frames` frames above its
    /// watermark, concurrently with the goroutine (which may be running). Returns whether the
    /// stack is black.
    fn advance_lazy(
        &self,
        stack_lock: &StackBarrierLock,
        worker: &mut GcWork,
    ) -> Result<bool, RuntimeError> {
        let StackScan::Lazy { step_frames, .. } = self.config.stack_scan else {
            return Ok(true);
        };
        let mut err = None;
        let adv = advance_watermark(stack_lock, &self.prog, step_frames, |slot, v| {
            if err.is_none()
                && let Err(e) = self.shade(v, worker, "")
            {
                err = Some((e, slot));
            }
        })?;
        if let Some((e, slot)) = err {
            // The marker does not own the goroutine: the report names the slot, not the frames.
            return Err(match e {
                RuntimeError::BadPointer { value, why, .. } => RuntimeError::BadPointer {
                    value,
                    place: format!("stack slot {slot}, above a lazy scan's watermark"),
                    why,
                    traceback: String::new(),
                },
                e => e,
            });
        }
        if let Some(report) = adv.violation {
            return Err(RuntimeError::StackShadowViolation {
                cycle: self.gc.cycle(),
                report,
            });
        }
        let mut acc = lock(&self.gc.acc);
        acc.stats.marker_lazy_frames += adv.frames as u64;
        acc.stats.marker_lazy_bytes += adv.bytes as u64;
        Ok(adv.done)
    }

    /// Whether concurrent marking has nothing left: roots done and no grey object published.
    /// Call after flushing every P's buffer and the worker's.
    pub fn mark_complete(&self) -> bool {
        lock(&self.gc.roots).done() && !self.gc.pool.has_full()
    }

    /// Charges an allocation of `bytes` during mark to the goroutine's assist credit and, once
    /// the credit is spent, pays the debt by stealing background credit or by scanning grey
    /// objects into `p`'s work buffer (Go's `gcAssistAlloc`; see `pacer`). The assist's time is
    /// GC time on `p`'s timeline.
    pub(crate) fn gc_assist_alloc(
        &self,
        st: &mut GState,
        p: &mut P,
        bytes: usize,
    ) -> Result<(), RuntimeError> {
        if self.config.gogc.is_none() {
            return Ok(());
        }
        let cycle = self.gc.cycle();
        if st.assist_cycle != cycle {
            // Credit or debt from an earlier cycle does not carry over (`gcResetMarkState`).
            st.assist_cycle = cycle;
            st.gc_assist_bytes = 0;
        }
        st.gc_assist_bytes -= bytes as i64;
        if st.gc_assist_bytes >= 0 {
            return Ok(());
        }
        let pacer = &self.gc.pacer;
        let (work_per_byte, bytes_per_work) = pacer.assist_ratio(self.heap.heap_live());
        let debt = (-st.gc_assist_bytes) as f64 * work_per_byte;
        let want = (debt.ceil() as i64).max(GC_OVER_ASSIST_WORK);
        let stolen = pacer.steal_credit(want);
        st.gc_assist_bytes = st
            .gc_assist_bytes
            .saturating_add((stolen as f64 * bytes_per_work) as i64);
        if st.gc_assist_bytes >= 0 {
            return Ok(());
        }
        let t0 = p.now_ns();
        let id = p.id;
        let done = self.drain_until(&mut p.gcw, (want - stolen) as u64, || {
            self.preempt_requested(id)
        })?;
        pacer.note_assist_work(done);
        st.gc_assist_bytes = st
            .gc_assist_bytes
            .saturating_add((done as f64 * bytes_per_work) as i64);
        if let Some(t0) = t0
            && done > 0
        {
            p.note_gc_time(t0);
        }
        Ok(())
    }

    /// Scans grey objects until `budget` bytes are scanned or none is left (Go's `gcDrain`).
    /// Returns the bytes scanned.
    pub fn drain(&self, gcw: &mut GcWork, budget: u64) -> Result<u64, RuntimeError> {
        self.drain_until(gcw, budget, || false)
    }

    /// A mark worker's drain: its scan work is credited to the pacer as background work.
    fn background_drain(
        &self,
        worker: &mut GcWork,
        budget: u64,
        stop: impl Fn() -> bool,
    ) -> Result<u64, RuntimeError> {
        let scanned = self.drain_until(worker, budget, stop)?;
        self.gc.pacer.note_bg_work(scanned);
        Ok(scanned)
    }

    /// [`Runtime::drain`], stopping early once `stop` says so (checked before each object).
    ///
    /// The drain is a two-stage pipeline that keeps several misses in flight instead of waiting
    /// for each (Boehm's mark prefetching; Garner, Blackburn and Frampton, ISMM 2007). Grey
    /// objects leave the work buffer through `to_scan`, each prefetched as it enters and scanned
    /// [`PREFETCH_AHEAD`] objects later; the objects a scan finds go through `to_grey`, their mark
    /// bits prefetched as they enter and tested and set (`greyobject`) as they leave. An object
    /// in `to_scan` is grey, as in a work buffer; one in `to_grey` is a pointer the scan of its
    /// referrer has read but not yet shaded, so that scan ends when the pointer leaves. The
    /// drain takes an object into `to_scan` only while its budget covers every object taken (a
    /// drain whose budget is one object takes exactly one, as a drain without the pipeline
    /// does); before it returns it shades everything in `to_grey` and puts back, still grey,
    /// what it took and did not scan, so the invariant of this module ("marking is done when no
    /// work buffer holds a grey object") needs no exception.
    fn drain_until(
        &self,
        gcw: &mut GcWork,
        budget: u64,
        stop: impl Fn() -> bool,
    ) -> Result<u64, RuntimeError> {
        let mut scanned = 0;
        let mut to_scan = Fifo::<ObjRef<'_>>::new();
        let mut to_scan_bytes = 0;
        let mut to_grey = Fifo::<ObjRef<'_>>::new();
        loop {
            while !to_scan.is_full() && scanned + to_scan_bytes < budget {
                let Some(base) = gcw.try_get(&self.gc.pool) else {
                    break;
                };
                let o = self.grey_object(base)?;
                self.heap.prefetch(o);
                to_scan_bytes += o.size();
                to_scan.push(o);
            }
            let stopped = stop();
            let next = if stopped { None } else { to_scan.pop() };
            let Some(o) = next else {
                // Out of budget, of grey objects or of time: what `to_grey` holds may be the
                // last grey objects, or the drain's last shades.
                let more = !to_grey.is_empty() && !stopped;
                while let Some(p) = to_grey.pop() {
                    self.greyobject(p, gcw);
                }
                if more {
                    continue;
                }
                break;
            };
            to_scan_bytes -= o.size();
            scanned += self.scanobject(o, |v| {
                if let Some(p) = self.pointee(v, "")? {
                    self.heap.prefetch_mark(p);
                    if to_grey.is_full()
                        && let Some(oldest) = to_grey.pop()
                    {
                        self.greyobject(oldest, gcw);
                    }
                    to_grey.push(p);
                }
                Ok(())
            })?;
        }
        // Newest first, so the work buffer's order is as it was before they were taken.
        while let Some(o) = to_scan.pop_newest() {
            gcw.put(&self.gc.pool, o.base);
        }
        Ok(scanned)
    }

    /// The object a work buffer holds at `base`: an error if it is not allocated.
    fn grey_object(&self, base: Addr) -> Result<ObjRef<'_>, RuntimeError> {
        match self.heap.find_object(base.0) {
            Lookup::Object(o) => Ok(o),
            _ => Err(RuntimeError::BadPointer {
                value: base.0,
                place: "a work buffer".into(),
                why: "a grey object that is not allocated",
                traceback: String::new(),
            }),
        }
    }

    /// Calls `shade` on every pointer field of object `o`; returns its size.
    fn scanobject(
        &self,
        o: ObjRef<'_>,
        mut shade: impl FnMut(u64) -> Result<(), RuntimeError>,
    ) -> Result<u64, RuntimeError> {
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
                        traceback: String::new(),
                    },
                    e => e,
                })?;
            }
        }
        Ok(o.size())
    }

    /// One thread's share of mark termination's parallel work (Go's `gcDrain(gcDrainBlock)` in
    /// `gcMark` and `gchelper`): re-scan jobs from `work`'s list until none is left, then grey
    /// objects until every participant is idle and no work buffer holds one. `joining` is true
    /// for a helper that arrives after the work began (the thread that began it is already
    /// counted); a helper that arrives after the end, or finds nothing left to take, leaves at
    /// once. Its re-scans are traced on `track` (the collector's for the thread that began the
    /// work, a worker's for a helper).
    pub fn gchelper(&self, work: &MarkTermWork, gcw: &mut GcWork, joining: bool, track: Track) {
        if joining && !(work.has_work(&self.gc.pool) && work.join()) {
            return;
        }
        let mut stats = CycleStats::default();
        let mut records = Vec::new();
        let r = (|| -> Result<(), RuntimeError> {
            loop {
                while let Some(index) = work.next_rescan() {
                    self.rescan_g(index, gcw, work.cycle, track, &mut stats, &mut records)?;
                    work.rescan_done();
                }
                self.drain(gcw, u64::MAX)?;
                gcw.dispose(&self.gc.pool);
                // Publish what this thread found before it counts as idle, so that when every
                // participant is idle the sums are complete.
                work.merge(&mut stats, &mut records);
                if !work.idle_until_work(&self.gc.pool) {
                    return Ok(());
                }
            }
        })();
        if let Err(e) = r {
            work.fail(e);
        }
    }

    /// Re-scans one goroutine at mark termination.
    pub(crate) fn rescan_g(
        &self,
        index: GIndex,
        worker: &mut GcWork,
        cycle: u32,
        track: Track,
        stats: &mut CycleStats,
        records: &mut Vec<RescanRecord>,
    ) -> Result<(), RuntimeError> {
        let g = self.g(index);
        let Some((mut owner, restore)) = g.try_own_for_scan() else {
            return Ok(()); // dead
        };
        let scanned = g.scan_done_cycle.load(Ordering::Acquire) == cycle;
        let t0 = self.trace_now();
        let before = stats.rescan_bytes;
        let r = match g.state(&mut owner).as_mut() {
            Some(st) => self.rescan_state(st, scanned, worker, cycle, stats, records),
            None => Ok(()),
        };
        stats.rescan_goroutines += 1;
        let goid = g.goid();
        g.release(owner, restore);
        let bytes = stats.rescan_bytes - before;
        self.trace_global(track, TraceEv::Rescan, Some(t0), [goid, bytes]);
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
        let t = st.track.filter(|t| scanned && t.cycle == cycle);
        let limit = self.rescan_bound(&st.gs, scanned, t.map_or(0, |t| t.stkbar_lag))?;
        let gs = &st.gs;
        let goid = gs.goid();
        let mut err = None;
        let mut last_frame_size = 0;
        // `--inject rescan-skip`: frames the re-scan visits but does not shade, a seeded fraction
        // of them (drawn per goroutine, cycle and frame, so checkers do not change the draw).
        let skip = self.config.inject.rescan_skip;
        let skipping = std::cell::Cell::new(false);
        let mut skipped = 0u64;
        // The frames shaded, by the depth of their SPs (for stackshadow).
        let mut shaded = Vec::new();
        let hi = gs.stack().hi();
        let scan = if limit == Some(stacks::Addr(0)) {
            stacks::ScanStats::default()
        } else {
            scan_frames(
                &self.prog,
                gs,
                limit,
                |f| {
                    last_frame_size = f.size();
                    if !skipping.get() {
                        shaded.push(hi.offset_from(f.sp));
                    }
                    let n = (u64::from(cycle) << 40) ^ (goid << 20) ^ f.index as u64;
                    skipping.set(seeded_fraction(
                        self.config.seed,
                        RESCAN_SKIP_STREAM,
                        n,
                        skip,
                    ));
                    skipped += u64::from(skipping.get());
                },
                |slot, v| {
                    if !skipping.get()
                        && err.is_none()
                        && let Err(e) = self.shade(v, worker, "")
                    {
                        err = Some((e, slot));
                    }
                },
            )?
        };
        if skipped > 0 {
            self.fault_log.note_frames_skipped(skipped);
        }
        if let Some((e, slot)) = err {
            return Err(self.relocate(e, gs, slot));
        }
        if self.keeps_stack_records() {
            let shadow = st
                .shadow
                .take()
                .filter(|s| scanned && s.cycle() == cycle)
                .unwrap_or_else(|| StackShadow::empty(cycle));
            st.shadow.insert(shadow).note_rescanned(shaded);
        }
        let gs = &st.gs;
        let used = gs.used();
        let oracle = match t {
            Some(t) => used - t.changed_top_depth.min(used),
            None => used,
        };
        stats.rescan_bytes += scan.bytes as u64;
        stats.rescan_frames += scan.frames as u64;
        stats.full_rescan_bytes += used as u64;
        stats.oracle_rescan_bytes += oracle as u64;
        records.push(RescanRecord {
            cycle,
            goid,
            scanned,
            bounded: limit.is_some(),
            used,
            sp0_depth: t.map_or(used, |t| t.sp0_depth),
            sp0_frame_size: t.map_or(0, |t| t.sp0_frame_size),
            ret_slot_depth: t.map_or(usize::MAX, |t| t.ret_slot_depth),
            rescan_bytes: scan.bytes,
            oracle_bytes: oracle,
            last_frame_size,
        });
        Ok(())
    }

    /// Marks again from every root into the checkmark bits, with the world stopped, and counts
    /// reachable objects the real mark missed (Go's `gccheckmark`); returns their count, a report
    /// of the first few and their base addresses. Under `wbshadow=2` it also checks the shadow of
    /// every global and every pointer field it scans, failing at the first mismatch.
    pub(crate) fn checkmark(&self) -> Result<(u64, String, Vec<u64>), RuntimeError> {
        self.heap.clear_checkmarks();
        self.heap.set_checkmark_active(true);
        let check_shadow = self.config.debug.wbshadow >= 2;
        let mut work: Vec<Addr> = Vec::new();
        let mut failures = 0u64;
        let mut report = String::new();
        let mut missed = Vec::new();
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
                                missed.push(o.base.0);
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
            if check_shadow {
                self.check_global_shadow(i)?;
            }
            visit(self.globals.read(i), Via::Global(i), &mut work)?;
        }
        self.for_each_g_state(|st| {
            let goid = st.gs.goid();
            let mut slots = Vec::new();
            scan_frames(
                &self.prog,
                &st.gs,
                None,
                |_| {},
                |slot, v| slots.push((slot, v)),
            )?;
            slots
                .into_iter()
                .try_for_each(|(slot, v)| visit(v, Via::Stack(goid, slot), &mut work))
        })?;
        while let Some(base) = work.pop() {
            let o = self.grey_object(base)?;
            if check_shadow {
                self.check_object_shadow(o)?;
            }
            let mut fields = Vec::new();
            self.scanobject(o, |v| {
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
        Ok((failures, report, missed))
    }

    /// Names the stack slot, and gives the goroutine's traceback, in a bad-pointer error raised
    /// by a scan of `gs`.
    fn relocate(&self, e: RuntimeError, gs: &stacks::GStack, slot: Addr) -> RuntimeError {
        match e {
            RuntimeError::BadPointer { value, why, .. } => RuntimeError::BadPointer {
                value,
                place: stack_place(gs.goid(), slot),
                why,
                traceback: traceback(&self.prog, gs, TRACEBACK_FRAMES),
            },
            e => e,
        }
    }
}

impl Runtime {
    /// Greys the object `v` points to, if it is white (Go's `shade`). Nil and non-heap values
    /// (stack addresses, globals) are ignored; with `invalidptr`, values in the first page and
    /// heap addresses outside every object are fatal.
    #[inline]
    pub fn shade(&self, v: u64, gcw: &mut GcWork, place: &str) -> Result<(), RuntimeError> {
        if let Some(o) = self.pointee(v, place)? {
            self.greyobject(o, gcw);
        }
        Ok(())
    }

    /// The heap object `v` points to, the one [`Runtime::shade`] would grey: `None` for nil, a
    /// non-heap value, or (without `invalidptr`) a heap address outside every object.
    #[inline]
    fn pointee(&self, v: u64, place: &str) -> Result<Option<ObjRef<'_>>, RuntimeError> {
        if v == 0 {
            return Ok(None);
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
            Lookup::NotHeap => Ok(None),
            Lookup::Free(_) => self
                .bad_pointer(v, place, "a heap address outside every allocated object")
                .map(|()| None),
            Lookup::Object(o) => Ok(Some(o)),
        }
    }

    /// Marks `o` and, if this call marked it, queues it grey (Go's `greyobject`).
    #[inline]
    fn greyobject(&self, o: ObjRef<'_>, gcw: &mut GcWork) {
        if self.heap.try_mark(o) {
            gcw.note_marked(o.size());
            gcw.put(&self.gc.pool, o.base);
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

    /// Where a mark-termination re-scan of `gs` stops (see [`scan_frames`]'s `limit`; `Addr(0)`:
    /// nothing is scanned): after the frame holding the lowest un-hit barrier's slot, or the whole
    /// stack when every barrier was hit or the goroutine was not `scanned` in this cycle. The
    /// injected bound faults move it: the collector's view of `stkbar_pos` lags by `stkbar_lag`
    /// entries (`hit-lost`, `unwind-skip`), and `bound-short=N` stops N frames lower. A fault that
    /// shortened the re-scan is counted.
    fn rescan_bound(
        &self,
        gs: &stacks::GStack,
        scanned: bool,
        stkbar_lag: usize,
    ) -> Result<Option<Addr>, RuntimeError> {
        let true_limit = if scanned { gs.rescan_limit() } else { None };
        let short = self.config.inject.bound_short as usize;
        if stkbar_lag == 0 && short == 0 {
            return Ok(true_limit);
        }
        let mut limit = if scanned {
            gs.rescan_limit_lagging(stkbar_lag)
        } else {
            None
        };
        // The frames each limit covers: up to and including the first whose slot is at or above it.
        let frames: Vec<Addr> = gs
            .frames(&self.prog)
            .map(|f| f.map(|f| f.lr_slot()))
            .collect::<Result<_, _>>()?;
        let covered = |l: Option<Addr>| match l {
            Some(Addr(0)) => 0,
            Some(l) => frames
                .iter()
                .position(|&s| s >= l)
                .map_or(frames.len(), |i| i + 1),
            None => frames.len(),
        };
        let mut n = covered(limit);
        if short > 0 {
            n = n.saturating_sub(short);
            limit = Some(if n == 0 { Addr(0) } else { frames[n - 1] });
        }
        if n < covered(true_limit) {
            self.fault_log.note_rescan_shortened();
        }
        Ok(limit)
    }

    /// Starts a scan track for a goroutine whose stack was just scanned in `cycle`.
    pub(crate) fn begin_track(&self, st: &mut GState, cycle: u32) {
        let used = st.gs.used();
        let frame0 = if st.gs.is_empty() {
            0
        } else {
            self.prog.findframe(st.gs.pc()).map_or(0, |(_, s)| s)
        };
        let top = used - frame0;
        st.track = Some(ScanTrack {
            cycle,
            sp0_frame_size: frame0,
            sp0_depth: used,
            changed_top_depth: top,
            changed_sp_depth: used,
            ret_slot_depth: usize::MAX,
            stkbar_lag: 0,
        });
    }
}

/// The `seeded_fraction` stream `--inject rescan-skip` draws from.
const RESCAN_SKIP_STREAM: u64 = 0x5c1;

/// How many objects each stage of a drain's pipeline holds (see `drain_until`): enough that the
/// scans of the objects ahead of one cover its miss to memory. 8, the size of the buffer Go's
/// marker had before 1.5 ("Previously we put the obj in an 8 element buffer", `greyobject`);
/// 16 measured no faster here (`mark/parallel_MB_per_s`).
pub const PREFETCH_AHEAD: usize = 8;

/// A first-in first-out queue of at most [`PREFETCH_AHEAD`] objects, on the stack (a drain of
/// one object, the deterministic engine's mark step, must not allocate).
struct Fifo<T> {
    ring: [Option<T>; PREFETCH_AHEAD],
    /// Index of the oldest element.
    head: usize,
    len: usize,
}

impl<T: Copy> Fifo<T> {
    fn new() -> Self {
        Fifo {
            ring: [None; PREFETCH_AHEAD],
            head: 0,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == PREFETCH_AHEAD
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, x: T) {
        debug_assert!(!self.is_full());
        self.ring[(self.head + self.len) % PREFETCH_AHEAD] = Some(x);
        self.len += 1;
    }

    /// The oldest element.
    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let x = self.ring[self.head].take();
        self.head = (self.head + 1) % PREFETCH_AHEAD;
        self.len -= 1;
        x
    }

    /// The newest element.
    fn pop_newest(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.ring[(self.head + self.len) % PREFETCH_AHEAD].take()
    }
}

fn describe(via: Via) -> String {
    match via {
        Via::Global(i) => format!("global {i}"),
        Via::Stack(goid, slot) => stack_place(goid, slot),
        Via::Field(base) => format!("a field of object {base}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::P;
    use crate::wbarrier::Dijkstra;
    use crate::wbarrier::cost::{bare_runtime, mark_with_workers, random_graph};

    /// A runtime whose global 0 roots `n` nodes (`cost::random_graph`); the world is
    /// stopped, no cycle yet.
    fn graph(n: usize) -> (Runtime, P) {
        let mut p = P::new(0);
        let rt = bare_runtime(&Dijkstra, 1, &mut p).unwrap();
        random_graph(&rt, &mut p, n, 0x9e37_79b9_7f4a_7c15).unwrap();
        rt.stop_p(&mut p);
        (rt, p)
    }

    /// Starts a cycle and runs its root step (the globals): the root node is grey in `gcw`.
    fn start(rt: &Runtime, p: &mut P, gcw: &mut GcWork) {
        rt.gc_start(gcw, p).unwrap();
        assert_eq!(rt.mark_step(gcw).unwrap(), MarkProgress::Worked);
    }

    /// Ends the cycle; returns its live heap bytes.
    fn finish(rt: &Runtime, p: &mut P, gcw: &mut GcWork) -> u64 {
        gcw.dispose(&rt.gc.pool);
        rt.stop_p(p);
        assert!(rt.mark_complete());
        rt.mark_termination(gcw, 0).unwrap().heap_live_bytes
    }

    #[test]
    fn fifo_is_first_in_first_out_and_gives_back_newest_first() {
        let mut f = Fifo::new();
        for i in 0..PREFETCH_AHEAD {
            f.push(i);
        }
        assert!(f.is_full());
        assert_eq!(f.pop(), Some(0));
        f.push(PREFETCH_AHEAD);
        assert_eq!(f.pop_newest(), Some(PREFETCH_AHEAD));
        assert_eq!(f.pop(), Some(1));
        let rest: Vec<_> = std::iter::from_fn(|| f.pop()).collect();
        assert_eq!(rest, (2..PREFETCH_AHEAD).collect::<Vec<_>>());
        assert!(f.is_empty());
    }

    #[test]
    fn a_one_object_budget_scans_one_object_and_shades_what_it_points_to() {
        let (rt, mut p) = graph(100);
        let mut gcw = GcWork::new();
        start(&rt, &mut p, &mut gcw);
        let (gets, puts) = (gcw.gets(), gcw.puts());
        assert_eq!(rt.drain(&mut gcw, 1).unwrap(), 32, "one 32-byte node");
        assert_eq!(gcw.gets() - gets, 1, "the pipeline took no object ahead");
        let shaded = gcw.puts() - puts;
        assert!(
            (1..=2).contains(&shaded),
            "its two fields shaded before the drain returned"
        );
        assert_eq!(gcw.bytes_marked(), 32 * (1 + shaded));
        while rt.drain(&mut gcw, 1).unwrap() > 0 {}
        assert_eq!(finish(&rt, &mut p, &mut gcw), 100 * 32);
    }

    #[test]
    fn a_stopped_drain_gives_back_what_it_took_in_order() {
        let (rt, mut p) = graph(2_000);
        let mut gcw = GcWork::new();
        start(&rt, &mut p, &mut gcw);
        rt.drain(&mut gcw, 64 * 32).unwrap();
        let before = gcw.local_objects();
        assert!(before.len() > 2, "grey objects for the pipeline to take");
        let scanned = rt.drain_until(&mut gcw, u64::MAX, || true).unwrap();
        assert_eq!(scanned, 0);
        assert_eq!(
            gcw.local_objects(),
            before,
            "the grey objects, in their order"
        );
        rt.drain(&mut gcw, u64::MAX).unwrap();
        assert_eq!(finish(&rt, &mut p, &mut gcw), 2_000 * 32);
    }

    #[test]
    fn parallel_drains_mark_everything_once() {
        let (rt, mut p) = graph(20_000);
        let mut gcw = GcWork::new();
        start(&rt, &mut p, &mut gcw);
        gcw.dispose(&rt.gc.pool);
        mark_with_workers(&rt, 2).unwrap();
        assert_eq!(finish(&rt, &mut p, &mut gcw), 20_000 * 32);
    }
}
