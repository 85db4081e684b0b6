//! Stack barriers: install, hit, unwind, re-scan bound, removal (Go's `mstkbar.go`).
//!
//! Stack barriers let mark termination re-scan only the part of a goroutine's stack that may have
//! changed since its concurrent scan. While scanning a stack concurrently, the marker overwrites
//! selected return-PC slots with the PC of the `stackBarrier` trampoline and records each
//! `(slot, original PC)` in the goroutine's stkbar array. A frame that later returns through such a
//! slot "returns" into the trampoline, which records the hit (`stkbar_pos += 1`) and continues at the
//! original PC. At mark termination, every frame above the lowest barrier not yet hit has not been
//! returned into since the scan, so the re-scan stops at the frame holding that barrier's slot.
//!
//! Placement (Go 1.7's `scanstack`). The scan walks the frames from the innermost with
//! `next = sp0 + first_offset`, `sp0` the SP at scan time. A frame gets a barrier if its return-PC
//! slot lies at or above `next` (Go's `frame.fp > nextBarrier`) and it is not frame 0, the running
//! frame (Go skips it, `n != 0`: on LR machines its return PC is not on the stack); after the `n`-th
//! barrier, `next = sp0 + first_offset·2^n`. So barrier `k` sits on the first frame past frame 0
//! and past barrier `k-1`'s frame whose slot is at least `first_offset·2^k` above `sp0`, and the
//! stkbar array grows logarithmically with the stack; it is carved from the top of the stack
//! allocation (see `stack`). `first_offset = 0` puts a barrier on every frame but the running one
//! (Go's debugging mode); mode `Off` installs none, though the array is still reserved. The
//! outermost user frame, whose return PC is `goexit + 1`, is a frame like any other: Go skips only
//! the `goexit` frame itself (`lr == 0`), which this model does not have. Installation stops when
//! the array is full (Go sizes it so that it never is; a pool sized for another offset can be).
//!
//! Correctness (the invariant the re-scan relies on). After a concurrent scan a stack changes in
//! three ways. (1) The running frame writes its own slots without a write barrier: it is below the
//! lowest un-hit barrier, since reaching a frame means returning into it or calling it, and the re-scan
//! covers everything from the SP up to and including the frame holding that barrier. (2) Writes
//! through up-pointers into outer frames: they carry write barriers. (3) The runtime's bulk writes into
//! the stack (a channel receive into `&local`) and multi-frame unwinds (panic): both call
//! [`GStack::unwind_barriers`] first, which restores and counts as hit every barrier below the
//! destination, so the re-scan bound moves above it.
//!
//! The bound. Let `sp0` be the SP at the scan and `s0` the size of the running frame then, `sp` the
//! SP at mark termination, `x` the highest return-PC slot returned through or unwound past since the
//! scan, relative to `sp0` (0 if none lies above it), and `F` the frame holding the lowest un-hit
//! barrier, barrier `k`. The re-scan covers `[sp, F.fp)`, which is
//! `(sp0 − sp) + (F.sp − sp0) + size(F)` bytes, and `F.sp − sp0 ≤ max(2x, first_offset, s0)`:
//! * `k = 0`: either `F` is frame 1, which starts at `sp0 + s0` — the term frame 0's exemption
//!   adds: when frame 0 alone reaches past `first_offset`, the first barrier lands on the frame
//!   above it — or the frame below `F` is not frame 0 and its slot lies below `sp0 +
//!   first_offset`, so `F` starts at most `first_offset` up;
//! * `k ≥ 1`: barrier `k-1` was hit or unwound, so `x` is at least its slot's offset, which is at
//!   least `first_offset·2^(k-1)`, and at least `s0 + 8 ≥ 24`, as frame 0 carries none. Either `F`
//!   is the frame just above barrier `k-1`'s, starting at most `x + 8 ≤ 2x` up, or the frame below
//!   `F` has its slot below `first_offset·2^k ≤ 2x` up, so `F` starts at most `2x` up.
//!
//! (Offsets count whole words: a `first_offset` that is not a multiple of 8 reads as rounded up.)
//! That is Go's "at most twice as much stack as necessary", plus what Go's comment leaves out: the
//! granularity of frames (`size(F)`) and the running frame (`s0`). A barrier on the outermost frame
//! changes nothing: while it is the lowest un-hit one the re-scan covers the whole stack, as with no
//! barrier, and it is hit only by the goroutine's final return, after which every barrier is hit
//! and the (empty) stack is re-scanned whole.
//!
//! Gotchas. Everything that reads return PCs must understand barriers: the unwinder translates the
//! barrier PC back through the stkbar array, and `copystack` migrates the array, adjusting each
//! `saved_lr_ptr` by the move (Go's `adjuststkbar`). The outermost frame's barrier sits at `hi - 8`
//! with `goexit + 1` saved: the return through it exits the goroutine from the trampoline, and a
//! traceback that starts in the trampoline there sees an empty stack.
//!
//! Synchronization. Installing, removing and unwinding barriers hold the goroutine's stack-barrier
//! lock, which a profiler only tries; the hit handler takes no lock, since it runs on every return
//! through a barrier: a profiler recognises it by the PC inside the trampoline, and the unwinder
//! can repair a traceback that starts there. Each of these operations is several stores, and a
//! signal may land between them (see `signal`).
//!
//! Counting. Every barrier installed ends exactly one way — hit by a return (the goroutine's final
//! return for the outermost frame's), passed by an unwind (the runtime's `unwind_barriers(hi)` when a
//! goroutine exits with frames left passes them all), or removed — so
//! `installed = hit + unwound + removed` once a stack has no barriers left.

