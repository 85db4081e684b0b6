//! The unwinder (Go's `gentraceback`): the frames of a goroutine stack, innermost first.
//!
//! Invariant: the unwinder yields exactly the frames a goroutine would return through, with their
//! *real* return PCs, whether or not stack barriers are installed; or it yields one [`StackError`]
//! naming the frame where the stack stops making sense, and then nothing. It never panics and never
//! loops: every step moves the SP strictly up (frames are at least 16 bytes) and stops at the top of
//! the stack. Scans, tracebacks, copystack and the profiler all walk stacks through it, so they all
//! agree on what the frames are.
//!
//! Algorithm. Start at `(pc, sp)`. The frame is that of `findfunc(pc)`: `[sp, sp + frame_size)`, its
//! return PC in the top word. If that word holds the `stackBarrier` PC, the real return PC is the
//! `saved_lr_val` of the next un-hit stkbar entry, which must name this very slot (else Go's "missed
//! stack barrier"); entries are consumed in order, from `stkbar_pos` up. A recorded entry whose slot
//! no longer holds the barrier PC is a lost barrier. Then `(pc, sp) = (return PC, frame end)` and
//! repeat. The frame that returns to `goexit + 1` must end exactly at `hi`, and every recorded barrier
//! must have been met by then.
//!
//! A traceback may start inside the trampoline itself (a profiling signal landing in the middle of a
//! barrier hit, which takes no lock). Then the SP is just above the popped slot and `stkbar_pos` may or
//! may not have been incremented yet; as Go does, the unwinder looks at which entry lies just below
//! the SP and simulates the rest of the hit.

use crate::addr::{Addr, Pc, WORD};
use crate::code::{FuncId, Program};
use crate::error::StackError;
use crate::stack::GStack;

/// One frame of a goroutine stack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame {
    /// 0 for the innermost (running) frame, counting outwards.
    pub index: usize,
    /// The frame's function.
    pub func: FuncId,
    /// The PC in this frame: the current PC for the innermost frame, the return PC into it for
    /// the others.
    pub pc: Pc,
    /// Lowest address of the frame.
    pub sp: Addr,
    /// One past the highest address of the frame: the caller's SP.
    pub fp: Addr,
    /// The real return PC (through any barrier).
    pub lr: Pc,
    /// The stkbar index of the barrier on this frame's return-PC slot, if there is one.
    pub stkbar: Option<usize>,
}

impl Frame {
    /// The return-PC slot, the frame's top word.
    #[inline]
    pub fn lr_slot(&self) -> Addr {
        self.fp.sub(WORD)
    }

    /// Frame size in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.fp.offset_from(self.sp)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Start,
    Walking,
    Done,
}

/// Iterator over the frames of a stack; see [`gentraceback`].
#[derive(Debug)]
pub struct Gentraceback<'a> {
    prog: &'a Program,
    gs: &'a GStack,
    pc: Pc,
    sp: Addr,
    /// Next stkbar entry the walk expects to meet.
    stkbar_next: usize,
    index: usize,
    state: State,
    // Constants of the walk, looked up once.
    lo: Addr,
    hi: Addr,
    goexit_ret: Pc,
    barrier_pc: Pc,
}

/// The frames of `gs` starting from `(pc, sp)`, innermost first.
pub fn gentraceback<'a>(prog: &'a Program, gs: &'a GStack, pc: Pc, sp: Addr) -> Gentraceback<'a> {
    Gentraceback {
        prog,
        gs,
        pc,
        sp,
        stkbar_next: gs.stkbar_pos,
        index: 0,
        state: State::Start,
        lo: gs.stack.lo(),
        hi: gs.stack.hi(),
        goexit_ret: prog.goexit_return_pc(),
        barrier_pc: prog.stack_barrier_pc(),
    }
}

impl GStack {
    /// The frames of this goroutine from its saved PC and SP, innermost first.
    pub fn frames<'a>(&'a self, prog: &'a Program) -> Gentraceback<'a> {
        gentraceback(prog, self, self.sched.pc, self.sched.sp)
    }

