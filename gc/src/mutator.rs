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

/// A count `n` that operands are taken modulo (an object's pointer fields; a frame's slot
/// operands are resolved ahead, `Runtime::operand_words`), with its reciprocal precomputed:
/// `rem` is two multiplications, not a division (Lemire, Kaser and Kurz, "Faster remainder by
/// direct computation", 2019; exact for every 32-bit operand). A division's latency was a third
/// of the interpreter's time on a field load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    n: u32,
    /// `⌈2^64 / n⌉` modulo 2^64 (0 for n = 1, which makes every remainder 0, as it must be).
    m: u64,
}

impl Modulus {
    /// Remainders modulo `n` (`n = 0`: nothing to index; [`Modulus::rem`] must not be called).
    pub const fn new(n: u32) -> Modulus {
        Modulus {
            n,
            m: if n == 0 {
                0
            } else {
                (u64::MAX / n as u64).wrapping_add(1)
            },
        }
    }

    /// `n`.
    #[inline]
    pub const fn n(self) -> u32 {
        self.n
    }

    /// `a mod n`.
    #[inline]
    pub const fn rem(self, a: u32) -> u32 {
        let low = self.m.wrapping_mul(a as u64);
        ((low as u128 * self.n as u128) >> 64) as u32
    }
}

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

#[cfg(test)]
mod modulus_tests {
    use super::Modulus;

    #[test]
    fn rem_is_the_remainder_for_every_small_count_and_operand() {
        for n in 1..=600u32 {
            let m = Modulus::new(n);
            for a in (0..=1_000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31, 123_456_789]) {
                assert_eq!(m.rem(a), a % n, "{a} mod {n}");
            }
        }
        for n in [u32::MAX, u32::MAX - 1, 1 << 31, 65_537] {
            for a in [0, 1, n - 1, n.wrapping_add(1), u32::MAX] {
                assert_eq!(Modulus::new(n).rem(a), a % n, "{a} mod {n}");
            }
        }
    }
}
