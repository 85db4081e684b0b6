//! Execution tracing (Go's `trace.go`, seed 001): per-P event buffers allocated outside the GC
//! heap, recycled through a queue of full buffers and a stack of empty ones, and written from
//! contexts where no write barrier may run.
//!
//! Invariant: every event written is delivered to the sink exactly once, in the order its writer
//! wrote it, and no buffer is ever lost or freed while tracing is on: a buffer is owned by exactly
//! one of a P (`P::tracebuf`), the global buffer, the full queue, the empty stack or the reader,
//! and moves between them by value. So the number of buffers ever allocated is bounded by the
//! number of writers plus what the reader has not yet consumed, however long the run.
//!
//! Algorithm. A writer appends a fixed-size [`TraceEvent`] to its buffer; when the buffer is full
//! (or it has none), `traceFlush` queues it on the full queue and takes an empty buffer from the
//! empty stack, allocating one only if the stack is empty. A P writes into its own buffer with
//! no lock (it owns the P); code with no P of its own — the collector's mark workers in the
//! deterministic engine, the coordinator with the world stopped — writes into the global buffer
//! under its lock (Go's `trace.buf` and `bufLock`). The reader ([`Trace::read`], Go's `ReadTrace`)
//! hands each full buffer to the sink and pushes it, emptied, onto the empty stack; the engines
//! call it as buffers fill and at the end of a run, after [`Trace::release`] has queued every P's
//! partly filled buffer.
//!
//! No write barriers. A buffer's events live in a plain Rust allocation: the simulated collector
//! never scans it, it holds only ids, sizes and times (never a heap pointer), and handing a buffer
//! from a P to a queue is a Rust move of its handle, not a simulated pointer store — Go's
//! untraced `traceBufPtr`. Writing an event and
//! flushing run inside a `nowritebarrier` region (see `nowb`), since they are called from the
//! scheduler and with the world stopped.
//!
//! Events are either instants or slices (a start and a duration, written when the slice ends),
//! each on a [`Track`]: the GC track (phases, stop-the-world pauses, re-scans), one per P
//! (goroutines running, barrier hits and unwinds, copystack, sweep, self-scans) and one per mark
//! worker (stack scans, marking slices).

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::heap::lock;
use crate::nowb::nowritebarrier;
use crate::runtime::Runtime;
use crate::sched::{GIndex, P};

/// Events per buffer: as many as fit in 64 KiB, the size of Go's `traceBuf`.
pub const TRACE_BUF_EVENTS: usize = (64 << 10) / std::mem::size_of::<TraceEvent>();

/// What an event records. Arguments are named by [`TraceEv::arg_names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum TraceEv {
    /// Slice: a concurrent GC phase (`mark` or `sweep`), on the GC track.
    GcPhase,
    /// Slice: the world stopped (sweep or mark termination), on the GC track.
    Stw,
    /// Slice: a concurrent stack scan, on the scanning worker's or P's track.
    StackScan,
    /// Slice: a mark-termination re-scan of one stack, on the GC track.
    Rescan,
    /// Instant: barriers installed by a scan.
    BarrierInstall,
    /// Instant: a return through a barrier.
    BarrierHit,
    /// Instant: barriers removed un-hit (stale ones before a scan, or at mark termination).
    BarrierRemove,
    /// Instant: barriers passed by a multi-frame unwind or a runtime bulk write.
    BarrierUnwind,
    /// Instant: a stack moved (grown or shrunk).
    CopyStack,
    /// Slice: a P sweeping spans.
    Sweep,
    /// Slice: a goroutine running on a P, from `gogo` to when it left.
    GoRun,
    /// Instant: a goroutine created.
    GoCreate,
    /// Slice: a P running a mark worker, on that worker's track.
    MarkWorker,
}

