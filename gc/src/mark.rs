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
//! safe point (Go's `preemptscan`). The concurrent scan shrinks the stack first if it uses less
//! than a quarter (Go 1.7), shades every pointer slot and, for `dijkstra`, installs stack barriers
//! at `first_offset·2^n`.
//!
//! Re-scan (`dijkstra` only, Go 1.7's re-scan list). A goroutine scanned in this cycle sets
//! `gcscanvalid`; when it next starts running, the scheduler clears it and queues the goroutine for
//! re-scan. Goroutines created during mark are queued too, never scanned. Mark termination re-scans
//! exactly that list: a never-scanned stack whole; a scanned one, with stack barriers on, only up to
//! and including the frame holding its lowest barrier not hit (all of it if every barrier was hit);
//! with barriers off, whole. Each re-scan is recorded against the oracle and DESIGN §4's bound.
//!
//! Mark work. Grey objects live in work buffers (`workbuf`): each mark worker and each P (for the
//! objects its write barriers and self-scans shade) has a `GcWork`; a mark step is one root job
//! or `mark_step_bytes` of grey objects, and marking is done when the roots are done and every
//! buffer is empty, which an engine checks after flushing every P's buffer.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use stacks::{
    Addr, NoSignals, ScanKind, Signals, StackBarrierMode, bad_pointer_value, scan_frames,
    scanstack_with_signals,
};

use crate::debug::seeded_fraction;
use crate::error::{RuntimeError, TRACEBACK_FRAMES, stack_place, traceback};
use crate::heap::{Lookup, lock};
use crate::mgc::Phase;
use crate::pacer::GC_OVER_ASSIST_WORK;
use crate::profile::BarrierSignals;
use crate::runtime::Runtime;
use crate::sched::{GIndex, GOwner, GState, P, ScanTrack, status};
use crate::stats::{CycleStats, RescanRecord};
use crate::trace::TraceTo;
use crate::trace::{TraceEv, Track};
use crate::wbarrier::StackPolicy;
use crate::workbuf::GcWork;

/// The default of [`crate::GcConfig::mark_step_bytes`]: a collector step scans one 32-byte
/// object, or one larger object. Calibrated so that a step of the deterministic engine is about as long as a
/// mutator step, as it is on real threads: mark throughput here is about 370 MiB/s (0.4 B/ns)
/// and the interpreter runs an operation in 10–20 ns, so a marker scans 4–8 bytes in the time
/// the mutator runs one operation; one object is the smallest unit of marking. A budget of
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
        let stats = scanstack_with_signals(
            &self.prog,
            &mut st.gs,
            ScanKind::Mark(mode),
            sig,
            |slot, v| {
                if err.is_none()
                    && let Err(e) = self.shade(v, gcw, "")
                {
                    err = Some((e, slot));
                }
            },
        )?;
        if let Some((e, slot)) = err {
            return Err(self.relocate(e, &st.gs, slot));
        }
        {
            let mut acc = lock(&self.gc.acc);
            acc.stats.stacks_scanned += 1;
            acc.stats.scan_bytes += stats.bytes as u64;
        }
        if stats.barriers_installed > 0 || stats.stale_barriers_removed > 0 {
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
            st.gcscanvalid = true;
            self.begin_track(st);
        }
        g.scan_done_cycle.store(cycle, Ordering::Release);
        Ok(())
    }

    /// A running goroutine scans its own stack at a safe point (Go's `preemptscan`), then goes on
    /// running, so it joins the re-scan list at once.
    /// It scans on its own M, so a profiling signal may land inside a barrier install there.
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
        if let Some(st) = g.state(owner).as_mut()
            && st.gcscanvalid
        {
            st.gcscanvalid = false;
            self.gc.queue_rescan(owner.index());
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
            } else {
                roots.retry.pop_front().map(Job::Stack)
            };
            match job {
                Some(Job::Stack(_)) => roots.in_flight += 1,
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
    fn drain_until(
        &self,
        gcw: &mut GcWork,
        budget: u64,
        stop: impl Fn() -> bool,
    ) -> Result<u64, RuntimeError> {
        let mut scanned = 0;
        while scanned < budget && !stop() {
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
                traceback: String::new(),
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
                        traceback: String::new(),
                    },
                    e => e,
                })?;
            }
        }
        Ok(self.heap.span(o).elem_size() as u64)
    }

    /// Re-scans one goroutine at mark termination.
    pub(crate) fn rescan_g(
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
        let t0 = self.trace_now();
        let before = stats.rescan_bytes;
        let r = match g.state(&mut owner).as_mut() {
            Some(st) => self.rescan_state(st, scanned, worker, cycle, stats, records),
            None => Ok(()),
        };
        let goid = g.goid();
        g.release(owner, restore);
        let bytes = stats.rescan_bytes - before;
        self.trace_global(Track::Gc, TraceEv::Rescan, Some(t0), [goid, bytes]);
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
        // `--inject rescan-skip`: frames the re-scan visits but does not shade, a seeded fraction
        // of them (drawn per goroutine, cycle and frame, so checkers do not change the draw).
        let skip = self.config.inject.rescan_skip;
        let skipping = std::cell::Cell::new(false);
        let mut skipped = 0u64;
        let scan = if limit == Some(stacks::Addr(0)) {
            stacks::ScanStats::default()
        } else {
            scan_frames(
                &self.prog,
                gs,
                limit,
                |f| {
                    last_frame_size = f.size();
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
            if check_shadow && let Lookup::Object(o) = self.heap.find_object(base.0) {
                self.check_object_shadow(o)?;
            }
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

/// The `seeded_fraction` stream `--inject rescan-skip` draws from.
const RESCAN_SKIP_STREAM: u64 = 0x5c1;

fn describe(via: Via) -> String {
    match via {
        Via::Global(i) => format!("global {i}"),
        Via::Stack(goid, slot) => stack_place(goid, slot),
        Via::Field(base) => format!("a field of object {base}"),
    }
}
