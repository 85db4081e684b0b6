//! Moving a goroutine stack: growth (`newstack`), shrinking (`shrinkstack`), and the move itself
//! (`copystack`), with the stkbar array migrated (Go's `adjuststkbar`).
//!
//! Invariant: after a move the goroutine cannot tell it happened. Its frames, return PCs and stack
//! barriers are the same, at addresses shifted by `delta = new.hi - old.hi`; every pointer slot that
//! pointed into the old stack (a `&local` passed down to an inner frame) points to the same word of
//! the new one; heap pointers and scalars are unchanged (the GC is precise, so a scalar that happens to
//! look like a stack address is left alone); and barriers installed before the move are still hit by
//! the same returns after it.
//!
//! Algorithm (Go 1.7's `copystack`). Walk the old stack once with the unwinder, which both checks it
//! and lists the pointer slots whose values lie in `[old.lo, old.hi)`. Allocate the new stack (with
//! its own, size-determined stkbar array), copy the used part `[sp, hi)` to the top of the new usable
//! stack, add `delta` to each listed slot, copy the stkbar entries and add `delta` to the
//! `saved_lr_ptr` of every entry not yet hit (hit entries name popped slots; Go leaves them as they
//! were), then switch the goroutine to the new stack and free the old one. Return PCs, barrier PCs
//! among them, are code addresses and are copied verbatim: the return-address chain of an amd64 stack
//! holds nothing to relocate. The move holds the stack-barrier lock, so a profiler never sees the
//! stkbar array half migrated.
//!
//! Sizes. `newstack` doubles the allocation until the frame being pushed fits (each doubling is one
//! trip through Go's `morestack`; the copy is done once) and fails past the pool's maximum.
//! `shrinkstack` halves a stack using less than a quarter of it (Go 1.7), but never below
//! `FIXED_STACK`, and never to a size whose stkbar array could not hold the barriers recorded.

use crate::addr::Addr;
use crate::code::Program;
use crate::error::StackError;
use crate::scan::scan_frames;
use crate::stack::{FIXED_STACK, GStack, StackPool};

impl GStack {
    /// Moves the goroutine to a fresh stack of `new_size` bytes from `pool`.
    pub fn copystack(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        new_size: usize,
    ) -> Result<(), StackError> {
        let used = self.used();
        let (usable, cap) = (pool.usable_size(new_size), pool.stkbar_cap(new_size));
        if used > usable || self.stkbar_len > cap {
            return Err(StackError::StackTooSmall {
                stack: self.id(),
                new_size,
                used,
                need_usable: used,
                usable,
                stkbars: self.stkbar_len,
                cap,
            });
        }
        let (old_lo, old_hi, old_sp) = (self.stack.lo(), self.stack.hi(), self.sp());
        // Pointer slots into the old stack, found by one checked walk (adjustpointers).
        let mut in_stack: Vec<(Addr, u64)> = Vec::new();
        scan_frames(
            prog,
            self,
            None,
            |_| {},
            |slot, v| {
                if (old_lo.0..old_hi.0).contains(&v) {
                    in_stack.push((slot, v));
                }
            },
        )?;
        let mut new = pool.stackalloc(new_size)?;
        let delta = new.hi().delta_from(old_hi);
        let new_sp = old_sp.shifted(delta);
        new.words_mut(new_sp, new.hi())
            .expect("used fits the new usable stack")
            .copy_from_slice(self.stack.words(old_sp, old_hi).expect("the live stack"));
        for (slot, v) in in_stack {
            new.write(slot.shifted(delta), Addr(v).shifted(delta).0);
        }
        self.with_stack_lock(|gs| {
            // adjuststkbar: entries not yet hit name live slots, which moved.
            for i in 0..gs.stkbar_len {
                let mut bar = gs.stack.stkbar(i);
                if i >= gs.stkbar_pos {
                    bar.saved_lr_ptr = bar.saved_lr_ptr.shifted(delta);
                }
                new.set_stkbar(i, bar);
            }
            let old = std::mem::replace(&mut gs.stack, new);
            gs.sched.sp = new_sp;
            pool.stackfree(old);
        });
        Ok(())
    }

    /// Grows the stack so that `needed` more bytes fit below the SP (Go's `newstack`, reached from
    /// `morestack`). Returns the new allocation size.
    pub fn newstack(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        needed: usize,
    ) -> Result<usize, StackError> {
        let want = self.used() + needed;
        let mut size = self.stack.alloc_size();
        while pool.usable_size(size) < want || pool.stkbar_cap(size) < self.stkbar_len {
            size = match size.checked_mul(2) {
                Some(s) if s <= pool.max_stack_size() => s,
                _ => {
                    return Err(StackError::StackOverflow {
                        stack: self.id(),
                        needed: size.saturating_mul(2),
                        max: pool.max_stack_size(),
                    });
                }
            };
        }
        self.copystack(pool, prog, size)?;
        Ok(size)
    }

    /// Halves the stack if it uses less than a quarter of it (Go 1.7's `shrinkstack`), keeping room
    /// for the recorded barriers. Returns whether it moved.
    pub fn shrinkstack(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
    ) -> Result<bool, StackError> {
        let new_size = self.stack.alloc_size() / 2;
        if new_size < FIXED_STACK
            || self.used() >= self.stack.usable() / 4
            || self.used() > pool.usable_size(new_size)
            || self.stkbar_len > pool.stkbar_cap(new_size)
        {
            return Ok(false);
        }
        self.copystack(pool, prog, new_size)?;
        Ok(true)
    }
}
