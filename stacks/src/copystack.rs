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

use crate::addr::{Addr, bad_pointer_value};
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
        // Pointer slots into the old stack, found by one checked walk (adjustpointers), which
        // also refuses a slot holding a value no pointer can have.
        let mut in_stack: Vec<(Addr, u64)> = Vec::new();
        let func = std::cell::Cell::new(None);
        let mut bad = None;
        let invalidptr = pool.invalidptr();
        scan_frames(
            prog,
            self,
            None,
            |f| func.set(Some(f.func)),
            |slot, v| {
                if (old_lo.0..old_hi.0).contains(&v) {
                    in_stack.push((slot, v));
                } else if bad.is_none()
                    && let Some(why) = bad_pointer_value(v, invalidptr)
                {
                    bad = Some((slot, v, func.get(), why));
                }
            },
        )?;
        if let Some((slot, value, func, why)) = bad {
            return Err(StackError::InvalidPointer {
                stack: self.id(),
                slot,
                value,
                func: func.map_or("?".into(), |f| prog.func(f).name.clone()),
                why,
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::call::Ret;
    use crate::scan::{ScanKind, scanstack};
    use crate::stack::StackPool;
    use crate::testutil::{f, goroutine, pool, program};
    use crate::unwind::Frame;

    /// A goroutine whose `leaf` frames each hold, in slot 0, a pointer to slot 2 of the frame above
    /// (an up-pointer), in slot 2 a heap pointer that encodes the frame's distance from the stack
    /// top, and in slot 1 (a scalar) a value that looks like a stack address.
    fn linked(prog: &Program, pool: &mut StackPool, depth: usize) -> GStack {
        let leaf = f(prog, "main.leaf");
        let mut gs = goroutine(prog, pool, &vec![leaf; depth]);
        let frames: Vec<Frame> = gs.frames(prog).map(Result::unwrap).collect();
        for (i, fr) in frames.iter().enumerate() {
            let up = frames.get(i + 1).map_or(0, |above| above.sp.add(16).0);
            gs.write(fr.sp, up).unwrap();
            gs.write(fr.sp.add(8), fr.sp.0).unwrap();
            let heap = 0xc0_0000_0000 + gs.stack().hi().offset_from(fr.sp) as u64;
            gs.write(fr.sp.add(16), heap).unwrap();
        }
        gs
    }

    fn check_linked(prog: &Program, gs: &GStack) {
        let frames: Vec<Frame> = gs.frames(prog).map(Result::unwrap).collect();
        for (i, fr) in frames.iter().enumerate() {
            let up = frames.get(i + 1).map_or(0, |above| above.sp.add(16).0);
            assert_eq!(
                gs.read(fr.sp).unwrap(),
                up,
                "frame {i}: in-stack pointer adjusted"
            );
            let heap = 0xc0_0000_0000 + gs.stack().hi().offset_from(fr.sp) as u64;
            assert_eq!(
                gs.read(fr.sp.add(16)).unwrap(),
                heap,
                "frame {i}: heap pointer kept"
            );
        }
    }

    #[test]
    fn growing_keeps_frames_and_adjusts_in_stack_pointers_only() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = linked(&prog, &mut pool, 50);
        let before: Vec<_> = gs.traceback(&prog).unwrap();
        let old_sps: Vec<Addr> = gs.frames(&prog).map(|fr| fr.unwrap().sp).collect();
        let old_size = gs.stack().alloc_size();
        gs.copystack(&mut pool, &prog, old_size * 4).unwrap();
        assert_eq!(gs.stack().alloc_size(), old_size * 4);
        assert_eq!(gs.traceback(&prog).unwrap(), before);
        check_linked(&prog, &gs);
        // The scalar that looked like an old stack address is untouched.
        let fr = gs.frames(&prog).next().unwrap().unwrap();
        assert_eq!(gs.read(fr.sp.add(8)).unwrap(), old_sps[0].0);
        assert_eq!(pool.stats().stacks_in_use, 1, "the old stack was freed");
    }

    #[test]
    fn moving_migrates_barriers_and_they_still_hit() {
        let prog = program();
        let mode = StackBarrierMode::On { first_offset: 128 };
        let mut pool = pool(mode);
        let mut gs = linked(&prog, &mut pool, 60);
        scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
        // Hit the lowest two (slots at 152 and 280 above the SP: frames 4 and 8).
        for _ in 0..9 {
            gs.ret(&prog).unwrap();
        }
        assert_eq!(gs.stkbar_pos(), 2);
        let (old_len, old_pos) = (gs.stkbar_len(), gs.stkbar_pos());
        let old_unhit: Vec<usize> = gs
            .stkbar()
            .skip(old_pos)
            .map(|b| gs.stack().hi().offset_from(b.saved_lr_ptr))
            .collect();
        let old_hit: Vec<_> = gs.stkbar().take(old_pos).collect();
        gs.newstack(&mut pool, &prog, 8192).unwrap();
        assert_eq!((gs.stkbar_len(), gs.stkbar_pos()), (old_len, old_pos));
        let new_unhit: Vec<usize> = gs
            .stkbar()
            .skip(old_pos)
            .map(|b| gs.stack().hi().offset_from(b.saved_lr_ptr))
            .collect();
        assert_eq!(
            new_unhit, old_unhit,
            "un-hit barriers keep their distance from the top"
        );
        assert_eq!(
            gs.stkbar().take(old_pos).collect::<Vec<_>>(),
            old_hit,
            "hit ones are copied as they were"
        );
        check_linked(&prog, &gs);
        let mut hits = 0;
        while let Ret::Returned { hit_barrier } = gs.ret(&prog).unwrap() {
            hits += usize::from(hit_barrier);
        }
        assert_eq!(
            hits,
            old_len - old_pos,
            "every migrated barrier is hit by its return"
        );
    }

    #[test]
    fn shrinking_halves_a_mostly_empty_stack() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = linked(&prog, &mut pool, 200); // 6400 bytes: an 8 KiB stack
        assert_eq!(gs.stack().alloc_size(), 8192);
        assert!(
            !gs.shrinkstack(&mut pool, &prog).unwrap(),
            "uses more than a quarter"
        );
        for _ in 0..150 {
            gs.ret(&prog).unwrap();
        }
        assert!(gs.used() < gs.stack().usable() / 4);
        assert!(gs.shrinkstack(&mut pool, &prog).unwrap());
        assert_eq!(gs.stack().alloc_size(), 4096);
        check_linked(&prog, &gs);
        assert!(
            !gs.shrinkstack(&mut pool, &prog).unwrap(),
            "1600 of 4048 usable bytes is over a quarter"
        );
    }

    #[test]
    fn shrinking_never_drops_below_what_the_barriers_need() {
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let tiny = f(&prog, "main.tiny");
        // 100 frames of 16 bytes: 1600 bytes in a 4 KiB stack (2 KiB usable, 128 entries).
        let mut gs = goroutine(&prog, &mut pool, &vec![tiny; 100]);
        assert_eq!(gs.stack().alloc_size(), 4096);
        assert_eq!(
            scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
                .unwrap()
                .barriers_installed,
            99
        );
        for _ in 0..80 {
            gs.ret(&prog).unwrap();
        }
        // 320 bytes used of 2048: under a quarter, but the 99 entries (hit ones count: the array
        // keeps them) do not fit a 2 KiB stack's 64.
        assert!(gs.used() < gs.stack().usable() / 4);
        assert_eq!(pool.stkbar_cap(2048), 64);
        assert!(!gs.shrinkstack(&mut pool, &prog).unwrap());
        let err = gs.copystack(&mut pool, &prog, 2048).unwrap_err();
        assert!(
            matches!(
                err,
                StackError::StackTooSmall {
                    stkbars: 99,
                    cap: 64,
                    ..
                }
            ),
            "{err}"
        );
        // Once the barriers are removed the stack shrinks.
        gs.remove_stack_barriers(&prog).unwrap();
        assert!(gs.shrinkstack(&mut pool, &prog).unwrap());
    }

    #[test]
    fn growth_past_the_maximum_is_a_stack_overflow() {
        let prog = program();
        let mut pool = StackPool::with_max_stack_size(StackBarrierMode::GO, 4096);
        let mut gs = goroutine(&prog, &mut pool, &[f(&prog, "main.big"); 3]);
        let big = f(&prog, "main.big");
        assert_eq!(
            gs.call(&prog, big, 0).unwrap(),
            crate::call::Call::MoreStack { needed: 1024 }
        );
        let err = gs.newstack(&mut pool, &prog, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                StackError::StackOverflow {
                    needed: 8192,
                    max: 4096,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            gs.traceback(&prog).unwrap().len(),
            3,
            "the goroutine is untouched"
        );
    }

    #[test]
    fn a_corrupt_stack_is_not_copied() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = linked(&prog, &mut pool, 10);
        let slot = gs.frames(&prog).nth(4).unwrap().unwrap().lr_slot();
        gs.write(slot, 0x42).unwrap();
        let lo = gs.stack().lo();
        assert!(matches!(
            gs.copystack(&mut pool, &prog, 4096),
            Err(StackError::UnknownPc { frame: 5, .. })
        ));
        assert_eq!(gs.stack().lo(), lo, "still on the old stack");
    }
}
