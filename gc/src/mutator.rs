//! The mutator: goroutine behaviours and the interpreter that runs them one operation at a time.
//!
//! Invariant: every change a mutator makes to memory is one of the operations below, and each
//! keeps the contract the collector relies on (ARCHITECTURE.md §1): the running frame's own pointer slots are
//! written with no write barrier; every store into a heap object, a global, or an outer frame of the
//! same stack reached through `&local` goes through [`crate::Runtime::write_barrier`]; the runtime's
//! bulk writes into a stack and multi-frame unwinds pass the stack barriers below their target
//! first (`gcUnwindBarriers`); a pointer to a stack slot never escapes to the heap, a global or an
//! outer frame (Go's escape analysis). Operations name slots *by position among the running frame's
//! pointer slots* (and fields by position among the object's pointer fields), modulo their number,
//! so any behaviour runs on any program; an operation whose operand is nil or of the wrong kind does
//! nothing, as a real program's branch would skip it.
//!
//! A [`Behaviour`] is a goroutine's program: a seeded state machine that picks the next [`Op`]. Each
//! operation boundary is a safe point, where the scheduler may preempt, a marker may ask the
//! goroutine to scan its own stack (Go's `preemptscan`), and the world may stop.

use std::fmt;

use rand_xoshiro::Xoshiro256PlusPlus;
use stacks::FuncId;

use crate::heap::TypeId;

/// The random generator of goroutines and engines.
pub type Rng = Xoshiro256PlusPlus;

/// One mutator operation. Slot operands are indices among the running frame's pointer slots, field
/// operands indices among an object's pointer fields, both taken modulo their count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Call `func` from call site `site` of the running function; grows the stack (copystack) if
    /// the frame does not fit.
    Call {
        /// The callee.
        func: FuncId,
        /// The call site in the caller.
        site: u8,
    },
    /// Return from the running frame (through the stack-barrier trampoline if its return PC was
    /// replaced); returning from the outermost frame ends the goroutine.
    Ret,
    /// Allocate an object of type `ty` into local `dst`.
    Alloc {
        /// The type.
        ty: TypeId,
        /// Destination slot.
        dst: u8,
    },
    /// Local `dst` = local `src` (no write barrier).
    Copy {
        /// Source slot.
        src: u8,
        /// Destination slot.
        dst: u8,
    },
    /// Local `dst` = nil.
    Clear {
        /// Destination slot.
        dst: u8,
    },
    /// Local `dst` = field `field` of the object local `obj` points to.
    LoadField {
        /// Slot holding the object.
        obj: u8,
        /// Pointer field.
        field: u8,
        /// Destination slot.
        dst: u8,
    },
    /// Field `field` of the object local `obj` points to = local `src`, or nil (a delete);
    /// write-barriered.
    StoreField {
        /// Slot holding the object.
        obj: u8,
        /// Pointer field.
        field: u8,
        /// Source slot; `None` stores nil.
        src: Option<u8>,
    },
    /// Atomically swap field `field` of the object local `obj` points to with local `src` (or
    /// nil), the old value landing in local `dst` (Go's `atomic.SwapPointer`): write-barriered,
    /// its wbshadow copy left as `noShadow`, a synchronization event to the sanitizer.
    SwapField {
        /// Slot holding the object.
        obj: u8,
        /// Pointer field.
        field: u8,
        /// Source slot; `None` swaps in nil.
        src: Option<u8>,
        /// Destination slot for the old value.
        dst: u8,
    },
    /// Local `dst` = global `global` (modulo the number of globals).
    LoadGlobal {
        /// The global.
        global: u32,
        /// Destination slot.
        dst: u8,
    },
    /// Global `global` = local `src` or nil; write-barriered.
    StoreGlobal {
        /// The global.
        global: u32,
        /// Source slot; `None` stores nil.
        src: Option<u8>,
    },
    /// Local `dst` = the address of pointer slot `slot` of the frame `up` frames above the running
    /// one (Go's `&local` passed down a call chain).
    TakeAddr {
        /// Frames up, at least 1.
        up: u16,
        /// Pointer slot in that frame.
        slot: u8,
        /// Destination slot.
        dst: u8,
    },
    /// `*local[ptr] = local[src]` (or nil) where `local[ptr]` points into an outer frame: a store
    /// through an up-pointer, write-barriered.
    StoreThrough {
        /// Slot holding the stack address.
        ptr: u8,
        /// Source slot; `None` stores nil.
        src: Option<u8>,
    },
    /// The runtime copies local `src` to `*local[ptr]` in an outer frame with no pointer bitmap
    /// (Go's channel receive into `&local` through `typedmemmove`): no write barrier, but the
    /// stack barriers below the destination are passed first.
    BulkWrite {
        /// Slot holding the stack address.
        ptr: u8,
        /// Source slot.
        src: u8,
    },
    /// Pop `frames` frames at once (a recovered panic), passing their barriers; always leaves the
    /// outermost frame.
    Unwind {
        /// Frames to pop.
        frames: u16,
    },
    /// Start a new goroutine whose behaviour [`Behaviour::spawn`] supplies.
    Spawn,
    /// Go to the back of the run queue.
    Yield,
    /// Block until another goroutine wakes this one.
    Block,
    /// Wake one blocked goroutine (chosen by this goroutine's random stream), if any.
    Wake,
    /// End the goroutine (`runtime.Goexit`): its frames vanish, their barriers passed.
    Exit,
}

/// What a behaviour may look at when choosing its next operation.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Frames on the goroutine's stack.
    pub depth: usize,
}

/// A goroutine's program: picks the next operation. Implementations are deterministic given the
/// random stream.
pub trait Behaviour: Send + fmt::Debug {
    /// The next operation.
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op;

    /// The behaviour of a goroutine this one starts with [`Op::Spawn`]; `None` ignores the spawn.
    fn spawn(&mut self, rng: &mut Rng) -> Option<Box<dyn Behaviour>> {
        let _ = rng;
        None
    }
}
