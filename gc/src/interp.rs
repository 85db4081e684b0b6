//! The mutator interpreter: runs a P's current goroutine operation by operation.
//!
//! Invariant: every operation keeps the contract of `mutator` (ARCHITECTURE.md §1's store rules): the
//! running frame's own slots are written with no write barrier; every store into a heap object,
//! a global or an outer frame goes through [`Runtime::writebarrierptr`]; runtime bulk writes and
//! multi-frame unwinds pass the stack barriers below their target first. A goroutine leaves its P
//! only where Go's would: when it yields, blocks or exits, or at a function prologue when asked to
//! (preemption, see [`Runtime::mutator_run`]); every operation boundary is a point where the
//! engine may interleave another P.
//!
//! The interpreter keeps, for a goroutine scanned in this cycle, the watermark of ARCHITECTURE.md §4 (the
//! highest frame that has run since the scan): returns, unwinds and runtime bulk writes raise it;
//! calls and local stores happen below it. Mark termination turns it into `oracle_rescan_bytes`.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngExt;
use stacks::{Addr, Call, FuncId, FuncKind, Ret, RuntimeFn, WORD};

use crate::debug::seeded_fraction;
use crate::error::{RuntimeError, stack_place};
use crate::heap::{Lookup, lock};
use crate::mgc::Phase;
use crate::mutator::{Ctx, Op};
use crate::profile::{BarrierSignals, Curg, G0Entry, Where};
use crate::runtime::{Runtime, Step};
use crate::sched::{FRAME_MEMOS, FrameMemo, GIndex, GState, P, status};
use crate::trace::TraceEv;
use crate::wbarrier::Slot;

/// The `seeded_fraction` stream `--inject hit-lost` draws from.
const HIT_LOST_STREAM: u64 = 0x417;
/// The `seeded_fraction` stream `--inject unwind-skip` draws from.
const UNWIND_SKIP_STREAM: u64 = 0x5e1;
impl Runtime {
    /// Runs one operation of `p`'s current goroutine, scheduling one first if there is none.
    #[inline]
    pub fn mutator_step(&self, p: &mut P) -> Result<Step, RuntimeError> {
        self.mutator_run(p, 1)
    }