use std::fmt;

use crate::addr::{Addr, Pc, WORD};
use crate::code::Program;
use crate::error::StackError;
use crate::signal::{MidOp, NoSignals, Signals};
use crate::stack::{GStack, Stkbar, max_stack_barriers};
use crate::unwind::Frame;

/// Go's `firstStackBarrierOffset`: the first barrier goes on the first frame (above the running
/// one) whose return-PC slot lies at least this many bytes above the SP at scan time.
pub const FIRST_STACK_BARRIER_OFFSET: usize = 1024;

/// Whether and where the concurrent scan installs stack barriers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StackBarrierMode {
    /// No stack barriers installed (Go's `gcstackbarrieroff`). As in Go, this only stops the scan
    /// from installing: `firstStackBarrierOffset` keeps its default, so every stack still carries
    /// the stkbar array sized for [`FIRST_STACK_BARRIER_OFFSET`] (Go 1.8 still reserved it too).
    Off,
    /// Barriers at `first_offset·2^n` bytes above the scan-time SP; `first_offset = 0` means every
    /// frame but the running one (Go's `gcstackbarrierall`).
    On {
        /// Go's `firstStackBarrierOffset`.
        first_offset: usize,
    },
}

impl StackBarrierMode {
    /// Go's setting: the first barrier [`FIRST_STACK_BARRIER_OFFSET`] (1 KiB) above the SP.
    pub const GO: StackBarrierMode = StackBarrierMode::On {
        first_offset: FIRST_STACK_BARRIER_OFFSET,
    };
    /// A barrier on every frame but the running one.
    pub const EVERY_FRAME: StackBarrierMode = StackBarrierMode::On { first_offset: 0 };

    /// Stkbar entries a stack of `stack_size` bytes reserves under this mode (Go's
    /// `gcMaxStackBarriers`). `Off` reserves what Go's default offset does, since Go sizes the
    /// array from `firstStackBarrierOffset`, which `gcstackbarrieroff` leaves alone.
    pub fn max_stack_barriers(self, stack_size: usize) -> usize {
        let first_offset = match self {
            StackBarrierMode::Off => FIRST_STACK_BARRIER_OFFSET,
            StackBarrierMode::On { first_offset } => first_offset,
        };
        max_stack_barriers(stack_size, first_offset)
    }

    /// The first offset, if barriers are on.
    pub fn first_offset(self) -> Option<usize> {
        match self {
            StackBarrierMode::Off => None,
            StackBarrierMode::On { first_offset } => Some(first_offset),
        }
    }
}

impl fmt::Display for StackBarrierMode {
    /// `off`, `all`, or the first offset in bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first_offset() {
            None => f.write_str("off"),
            Some(0) => f.write_str("all"),
            Some(n) => write!(f, "{n}"),
        }
    }
}

/// Barrier events on one stack. Each installed barrier ends as exactly one of hit, unwound, removed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StkbarCounters {
    /// Barriers installed by scans.
    pub installed: u64,
    /// Barriers hit by a return through the trampoline.
    pub hit: u64,
    /// Barriers passed by a multi-frame unwind or a runtime bulk write (Go's `gcUnwindBarriers`).
    pub unwound: u64,
    /// Barriers removed un-hit (end of a cycle, or stale ones before a new scan).
    pub removed: u64,
    /// Returns and unwinds through a lazy scan's watermark that scanned a frame (a watermark is
    /// one barrier however often it moves: it counts once in `installed`, and once more when it
    /// ends as hit, unwound or removed).
    pub watermark_hits: u64,
    /// Frames the goroutine scanned itself at the watermark.
    pub watermark_frames: u64,
    /// Their bytes.
    pub watermark_bytes: u64,
}

