//! Properties of the `stacks` crate, checked against a plain shadow model.
//!
//! Random programs (frames of 16 B to 4 KiB, pointer densities 0–100 %) run random sequences of
//! calls, returns, local stores, up-pointer stores, runtime bulk writes, multi-frame unwinds, stack
//! growth and shrinking, goroutine exits with frames left, concurrent scans that install barriers,
//! re-scans and barrier removals. Beside the real goroutine stack run:
//! * a *model*: a `Vec` of frames, outermost first, each with its function, return PC and local words,
//!   where a pointer into the stack is kept symbolically as (frame, word) so it survives moves;
//! * a *twin*: a second real goroutine that performs the same mutator operations but is never scanned,
//!   so it never has barriers.
//!
//! After every operation: the unwinder yields the model's frames with the model's return PCs and
//! words; the stkbar array is the size the mode reserves (Go's default offset's for `Off`) and never
//! overflows; every installed barrier is accounted for as hit, unwound, removed or still pending; and
//! each return — the goroutine's final one included — hits a barrier exactly when the model says the
//! popped frame carried one, through any number of stack moves. The model predicts the barrier
//! placement (Go's `scanstack`: never the running frame, the outermost frame like any other), when a
//! call fails Go's prologue check against `stackguard0` (each failure one `newstack` doubling), and
//! when `shrinkstack` halves the stack. After a removal, or `unwind_barriers(hi)` at a goroutine exit,
//! the live stack is byte-identical to the twin's. At every re-scan, every word that changed since the
//! scan (other than through a write-barriered up-pointer store) lies within the re-scan, every changed
//! pointer slot is visited, and the re-scan covers at most
//! `(sp0 − sp) + max(2x, first_offset, size(frame 0 at scan)) + size(F)` bytes, where `sp0` is the
//! scan-time SP, `sp` the current one, `x` the highest return-PC slot returned through (or unwound
//! past) since the scan relative to `sp0`, and `F` the frame holding the lowest un-hit barrier.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use stacks::stack::{FIXED_STACK, STACK_GUARD, STACK_LIMIT, STACK_SMALL};
use stacks::{
    Addr, Call, FIRST_STACK_BARRIER_OFFSET, FuncId, GStack, Pc, Program, RandomProgram, Ret,
    ScanKind, StackBarrierMode, StackError, StackPool, WORD, max_stack_barriers, scanstack,
};

/// The pools' largest stack: room for 160 calls of 4 KiB frames even when half of every stack is
/// stkbar array, small enough that repeated growth reaches it.
const MAX_STACK: usize = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MVal {
    /// A plain word: zero, a heap pointer, or a scalar (which may look like anything).
    Raw(u64),
    /// A pointer to word `word` of frame `frame` (outermost = 0).
    Ref { frame: usize, word: usize },
}

#[derive(Clone, Debug)]
struct MFrame {
    func: FuncId,
    ret_pc: Pc,
    locals: Vec<MVal>,
    /// Whether the model expects a barrier on this frame's return-PC slot.
    barrier: bool,
}

/// A word position, as its distance below the stack top (preserved by stack moves).
type Depth = usize;

/// A normalised word: what a position holds, independent of where the stack lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NVal {
    Raw(u64),
    RefTo(Depth),
    Ret(Pc),
}

