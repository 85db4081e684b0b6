//! The simulated text segment: functions, their frames, their pointer maps, and `findfunc`.
//!
//! Invariant: every PC the runtime stores — a goroutine's current PC, a return PC in a stack slot, the
//! value a stack barrier writes — lies inside exactly one [`Func`] of the [`Program`], and
//! [`Program::findfunc`] finds that function in O(1). A user function's frame is `frame_size` bytes
//! (a multiple of the word size, at least two words); its top word is the return-PC ("LR") slot and is
//! never a pointer slot; `ptr_map` has one bit per frame word saying whether that word is a pointer
//! slot. One map serves the whole function (Go keeps one per safe point; the difference does not
//! matter to stack barriers, which only care where frames begin and end).
//!
//! Layout. Functions are laid out from [`TEXT_BASE`], each aligned to 16 bytes. The runtime's special
//! functions come first and have no frame of their own on a goroutine stack:
//! * `goexit` — the return PC of every goroutine's outermost frame is `goexit + 1` (Go's
//!   `goexitPC + PCQuantum`), so returning from the outermost frame ends the goroutine;
//! * `stackBarrier` — the barrier trampoline; its entry PC is what a stack barrier writes over a
//!   return PC;
//! * `gogo` — the goroutine switch, [`GOGO_BYTES`] long as on amd64 (seed 003's `RuntimeGogoBytes`),
//!   so that a profiler can tell whether a PC lies inside it;
//! * `morestack` — where a function's prologue goes when its frame does not fit;
//! * `mcall` — the switch from a goroutine to its M's scheduler stack (g0);
//! * `schedule` — the scheduler loop an M runs on g0 between goroutines.
//!
//! User functions follow, and after them the runtime functions that run on an M's system stack
//! (g0) with frames of their own ([`RuntimeFn`]: `mstart`, `systemstack`, `newstack`, `scanstack`,
//! `park_m`…), which the profiler's g0 tracebacks walk. [`Program::findframe`] reports a frame size
//! of 0 for every runtime function, so the goroutine-stack unwinder never walks into one; the g0
//! unwinder (`g0`) reads their frame sizes from [`Func::frame_size`].
//!
//! User functions. A user function has `call_sites` call instructions, each 16 bytes long; the
//! return PC of call site `k` is `entry + 16·(k+1)`, the address just past that call, so a return PC
//! always maps back to its caller.
//!
//! `findfunc` follows Go's `findfunctab`: a table indexed by bucket of text. Go's buckets are 256
//! bytes and hold the index of the first candidate function, from which a lookup steps forward. Ours
//! are 16 bytes, the function alignment, so a bucket lies in at most one function and its entry can
//! hold that function's index, end and frame size outright: a lookup is one table load and one
//! compare (the table costs 16 bytes per 16 bytes of text). Unwinding is a chain of dependent loads —
//! return PC, function, frame size, next return PC — and [`Program::findframe`] collapses the middle
//! of that chain into one load.

use std::collections::HashMap;
use std::fmt;

use bitvec::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::addr::{Pc, WORD};

/// Base of the simulated text segment.
pub const TEXT_BASE: Pc = Pc(0x0040_0000);
/// Length of `gogo` in bytes (amd64's `RuntimeGogoBytes`, seed 003).
pub const GOGO_BYTES: u64 = 64;
/// Smallest user frame: a return-PC slot and one local.
pub const MIN_FRAME_SIZE: usize = 2 * WORD;
/// Largest user frame the builder accepts.
pub const MAX_FRAME_SIZE: usize = 1 << 20;

const FUNC_ALIGN: u64 = 16;
const CALL_INSN_BYTES: u64 = 16;
const FUNCTAB_BUCKET: u64 = FUNC_ALIGN;

/// The pointer map of a frame: bit `i` set when frame word `i` (counted from the frame's SP) is a
/// pointer slot.
pub type PtrMap = BitVec<u64, Lsb0>;

/// Index of a function in its [`Program`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct FuncId(pub u32);