impl StkbarCounters {
    /// Adds another set of counters.
    pub fn add(&mut self, o: &StkbarCounters) {
        self.installed += o.installed;
        self.hit += o.hit;
        self.unwound += o.unwound;
        self.removed += o.removed;
        self.watermark_hits += o.watermark_hits;
        self.watermark_frames += o.watermark_frames;
        self.watermark_bytes += o.watermark_bytes;
    }
}

/// Decides, frame by frame from the innermost, which return-PC slots get a barrier (the placement
/// half of Go's `scanstack` callback).
#[derive(Debug)]
pub(crate) struct BarrierPlacement {
    /// Barriers go on slots at or above this address; `None` once no more can be placed.
    next_barrier: Option<u64>,
    sp0: Addr,
    offset: usize,
    room: usize,
}

impl BarrierPlacement {
    /// Placement for a scan of a stack whose SP is `sp0`, with `room` free stkbar entries.
    pub(crate) fn new(mode: StackBarrierMode, sp0: Addr, room: usize) -> Self {
        let (next_barrier, offset) = match mode {
            StackBarrierMode::Off => (None, 0),
            StackBarrierMode::On { first_offset } => {
                (sp0.0.checked_add(first_offset as u64), first_offset)
            }
        };
        BarrierPlacement {
            next_barrier,
            sp0,
            offset,
            room,
        }
    }

    /// Whether `frame`'s return-PC slot gets a barrier; advances to the next offset if so.
    ///
    /// Go's test is `frame.fp > nextBarrier`; with the return PC in the frame's top word that is
    /// `lr_slot >= nextBarrier`. The running frame (index 0) is skipped as Go skips it (`n != 0`):
    /// on LR machines its return PC is in a register, not on the stack. The outermost frame, whose
    /// return PC is `goexit + 1`, is not special: Go skips only the `goexit` pseudo-frame itself
    /// (`lr == 0`), which this model does not have.
    #[inline]
    pub(crate) fn wants(&mut self, frame: &Frame) -> bool {
        let Some(next) = self.next_barrier else {
            return false;
        };
        if frame.index == 0 || self.room == 0 || frame.lr_slot().0 < next {
            return false;
        }
        self.room -= 1;
        self.offset = self.offset.saturating_mul(2);
        self.next_barrier = self.sp0.0.checked_add(self.offset as u64);
        true
    }
}