#[derive(Clone, Debug)]
enum Op {
    Call {
        func: usize,
        site: u32,
    },
    Ret,
    Local {
        slot: usize,
        value: u64,
        kind: u8,
    },
    UpStore {
        up: usize,
        slot: usize,
        value: u64,
        kind: u8,
    },
    Bulk {
        up: usize,
        slot: usize,
        len: usize,
        value: u64,
    },
    Unwind {
        n: usize,
    },
    Grow,
    Shrink,
    Goexit,
    Scan,
    Rescan,
    Remove,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<usize>(), 0u32..4).prop_map(|(func, site)| Op::Call { func, site }),
        18 => Just(Op::Ret),
        14 => (any::<usize>(), any::<u64>(), any::<u8>()).prop_map(|(slot, value, kind)| Op::Local { slot, value, kind }),
        5 => (1usize..8, any::<usize>(), any::<u64>(), any::<u8>())
            .prop_map(|(up, slot, value, kind)| Op::UpStore { up, slot, value, kind }),
        3 => (1usize..8, any::<usize>(), 1usize..4, any::<u64>())
            .prop_map(|(up, slot, len, value)| Op::Bulk { up, slot, len, value }),
        3 => (1usize..6).prop_map(|n| Op::Unwind { n }),
        2 => Just(Op::Grow),
        4 => Just(Op::Shrink),
        1 => Just(Op::Goexit),
        4 => Just(Op::Scan),
        6 => Just(Op::Rescan),
        2 => Just(Op::Remove),
    ]
}

fn mode() -> impl Strategy<Value = StackBarrierMode> {
    prop_oneof![
        Just(StackBarrierMode::Off),
        Just(StackBarrierMode::EVERY_FRAME),
        Just(StackBarrierMode::On { first_offset: 16 }),
        Just(StackBarrierMode::On { first_offset: 64 }),
        Just(StackBarrierMode::On { first_offset: 256 }),
        Just(StackBarrierMode::GO),
    ]
}

/// What the last concurrent scan left to check against.
struct ScanSnapshot {
    sp0_depth: Depth,
    /// Size of the running frame at the scan (0 for an empty stack).
    frame0_size: usize,
    words: HashMap<Depth, NVal>,
    /// Positions written through up-pointers since the scan (those writes had write barriers).
    barriered: HashSet<Depth>,
    /// The highest point (smallest depth) returned through or unwound past since the scan.
    passed_depth: Option<Depth>,
}

struct Harness<'p> {
    prog: &'p Program,
    mode: StackBarrierMode,
    pool: StackPool,
    twin_pool: StackPool,
    gs: GStack,
    twin: GStack,
    model: Vec<MFrame>,
    snapshot: Option<ScanSnapshot>,
}

impl<'p> Harness<'p> {
    fn new(prog: &'p Program, mode: StackBarrierMode) -> Self {
        let mut pool = StackPool::with_max_stack_size(mode, MAX_STACK);
        let mut twin_pool = StackPool::with_max_stack_size(mode, MAX_STACK);
        let gs = GStack::new(1, pool.stackalloc(2048).unwrap(), prog);
        let twin = GStack::new(1, twin_pool.stackalloc(2048).unwrap(), prog);
        Harness {
            prog,
            mode,
            pool,
            twin_pool,
            gs,
            twin,
            model: Vec::new(),
            snapshot: None,
        }
    }

    fn hi(&self) -> Addr {
        self.gs.stack().hi()
    }

    fn size(&self, i: usize) -> usize {
        self.prog.func(self.model[i].func).frame_size
    }

    /// SP of model frame `i` in the current stack.
    fn frame_sp(&self, i: usize) -> Addr {
        let used: usize = (0..=i).map(|j| self.size(j)).sum();
        self.hi().sub(used)
    }

    fn materialize(&self, v: MVal) -> u64 {
        match v {
            MVal::Raw(x) => x,
            MVal::Ref { frame, word } => self.frame_sp(frame).add(word * WORD).0,
        }
    }

    fn normalized(&self) -> HashMap<Depth, NVal> {
        let hi = self.hi();
        let mut out = HashMap::new();
        for (i, fr) in self.model.iter().enumerate() {
            let sp = self.frame_sp(i);
            for (w, &v) in fr.locals.iter().enumerate() {
                let n = match v {
                    MVal::Raw(x) => NVal::Raw(x),
                    MVal::Ref { frame, word } => {
                        NVal::RefTo(hi.offset_from(self.frame_sp(frame).add(word * WORD)))
                    }
                };
                out.insert(hi.offset_from(sp.add(w * WORD)), n);
            }
            out.insert(
                hi.offset_from(sp.add(self.size(i) - WORD)),
                NVal::Ret(fr.ret_pc),
            );
        }
        out
    }