    /// The functions on the stack, innermost first (a traceback).
    pub fn traceback(&self, prog: &Program) -> Result<Vec<FuncId>, StackError> {
        self.frames(prog).map(|f| f.map(|f| f.func)).collect()
    }
}

/// Why a step could not produce a frame; turned into a [`StackError`] off the hot path.
enum Fault {
    BadSp,
    UnknownPc,
    Frameless(FuncId),
    PastTop(FuncId, Addr),
    MissedBarrier(Addr),
    LostBarrier(Addr, u64),
    EarlyGoexit(FuncId, Addr),
    StrayBarriers,
    NoGoexit(FuncId, Addr, Pc),
}

impl Gentraceback<'_> {
    /// Resolves a start inside `stackBarrier` (Go's fix-up for a traceback that starts mid-hit).
    fn start_in_trampoline(&mut self) -> Result<(), StackError> {
        let gs = self.gs;
        let sp = self.sp;
        let pos = gs.stkbar_pos;
        let below_sp = |i: usize| gs.stack.stkbar(i).saved_lr_ptr < sp;
        let hit = if pos < gs.stkbar_len && below_sp(pos) {
            pos // the trampoline has not incremented stkbar_pos yet
        } else if pos > 0 && below_sp(pos - 1) {
            pos - 1 // it has
        } else {
            return Err(StackError::InconsistentStackBarrier {
                stack: gs.id(),
                sp,
                stkbars: gs.stkbars_string(Some(pos)),
            });
        };
        self.pc = gs.stack.stkbar(hit).saved_lr_val;
        self.stkbar_next = hit + 1;
        Ok(())
    }

    /// One frame at `(self.pc, self.sp)`; `Ok(None)` at the end of an empty stack.
    #[inline]
    fn step(&mut self) -> Result<Option<Frame>, Fault> {
        let (pc, sp) = (self.pc, self.sp);
        if sp == self.hi && pc == self.goexit_ret {
            return Ok(None); // an empty stack
        }
        if sp < self.lo || sp >= self.hi || !sp.is_word_aligned() {
            return Err(Fault::BadSp);
        }
        // Only user functions have frames: runtime functions report a frame size of 0.
        let (func, frame_size) = self.prog.findframe(pc).ok_or(Fault::UnknownPc)?;
        if frame_size == 0 {
            return Err(Fault::Frameless(func));
        }
        let fp = sp.add(frame_size);
        if fp > self.hi {
            return Err(Fault::PastTop(func, fp));
        }
        let slot = fp.sub(WORD);
        let raw = self.gs.stack.word(slot);
        let gs = self.gs;
        let next_bar =
            (self.stkbar_next < gs.stkbar_len).then(|| gs.stack.stkbar(self.stkbar_next));
        let (lr, stkbar) = if raw == self.barrier_pc.0 {
            match next_bar {
                Some(b) if b.saved_lr_ptr == slot => {
                    self.stkbar_next += 1;
                    (b.saved_lr_val, Some(self.stkbar_next - 1))
                }
                _ => return Err(Fault::MissedBarrier(slot)),
            }
        } else {
            if next_bar.is_some_and(|b| b.saved_lr_ptr <= slot) {
                return Err(Fault::LostBarrier(slot, raw));
            }
            (Pc(raw), None)
        };
        if lr == self.goexit_ret {
            if fp != self.hi {
                return Err(Fault::EarlyGoexit(func, fp));
            }
            if self.stkbar_next != gs.stkbar_len {
                return Err(Fault::StrayBarriers);
            }
        } else if fp == self.hi {
            return Err(Fault::NoGoexit(func, fp, lr));
        }
        let index = self.index;
        self.pc = lr;
        self.sp = fp;
        self.index += 1;
        Ok(Some(Frame {
            index,
            func,
            pc,
            sp,
            fp,
            lr,
            stkbar,
        }))
    }

    /// The error for a fault at the current frame.
    #[cold]
    #[inline(never)]
    fn error(&self, fault: Fault) -> StackError {
        let (gs, prog) = (self.gs, self.prog);
        let stack = gs.id();
        let (frame, sp, pc) = (self.index, self.sp, self.pc);
        let name = |id: FuncId| prog.func(id).name.clone();
        match fault {
            Fault::BadSp => StackError::BadSp { stack, frame, sp },
            Fault::UnknownPc => StackError::UnknownPc {
                stack,
                frame,
                sp,
                pc,
            },
            Fault::Frameless(id) => StackError::FramelessPc {
                stack,
                frame,
                sp,
                pc,
                func: name(id),
            },
            Fault::PastTop(id, fp) => StackError::FramePastTop {
                stack,
                frame,
                func: name(id),
                sp,
                fp,
            },
            Fault::MissedBarrier(slot) => StackError::MissedStackBarrier {
                stack,
                frame,
                slot,
                stkbars: gs.stkbars_string(Some(self.stkbar_next)),
            },
            Fault::LostBarrier(slot, raw) => {
                let b = gs.stack.stkbar(self.stkbar_next);
                gs.barrier_lost(format!(
                    "stkbar[{}] names {} but frame {frame} has its return PC {} at {slot}",
                    self.stkbar_next,
                    b.saved_lr_ptr,
                    Pc(raw)
                ))
            }
            Fault::EarlyGoexit(id, fp) => StackError::EarlyGoexit {
                stack,
                frame,
                func: name(id),
                sp,
                fp,
            },
            Fault::StrayBarriers => gs.barrier_lost(format!(
                "stkbar[{}..{}] lie above the outermost frame",
                self.stkbar_next, gs.stkbar_len
            )),
            Fault::NoGoexit(id, fp, lr) => StackError::NoGoexit {
                stack,
                frame,
                func: name(id),
                sp,
                fp,
                lr,
            },
        }
    }
}

