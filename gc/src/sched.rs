//! Goroutines and processors (Go's `g` and `p`), and the status word that is the lock on a stack.
//!
//! Invariant: a goroutine's stack and mutator state ([`GState`]) are touched by exactly one party
//! at a time, and that party holds a [`GOwner`] token for it. A token is minted only by a successful
//! compare-and-swap on the goroutine's atomic status ([`G::try_own`]) and given up only by storing
//! a new status ([`G::release`]): the running goroutine's P owns it while the status is `Running`,
//! and a marker owns it while the status carries the `SCAN` bit (Go's `_Gscan`), which it can only
//! set from `Runnable` or `Waiting`. "The status is the lock on the stack", as in Go's
//! `casgstatus`/`castogscanstatus`. The release is a `Release` store and the acquire a CAS with
//! `Acquire` ordering, so whatever the previous owner wrote to the stack is visible to the next.
//! One exception, by design: a lazy stack scan's marker scans the frames above the goroutine's
//! watermark without the token, while the goroutine runs, holding the goroutine's stack-barrier
//! lock instead (`stacks::watermark` states what each side may touch).
//!
//! Status transitions: `Dead → Idle` (being created, owned by its creator) `→ Runnable`;
//! `Runnable → Running` (scheduled on a P) `→ Runnable` (yield, preemption, stop-the-world) or
//! `→ Waiting` (blocked) or `→ Dead` (exit); `Waiting → Runnable` (woken); and, for a marker,
//! `Runnable|Waiting → +SCAN → back`. A dead goroutine's `G` stays in `allg` and is reused
//! (Go's `gfget`/`gfput`); its stack went back to the pool when it died.
//!
//! A [`P`] is plain data owned by the thread running it: its run queue, its current goroutine's
//! token, its mcache, the gcWork its write barriers shade into, its sanitizer context, its trace
//! buffer, and — since each P's thread is its M — the M's profiler state, its registers and g0 stack.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::time::Instant;

use stacks::GStack;

use crate::heap::MCache;
use crate::mmu::GcTimeline;
use crate::mutator::{Behaviour, Rng};
use crate::profile::MProf;
use crate::sanitizer::ProcCtx;
#[cfg(feature = "loom")]
use crate::sync::TrackedAccess;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::trace::TraceBuf;
use crate::workbuf::GcWork;

/// Goroutine status values (Go's `_Grunnable`, …).
pub mod status {
    /// Being created by its spawner.
    pub const IDLE: u32 = 0;
    /// On a run queue.
    pub const RUNNABLE: u32 = 1;
    /// The current goroutine of a P.
    pub const RUNNING: u32 = 2;
    /// Blocked.
    pub const WAITING: u32 = 3;
    /// Finished; the `G` may be reused.
    pub const DEAD: u32 = 4;
    /// Added to `RUNNABLE` or `WAITING` while a marker owns the stack.
    pub const SCAN: u32 = 0x1000;
}

/// Index of a goroutine in `allg`.
pub type GIndex = u32;

/// A goroutine.
#[derive(Debug)]
pub struct G {
    index: GIndex,
    status: AtomicU32,
    goid: AtomicU64,
    /// A marker asked this running goroutine to scan its own stack at its next safe point (Go's
    /// `preemptscan`).
    pub(crate) preempt_scan: AtomicBool,
    /// The cycle whose concurrent (or start-of-cycle) scan covered this goroutine (Go's
    /// `gcscandone`, as a cycle number so it never needs resetting).
    pub(crate) scan_done_cycle: AtomicU32,
    /// Go's `gcscanvalid` as a cycle number: equal to the current cycle while the goroutine has
    /// not run since its scan in this cycle. Read and cleared by whoever owns the goroutine (the
    /// scheduler making it run, the marker scanning it). A stamp rather than a flag, so that no
    /// walk over every goroutine has to reset it between cycles (Go's `gcResetMarkState`).
    pub(crate) scan_valid_cycle: AtomicU32,
    /// Go's `gcRescan`: `cycle << 32 | position` while the goroutine is on that cycle's re-scan
    /// list, so a stale entry from an earlier cycle means "not on the list" without a reset.
    /// Written under the re-scan list's lock.
    pub(crate) rescan_slot: AtomicU64,
    /// Bytes of stack the goroutine used when it last left a P or was scanned: what the
    /// collector's after-restart walk sums for a goroutine it cannot take because it is running.
    pub(crate) stack_used: AtomicU64,
    state: UnsafeCell<Option<GState>>,
    /// Under `loom`, stands for the stack and `state`: every owner touches it when it opens the
    /// state and just before it gives up the status, so loom reports two owners whose accesses
    /// the status word does not order.
    #[cfg(feature = "loom")]
    stack_access: TrackedAccess,
}

