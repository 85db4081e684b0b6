//! Lazy stack scanning behind a moving return barrier: the stack watermark (JDK ZGC's concurrent
//! thread-stack processing, JEP 376; the "low-pause stack scans" of Go's proposal 17503). No Go
//! release did this; it is built from Go 1.7's stack barriers.
//!
//! Invariant: while a lazy scan is in progress, every frame below the watermark has been scanned
//! (or was pushed since the scan began), every frame above it has not, and the running frame is
//! always below it. The watermark is stack barrier 0 (`stkbar[0]`, `stkbar_len = 1`,
//! `stkbar_pos = 0`) on the return-PC slot of the highest scanned frame, so the goroutine cannot
//! run a frame above it without returning (or unwinding) through it first.
//!
//! Algorithm. To scan a goroutine, its owner stops it as for an eager scan, scans the frames within
//! a first budget (the running frame at least), installs the watermark over the return-PC slot of
//! the last frame scanned, and lets it run again ([`GStack::scan_lazy`]). From then on two parties
//! scan the frames above the watermark upward, each under the goroutine's stack-barrier lock:
//! * the marker ([`advance_watermark`]), concurrently with the running goroutine, through a shared
//!   handle on the stack memory: it scans a step of frames upward from the one just above the
//!   watermark, then moves the watermark onto the last one's return-PC slot and restores the
//!   return PC the watermark covered;
//! * the goroutine itself when it returns through the watermark (the handler in `call`): it scans
//!   the frame it is returning into, moves the watermark one frame up, and continues. An unwind
//!   (a recovered panic) to a frame above the watermark does the same for its target frame; the
//!   frames it pops are never scanned.
//!
//! If the marker moved the watermark past a frame while the goroutine was returning into it, the
//! handler finds the watermark above its SP, and continues at the return PC the marker restored.
//! When the watermark reaches the outermost frame's slot (`hi - 8`, covering `goexit`), every
//! frame has been scanned: the stack is black. That last barrier stays until the goroutine returns
//! through it, exits, or the collector removes it, like a stack barrier on the outermost frame.
//!
//! Soundness (with Go 1.8's hybrid barrier, which shades the old and the new pointer of every heap,
//! global and up-pointer store). A pointer `x` lost to the collector would have to end in scanned
//! memory only — a scanned frame, or the heap behind a black object — after every unscanned copy
//! of it was destroyed. The running frame is scanned, so it only ever copies `x` into scanned
//! frames or new ones (which are below the watermark too); into the heap or an outer frame only
//! through the barrier, which shades `x`. A copy in an unscanned frame is destroyed in one of four
//! ways: overwritten through an up-pointer (the barrier shades the old value), overwritten by the
//! runtime's bulk write (the collector shades what the write overwrites while a watermark stands:
//! the one place a lazy scan needs more than Go 1.8 does), its frame popped by a return (only
//! through the watermark, which scans the frame first), or popped by an unwind, which pops every
//! frame below its target too — the scanned copies with them — and scans the target before it
//! runs. Every copy `x` had at the scan of the first frame is therefore either scanned or shaded.
//! With Dijkstra's insertion barrier the argument fails at its first step: an up-pointer store
//! shades only the new value, so a pointer copied down into a scanned frame and then deleted from
//! the unscanned one lives only in scanned memory until mark termination's re-scan, and what the
//! re-scan must cover would then depend on the lazy scan's progress as well as on the stack
//! barriers; the lazy scan is offered with the hybrid barrier only.
//!
//! Synchronization. The marker touches only the frames above the watermark (reads), the return-PC
//! slots it moves the watermark between and stkbar entry 0 (writes), all under the stack-barrier
//! lock; the goroutine never writes those words except under the same lock, and reads of other
//! words race only with its own barriered stores, which shade both values. A return reads its
//! return-PC slot without the lock, so the marker moves the watermark in the one safe order:
//! barrier PC into the new slot, the stkbar entry, then the old slot's PC back (a release store,
//! paired with the return's acquire load) — restoring first would let a goroutine return through
//! the restored frame and on into the next, unscanned, before the new slot was guarded (the
//! threaded soundness campaign found exactly that). Every owner-side walk
//! that may cross the watermark (copystack, unwinds, bulk writes, the scans) holds the lock, and a
//! profiler only tries it. The stack words are relaxed atomics (see `stack`), so the concurrent
//! reads are defined behaviour.
//!
//! The checker (`stackshadow` for lazy scans): with it on, the initial stop also records the
//! pointer slots of every frame above the watermark, keyed by their distance from `hi` (which a
//! stack move preserves), a pointer into the stack itself recorded the same way (a stack move
//! adjusts it); barriered stores into those frames update the record, and whoever scans
//! a frame lazily verifies every slot against it. A frame that changed unseen is a violation.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use smallvec::SmallVec;