impl TraceEv {
    /// The event's name in an exported trace.
    pub fn name(self) -> &'static str {
        match self {
            TraceEv::GcPhase => "GC phase",
            TraceEv::Stw => "STW",
            TraceEv::StackScan => "stack scan",
            TraceEv::Rescan => "re-scan",
            TraceEv::BarrierInstall => "stkbar install",
            TraceEv::BarrierHit => "stkbar hit",
            TraceEv::BarrierRemove => "stkbar remove",
            TraceEv::BarrierUnwind => "stkbar unwind",
            TraceEv::CopyStack => "copystack",
            TraceEv::Sweep => "sweep",
            TraceEv::GoRun => "goroutine",
            TraceEv::GoCreate => "go create",
            TraceEv::MarkWorker => "mark worker",
        }
    }

    /// The names of `args[0]` and `args[1]` (empty when unused).
    pub fn arg_names(self) -> [&'static str; 2] {
        match self {
            TraceEv::GcPhase => ["phase", "cycle"],
            TraceEv::Stw => ["reason", "cycle"],
            TraceEv::StackScan | TraceEv::Rescan => ["goid", "bytes"],
            TraceEv::BarrierInstall | TraceEv::BarrierRemove | TraceEv::BarrierUnwind => {
                ["goid", "barriers"]
            }
            TraceEv::BarrierHit => ["goid", "stkbar_pos"],
            TraceEv::CopyStack => ["goid", "new_size"],
            TraceEv::Sweep => ["spans", ""],
            TraceEv::GoRun => ["goid", "left"],
            TraceEv::GoCreate => ["goid", "parent_goid"],
            TraceEv::MarkWorker => ["kind", ""],
        }
    }

    /// Whether the event is a slice (it has a duration) rather than an instant.
    pub fn is_slice(self) -> bool {
        matches!(
            self,
            TraceEv::GcPhase
                | TraceEv::Stw
                | TraceEv::StackScan
                | TraceEv::Rescan
                | TraceEv::Sweep
                | TraceEv::GoRun
                | TraceEv::MarkWorker
        )
    }
}

/// `TraceEv::GcPhase`'s `phase` argument.
pub const PHASE_MARK: u64 = 1;
/// `TraceEv::GcPhase`'s `phase` argument.
pub const PHASE_SWEEP: u64 = 2;
/// `TraceEv::Stw`'s `reason` argument: sweep termination (the start of a cycle).
pub const STW_SWEEP_TERMINATION: u64 = 0;
/// `TraceEv::Stw`'s `reason` argument: mark termination.
pub const STW_MARK_TERMINATION: u64 = 1;
/// `TraceEv::GoRun`'s `left` argument: how the goroutine left its P.
pub const LEFT_YIELD: u64 = 0;
/// The goroutine blocked.
pub const LEFT_BLOCK: u64 = 1;
/// The goroutine exited.
pub const LEFT_EXIT: u64 = 2;
/// The goroutine was preempted (a stop-the-world, or its P became a mark worker).
pub const LEFT_PREEMPT: u64 = 3;
/// `TraceEv::MarkWorker`'s `kind` argument.
pub const WORKER_DEDICATED: u64 = 0;
/// A fractional worker.
pub const WORKER_FRACTIONAL: u64 = 1;
/// An idle worker.
pub const WORKER_IDLE: u64 = 2;

/// Where an event is drawn in an exported trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Track {
    /// The collector's phases and pauses.
    Gc,
    /// A P.
    P(u16),
    /// A mark worker.
    Worker(u16),
}

/// One event: a few words, no heap pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Nanoseconds since tracing started: the start, for a slice.
    pub ts_ns: u64,
    /// A slice's duration in nanoseconds; 0 for an instant.
    pub dur_ns: u32,
    /// What happened.
    pub ev: TraceEv,
    /// Where.
    pub track: Track,
    /// Its arguments (see [`TraceEv::arg_names`]).
    pub args: [u64; 2],
}

impl TraceEvent {
    /// An instant event now.
    #[inline]
    pub fn instant(tr: &Trace, track: Track, ev: TraceEv, args: [u64; 2]) -> TraceEvent {
        TraceEvent {
            ts_ns: tr.now_ns(),
            dur_ns: 0,
            ev,
            track,
            args,
        }
    }

    /// A slice from `since` until now.
    #[inline]
    pub fn slice(tr: &Trace, track: Track, ev: TraceEv, since: u64, args: [u64; 2]) -> TraceEvent {
        TraceEvent::between(track, ev, since, tr.now_ns(), args)
    }

    /// A slice from `start` to `end` (trace time; an `end` before `start` is taken as `start`).
    #[inline]
    pub fn between(track: Track, ev: TraceEv, start: u64, end: u64, args: [u64; 2]) -> TraceEvent {
        TraceEvent {
            ts_ns: start,
            dur_ns: u32::try_from(end.saturating_sub(start)).unwrap_or(u32::MAX),
            ev,
            track,
            args,
        }
    }
}

/// A buffer of events (Go's `traceBuf`).
#[derive(Debug)]
pub struct TraceBuf {
    events: Vec<TraceEvent>,
}