/// What a function is to the runtime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FuncKind {
    /// Ordinary code with a frame on the goroutine stack.
    User,
    /// The bottom of every goroutine: the outermost frame returns here.
    Goexit,
    /// The stack-barrier trampoline.
    StackBarrier,
    /// The goroutine switch.
    Gogo,
    /// The stack-growth entry.
    Morestack,
    /// The switch from a goroutine to the scheduler stack.
    Mcall,
    /// The scheduler, running on an M's g0.
    Schedule,
    /// `mstart`, the outermost frame of every M's g0 stack (and the caller `systemstack` fakes).
    Mstart,
    /// `systemstack`, the switch from a goroutine to its M's g0 stack and back.
    Systemstack,
    /// A runtime function with a frame on the g0 stack (see [`RuntimeFn`]).
    Runtime,
}

impl FuncKind {
    /// Whether a g0 traceback stops at a frame of this function (Go's `topofstack`): the
    /// functions that start a g0 stack (`mstart`) or switch to one (`mcall`, `morestack`).
    pub fn top_of_g0_stack(self) -> bool {
        matches!(
            self,
            FuncKind::Mstart | FuncKind::Mcall | FuncKind::Morestack
        )
    }

    /// Whether a PC inside a function of this kind may have set SP without setting g, or the
    /// reverse (Go's `setsSP`: `gogo`, `systemstack`, `mcall`, `morestack`).
    pub fn sets_sp(self) -> bool {
        matches!(
            self,
            FuncKind::Gogo | FuncKind::Systemstack | FuncKind::Mcall | FuncKind::Morestack
        )
    }
}

/// The runtime functions an M runs on its g0 stack, with frames of their own, laid out after the
/// user functions. Their frame sizes are this model's (plausible amd64 sizes, not Go's exact ones);
/// what matters to a traceback is that each frame holds its return PC in its top word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RuntimeFn {
    /// The outermost frame of an M's g0 stack.
    Mstart,
    /// The switch to g0 for a runtime call on the system stack.
    Systemstack,
    /// `mcall(park_m)`: a goroutine blocks.
    ParkM,
    /// `mcall(gosched_m)`: a goroutine yields.
    GoschedM,
    /// `mcall(goexit0)`: a goroutine ends.
    Goexit0,
    /// `goexit0`'s release of the dead goroutine to the free list.
    Gfput,
    /// `morestack`'s callee: stack growth, a preemption or a self-scan.
    Newstack,
    /// `newstack`'s preemption: the goroutine goes back to the run queue.
    GopreemptM,
    /// Moving a stack to a new allocation.
    Copystack,
    /// Scanning a stack (here, the goroutine's own, from `newstack`).
    Scanstack,
    /// Installing one stack barrier.
    GcInstallStackBarrier,
    /// Restoring one stack barrier's return PC.
    GcRemoveStackBarrier,
    /// `mcall(recovery)`: a recovered panic resumes in an outer frame.
    Recovery,
    /// Passing every barrier below an SP.
    GcUnwindBarriers,
    /// `heapBitsBulkBarrier`'s closure, run on the system stack.
    BulkBarrierFunc1,
}

impl RuntimeFn {
    /// Every runtime function with a g0 frame, in text order.
    pub const ALL: [RuntimeFn; 15] = [
        RuntimeFn::Mstart,
        RuntimeFn::Systemstack,
        RuntimeFn::ParkM,
        RuntimeFn::GoschedM,
        RuntimeFn::Goexit0,
        RuntimeFn::Gfput,
        RuntimeFn::Newstack,
        RuntimeFn::GopreemptM,
        RuntimeFn::Copystack,
        RuntimeFn::Scanstack,
        RuntimeFn::GcInstallStackBarrier,
        RuntimeFn::GcRemoveStackBarrier,
        RuntimeFn::Recovery,
        RuntimeFn::GcUnwindBarriers,
        RuntimeFn::BulkBarrierFunc1,
    ];

