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
//! Sizes (Go 1.7's `newstack` and `shrinkstack`, linux/amd64). A call whose frame would take the
//! SP to or below `stackguard0 = lo + STACK_GUARD` fails its prologue check ([`Call::MoreStack`]);
//! `newstack` is then one trip through `morestack`: it doubles the allocation once, copies once,
//! and the caller repeats the call, so a frame that needs `k` doublings takes `k` trips and `k`
//! copies, as Go's function restarts its prologue after each `morestack`. Doubling past the pool's
//! maximum is a stack overflow. `shrinkstack` halves the allocation, not below `FIXED_STACK`, when
//! `used + STACK_LIMIT < usable / 4` (`used = hi - sp`, `usable = hi - lo`: Go counts the room a
//! `NOSPLIT` chain may still take as in use). It also keeps a stack whose halved size could not
//! hold `used` or the recorded stkbar entries — the one departure from Go, which has no such check
//! and would throw in `copystack` (see [`GStack::shrinkstack`]).
//!
//! [`Call::MoreStack`]: crate::call::Call::MoreStack

use std::sync::atomic::Ordering;

use crate::addr::{Addr, bad_pointer_value};
use crate::code::Program;
use crate::error::StackError;
use crate::scan::scan_frames;
use crate::signal::{MidOp, NoSignals, Signals};
use crate::stack::{FIXED_STACK, GStack, STACK_LIMIT, StackPool};

impl GStack {
    /// Moves the goroutine to a fresh stack of `new_size` bytes from `pool`.
    pub fn copystack(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        new_size: usize,
    ) -> Result<(), StackError> {
        self.copystack_with_signals(pool, prog, new_size, &mut NoSignals)
    }

    /// [`GStack::copystack`], with a signal boundary ([`MidOp::CopyStack`]) under the
    /// stack-barrier lock, once the stkbar array is migrated and before the goroutine switches to
    /// the new stack.
    pub fn copystack_with_signals(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        new_size: usize,
        sig: &mut impl Signals,
    ) -> Result<(), StackError> {
        // The whole move holds the stack-barrier lock: a lazy scan's marker may otherwise move
        // the watermark under the walk.
        self.with_stack_lock(|gs| gs.copystack_locked(pool, prog, new_size, sig))
    }