// SAFETY: `state` is only reached through `G::state`, which requires a `&mut GOwner` for this `G`.
// A `GOwner` is minted only by a successful CAS on `status` and consumed by `release`, so at most
// one token exists per `G` at a time, and the CAS (Acquire) / release store (Release) pair orders
// every access by one owner before every access by the next. (Under `loom`, `stack_access` is a
// loom cell that checks exactly that ordering itself.)
unsafe impl Sync for G {}

/// Proof of exclusive ownership of a goroutine's stack and state; see the module comment.
#[derive(Debug)]
#[must_use = "a GOwner must be released"]
pub struct GOwner {
    index: GIndex,
}

impl GOwner {
    /// The goroutine owned.
    pub fn index(&self) -> GIndex {
        self.index
    }
}

impl G {
    pub(crate) fn new(index: GIndex) -> G {
        G {
            index,
            status: AtomicU32::new(status::DEAD),
            goid: AtomicU64::new(0),
            preempt_scan: AtomicBool::new(false),
            scan_done_cycle: AtomicU32::new(0),
            scan_valid_cycle: AtomicU32::new(0),
            rescan_slot: AtomicU64::new(0),
            stack_used: AtomicU64::new(0),
            state: UnsafeCell::new(None),
            #[cfg(feature = "loom")]
            stack_access: TrackedAccess::default(),
        }
    }

    /// A dead `G` with no state, for `loom` models of the status handshake (`tests/loom.rs`).
    #[cfg(feature = "loom")]
    #[doc(hidden)]
    pub fn new_for_model(index: GIndex) -> G {
        G::new(index)
    }

    /// `preempt_scan`, for `loom` models of the status handshake (`tests/loom.rs`).
    #[cfg(feature = "loom")]
    #[doc(hidden)]
    pub fn preempt_scan_for_model(&self) -> &AtomicBool {
        &self.preempt_scan
    }

    /// Its index in `allg`.
    pub fn index(&self) -> GIndex {
        self.index
    }

    /// The current goroutine id (changes when the `G` is reused).
    pub fn goid(&self) -> u64 {
        self.goid.load(Ordering::Relaxed)
    }

    pub(crate) fn set_goid(&self, goid: u64) {
        self.goid.store(goid, Ordering::Relaxed);
    }

    /// The cycle whose concurrent scan last covered this goroutine (0 if none has).
    pub fn scan_done_cycle(&self) -> u32 {
        self.scan_done_cycle.load(Ordering::Acquire)
    }

    /// The status now (it may change at once unless the caller owns the goroutine).
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Acquire)
    }

    /// Takes ownership by moving the status from `from` to `to`; `None` if it was not `from`.
    pub fn try_own(&self, from: u32, to: u32) -> Option<GOwner> {
        self.status
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| GOwner { index: self.index })
    }

    /// Takes ownership for a marker: `Runnable` or `Waiting` plus the `SCAN` bit. Returns the
    /// token and the status to restore, or `None` if the goroutine is running, dead or being
    /// created.
    pub fn try_own_for_scan(&self) -> Option<(GOwner, u32)> {
        for s in [status::RUNNABLE, status::WAITING] {
            if let Some(o) = self.try_own(s, s | status::SCAN) {
                return Some((o, s));
            }
        }
        None
    }

    /// Gives up ownership, leaving status `to`.
    pub fn release(&self, owner: GOwner, to: u32) {
        assert_eq!(owner.index, self.index, "a GOwner releases its own G");
        #[cfg(feature = "loom")]
        self.stack_access.touch();
        self.status.store(to, Ordering::Release);
    }

    /// The goroutine's state, for its owner.
    #[inline]
    pub fn state<'a>(&'a self, owner: &'a mut GOwner) -> &'a mut Option<GState> {
        assert_eq!(owner.index, self.index, "a GOwner opens its own G");
        #[cfg(feature = "loom")]
        self.stack_access.touch();
        // SAFETY: `owner` is the unique token for this G (see the `Sync` impl), borrowed mutably
        // for the lifetime of the returned reference, so no other reference to `state` exists.
        unsafe { &mut *self.state.get() }
    }
}

/// What the collector remembers about a goroutine's stack between its concurrent scan and mark
/// termination, kept up to date by the mutator (ARCHITECTURE.md §4's watermark). Depths are bytes below
/// the stack top, so they survive copystack. A track belongs to the cycle whose scan made it and
/// means nothing in any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanTrack {
    /// The cycle of the scan.
    pub cycle: u32,
    /// Size of the frame running at the scan (frame 0, which never gets a barrier; 0 for an
    /// empty stack).
    pub sp0_frame_size: usize,
    /// Depth of the SP at the scan (`hi - sp0`).
    pub sp0_depth: usize,
    /// Depth of the top (end) of the highest frame that has run or been written since the scan:
    /// every byte that can have changed without a write barrier lies below it.
    pub changed_top_depth: usize,
    /// Depth of the SP of that frame.
    pub changed_sp_depth: usize,
    /// Depth of the highest return-PC slot returned (or unwound) through since the scan;
    /// `usize::MAX` if none.
    pub ret_slot_depth: usize,
    /// Barriers passed since the scan that the collector's view of `stkbar_pos` misses (only
    /// `--inject hit-lost` and `unwind-skip` make any): the re-scan bound lags by this many.
    pub stkbar_lag: usize,
}