    /// Its symbol name, its kind and its g0 frame size in bytes.
    fn spec(self) -> (&'static str, FuncKind, usize) {
        match self {
            RuntimeFn::Mstart => ("runtime.mstart", FuncKind::Mstart, 16),
            RuntimeFn::Systemstack => ("runtime.systemstack", FuncKind::Systemstack, 16),
            RuntimeFn::ParkM => ("runtime.park_m", FuncKind::Runtime, 32),
            RuntimeFn::GoschedM => ("runtime.gosched_m", FuncKind::Runtime, 32),
            RuntimeFn::Goexit0 => ("runtime.goexit0", FuncKind::Runtime, 48),
            RuntimeFn::Gfput => ("runtime.gfput", FuncKind::Runtime, 48),
            RuntimeFn::Newstack => ("runtime.newstack", FuncKind::Runtime, 96),
            RuntimeFn::GopreemptM => ("runtime.gopreempt_m", FuncKind::Runtime, 32),
            RuntimeFn::Copystack => ("runtime.copystack", FuncKind::Runtime, 128),
            RuntimeFn::Scanstack => ("runtime.scanstack", FuncKind::Runtime, 160),
            RuntimeFn::GcInstallStackBarrier => {
                ("runtime.gcInstallStackBarrier", FuncKind::Runtime, 32)
            }
            RuntimeFn::GcRemoveStackBarrier => {
                ("runtime.gcRemoveStackBarrier", FuncKind::Runtime, 32)
            }
            RuntimeFn::Recovery => ("runtime.recovery", FuncKind::Runtime, 48),
            RuntimeFn::GcUnwindBarriers => ("runtime.gcUnwindBarriers", FuncKind::Runtime, 48),
            RuntimeFn::BulkBarrierFunc1 => {
                ("runtime.heapBitsBulkBarrier.func1", FuncKind::Runtime, 16)
            }
        }
    }

    /// Its position in [`RuntimeFn::ALL`] (the declaration order).
    fn index(self) -> usize {
        self as usize
    }
}

/// One function of the simulated program.
#[derive(Clone, Debug)]
pub struct Func {
    /// Symbol name, as a traceback prints it.
    pub name: Box<str>,
    /// What the function is to the runtime.
    pub kind: FuncKind,
    /// First PC of the function.
    pub entry: Pc,
    /// Length of the function's code in bytes.
    pub len: u64,
    /// Whole frame in bytes, return-PC slot included: on a goroutine stack for a user function,
    /// on g0 for a [`RuntimeFn`] or `schedule`; 0 for the runtime functions without a frame.
    pub frame_size: usize,
    /// Which frame words are pointer slots; the storage past its length is zero.
    pub ptr_map: PtrMap,
    /// Number of call sites (each a distinct return PC).
    pub call_sites: u32,
}

impl Func {
    /// Whether `pc` lies in `[entry, entry + len)`.
    #[inline]
    pub fn contains(&self, pc: Pc) -> bool {
        pc >= self.entry && pc.0 < self.entry.0 + self.len
    }

    /// The return PC of call site `site` (taken modulo the number of call sites).
    #[inline]
    pub fn return_pc(&self, site: u32) -> Pc {
        let site = if self.call_sites == 0 {
            0
        } else {
            site % self.call_sites
        };
        self.entry.add(CALL_INSN_BYTES * (u64::from(site) + 1))
    }

    /// Words in the frame.
    #[inline]
    pub fn frame_words(&self) -> usize {
        self.frame_size / WORD
    }

    /// Index of the return-PC slot within the frame (its top word).
    #[inline]
    pub fn lr_word(&self) -> usize {
        self.frame_words() - 1
    }

    /// Number of pointer slots in the frame.
    pub fn pointer_slots(&self) -> usize {
        self.ptr_map.count_ones()
    }
}

/// A function to add to a [`ProgramBuilder`].
#[derive(Clone, Debug)]
pub struct FuncSpec {
    /// Symbol name; must be unique in the program.
    pub name: String,
    /// Frame size in bytes: a multiple of 8 in `MIN_FRAME_SIZE..=MAX_FRAME_SIZE`.
    pub frame_size: usize,
    /// One bit per frame word; the top (return-PC) word must be clear.
    pub ptr_map: PtrMap,
    /// Number of call sites, at least 1.
    pub call_sites: u32,
}