impl TraceBuf {
    fn new() -> TraceBuf {
        TraceBuf {
            events: Vec::with_capacity(TRACE_BUF_EVENTS),
        }
    }

    fn is_full(&self) -> bool {
        self.events.len() == TRACE_BUF_EVENTS
    }
}

/// Where the reader delivers events (the caller of Go's `ReadTrace`).
pub trait TraceSink: Send {
    /// Takes one buffer's events, in the order they were written.
    fn write(&mut self, events: &[TraceEvent]) -> io::Result<()>;
}

/// A sink that keeps every event in memory (for tests and small runs).
#[derive(Clone, Debug, Default)]
pub struct VecSink(pub std::sync::Arc<Mutex<Vec<TraceEvent>>>);

impl TraceSink for VecSink {
    fn write(&mut self, events: &[TraceEvent]) -> io::Result<()> {
        lock(&self.0).extend_from_slice(events);
        Ok(())
    }
}

/// Counters of the trace machinery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceStats {
    /// Events written.
    pub events: u64,
    /// Events the reader delivered.
    pub events_read: u64,
    /// Buffers ever allocated (Go's `sysAlloc` of a `traceBuf`).
    pub buffers_allocated: u64,
    /// Buffers queued full (filled, or released partly filled).
    pub buffers_flushed: u64,
    /// Bytes of buffer memory allocated.
    pub buffer_bytes: u64,
}

#[derive(Debug, Default)]
struct Queues {
    full: VecDeque<TraceBuf>,
    empty: Vec<TraceBuf>,
}

/// The tracer's shared state (Go's `trace` struct).
pub struct Trace {
    origin: Instant,
    queues: Mutex<Queues>,
    /// Whether the full queue may be non-empty: the engines' cheap look before calling `read`.
    full_pending: AtomicBool,
    global: Mutex<Option<TraceBuf>>,
    sink: Mutex<Option<Box<dyn TraceSink>>>,
    sink_error: Mutex<Option<io::Error>>,
    events: AtomicU64,
    events_read: AtomicU64,
    allocated: AtomicU64,
    flushed: AtomicU64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    /// A tracer whose clock starts now, with no sink (events are read and dropped until one is
    /// set).
    pub fn new() -> Trace {
        Trace {
            origin: Instant::now(),
            queues: Mutex::default(),
            full_pending: AtomicBool::new(false),
            global: Mutex::new(None),
            sink: Mutex::new(None),
            sink_error: Mutex::new(None),
            events: AtomicU64::new(0),
            events_read: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
        }
    }

    /// Where the reader delivers events from now on.
    pub fn set_sink(&self, sink: Box<dyn TraceSink>) {
        *lock(&self.sink) = Some(sink);
    }

    /// Takes the sink back (after the last [`Trace::read`]), with the first error it returned.
    pub fn take_sink(&self) -> (Option<Box<dyn TraceSink>>, Option<io::Error>) {
        (lock(&self.sink).take(), lock(&self.sink_error).take())
    }