    /// A value for a slot of frame `holder`: pointer slots get 0, a heap pointer or a pointer into
    /// frame `holder` or an outer one; scalars get anything, stack-looking values included.
    fn value_for(&self, holder: usize, slot: usize, value: u64, kind: u8) -> MVal {
        let f = self.prog.func(self.model[holder].func);
        if f.ptr_map[slot] {
            match kind % 3 {
                0 => MVal::Raw(0),
                1 => MVal::Raw(0xc0_0000_0000 + (value % (1 << 20)) * 8),
                _ => {
                    let frame = (value as usize) % (holder + 1);
                    let words = self.model[frame].locals.len();
                    MVal::Ref {
                        frame,
                        word: (value as usize / 7) % words,
                    }
                }
            }
        } else if kind.is_multiple_of(2) {
            MVal::Raw(value)
        } else {
            MVal::Raw(self.gs.stack().lo().0 + (value % 4096) * 8)
        }
    }

    fn note_passed(&mut self, addr: Addr) {
        let d = self.hi().offset_from(addr);
        if let Some(s) = &mut self.snapshot {
            s.passed_depth = Some(s.passed_depth.map_or(d, |p| p.min(d)));
        }
    }

    /// After the real stack moved, moves the twin to a stack of the same size from its own pool; the
    /// pools see the same requests in the same order, so the twin lands at the same addresses.
    fn follow_move(&mut self) {
        let size = self.gs.stack().alloc_size();
        if self.twin.stack().lo() != self.gs.stack().lo() {
            self.twin
                .copystack(&mut self.twin_pool, self.prog, size)
                .unwrap();
        }
        assert_eq!(self.twin.stack().lo(), self.gs.stack().lo());
        assert_eq!(self.twin.stack().hi(), self.gs.stack().hi());
    }

    /// Go's amd64 prologue check for a call of a `frame_size`-byte frame (return PC included) at the
    /// current SP, computed from the definition: whether it calls `morestack`.
    fn prologue_fails(&self, frame_size: usize) -> bool {
        let sp_after_call = i128::from(self.gs.sp().0) - WORD as i128;
        let fs = (frame_size - WORD) as i128;
        let lowest = if fs <= STACK_SMALL as i128 {
            sp_after_call
        } else {
            sp_after_call - (fs - STACK_SMALL as i128)
        };
        lowest <= i128::from(self.gs.stack().lo().0) + STACK_GUARD as i128
    }