/// Why a program could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    /// A frame size that is not a word multiple or lies outside the accepted range.
    #[error(
        "function {name}: frame size {frame_size} must be a multiple of 8 in {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}"
    )]
    BadFrameSize {
        /// The function.
        name: String,
        /// The offending size.
        frame_size: usize,
    },
    /// A pointer map whose length is not the frame's word count.
    #[error("function {name}: pointer map has {bits} bits for a frame of {words} words")]
    PtrMapLength {
        /// The function.
        name: String,
        /// Bits given.
        bits: usize,
        /// Words in the frame.
        words: usize,
    },
    /// A pointer map that marks the return-PC slot as a pointer.
    #[error("function {name}: the return-PC slot (top word) cannot be a pointer slot")]
    PointerLrSlot {
        /// The function.
        name: String,
    },
    /// A function with no call sites.
    #[error("function {name}: needs at least one call site")]
    NoCallSites {
        /// The function.
        name: String,
    },
    /// Two functions with one name.
    #[error("function {name} is defined twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A random-program spec that cannot be satisfied.
    #[error("bad random program spec: {0}")]
    BadSpec(String),
}

/// A complete simulated program: the runtime's special functions and the user functions.
#[derive(Debug)]
pub struct Program {
    funcs: Vec<Func>,
    functab: Vec<FunctabEntry>,
    by_name: HashMap<Box<str>, FuncId>,
    goexit: FuncId,
    stack_barrier: FuncId,
    gogo: FuncId,
    morestack: FuncId,
    mcall: FuncId,
    schedule: FuncId,
    first_user: u32,
    /// One past the last user function: the first [`RuntimeFn`].
    end_user: u32,
}

/// Collects user functions, then lays out the text segment.
#[derive(Debug, Default)]
pub struct ProgramBuilder {
    specs: Vec<FuncSpec>,
}

impl ProgramBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user function.
    pub fn func(mut self, spec: FuncSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Adds a user function whose pointer slots are the given word indices.
    pub fn func_with_pointers(
        self,
        name: &str,
        frame_size: usize,
        pointer_words: &[usize],
    ) -> Self {
        let mut ptr_map = bitvec![u64, Lsb0; 0; frame_size / WORD];
        for &w in pointer_words {
            if w < ptr_map.len() {
                ptr_map.set(w, true);
            }
        }
        self.func(FuncSpec {
            name: name.to_owned(),
            frame_size,
            ptr_map,
            call_sites: 4,
        })
    }

    /// Validates every function and lays out the text segment.
    pub fn build(self) -> Result<Program, CodeError> {
        for s in &self.specs {
            validate(s)?;
        }
        let mut funcs = Vec::with_capacity(self.specs.len() + 6);
        let mut next = TEXT_BASE;
        let mut place = |name: &str, kind, len: u64, frame_size, ptr_map, call_sites| {
            let entry = next;
            next = Pc((entry.0 + len).next_multiple_of(FUNC_ALIGN));
            funcs.push(Func {
                name: name.into(),
                kind,
                entry,
                len,
                frame_size,
                ptr_map,
                call_sites,
            });
        };
        place("runtime.goexit", FuncKind::Goexit, 16, 0, PtrMap::new(), 0);
        place(
            "runtime.stackBarrier",
            FuncKind::StackBarrier,
            32,
            0,
            PtrMap::new(),
            0,
        );
        place(
            "runtime.gogo",
            FuncKind::Gogo,
            GOGO_BYTES,
            0,
            PtrMap::new(),
            0,
        );
        place(
            "runtime.morestack",
            FuncKind::Morestack,
            32,
            16,
            PtrMap::new(),
            1,
        );
        // `mcall`, `morestack` and `schedule` call one runtime function each on g0 (the return
        // PC of call site 0 lies inside them); the other specials call nothing.
        place("runtime.mcall", FuncKind::Mcall, 32, 16, PtrMap::new(), 1);
        place(
            "runtime.schedule",
            FuncKind::Schedule,
            64,
            64,
            PtrMap::new(),
            1,
        );
        // Six runtime functions so far, then the user functions.
        let end_user = (6 + self.specs.len()) as u32;
        for mut s in self.specs {
            // The scanner walks the map's raw words; bits past its length must be clear.
            s.ptr_map.set_uninitialized(false);
            let len = CALL_INSN_BYTES * (u64::from(s.call_sites) + 1);
            place(
                &s.name,
                FuncKind::User,
                len,
                s.frame_size,
                s.ptr_map,
                s.call_sites,
            );
        }
        for f in RuntimeFn::ALL {
            let (name, kind, frame_size) = f.spec();
            let call_sites = 2;
            let len = CALL_INSN_BYTES * (u64::from(call_sites) + 1);
            place(name, kind, len, frame_size, PtrMap::new(), call_sites);
        }
        let mut by_name = HashMap::with_capacity(funcs.len());
        for (i, f) in funcs.iter().enumerate() {
            if by_name.insert(f.name.clone(), FuncId(i as u32)).is_some() {
                return Err(CodeError::DuplicateName {
                    name: f.name.to_string(),
                });
            }
        }
        let functab = build_functab(&funcs);
        Ok(Program {
            funcs,
            functab,
            by_name,
            goexit: FuncId(0),
            stack_barrier: FuncId(1),
            gogo: FuncId(2),
            morestack: FuncId(3),
            mcall: FuncId(4),
            schedule: FuncId(5),
            first_user: 6,
            end_user,
        })
    }
}