    /// Nanoseconds since tracing started.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Writes `e` into `buf`, a P's buffer (Go's `traceEvent`). Out of line, so that the
    /// interpreter's many trace points cost a test and a call only when tracing.
    #[inline(never)]
    pub fn event(&self, buf: &mut Option<TraceBuf>, e: TraceEvent) {
        let _nowb = nowritebarrier("traceEvent");
        if buf.as_ref().is_none_or(|b| b.is_full()) {
            let fresh = self.flush(buf.take());
            *buf = Some(fresh);
        }
        if let Some(b) = buf {
            b.events.push(e);
        }
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes `e` into the global buffer, for code running without a P.
    pub fn event_global(&self, e: TraceEvent) {
        let mut global = lock(&self.global);
        self.event(&mut global, e);
    }

    /// Queues `buf` (if any) as full and returns an empty buffer, recycled if one is free (Go's
    /// `traceFlush`).
    fn flush(&self, buf: Option<TraceBuf>) -> TraceBuf {
        let _nowb = nowritebarrier("traceFlush");
        let mut q = lock(&self.queues);
        if let Some(b) = buf {
            q.full.push_back(b);
            self.flushed.fetch_add(1, Ordering::Relaxed);
            self.full_pending.store(true, Ordering::Release);
        }
        q.empty.pop().unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::Relaxed);
            TraceBuf::new()
        })
    }

    /// Queues a partly filled buffer so the reader sees its events (Go's `traceProcFree`, and
    /// `StopTrace` for every P and the global buffer); leaves `buf` empty.
    pub fn release(&self, buf: &mut Option<TraceBuf>) {
        let _nowb = nowritebarrier("traceProcFree");
        if let Some(b) = buf.take() {
            if b.events.is_empty() {
                lock(&self.queues).empty.push(b);
            } else {
                let mut q = lock(&self.queues);
                q.full.push_back(b);
                self.flushed.fetch_add(1, Ordering::Relaxed);
                self.full_pending.store(true, Ordering::Release);
            }
        }
    }

    /// [`Trace::release`] for the global buffer.
    pub fn release_global(&self) {
        let mut global = lock(&self.global);
        self.release(&mut global);
    }

    /// Whether a full buffer may be waiting for the reader.
    #[inline]
    pub fn full_pending(&self) -> bool {
        self.full_pending.load(Ordering::Relaxed)
    }

    /// The reader (Go's `ReadTrace`): hands every buffer queued full when it is called to the sink,
    /// in queue order, and recycles it onto the empty stack. A sink error is kept (see [`Trace::take_sink`]) and the
    /// events after it are dropped. Returns the number of events read.
    pub fn read(&self) -> u64 {
        let mut sink = lock(&self.sink);
        // Only what is queued now: writers that keep filling buffers cannot keep the reader here.
        let full = {
            let mut q = lock(&self.queues);
            self.full_pending.store(false, Ordering::Release);
            std::mem::take(&mut q.full)
        };
        let mut n = 0;
        for mut b in full {
            n += b.events.len() as u64;
            if let Some(s) = sink.as_mut()
                && let Err(e) = s.write(&b.events)
            {
                lock(&self.sink_error).get_or_insert(e);
                *sink = None;
            }
            b.events.clear();
            lock(&self.queues).empty.push(b);
        }
        self.events_read.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// The counters so far.
    pub fn stats(&self) -> TraceStats {
        let allocated = self.allocated.load(Ordering::Relaxed);
        TraceStats {
            events: self.events.load(Ordering::Relaxed),
            events_read: self.events_read.load(Ordering::Relaxed),
            buffers_allocated: allocated,
            buffers_flushed: self.flushed.load(Ordering::Relaxed),
            buffer_bytes: allocated * (TRACE_BUF_EVENTS * std::mem::size_of::<TraceEvent>()) as u64,
        }
    }
}

impl Runtime {
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
    pub(crate) fn trace_go_left(&self, p: &mut P, index: GIndex, left: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> TraceEvent {
        TraceEvent {
            ts_ns: i,
            dur_ns: 0,
            ev: TraceEv::BarrierHit,
            track: Track::P(0),
            args: [i, 0],
        }
    }

    #[test]
    fn a_buffer_is_64_kib_of_events() {
        let bytes = TRACE_BUF_EVENTS * std::mem::size_of::<TraceEvent>();
        assert!(bytes <= 64 << 10 && bytes + std::mem::size_of::<TraceEvent>() > 64 << 10);
    }

    #[test]
    fn buffers_are_recycled_and_every_event_is_read_once_in_order() {
        let trace = Trace::new();
        let sink = VecSink::default();
        trace.set_sink(Box::new(sink.clone()));
        let mut bufs: [Option<TraceBuf>; 2] = [None, None];
        let n = 50 * TRACE_BUF_EVENTS as u64;
        for i in 0..n {
            trace.event(&mut bufs[(i % 2) as usize], ev(i));
            if trace.full_pending() {
                trace.read();
            }
        }
        for b in &mut bufs {
            trace.release(b);
        }
        trace.read();
        let s = trace.stats();
        assert_eq!((s.events, s.events_read), (n, n));
        // Two writers' buffers and one being refilled while the other waits: never more than
        // three, over 50 buffers' worth of events.
        assert!(s.buffers_allocated <= 3, "{s:?}");
        assert!(s.buffers_flushed >= 50, "{s:?}");
        let got = lock(&sink.0);
        let mut per_writer: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for e in got.iter() {
            per_writer[(e.args[0] % 2) as usize].push(e.args[0]);
        }
        for (w, seen) in per_writer.iter().enumerate() {
            let want: Vec<u64> = (0..n).filter(|i| i % 2 == w as u64).collect();
            assert_eq!(seen, &want, "writer {w}'s events, once each, in order");
        }
    }
}