/// The state of a live goroutine: its stack and its behaviour.
#[derive(Debug)]
pub struct GState {
    /// The stack and its barriers.
    pub gs: GStack,
    /// Frames on the stack.
    pub depth: usize,
    /// What the goroutine does next.
    pub behaviour: Box<dyn Behaviour>,
    /// The goroutine's own random stream.
    pub rng: Rng,
    /// Set by the concurrent scan; valid only in its own cycle (see [`ScanTrack::cycle`]).
    pub track: Option<ScanTrack>,
    /// What the concurrent scan saw, under `stackshadow=1`; valid only in its own cycle.
    pub shadow: Option<crate::stackshadow::StackShadow>,
    /// Assist credit in heap bytes (Go's `gcAssistBytes`) for cycle `assist_cycle`: allocation
    /// during mark debits it; below zero, the goroutine must do mark work before allocating on
    /// (see `pacer`). Credit from an earlier cycle counts as 0 (Go resets it in
    /// `gcResetMarkState`).
    pub gc_assist_bytes: i64,
    /// The cycle `gc_assist_bytes` belongs to.
    pub assist_cycle: u32,
    /// The functions on the stack, outermost first, kept by the interpreter apart from stack
    /// memory while the profiler validates its samples (empty otherwise): the ground truth a
    /// traceback must match.
    pub true_frames: Vec<stacks::FuncId>,
    /// The frames the interpreter resolved last, one per call depth modulo [`FRAME_MEMOS`] (see
    /// [`FrameMemo`]).
    pub(crate) frame_memos: [FrameMemo; FRAME_MEMOS],
}

/// How many call depths a goroutine remembers a frame layout for: a call and its return, and
/// a loop of calls a few frames deep, find the layouts of the frames they come back to.
pub(crate) const FRAME_MEMOS: usize = 4;

/// The layout of a goroutine's frame, remembered with everything it is a function of: the
/// function, named by its PC range (a PC in it gives the function and so the frame size), the
/// frame's SP and the stack's bounds. While the running PC lies in the range and the SP and the
/// bounds are the memo's, the memo is the running frame's layout; any other frame, unwind or
/// stack move fails the check and the interpreter resolves the frame again. So a memo needs no
/// invalidation, and one taken before a call is still good when the call returns. It saves a
/// `findframe` and the frame's bounds checks on every operation that touches a local (most of
/// them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FrameMemo {
    /// The function's PCs, `[entry, end)` (empty in the default memo, so no PC is in it).
    pub(crate) pcs: (u64, u64),
    /// The frame's SP.
    pub(crate) sp: u64,
    /// The stack's bounds, `lo` and `hi`.
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    /// The frame's locals, as word indices of the stack.
    pub(crate) words: (usize, usize),
    /// Its function, whose slot operands `Runtime::operand_words` resolves.
    pub(crate) func: u32,
    /// Whether the function has pointer slots (else no slot operand names anything).
    pub(crate) has_slots: bool,
}

impl FrameMemo {
    /// Whether the memo is the layout of the frame running at `pc` and `sp` on the stack
    /// `[lo, hi)`. (Compared word by word: an array compare goes through a stack temporary
    /// whose stores a wide load cannot forward, which cost the interpreter a third of its speed.)
    #[inline(always)]
    pub(crate) fn covers(&self, pc: u64, sp: u64, lo: u64, hi: u64) -> bool {
        let in_func = pc.wrapping_sub(self.pcs.0) < self.pcs.1.wrapping_sub(self.pcs.0);
        in_func & (sp == self.sp) & (lo == self.lo) & (hi == self.hi)
    }
}

/// Mutator counters of one P, folded into the cycle's stats at each stop-the-world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PCounters {
    /// Mutator operations executed.
    pub ops: u64,
    /// Write barriers executed while the barrier was on.
    pub wb_calls: u64,
    /// Stack moves (growth and shrink).
    pub copystacks: u64,
    /// Goroutines created.
    pub spawned: u64,
}