    fn apply(&mut self, op: &Op) {
        let prog = self.prog;
        let depth = self.model.len();
        match *op {
            Op::Call { func, site } => {
                let callee = prog.user_func(func).unwrap();
                let ret_pc = match self.model.last() {
                    None => prog.goexit_return_pc(),
                    Some(caller) => prog.func(caller.func).return_pc(site),
                };
                // The interpreter's loop: one newstack doubling per failed prologue check.
                let frame_size = prog.func(callee).frame_size;
                loop {
                    let fails = self.prologue_fails(frame_size);
                    match self.gs.call(prog, callee, site).unwrap() {
                        Call::Pushed => {
                            assert!(!fails, "pushed past stackguard0");
                            break;
                        }
                        Call::MoreStack { needed } => {
                            assert!(fails, "morestack although the prologue check passes");
                            assert_eq!(needed, frame_size);
                            let size = self.gs.stack().alloc_size();
                            assert_eq!(self.gs.newstack(&mut self.pool, prog).unwrap(), 2 * size);
                            self.follow_move();
                        }
                    }
                }
                assert!(self.gs.sp() > self.gs.stack().lo().add(STACK_LIMIT));
                assert_eq!(self.twin.call(prog, callee, site).unwrap(), Call::Pushed);
                let locals = vec![MVal::Raw(0); prog.func(callee).frame_words() - 1];
                self.model.push(MFrame {
                    func: callee,
                    ret_pc,
                    locals,
                    barrier: false,
                });
            }
            Op::Ret if depth > 0 => {
                let slot = self.frame_sp(depth - 1).add(self.size(depth - 1) - WORD);
                let popped = self.model.pop().unwrap();
                let hits = self.gs.counters().hit;
                let got = self.gs.ret(prog).unwrap();
                let twin = self.twin.ret(prog).unwrap();
                assert_eq!(
                    self.gs.counters().hit - hits,
                    u64::from(popped.barrier),
                    "hit exactly the model's barriers, the outermost frame's too"
                );
                if self.model.is_empty() {
                    assert_eq!((got, twin), (Ret::Exited, Ret::Exited));
                } else {
                    assert_eq!(
                        got,
                        Ret::Returned {
                            hit_barrier: popped.barrier
                        },
                        "hit exactly the model's barriers"
                    );
                    assert_eq!(twin, Ret::Returned { hit_barrier: false });
                }
                self.note_passed(slot);
            }
            Op::Local { slot, value, kind } if depth > 0 => {
                let slot = slot % self.model[depth - 1].locals.len();
                let v = self.value_for(depth - 1, slot, value, kind);
                let raw = self.materialize(v);
                self.gs.write_local(prog, slot, raw).unwrap();
                self.twin.write_local(prog, slot, raw).unwrap();
                self.model[depth - 1].locals[slot] = v;
            }
            Op::UpStore {
                up,
                slot,
                value,
                kind,
            } if depth > up => {
                let holder = depth - 1 - up;
                let slot = slot % self.model[holder].locals.len();
                let v = self.value_for(holder, slot, value, kind);
                let addr = self.frame_sp(holder).add(slot * WORD);
                let raw = self.materialize(v);
                self.gs.write(addr, raw).unwrap();
                self.twin.write(addr, raw).unwrap();
                self.model[holder].locals[slot] = v;
                let d = self.hi().offset_from(addr);
                if let Some(s) = &mut self.snapshot {
                    s.barriered.insert(d);
                }
            }
            Op::Bulk {
                up,
                slot,
                len,
                value,
            } if depth > up => {
                let holder = depth - 1 - up;
                let n = self.model[holder].locals.len();
                let slot = slot % n;
                let len = len.min(n - slot);
                let words: Vec<u64> = (0..len as u64)
                    .map(|i| 0xc0_0000_0000 + ((value + i) % (1 << 20)) * 8)
                    .collect();
                let dst = self.frame_sp(holder).add(slot * WORD);
                self.gs.runtime_bulk_write(prog, dst, &words).unwrap();
                self.twin.runtime_bulk_write(prog, dst, &words).unwrap();
                for (i, &w) in words.iter().enumerate() {
                    self.model[holder].locals[slot + i] = MVal::Raw(w);
                }
                // The barriers below dst, on the frames inner than the holder, were unwound.
                for fr in &mut self.model[holder + 1..] {
                    fr.barrier = false;
                }
                self.note_passed(dst);
            }
            Op::Unwind { n } if depth > n => {
                let new_sp = self.frame_sp(depth - 1 - n);
                let slot = new_sp.sub(WORD);
                self.gs.unwind_frames(prog, n).unwrap();
                self.twin.unwind_frames(prog, n).unwrap();
                self.model.truncate(depth - n);
                self.note_passed(slot);
            }
            Op::Grow => {
                let (size, lo) = (self.gs.stack().alloc_size(), self.gs.stack().lo());
                match self.gs.newstack(&mut self.pool, prog) {
                    Ok(new_size) => {
                        assert_eq!(new_size, 2 * size, "one doubling per trip");
                        assert!(new_size <= MAX_STACK);
                        self.follow_move();
                    }
                    Err(StackError::StackOverflow { needed, max, .. }) => {
                        assert_eq!((needed, max), (2 * size, MAX_STACK));
                        assert_eq!(self.gs.stack().lo(), lo, "untouched");
                    }
                    Err(e) => panic!("newstack: {e}"),
                }
            }
            Op::Shrink => {
                // Go 1.7's shrinkstack, plus the crate's guard that the halved stack holds the
                // used part and the recorded stkbar entries.
                let size = self.gs.stack().alloc_size();
                let half = size / 2;
                let used = self.gs.used();
                let expect = half >= FIXED_STACK
                    && used + STACK_LIMIT < self.gs.stack().usable() / 4
                    && used <= self.pool.usable_size(half)
                    && self.gs.stkbar_len() <= self.pool.stkbar_cap(half);
                let shrank = self.gs.shrinkstack(&mut self.pool, prog).unwrap();
                assert_eq!(shrank, expect, "shrinkstack of {size} with {used} used");
                if shrank {
                    assert_eq!(self.gs.stack().alloc_size(), half);
                    self.follow_move();
                }
            }
            Op::Goexit => {
                // The goroutine exits with its frames still on the stack: every pending barrier,
                // the outermost frame's included, is passed, then the stack is reused.
                let pending = self.gs.stkbar_len() - self.gs.stkbar_pos();
                let hi = self.hi();
                assert_eq!(self.gs.unwind_barriers(prog, hi).unwrap(), pending);
                assert_eq!(self.gs.rescan_limit(), None);
                let live = |g: &GStack| g.stack().copy_words(g.sp(), g.stack().hi()).unwrap();
                assert_eq!(
                    live(&self.gs),
                    live(&self.twin),
                    "after unwinding to hi: byte-identical to the twin"
                );
                let c = self.gs.counters();
                assert_eq!(c.installed, c.hit + c.unwound + c.removed);
                self.gs.reset(1, prog);
                self.twin.reset(1, prog);
                self.model.clear();
                self.snapshot = None;
            }
            Op::Scan => self.scan(),
            Op::Rescan => self.check_rescan(),
            Op::Remove => {
                self.gs.remove_stack_barriers(prog).unwrap();
                for fr in &mut self.model {
                    fr.barrier = false;
                }
                self.snapshot = None;
                let live = |g: &GStack| g.stack().copy_words(g.sp(), g.stack().hi()).unwrap();
                assert_eq!(
                    live(&self.gs),
                    live(&self.twin),
                    "after removal: byte-identical to the twin"
                );
            }
            _ => {}
        }
        self.check_invariants();
    }