fn validate(s: &FuncSpec) -> Result<(), CodeError> {
    let name = || s.name.clone();
    if !s.frame_size.is_multiple_of(WORD)
        || !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&s.frame_size)
    {
        return Err(CodeError::BadFrameSize {
            name: name(),
            frame_size: s.frame_size,
        });
    }
    let words = s.frame_size / WORD;
    if s.ptr_map.len() != words {
        return Err(CodeError::PtrMapLength {
            name: name(),
            bits: s.ptr_map.len(),
            words,
        });
    }
    if s.ptr_map[words - 1] {
        return Err(CodeError::PointerLrSlot { name: name() });
    }
    if s.call_sites == 0 {
        return Err(CodeError::NoCallSites { name: name() });
    }
    Ok(())
}

/// One bucket of the function table: the function the bucket lies in (if `pc < end`).
#[derive(Clone, Copy, Debug)]
struct FunctabEntry {
    /// End of the function's code; 0 for a bucket of padding between functions.
    end: u64,
    func: u32,
    /// The function's frame size on a goroutine stack: 0 for runtime functions.
    frame_size: u32,
}

/// One entry per `FUNCTAB_BUCKET` bytes of text, from `TEXT_BASE` to the end of the last function.
fn build_functab(funcs: &[Func]) -> Vec<FunctabEntry> {
    let last = funcs
        .last()
        .expect("the runtime functions are always present");
    let text_len = last.entry.0 + last.len - TEXT_BASE.0;
    let mut tab = vec![
        FunctabEntry {
            end: 0,
            func: 0,
            frame_size: 0
        };
        text_len.div_ceil(FUNCTAB_BUCKET) as usize
    ];
    for (i, f) in funcs.iter().enumerate() {
        let entry = FunctabEntry {
            end: f.entry.0 + f.len,
            func: i as u32,
            frame_size: if f.kind == FuncKind::User {
                f.frame_size as u32
            } else {
                0
            },
        };
        let first = (f.entry.0 - TEXT_BASE.0) / FUNCTAB_BUCKET;
        let last = (f.entry.0 + f.len - 1 - TEXT_BASE.0) / FUNCTAB_BUCKET;
        for b in first..=last {
            tab[b as usize] = entry;
        }
    }
    tab
}

impl Program {
    /// A builder for a program with the given user functions.
    pub fn builder() -> ProgramBuilder {
        ProgramBuilder::new()
    }

    /// The function containing `pc`, if any (Go's `findfunc`).
    #[inline]
    pub fn findfunc(&self, pc: Pc) -> Option<FuncId> {
        self.findframe(pc).map(|(id, _)| id)
    }

    /// The function containing `pc` and its frame size (0 for a runtime function), in one lookup.
    #[inline]
    pub fn findframe(&self, pc: Pc) -> Option<(FuncId, usize)> {
        let off = pc.0.checked_sub(TEXT_BASE.0)?;
        let e = self.functab.get((off / FUNCTAB_BUCKET) as usize)?;
        (pc.0 < e.end).then_some((FuncId(e.func), e.frame_size as usize))
    }

    /// The function with this id.
    #[inline]
    pub fn func(&self, id: FuncId) -> &Func {
        &self.funcs[id.0 as usize]
    }

    /// Every function, runtime functions first.
    pub fn funcs(&self) -> &[Func] {
        &self.funcs
    }

