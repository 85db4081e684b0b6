//! Simulated addresses and program counters.
//!
//! Invariant: every quantity the collector reads off a stack is one of two kinds, and the type system
//! keeps them apart. An [`Addr`] names a byte in the simulated address space (a stack slot, a heap
//! object, a global); a [`Pc`] names a byte in the simulated text segment (a function entry, a return
//! address). Both are 64-bit words on the simulated machine, so a stack slot holds a raw `u64` and the
//! code that reads it decides — from a pointer map or a frame layout — which of the two it is.
//!
//! All address arithmetic lives here: adding a byte count, the distance between two addresses, and
//! the word index of an address within a region. Stacks are arrays of 8-byte words, so word alignment
//! is checked once, in [`Addr::word_index_from`], rather than at every use.

use std::fmt;

/// Bytes in one machine word (a stack slot, a return PC, a pointer).
pub const WORD: usize = 8;

/// A simulated data address: a stack slot, a heap object or a global.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Addr(pub u64);

/// A simulated code address in the text segment: a function entry or a return address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pc(pub u64);

impl Addr {
    /// The address `bytes` above `self`.
    #[inline]
    pub const fn add(self, bytes: usize) -> Addr {
        Addr(self.0 + bytes as u64)
    }

    /// The address `bytes` below `self`.
    #[inline]
    pub const fn sub(self, bytes: usize) -> Addr {
        Addr(self.0 - bytes as u64)
    }

    /// `self - base` in bytes; `self` must not lie below `base`.
    #[inline]
    pub const fn offset_from(self, base: Addr) -> usize {
        (self.0 - base.0) as usize
    }

    /// The address moved by a signed byte delta (copystack's relocation).
    #[inline]
    pub const fn shifted(self, delta: i64) -> Addr {
        Addr(self.0.wrapping_add_signed(delta))
    }

    /// The signed distance `self - other` in bytes.
    #[inline]
    pub const fn delta_from(self, other: Addr) -> i64 {
        self.0.wrapping_sub(other.0) as i64
    }

    /// Index of the word at `self` in a word array starting at `base`, if `self` is word-aligned and
    /// not below `base`.
    #[inline]
    pub const fn word_index_from(self, base: Addr) -> Option<usize> {
        if self.0 < base.0 || !(self.0 - base.0).is_multiple_of(WORD as u64) {
            None
        } else {
            Some(((self.0 - base.0) / WORD as u64) as usize)
        }
    }

    /// Whether `self` is a multiple of the word size.
    #[inline]
    pub const fn is_word_aligned(self) -> bool {
        self.0.is_multiple_of(WORD as u64)
    }
}

impl Pc {
    /// The PC `bytes` above `self`.
    #[inline]
    pub const fn add(self, bytes: u64) -> Pc {
        Pc(self.0 + bytes)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for Pc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pc:{:#x}", self.0)
    }
}

/// Values below this are never valid pointers (Go's `_PageSize` test in `invalidptr`).
pub const MIN_VALID_POINTER: u64 = 4096;
/// Go's `poisonStack`: a value no pointer slot may hold.
pub const POISON_STACK: u64 = 0x6868_6868_6868_6868;
/// Go's `poisonGC`: a value no pointer slot may hold.
pub const POISON_GC: u64 = 0xf969_6969_6969_6969;

/// Why `v`, found in a pointer slot, cannot be a pointer — Go's test in `adjustpointers`: a
/// value in the first page (with `invalidptr`) or a poison value (always); `None` if it may be.
#[inline]
pub fn bad_pointer_value(v: u64, invalidptr: bool) -> Option<&'static str> {
    if v == POISON_STACK || v == POISON_GC {
        Some("a poison value (junk in a pointer slot: is the pointer map wrong?)")
    } else if invalidptr && v != 0 && v < MIN_VALID_POINTER {
        Some("a pointer into the first page")
    } else {
        None
    }
}

impl fmt::Display for Pc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_index_rejects_misaligned_and_below_base() {
        let base = Addr(0x1000);
        assert_eq!(Addr(0x1010).word_index_from(base), Some(2));
        assert_eq!(Addr(0x1004).word_index_from(base), None);
        assert_eq!(Addr(0x0ff8).word_index_from(base), None);
    }

    #[test]
    fn shifted_round_trips_with_delta_from() {
        let old = Addr(0xc8_0000_4000);
        let new = Addr(0xc8_0001_0000);
        let d = new.delta_from(old);
        assert_eq!(old.shifted(d), new);
        assert_eq!(new.shifted(-d), old);
    }
}
