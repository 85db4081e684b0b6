//! The runtime: the state every P, M and mark worker shares, the scheduler's operations, the
//! mutator interpreter and the one write-barrier entry point.
//!
//! Invariant: everything in [`Runtime`] is shared (`Sync`) and reached through `&self`; what a
//! thread owns alone — a [`P`], a mark worker's [`GcWork`] — is passed in by `&mut`. Both engines
//! drive the same functions: [`Runtime::mutator_run`] runs a P's current goroutine operation by
//! operation (every boundary a safe point); the collector's steps live in `mgc`, `mark` and
//! `sweep`. A goroutine's stack is touched only under its [`GOwner`] (see `sched`).
//!
//! The interpreter keeps, for a goroutine scanned in this cycle, the watermark of DESIGN §4 (the
//! highest frame that has run since the scan): returns, unwinds and runtime bulk writes raise it;
//! calls and local stores happen below it. Mark termination turns it into `oracle_rescan_bytes`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rand::{RngExt, SeedableRng};
use stacks::{Addr, Call, FuncId, FuncKind, Program, Ret, StackBarrierMode, StackPool, WORD};

use crate::debug::DebugKnobs;
use crate::error::{RuntimeError, stack_place};
use crate::heap::{Globals, Heap, Lookup, MIN_VALID_POINTER, ObjType, lock};
use crate::mgc::GcState;
use crate::mutator::{Behaviour, Ctx, Op, Rng};
use crate::sched::{G, GIndex, GOwner, GState, P, ScanTrack, status};
use crate::wbarrier::{BarrierDesign, Dijkstra, StackPolicy};
use crate::workbuf::GcWork;

/// Test-only faults that make the collector wrong on purpose, so tests can show the checkers
/// catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Faults {
    /// A wrong re-scan bound: stop the mark-termination re-scan one frame before the frame holding
    /// the lowest un-hit barrier.
    pub rescan_stop_one_frame_short: bool,
}

/// Everything that configures a run of the collector.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// The write-barrier design.
    pub design: &'static dyn BarrierDesign,
    /// Stack barriers for the `dijkstra` re-scan (`Off` for designs that never re-scan).
    pub stack_barriers: StackBarrierMode,
    /// GOGC; `None` is `off` (cycles only when forced).
    pub gogc: Option<u32>,
    /// The smallest heap goal (Go's `heapminimum`, 4 MiB).
    pub heap_minimum: u64,
    /// The heap's address-space limit.
    pub heap_max: usize,
    /// The largest goroutine stack.
    pub max_stack_size: usize,
    /// Number of Ps.
    pub procs: usize,
    /// Fraction of scheduling steps given to the collector while it has work (Go's 25 %).
    pub gc_share: f64,
    /// Heap bytes one collector step of the deterministic engine scans at most (at least one
    /// object): the marker's speed relative to the mutator's. See [`crate::mark::MARK_STEP_BYTES`].
    pub mark_step_bytes: u64,
    /// Force a cycle after this many mutator operations without one.
    pub force_gc_ops: Option<u64>,
    /// The seed.
    pub seed: u64,
    /// Debug knobs.
    pub debug: DebugKnobs,
    /// Deliberate bugs, for testing the checkers.
    pub faults: Faults,
    /// Keep a [`crate::RescanRecord`] per re-scanned goroutine.
    pub record_rescans: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            design: &Dijkstra,
            stack_barriers: StackBarrierMode::GO,
            gogc: Some(100),
            heap_minimum: 4 << 20,
            heap_max: 1 << 30,
            max_stack_size: stacks::stack::DEFAULT_MAX_STACK_SIZE,
            procs: 4,
            gc_share: 0.25,
            mark_step_bytes: crate::mark::MARK_STEP_BYTES,
            force_gc_ops: None,
            seed: 1,
            debug: DebugKnobs::default(),
            faults: Faults::default(),
            record_rescans: false,
        }
    }
}

