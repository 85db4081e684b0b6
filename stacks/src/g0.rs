//! An M's system stack (g0) and its unwinder: where runtime code runs between and on behalf of
//! goroutines, and what a profiling signal that lands there sees.
//!
//! Invariant: a [`G0Stack`] holds exactly the frames of the runtime functions its M is running,
//! and [`g0traceback`] from its registers yields exactly those functions, innermost first, or one
//! [`G0TracebackError`] and then nothing. The outermost function is one a g0 traceback stops at
//! (Go's `topofstack`: `mstart`, or the switch that entered g0, `mcall` or `morestack`); it has no
//! frame here, since the switch leaves SP at the top of the stack. Every later function has a frame
//! `[sp, sp + frame_size)` below its caller's, with the return PC into the caller in its top word,
//! as a goroutine frame has. Nothing on g0 carries stack barriers: those are for goroutine stacks.
//!
//! Algorithm. Entering g0 through a switch resets the stack to that switch's function at `hi`; each
//! runtime call pushes a frame holding the caller's call-site return PC (`systemstack`'s caller is
//! `mstart`, as Go's `systemstack` fakes it "to stop traceback"); a return pops it. The traceback
//! starts at `(pc, sp)`: the frame is `findfunc(pc)`'s; a top-of-stack function ends the walk;
//! otherwise the return PC in the frame's top word and the frame's end are the next `(pc, sp)`. Each
//! step moves SP up by a whole frame of at least 16 bytes and must stay within the stack, so the walk
//! ends. The M keeps the list of functions it entered beside the memory ([`G0Stack::frames`]): the
//! ground truth the profiler checks a g0 traceback against.

use std::fmt;

use crate::addr::{Addr, Pc, WORD};
use crate::code::{FuncId, FuncKind, Program};

/// Base of the M system stacks, below the goroutine stacks: M `m`'s g0 stack is the
/// [`G0_STACK_SIZE`] bytes from `G0_STACK_BASE + m·G0_STACK_SIZE`.
pub const G0_STACK_BASE: u64 = 0xc7_f000_0000;
/// Size of an M's g0 stack: Go 1.7's `malg(8192)` for an M it starts itself on Linux.
pub const G0_STACK_SIZE: u64 = 8 << 10;

/// An M's system stack: its memory, its registers while on it, and the functions it holds.
#[derive(Clone, Debug)]
pub struct G0Stack {
    lo: Addr,
    words: Box<[u64]>,
    sp: Addr,
    pc: Pc,
    /// The functions on the stack, outermost first.
    frames: Vec<FuncId>,
}

impl G0Stack {
    /// M `m`'s g0 stack, running `mstart` (the stack a new M starts on).
    pub fn new(prog: &Program, m: usize) -> G0Stack {
        let lo = Addr(G0_STACK_BASE + m as u64 * G0_STACK_SIZE);
        let mut g0 = G0Stack {
            lo,
            words: vec![0; (G0_STACK_SIZE / WORD as u64) as usize].into_boxed_slice(),
            sp: lo.add(G0_STACK_SIZE as usize),
            pc: Pc(0),
            frames: Vec::with_capacity(8),
        };
        g0.enter(prog, prog.runtime_fn(crate::code::RuntimeFn::Mstart));
        g0
    }

    /// Lowest address of the stack.
    pub fn lo(&self) -> Addr {
        self.lo
    }

    /// One past the highest address: the SP a switch to g0 sets.
    pub fn hi(&self) -> Addr {
        self.lo.add(G0_STACK_SIZE as usize)
    }

    /// The SP while the M runs on g0.
    pub fn sp(&self) -> Addr {
        self.sp
    }

    /// The PC while the M runs on g0: the entry of the innermost function.
    pub fn pc(&self) -> Pc {
        self.pc
    }

    /// The functions on the stack, outermost first (the ground truth of a traceback).
    pub fn frames(&self) -> &[FuncId] {
        &self.frames
    }

    /// Starts the stack afresh at `top`, a function a traceback stops at (`mstart`, `mcall`,
    /// `morestack`): what a switch to g0 does.
    pub fn enter(&mut self, prog: &Program, top: FuncId) {
        debug_assert!(prog.func(top).kind.top_of_g0_stack());
        self.frames.clear();
        self.frames.push(top);
        self.sp = self.hi();
        self.pc = prog.func(top).entry;
    }

    /// The innermost function calls `callee`: a frame with the return PC into the caller.
    pub fn call(&mut self, prog: &Program, callee: FuncId) {
        let caller = *self.frames.last().expect("a g0 stack is never empty");
        let f = prog.func(callee);
        debug_assert!(matches!(
            f.kind,
            FuncKind::Runtime | FuncKind::Schedule | FuncKind::Systemstack
        ));
        let sp = self.sp.sub(f.frame_size);
        assert!(sp >= self.lo, "g0 stack overflow calling {}", f.name);
        let slot = sp.add(f.frame_size - WORD);
        self.words[self.index(slot)] = prog.func(caller).return_pc(0).0;
        self.sp = sp;
        self.pc = f.entry;
        self.frames.push(callee);
    }

    /// The innermost function returns to its caller.
    pub fn ret(&mut self, prog: &Program) {
        assert!(self.frames.len() > 1, "the top of a g0 stack never returns");
        let f = prog.func(self.frames.pop().expect("checked"));
        let fp = self.sp.add(f.frame_size);
        self.pc = Pc(self.words[self.index(fp.sub(WORD))]);
        self.sp = fp;
    }

    fn index(&self, a: Addr) -> usize {
        a.offset_from(self.lo) / WORD
    }