/// A processor: the right to run goroutines (Go's `p`).
#[derive(Debug)]
pub struct P {
    /// Its id.
    pub id: usize,
    /// Local run queue.
    pub runq: VecDeque<GIndex>,
    /// Goroutines scheduled so far (Go's `schedtick`): every 61st looks at the global queue
    /// first, so goroutines there are not starved by a busy local queue.
    pub schedtick: u32,
    /// What `sysmon` last saw of this P (Go's `sysmontick`): its `schedtick`, and since when
    /// (ns on the engine's clock) the goroutine it picked then has been running.
    pub sysmon_tick: u32,
    /// See `sysmon_tick`.
    pub sysmon_since_ns: u64,
    /// The running goroutine, owned.
    pub curg: Option<GOwner>,
    /// Allocation cache.
    pub mcache: MCache,
    /// Where this P's write barriers and self-scans put grey objects.
    pub gcw: GcWork,
    /// Counters since the last stop-the-world.
    pub counters: PCounters,
    /// The run's time origin, when an engine with a real clock records this P's GC time.
    pub clock: Option<Instant>,
    /// Intervals this P spent on GC work (mark workers, assists) other than idle marking, for
    /// minimum mutator utilization.
    pub gc_timeline: GcTimeline,
    /// Intervals this P marked only because it had nothing to run (Go's idle worker).
    pub idle_mark_timeline: GcTimeline,
    /// Beyond the current P count (Go's `_Pdead`): runs nothing until a `procresize` revives it.
    pub dead: bool,
    /// Its sanitizer context (Go's `p.racectx`), while the sanitizer is on and the P alive.
    pub racectx: Option<ProcCtx>,
    /// Its trace buffer (Go's `p.tracebuf`), while tracing.
    pub tracebuf: Option<TraceBuf>,
    /// When its current goroutine started running, in trace time.
    pub trace_running_since: u64,
    /// Its M's profiler state, while profiling: its registers and g0 stack among it (see
    /// `profile`); each P's thread is its M.
    pub prof: Option<Box<MProf>>,
}

impl P {
    /// A P with nothing to run.
    pub fn new(id: usize) -> P {
        P {
            id,
            runq: VecDeque::new(),
            schedtick: 0,
            sysmon_tick: 0,
            sysmon_since_ns: 0,
            curg: None,
            mcache: MCache::new(),
            gcw: GcWork::new(),
            counters: PCounters::default(),
            clock: None,
            gc_timeline: GcTimeline::new(),
            idle_mark_timeline: GcTimeline::new(),
            dead: false,
            racectx: None,
            tracebuf: None,
            trace_running_since: 0,
            prof: None,
        }
    }

    /// Nanoseconds since the run's origin, if this P records GC time.
    #[inline]
    pub fn now_ns(&self) -> Option<u64> {
        self.clock.map(|c| c.elapsed().as_nanos() as u64)
    }

    /// Records GC work on this P from `start_ns` until now (no-op without a clock).
    pub fn note_gc_time(&mut self, start_ns: u64) {
        if let Some(end) = self.now_ns() {
            self.gc_timeline.push(start_ns, end);
        }
    }

    /// Records idle marking on this P from `start_ns` until now (no-op without a clock).
    pub fn note_idle_mark_time(&mut self, start_ns: u64) {
        if let Some(end) = self.now_ns() {
            self.idle_mark_timeline.push(start_ns, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FrameMemo;

    /// A memo covers exactly the PCs of its function with its SP and stack bounds: a return
    /// into the function at another PC keeps it, anything else (the next function's entry, a
    /// moved frame, a moved or resized stack) does not, and the default memo covers nothing.
    #[test]
    fn a_frame_memo_covers_its_function_and_nothing_else() {
        let memo = FrameMemo {
            pcs: (0x40_1000, 0x40_1040),
            sp: 0xc000_7f00,
            lo: 0xc000_0000,
            hi: 0xc000_8000,
            ..FrameMemo::default()
        };
        let (sp, lo, hi) = (memo.sp, memo.lo, memo.hi);
        assert!(memo.covers(0x40_1000, sp, lo, hi), "the entry");
        assert!(memo.covers(0x40_1018, sp, lo, hi), "a return PC inside");
        assert!(!memo.covers(0x40_1040, sp, lo, hi), "the next function");
        assert!(!memo.covers(0x40_0ff8, sp, lo, hi), "the function before");
        assert!(!memo.covers(0x40_1018, sp - 64, lo, hi), "a deeper frame");
        assert!(
            !memo.covers(0x40_1018, sp, lo + 0x8000, hi),
            "a stack grown in place of lo"
        );
        assert!(
            !memo.covers(0x40_1018, sp, lo, hi + 0x8000),
            "a different hi"
        );
        let empty = FrameMemo::default();
        assert!(!empty.covers(0, 0, 0, 0), "the default memo");
        assert!(!empty.covers(u64::MAX, 0, 0, 0), "the default memo");
    }
}