use crate::addr::{Addr, Pc, WORD};
use crate::code::Program;
use crate::error::StackError;
use crate::scan::{ScanStats, visit_frame};
use crate::signal::{MidOp, Signals};
use crate::stack::{GStack, Stack, StackBarrierGuard, StackBarrierLock, Stkbar};

/// What the stack-barrier lock guards for lazy scans: the marker's view of the scan in progress,
/// and the first difference the checker found (kept after the scan ends, for the report).
#[derive(Debug, Default)]
pub(crate) struct LazyState {
    scan: Option<LazyScan>,
    pub(crate) violation: Option<String>,
}

/// The marker's view of a lazy scan in progress.
#[derive(Debug)]
struct LazyScan {
    /// The goroutine's current stack memory (a stack move replaces it).
    stack: Stack,
    /// The goroutine, for reports.
    goid: u64,
    /// The checker's record of the frames above the watermark, if on: pointer-slot values keyed
    /// by `hi - addr`.
    shadow: Option<BTreeMap<usize, Recorded>>,
}

/// A pointer slot's value as the checker records it: a pointer into the goroutine's own stack as
/// its distance below `hi`, which a stack move keeps (it adjusts the pointer by the move), any
/// other word as it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recorded {
    Word(u64),
    StackDepth(usize),
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recorded::Word(v) => write!(f, "{v:#x}"),
            Recorded::StackDepth(d) => write!(f, "a pointer to hi-{d:#x} of its own stack"),
        }
    }
}

impl Recorded {
    fn of(stack: &Stack, v: u64) -> Recorded {
        if (stack.lo().0..stack.hi().0).contains(&v) {
            Recorded::StackDepth(stack.hi().offset_from(Addr(v)))
        } else {
            Recorded::Word(v)
        }
    }
}

/// What one call of [`advance_watermark`] did.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Advance {
    /// Frames the marker scanned.
    pub frames: usize,
    /// Bytes of those frames.
    pub bytes: usize,
    /// Whether the stack is now black (or gone): nothing is left for the marker.
    pub done: bool,
    /// The checker's report, if a frame scanned here (or earlier on this stack) had changed
    /// above the watermark.
    pub violation: Option<String>,
}

/// What one [`scan_and_move`] covered.
#[derive(Clone, Copy, Default)]
struct Scanned {
    frames: usize,
    bytes: usize,
    /// The outermost frame was among them: the stack is black.
    black: bool,
}

