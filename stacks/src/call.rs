//! The simulated calling convention: call, return, local slots, multi-frame unwind, runtime bulk
//! writes.
//!
//! Invariant: between operations a goroutine stack is a well-formed chain of frames from `sp` to
//! `hi` (what `gentraceback` walks), and every way these operations change it keeps the stack-barrier
//! invariant of `barrier`: a frame changes only when it is the running frame (calls, returns and
//! local stores happen at the bottom), through an up-pointer store (the caller runs the write
//! barrier), or by a multi-frame unwind or a runtime bulk write, which unwind the barriers below
//! their target first.
//!
//! * `call` (amd64 shape): the callee's frame is pushed below the SP; its top word gets the return PC
//!   of the caller's call site; its other words are zeroed (Go's compiler zeroes pointer slots before
//!   a safe point can see them). First the callee's prologue check runs as Go's does on amd64
//!   (`Stack::prologue_check`: the SP after the CALL, less the part of the frame beyond
//!   `STACK_SMALL`, must stay above `stackguard0 = lo + STACK_GUARD`). A call that fails it pushes
//!   nothing and reports [`Call::MoreStack`]; the caller runs `newstack` — one doubling, one
//!   copystack — and calls again, as many trips as it takes: Go's `morestack` path, after which the
//!   function re-runs its prologue. A frame that passes leaves more than `STACK_LIMIT` bytes below
//!   it.
//! * `ret`: pops the running frame and continues at the return PC in its top word; if that is the
//!   `stackBarrier` PC, the trampoline runs ([`GStack::stack_barrier_hit`]) and supplies the real
//!   PC. Returning to `goexit + 1` ends the goroutine, through a barrier too: the outermost frame
//!   may carry one.
//! * `unwind_frames`: a panic unwinding several frames at once. The frames vanish without returning,
//!   so the barriers on them are first marked hit (`gcUnwindBarriers`).
//! * `runtime_bulk_write`: the runtime copying words into an outer frame without a pointer bitmap
//!   (a channel receive into `&local` through `typedmemmove`); barriers below the destination are
//!   unwound first so the re-scan covers it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{Addr, Pc, WORD};
use crate::code::{FuncId, FuncKind, Program};
use crate::error::StackError;
use crate::signal::{MidOp, NoSignals, Signals};
use crate::stack::{GStack, Gobuf};

/// The outcome of a call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum Call {
    /// The callee's frame was pushed and the callee is running.
    Pushed,
    /// The callee's prologue check against `stackguard0` failed (see
    /// [`Stack::prologue_check`](crate::stack::Stack::prologue_check)): nothing was pushed. The
    /// caller runs [`GStack::newstack`] (Go's `morestack` → `newstack`: one doubling, one
    /// copystack) and repeats the call, which may ask again.
    MoreStack {
        /// The callee's frame size: the bytes it takes below the SP, return PC included.
        needed: usize,
    },
}

/// The outcome of a return.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ret {
    /// Execution continues in the caller.
    Returned {
        /// Whether the return went through a stack barrier.
        hit_barrier: bool,
    },
    /// The outermost frame returned to `goexit`: the goroutine is finished.
    Exited,
}