    /// A concurrent scan; the model predicts where the barriers go.
    fn scan(&mut self) {
        let prog = self.prog;
        let mut visited = Vec::new();
        let stats = scanstack(prog, &mut self.gs, ScanKind::Mark(self.mode), |a, _| {
            visited.push(a)
        })
        .unwrap();
        let depth = self.model.len();
        // Predicted placement: from the innermost frame out, the first slot at or above
        // sp0 + offset·2^k, never the running frame (model index depth - 1), the outermost (index
        // 0) like any other, at most `cap` of them.
        let sp0 = self.gs.sp();
        let mut room = self.gs.stack().stkbar_cap();
        let mut offset = self.mode.first_offset();
        let mut predicted = Vec::new();
        for i in (0..depth).rev() {
            let slot = self.frame_sp(i).add(self.size(i) - WORD);
            let running = i + 1 == depth;
            let wants =
                matches!(offset, Some(o) if !running && room > 0 && slot.0 >= sp0.0 + o as u64);
            self.model[i].barrier = wants;
            if wants {
                predicted.push(slot);
                room -= 1;
                offset = offset.map(|o| o.saturating_mul(2));
            }
        }
        let installed: Vec<Addr> = self.gs.stkbar().map(|b| b.saved_lr_ptr).collect();
        assert_eq!(
            installed, predicted,
            "barriers at first_offset·2^n above the SP"
        );
        assert_eq!(stats.barriers_installed, predicted.len());
        // The scan visited exactly the model's pointer slots.
        let mut want = Vec::new();
        for i in (0..depth).rev() {
            let f = prog.func(self.model[i].func);
            want.extend(
                f.ptr_map
                    .iter_ones()
                    .map(|w| self.frame_sp(i).add(w * WORD)),
            );
        }
        assert_eq!(visited, want);
        self.snapshot = Some(ScanSnapshot {
            sp0_depth: self.hi().offset_from(sp0),
            frame0_size: if depth > 0 { self.size(depth - 1) } else { 0 },
            words: self.normalized(),
            barriered: HashSet::new(),
            passed_depth: None,
        });
    }