/// What a workload gives the runtime: its code, its types, its globals and its first goroutines.
#[derive(Debug)]
pub struct WorkloadImage {
    /// The simulated program.
    pub program: Program,
    /// Object types.
    pub types: Vec<ObjType>,
    /// Number of global pointer words.
    pub globals: usize,
    /// The goroutines to start, in order.
    pub goroutines: Vec<Box<dyn Behaviour>>,
}

/// What a mutator step did to its goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An operation ran; the goroutine is still current.
    Ran,
    /// The goroutine left the P (yield, block, exit, preemption).
    Switched,
    /// The P had nothing to run.
    Idle,
}

/// The shared runtime.
#[derive(Debug)]
pub struct Runtime {
    /// The simulated program.
    pub prog: Program,
    /// The heap.
    pub heap: Heap,
    /// The globals.
    pub globals: Globals,
    /// The configuration.
    pub config: GcConfig,
    /// Collector state.
    pub gc: GcState,
    /// Pointer-slot word indices of every function, back to back; function `f`'s are
    /// `ptr_slot_words[ptr_slot_range[f]]`.
    ptr_slot_words: Box<[u16]>,
    ptr_slot_range: Box<[(u32, u32)]>,
    pub(crate) stackpool: Mutex<StackPool>,
    pub(crate) allg: boxcar::Vec<G>,
    gfree: Mutex<Vec<GIndex>>,
    pub(crate) globrunq: Mutex<VecDeque<GIndex>>,
    parked: Mutex<Vec<GIndex>>,
    next_goid: AtomicU64,
    live_gs: AtomicUsize,
    shade_old: bool,
    shade_new: bool,
    pub(crate) wb_on: AtomicBool,
    /// Per P: come to the scheduler at the next safe point (Go's `preempt` flag, set for every
    /// running goroutine by `preemptall` when the world stops). Only the threaded engine sets it.
    preempt: Box<[AtomicBool]>,
}

impl Runtime {
    /// A runtime for `image`, its goroutines created and queued round-robin on `ps`.
    pub fn new(
        config: GcConfig,
        image: WorkloadImage,
        ps: &mut [P],
    ) -> Result<Runtime, RuntimeError> {
        let mut ptr_slot_words = Vec::new();
        let mut ptr_slot_range = Vec::new();
        for f in image.program.funcs() {
            let start = ptr_slot_words.len() as u32;
            ptr_slot_words.extend(f.ptr_map.iter_ones().map(|w| w as u16));
            ptr_slot_range.push((start, ptr_slot_words.len() as u32));
        }
        let design = config.design;
        let rt = Runtime {
            heap: Heap::new(image.types, config.heap_max),
            globals: Globals::new(image.globals),
            gc: GcState::new(&config),
            ptr_slot_words: ptr_slot_words.into(),
            ptr_slot_range: ptr_slot_range.into(),
            stackpool: Mutex::new(StackPool::with_max_stack_size(
                config.stack_barriers,
                config.max_stack_size,
            )),
            allg: boxcar::Vec::new(),
            gfree: Mutex::default(),
            globrunq: Mutex::default(),
            parked: Mutex::default(),
            next_goid: AtomicU64::new(1),
            live_gs: AtomicUsize::new(0),
            shade_old: design.shades_old(),
            shade_new: design.shades_new(),
            wb_on: AtomicBool::new(false),
            preempt: ps.iter().map(|_| AtomicBool::new(false)).collect(),
            prog: image.program,
            config,
        };
        for (i, b) in image.goroutines.into_iter().enumerate() {
            let n = ps.len();
            rt.newproc(b, &mut ps[i % n])?;
        }
        Ok(rt)
    }

    /// The goroutine at `index`.
    #[inline]
    pub fn g(&self, index: GIndex) -> &G {
        &self.allg[index as usize]
    }

    /// Number of `G`s ever created (live, dead or reusable).
    pub fn allglen(&self) -> usize {
        self.allg.count()
    }

    /// Goroutines alive now.
    pub fn live_goroutines(&self) -> usize {
        self.live_gs.load(Ordering::Relaxed)
    }