impl Iterator for Gentraceback<'_> {
    type Item = Result<Frame, StackError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.state == State::Start {
            self.state = State::Walking;
            if self.prog.findfunc(self.pc) == Some(self.prog.stack_barrier())
                && let Err(e) = self.start_in_trampoline()
            {
                self.state = State::Done;
                return Some(Err(e));
            }
        }
        if self.state == State::Done {
            return None;
        }
        match self.step() {
            Ok(Some(frame)) => {
                if frame.lr == self.goexit_ret {
                    self.state = State::Done;
                }
                Some(Ok(frame))
            }
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(fault) => {
                self.state = State::Done;
                Some(Err(self.error(fault)))
            }
        }
    }
}

impl std::iter::FusedIterator for Gentraceback<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::testutil::{f, goroutine, mark, pool, program, three_frames};

    #[test]
    fn frames_of_a_call_chain_come_innermost_first_with_their_return_pcs() {
        let prog = program();
        let (_pool, gs) = three_frames(&prog, StackBarrierMode::GO);
        let chain: Vec<FuncId> = gs.traceback(&prog).unwrap().into_iter().rev().collect();
        let frames: Vec<Frame> = gs.frames(&prog).map(Result::unwrap).collect();
        assert_eq!(frames.len(), 3);
        let hi = gs.stack().hi();
        // Outermost: mid [hi-64, hi), returns to goexit.
        assert_eq!(frames[2].func, chain[0]);
        assert_eq!((frames[2].sp, frames[2].fp), (hi.sub(64), hi));
        assert_eq!(frames[2].lr, prog.goexit_return_pc());
        // leaf was called from mid's call site 1, tiny from leaf's call site 2.
        assert_eq!(frames[1].func, chain[1]);
        assert_eq!(frames[1].lr, prog.func(chain[0]).return_pc(1));
        assert_eq!(frames[1].pc, prog.func(chain[1]).return_pc(2));
        assert_eq!(frames[0].func, chain[2]);
        assert_eq!(frames[0].pc, prog.func(chain[2]).entry);
        assert_eq!(frames[0].sp, gs.sp());
        for (i, fr) in frames.iter().enumerate() {
            assert_eq!(fr.index, i);
            assert_eq!(fr.stkbar, None);
        }
        assert_eq!(
            gs.traceback(&prog).unwrap(),
            vec![chain[2], chain[1], chain[0]]
        );
    }

    #[test]
    fn an_empty_stack_has_no_frames() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let gs = goroutine(&prog, &mut pool, &[]);
        assert_eq!(gs.frames(&prog).count(), 0);
    }

    #[test]
    fn unwinder_sees_through_barriers() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::EVERY_FRAME);
        let chain: Vec<_> = (0..20).map(|i| prog.user_func(i).unwrap()).collect();
        let mut gs = goroutine(&prog, &mut pool, &chain);
        let before: Vec<Frame> = gs.frames(&prog).map(Result::unwrap).collect();
        let installed = mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        assert_eq!(installed, 19, "every frame but the running one");
        let after: Vec<Frame> = gs.frames(&prog).map(Result::unwrap).collect();
        assert_eq!(after.len(), before.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                (a.func, a.pc, a.sp, a.fp, a.lr),
                (b.func, b.pc, b.sp, b.fp, b.lr)
            );
            assert_eq!(
                gs.read(a.lr_slot()).unwrap() == prog.stack_barrier_pc().0,
                a.stkbar.is_some()
            );
        }
        assert_eq!(after[0].stkbar, None);
        assert_eq!(after[1].stkbar, Some(0));
        assert_eq!(after[19].stkbar, Some(18), "the outermost frame's too");
        assert_eq!(after[19].lr, prog.goexit_return_pc());
    }

    fn corrupt(gs: &mut GStack, addr: Addr, value: u64) {
        assert!(gs.stack.write(addr, value));
    }

    #[test]
    fn corrupt_return_pcs_are_errors_naming_the_frame() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let chain = [
            f(&prog, "main.mid"),
            f(&prog, "main.leaf"),
            f(&prog, "main.tiny"),
        ];
        type Expect = fn(&StackError) -> bool;
        let cases: Vec<(u64, Expect)> = vec![
            (0xdead, |e| {
                matches!(e, StackError::UnknownPc { frame: 1, .. })
            }),
            (prog.func(prog.gogo()).entry.0 + 4, |e| {
                matches!(e, StackError::FramelessPc { frame: 1, .. })
            }),
            (prog.goexit_return_pc().0, |e| {
                matches!(e, StackError::EarlyGoexit { frame: 0, .. })
            }),
            (prog.stack_barrier_pc().0, |e| {
                matches!(e, StackError::MissedStackBarrier { frame: 0, .. })
            }),
            // big's 1 KiB frame runs past the top from leaf's SP.
            (prog.func(f(&prog, "main.big")).return_pc(0).0, |e| {
                matches!(e, StackError::FramePastTop { frame: 1, .. })
            }),
        ];
        for (value, is_expected) in cases {
            let mut gs = goroutine(&prog, &mut pool, &chain);
            let slot = gs.frames(&prog).next().unwrap().unwrap().lr_slot();
            corrupt(&mut gs, slot, value);
            let results: Vec<_> = gs.frames(&prog).collect();
            let err = results.last().unwrap().as_ref().unwrap_err();
            assert!(is_expected(err), "{value:#x}: {err}");
            assert!(err.to_string().contains("goroutine 1 stack ["), "{err}");
            assert!(results[..results.len() - 1].iter().all(Result::is_ok));
        }
        // The outermost frame must return to goexit.
        let mut gs = goroutine(&prog, &mut pool, &chain);
        let top_slot = gs.stack().hi().sub(8);
        corrupt(&mut gs, top_slot, prog.func(chain[0]).return_pc(0).0);
        let err = gs.frames(&prog).find_map(Result::err).unwrap();
        assert!(
            matches!(err, StackError::NoGoexit { frame: 2, .. }),
            "{err}"
        );
        // A bad starting SP.
        let gs = goroutine(&prog, &mut pool, &chain);
        let err = gentraceback(&prog, &gs, gs.pc(), gs.sp().add(4))
            .find_map(Result::err)
            .unwrap();
        assert!(matches!(err, StackError::BadSp { frame: 0, .. }), "{err}");
    }

    #[test]
    fn a_recorded_barrier_whose_slot_was_overwritten_is_lost() {
        let prog = program();
        let (_pool, mut gs) = three_frames(&prog, StackBarrierMode::EVERY_FRAME);
        let chain: Vec<FuncId> = gs.traceback(&prog).unwrap().into_iter().rev().collect();
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        // stkbar[0] is leaf's slot, which returns into mid: overwrite it with another of mid's
        // return PCs.
        let slot = gs.stkbar().next().unwrap().saved_lr_ptr;
        corrupt(&mut gs, slot, prog.func(chain[0]).return_pc(0).0);
        let err = gs.frames(&prog).find_map(Result::err).unwrap();
        assert!(matches!(err, StackError::StackBarrierLost { .. }), "{err}");
        assert!(
            err.to_string().contains("@@@"),
            "the stkbar dump marks stkbar_pos: {err}"
        );
    }

    #[test]
    fn a_traceback_starting_inside_the_trampoline_simulates_the_hit() {
        let prog = program();
        let (_pool, mut gs) = three_frames(&prog, StackBarrierMode::EVERY_FRAME);
        mark(&prog, &mut gs, StackBarrierMode::EVERY_FRAME);
        let frames: Vec<Frame> = gs.frames(&prog).map(Result::unwrap).collect();
        // tiny returned (frame 0 has no barrier), then leaf into the trampoline: SP is mid's, PC
        // is stackBarrier.
        assert_eq!(frames[0].stkbar, None);
        gs.sched = crate::stack::Gobuf {
            pc: prog.stack_barrier_pc(),
            sp: frames[1].fp,
        };
        let want: Vec<(FuncId, Pc)> = frames[2..].iter().map(|fr| (fr.func, fr.pc)).collect();
        let got = |gs: &GStack| -> Vec<(FuncId, Pc)> {
            gs.frames(&prog)
                .map(|fr| fr.map(|fr| (fr.func, fr.pc)).unwrap())
                .collect()
        };
        assert_eq!(got(&gs), want, "before stkbar_pos moved");
        gs.stkbar_pos = 1;
        assert_eq!(got(&gs), want, "after stkbar_pos moved");
        // Neither neighbour of stkbar_pos lies below the SP: inconsistent.
        gs.sched.sp = frames[1].sp;
        let err = gs.frames(&prog).find_map(Result::err).unwrap();
        assert!(
            matches!(err, StackError::InconsistentStackBarrier { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_unwinder_terminates_on_arbitrary_garbage() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let chain: Vec<_> = (0..12).map(|i| prog.user_func(i).unwrap()).collect();
        let clean = goroutine(&prog, &mut pool, &chain);
        let words = clean.used() / 8;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for trial in 0..2000 {
            let mut gs = goroutine(&prog, &mut pool, &chain);
            for _ in 0..1 + trial % 4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let addr = gs.sp().add((x as usize % words) * 8);
                let hi = gs.stack().hi().0;
                let value = match x % 4 {
                    0 => x,
                    1 => prog.stack_barrier_pc().0,
                    2 => {
                        prog.func(prog.user_func(x as usize).unwrap())
                            .return_pc(0)
                            .0
                    }
                    _ => hi,
                };
                corrupt(&mut gs, addr, value);
            }
            // At most one frame per 16 bytes, then one error at most.
            assert!(gs.frames(&prog).count() <= words / 2 + 1);
            let results: Vec<_> = gs.frames(&prog).collect();
            assert!(
                results.iter().rev().skip(1).all(Result::is_ok),
                "only the last item may be an error"
            );
        }
    }
}