impl GStack {
    /// Barriers recorded, low to high (hit ones first).
    pub fn stkbar(&self) -> impl ExactSizeIterator<Item = Stkbar> + '_ {
        (0..self.stkbar_len).map(|i| self.stack.stkbar(i))
    }

    /// Number of barriers recorded.
    pub fn stkbar_len(&self) -> usize {
        self.stkbar_len
    }

    /// Index of the lowest barrier not yet hit.
    pub fn stkbar_pos(&self) -> usize {
        self.stkbar_pos
    }

    /// Barrier events since the last [`GStack::take_counters`].
    pub fn counters(&self) -> StkbarCounters {
        self.counters
    }

    /// Returns the barrier counters and zeroes them (the collector folds them into cycle stats).
    pub fn take_counters(&mut self) -> StkbarCounters {
        std::mem::take(&mut self.counters)
    }

    /// The re-scan bound: the return-PC slot of the lowest barrier not yet hit. A mark-termination
    /// re-scan walks frames up to and including the one holding this slot. `None` when every barrier
    /// was hit or there were none: the whole stack must be re-scanned.
    pub fn rescan_limit(&self) -> Option<Addr> {
        self.rescan_limit_lagging(0)
    }

    /// The re-scan bound as a collector would compute it whose view of `stkbar_pos` lags `lag`
    /// hits behind (a fault injected on purpose): the slot of entry `stkbar_pos - lag`, which may
    /// name a frame already popped (the re-scan then covers the running frame only), or an
    /// address of a stack the goroutine has since left.
    pub fn rescan_limit_lagging(&self, lag: usize) -> Option<Addr> {
        let pos = self.stkbar_pos.saturating_sub(lag);
        (pos < self.stkbar_len).then(|| self.stack.stkbar(pos).saved_lr_ptr)
    }

    /// Installs a barrier over the return-PC slot at `slot` (Go's `gcInstallStackBarrier`): records
    /// the slot and its PC, then writes the trampoline's PC (a signal boundary between the two, see
    /// `signal`). Barriers must be installed from low to high addresses; the caller holds the
    /// stack-barrier lock and has checked there is room.
    pub(crate) fn install_stack_barrier(
        &mut self,
        prog: &Program,
        slot: Addr,
        sig: &mut impl Signals,
    ) -> Result<(), StackError> {
        let saved = self.read(slot)?;
        debug_assert!(self.stkbar_len < self.stack.stkbar_cap());
        self.stack.set_stkbar(
            self.stkbar_len,
            Stkbar {
                saved_lr_ptr: slot,
                saved_lr_val: Pc(saved),
            },
        );
        self.stkbar_len += 1;
        self.counters.installed += 1;
        sig.boundary(self, MidOp::BarrierInstall);
        self.write(slot, prog.stack_barrier_pc().0)?;
        sig.boundary(self, MidOp::BarrierInstall);
        Ok(())
    }

    /// Removes every barrier not yet hit, restoring the original return PCs, and empties the stkbar
    /// array (Go's `gcRemoveStackBarriers`). The live stack is then byte-identical to one that never
    /// had barriers. Returns how many were removed.
    pub fn remove_stack_barriers(&mut self, prog: &Program) -> Result<usize, StackError> {
        self.with_stack_lock(|gs| gs.remove_stack_barriers_locked(prog, &mut NoSignals))
    }

    /// [`GStack::remove_stack_barriers`] for a caller that already holds the stack-barrier lock.
    pub(crate) fn remove_stack_barriers_locked(
        &mut self,
        prog: &Program,
        sig: &mut impl Signals,
    ) -> Result<usize, StackError> {
        let n = self.stkbar_len - self.stkbar_pos;
        for i in self.stkbar_pos..self.stkbar_len {
            self.remove_stack_barrier(prog, i, sig)?;
        }
        self.counters.removed += n as u64;
        self.stkbar_pos = 0;
        self.stkbar_len = 0;
        self.clear_watermark();
        Ok(n)
    }

    /// Restores barrier `i`'s return PC (Go's `gcRemoveStackBarrier`); the slot must still hold the
    /// trampoline's PC. The entry stays recorded: the caller retires it after the boundary.
    fn remove_stack_barrier(
        &mut self,
        prog: &Program,
        i: usize,
        sig: &mut impl Signals,
    ) -> Result<(), StackError> {
        let bar = self.stack.stkbar(i);
        let found = self.stack.read(bar.saved_lr_ptr);
        if found != Some(prog.stack_barrier_pc().0) {
            let found = found.map_or("an address outside the stack".into(), |v| format!("{v:#x}"));
            return Err(self.barrier_lost(format!(
                "at *{} expected stack barrier PC {}, found {found}",
                bar.saved_lr_ptr,
                prog.stack_barrier_pc()
            )));
        }
        self.stack.write(bar.saved_lr_ptr, bar.saved_lr_val.0);
        sig.boundary(self, MidOp::BarrierRemove);
        Ok(())
    }

    /// Marks every barrier whose slot lies below `sp` as hit and restores its return PC (Go's
    /// `gcUnwindBarriers`). Called before a multi-frame unwind to `sp`, and before the runtime
    /// writes into the stack at `sp` without a pointer bitmap, so the re-scan covers what changes.
    /// Returns how many barriers were passed.
    pub fn unwind_barriers(&mut self, prog: &Program, sp: Addr) -> Result<usize, StackError> {
        self.unwind_barriers_with_signals(prog, sp, &mut NoSignals)
    }

    /// [`GStack::unwind_barriers`] on a goroutine's own M, where a signal may land between the
    /// stores of each restoration.
    pub fn unwind_barriers_with_signals(
        &mut self,
        prog: &Program,
        sp: Addr,
        sig: &mut impl Signals,
    ) -> Result<usize, StackError> {
        self.with_stack_lock(|gs| {
            let before = gs.stkbar_pos;
            while gs.stkbar_pos < gs.stkbar_len && gs.stack.stkbar(gs.stkbar_pos).saved_lr_ptr < sp
            {
                gs.remove_stack_barrier(prog, gs.stkbar_pos, sig)?;
                gs.stkbar_pos += 1;
                gs.counters.unwound += 1;
            }
            if gs.stkbar_pos == gs.stkbar_len {
                gs.clear_watermark();
            }
            Ok(gs.stkbar_pos - before)
        })
    }

    /// The trampoline (Go's `stackBarrier`): a return has just popped a frame and landed on the
    /// barrier PC with the SP at `sp`. Checks that `stkbar[stkbar_pos]` names the slot just popped
    /// (`saved_lr_ptr + 8 == sp`), records the hit and returns the PC to continue at. Takes no lock.
    #[inline]
    pub fn stack_barrier_hit(&mut self, sp: Addr) -> Result<Pc, StackError> {
        if self.stkbar_pos < self.stkbar_len {
            let bar = self.stack.stkbar(self.stkbar_pos);
            if bar.saved_lr_ptr.add(WORD) == sp {
                self.stkbar_pos += 1;
                self.counters.hit += 1;
                return Ok(bar.saved_lr_val);
            }
        }
        Err(self.barrier_lost(format!(
            "a return to the stack barrier at sp={sp} does not match stkbar[{}]",
            self.stkbar_pos
        )))
    }

    /// The stkbar array in Go's `gcPrintStkbars` notation: `[*slot=pc …]`, `@@@ ` before the lowest
    /// un-hit barrier, and `==> ` before entry `marker` if given.
    pub fn stkbars_string(&self, marker: Option<usize>) -> String {
        let mut s = String::from("[");
        for (i, b) in self.stkbar().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            if i == self.stkbar_pos {
                s.push_str("@@@ ");
            }
            if Some(i) == marker {
                s.push_str("==> ");
            }
            s.push_str(&format!("*{}={}", b.saved_lr_ptr, b.saved_lr_val));
        }
        if self.stkbar_pos == self.stkbar_len {
            s.push_str(" @@@");
        }
        if marker == Some(self.stkbar_len) {
            s.push_str(" ==>");
        }
        s.push(']');
        s
    }

    pub(crate) fn barrier_lost(&self, detail: String) -> StackError {
        StackError::StackBarrierLost {
            stack: self.id(),
            detail,
            stkbars: self.stkbars_string(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::call::Ret;
    use crate::code::FuncId;
    use crate::scan::{ScanKind, scanstack};
    use crate::testutil::{
        barriered_frames, f, goroutine, live_words, mark, pool, program, three_frames,
    };

    /// The return-PC slots of the barriers, as offsets above `sp`.
    fn barrier_offsets(gs: &GStack, sp: Addr) -> Vec<usize> {
        gs.stkbar()
            .skip(gs.stkbar_pos())
            .map(|b| b.saved_lr_ptr.offset_from(sp))
            .collect()
    }

    fn chain_of(prog: &Program, name: &str, n: usize) -> Vec<FuncId> {
        vec![f(prog, name); n]
    }

    #[test]
    fn barriers_go_at_first_offset_times_powers_of_two() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::On { first_offset: 256 });
        // 200 frames of 32 bytes: frame i is [sp+32i, sp+32i+32), its slot at sp+32i+24.
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.leaf", 200));
        let sp0 = gs.sp();
        assert_eq!(
            mark(&prog, &mut gs, StackBarrierMode::On { first_offset: 256 }),
            5
        );
        // First slots at or above 256, 512, 1024, 2048, 4096: frames 8, 16, 32, 64, 128.
        assert_eq!(barrier_offsets(&gs, sp0), vec![280, 536, 1048, 2072, 4120]);
        assert_eq!(gs.counters().installed, 5);
        for b in gs.stkbar() {
            assert_eq!(gs.read(b.saved_lr_ptr).unwrap(), prog.stack_barrier_pc().0);
            assert_eq!(prog.findfunc(b.saved_lr_val), Some(f(&prog, "main.leaf")));
        }
    }

    #[test]
    fn offset_zero_puts_a_barrier_on_every_frame_but_the_running_one() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 30));
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 29);
        let sp0 = gs.sp();
        // Frame i is [64i, 64i+64) above the SP, its slot at 64i+56: frames 1 to 29, the
        // outermost (29, slot hi-8) included.
        let want: Vec<usize> = (1..30).map(|i| 64 * i + 56).collect();
        assert_eq!(barrier_offsets(&gs, sp0), want);
        assert_eq!(sp0.add(64 * 29 + 56), gs.stack().hi().sub(8));
    }

    #[test]
    fn frame_zero_never_gets_a_barrier() {
        let prog = program();
        let (big, mid, tiny) = (
            f(&prog, "main.big"),
            f(&prog, "main.mid"),
            f(&prog, "main.tiny"),
        );
        let mut every = pool(StackBarrierMode::EVERY_FRAME);
        // A lone frame is the running one: nothing, even with a barrier on every frame.
        let mut gs = goroutine(&prog, &mut every, &[big]);
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 0);
        assert_eq!(gs.rescan_limit(), None);
        // Two frames: only the outer one (tiny [0, 16), big [16, 1040) with its slot at 1032).
        let mut gs = goroutine(&prog, &mut every, &[big, tiny]);
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 1);
        let sp0 = gs.sp();
        assert_eq!(barrier_offsets(&gs, sp0), vec![1032]);
        assert_eq!(barriered_frames(&prog, &gs), 1);
        assert_eq!(gs.frames(&prog).next().unwrap().unwrap().stkbar, None);
        // Frame 0 alone crosses the offset (big [0, 1024), its slot at 1016 >= 512): the first
        // barrier goes on frame 1 (mid [1024, 1088), slot 1080), the next on the first slot at or
        // above 1024 after it (mid [1088, 1152), slot 1144).
        let mode = StackBarrierMode::On { first_offset: 512 };
        let mut pool = pool(mode);
        let mut gs = goroutine(&prog, &mut pool, &[mid, mid, big]);
        assert_eq!(mark(&prog, &mut gs, mode), 2);
        let sp0 = gs.sp();
        assert_eq!(barrier_offsets(&gs, sp0), vec![1080, 1144]);
        assert_eq!(gs.rescan_limit(), Some(sp0.add(1080)));
    }

    #[test]
    fn the_outermost_user_frame_gets_a_barrier_when_it_crosses_the_offset() {
        let prog = program();
        let (big, tiny) = (f(&prog, "main.big"), f(&prog, "main.tiny"));
        let mode = StackBarrierMode::On { first_offset: 512 };
        let mut pool = pool(mode);
        // tiny [0, 16), then the outermost big [16, 1040) with its slot at 1032 >= 512.
        let mut gs = goroutine(&prog, &mut pool, &[big, tiny]);
        assert_eq!(mark(&prog, &mut gs, mode), 1);
        let hi = gs.stack().hi();
        let bar = gs.stkbar().next().unwrap();
        assert_eq!(bar.saved_lr_ptr, hi.sub(8));
        assert_eq!(bar.saved_lr_val, prog.goexit_return_pc());
        assert_eq!(gs.read(hi.sub(8)).unwrap(), prog.stack_barrier_pc().0);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        assert_eq!(frames[1].stkbar, Some(0));
        assert_eq!(frames[1].lr, prog.goexit_return_pc(), "seen through");

        // The goroutine's final return goes through the trampoline and exits; a profiling signal
        // inside the trampoline sees an empty stack, before and after stkbar_pos moves.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        let mut seen = Vec::new();
        let mut sig = |gs: &GStack, _: crate::signal::MidOp| {
            assert_eq!((gs.pc(), gs.sp()), (prog.stack_barrier_pc(), hi));
            let walk: Result<Vec<_>, _> = gs.frames(&prog).collect();
            seen.push((gs.stkbar_pos(), walk.map(|w| w.len()).ok()));
        };
        assert_eq!(gs.ret_with_signals(&prog, &mut sig).unwrap(), Ret::Exited);
        assert_eq!(seen, [(0, Some(0)), (1, Some(0))]);
        assert_eq!((gs.pc(), gs.sp()), (prog.goexit_return_pc(), hi));
        assert!(gs.is_empty());
        assert_eq!(gs.rescan_limit(), None);
        let c = gs.counters();
        assert_eq!((c.installed, c.hit, c.unwound, c.removed), (1, 1, 0, 0));

        // With a barrier on every frame, two 16-byte frames get one: on the outermost frame, not
        // on the running one as before.
        let mut every = crate::testutil::pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut every, &[tiny, tiny]);
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 1);
        assert_eq!(gs.rescan_limit(), Some(gs.stack().hi().sub(8)));
    }

    #[test]
    fn unwind_barriers_at_goroutine_exit_passes_the_outermost_barrier() {
        // A goroutine that exits with frames left (the runtime's goexit from a deep frame) passes
        // every barrier, the outermost frame's included, with unwind_barriers(hi).
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 4));
        let before = live_words(&gs);
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 3);
        let hi = gs.stack().hi();
        // Frames 1, 2, 3 at [64, 128), [128, 192), [192, 256) above the SP, hi = SP + 256.
        assert_eq!(gs.rescan_limit(), Some(hi.sub(256 - 120)));
        assert_eq!(gs.stkbar().last().unwrap().saved_lr_ptr, hi.sub(8));
        assert_eq!(gs.unwind_barriers(&prog, hi).unwrap(), 3);
        assert_eq!(gs.stkbar_pos(), gs.stkbar_len());
        assert_eq!(live_words(&gs), before, "every slot restored, goexit's too");
        let c = gs.counters();
        assert_eq!((c.installed, c.hit, c.unwound, c.removed), (3, 0, 3, 0));
    }

    #[test]
    fn off_reserves_the_array_go_reserves() {
        let prog = program();
        let mut off = pool(StackBarrierMode::Off);
        let mut go = pool(StackBarrierMode::GO);
        for n in [2048, 4096, 8192, 1 << 20, 1 << 30] {
            assert_eq!(
                StackBarrierMode::Off.max_stack_barriers(n),
                max_stack_barriers(n, FIRST_STACK_BARRIER_OFFSET)
            );
            assert_eq!(off.stkbar_cap(n), go.stkbar_cap(n));
            assert_eq!(off.usable_size(n), go.usable_size(n));
        }
        // 30 frames of 64 bytes: 2 KiB (2016 usable) stops at 21 frames (its SP 672 above lo), so
        // the stack grows to 4 KiB with 3 entries.
        let mut gs = goroutine(&prog, &mut off, &chain_of(&prog, "main.mid", 30));
        assert_eq!(gs.stack().alloc_size(), 4096);
        assert_eq!(gs.stack().stkbar_cap(), 3);
        assert_eq!(gs.stack().usable(), 4096 - 3 * 16);
        assert_eq!(off.stats().stkbar_reserved_bytes, 48);
        // ...and installs nothing.
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::Off), 0);
        assert_eq!(gs.rescan_limit(), None);
        // The same stack under Go's pool is laid out the same, and a scan in Go's mode puts its
        // one barrier on the first slot at or above 1024 (frame 16, slot 1080).
        let mut twin = goroutine(&prog, &mut go, &chain_of(&prog, "main.mid", 30));
        assert_eq!(twin.stack().usable(), gs.stack().usable());
        assert_eq!(mark(&prog, &mut twin, StackBarrierMode::GO), 1);
        assert_eq!(barrier_offsets(&twin, twin.sp()), vec![1080]);
    }

    #[test]
    fn installation_stops_when_the_stkbar_array_is_full() {
        let prog = program();
        // A pool sized for offset 4096 gives a 4 KiB stack a single entry (60 frames of 32 bytes
        // outgrow 2 KiB at 42: its SP would be 720 above lo)...
        let mut pool = pool(StackBarrierMode::On { first_offset: 4096 });
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.leaf", 60));
        let cap = gs.stack().stkbar_cap();
        assert_eq!(cap, 1);
        assert_eq!(gs.stack().alloc_size(), 4096);
        // ...so a scan that would put one on every frame installs exactly one, on frame 1.
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), cap);
        assert_eq!(gs.rescan_limit(), Some(gs.sp().add(32 + 24)));
        assert_eq!(gs.stkbar_len(), cap);
        assert_eq!(barriered_frames(&prog, &gs), cap);
    }

    #[test]
    fn a_return_through_a_barrier_hits_it_and_continues_at_the_saved_pc() {
        let prog = program();
        // tiny (running, no barrier) → leaf → mid (outermost): barriers on leaf and mid.
        let (_pool, mut gs) = three_frames(&prog, StackBarrierMode::EVERY_FRAME);
        assert_eq!(mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME), 2);
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        assert_eq!(gs.stkbar_pos(), 0);
        let saved = gs.stkbar().next().unwrap().saved_lr_val;
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
        assert_eq!(gs.pc(), saved);
        assert_eq!(gs.stkbar_pos(), 1);
        assert_eq!(gs.rescan_limit(), Some(gs.stack().hi().sub(8)));
        // The outermost frame's barrier: hit, continuing at goexit + 1, which exits.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Exited);
        assert_eq!(gs.pc(), prog.goexit_return_pc());
        assert_eq!(gs.stkbar_pos(), 2);
        assert_eq!(gs.rescan_limit(), None, "every barrier hit: re-scan all");
        let c = gs.counters();
        assert_eq!((c.installed, c.hit, c.unwound, c.removed), (2, 2, 0, 0));
    }

    #[test]
    fn a_hit_that_does_not_match_stkbar_pos_is_a_lost_barrier() {
        let prog = program();
        let (_pool, mut gs) = three_frames(&prog, StackBarrierMode::EVERY_FRAME);
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        let err = gs.stack_barrier_hit(gs.sp()).unwrap_err();
        assert!(matches!(err, StackError::StackBarrierLost { .. }), "{err}");
        // A stkbar_pos pointing at the wrong entry makes the next return through a barrier
        // (leaf's, after tiny's plain return) fail the same way.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        gs.stkbar_pos = 1;
        let err = gs.ret(&prog).unwrap_err();
        assert!(err.to_string().contains("stack barrier lost"), "{err}");
        assert!(err.to_string().contains(&gs.id().to_string()));
    }

    #[test]
    fn removal_restores_the_stack_byte_for_byte() {
        let prog = program();
        for mode in [
            StackBarrierMode::EVERY_FRAME,
            StackBarrierMode::On { first_offset: 64 },
        ] {
            let mut pool = pool(mode);
            let chain: Vec<_> = (0..40).map(|i| prog.user_func(i).unwrap()).collect();
            let mut gs = goroutine(&prog, &mut pool, &chain);
            let before = live_words(&gs);
            let n = mark(&prog, &mut gs, mode);
            assert!(n > 2);
            assert_ne!(live_words(&gs), before);
            // Frame 0 (tiny) never has a barrier; frame 1 (big, its slot 1032 above the SP) has
            // one in both modes.
            assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
            assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
            let twin_before: Vec<u64> = before[before.len() - live_words(&gs).len()..].to_vec();
            assert_eq!(
                gs.remove_stack_barriers(&prog).unwrap(),
                n - gs.counters().hit as usize
            );
            assert_eq!(live_words(&gs), twin_before);
            assert_eq!((gs.stkbar_len(), gs.stkbar_pos()), (0, 0));
            let c = gs.counters();
            assert_eq!(c.installed, c.hit + c.unwound + c.removed);
        }
    }

    #[test]
    fn removal_of_an_overwritten_barrier_is_a_lost_barrier() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 5));
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        let slot = gs.stkbar().nth(2).unwrap().saved_lr_ptr;
        gs.write(slot, 0x1234).unwrap();
        let err = gs.remove_stack_barriers(&prog).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("at *{slot} expected stack barrier PC"))
                && msg.contains("found 0x1234"),
            "{msg}"
        );
        assert!(
            !gs.stack_barrier_lock().is_locked(),
            "the lock is released on the error path"
        );
    }

    #[test]
    fn unwind_barriers_marks_everything_below_sp_hit() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 10));
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        let slots: Vec<Addr> = gs.stkbar().map(|b| b.saved_lr_ptr).collect();
        // Unwinding to just above the fourth slot passes four barriers.
        assert_eq!(gs.unwind_barriers(&prog, slots[3].add(8)).unwrap(), 4);
        assert_eq!(gs.stkbar_pos(), 4);
        assert_eq!(gs.rescan_limit(), Some(slots[4]));
        for &s in &slots[..4] {
            assert_ne!(gs.read(s).unwrap(), prog.stack_barrier_pc().0, "restored");
        }
        assert_eq!(
            gs.unwind_barriers(&prog, slots[3].add(8)).unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(gs.counters().unwound, 4);
    }

    #[test]
    fn a_new_scan_removes_stale_barriers_first() {
        let prog = program();
        let mode = StackBarrierMode::On { first_offset: 128 };
        let mut pool = pool(mode);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 40));
        let first = mark(&prog, &mut gs, mode);
        let stats = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
        assert_eq!(stats.stale_barriers_removed, first);
        assert_eq!(
            stats.barriers_installed, first,
            "same stack, same placement"
        );
        assert_eq!(gs.counters().removed, first as u64);
        assert_eq!(barriered_frames(&prog, &gs), first);
    }

    #[test]
    fn stkbars_string_uses_go_notation() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 3));
        assert_eq!(gs.stkbars_string(None), "[ @@@]");
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        assert_eq!(gs.stkbar_len(), 2, "frames 1 and 2");
        gs.ret(&prog).unwrap();
        assert!(
            gs.stkbars_string(None).starts_with("[@@@ *"),
            "a plain return hits nothing"
        );
        gs.ret(&prog).unwrap();
        let s = gs.stkbars_string(Some(0));
        let b: Vec<Stkbar> = gs.stkbar().collect();
        assert_eq!(
            s,
            format!(
                "[==> *{}={} @@@ *{}={}]",
                b[0].saved_lr_ptr, b[0].saved_lr_val, b[1].saved_lr_ptr, b[1].saved_lr_val
            )
        );
    }

    #[test]
    fn barrier_operations_wait_for_a_profiler_holding_the_lock() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let mut gs = goroutine(&prog, &mut pool, &chain_of(&prog, "main.mid", 3));
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        let lock = gs.stack_barrier_lock();
        let released = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = {
            let (lock, released) = (Arc::clone(&lock), Arc::clone(&released));
            std::thread::spawn(move || {
                let guard = lock.try_lock().expect("free");
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
                released.store(true, Ordering::SeqCst);
                drop(guard);
            })
        };
        rx.recv().unwrap();
        gs.remove_stack_barriers(&prog).unwrap();
        assert!(
            released.load(Ordering::SeqCst),
            "removal ran only after the holder released the lock"
        );
        holder.join().unwrap();
        assert!(!lock.is_locked());
    }

    #[test]
    fn mode_display_and_reservation() {
        assert_eq!(StackBarrierMode::Off.to_string(), "off");
        assert_eq!(StackBarrierMode::EVERY_FRAME.to_string(), "all");
        assert_eq!(StackBarrierMode::GO.to_string(), "1024");
        assert_eq!(StackBarrierMode::Off.max_stack_barriers(1 << 20), 11);
        assert_eq!(
            StackBarrierMode::GO,
            StackBarrierMode::On {
                first_offset: FIRST_STACK_BARRIER_OFFSET
            }
        );
        assert_eq!(FIRST_STACK_BARRIER_OFFSET, 1024);
        assert_eq!(
            StackBarrierMode::GO.max_stack_barriers(8192),
            max_stack_barriers(8192, 1024)
        );
    }
}