    /// The ids of the user functions.
    pub fn user_funcs(&self) -> impl ExactSizeIterator<Item = FuncId> + '_ {
        (self.first_user..self.end_user).map(FuncId)
    }

    /// Number of user functions.
    pub fn num_user_funcs(&self) -> usize {
        (self.end_user - self.first_user) as usize
    }

    /// The runtime function `f`, which runs on g0 with a frame of its own.
    #[inline]
    pub fn runtime_fn(&self, f: RuntimeFn) -> FuncId {
        FuncId(self.end_user + f.index() as u32)
    }

    /// The `i`-th user function (modulo their number); `None` in a program without user functions.
    pub fn user_func(&self, i: usize) -> Option<FuncId> {
        let n = self.num_user_funcs();
        (n > 0).then(|| FuncId(self.first_user + (i % n) as u32))
    }

    /// The function with this name.
    pub fn lookup(&self, name: &str) -> Option<FuncId> {
        self.by_name.get(name).copied()
    }

    /// `runtime.goexit`.
    pub fn goexit(&self) -> FuncId {
        self.goexit
    }

    /// The return PC stored in every goroutine's outermost frame (Go's `goexitPC + PCQuantum`).
    #[inline]
    pub fn goexit_return_pc(&self) -> Pc {
        self.func(self.goexit).entry.add(1)
    }

    /// `runtime.stackBarrier`.
    pub fn stack_barrier(&self) -> FuncId {
        self.stack_barrier
    }

    /// The PC a stack barrier writes over a return PC (Go's `stackBarrierPC`).
    #[inline]
    pub fn stack_barrier_pc(&self) -> Pc {
        self.funcs[self.stack_barrier.0 as usize].entry
    }

    /// `runtime.gogo`.
    pub fn gogo(&self) -> FuncId {
        self.gogo
    }

    /// `runtime.morestack`.
    pub fn morestack(&self) -> FuncId {
        self.morestack
    }

    /// `runtime.mcall`.
    pub fn mcall(&self) -> FuncId {
        self.mcall
    }

    /// `runtime.schedule`.
    pub fn schedule(&self) -> FuncId {
        self.schedule
    }

    /// Whether `pc` lies inside function `f`.
    #[inline]
    pub fn pc_in(&self, f: FuncId, pc: Pc) -> bool {
        self.func(f).contains(pc)
    }

    /// A seeded random program (see [`RandomProgram`]). The same seed and spec give the same program.
    pub fn random(seed: u64, spec: &RandomProgram) -> Result<Program, CodeError> {
        spec.check()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (lo_log, hi_log) = (
            (spec.min_frame_size as f64).log2(),
            (spec.max_frame_size as f64).log2(),
        );
        let mut b = ProgramBuilder::new();
        for i in 0..spec.funcs {
            // Log-uniform frame sizes: as many small frames as large ones per octave.
            let log = if hi_log > lo_log {
                rng.random_range(lo_log..=hi_log)
            } else {
                lo_log
            };
            let frame_size = ((log.exp2() as usize) / WORD * WORD)
                .clamp(spec.min_frame_size, spec.max_frame_size);
            let density = if spec.max_ptr_density > spec.min_ptr_density {
                rng.random_range(spec.min_ptr_density..=spec.max_ptr_density)
            } else {
                spec.min_ptr_density
            };
            let words = frame_size / WORD;
            let mut ptr_map = bitvec![u64, Lsb0; 0; words];
            for w in 0..words - 1 {
                ptr_map.set(w, rng.random_bool(density));
            }
            b = b.func(FuncSpec {
                name: format!("main.f{i}"),
                frame_size,
                ptr_map,
                call_sites: spec.call_sites,
            });
        }
        b.build()
    }
}

/// Parameters of [`Program::random`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomProgram {
    /// Number of user functions.
    pub funcs: usize,
    /// Smallest frame, bytes (≥ 16).
    pub min_frame_size: usize,
    /// Largest frame, bytes (≤ [`MAX_FRAME_SIZE`]).
    pub max_frame_size: usize,
    /// Lowest per-function pointer density, in `[0, 1]`.
    pub min_ptr_density: f64,
    /// Highest per-function pointer density, in `[0, 1]`.
    pub max_ptr_density: f64,
    /// Call sites per function.
    pub call_sites: u32,
}