    /// The re-scan covers every change since the scan, and no more than the bound allows.
    fn check_rescan(&mut self) {
        let Some(snap) = &self.snapshot else { return };
        let prog = self.prog;
        let mut visited = HashSet::new();
        let limit = self.gs.rescan_limit();
        let stats = scanstack(prog, &mut self.gs, ScanKind::Rescan, |a, _| {
            visited.insert(a);
        })
        .unwrap();
        let hi = self.gs.stack().hi();
        let sp = self.gs.sp();
        let covered_end = sp.add(stats.bytes);
        let now = self.normalized();
        for (&d, &v) in &now {
            if snap.words.get(&d) == Some(&v) || snap.barriered.contains(&d) {
                continue;
            }
            let addr = hi.sub(d);
            assert!(
                addr < covered_end,
                "changed word at {addr} ({v:?}) outside the re-scan [{sp}, {covered_end})"
            );
        }
        // Every changed pointer slot was visited.
        for (i, fr) in self.model.iter().enumerate() {
            let f = prog.func(fr.func);
            for w in f.ptr_map.iter_ones() {
                let addr = self.frame_sp(i).add(w * WORD);
                let d = hi.offset_from(addr);
                if snap.words.get(&d) != now.get(&d) && !snap.barriered.contains(&d) {
                    assert!(
                        visited.contains(&addr),
                        "changed pointer slot {addr} not visited"
                    );
                }
            }
        }
        let Some(limit) = limit else { return };
        // The bound. `x`: the highest return-PC slot returned through or unwound past since the
        // scan, relative to the scan-time SP (0 if none lies above it).
        let sp0 = hi.sub(snap.sp0_depth);
        let extent = covered_end.0 as i64 - sp0.0 as i64;
        let x = snap
            .passed_depth
            .map_or(0, |p| (snap.sp0_depth as i64 - p as i64).max(0));
        let last_frame = self
            .gs
            .frames(prog)
            .map(Result::unwrap)
            .find(|fr| fr.lr_slot() >= limit)
            .expect("the frame holding the barrier");
        assert_eq!(last_frame.lr_slot(), limit);
        assert_eq!(last_frame.fp, covered_end);
        let off = self.mode.first_offset().unwrap() as i64;
        let s0 = snap.frame0_size as i64;
        let f_size = last_frame.size() as i64;
        // Covered: [sp, F.fp). Allowed: (sp0 - sp) + max(2x, first_offset, size(frame 0)) + size(F).
        let covered = stats.bytes as i64;
        let below_sp0 = sp0.0 as i64 - sp.0 as i64;
        let bound = below_sp0 + (2 * x).max(off).max(s0) + f_size;
        assert!(
            covered <= bound,
            "re-scan of {covered} B exceeds ({below_sp0}) + max(2·{x}, {off}, {s0}) + {f_size}"
        );
        assert_eq!(covered, extent + below_sp0);
        assert!(extent > x, "the re-scan reaches past the highest return");
    }