    /// Whether the global run queue is empty.
    pub fn globrunq_is_empty(&self) -> bool {
        lock(&self.globrunq).is_empty()
    }

    /// Goroutines blocked now.
    pub fn parked_goroutines(&self) -> usize {
        lock(&self.parked).len()
    }

    /// Asks P `id` to leave its goroutine at the next safe point and return to its scheduler
    /// loop (`mutator_run` and preemptible mark work return early).
    pub fn preempt_p(&self, id: usize) {
        if let Some(f) = self.preempt.get(id) {
            f.store(true, Ordering::Release);
        }
    }

    /// Clears P `id`'s preemption request; its scheduler loop calls this before looking at why
    /// it was preempted.
    pub fn clear_preempt(&self, id: usize) {
        if let Some(f) = self.preempt.get(id) {
            f.store(false, Ordering::Release);
        }
    }

    /// Whether P `id` has been asked to come to a safe point.
    #[inline]
    pub fn preempt_requested(&self, id: usize) -> bool {
        self.preempt
            .get(id)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// The write-barrier design's stack policy.
    pub fn stack_policy(&self) -> StackPolicy {
        self.config.design.stack_policy()
    }

    // ---------------------------------------------------------------------------------------
    // Scheduler.

    /// Creates a goroutine running `behaviour` and queues it on `p` (Go's `newproc`).
    pub fn newproc(&self, behaviour: Box<dyn Behaviour>, p: &mut P) -> Result<(), RuntimeError> {
        let index = match lock(&self.gfree).pop() {
            Some(i) => i,
            None => {
                let i = self.allg.count() as GIndex;
                let pushed = self.allg.push(G::new(i));
                debug_assert_eq!(pushed as GIndex, i);
                pushed as GIndex
            }
        };
        let g = self.g(index);
        let mut owner = g
            .try_own(status::DEAD, status::IDLE)
            .expect("a free G is dead and unowned");
        let goid = self.next_goid.fetch_add(1, Ordering::Relaxed);
        g.set_goid(goid);
        // A request to scan the G's previous goroutine does not carry over to this one.
        g.preempt_scan.store(false, Ordering::Relaxed);
        let stack = lock(&self.stackpool).stackalloc(stacks::stack::FIXED_STACK)?;
        let rng = Rng::seed_from_u64(self.config.seed ^ goid.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *g.state(&mut owner) = Some(GState {
            gs: stacks::GStack::new(goid, stack, &self.prog),
            depth: 0,
            behaviour,
            rng,
            gcscanvalid: false,
            track: None,
            gc_assist_bytes: 0,
        });
        self.live_gs.fetch_add(1, Ordering::Relaxed);
        p.counters.spawned += 1;
        self.gc.note_new_goroutine(self, index);
        g.release(owner, status::RUNNABLE);
        p.runq.push_back(index);
        Ok(())
    }

    /// Makes the next runnable goroutine `p`'s current one; false if there is none.
    pub fn schedule(&self, p: &mut P) -> bool {
        debug_assert!(p.curg.is_none());
        for _ in 0..p.runq.len() + 1 {
            p.schedtick = p.schedtick.wrapping_add(1);
            let global_first = p.schedtick.is_multiple_of(61);
            let next = global_first
                .then(|| lock(&self.globrunq).pop_front())
                .flatten()
                .or_else(|| p.runq.pop_front())
                .or_else(|| lock(&self.globrunq).pop_front());
            let Some(index) = next else { return false };
            let g = self.g(index);
            let Some(mut owner) = g.try_own(status::RUNNABLE, status::RUNNING) else {
                // A marker holds its stack: try it again later.
                p.runq.push_back(index);
                continue;
            };
            let st = g
                .state(&mut owner)
                .as_mut()
                .expect("a runnable goroutine has state");
            if st.gcscanvalid {
                // It runs again after its scan: its stack is no longer known good (queueRescan).
                st.gcscanvalid = false;
                self.gc.queue_rescan(index);
            }
            p.curg = Some(owner);
            return true;
        }
        false
    }

    /// Takes `p`'s current goroutine off it, leaving it runnable at the front of `p`'s queue
    /// (preemption at a safe point, and stopping the world).
    pub fn deschedule(&self, p: &mut P) {
        if let Some(owner) = p.curg.take() {
            let index = owner.index();
            self.g(index).release(owner, status::RUNNABLE);
            p.runq.push_front(index);
        }
    }

    /// Moves the back half of `p`'s run queue, beyond `keep` goroutines, to the global queue
    /// where idle Ps find it (Go's `runqputslow`).
    pub fn spill_runq(&self, p: &mut P, keep: usize) {
        if p.runq.len() <= keep {
            return;
        }
        let n = if keep == 0 {
            p.runq.len()
        } else {
            (p.runq.len() - keep).div_ceil(2)
        };
        let at = p.runq.len() - n;
        lock(&self.globrunq).extend(p.runq.drain(at..));
    }

    /// Wakes one blocked goroutine, if the P has nothing to do and no goroutine can run anywhere
    /// (the engine's stand-in for a timer or the network poller). Returns whether it did.
    pub fn wake_one_if_all_blocked(&self, p: &mut P, rng: &mut Rng) -> bool {
        let mut parked = lock(&self.parked);
        if parked.is_empty() {
            return false;
        }
        let i = rng.random_range(0..parked.len());
        let index = parked.swap_remove(i);
        drop(parked);
        self.ready(index, p);
        true
    }

    /// Moves a blocked goroutine to `p`'s run queue (Go's `ready`).
    fn ready(&self, index: GIndex, p: &mut P) {
        let g = self.g(index);
        loop {
            if let Some(owner) = g.try_own(status::WAITING, status::RUNNABLE) {
                g.release(owner, status::RUNNABLE);
                break;
            }
            // A marker is scanning it; it releases the stack in a bounded time.
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        p.runq.push_back(index);
    }

    // ---------------------------------------------------------------------------------------
    // The mutator.

    /// Runs one operation of `p`'s current goroutine, scheduling one first if there is none.
    #[inline]
    pub fn mutator_step(&self, p: &mut P) -> Result<Step, RuntimeError> {
        self.mutator_run(p, 1)
    }

    /// Runs up to `max_ops` operations of `p`'s current goroutine (scheduling one first if there
    /// is none), stopping early when it leaves the P. Every operation boundary is a safe point:
    /// a marker's request to scan the stack (Go's preemptscan) is honoured there. Returns
    /// [`Step::Ran`] if the goroutine is still current; `p.counters.ops` counts what ran.
    pub fn mutator_run(&self, p: &mut P, max_ops: u64) -> Result<Step, RuntimeError> {
        if p.curg.is_none() && !self.schedule(p) {
            return Ok(Step::Idle);
        }
        let mut owner = p.curg.take().expect("scheduled");
        let g = self.g(owner.index());
        for _ in 0..max_ops {
            if self.preempt_requested(p.id) {
                break;
            }
            if g.preempt_scan.load(Ordering::Acquire) {
                // A marker asked us to scan our own stack at this safe point.
                g.preempt_scan.store(false, Ordering::Relaxed);
                if let Err(e) = self.self_scan(&mut owner, p) {
                    p.curg = Some(owner);
                    return Err(e);
                }
            }
            let st = g
                .state(&mut owner)
                .as_mut()
                .expect("a running goroutine has state");
            let op = st.behaviour.next_op(&Ctx { depth: st.depth }, &mut st.rng);
            p.counters.ops += 1;
            let leave = match self.exec(op, st, p) {
                Ok(Flow::Continue) => continue,
                Ok(Flow::Spawn) => {
                    if let Some(child) = st.behaviour.spawn(&mut st.rng)
                        && let Err(e) = self.newproc(child, p)
                    {
                        p.curg = Some(owner);
                        return Err(e);
                    }
                    continue;
                }
                Ok(Flow::Leave(leave)) => leave,
                Err(e) => {
                    p.curg = Some(owner);
                    return Err(e);
                }
            };
            let index = owner.index();
            match leave {
                Leave::Yield => {
                    g.release(owner, status::RUNNABLE);
                    p.runq.push_back(index);
                }
                Leave::Block => {
                    g.release(owner, status::WAITING);
                    lock(&self.parked).push(index);
                }
                Leave::Exit => self.goexit(owner, p)?,
            }
            return Ok(Step::Switched);
        }
        p.curg = Some(owner);
        Ok(Step::Ran)
    }

    /// Ends the owned goroutine: its remaining barriers are passed, its stack returns to the pool
    /// and its `G` to the free list (seed 002's `gfput`: the barriers go with the goroutine).
    fn goexit(&self, mut owner: GOwner, p: &mut P) -> Result<(), RuntimeError> {
        let index = owner.index();
        let g = self.g(index);
        let mut st = g
            .state(&mut owner)
            .take()
            .expect("a running goroutine has state");
        let hi = st.gs.stack().hi();
        st.gs.unwind_barriers(&self.prog, hi)?;
        self.gc.note_goroutine_exit(&st.gs.take_counters());
        lock(&self.stackpool).stackfree(st.gs.into_stack());
        self.live_gs.fetch_sub(1, Ordering::Relaxed);
        g.release(owner, status::DEAD);
        lock(&self.gfree).push(index);
        let _ = p;
        Ok(())
    }

    /// The word indices of `f`'s pointer slots.
    #[inline]
    fn ptr_slots(&self, f: FuncId) -> &[u16] {
        let (start, end) = self.ptr_slot_range[f.0 as usize];
        &self.ptr_slot_words[start as usize..end as usize]
    }

    /// The running frame's pointer slots: one frame lookup per operation, however many slots it
    /// reads and writes. A goroutine with no frames has none.
    #[inline]
    fn locals<'s>(&'s self, st: &'s mut GState) -> Result<Locals<'s>, RuntimeError> {
        let sp = st.gs.sp();
        if st.gs.is_empty() {
            return Ok(Locals {
                sp,
                words: &mut [],
                slots: &[],
            });
        }
        let (f, words) = st.gs.running_locals_mut(&self.prog)?;
        Ok(Locals {
            sp,
            words,
            slots: self.ptr_slots(f),
        })
    }

    /// Whether `v` points into the goroutine's live stack.
    #[inline]
    fn is_stack_ptr(st: &GState, v: u64) -> bool {
        let s = st.gs.stack();
        v >= st.gs.sp().0 && v < s.hi().0
    }

    /// Whether `v` is a stack address: such a value is never stored outside the frame holding it
    /// (Go's escape analysis would have moved the local to the heap), so the store does nothing.
    #[inline]
    fn escapes(v: u64) -> bool {
        (stacks::stack::STACK_BASE.0..stacks::stack::STACK_END.0).contains(&v)
    }

    /// The heap object `v` points to; `None` for nil and non-heap values; an error for a dangling
    /// heap pointer.
    fn deref(
        &self,
        goid: u64,
        v: u64,
        place: Addr,
    ) -> Result<Option<crate::heap::ObjRef>, RuntimeError> {
        if v == 0 {
            return Ok(None);
        }
        match self.heap.find_object(v) {
            Lookup::Object(o) => Ok(Some(o)),
            Lookup::NotHeap => Ok(None),
            Lookup::Free(_) => Err(RuntimeError::BadPointer {
                value: v,
                place: stack_place(goid, place),
                why: "the mutator dereferenced a freed object (use after free: the collector freed a reachable object)",
            }),
        }
    }

    /// The heap object slot `obj` of the running frame points to, and the word index of its
    /// pointer field `field` (modulo their number): `None` for a nil or non-heap value or a type
    /// with no pointer fields; an error for a dangling heap pointer.
    #[inline]
    fn pointer_field(
        &self,
        goid: u64,
        locals: &Locals<'_>,
        obj: u8,
        field: u8,
    ) -> Result<Option<(crate::heap::ObjRef, usize)>, RuntimeError> {
        let Some((place, v)) = locals.get(obj) else {
            return Ok(None);
        };
        let Some(o) = self.deref(goid, v, place)? else {
            return Ok(None);
        };
        let t = self.heap.type_of(self.heap.object_type(o));
        Ok((!t.ptr_fields.is_empty()).then(|| {
            (
                o,
                t.ptr_fields[field as usize % t.ptr_fields.len()] as usize,
            )
        }))
    }

    /// Executes one operation.
    #[inline]
    fn exec(&self, op: Op, st: &mut GState, p: &mut P) -> Result<Flow, RuntimeError> {
        let prog = &self.prog;
        match op {
            Op::Call { func, site } => {
                if prog.func(func).kind != FuncKind::User {
                    return Err(RuntimeError::Mutator {
                        goid: st.gs.goid(),
                        what: format!("calls runtime function {}", prog.func(func).name),
                    });
                }
                if let Call::MoreStack { needed } = st.gs.call(prog, func, u32::from(site))? {
                    st.gs.newstack(&mut lock(&self.stackpool), prog, needed)?;
                    p.counters.copystacks += 1;
                    let again = st.gs.call(prog, func, u32::from(site))?;
                    debug_assert_eq!(again, Call::Pushed);
                }
                st.depth += 1;
            }
            Op::Ret => {
                if st.depth == 0 {
                    return Ok(Flow::Leave(Leave::Exit));
                }
                match st.gs.ret(prog)? {
                    Ret::Exited => return Ok(Flow::Leave(Leave::Exit)),
                    Ret::Returned { .. } => {
                        st.depth -= 1;
                        self.note_return(st);
                    }
                }
            }
            Op::Alloc { ty, dst } => {
                let mut locals = self.locals(st)?;
                if locals.has_slots() {
                    let black = self.gc.allocate_black();
                    let a = self.heap.alloc(&mut p.mcache, ty, black)?;
                    locals.set(dst, a.0);
                    self.gc.note_alloc(self);
                    if black {
                        self.gc_assist_alloc(st, p, self.heap.type_of(ty).size)?;
                    }
                }
            }
            Op::Copy { src, dst } => {
                let mut locals = self.locals(st)?;
                if let Some((_, v)) = locals.get(src) {
                    locals.set(dst, v);
                }
            }
            Op::Clear { dst } => self.locals(st)?.set(dst, 0),
            Op::LoadField { obj, field, dst } => {
                let goid = st.gs.goid();
                let mut locals = self.locals(st)?;
                if let Some((o, w)) = self.pointer_field(goid, &locals, obj, field)? {
                    locals.set(dst, self.heap.read_word(o, w));
                }
            }
            Op::StoreField { obj, field, src } => {
                let goid = st.gs.goid();
                let locals = self.locals(st)?;
                if let Some((o, w)) = self.pointer_field(goid, &locals, obj, field)? {
                    let new = locals.source(src);
                    if Self::escapes(new) {
                        return Ok(Flow::Continue);
                    }
                    let old = self.heap.read_word(o, w);
                    self.write_barrier(p, old, new)?;
                    self.heap.write_word(o, w, new);
                }
            }
            Op::LoadGlobal { global, dst } => {
                if !self.globals.is_empty() {
                    let v = self.globals.read(global as usize % self.globals.len());
                    self.locals(st)?.set(dst, v);
                }
            }
            Op::StoreGlobal { global, src } => {
                if !self.globals.is_empty() {
                    let i = global as usize % self.globals.len();
                    let new = self.locals(st)?.source(src);
                    if Self::escapes(new) {
                        return Ok(Flow::Continue);
                    }
                    let old = self.globals.read(i);
                    self.write_barrier(p, old, new)?;
                    self.globals.write(i, new);
                }
            }
            Op::TakeAddr { up, slot, dst } => {
                if up == 0 || usize::from(up) >= st.depth || !self.locals(st)?.has_slots() {
                    return Ok(Flow::Continue);
                }
                let frame = st
                    .gs
                    .frames(prog)
                    .nth(usize::from(up))
                    .expect("depth counts the frames")?;
                let slots = self.ptr_slots(frame.func);
                if !slots.is_empty() {
                    let w = slots[slot as usize % slots.len()] as usize;
                    self.locals(st)?.set(dst, frame.sp.add(w * WORD).0);
                }
            }
            Op::StoreThrough { ptr, src } => {
                let (target, new) = {
                    let locals = self.locals(st)?;
                    let Some((_, target)) = locals.get(ptr) else {
                        return Ok(Flow::Continue);
                    };
                    (target, locals.source(src))
                };
                if Self::is_stack_ptr(st, target) && !Self::escapes(new) {
                    let old = st.gs.read(Addr(target))?;
                    self.write_barrier(p, old, new)?;
                    st.gs.write(Addr(target), new)?;
                }
            }
            Op::BulkWrite { ptr, src } => {
                let (target, v) = {
                    let locals = self.locals(st)?;
                    let Some((_, target)) = locals.get(ptr) else {
                        return Ok(Flow::Continue);
                    };
                    (target, locals.source(Some(src)))
                };
                if Self::is_stack_ptr(st, target) && !Self::escapes(v) {
                    st.gs.runtime_bulk_write(prog, Addr(target), &[v])?;
                    self.note_bulk_write(st, Addr(target))?;
                }
            }
            Op::Unwind { frames } => {
                let n = usize::from(frames).min(st.depth.saturating_sub(1));
                if n > 0 {
                    st.gs.unwind_frames(prog, n)?;
                    st.depth -= n;
                    self.note_return(st);
                }
            }
            Op::Spawn => return Ok(Flow::Spawn),
            Op::Yield => return Ok(Flow::Leave(Leave::Yield)),
            Op::Block => return Ok(Flow::Leave(Leave::Block)),
            Op::Wake => {
                let woken = {
                    let mut parked = lock(&self.parked);
                    (!parked.is_empty()).then(|| {
                        let i = st.rng.random_range(0..parked.len());
                        parked.swap_remove(i)
                    })
                };
                if let Some(index) = woken {
                    self.ready(index, p);
                }
            }
            Op::Exit => return Ok(Flow::Leave(Leave::Exit)),
        }
        Ok(Flow::Continue)
    }

    /// The watermark after a return or unwind: the frame now running has run since the scan.
    #[inline]
    fn note_return(&self, st: &mut GState) {
        let Some(t) = st.track.as_mut() else { return };
        let depth = st.gs.used();
        t.ret_slot_depth = t.ret_slot_depth.min(depth + WORD);
        if depth < t.changed_sp_depth {
            let size = self.prog.findframe(st.gs.pc()).map_or(0, |(_, s)| s);
            t.changed_sp_depth = depth;
            t.changed_top_depth = depth - size;
        }
    }

    /// The watermark after a runtime bulk write at `dst`: the frame holding it has changed.
    fn note_bulk_write(&self, st: &mut GState, dst: Addr) -> Result<(), RuntimeError> {
        let Some(mut t) = st.track else {
            return Ok(());
        };
        let hi = st.gs.stack().hi();
        for frame in st.gs.frames(&self.prog) {
            let frame = frame?;
            if frame.fp > dst {
                let sp_depth = hi.offset_from(frame.sp);
                t.ret_slot_depth = t.ret_slot_depth.min(hi.offset_from(dst) + WORD);
                if sp_depth < t.changed_sp_depth {
                    t.changed_sp_depth = sp_depth;
                    t.changed_top_depth = hi.offset_from(frame.fp);
                }
                break;
            }
        }
        st.track = Some(t);
        Ok(())
    }

    /// The write barrier: every store into a heap object, a global or an outer frame comes here
    /// first with the slot's old value and the value being stored.
    #[inline]
    pub fn write_barrier(&self, p: &mut P, old: u64, new: u64) -> Result<(), RuntimeError> {
        if !self.wb_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        p.counters.wb_calls += 1;
        if self.shade_old {
            self.shade(old, &mut p.gcw, "a slot's old value in the write barrier")?;
        }
        if self.shade_new {
            self.shade(new, &mut p.gcw, "a stored value in the write barrier")?;
        }
        Ok(())
    }

    /// Greys the object `v` points to, if it is white (Go's `shade`/`greyobject`). Nil and
    /// non-heap values (stack addresses, globals) are ignored; with `invalidptr`, values in the
    /// first page and heap addresses outside every object are fatal.
    #[inline]
    pub fn shade(&self, v: u64, gcw: &mut GcWork, place: &str) -> Result<(), RuntimeError> {
        if v == 0 {
            return Ok(());
        }
        if v < MIN_VALID_POINTER {
            return self.bad_pointer(v, place, "a pointer into the first page");
        }
        match self.heap.find_object(v) {
            Lookup::NotHeap => Ok(()),
            Lookup::Free(_) => {
                self.bad_pointer(v, place, "a heap address outside every allocated object")
            }
            Lookup::Object(o) => {
                if self.heap.try_mark(o) {
                    gcw.put(&self.gc.pool, o.base);
                }
                Ok(())
            }
        }
    }

    fn bad_pointer(&self, value: u64, place: &str, why: &'static str) -> Result<(), RuntimeError> {
        if self.config.debug.invalidptr {
            Err(RuntimeError::BadPointer {
                value,
                place: place.to_owned(),
                why,
            })
        } else {
            Ok(())
        }
    }

    /// Starts a scan track for a goroutine whose stack was just scanned.
    pub(crate) fn begin_track(&self, st: &mut GState) {
        let used = st.gs.used();
        let top = if st.gs.is_empty() {
            used
        } else {
            used - self.prog.findframe(st.gs.pc()).map_or(0, |(_, s)| s)
        };
        st.track = Some(ScanTrack {
            sp0_depth: used,
            changed_top_depth: top,
            changed_sp_depth: used,
            ret_slot_depth: usize::MAX,
        });
    }
}

/// The running frame's pointer slots as the interpreter sees them: slot `k` of an operation is the
/// frame's `k`-th pointer slot, modulo their number; a frame without pointer slots ignores every
/// local operation.
struct Locals<'s> {
    sp: Addr,
    words: &'s mut [u64],
    slots: &'s [u16],
}

impl Locals<'_> {
    /// The word index of slot `k`.
    #[inline]
    fn word(&self, k: u8) -> Option<usize> {
        (!self.slots.is_empty()).then(|| usize::from(self.slots[usize::from(k) % self.slots.len()]))
    }

    /// Whether the frame has pointer slots (then every slot number names one).
    #[inline]
    fn has_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Slot `k`'s address and value.
    #[inline]
    fn get(&self, k: u8) -> Option<(Addr, u64)> {
        self.word(k).map(|w| (self.sp.add(w * WORD), self.words[w]))
    }

    /// The value of optional source slot `src`: nil for `None` or a frame without slots.
    #[inline]
    fn source(&self, src: Option<u8>) -> u64 {
        src.and_then(|k| self.get(k)).map_or(0, |(_, v)| v)
    }

    /// Stores `v` into slot `k`: a store to the frame's own local, with no write barrier.
    #[inline]
    fn set(&mut self, k: u8, v: u64) {
        if let Some(w) = self.word(k) {
            self.words[w] = v;
        }
    }
}

/// What the interpreter tells the scheduler after an operation.
enum Flow {
    /// The goroutine keeps the P.
    Continue,
    /// The goroutine keeps the P and starts a child (its behaviour says which).
    Spawn,
    /// The goroutine leaves the P.
    Leave(Leave),
}

/// How a goroutine leaves its P.
enum Leave {
    Yield,
    Block,
    Exit,
}