    /// Runs up to `max_ops` operations of `p`'s current goroutine (scheduling one first if there
    /// is none), stopping early when it leaves the P. Returns [`Step::Ran`] if the goroutine is
    /// still current; `p.counters.ops` counts what ran.
    ///
    /// Preemption, as in Go, happens only at a function prologue: after a call has pushed its
    /// frame, the callee's stack-guard check is where a marker's request to scan the stack (Go's
    /// `preemptscan`) is served — the goroutine scans itself and runs on — and where a request
    /// to give up the P (a time slice spent, a stop-the-world, a ragged barrier: Go's
    /// `stackguard0 = stackPreempt`) sends it to the global run queue (`gopreempt_m`).
    pub fn mutator_run(&self, p: &mut P, max_ops: u64) -> Result<Step, RuntimeError> {
        if p.curg.is_none() {
            // An idle M takes no signal: `schedule` finding nothing is no boundary.
            if !self.schedule(p) {
                return Ok(Step::Idle);
            }
            self.gogo(p);
        }
        let mut owner = p.curg.take().expect("scheduled");
        let index = owner.index();
        let g = self.g(index);
        let mut st = g
            .state(&mut owner)
            .as_mut()
            .expect("a running goroutine has state");
        for _ in 0..max_ops {
            if p.prof.is_some() {
                self.sig_boundary(&mut p.prof, p.id, Some(Curg::of(index, st)), Where::Op);
            }
            let op = st.behaviour.next_op(&Ctx { depth: st.depth }, &mut st.rng);
            p.counters.ops += 1;
            let leave = match self.exec(op, index, st, p) {
                Ok(Flow::Continue) => {
                    if !matches!(op, Op::Call { .. }) {
                        continue;
                    }
                    // The callee's prologue. A scan request takes the goroutine through
                    // `morestack;newstack;scanstack` on g0 and `gogo`es back.
                    if g.preempt_scan.load(Ordering::Acquire) {
                        g.preempt_scan.store(false, Ordering::Relaxed);
                        let frames = [RuntimeFn::Newstack, RuntimeFn::Scanstack];
                        self.enter_g0(p, Curg::of(index, st), G0Entry::Morestack, &frames);
                        if let Err(e) = self.self_scan(&mut owner, p) {
                            p.curg = Some(owner);
                            return Err(e);
                        }
                        st = g.state(&mut owner).as_mut().expect("still running");
                        self.gogo_switch(p, Curg::of(index, st));
                    }
                    if !self.preempt_requested(p.id) {
                        continue;
                    }
                    Leave::Preempt
                }
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
            let st = g
                .state(&mut owner)
                .as_ref()
                .expect("a running goroutine has state");
            g.stack_used.store(st.gs.used() as u64, Ordering::Relaxed);
            let (entry, frames) = leave.g0_path();
            self.enter_g0(p, Curg::of(index, st), entry, frames);
            self.trace_go_left(p, index, leave.trace_reason());
            match leave {
                Leave::Yield | Leave::Preempt => {
                    // runtime.Gosched and a preemption (`goschedImpl`, `gopreempt_m`): to the
                    // global run queue.
                    g.release(owner, status::RUNNABLE);
                    lock(&self.globrunq).push_back(index);
                }
                Leave::Block => {
                    g.release(owner, status::WAITING);
                    lock(&self.parked).push(index);
                }
                Leave::Exit => {
                    self.goexit(owner, p)?;
                    self.g0_ret(p); // gfput returns to goexit0
                }
            }
            self.g0_call(p, self.prog.schedule());
            return Ok(Step::Switched);
        }
        p.curg = Some(owner);
        Ok(Step::Ran)
    }

    /// A write-barriered store of `v` into stack slot `slot` of `st`: stackshadow's record of
    /// this cycle, if any, follows it (out of line: the interpreter's loop stays small).
    #[inline(never)]
    fn shadow_follows_store(&self, st: &mut GState, slot: Addr, v: u64) {
        let cycle = self.gc.cycle();
        if let Some(shadow) = st.shadow.as_mut().filter(|s| s.cycle() == cycle) {
            shadow.note_store(self, &st.gs, slot, v);
        }
    }

    /// `--inject unwind-skip` on a bulk write of `v` to `target`: if there are barriers below it
    /// and the fault strikes, the write skips `gcUnwindBarriers` (the barriers stay, the bound
    /// stays where it was) and is done here. Whether it was.
    #[cold]
    #[inline(never)]
    fn bulk_write_skipping_barriers(
        &self,
        st: &mut GState,
        target: Addr,
        v: u64,
    ) -> Result<bool, RuntimeError> {
        let below = st.gs.stkbar().skip(st.gs.stkbar_pos());
        let would_pass = below.filter(|b| b.saved_lr_ptr < target).count();
        let skip = self.config.inject.unwind_skip;
        if would_pass == 0 || !self.fault_drawn(st, skip, UNWIND_SKIP_STREAM) {
            return Ok(false);
        }
        self.fault_log.note_unwind_skipped();
        st.gs.write(target, v)?;
        self.note_bulk_write(st, target)?;
        Ok(true)
    }

    /// Whether an injected fault of `fraction` on stream `stream` strikes goroutine `st` now:
    /// only while marking, after its scan in this cycle (drawn per cycle, goroutine and stkbar
    /// position, so the checkers on or off do not change the draw).
    fn fault_drawn(&self, st: &GState, fraction: f64, stream: u64) -> bool {
        let cycle = self.gc.cycle();
        fraction > 0.0
            && self.gc.phase() == Phase::Mark
            && st.track.is_some_and(|t| t.cycle == cycle)
            && seeded_fraction(
                self.config.seed,
                stream,
                (u64::from(cycle) << 40) ^ (st.gs.goid() << 20) ^ st.gs.stkbar_pos() as u64,
                fraction,
            )
    }

    /// `--inject hit-lost` and `unwind-skip` on multi-frame unwinds: if the fault strikes, the
    /// `passed` barriers just passed (a hit, or an unwind's) never reach the collector's view of
    /// `stkbar_pos`, so the re-scan bound lags by that many entries. Whether it struck.
    #[cold]
    #[inline(never)]
    fn hide_passed_barriers(
        &self,
        st: &mut GState,
        passed: usize,
        fraction: f64,
        stream: u64,
    ) -> bool {
        if passed == 0 || !self.fault_drawn(st, fraction, stream) {
            return false;
        }
        if let Some(t) = st.track.as_mut() {
            t.stkbar_lag += passed;
        }
        true
    }

    /// The word indices of `f`'s pointer slots.
    #[inline]
    pub(crate) fn ptr_slots(&self, f: FuncId) -> &[u32] {
        let (start, end) = self.ptr_slot_range[f.0 as usize];
        &self.ptr_slot_words[start as usize..end as usize]
    }

    /// The running frame's pointer slots: one frame lookup per operation, however many slots it
    /// reads and writes, and none while the goroutine's [`FrameMemo`] for its call depth covers
    /// the frame. A goroutine with no frames has none. (Always inlined: left to itself the
    /// compiler calls it, which halved the interpreter's speed on field operations.)
    #[inline(always)]
    fn locals<'s>(&'s self, st: &'s mut GState) -> Result<Locals<'s>, RuntimeError> {
        let sp = st.gs.sp();
        let stack = st.gs.stack();
        let (pc, lo, hi) = (st.gs.pc().0, stack.lo().0, stack.hi().0);
        let at = st.depth % FRAME_MEMOS;
        if !st.frame_memos[at].covers(pc, sp.0, lo, hi) {
            self.resolve_frame(st, at)?;
        }
        let FrameMemo {
            words,
            func,
            has_slots,
            ..
        } = st.frame_memos[at];
        Ok(Locals {
            sp,
            words: st.gs.stack().word_slice(words.0..words.1),
            operands: &self.operand_words[func as usize],
            has_slots,
        })
    }

    /// Resolves the running frame of `st` into its [`FrameMemo`] at index `at` (out of line:
    /// the interpreter's common path is the memo's). An empty stack's memo covers its one PC.
    #[inline(never)]
    fn resolve_frame(&self, st: &mut GState, at: usize) -> Result<(), RuntimeError> {
        let stack = st.gs.stack();
        let (sp, lo, hi) = (st.gs.sp().0, stack.lo().0, stack.hi().0);
        let first = st.gs.sp().offset_from(stack.lo()) / WORD;
        st.frame_memos[at] = if st.gs.is_empty() {
            let pc = st.gs.pc().0;
            FrameMemo {
                pcs: (pc, pc + 1),
                sp,
                lo,
                hi,
                ..FrameMemo::default()
            }
        } else {
            let (f, words) = st.gs.running_locals_mut(&self.prog)?;
            let func = self.prog.func(f);
            FrameMemo {
                pcs: (func.entry.0, func.entry.0 + func.len),
                sp,
                lo,
                hi,
                words: (first, first + words.len()),
                func: f.0,
                has_slots: !self.ptr_slots(f).is_empty(),
            }
        };
        Ok(())
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
    ) -> Result<Option<crate::heap::ObjRef<'_>>, RuntimeError> {
        if v == 0 {
            return Ok(None);
        }
        match self.heap.find_object(v) {
            Lookup::Object(o) => Ok(Some(o)),
            Lookup::NotHeap => Ok(None),
            Lookup::Free(_) => Err(use_after_free(goid, v, place)),
        }
    }