    /// The word at `a`, if it lies in the stack and is word aligned.
    fn word(&self, a: Addr) -> Option<u64> {
        (a >= self.lo && a < self.hi() && a.is_word_aligned()).then(|| self.words[self.index(a)])
    }
}

/// Why a g0 traceback stopped short.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct G0TracebackError {
    /// Frame index from the innermost frame.
    pub frame: usize,
    /// The frame's SP.
    pub sp: Addr,
    /// The frame's PC.
    pub pc: Pc,
    /// What was wrong.
    pub what: &'static str,
}

impl fmt::Display for G0TracebackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "g0 frame {} at sp={} pc={}: {}",
            self.frame, self.sp, self.pc, self.what
        )
    }
}

impl std::error::Error for G0TracebackError {}

/// The functions on `g0` from `(pc, sp)`, innermost first (Go's `gentraceback` on a system
/// stack, without `_TraceJumpStack`).
pub fn g0traceback<'a>(
    prog: &'a Program,
    g0: &'a G0Stack,
    pc: Pc,
    sp: Addr,
) -> impl Iterator<Item = Result<FuncId, G0TracebackError>> + 'a {
    let (mut pc, mut sp, mut frame, mut done) = (pc, sp, 0, false);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        done = true;
        let err = |what| {
            Some(Err(G0TracebackError {
                frame,
                sp,
                pc,
                what,
            }))
        };
        if sp < g0.lo || sp > g0.hi() || !sp.is_word_aligned() {
            return err("SP outside the g0 stack");
        }
        let Some(id) = prog.findfunc(pc) else {
            return err("PC in no function");
        };
        let f = prog.func(id);
        if f.kind.top_of_g0_stack() {
            return Some(Ok(id));
        }
        if f.frame_size == 0 || f.kind == FuncKind::User {
            return err("PC in a function with no g0 frame");
        }
        let fp = sp.add(f.frame_size);
        let Some(lr) = g0.word(fp.sub(WORD)).filter(|_| fp <= g0.hi()) else {
            return err("frame runs past the top of the g0 stack");
        };
        (pc, sp, frame, done) = (Pc(lr), fp, frame + 1, false);
        Some(Ok(id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::RuntimeFn;
    use crate::testutil::program;

    fn names(prog: &Program, fs: impl IntoIterator<Item = FuncId>) -> Vec<String> {
        fs.into_iter()
            .map(|f| prog.func(f).name.to_string())
            .collect()
    }

    #[test]
    fn a_g0_traceback_yields_the_entered_functions_innermost_first() {
        let prog = program();
        let rf = |f| prog.runtime_fn(f);
        let mut g0 = G0Stack::new(&prog, 3);
        assert_eq!(g0.lo(), Addr(G0_STACK_BASE + 3 * G0_STACK_SIZE));
        let walk = |g0: &G0Stack| -> Vec<FuncId> {
            g0traceback(&prog, g0, g0.pc(), g0.sp())
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(names(&prog, walk(&g0)), ["runtime.mstart"]);
        g0.enter(&prog, prog.morestack());
        for f in [
            RuntimeFn::Newstack,
            RuntimeFn::Scanstack,
            RuntimeFn::GcInstallStackBarrier,
        ] {
            g0.call(&prog, rf(f));
        }
        let want = [
            "runtime.gcInstallStackBarrier",
            "runtime.scanstack",
            "runtime.newstack",
            "runtime.morestack",
        ];
        assert_eq!(names(&prog, walk(&g0)), want);
        let mut truth = g0.frames().to_vec();
        truth.reverse();
        assert_eq!(walk(&g0), truth);
        g0.ret(&prog);
        g0.call(&prog, rf(RuntimeFn::GcRemoveStackBarrier));
        assert_eq!(names(&prog, walk(&g0))[0], "runtime.gcRemoveStackBarrier");
        g0.ret(&prog);
        g0.ret(&prog);
        assert_eq!(
            names(&prog, walk(&g0)),
            ["runtime.newstack", "runtime.morestack"]
        );
        // systemstack's caller is mstart, where the walk stops.
        g0.enter(&prog, rf(RuntimeFn::Mstart));
        g0.call(&prog, rf(RuntimeFn::Systemstack));
        g0.call(&prog, rf(RuntimeFn::BulkBarrierFunc1));
        assert_eq!(
            names(&prog, walk(&g0)),
            [
                "runtime.heapBitsBulkBarrier.func1",
                "runtime.systemstack",
                "runtime.mstart"
            ]
        );
    }

    #[test]
    fn a_g0_traceback_from_bad_registers_is_one_error() {
        let prog = program();
        let mut g0 = G0Stack::new(&prog, 0);
        g0.enter(&prog, prog.mcall());
        g0.call(&prog, prog.runtime_fn(RuntimeFn::ParkM));
        g0.call(&prog, prog.schedule());
        let user = prog.user_func(0).unwrap();
        let cases = [
            (g0.pc(), g0.sp().add(4), "SP outside the g0 stack"),
            (g0.pc(), g0.hi().add(8), "SP outside the g0 stack"),
            (Pc(3), g0.sp(), "PC in no function"),
            (
                prog.func(user).entry,
                g0.sp(),
                "PC in a function with no g0 frame",
            ),
            (
                g0.pc(),
                g0.hi().sub(8),
                "frame runs past the top of the g0 stack",
            ),
        ];
        for (pc, sp, what) in cases {
            let r: Vec<_> = g0traceback(&prog, &g0, pc, sp).collect();
            assert_eq!(r.len(), 1, "{what}");
            assert_eq!(r[0].unwrap_err().what, what);
        }
    }
}