/// Scans up to `max_frames` frames above the watermark of `stack`, from the one just above it
/// upward, then moves the watermark once, onto the return-PC slot of the last frame scanned. The
/// caller holds the stack-barrier lock, and `stkbar[0]` is the watermark.
fn scan_and_move(
    prog: &Program,
    stack: &mut Stack,
    mut shadow: Option<&mut BTreeMap<usize, Recorded>>,
    violation: &mut Option<String>,
    goid: u64,
    max_frames: usize,
    visit: &mut impl FnMut(Addr, u64),
) -> Result<Scanned, StackError> {
    let bar = stack.stkbar(0);
    let lost = |stack: &Stack, what: String| StackError::StackBarrierLost {
        stack: crate::error::StackId {
            goid,
            lo: stack.lo(),
            hi: stack.hi(),
        },
        detail: what,
        stkbars: format!("[watermark *{}={}]", bar.saved_lr_ptr, bar.saved_lr_val),
    };
    let hi = stack.hi();
    let mut done = Scanned::default();
    let (mut sp, mut pc) = (bar.saved_lr_ptr.add(WORD), bar.saved_lr_val);
    let next_slot = loop {
        let Some((func, size)) = prog.findframe(pc).filter(|&(_, size)| size > 0) else {
            let why = format!("the return PC {pc} above the watermark is in no user function");
            return Err(lost(stack, why));
        };
        let fp = sp.add(size);
        if fp > hi {
            let why = format!("the frame above the watermark ends past the stack at {fp}");
            return Err(lost(stack, why));
        }
        visit_frame(prog, stack, func, sp, |slot, v| {
            if let Some(record) = shadow.as_deref_mut() {
                let key = hi.offset_from(slot);
                match record.remove(&key) {
                    Some(then) if then != Recorded::of(stack, v) && violation.is_none() => {
                        *violation = Some(format!(
                            "goroutine {goid}: frame {} at sp={sp}, slot {slot} (hi-{key:#x}) \
                             above the watermark held {then} at the lazy scan's stop and {v:#x} \
                             when scanned, with no barriered store in between",
                            prog.func(func).name
                        ));
                    }
                    _ => {}
                }
            }
            visit(slot, v);
        });
        done.frames += 1;
        done.bytes += size;
        let slot = fp.sub(WORD);
        let Some(next_pc) = stack.read(slot) else {
            return Err(lost(stack, format!("no return-PC slot at {slot}")));
        };
        (sp, pc) = (fp, Pc(next_pc));
        done.black = pc == prog.goexit_return_pc();
        if done.black || done.frames >= max_frames.max(1) {
            break slot;
        }
    };
    // The move, in the one order a running goroutine cannot slip through: guard the new slot,
    // record it, and only then give the old slot its return PC back (a release store, which the
    // return's acquire load pairs with). A goroutine that returns through the old slot before
    // that waits for the lock in the handler; one that returns through it after finds the new
    // slot guarded. The frames in between were scanned before either store.
    stack.write(next_slot, prog.stack_barrier_pc().0);
    stack.set_stkbar(
        0,
        Stkbar {
            saved_lr_ptr: next_slot,
            saved_lr_val: pc,
        },
    );
    stack.write_release(bar.saved_lr_ptr, bar.saved_lr_val.0);
    Ok(done)
}

/// The marker's step: scans up to `max_frames` frames above the watermark of the goroutine whose
/// stack-barrier lock is `lock`, concurrently with the goroutine, calling `visit` for every
/// pointer slot. Returns `done` once the stack is black or the goroutine has gone.
pub fn advance_watermark(
    lock: &StackBarrierLock,
    prog: &Program,
    max_frames: usize,
    mut visit: impl FnMut(Addr, u64),
) -> Result<Advance, StackError> {
    lock.lock();
    let mut state = lock.lazy.lock().unwrap_or_else(PoisonError::into_inner);
    let LazyState { scan, violation } = &mut *state;
    let mut adv = Advance::default();
    let r = (|| {
        let Some(ls) = scan.as_mut() else {
            adv.done = true;
            return Ok(());
        };
        let done = scan_and_move(
            prog,
            &mut ls.stack,
            ls.shadow.as_mut(),
            violation,
            ls.goid,
            max_frames,
            &mut visit,
        )?;
        (adv.frames, adv.bytes) = (done.frames, done.bytes);
        if done.black {
            adv.done = true;
            *scan = None;
        }
        Ok(())
    })();
    adv.violation.clone_from(violation);
    drop(state);
    lock.unlock();
    r.map(|()| adv)
}

impl GStack {
    /// Whether `stkbar[0]` is a lazy scan's watermark (in progress, or at the top waiting to be
    /// hit or removed).
    #[inline]
    pub fn has_watermark(&self) -> bool {
        self.watermark
    }