    /// The heap object slot `obj` of the running frame points to, and the word index of its
    /// pointer field `field` (modulo their number): `None` for a nil or non-heap value or a type
    /// with no pointer fields; an error for a dangling heap pointer. (Always inlined: called, it
    /// returns its answer through memory, a sixth of a field load's instructions.)
    #[inline(always)]
    fn pointer_field(
        &self,
        goid: u64,
        locals: &Locals<'_>,
        obj: u8,
        field: u8,
    ) -> Result<Option<(crate::heap::ObjRef<'_>, usize)>, RuntimeError> {
        let Some((place, v)) = locals.get(obj) else {
            return Ok(None);
        };
        let Some(o) = self.deref(goid, v, place)? else {
            return Ok(None);
        };
        let t = self.heap.type_of(self.heap.object_type(o));
        Ok(t.operand_fields
            .get(usize::from(field))
            .map(|&w| (o, w as usize)))
    }

    /// Executes one operation.
    #[inline]
    fn exec(
        &self,
        op: Op,
        index: GIndex,
        st: &mut GState,
        p: &mut P,
    ) -> Result<Flow, RuntimeError> {
        let prog = &self.prog;
        match op {
            Op::Call { func, site } => {
                if prog.func(func).kind != FuncKind::User {
                    return Err(RuntimeError::Mutator {
                        goid: st.gs.goid(),
                        what: format!("calls runtime function {}", prog.func(func).name),
                    });
                }
                // Each failed stack-guard check is one trip through morestack, which doubles
                // the stack once (`newstack`); the prologue then checks again.
                // The trip runs on g0 (`morestack;newstack;copystack`) and `gogo`es back.
                while let Call::MoreStack { .. } = st.gs.call(prog, func, u32::from(site))? {
                    let frames = [RuntimeFn::Newstack, RuntimeFn::Copystack];
                    self.enter_g0(p, Curg::of(index, st), G0Entry::Morestack, &frames);
                    let mut sig = BarrierSignals::on(self, p, index, &st.true_frames);
                    st.gs
                        .newstack_with_signals(&mut lock(&self.stackpool), prog, &mut sig)
                        .map_err(|e| self.copystack_error(e, &st.gs))?;
                    self.gogo_switch(p, Curg::of(index, st));
                    p.counters.copystacks += 1;
                    let size = st.gs.stack().alloc_size() as u64;
                    self.trace_p(p, TraceEv::CopyStack, [st.gs.goid(), size]);
                }
                st.depth += 1;
                if self.keep_true_frames {
                    st.true_frames.push(func);
                }
            }
            Op::Ret => {
                if st.depth == 0 {
                    return Ok(Flow::Leave(Leave::Exit));
                }
                // The frame is gone once the return pops it: a signal inside the trampoline
                // sees the caller's frames.
                if self.keep_true_frames {
                    st.true_frames.pop();
                }
                let mut sig = BarrierSignals::on(self, p, index, &st.true_frames);
                match st.gs.ret_with_signals(prog, &mut sig)? {
                    Ret::Exited => return Ok(Flow::Leave(Leave::Exit)),
                    Ret::Returned { hit_barrier } => {
                        st.depth -= 1;
                        self.note_return(st);
                        if hit_barrier {
                            self.after_watermark_pass(p, st)?;
                            let pos = st.gs.stkbar_pos() as u64;
                            self.trace_p(p, TraceEv::BarrierHit, [st.gs.goid(), pos]);
                            let f = self.config.inject.hit_lost;
                            if f > 0.0 && self.hide_passed_barriers(st, 1, f, HIT_LOST_STREAM) {
                                self.fault_log.note_hit_lost();
                            }
                        }
                    }
                }
            }
            Op::Alloc { ty, dst } => {
                let mut locals = self.locals(st)?;
                if locals.has_slots() {
                    let a = self.mallocgc(p, ty, |a| locals.set(dst, a.0))?;
                    self.after_malloc(p, st, a, ty)?;
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
                let store = {
                    let locals = self.locals(st)?;
                    self.pointer_field(goid, &locals, obj, field)?
                        .map(|(o, w)| (o, w, locals.source(src)))
                };
                if let Some((o, w, new)) = store
                    && !Self::escapes(new)
                {
                    self.writebarrierptr(p, st, Slot::Field(o, w), new)?;
                }
            }
            Op::SwapField {
                obj,
                field,
                src,
                dst,
            } => {
                let goid = st.gs.goid();
                let swap = {
                    let locals = self.locals(st)?;
                    self.pointer_field(goid, &locals, obj, field)?
                        .map(|(o, w)| (o, w, locals.source(src)))
                };
                if let Some((o, w, new)) = swap
                    && !Self::escapes(new)
                {
                    let old = self.atomic_swap(p, o, w, new)?;
                    self.locals(st)?.set(dst, old);
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
                    if !Self::escapes(new) {
                        self.writebarrierptr(p, st, Slot::Global(i), new)?;
                    }
                }
            }
            Op::TakeAddr { up, slot, dst } => {
                if up == 0 || usize::from(up) >= st.depth || !self.locals(st)?.has_slots() {
                    return Ok(Flow::Continue);
                }
                let frame = {
                    let _walk = st.gs.lock_for_walk();
                    st.gs
                        .frames(prog)
                        .nth(usize::from(up))
                        .expect("depth counts the frames")?
                };
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
                    // While a lazy scan's checker keeps its record, the store and the record's
                    // update hold the stack-barrier lock: a marker scanning the slot in between
                    // would see a change the record does not know of.
                    let checked = st.gs.has_watermark() && self.keeps_stack_records();
                    let stack_lock = checked.then(|| st.gs.stack_barrier_lock());
                    let held = stack_lock.as_ref().map(|l| l.lock_guard());
                    self.writebarrierptr(p, st, Slot::Stack(Addr(target)), new)?;
                    if held.is_some() {
                        st.gs.watermark_note_store_locked(Addr(target), new);
                    }
                    drop(held);
                    // The barrier shaded the value: stackshadow's record follows the store.
                    if st.shadow.is_some() {
                        self.shadow_follows_store(st, Addr(target), new);
                    }
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
                    if !self.wb_on.load(Ordering::Relaxed) {
                        // Go's `heapBitsBulkBarrier` does nothing while the write barrier is
                        // off: barriers a skipped goroutine still carries are left for its next
                        // scan to remove.
                        st.gs.write(Addr(target), v)?;
                        return Ok(Flow::Continue);
                    }
                    if st.gs.has_watermark() {
                        // A lazy scan is in progress and the write may land above its
                        // watermark, deleting a pointer the scan has not seen: shade it (see
                        // `stacks::watermark`). Go 1.8's bulk barrier skips stack destinations.
                        let old = st.gs.read(Addr(target))?;
                        self.shade(old, &mut p.gcw, "a stack slot a bulk write overwrites")?;
                    }
                    if self.config.inject.unwind_skip > 0.0
                        && self.bulk_write_skipping_barriers(st, Addr(target), v)?
                    {
                        return Ok(Flow::Continue);
                    }
                    // `heapBitsBulkBarrier` passes the barriers below the target on g0
                    // (`systemstack(gcUnwindBarriers)`); the write itself is the goroutine's.
                    let frames = [RuntimeFn::BulkBarrierFunc1, RuntimeFn::GcUnwindBarriers];
                    self.enter_g0(p, Curg::of(index, st), G0Entry::Systemstack, &frames);
                    let mut sig = BarrierSignals::on(self, p, index, &st.true_frames);
                    let passed = st.gs.runtime_bulk_write_with_signals(
                        prog,
                        Addr(target),
                        &[v],
                        &mut sig,
                    )?;
                    self.systemstack_return(p, Curg::of(index, st));
                    self.note_bulk_write(st, Addr(target))?;
                    if passed > 0 {
                        self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
                    }
                }
            }
            Op::Unwind { frames } => {
                let n = usize::from(frames).min(st.depth.saturating_sub(1));
                if n > 0 {
                    // A recovered panic: `mcall(recovery)` passes the barriers on g0, then
                    // `gogo`es to the outer frame.
                    let frames = [RuntimeFn::Recovery, RuntimeFn::GcUnwindBarriers];
                    self.enter_g0(p, Curg::of(index, st), G0Entry::Mcall, &frames);
                    let mut sig = BarrierSignals::on(self, p, index, &st.true_frames);
                    let passed = st.gs.unwind_frames_with_signals(prog, n, &mut sig)?;
                    self.after_watermark_pass(p, st)?;
                    // `--inject unwind-skip`: the barriers it passed stay hidden from the
                    // collector's view of `stkbar_pos`.
                    let f = self.config.inject.unwind_skip;
                    if f > 0.0 && self.hide_passed_barriers(st, passed, f, UNWIND_SKIP_STREAM) {
                        self.fault_log.note_unwind_skipped();
                    }
                    st.depth -= n;
                    let keep = st.true_frames.len().saturating_sub(n);
                    st.true_frames.truncate(keep);
                    self.gogo_switch(p, Curg::of(index, st));
                    self.note_return(st);
                    if passed > 0 {
                        self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
                    }
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

    /// After a return or unwind through a lazy scan's watermark: shades the pointers of the
    /// frame the goroutine scanned itself, before it runs that frame, and with the checker on
    /// reports a frame that had changed above the watermark.
    #[inline]
    fn after_watermark_pass(&self, p: &mut P, st: &mut GState) -> Result<(), RuntimeError> {
        if !st.gs.has_watermark_values() {
            return Ok(());
        }
        self.shade_watermark_values(p, st)
    }

    #[cold]
    #[inline(never)]
    fn shade_watermark_values(&self, p: &mut P, st: &mut GState) -> Result<(), RuntimeError> {
        for v in st.gs.take_watermark_values() {
            self.shade(v, &mut p.gcw, "a frame scanned at a stack watermark")?;
        }
        if self.keeps_stack_records()
            && let Some(report) = st.gs.watermark_violation()
        {
            return Err(RuntimeError::StackShadowViolation {
                cycle: self.gc.cycle(),
                report,
            });
        }
        Ok(())
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
}

/// The running frame's pointer slots as the interpreter sees them: slot `k` of an operation is the
/// frame's `k`-th pointer slot, modulo their number; a frame without pointer slots ignores every
/// local operation.
struct Locals<'s> {
    sp: Addr,
    words: &'s [AtomicU64],
    /// The word each slot operand names (`Runtime::operand_words`).
    operands: &'s [u32; 256],
    /// Whether the frame has pointer slots (else no operand names one).
    has_slots: bool,
}

impl Locals<'_> {
    /// The word index of slot `k`.
    #[inline]
    fn word(&self, k: u8) -> Option<usize> {
        self.has_slots
            .then(|| self.operands[usize::from(k)] as usize)
    }

    /// Whether the frame has pointer slots (then every slot number names one).
    #[inline]
    fn has_slots(&self) -> bool {
        self.has_slots
    }

    /// Slot `k`'s address and value.
    #[inline]
    fn get(&self, k: u8) -> Option<(Addr, u64)> {
        self.word(k)
            .map(|w| (self.sp.add(w * WORD), self.words[w].load(Ordering::Relaxed)))
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
            self.words[w].store(v, Ordering::Relaxed);
        }
    }
}

/// The error of a dereference of `v`, held in stack slot `place` of goroutine `goid`, that
/// found no allocated object (out of line: the interpreter's path is the one that finds one).
#[cold]
#[inline(never)]
fn use_after_free(goid: u64, v: u64, place: Addr) -> RuntimeError {
    RuntimeError::BadPointer {
        value: v,
        place: stack_place(goid, place),
        why: "the mutator dereferenced a freed object (use after free: the collector freed a reachable object)",
        traceback: String::new(),
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
#[derive(Clone, Copy)]
enum Leave {
    /// `runtime.Gosched`.
    Yield,
    /// Preempted at a function prologue.
    Preempt,
    /// Blocked until another goroutine, the poller or the engine wakes it.
    Block,
    /// Finished.
    Exit,
}

impl Leave {
    /// How the M gets to g0 and what it runs there before `schedule`: `mcall(gosched_m)`,
    /// `morestack;newstack;gopreempt_m`, `mcall(park_m)`, `mcall(goexit0)` and its `gfput`.
    fn g0_path(self) -> (G0Entry, &'static [RuntimeFn]) {
        match self {
            Leave::Yield => (G0Entry::Mcall, &[RuntimeFn::GoschedM]),
            Leave::Preempt => (
                G0Entry::Morestack,
                &[RuntimeFn::Newstack, RuntimeFn::GopreemptM],
            ),
            Leave::Block => (G0Entry::Mcall, &[RuntimeFn::ParkM]),
            Leave::Exit => (G0Entry::Mcall, &[RuntimeFn::Goexit0, RuntimeFn::Gfput]),
        }
    }

    /// How the trace says the goroutine left (`trace::LEFT_*`).
    fn trace_reason(self) -> u64 {
        match self {
            Leave::Yield => crate::trace::LEFT_YIELD,
            Leave::Preempt => crate::trace::LEFT_PREEMPT,
            Leave::Block => crate::trace::LEFT_BLOCK,
            Leave::Exit => crate::trace::LEFT_EXIT,
        }
    }
}
