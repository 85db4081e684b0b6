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
//!   a safe point can see them). A call that does not fit reports [`Call::MoreStack`], and the caller
//!   grows the stack with `newstack` (copystack) and calls again — Go's `morestack` path.
//! * `ret`: pops the running frame and continues at the return PC in its top word; if that is the
//!   `stackBarrier` PC, the trampoline runs ([`GStack::stack_barrier_hit`]) and supplies the real
//!   PC. Returning to `goexit + 1` ends the goroutine.
//! * `unwind_frames`: a panic unwinding several frames at once. The frames vanish without returning,
//!   so the barriers on them are first marked hit (`gcUnwindBarriers`).
//! * `runtime_bulk_write`: the runtime copying words into an outer frame without a pointer bitmap
//!   (a channel receive into `&local` through `typedmemmove`); barriers below the destination are
//!   unwound first so the re-scan covers it.

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
    /// The frame does not fit: the stack must grow by at least `needed` bytes below the SP
    /// (`newstack`), then the call is repeated.
    MoreStack {
        /// Bytes the callee's frame needs below the SP.
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
    /// empty stack).
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
        let room = sp.offset_from(self.stack.lo());
        if room < f.frame_size {
            return Ok(Call::MoreStack {
                needed: f.frame_size,
            });
        }
        let new_sp = sp.sub(f.frame_size);
        let frame = self
            .stack
            .words_mut(new_sp, sp)
            .expect("the frame fits below sp");
        let (lr, locals) = frame
            .split_last_mut()
            .expect("frames have at least two words");
        locals.fill(0);
        *lr = ret_pc.0;
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
        let raw = self
            .stack
            .read(slot)
            .ok_or_else(|| self.bad_address(slot))?;
        let hit_barrier = raw == prog.stack_barrier_pc().0;
        let pc = if hit_barrier {
            self.sched = Gobuf {
                pc: prog.stack_barrier_pc(),
                sp: fp,
            };
            sig.boundary(self, MidOp::BarrierHit);
            let pc = self.stack_barrier_hit(fp)?;
            sig.boundary(self, MidOp::BarrierHit);
            pc
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
    ) -> Result<(FuncId, &mut [u64]), StackError> {
        if self.is_empty() {
            return Err(self.frame_op_error("no running frame"));
        }
        let (id, frame_size) = self.running_frame(prog)?;
        let sp = self.sched.sp;
        let lr_slot = sp.add(frame_size - WORD);
        if lr_slot >= self.stack.hi() {
            return Err(self.bad_address(lr_slot));
        }
        let locals = self
            .stack
            .words_mut(sp, lr_slot)
            .expect("sp is an aligned address of the stack and the frame ends below hi");
        Ok((id, locals))
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
        let passed = self.unwind_barriers_with_signals(prog, last.fp, sig)?;
        self.sched = Gobuf {
            pc: last.lr,
            sp: last.fp,
        };
        Ok(passed)
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
        let passed = self.unwind_barriers_with_signals(prog, dst, sig)?;
        self.stack
            .words_mut(dst, end)
            .expect("checked to lie in a frame")
            .copy_from_slice(words);
        Ok(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::stack::GStack;
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
        locals.fill(0xc0_0000_2000);
        assert_eq!(gs.read_local(&prog, 2).unwrap(), 0xc0_0000_2000);
        assert_eq!(gs.read(lr).unwrap(), ret_pc, "the return PC is not a local");
        assert_eq!(gs.traceback(&prog).unwrap(), vec![leaf, mid]);
    }

    #[test]
    fn a_call_that_does_not_fit_asks_for_more_stack() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let big = f(&prog, "main.big");
        let mut gs = GStack::new(9, pool.stackalloc(2048).unwrap(), &prog);
        assert_eq!(gs.call(&prog, big, 0).unwrap(), Call::Pushed);
        let sp = gs.sp();
        assert_eq!(
            gs.call(&prog, big, 0).unwrap(),
            Call::MoreStack { needed: 1024 }
        );
        assert_eq!(gs.sp(), sp, "nothing was pushed");
        let size = gs.newstack(&mut pool, &prog, 1024).unwrap();
        assert_eq!(size, 4096);
        assert_eq!(gs.call(&prog, big, 0).unwrap(), Call::Pushed);
        assert_eq!(gs.traceback(&prog).unwrap(), vec![big, big]);
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
        assert_eq!(gs.unwind_frames(&prog, 3).unwrap(), 3);
        assert_eq!((gs.sp(), gs.pc()), (frames[3].sp, frames[3].pc));
        assert_eq!(gs.stkbar_pos(), 3);
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
        assert_eq!((c.unwound, c.hit), (3, 1));
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
        // Write two words into frame 3's locals [sp+8, sp+24).
        let dst = frames[3].sp.add(8);
        assert_eq!(
            gs.runtime_bulk_write(&prog, dst, &[0xc0_0000_0010, 7])
                .unwrap(),
            3
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