    /// For a walk over the frames by the goroutine itself (an unwinder pass that may cross the
    /// watermark): the stack-barrier lock while a lazy scan's marker may move the watermark,
    /// nothing otherwise. Hold the guard for the walk.
    #[inline]
    pub fn lock_for_walk(&self) -> Option<StackBarrierGuard<'_>> {
        self.watermark.then(|| self.stack_lock.lock_guard())
    }

    /// The concurrent scan's stop, lazily (see the module comment): removes stale barriers, scans
    /// the innermost `first_frames` frames (at least one), and if frames remain above them puts the
    /// watermark on the return-PC slot of the last one scanned. With `shadow`, also records the
    /// pointer slots of the frames left for later. The stats count the frames scanned now and, in
    /// `barriers_installed`, the watermark.
    pub fn scan_lazy(
        &mut self,
        prog: &Program,
        first_frames: usize,
        shadow: bool,
        sig: &mut impl Signals,
        mut visit: impl FnMut(Addr, u64),
    ) -> Result<ScanStats, StackError> {
        self.with_stack_lock(|gs| {
            let stale = gs.remove_stack_barriers_locked(prog, sig)?;
            let mut stats = ScanStats {
                stale_barriers_removed: stale,
                ..ScanStats::default()
            };
            let mut watermark = None;
            let mut record = BTreeMap::new();
            let hi = gs.stack.hi();
            for frame in gs.frames(prog) {
                let frame = frame?;
                if frame.index < first_frames.max(1) {
                    stats.ptr_slots +=
                        visit_frame(prog, &gs.stack, frame.func, frame.sp, &mut visit);
                    stats.frames += 1;
                    stats.bytes = frame.fp.offset_from(gs.sched.sp);
                    if frame.index + 1 == first_frames.max(1) {
                        watermark = (frame.lr != prog.goexit_return_pc()).then(|| frame.lr_slot());
                    }
                } else if shadow {
                    visit_frame(prog, &gs.stack, frame.func, frame.sp, |slot, v| {
                        record.insert(hi.offset_from(slot), Recorded::of(&gs.stack, v));
                    });
                } else {
                    break;
                }
            }
            if let Some(slot) = watermark {
                gs.install_stack_barrier(prog, slot, sig)?;
                gs.watermark = true;
                stats.barriers_installed = 1;
                gs.stack_lock
                    .lazy
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .scan = Some(LazyScan {
                    stack: gs.stack.share(),
                    goid: gs.goid(),
                    shadow: shadow.then_some(record),
                });
            }
            Ok(stats)
        })
    }

    /// The first difference the lazy-scan checker found on this stack, if any.
    pub fn watermark_violation(&self) -> Option<String> {
        let state = self
            .stack_lock
            .lazy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.violation.clone()
    }

    /// Tells the lazy-scan checker of a barriered store of `value` into the live stack at `addr`
    /// (an up-pointer store or a bulk write): if the slot lies above the watermark, its record
    /// follows the store. The caller holds the stack-barrier lock, and has held it since before
    /// the store: a marker must never scan the slot between the store and the record's update, or
    /// it would see a change the record does not know of.
    pub fn watermark_note_store_locked(&mut self, addr: Addr, value: u64) {
        if !self.watermark {
            return;
        }
        let key = self.stack.hi().offset_from(addr);
        let mut state = self
            .stack_lock
            .lazy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let record = state.scan.as_mut().and_then(|ls| ls.shadow.as_mut());
        if let Some(v) = record.and_then(|r| r.get_mut(&key)) {
            *v = Recorded::of(&self.stack, value);
        }
    }

    /// The goroutine is about to run the frame at `sp` (returned or unwound into), which lies at or
    /// above the watermark: scan it and move the watermark onto its return-PC slot — unless the
    /// marker has done so already. The caller holds the stack-barrier lock. The frames an unwind
    /// popped on the way were never scanned: the checker drops their records (they are gone, not
    /// changed). Returns the return PC to continue at; the scanned frame's pointer values wait in
    /// [`GStack::take_watermark_values`] for the collector to shade.
    pub(crate) fn watermark_pass_locked(
        &mut self,
        prog: &Program,
        sp: Addr,
    ) -> Result<Pc, StackError> {
        let bar = self.stack.stkbar(0);
        let below = bar.saved_lr_ptr.add(WORD);
        if below > sp {
            // The marker moved the watermark past this frame and restored its return PC.
            return Ok(Pc(self.stack.read(sp.sub(WORD)).unwrap_or(0)));
        }
        let lock = Arc::clone(&self.stack_lock);
        let mut state = lock.lazy.lock().unwrap_or_else(PoisonError::into_inner);
        let LazyState { scan, violation } = &mut *state;
        let hi = self.stack.hi();
        if below < sp
            && let Some(record) = scan.as_mut().and_then(|ls| ls.shadow.as_mut())
        {
            let popped = hi.offset_from(sp) + 1..=hi.offset_from(below);
            let keys: Vec<usize> = record.range(popped).map(|(&k, _)| k).collect();
            for k in keys {
                record.remove(&k);
            }
        }
        if below < sp {
            // An unwind past the watermark: it moves to the slot just below the target frame
            // first, as if the popped frames had been scanned.
            let target_slot = sp.sub(WORD);
            let target_pc = self.stack.read(target_slot).unwrap_or(0);
            self.stack.write(bar.saved_lr_ptr, bar.saved_lr_val.0);
            self.stack.set_stkbar(
                0,
                Stkbar {
                    saved_lr_ptr: target_slot,
                    saved_lr_val: Pc(target_pc),
                },
            );
        }
        let pc = self.stack.stkbar(0).saved_lr_val;
        if pc == prog.goexit_return_pc() {
            // The watermark is at the top: the stack is black, and this return is the
            // goroutine's last, an ordinary hit.
            return Ok(pc);
        }
        let mut values: SmallVec<[u64; 8]> = SmallVec::new();
        let goid = self.goid();
        let shadow = scan.as_mut().and_then(|ls| ls.shadow.as_mut());
        let done = scan_and_move(
            prog,
            &mut self.stack,
            shadow,
            violation,
            goid,
            1,
            &mut |_, v| values.push(v),
        )?;
        if done.black {
            *scan = None;
        }
        drop(state);
        self.watermark_values.extend(values);
        self.counters.watermark_hits += 1;
        self.counters.watermark_frames += 1;
        self.counters.watermark_bytes += done.bytes as u64;
        Ok(pc)
    }

    /// A return that landed on the watermark's PC with the SP at `fp`: takes the lock, signals
    /// [`MidOp::WatermarkHit`] while holding it, scans the frame returned into if the marker has
    /// not, and sets the goroutine's PC and SP beyond the trampoline before letting go, so no
    /// traceback ever starts in the trampoline with the watermark already moved.
    pub(crate) fn watermark_hit(
        &mut self,
        prog: &Program,
        fp: Addr,
        sig: &mut impl Signals,
    ) -> Result<Pc, StackError> {
        self.with_stack_lock(|gs| {
            sig.boundary(gs, MidOp::WatermarkHit);
            let pc = gs.watermark_pass_locked(prog, fp)?;
            if pc == prog.goexit_return_pc() {
                gs.stkbar_pos += 1;
                gs.counters.hit += 1;
                gs.clear_watermark();
            }
            gs.sched.pc = pc;
            gs.sched.sp = fp;
            Ok(pc)
        })
    }

    /// Whether frames the goroutine scanned itself at the watermark wait to be shaded.
    #[inline]
    pub fn has_watermark_values(&self) -> bool {
        !self.watermark_values.is_empty()
    }

    /// The pointer values of the frames the goroutine scanned itself at the watermark since the
    /// last call, for the collector to shade before the goroutine goes on.
    pub fn take_watermark_values(&mut self) -> SmallVec<[u64; 8]> {
        std::mem::take(&mut self.watermark_values)
    }

    /// Forgets the watermark: `stkbar[0]` was retired (hit, unwound or removed) or the stack is
    /// going away. The marker's next step finds nothing to do.
    pub(crate) fn clear_watermark(&mut self) {
        if self.watermark {
            self.watermark = false;
            let mut state = self
                .stack_lock
                .lazy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.scan = None;
        }
    }

    /// After a stack move (the caller holds the lock): the marker's handle follows the memory.
    pub(crate) fn watermark_moved(&mut self) {
        if self.watermark {
            let mut state = self
                .stack_lock
                .lazy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(ls) = state.scan.as_mut() {
                ls.stack = self.stack.share();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::barrier::StackBarrierMode;
    use crate::call::Ret;
    use crate::scan::{ScanKind, scanstack};
    use crate::signal::NoSignals;
    use crate::testutil::{call, f, goroutine, pool, program};
    use crate::unwind::gentraceback;

    /// Every pointer slot of `gs`, scanned eagerly: the set a lazy scan must end up covering.
    fn all_slots(prog: &Program, gs: &mut GStack) -> BTreeSet<(Addr, u64)> {
        let mut seen = BTreeSet::new();
        scanstack(prog, gs, ScanKind::Whole, |a, v| {
            seen.insert((a, v));
        })
        .unwrap();
        seen
    }

    /// A goroutine `mid → leaf × (n - 1)` whose every word but the return PCs holds a distinct
    /// heap-looking value, so every pointer slot is recognisable.
    fn filled(prog: &Program, n: usize) -> (crate::stack::StackPool, GStack) {
        let mut pool = pool(StackBarrierMode::Off);
        let (mid, leaf) = (f(prog, "main.mid"), f(prog, "main.leaf"));
        let mut chain = vec![mid];
        chain.extend(std::iter::repeat_n(leaf, n - 1));
        let mut gs = goroutine(prog, &mut pool, &chain);
        let frames: Vec<_> = gs.frames(prog).map(Result::unwrap).collect();
        for fr in &frames {
            for a in (fr.sp.0..fr.lr_slot().0).step_by(8) {
                gs.write(Addr(a), 0xc0_0000_0000 + a).unwrap();
            }
        }
        (pool, gs)
    }

    fn watermark_slot(gs: &GStack) -> Addr {
        assert!(gs.has_watermark());
        gs.stack.stkbar(0).saved_lr_ptr
    }

    #[test]
    fn the_stop_scans_the_first_frames_and_puts_the_watermark_above_them() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 10);
        let want = all_slots(&prog, &mut gs);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        let mut seen = BTreeSet::new();
        let stats = gs
            .scan_lazy(&prog, 3, false, &mut NoSignals, |a, v| {
                seen.insert((a, v));
            })
            .unwrap();
        assert_eq!((stats.frames, stats.bytes), (3, 3 * 32));
        assert_eq!(stats.barriers_installed, 1);
        assert_eq!(watermark_slot(&gs), frames[2].lr_slot());
        assert_eq!((gs.stkbar_len(), gs.stkbar_pos()), (1, 0));
        // The unwinder sees through it: the same frames with their real return PCs.
        let after: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        assert_eq!(
            after.iter().map(|f| (f.sp, f.lr)).collect::<Vec<_>>(),
            frames.iter().map(|f| (f.sp, f.lr)).collect::<Vec<_>>()
        );
        assert_eq!(after[2].stkbar, Some(0));
        assert!(seen.iter().all(|s| want.contains(s)) && seen.len() == 6);

        // A stack no deeper than the budget is scanned whole, with no watermark.
        let (_pool, mut shallow) = filled(&prog, 2);
        let stats = shallow
            .scan_lazy(&prog, 3, false, &mut NoSignals, |_, _| {})
            .unwrap();
        assert_eq!((stats.frames, stats.barriers_installed), (2, 0));
        assert!(!shallow.has_watermark());
    }

    #[test]
    fn the_marker_moves_the_watermark_up_to_the_top_and_the_scan_covers_every_slot() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 40);
        let want = all_slots(&prog, &mut gs);
        let mut seen = BTreeSet::new();
        gs.scan_lazy(&prog, 1, false, &mut NoSignals, |a, v| {
            seen.insert((a, v));
        })
        .unwrap();
        let lock = gs.stack_barrier_lock();
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        let adv = advance_watermark(&lock, &prog, 5, |a, v| {
            seen.insert((a, v));
        })
        .unwrap();
        assert_eq!((adv.frames, adv.bytes, adv.done), (5, 5 * 32, false));
        assert_eq!(watermark_slot(&gs), frames[5].lr_slot());
        assert_eq!(gs.traceback(&prog).unwrap().len(), 40, "still consistent");
        let mut steps = 0;
        while !advance_watermark(&lock, &prog, 5, |a, v| {
            seen.insert((a, v));
        })
        .unwrap()
        .done
        {
            steps += 1;
        }
        assert_eq!(
            steps, 6,
            "34 frames left: six steps of five, then the last four"
        );
        assert_eq!(
            seen, want,
            "the stop and the marker together scanned every slot once"
        );
        assert_eq!(
            watermark_slot(&gs),
            gs.stack().hi().sub(WORD),
            "at the top: black"
        );
        assert!(
            advance_watermark(&lock, &prog, 5, |_, _| panic!())
                .unwrap()
                .done
        );
        // The goroutine returns all the way: no frame left to scan, the last return is a hit.
        for _ in 0..39 {
            assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        }
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Exited);
        let c = gs.counters();
        assert_eq!((c.installed, c.hit, c.watermark_hits), (1, 1, 0));
        assert!(!gs.has_watermark());
    }

    #[test]
    fn a_return_through_the_watermark_scans_exactly_the_frame_returned_into() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 6);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.scan_lazy(&prog, 2, false, &mut NoSignals, |_, _| {})
            .unwrap();
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
        assert!(gs.take_watermark_values().is_empty());
        // Frame 1 returns through the watermark into frame 2: frame 2 alone is scanned.
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
        let f2 = frames[2];
        let want: Vec<u64> = [f2.sp, f2.sp.add(16)]
            .map(|a| 0xc0_0000_0000 + a.0)
            .to_vec();
        assert_eq!(
            gs.take_watermark_values().to_vec(),
            want,
            "leaf's slots 0 and 2"
        );
        assert_eq!((gs.sp(), gs.pc()), (f2.sp, f2.pc));
        assert_eq!(watermark_slot(&gs), f2.lr_slot(), "one frame up");
        let c = gs.counters();
        assert_eq!(
            (c.watermark_hits, c.watermark_frames, c.watermark_bytes),
            (1, 1, 32)
        );
        // Every further return is through the watermark; the one into the outermost frame (mid)
        // scans it, and the watermark is then at the top.
        for _ in 0..2 {
            assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
            assert_eq!(gs.take_watermark_values().len(), 2);
        }
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: true });
        let mid = frames[5];
        assert_eq!(
            gs.take_watermark_values().to_vec(),
            vec![0xc0_0000_0000 + mid.sp.0 + 8]
        );
        assert_eq!(watermark_slot(&gs), gs.stack().hi().sub(WORD));
        let lock = gs.stack_barrier_lock();
        assert!(
            advance_watermark(&lock, &prog, 1, |_, _| panic!("black"))
                .unwrap()
                .done
        );
        assert_eq!(gs.ret(&prog).unwrap(), Ret::Exited);
        let c = gs.counters();
        assert_eq!((c.watermark_frames, c.installed, c.hit), (4, 1, 1));
    }

    #[test]
    fn a_return_racing_the_marker_continues_where_the_marker_restored_the_pc() {
        // The marker takes the lock between the pop and the handler: it scans the very frame the
        // goroutine is returning into and moves the watermark past it.
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 6);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.scan_lazy(&prog, 1, false, &mut NoSignals, |_, _| {})
            .unwrap();
        let lock = gs.stack_barrier_lock();
        let mut marker_frames = 0;
        let mut sig = |_: &GStack, at: MidOp| {
            if at == MidOp::BarrierHit {
                marker_frames += advance_watermark(&lock, &prog, 2, |_, _| {})
                    .unwrap()
                    .frames;
            }
        };
        assert_eq!(
            gs.ret_with_signals(&prog, &mut sig).unwrap(),
            Ret::Returned { hit_barrier: true }
        );
        assert_eq!(marker_frames, 2);
        assert_eq!((gs.sp(), gs.pc()), (frames[1].sp, frames[1].pc));
        assert!(
            gs.take_watermark_values().is_empty(),
            "the marker scanned it"
        );
        assert_eq!(gs.counters().watermark_hits, 0);
        assert_eq!(watermark_slot(&gs), frames[2].lr_slot());
        assert_eq!(gs.traceback(&prog).unwrap().len(), 5);
    }

    #[test]
    fn copystack_migrates_a_live_watermark() {
        let prog = program();
        let (mut pool, mut gs) = filled(&prog, 20);
        // A pointer slot above the watermark that points into the stack (`&local` of an outer
        // frame): the move adjusts it, and the checker, which records it by depth, agrees.
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.write(frames[10].sp, frames[12].sp.0).unwrap();
        gs.scan_lazy(&prog, 1, true, &mut NoSignals, |_, _| {})
            .unwrap();
        let lock = gs.stack_barrier_lock();
        advance_watermark(&lock, &prog, 3, |_, _| {}).unwrap();
        let depth = gs.stack().hi().offset_from(watermark_slot(&gs));
        let old_lo = gs.stack().lo();
        // Grow until the stack moves (leaf frames do not fit a 2 KiB stack for long).
        let leaf = f(&prog, "main.leaf");
        while gs.stack().lo() == old_lo {
            call(&prog, &mut pool, &mut gs, leaf, 0);
        }
        assert_eq!(gs.stack().hi().offset_from(watermark_slot(&gs)), depth);
        assert!(gs.traceback(&prog).is_ok());
        // The marker follows the memory; the checker's record too (keyed by distance from hi).
        let mut n = 0;
        while !advance_watermark(&lock, &prog, 4, |_, _| {}).unwrap().done {
            n += 1;
        }
        assert!(n > 0);
        assert_eq!(gs.watermark_violation(), None);
        assert_eq!(watermark_slot(&gs), gs.stack().hi().sub(WORD));
    }

    #[test]
    fn an_unwind_past_the_watermark_scans_its_target_and_drops_the_popped_frames() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 12);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.scan_lazy(&prog, 2, true, &mut NoSignals, |_, _| {})
            .unwrap();
        // Recover 6 frames up: frames 0..6 pop (2..6 unscanned), frame 6 runs next.
        assert_eq!(gs.unwind_frames(&prog, 6).unwrap(), 0);
        let t = frames[6];
        assert_eq!((gs.sp(), gs.pc()), (t.sp, frames[5].lr));
        assert_eq!(
            gs.take_watermark_values().len(),
            2,
            "the target's two slots"
        );
        assert_eq!(watermark_slot(&gs), t.lr_slot());
        assert_eq!(gs.counters().watermark_hits, 1);
        // An unwind below the watermark leaves it alone.
        let leaf = f(&prog, "main.leaf");
        let mut pool2 = pool(StackBarrierMode::Off);
        call(&prog, &mut pool2, &mut gs, leaf, 0);
        call(&prog, &mut pool2, &mut gs, leaf, 0);
        gs.unwind_frames(&prog, 1).unwrap();
        assert_eq!(watermark_slot(&gs), t.lr_slot());
        let lock = gs.stack_barrier_lock();
        while !advance_watermark(&lock, &prog, 8, |_, _| {}).unwrap().done {}
        assert_eq!(
            gs.watermark_violation(),
            None,
            "popped frames are gone, not changed"
        );
    }

    #[test]
    fn a_bulk_write_leaves_the_watermark_in_place() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 8);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.scan_lazy(&prog, 1, false, &mut NoSignals, |_, _| {})
            .unwrap();
        let dst = frames[5].sp;
        assert_eq!(gs.runtime_bulk_write(&prog, dst, &[7]).unwrap(), 0);
        assert_eq!(gs.read(dst).unwrap(), 7);
        assert_eq!(watermark_slot(&gs), frames[0].lr_slot());
    }

    #[test]
    fn the_checker_catches_an_unbarriered_change_above_the_watermark() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 8);
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        gs.scan_lazy(&prog, 1, true, &mut NoSignals, |_, _| {})
            .unwrap();
        // A barriered store (the record follows it), then one that bypassed the barrier.
        gs.with_stack_lock(|gs| {
            gs.write(frames[3].sp, 0x1111).unwrap();
            gs.watermark_note_store_locked(frames[3].sp, 0x1111);
        });
        gs.write(frames[6].sp.add(16), 0x2222).unwrap();
        let lock = gs.stack_barrier_lock();
        while !advance_watermark(&lock, &prog, 2, |_, _| {}).unwrap().done {}
        let v = gs.watermark_violation().expect("caught");
        assert!(v.contains("0x2222") && v.contains("main.leaf"), "{v}");
        assert!(!v.contains("0x1111"), "{v}");
    }

    #[test]
    fn a_sample_mid_hit_unwinds_through_the_fixup_and_the_handler_holds_the_lock() {
        let prog = program();
        let (_pool, mut gs) = filled(&prog, 6);
        let want: Vec<_> = gs.traceback(&prog).unwrap()[1..].to_vec();
        gs.scan_lazy(&prog, 1, false, &mut NoSignals, |_, _| {})
            .unwrap();
        let lock = gs.stack_barrier_lock();
        let mut seen = Vec::new();
        let mut sig = |gs: &GStack, at: MidOp| {
            let tb: Result<Vec<_>, _> = gentraceback(&prog, gs, gs.pc(), gs.sp())
                .map(|f| f.map(|f| f.func))
                .collect();
            seen.push((at, lock.is_locked(), tb));
        };
        gs.ret_with_signals(&prog, &mut sig).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, MidOp::BarrierHit);
        assert!(!seen[0].1, "popped, in the trampoline, lock not yet taken");
        assert_eq!(
            seen[0].2.as_ref().unwrap(),
            &want,
            "the fix-up finds the caller"
        );
        assert_eq!(seen[1].0, MidOp::WatermarkHit);
        assert!(
            seen[1].1,
            "the handler holds the lock: a profiler records System"
        );
        assert!(!lock.is_locked());
    }
}
