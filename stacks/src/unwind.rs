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
use crate::code::{FuncId, FuncKind, Program};
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

    fn step(&mut self) -> Result<Option<Frame>, StackError> {
        let (prog, gs) = (self.prog, self.gs);
        let stack = gs.id();
        let (pc, sp, index) = (self.pc, self.sp, self.index);
        let goexit_ret = prog.goexit_return_pc();
        if sp == stack.hi && pc == goexit_ret {
            return Ok(None); // an empty stack
        }
        if sp < stack.lo || sp >= stack.hi || !sp.is_word_aligned() {
            return Err(StackError::BadSp {
                stack,
                frame: index,
                sp,
            });
        }
        let func = prog.findfunc(pc).ok_or(StackError::UnknownPc {
            stack,
            frame: index,
            sp,
            pc,
        })?;
        let f = prog.func(func);
        if f.kind != FuncKind::User {
            return Err(StackError::FramelessPc {
                stack,
                frame: index,
                sp,
                pc,
                func: f.name.clone(),
            });
        }
        let fp = sp.add(f.frame_size);
        if fp > stack.hi {
            return Err(StackError::FramePastTop {
                stack,
                frame: index,
                func: f.name.clone(),
                sp,
                fp,
            });
        }
        let slot = fp.sub(WORD);
        let raw = gs
            .stack
            .read(slot)
            .expect("slot lies in [sp, hi), checked above");
        let next_bar =
            (self.stkbar_next < gs.stkbar_len).then(|| gs.stack.stkbar(self.stkbar_next));
        let (lr, stkbar) = if Pc(raw) == prog.stack_barrier_pc() {
            match next_bar {
                Some(b) if b.saved_lr_ptr == slot => {
                    self.stkbar_next += 1;
                    (b.saved_lr_val, Some(self.stkbar_next - 1))
                }
                _ => {
                    return Err(StackError::MissedStackBarrier {
                        stack,
                        frame: index,
                        slot,
                        stkbars: gs.stkbars_string(Some(self.stkbar_next)),
                    });
                }
            }
        } else {
            if let Some(b) = next_bar.filter(|b| b.saved_lr_ptr <= slot) {
                return Err(gs.barrier_lost(format!(
                    "stkbar[{}] names {} but frame {index} has its return PC {} at {slot}",
                    self.stkbar_next,
                    b.saved_lr_ptr,
                    Pc(raw)
                )));
            }
            (Pc(raw), None)
        };
        if lr == goexit_ret {
            if fp != stack.hi {
                return Err(StackError::EarlyGoexit {
                    stack,
                    frame: index,
                    func: f.name.clone(),
                    sp,
                    fp,
                });
            }
            if self.stkbar_next != gs.stkbar_len {
                return Err(gs.barrier_lost(format!(
                    "stkbar[{}..{}] lie above the outermost frame",
                    self.stkbar_next, gs.stkbar_len
                )));
            }
        } else if fp == stack.hi {
            return Err(StackError::NoGoexit {
                stack,
                frame: index,
                func: f.name.clone(),
                sp,
                fp,
                lr,
            });
        }
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
}

impl Iterator for Gentraceback<'_> {
    type Item = Result<Frame, StackError>;

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
                if frame.lr == self.prog.goexit_return_pc() {
                    self.state = State::Done;
                }
                Some(Ok(frame))
            }
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Gentraceback<'_> {}
