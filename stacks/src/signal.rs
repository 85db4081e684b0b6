//! Asynchronous signals in the middle of stack-barrier operations (seed 003's problem, for stack
//! barriers).
//!
//! Invariant: every operation of this crate that changes a stack barrier in more than one store —
//! installing one, returning through one, restoring one (removal and `gcUnwindBarriers`) — calls
//! [`Signals::boundary`] between its stores, with the stack exactly as those stores have left it.
//! A profiling signal can land there, as a real `SIGPROF` can land between any two instructions;
//! the handler then sees a stkbar array that disagrees with the return-PC slots, or a PC inside the
//! `stackBarrier` trampoline. What it may do with such a stack is the profiler's business (see
//! `gc::profile`); this crate only promises that the boundaries exist and say where they are.
//!
//! The steps, in order, each followed by a boundary:
//! * install (Go's `gcInstallStackBarrier`): record `(slot, return PC)` in the stkbar array and
//!   count it; then write the trampoline's PC over the slot;
//! * hit (the trampoline, Go's `stackBarrier`): the return pops the frame, leaving the SP just
//!   above the slot and the PC at the trampoline; `stkbar_pos` advances; the PC becomes the saved
//!   return PC (no boundary after the last step: the operation is over);
//! * restore (Go's `gcRemoveStackBarrier`, for removal and unwinding): write the saved PC back
//!   over the slot; then retire the entry;
//! * copystack (the one boundary that is not a barrier operation): once, under the lock, after the
//!   stkbar array has been migrated to the new stack and before the goroutine switches to it.
//!
//! Callers that no signal can interrupt (stop-the-world, a marker holding a stack, tests) pass
//! [`NoSignals`], which compiles to nothing.

use crate::stack::GStack;

/// Which multi-store operation a boundary is inside.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MidOp {
    /// Installing a barrier over a return-PC slot.
    BarrierInstall,
    /// Returning through a barrier (inside the trampoline).
    BarrierHit,
    /// Returning through a lazy scan's watermark, inside the handler, which holds the
    /// stack-barrier lock while it scans the frame returned into and moves the watermark.
    WatermarkHit,
    /// Restoring a barrier's return PC (removal, or an unwind past it).
    BarrierRemove,
    /// Moving the stack (`copystack`), under the stack-barrier lock: the stkbar array migrated,
    /// the goroutine not yet switched to the new stack.
    CopyStack,
}

impl MidOp {
    /// Whether this is a stack-barrier install, hit or removal.
    pub fn is_barrier(self) -> bool {
        !matches!(self, MidOp::CopyStack)
    }
}

/// Something that may interrupt a stack operation between two of its stores.
pub trait Signals {
    /// Called between two stores of operation `at` on `gs`, which is in the half-updated state
    /// those stores left.
    fn boundary(&mut self, gs: &GStack, at: MidOp);
}

/// No signal can arrive: the boundaries cost nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSignals;

impl Signals for NoSignals {
    #[inline(always)]
    fn boundary(&mut self, _gs: &GStack, _at: MidOp) {}
}

impl<F: FnMut(&GStack, MidOp)> Signals for F {
    #[inline]
    fn boundary(&mut self, gs: &GStack, at: MidOp) {
        self(gs, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::call::Ret;
    use crate::error::StackError;
    use crate::scan::{ScanKind, scanstack_with_signals};
    use crate::testutil::{f, goroutine, pool, program};

    /// What the unwinder makes of the stack at a boundary: the number of frames, or the error.
    fn walk(prog: &crate::code::Program, gs: &GStack) -> Result<usize, StackError> {
        gs.frames(prog).try_fold(0, |n, fr| fr.map(|_| n + 1))
    }

    #[test]
    fn every_barrier_operation_stops_between_its_stores() {
        // Six 32-byte frames, a barrier on every frame but the running one: five installs.
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let leaf = f(&prog, "main.leaf");
        let mut gs = goroutine(&prog, &mut pool, &[leaf; 6]);

        // Install: the first boundary of each install sees the entry recorded over a slot that
        // still holds the real return PC (a lost barrier to the unwinder); the second, a
        // consistent stack, with the stack-barrier lock held throughout.
        let lock = gs.stack_barrier_lock();
        let mut seen = Vec::new();
        let mut sig = |gs: &GStack, at: MidOp| {
            assert!(
                lock.is_locked(),
                "{at:?} happens under the stack-barrier lock"
            );
            seen.push((at, walk(&prog, gs).is_ok()));
        };
        scanstack_with_signals(&prog, &mut gs, ScanKind::Mark(mode), &mut sig, |_, _| {}).unwrap();
        let want: Vec<_> = (0..5)
            .flat_map(|_| {
                [
                    (MidOp::BarrierInstall, false),
                    (MidOp::BarrierInstall, true),
                ]
            })
            .collect();
        assert_eq!(seen, want);

        // Hit (frame 1's barrier, after frame 0's plain return): both boundaries are inside the
        // trampoline, the frame already popped; the unwinder repairs the start there, before and
        // after `stkbar_pos` advances, and sees 4 frames.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        let mut seen = Vec::new();
        let mut sig = |gs: &GStack, at: MidOp| {
            assert_eq!(gs.pc(), prog.stack_barrier_pc());
            seen.push((at, gs.stkbar_pos(), walk(&prog, gs).ok()));
        };
        let r = gs.ret_with_signals(&prog, &mut sig).unwrap();
        assert_eq!(r, Ret::Returned { hit_barrier: true });
        assert_eq!(
            seen,
            [
                (MidOp::BarrierHit, 0, Some(4)),
                (MidOp::BarrierHit, 1, Some(4))
            ]
        );

        // Removal (an unwind of three frames passes three barriers): each boundary sees a slot
        // restored while its entry is still un-hit, which the unwinder reports as a lost barrier.
        let mut seen = Vec::new();
        let mut sig = |gs: &GStack, at: MidOp| {
            seen.push((
                at,
                matches!(walk(&prog, gs), Err(StackError::StackBarrierLost { .. })),
            ));
        };
        assert_eq!(
            gs.unwind_frames_with_signals(&prog, 3, &mut sig).unwrap(),
            3
        );
        assert_eq!(seen, [(MidOp::BarrierRemove, true); 3]);
        assert_eq!(walk(&prog, &gs).unwrap(), 1);
    }
}