impl Default for RandomProgram {
    /// 64 functions with frames of 16 B to 4 KiB and pointer densities of 0 to 100 %.
    fn default() -> Self {
        RandomProgram {
            funcs: 64,
            min_frame_size: 16,
            max_frame_size: 4096,
            min_ptr_density: 0.0,
            max_ptr_density: 1.0,
            call_sites: 4,
        }
    }
}

impl RandomProgram {
    fn check(&self) -> Result<(), CodeError> {
        let bad = |m: String| Err(CodeError::BadSpec(m));
        if self.funcs == 0 {
            return bad("at least one function is needed".into());
        }
        if self.min_frame_size < MIN_FRAME_SIZE
            || self.max_frame_size > MAX_FRAME_SIZE
            || self.min_frame_size > self.max_frame_size
        {
            return bad(format!(
                "frame sizes {}..={} must lie within {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}",
                self.min_frame_size, self.max_frame_size
            ));
        }
        let d = self.min_ptr_density..=self.max_ptr_density;
        if !(0.0..=1.0).contains(d.start()) || !(0.0..=1.0).contains(d.end()) || d.is_empty() {
            return bad(format!("pointer densities {d:?} must lie within 0..=1"));
        }
        if self.call_sites == 0 {
            return bad("at least one call site per function is needed".into());
        }
        Ok(())
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Program {
        Program::builder()
            .func_with_pointers("main.a", 32, &[0, 2])
            .func_with_pointers("main.b", 16, &[])
            .func_with_pointers("main.c", 4096, &[1, 7, 500])
            .build()
            .unwrap()
    }

    #[test]
    fn findfunc_finds_every_pc_of_every_function_and_nothing_in_padding() {
        let p = Program::random(
            7,
            &RandomProgram {
                funcs: 300,
                ..Default::default()
            },
        )
        .unwrap();
        for (i, f) in p.funcs().iter().enumerate() {
            for pc in f.entry.0..f.entry.0 + f.len {
                assert_eq!(
                    p.findfunc(Pc(pc)),
                    Some(FuncId(i as u32)),
                    "pc {pc:#x} in {}",
                    f.name
                );
            }
            let pad_end = p
                .funcs()
                .get(i + 1)
                .map_or(f.entry.0 + f.len + 64, |n| n.entry.0);
            for pc in f.entry.0 + f.len..pad_end {
                assert_eq!(
                    p.findfunc(Pc(pc)),
                    None,
                    "padding pc {pc:#x} after {}",
                    f.name
                );
            }
        }
        assert_eq!(p.findfunc(Pc(0)), None);
        assert_eq!(p.findfunc(Pc(TEXT_BASE.0 - 1)), None);
        assert_eq!(p.findfunc(Pc(u64::MAX)), None);
    }

    #[test]
    fn return_pcs_map_back_to_their_caller() {
        let p = small();
        for id in p.user_funcs() {
            let f = p.func(id);
            for site in 0..f.call_sites {
                let ret = f.return_pc(site);
                assert_ne!(ret, f.entry);
                assert_eq!(p.findfunc(ret), Some(id));
            }
        }
        assert_eq!(p.findfunc(p.goexit_return_pc()), Some(p.goexit()));
        assert_eq!(p.findfunc(p.stack_barrier_pc()), Some(p.stack_barrier()));
    }

    #[test]
    fn gogo_is_gogo_bytes_long_and_runtime_functions_have_no_goroutine_frame() {
        let p = small();
        assert_eq!(p.func(p.gogo()).len, GOGO_BYTES);
        for id in [p.goexit(), p.stack_barrier(), p.gogo()] {
            assert_eq!(p.func(id).frame_size, 0);
        }
        // Runtime functions with a g0 frame: findframe reports none, so a goroutine-stack walk
        // never enters one; their g0 frames are in `Func`.
        let g0_funcs = [p.morestack(), p.mcall(), p.schedule()]
            .into_iter()
            .chain(RuntimeFn::ALL.map(|f| p.runtime_fn(f)));
        for id in g0_funcs {
            let f = p.func(id);
            assert_ne!(f.kind, FuncKind::User);
            assert!(f.frame_size >= 16 && f.frame_size.is_multiple_of(WORD));
            assert_eq!(p.findframe(f.entry), Some((id, 0)));
            assert!(f.contains(f.return_pc(0)), "{} calls on g0", f.name);
        }
        assert_eq!(
            p.lookup("main.c").map(|id| p.func(id).frame_size),
            Some(4096)
        );
        // The runtime functions follow the user ones, which keep their ids and PCs.
        assert_eq!(p.user_funcs().len(), 3);
        assert!(p.user_funcs().all(|id| p.func(id).kind == FuncKind::User));
        for f in RuntimeFn::ALL {
            assert_eq!(p.func(p.runtime_fn(f)).name.as_ref(), f.spec().0);
            assert_eq!(RuntimeFn::ALL[f.index()], f);
        }
    }

    #[test]
    fn pointer_map_storage_past_the_frame_is_clear() {
        let mut ptr_map = bitvec![u64, Lsb0; 1; 8];
        ptr_map.set(7, false);
        let spec = FuncSpec {
            name: "main.dense".into(),
            frame_size: 64,
            ptr_map,
            call_sites: 1,
        };
        let p = Program::builder().func(spec).build().unwrap();
        let f = p.func(p.lookup("main.dense").unwrap());
        assert_eq!(
            f.ptr_map.as_raw_slice(),
            &[0x7f],
            "seven pointer slots and nothing beyond"
        );
    }

    #[test]
    fn builder_rejects_bad_frames_and_maps() {
        let lr_ptr = Program::builder()
            .func_with_pointers("main.x", 16, &[1])
            .build();
        assert_eq!(
            lr_ptr.unwrap_err(),
            CodeError::PointerLrSlot {
                name: "main.x".into()
            }
        );
        let odd = Program::builder()
            .func_with_pointers("main.x", 20, &[])
            .build();
        assert!(matches!(
            odd,
            Err(CodeError::BadFrameSize { frame_size: 20, .. })
        ));
        let tiny = Program::builder()
            .func_with_pointers("main.x", 8, &[])
            .build();
        assert!(matches!(tiny, Err(CodeError::BadFrameSize { .. })));
        let short_map = Program::builder()
            .func(FuncSpec {
                name: "main.x".into(),
                frame_size: 32,
                ptr_map: bitvec![u64, Lsb0; 0; 3],
                call_sites: 1,
            })
            .build();
        assert!(matches!(
            short_map,
            Err(CodeError::PtrMapLength {
                bits: 3,
                words: 4,
                ..
            })
        ));
        let dup = Program::builder()
            .func_with_pointers("main.x", 16, &[])
            .func_with_pointers("main.x", 16, &[])
            .build();
        assert!(matches!(dup, Err(CodeError::DuplicateName { .. })));
    }

    #[test]
    fn random_programs_are_seeded_and_respect_the_spec() {
        let spec = RandomProgram {
            funcs: 500,
            ..Default::default()
        };
        let a = Program::random(42, &spec).unwrap();
        let b = Program::random(42, &spec).unwrap();
        let c = Program::random(43, &spec).unwrap();
        let sizes = |p: &Program| {
            p.user_funcs()
                .map(|f| p.func(f).frame_size)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&a), sizes(&b));
        assert_ne!(sizes(&a), sizes(&c));
        let (mut min, mut max, mut dense, mut empty) = (usize::MAX, 0, false, false);
        for id in a.user_funcs() {
            let f = a.func(id);
            assert!((16..=4096).contains(&f.frame_size) && f.frame_size.is_multiple_of(8));
            assert!(!f.ptr_map[f.lr_word()]);
            min = min.min(f.frame_size);
            max = max.max(f.frame_size);
            let d = f.pointer_slots() as f64 / (f.frame_words() - 1) as f64;
            dense |= d > 0.9;
            empty |= d < 0.1;
        }
        assert!(min < 64 && max > 2048, "sizes span the range: {min}..{max}");
        assert!(dense && empty, "densities span 0-100 %");
        let bad = RandomProgram {
            min_ptr_density: 1.5,
            ..Default::default()
        };
        assert!(matches!(
            Program::random(1, &bad),
            Err(CodeError::BadSpec(_))
        ));
    }
}