impl GStack {
    /// The running function, or `None` when the stack has no frames.
    #[inline]
    pub fn current_func(&self, prog: &Program) -> Result<Option<FuncId>, StackError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.running_func(prog).map(Some)
    }

    /// The running frame's function and frame size.
    #[inline]
    fn running_frame(&self, prog: &Program) -> Result<(FuncId, usize), StackError> {
        let Gobuf { pc, sp } = self.sched;
        let Some((id, frame_size)) = prog.findframe(pc) else {
            return Err(StackError::UnknownPc {
                stack: self.id(),
                frame: 0,
                sp,
                pc,
            });
        };
        if frame_size == 0 {
            let func = prog.func(id).name.clone();
            return Err(StackError::FramelessPc {
                stack: self.id(),
                frame: 0,
                sp,
                pc,
                func,
            });
        }
        Ok((id, frame_size))
    }

    fn running_func(&self, prog: &Program) -> Result<FuncId, StackError> {
        self.running_frame(prog).map(|(id, _)| id)
    }

    fn frame_op_error(&self, what: impl Into<String>) -> StackError {
        StackError::BadFrameOp {
            stack: self.id(),
            what: what.into(),
        }
    }

    /// Calls `callee` from call site `site` of the running function (or as the outermost frame of an
    /// empty stack). Returns [`Call::MoreStack`], pushing nothing, exactly when the callee's
    /// prologue would call `morestack` (see [`Stack::prologue_check`]).
    ///
    /// [`Stack::prologue_check`]: crate::stack::Stack::prologue_check
    pub fn call(&mut self, prog: &Program, callee: FuncId, site: u32) -> Result<Call, StackError> {
        let ret_pc = if self.is_empty() {
            prog.goexit_return_pc()
        } else {
            prog.func(self.running_func(prog)?).return_pc(site)
        };
        let f = prog.func(callee);
        if f.kind != FuncKind::User {
            return Err(self.frame_op_error(format!("cannot call runtime function {}", f.name)));
        }
        let sp = self.sched.sp;
        if !self.stack.prologue_check(sp, f.frame_size) {
            return Ok(Call::MoreStack {
                needed: f.frame_size,
            });
        }
        let new_sp = sp.sub(f.frame_size);
        let frame = self
            .stack
            .words(new_sp, sp)
            .expect("the frame fits below sp");
        let (lr, locals) = frame.split_last().expect("frames have at least two words");
        for w in locals {
            w.store(0, Ordering::Relaxed);
        }
        lr.store(ret_pc.0, Ordering::Relaxed);
        self.sched = Gobuf {
            pc: f.entry,
            sp: new_sp,
        };
        Ok(Call::Pushed)
    }

    /// Returns from the running frame, through the stack-barrier trampoline if its return PC was
    /// replaced.
    #[inline]
    pub fn ret(&mut self, prog: &Program) -> Result<Ret, StackError> {
        self.ret_with_signals(prog, &mut NoSignals)
    }

    /// [`GStack::ret`] on the goroutine's own M, where a signal may land inside the trampoline: after
    /// the frame is popped (PC at `stackBarrier`, SP just above the slot) and again after
    /// `stkbar_pos` advances (see `signal`).
    #[inline]
    pub fn ret_with_signals(
        &mut self,
        prog: &Program,
        sig: &mut impl Signals,
    ) -> Result<Ret, StackError> {
        if self.is_empty() {
            return Err(self.frame_op_error("return from a goroutine with no frames"));
        }
        let (_, frame_size) = self.running_frame(prog)?;
        let fp = self.sched.sp.add(frame_size);
        let slot = fp.sub(WORD);
        // Acquire: a lazy scan's marker restores a return PC only after guarding the next slot
        // up (see `watermark`), and a return that sees the restored PC must see that guard.
        let raw = self
            .stack
            .read_acquire(slot)
            .ok_or_else(|| self.bad_address(slot))?;
        let hit_barrier = raw == prog.stack_barrier_pc().0;
        let pc = if hit_barrier {
            self.sched = Gobuf {
                pc: prog.stack_barrier_pc(),
                sp: fp,
            };
            sig.boundary(self, MidOp::BarrierHit);
            if self.watermark {
                self.watermark_hit(prog, fp, sig)?
            } else {
                let pc = self.stack_barrier_hit(fp)?;
                sig.boundary(self, MidOp::BarrierHit);
                pc
            }
        } else {
            Pc(raw)
        };
        self.sched = Gobuf { pc, sp: fp };
        if pc == prog.goexit_return_pc() {
            if fp != self.stack.hi() {
                return Err(self
                    .frame_op_error(format!("return to goexit at sp={fp}, below the stack top")));
            }
            return Ok(Ret::Exited);
        }
        Ok(Ret::Returned { hit_barrier })
    }

    /// The running function and its frame's locals, every word below the return-PC slot, from SP
    /// up: the interpreter's view of the frame, one `findframe` however many locals an operation
    /// touches. Stores through it are stores to the frame's own locals, with no write barrier.
    #[inline]
    pub fn running_locals_mut(
        &mut self,
        prog: &Program,
    ) -> Result<(FuncId, &[AtomicU64]), StackError> {
        if self.is_empty() {
            return Err(self.frame_op_error("no running frame"));
        }
        let (id, frame_size) = self.running_frame(prog)?;
        let sp = self.sched.sp;
        match self.stack.frame_locals(sp, frame_size) {
            Some(locals) => Ok((id, locals)),
            None => Err(self.bad_address(sp.add(frame_size - WORD))),
        }
    }

    /// The address of word `slot` of the running frame; the top word (the return PC) is not a local.
    pub fn local_addr(&self, prog: &Program, slot: usize) -> Result<Addr, StackError> {
        if self.is_empty() {
            return Err(self.frame_op_error("no running frame"));
        }
        let f = prog.func(self.running_func(prog)?);
        if slot >= f.lr_word() {
            return Err(StackError::BadLocal {
                stack: self.id(),
                func: f.name.clone(),
                sp: self.sched.sp,
                slot,
                words: f.frame_words(),
            });
        }
        Ok(self.sched.sp.add(slot * WORD))
    }

    /// Reads word `slot` of the running frame.
    pub fn read_local(&self, prog: &Program, slot: usize) -> Result<u64, StackError> {
        self.read(self.local_addr(prog, slot)?)
    }

    /// Writes word `slot` of the running frame: a store to the frame's own local, which has no
    /// write barrier (the whole reason stacks must be re-scanned).
    pub fn write_local(
        &mut self,
        prog: &Program,
        slot: usize,
        value: u64,
    ) -> Result<(), StackError> {
        let addr = self.local_addr(prog, slot)?;
        self.write(addr, value)
    }

    /// Pops `n` frames at once, as a panic recovered `n` frames up does, leaving frame `n` running at
    /// its call site. Barriers on the popped frames are marked hit first. `n` must leave at least one
    /// frame. Returns the number of barriers passed.
    pub fn unwind_frames(&mut self, prog: &Program, n: usize) -> Result<usize, StackError> {
        self.unwind_frames_with_signals(prog, n, &mut NoSignals)
    }

    /// [`GStack::unwind_frames`] on the goroutine's own M, where a signal may land while the
    /// barriers are restored.
    pub fn unwind_frames_with_signals(
        &mut self,
        prog: &Program,
        n: usize,
        sig: &mut impl Signals,
    ) -> Result<usize, StackError> {
        if n == 0 {
            return Ok(0);
        }
        if self.watermark {
            // A lazy scan is in progress: the walk and the move hold the stack-barrier lock,
            // and a target frame above the watermark is scanned before it runs.
            return self.with_stack_lock(|gs| {
                let last = gs.unwind_target(prog, n)?;
                let pc = if gs.stack.stkbar(0).saved_lr_ptr < last.fp {
                    gs.watermark_pass_locked(prog, last.fp)?
                } else {
                    last.lr
                };
                gs.sched = Gobuf { pc, sp: last.fp };
                Ok(0)
            });
        }
        let last = self.unwind_target(prog, n)?;
        let passed = self.unwind_barriers_with_signals(prog, last.fp, sig)?;
        self.sched = Gobuf {
            pc: last.lr,
            sp: last.fp,
        };
        Ok(passed)
    }

    /// The frame an unwind of `n` frames leaves running: frame `n - 1`'s caller.
    fn unwind_target(&self, prog: &Program, n: usize) -> Result<crate::unwind::Frame, StackError> {
        let mut last = None;
        for frame in self.frames(prog).take(n) {
            last = Some(frame?);
        }
        let last =
            last.ok_or_else(|| self.frame_op_error("unwind on a goroutine with no frames"))?;
        if last.index + 1 < n || last.fp == self.stack.hi() {
            return Err(self.frame_op_error(format!(
                "cannot unwind {n} frames: only {} frames, and unwinding must leave one",
                last.index + 1
            )));
        }
        Ok(last)
    }

    /// The runtime writes `words` into the live stack at `dst` without a pointer bitmap (Go's
    /// `typedmemmove` for a channel receive into `&local`). The destination must lie within the
    /// locals of one frame. Barriers below `dst` are unwound first, so the frame holding `dst` lies
    /// within the re-scan bound. Returns the number of barriers passed.
    pub fn runtime_bulk_write(
        &mut self,
        prog: &Program,
        dst: Addr,
        words: &[u64],
    ) -> Result<usize, StackError> {
        self.runtime_bulk_write_with_signals(prog, dst, words, &mut NoSignals)
    }

    /// [`GStack::runtime_bulk_write`] on the goroutine's own M, where a signal may land while the
    /// barriers below `dst` are restored.
    pub fn runtime_bulk_write_with_signals(
        &mut self,
        prog: &Program,
        dst: Addr,
        words: &[u64],
        sig: &mut impl Signals,
    ) -> Result<usize, StackError> {
        if self.watermark {
            // A lazy scan is in progress: the watermark stays where it is (the collector shades
            // what the write overwrites instead), and the walk and the write hold the
            // stack-barrier lock, so the lazy-scan checker's record follows the write.
            return self.with_stack_lock(|gs| {
                let passed =
                    gs.runtime_bulk_write_locked(prog, dst, words, &mut NoSignals, false)?;
                for (i, &w) in words.iter().enumerate() {
                    gs.watermark_note_store_locked(dst.add(i * WORD), w);
                }
                Ok(passed)
            });
        }
        self.runtime_bulk_write_locked(prog, dst, words, sig, true)
    }

    /// [`GStack::runtime_bulk_write_with_signals`]'s walk and write; `unwind` passes the
    /// barriers below `dst` first.
    fn runtime_bulk_write_locked(
        &mut self,
        prog: &Program,
        dst: Addr,
        words: &[u64],
        sig: &mut impl Signals,
        unwind: bool,
    ) -> Result<usize, StackError> {
        let end = dst.add(words.len() * WORD);
        let mut target = None;
        for frame in self.frames(prog) {
            let frame = frame?;
            if frame.fp > dst {
                target = Some(frame);
                break;
            }
        }
        match target {
            Some(f) if dst >= f.sp && dst.is_word_aligned() && end <= f.lr_slot() => {}
            _ => {
                return Err(self.frame_op_error(format!(
                    "bulk write to [{dst}, {end}) does not lie within one frame's locals"
                )));
            }
        }
        let passed = if unwind {
            self.unwind_barriers_with_signals(prog, dst, sig)?
        } else {
            0
        };
        let dst_words = self
            .stack
            .words(dst, end)
            .expect("checked to lie in a frame");
        for (d, &w) in dst_words.iter().zip(words) {
            d.store(w, Ordering::Relaxed);
        }
        Ok(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::stack::{GStack, STACK_BIG, STACK_LIMIT};
    use crate::testutil::{f, goroutine, mark, pool, program};

    #[test]
    fn call_pushes_a_zeroed_frame_with_the_call_sites_return_pc() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let (mid, leaf) = (f(&prog, "main.mid"), f(&prog, "main.leaf"));
        let mut gs = goroutine(&prog, &mut pool, &[mid]);
        gs.write_local(&prog, 1, 0xc0_0000_1000).unwrap();
        let sp = gs.sp();
        // Dirty the memory the callee will occupy, to see it zeroed.
        for a in (0..32).step_by(8) {
            assert!(gs.stack.write(sp.sub(32).add(a), 0xffff));
        }
        assert_eq!(gs.call(&prog, leaf, 3).unwrap(), Call::Pushed);
        assert_eq!(gs.sp(), sp.sub(32));
        assert_eq!(gs.pc(), prog.func(leaf).entry);
        assert_eq!(gs.read(sp.sub(8)).unwrap(), prog.func(mid).return_pc(3).0);
        for slot in 0..3 {
            assert_eq!(gs.read_local(&prog, slot).unwrap(), 0);
        }
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        assert_eq!((gs.sp(), gs.pc()), (sp, prog.func(mid).return_pc(3)));
        assert_eq!(
            gs.read_local(&prog, 1).unwrap(),
            0xc0_0000_1000,
            "the caller's locals survive"
        );
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Exited);
        assert!(gs.is_empty());
        assert!(matches!(gs.ret(&prog), Err(StackError::BadFrameOp { .. })));
    }

    #[test]
    fn running_locals_are_the_words_below_the_return_pc_slot() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let (mid, leaf) = (f(&prog, "main.mid"), f(&prog, "main.leaf"));
        let mut gs = GStack::new(3, pool.stackalloc(2048).unwrap(), &prog);
        assert!(matches!(
            gs.running_locals_mut(&prog),
            Err(StackError::BadFrameOp { .. })
        ));
        let mut gs = goroutine(&prog, &mut pool, &[mid, leaf]);
        let lr = gs.sp().add(prog.func(leaf).frame_size - WORD);
        let ret_pc = gs.read(lr).unwrap();
        let (func, locals) = gs.running_locals_mut(&prog).unwrap();
        assert_eq!(func, leaf);
        assert_eq!(locals.len(), prog.func(leaf).lr_word());
        for w in locals {
            w.store(0xc0_0000_2000, Ordering::Relaxed);
        }
        assert_eq!(gs.read_local(&prog, 2).unwrap(), 0xc0_0000_2000);
        assert_eq!(gs.read(lr).unwrap(), ret_pc, "the return PC is not a local");
        assert_eq!(gs.traceback(&prog).unwrap(), vec![leaf, mid]);
    }

    #[test]
    fn a_call_past_the_stack_guard_asks_for_more_stack() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let big = f(&prog, "main.big");
        // A 2 KiB stack keeps 2 stkbar entries: [lo, lo+2016).
        let mut gs = GStack::new(9, pool.stackalloc(2048).unwrap(), &prog);
        assert_eq!(gs.stack().usable(), 2016);
        // From lo+2016: 2016 - 8 - (1016 - 128) = 1120 above lo, over the guard at 720.
        assert_eq!(gs.call(&prog, big, 0).unwrap(), Call::Pushed);
        let sp = gs.sp();
        assert_eq!(sp, gs.stack().lo().add(992));
        // From lo+992: 992 - 896 = 96, at or below the guard, though the frame would fit.
        assert_eq!(
            gs.call(&prog, big, 0).unwrap(),
            Call::MoreStack { needed: 1024 }
        );
        assert_eq!(gs.sp(), sp, "nothing was pushed");
        let size = gs.newstack(&mut pool, &prog).unwrap();
        assert_eq!(size, 4096);
        assert_eq!(gs.call(&prog, big, 0).unwrap(), Call::Pushed);
        assert_eq!(gs.traceback(&prog).unwrap(), vec![big, big]);
    }

    /// A goroutine on a fresh stack of `alloc` bytes that has called a `filler`-byte frame, then
    /// calls a `frame`-byte one: whether that call pushes.
    fn pushes_after(alloc: usize, filler: usize, frame: usize) -> bool {
        let prog = Program::builder()
            .func_with_pointers("main.filler", filler, &[])
            .func_with_pointers("main.callee", frame, &[])
            .build()
            .unwrap();
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = GStack::new(1, pool.stackalloc(alloc).unwrap(), &prog);
        let callee = f(&prog, "main.callee");
        assert_eq!(
            gs.call(&prog, f(&prog, "main.filler"), 0).unwrap(),
            Call::Pushed
        );
        let sp = gs.sp();
        match gs.call(&prog, callee, 0).unwrap() {
            Call::Pushed => {
                assert!(
                    gs.sp() > gs.stack().lo().add(STACK_LIMIT),
                    "a frame that passes the check leaves STACK_LIMIT below it"
                );
                true
            }
            Call::MoreStack { needed } => {
                assert_eq!((needed, gs.sp()), (frame, sp));
                false
            }
        }
    }

    #[test]
    fn growth_at_exactly_the_stack_guard_small_frame() {
        // A 16-byte frame (8 without the return PC, at most STACK_SMALL): the prologue compares
        // SP' = sp - 8 itself with stackguard0 = lo + 720. A 2 KiB stack is [lo, lo+2016).
        // Filler 1280: sp = lo+736, SP' = lo+728, one word above the guard: pushes.
        assert!(pushes_after(2048, 1280, 16));
        // Filler 1288: SP' = lo+720 = stackguard0: morestack.
        assert!(!pushes_after(2048, 1288, 16));
        // The edge of the small form: fs = 128 exactly compares SP' too.
        assert!(pushes_after(2048, 1280, 136));
        assert!(!pushes_after(2048, 1288, 136));
    }

    #[test]
    fn growth_at_exactly_the_stack_guard_big_frame() {
        // A 264-byte frame (fs = 256 > STACK_SMALL): morestack when SP' - (256 - 128) <= lo + 720.
        // Filler 1152: sp = lo+864, 864 - 8 - 128 = 728, one word above: pushes (SP ends at
        // lo+600, above lo + STACK_LIMIT).
        assert!(pushes_after(2048, 1152, 264));
        // Filler 1160: 856 - 8 - 128 = 720: morestack.
        assert!(!pushes_after(2048, 1160, 264));
        // fs = 5000 > STACK_BIG, Go's wrap-safe form of the same inequality, on an 8 KiB stack
        // ([lo, lo+8128)): filler 2520 leaves sp = lo+5608, 5608 - 8 - 4872 = 728: pushes;
        // filler 2528: 720: morestack.
        const { assert!(5000 > STACK_BIG) };
        assert!(pushes_after(8192, 2520, 5008));
        assert!(!pushes_after(8192, 2528, 5008));
    }

    #[test]
    fn newstack_doubles_once_per_trip() {
        let prog = Program::builder()
            .func_with_pointers("main.f4000", 4000, &[0])
            .build()
            .unwrap();
        let f4000 = f(&prog, "main.f4000");
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = GStack::new(1, pool.stackalloc(2048).unwrap(), &prog);
        // fs = 3992: the check needs sp - 8 - 3864 > lo + 720, i.e. more than 4592 usable bytes
        // above lo on an empty stack: not 2016 (2 KiB), not 4048 (4 KiB), but 8128 (8 KiB).
        assert!(matches!(
            gs.call(&prog, f4000, 0).unwrap(),
            Call::MoreStack { needed: 4000 }
        ));
        assert_eq!(gs.newstack(&mut pool, &prog).unwrap(), 4096, "one doubling");
        assert_eq!(pool.stats().free_bytes, 2048, "one copystack");
        assert!(matches!(
            gs.call(&prog, f4000, 0).unwrap(),
            Call::MoreStack { .. }
        ));
        assert_eq!(
            gs.newstack(&mut pool, &prog).unwrap(),
            8192,
            "a second trip"
        );
        assert_eq!(pool.stats().free_bytes, 2048 + 4096, "a second copystack");
        assert_eq!(gs.call(&prog, f4000, 0).unwrap(), Call::Pushed);
        // The interpreter's loop takes the same two trips.
        let mut fresh = crate::testutil::pool(StackBarrierMode::GO);
        let mut gs = GStack::new(1, fresh.stackalloc(2048).unwrap(), &prog);
        assert_eq!(
            crate::testutil::call(&prog, &mut fresh, &mut gs, f4000, 0),
            2
        );
        assert_eq!(gs.stack().alloc_size(), 8192);
    }

    #[test]
    fn runtime_functions_cannot_be_called_and_the_return_pc_slot_is_not_a_local() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let mut gs = goroutine(&prog, &mut pool, &[f(&prog, "main.leaf")]);
        assert!(matches!(
            gs.call(&prog, prog.gogo(), 0),
            Err(StackError::BadFrameOp { .. })
        ));
        let err = gs.write_local(&prog, 3, 1).unwrap_err();
        assert!(
            matches!(
                err,
                StackError::BadLocal {
                    slot: 3,
                    words: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert!(gs.write_local(&prog, 2, 1).is_ok());
        let empty = goroutine(&prog, &mut pool, &[]);
        assert!(matches!(
            empty.read_local(&prog, 0),
            Err(StackError::BadFrameOp { .. })
        ));
        assert!(
            matches!(gs.read(gs.sp().sub(8)), Err(StackError::BadAddress { .. })),
            "below sp is dead"
        );
    }

    #[test]
    fn unwind_frames_pops_frames_and_passes_their_barriers() {
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let chain: Vec<_> = (0..8).map(|i| prog.user_func(i).unwrap()).collect();
        let mut gs = goroutine(&prog, &mut pool, &chain);
        mark(&prog, &mut gs, mode);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        // Frames 1 and 2 carry barriers; frame 0, the running one, does not.
        assert_eq!(gs.unwind_frames(&prog, 3).unwrap(), 2);
        assert_eq!((gs.sp(), gs.pc()), (frames[3].sp, frames[3].pc));
        assert_eq!(gs.stkbar_pos(), 2);
        assert_eq!(
            gs.traceback(&prog).unwrap(),
            frames[3..].iter().map(|fr| fr.func).collect::<Vec<_>>()
        );
        // The remaining frames still return through their barriers.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
        assert!(
            matches!(
                gs.unwind_frames(&prog, 4),
                Err(StackError::BadFrameOp { .. })
            ),
            "must leave a frame"
        );
        assert_eq!(gs.unwind_frames(&prog, 0).unwrap(), 0);
        let c = gs.counters();
        assert_eq!((c.unwound, c.hit), (2, 1));
    }

    #[test]
    fn a_runtime_bulk_write_unwinds_the_barriers_below_its_destination() {
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = pool(mode);
        let chain = vec![f(&prog, "main.mid"); 6];
        let mut gs = goroutine(&prog, &mut pool, &chain);
        mark(&prog, &mut gs, mode);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        // Write two words into frame 3's locals [sp+8, sp+24): the barriers of frames 1 and 2
        // lie below it.
        let dst = frames[3].sp.add(8);
        assert_eq!(
            gs.runtime_bulk_write(&prog, dst, &[0xc0_0000_0010, 7])
                .unwrap(),
            2
        );
        assert_eq!(gs.read(dst).unwrap(), 0xc0_0000_0010);
        assert_eq!(
            gs.rescan_limit(),
            Some(frames[3].lr_slot()),
            "frame 3 is now inside the re-scan"
        );
        // A write that would cover a return-PC slot is refused.
        let err = gs
            .runtime_bulk_write(&prog, frames[4].lr_slot().sub(8), &[1, 2])
            .unwrap_err();
        assert!(matches!(err, StackError::BadFrameOp { .. }), "{err}");
        assert_eq!(
            gs.frames(&prog).filter(Result::is_ok).count(),
            6,
            "the stack is intact"
        );
    }

    #[test]
    fn current_func_tracks_calls_and_returns() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let (mid, leaf) = (f(&prog, "main.mid"), f(&prog, "main.leaf"));
        let mut gs = goroutine(&prog, &mut pool, &[mid, leaf]);
        assert_eq!(gs.current_func(&prog).unwrap(), Some(leaf));
        gs.ret(&prog).unwrap();
        assert_eq!(gs.current_func(&prog).unwrap(), Some(mid));
        gs.ret(&prog).unwrap();
        assert_eq!(gs.current_func(&prog).unwrap(), None);
        assert_eq!(gs.pc(), prog.goexit_return_pc());
    }
}