    fn copystack_locked(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        new_size: usize,
        sig: &mut impl Signals,
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
        let to = new
            .words(new_sp, new.hi())
            .expect("used fits the new usable stack");
        let from = self.stack.words(old_sp, old_hi).expect("the live stack");
        for (t, f) in to.iter().zip(from) {
            t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (slot, v) in in_stack {
            new.write(slot.shifted(delta), Addr(v).shifted(delta).0);
        }
        // adjuststkbar: entries not yet hit name live slots, which moved.
        for i in 0..self.stkbar_len {
            let mut bar = self.stack.stkbar(i);
            if i >= self.stkbar_pos {
                bar.saved_lr_ptr = bar.saved_lr_ptr.shifted(delta);
            }
            new.set_stkbar(i, bar);
        }
        sig.boundary(self, MidOp::CopyStack);
        let old = std::mem::replace(&mut self.stack, new);
        self.sched.sp = new_sp;
        pool.stackfree(old);
        self.watermark_moved();
        Ok(())
    }

    /// One trip through Go's `morestack` → `newstack`: doubles the allocation once (one
    /// [`GStack::copystack`]) and returns the new allocation size. A call that still fails its
    /// prologue check after the move asks again, as Go's function restarts its prologue after
    /// `morestack`; a frame needing `k` doublings takes `k` trips. Fails with
    /// [`StackError::StackOverflow`], leaving the goroutine untouched, if the doubled size exceeds
    /// the pool's maximum (Go's "goroutine stack exceeds … limit").
    pub fn newstack(&mut self, pool: &mut StackPool, prog: &Program) -> Result<usize, StackError> {
        self.newstack_with_signals(pool, prog, &mut NoSignals)
    }

    /// [`GStack::newstack`], with [`GStack::copystack_with_signals`]'s boundary.
    pub fn newstack_with_signals(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
        sig: &mut impl Signals,
    ) -> Result<usize, StackError> {
        let new_size = match self.stack.alloc_size().checked_mul(2) {
            Some(s) if s <= pool.max_stack_size() => s,
            _ => {
                return Err(StackError::StackOverflow {
                    stack: self.id(),
                    needed: self.stack.alloc_size().saturating_mul(2),
                    max: pool.max_stack_size(),
                });
            }
        };
        // A doubled stack always holds the used part and the recorded stkbar entries (both its
        // usable size and its array only grow); copystack checks anyway.
        self.copystack_with_signals(pool, prog, new_size, sig)?;
        Ok(new_size)
    }

    /// Halves the stack if it uses less than a quarter of it (Go 1.7's `shrinkstack`). Returns
    /// whether it moved.
    ///
    /// As Go: the new size is half the allocation, never below [`FIXED_STACK`]; the stack shrinks
    /// only if `used + STACK_LIMIT < usable / 4`, with `used = hi - sp` and `usable = hi - lo`
    /// (the stkbar array excluded, as Go's `gp.stack` excludes it), counting [`STACK_LIMIT`] as in
    /// use so `NOSPLIT` chains keep their room. The one departure: it also refuses when the halved
    /// stack's usable part could not hold `used` or its stkbar array the recorded entries (hit
    /// ones included: the array keeps them until removal). Go 1.7 has no such check and would
    /// crash in `copystack` there, slicing the new stkbar array past its capacity. With a positive
    /// offset that does not arise — the `+ 1` in `gcMaxStackBarriers` leaves the halved array an
    /// entry for every offset `first_offset·2^k` below the old size, and a stack that has not
    /// shrunk since its scan holds no more barriers than that — but with a barrier on every frame
    /// it does; here the stack just stays.
    pub fn shrinkstack(
        &mut self,
        pool: &mut StackPool,
        prog: &Program,
    ) -> Result<bool, StackError> {
        let new_size = self.stack.alloc_size() / 2;
        let used = self.used();
        if new_size < FIXED_STACK
            || used + STACK_LIMIT >= self.stack.usable() / 4
            || used > pool.usable_size(new_size)
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
        assert_eq!(gs.newstack(&mut pool, &prog).unwrap(), 8192);
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
        // 6400 bytes of frames: 2 KiB stops at 41 frames (SP 736 above lo), 4 KiB at 104 (752),
        // so the stack ends at 8 KiB: 8128 usable bytes, a quarter is 2032.
        let mut gs = linked(&prog, &mut pool, 200);
        assert_eq!(gs.stack().alloc_size(), 8192);
        assert_eq!(gs.stack().usable(), 8128);
        assert!(
            !gs.shrinkstack(&mut pool, &prog).unwrap(),
            "uses more than a quarter"
        );
        // 50 frames: 1600 + 592 = 2192 is not below 2032, though 1600 alone would be.
        for _ in 0..150 {
            gs.ret(&prog).unwrap();
        }
        assert!(
            !gs.shrinkstack(&mut pool, &prog).unwrap(),
            "STACK_LIMIT counts"
        );
        // 44 frames: 1408 + 592 = 2000 < 2032.
        for _ in 0..6 {
            gs.ret(&prog).unwrap();
        }
        assert!(gs.shrinkstack(&mut pool, &prog).unwrap());
        assert_eq!(gs.stack().alloc_size(), 4096);
        check_linked(&prog, &gs);
        assert!(
            !gs.shrinkstack(&mut pool, &prog).unwrap(),
            "2000 is over a quarter of 4048 usable bytes"
        );
    }

    #[test]
    fn shrink_exactly_at_the_stack_limit_threshold() {
        // One frame of `used` bytes on an 8 KiB stack (8128 usable, a quarter 2032): it shrinks iff
        // used + 592 < 2032, i.e. used < 1440.
        let prog = Program::builder()
            .func_with_pointers("main.f1432", 1432, &[])
            .func_with_pointers("main.f1440", 1440, &[])
            .func_with_pointers("main.f1448", 1448, &[])
            .build()
            .unwrap();
        for (used, shrinks) in [(1432, true), (1440, false), (1448, false)] {
            let mut pool = pool(StackBarrierMode::GO);
            let mut gs = GStack::new(1, pool.stackalloc(8192).unwrap(), &prog);
            let func = f(&prog, &format!("main.f{used}"));
            assert_eq!(gs.call(&prog, func, 0).unwrap(), crate::call::Call::Pushed);
            assert_eq!(gs.used(), used);
            assert_eq!(gs.stack().usable() / 4, 2032);
            assert_eq!(
                gs.shrinkstack(&mut pool, &prog).unwrap(),
                shrinks,
                "used {used}: {used} + STACK_LIMIT vs 2032"
            );
            assert_eq!(gs.stack().alloc_size(), if shrinks { 4096 } else { 8192 });
            assert_eq!(gs.traceback(&prog).unwrap(), vec![func]);
        }
    }

    #[test]
    fn shrinking_never_drops_below_what_the_barriers_need() {
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let tiny = f(&prog, "main.tiny");
        // 200 frames of 16 bytes: 3200 bytes. Half of each allocation is stkbar array, so 2 KiB
        // (1024 usable) stops at 19 frames, 4 KiB (2048) at 83, and the stack ends at 8 KiB: 4096
        // usable bytes, 256 entries.
        let mut gs = goroutine(&prog, &mut pool, &vec![tiny; 200]);
        assert_eq!(gs.stack().alloc_size(), 8192);
        assert_eq!(
            scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
                .unwrap()
                .barriers_installed,
            199,
            "every frame but the running one"
        );
        for _ in 0..174 {
            gs.ret(&prog).unwrap();
        }
        // 26 frames, 416 bytes: 416 + 592 = 1008 < 4096 / 4, and 416 fits the halved stack's
        // 2048 usable bytes; but the 199 entries (hit ones count: the array keeps them) do not fit
        // a 4 KiB stack's 128.
        assert_eq!(gs.used(), 416);
        assert!(gs.used() + STACK_LIMIT < gs.stack().usable() / 4);
        assert_eq!(pool.stkbar_cap(4096), 128);
        assert!(!gs.shrinkstack(&mut pool, &prog).unwrap());
        let err = gs.copystack(&mut pool, &prog, 4096).unwrap_err();
        assert!(
            matches!(
                err,
                StackError::StackTooSmall {
                    stkbars: 199,
                    cap: 128,
                    ..
                }
            ),
            "{err}"
        );
        // Once the barriers are removed the stack shrinks.
        gs.remove_stack_barriers(&prog).unwrap();
        assert!(gs.shrinkstack(&mut pool, &prog).unwrap());
        assert_eq!(gs.stack().alloc_size(), 4096);
    }

    #[test]
    fn growth_past_the_maximum_is_a_stack_overflow() {
        let prog = program();
        let mut pool = StackPool::with_max_stack_size(StackBarrierMode::GO, 4096);
        let big = f(&prog, "main.big");
        // Three 1 KiB frames on a 4 KiB stack (4048 usable): the SP is 976 above lo, and a fourth
        // call's check, 976 - 8 - (1016 - 128) = 80 above lo, is below the guard at 720.
        let mut gs = goroutine(&prog, &mut pool, &[big; 3]);
        assert_eq!(gs.stack().alloc_size(), 4096);
        assert_eq!(
            gs.call(&prog, big, 0).unwrap(),
            crate::call::Call::MoreStack { needed: 1024 }
        );
        let lo = gs.stack().lo();
        let err = gs.newstack(&mut pool, &prog).unwrap_err();
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
        assert_eq!(gs.stack().lo(), lo, "the goroutine is untouched");
        assert_eq!(gs.traceback(&prog).unwrap().len(), 3);
    }

    #[test]
    fn copystack_migrates_a_barrier_on_the_outermost_frame() {
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let mut gs = linked(&prog, &mut pool, 3);
        assert_eq!(
            scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
                .unwrap()
                .barriers_installed,
            2
        );
        let top = gs.stkbar().last().unwrap();
        assert_eq!(top.saved_lr_ptr, gs.stack().hi().sub(8));
        assert_eq!(top.saved_lr_val, prog.goexit_return_pc());
        let size = gs.newstack(&mut pool, &prog).unwrap();
        assert_eq!(size, 4096);
        let top = gs.stkbar().last().unwrap();
        assert_eq!(
            top.saved_lr_ptr,
            gs.stack().hi().sub(8),
            "moved with the stack"
        );
        assert_eq!(
            gs.read(top.saved_lr_ptr).unwrap(),
            prog.stack_barrier_pc().0
        );
        check_linked(&prog, &gs);
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Exited);
        assert_eq!(gs.counters().hit, 2);
        assert!(gs.is_empty());
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
