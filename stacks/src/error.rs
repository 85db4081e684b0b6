//! Errors for inconsistent stacks.
//!
//! Invariant: no function of this crate panics on bad stack contents. Anything that reads a stack a
//! mutator or a bug may have scribbled on — the unwinder, the scanner, the barrier handlers,
//! copystack — returns a [`StackError`] instead, and every variant names the goroutine's stack
//! ([`StackId`]), the frame (its index counted from the innermost frame, and its SP) and the address
//! involved, the way Go's runtime prints `gp.stkbar` (`gcPrintStkbars`) before it throws "stack
//! barrier lost". The stkbar dump uses Go's notation: `*slot=savedPC` per barrier, with `@@@` before
//! the lowest barrier not yet hit.

use std::fmt;

use crate::addr::{Addr, Pc};

/// Which goroutine's stack an error concerns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StackId {
    /// The goroutine id.
    pub goid: u64,
    /// Lowest address of the usable stack.
    pub lo: Addr,
    /// One past the highest address of the usable stack (the stkbar array starts here).
    pub hi: Addr,
}

impl fmt::Display for StackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "goroutine {} stack [{}, {})",
            self.goid, self.lo, self.hi
        )
    }
}

/// An inconsistent stack, a stack-barrier protocol violation, or an impossible stack request.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StackError {
    /// A PC (current or return) outside every function.
    #[error("{stack}: frame {frame} at sp={sp}: pc {pc} is not in any function")]
    UnknownPc {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The frame's SP.
        sp: Addr,
        /// The PC.
        pc: Pc,
    },
    /// A PC inside a runtime function that has no frame on a goroutine stack.
    #[error(
        "{stack}: frame {frame} at sp={sp}: pc {pc} is in {func}, which has no frame on a goroutine stack"
    )]
    FramelessPc {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The frame's SP.
        sp: Addr,
        /// The PC.
        pc: Pc,
        /// The runtime function.
        func: Box<str>,
    },
    /// An SP outside the usable stack or not word-aligned.
    #[error("{stack}: frame {frame}: sp {sp} is outside the stack or not word-aligned")]
    BadSp {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The SP.
        sp: Addr,
    },
    /// A frame that would extend past the top of the usable stack.
    #[error("{stack}: frame {frame} of {func} at [{sp}, {fp}) runs past the stack top")]
    FramePastTop {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The function.
        func: Box<str>,
        /// The frame's SP.
        sp: Addr,
        /// The frame's end.
        fp: Addr,
    },
    /// The frame at the stack top does not return to `goexit`.
    #[error(
        "{stack}: frame {frame} of {func} at [{sp}, {fp}) is the outermost frame but returns to {lr}, not goexit"
    )]
    NoGoexit {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The function.
        func: Box<str>,
        /// The frame's SP.
        sp: Addr,
        /// The frame's end.
        fp: Addr,
        /// The return PC found.
        lr: Pc,
    },
    /// A frame below the stack top returns to `goexit`.
    #[error(
        "{stack}: frame {frame} of {func} at [{sp}, {fp}) returns to goexit below the stack top"
    )]
    EarlyGoexit {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The function.
        func: Box<str>,
        /// The frame's SP.
        sp: Addr,
        /// The frame's end.
        fp: Addr,
    },
    /// A return-PC slot holds the barrier PC but is not the next recorded barrier (Go's "missed
    /// stack barrier").
    #[error(
        "{stack}: frame {frame}: found a stack barrier at {slot}; expected gp.stkbar={stkbars}"
    )]
    MissedStackBarrier {
        /// The stack.
        stack: StackId,
        /// Frame index from the innermost frame.
        frame: usize,
        /// The return-PC slot holding the barrier PC.
        slot: Addr,
        /// The stkbar array, Go-style.
        stkbars: String,
    },
    /// A recorded barrier whose slot no longer holds the barrier PC, or a barrier hit that does not
    /// match `stkbar[stkbar_pos]` (Go's "stack barrier lost").
    #[error("{stack}: stack barrier lost: {detail}; gp.stkbar={stkbars}")]
    StackBarrierLost {
        /// The stack.
        stack: StackId,
        /// What was expected where, and what was found.
        detail: String,
        /// The stkbar array, Go-style.
        stkbars: String,
    },
    /// A traceback starting inside `stackBarrier` that matches neither side of the hit (Go's
    /// "inconsistent state in stackBarrier").
    #[error(
        "{stack}: inconsistent state in stackBarrier: cannot unwind through it at sp={sp}; gp.stkbar={stkbars}"
    )]
    InconsistentStackBarrier {
        /// The stack.
        stack: StackId,
        /// The SP at the trampoline.
        sp: Addr,
        /// The stkbar array, Go-style.
        stkbars: String,
    },
    /// An access outside the live part `[sp, hi)` of the stack.
    #[error("{stack}: address {addr} is outside the live stack [{sp}, {})", stack.hi)]
    BadAddress {
        /// The stack.
        stack: StackId,
        /// The address.
        addr: Addr,
        /// The current SP.
        sp: Addr,
    },
    /// A local-slot index outside the running frame's locals.
    #[error(
        "{stack}: frame 0 of {func} at sp={sp} has no local slot {slot} (its {words}-word frame ends in the return-PC slot)"
    )]
    BadLocal {
        /// The stack.
        stack: StackId,
        /// The running function.
        func: Box<str>,
        /// The frame's SP.
        sp: Addr,
        /// The slot asked for.
        slot: usize,
        /// Words in the frame.
        words: usize,
    },
    /// An operation that needs a frame on an empty stack, or a call to a runtime function.
    #[error("{stack}: {what}")]
    BadFrameOp {
        /// The stack.
        stack: StackId,
        /// What was attempted.
        what: String,
    },
    /// Stack growth beyond the pool's maximum stack size.
    #[error("{stack}: stack overflow: {needed} bytes needed, over the {max}-byte limit")]
    StackOverflow {
        /// The stack.
        stack: StackId,
        /// Allocation size that would be needed.
        needed: usize,
        /// The limit.
        max: usize,
    },
    /// A pointer slot holding a value no pointer can have, found by `copystack`'s walk (Go's
    /// `adjustpointers`: "invalid pointer found on stack").
    #[error(
        "{stack}: invalid pointer found on stack: slot {slot} of {func} holds {value:#x}, {why}"
    )]
    InvalidPointer {
        /// The stack.
        stack: StackId,
        /// The slot.
        slot: Addr,
        /// Its value.
        value: u64,
        /// The function whose frame holds the slot.
        func: Box<str>,
        /// What is wrong with the value.
        why: &'static str,
    },
    /// A stack too small for what a move must keep.
    #[error(
        "{stack}: cannot move to a {new_size}-byte stack: {used} bytes in use and {stkbars} stack barriers need {need_usable} usable bytes and {stkbars} stkbar entries, it has {usable} and {cap}"
    )]
    StackTooSmall {
        /// The stack.
        stack: StackId,
        /// The requested allocation size.
        new_size: usize,
        /// Bytes in use, `hi - sp`.
        used: usize,
        /// Usable bytes needed.
        need_usable: usize,
        /// Usable bytes of the new size.
        usable: usize,
        /// Barriers recorded.
        stkbars: usize,
        /// stkbar capacity of the new size.
        cap: usize,
    },
    /// A stack size that is not a power of two in the pool's range.
    #[error("bad stack size {size}: must be a power of two from {min} to {max} bytes")]
    BadStackSize {
        /// The size asked for.
        size: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The simulated stack segment has no room left.
    #[error("stack segment exhausted: no room for a {size}-byte stack")]
    OutOfStackSpace {
        /// The size asked for.
        size: usize,
    },
}