    fn check_invariants(&self) {
        let prog = self.prog;
        for g in [&self.gs, &self.twin] {
            let frames: Vec<_> = g.frames(prog).map(Result::unwrap).collect();
            assert_eq!(frames.len(), self.model.len());
            for (fr, i) in frames.iter().zip((0..self.model.len()).rev()) {
                let m = &self.model[i];
                assert_eq!(fr.func, m.func);
                assert_eq!(fr.sp, self.frame_sp(i));
                assert_eq!(fr.lr, m.ret_pc);
                for (w, &v) in m.locals.iter().enumerate() {
                    assert_eq!(
                        g.read(fr.sp.add(w * WORD)).unwrap(),
                        self.materialize(v),
                        "frame {i} word {w}"
                    );
                }
            }
        }
        assert!(
            self.gs.stkbar_len() <= self.gs.stack().stkbar_cap(),
            "stkbar array overrun"
        );
        let alloc = self.gs.stack().alloc_size();
        let reserved = max_stack_barriers(
            alloc,
            self.mode
                .first_offset()
                .unwrap_or(FIRST_STACK_BARRIER_OFFSET),
        );
        assert_eq!(
            self.gs.stack().stkbar_cap(),
            reserved,
            "Off reserves Go's array"
        );
        assert_eq!(self.twin.stkbar_len(), 0);
        let pending = (self.gs.stkbar_len() - self.gs.stkbar_pos()) as u64;
        let c = self.gs.counters();
        assert_eq!(
            c.installed,
            c.hit + c.unwound + c.removed + pending,
            "{c:?}, {pending} pending"
        );
        assert_eq!(
            pending as usize,
            self.model.iter().filter(|f| f.barrier).count()
        );
        assert!(!self.gs.stack_barrier_lock().is_locked());
    }
}

fn program(seed: u64, big_frames: bool) -> Program {
    let spec = RandomProgram {
        funcs: 24,
        max_frame_size: if big_frames { 4096 } else { 512 },
        ..RandomProgram::default()
    };
    Program::random(seed, &spec).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_agree_with_the_model(
        seed in any::<u64>(),
        big_frames in prop::bool::weighted(0.25),
        mode in mode(),
        ops in prop::collection::vec(op(), 1..160),
    ) {
        let prog = program(seed, big_frames);
        let mut h = Harness::new(&prog, mode);
        for op in &ops {
            h.apply(op);
        }
        h.check_rescan();
        h.apply(&Op::Remove);
    }

    #[test]
    fn deep_stacks_rescan_within_the_bound(
        seed in any::<u64>(),
        mode in mode(),
        depth in 50usize..400,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        // Scan deep, then mutate near the bottom: the case stack barriers are for.
        let prog = program(seed, false);
        let mut h = Harness::new(&prog, mode);
        for i in 0..depth {
            h.apply(&Op::Call { func: i.wrapping_mul(seed as usize | 1), site: (i % 4) as u32 });
        }
        h.apply(&Op::Scan);
        for op in &ops {
            h.apply(op);
        }
        h.check_rescan();
    }

    #[test]
    fn corrupt_stacks_give_errors_not_panics(
        seed in any::<u64>(),
        mode in mode(),
        ops in prop::collection::vec(op(), 1..60),
        scribbles in prop::collection::vec((any::<usize>(), any::<u64>(), 0u8..4), 1..6),
    ) {
        let prog = program(seed, false);
        let mut h = Harness::new(&prog, mode);
        for op in &ops {
            h.apply(op);
        }
        let gs = &mut h.gs;
        let words = gs.used() / WORD;
        prop_assume!(words > 0);
        for &(at, value, kind) in &scribbles {
            let addr = gs.sp().add((at % words) * WORD);
            let value = match kind {
                0 => value,
                1 => prog.stack_barrier_pc().0,
                2 => prog.func(prog.user_func(at).unwrap()).return_pc(value as u32).0,
                _ => gs.stack().lo().0 + (value % 512) * 8,
            };
            gs.write(addr, value).unwrap();
        }
        // Every entry point returns, Ok or Err; none panics or loops.
        let _ = gs.frames(&prog).count();
        let _ = scanstack(&prog, gs, ScanKind::Rescan, |_, _| {});
        let _ = scanstack(&prog, gs, ScanKind::Whole, |_, _| {});
        let _ = gs.unwind_frames(&prog, 2);
        let _ = gs.runtime_bulk_write(&prog, gs.sp(), &[1]);
        let size = gs.stack().alloc_size();
        let _ = gs.copystack(&mut h.pool, &prog, size * 2);
        let _ = scanstack(&prog, gs, ScanKind::Mark(mode), |_, _| {});
        let _ = gs.ret(&prog);
        let _ = gs.remove_stack_barriers(&prog);
        prop_assert!(!gs.stack_barrier_lock().is_locked());
    }
}
