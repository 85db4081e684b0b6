//! Stack scanning (Go's `scanstack`): every pointer slot of every frame, or of the frames below the
//! re-scan bound, handed to the collector through a callback.
//!
//! Invariant: a scan visits exactly the words that the frames' pointer maps name, for exactly the
//! frames `gentraceback` yields (up to the bound), and reports the bytes of stack it covered. The GC is
//! precise: scalar slots are never visited, even when their bits look like pointers.
//!
//! Three kinds of scan, as Go's `scanstack` distinguishes them by GC phase:
//! * [`ScanKind::Mark`] — the concurrent scan. It first removes any stale barriers a previous cycle
//!   left, scans every frame, and installs new barriers where [`StackBarrierMode`] places them
//!   (the first slots at least `first_offset·2^n` above the SP, never the running frame's, the
//!   outermost frame's included; see `barrier`). The frames are walked once; the placement notes
//!   which return-PC slots to take, and the barriers are written after the walk, under the
//!   stack-barrier lock held throughout.
//! * [`ScanKind::Rescan`] — mark termination after a concurrent scan: the frames up to and including
//!   the one holding the lowest un-hit barrier's slot, or all of them if every barrier was hit. It
//!   installs nothing.
//! * [`ScanKind::Whole`] — every frame, barriers untouched: a stop-the-world scan (after the caller
//!   removed stale barriers), the start-of-cycle scan of a snapshot design, or a checkmark pass.
//!
//! The frame walk itself, [`scan_frames`], takes `&GStack` and never writes.

use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use crate::addr::{Addr, WORD};
use crate::barrier::{BarrierPlacement, StackBarrierMode};
use crate::code::{Func, FuncId, Program};
use crate::error::StackError;
use crate::signal::{NoSignals, Signals};
use crate::stack::{GStack, Stack};
use crate::unwind::Frame;

/// What a scan covers and whether it installs barriers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScanKind {
    /// Concurrent mark: remove stale barriers, scan the whole stack, install barriers.
    Mark(StackBarrierMode),
    /// Mark-termination re-scan up to the re-scan bound.
    Rescan,
    /// The whole stack, barriers untouched.
    Whole,
}

/// What one scan covered.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScanStats {
    /// Frames scanned.
    pub frames: usize,
    /// Bytes of stack covered: from the SP to the end of the last frame scanned.
    pub bytes: usize,
    /// Pointer slots visited.
    pub ptr_slots: usize,
    /// Barriers installed by this scan.
    pub barriers_installed: usize,
    /// Stale barriers removed before this scan.
    pub stale_barriers_removed: usize,
}

/// Walks the frames of `gs` from its saved PC and SP, innermost first, calling `on_slot(addr,
/// value)` for every pointer slot and `on_frame` after each frame. With `limit`, stops after the
/// frame whose return-PC slot is at or above `limit`. Never writes to the stack.
pub fn scan_frames(
    prog: &Program,
    gs: &GStack,
    limit: Option<Addr>,
    mut on_frame: impl FnMut(&Frame),
    mut on_slot: impl FnMut(Addr, u64),
) -> Result<ScanStats, StackError> {
    let mut stats = ScanStats::default();
    for frame in gs.frames(prog) {
        let frame = frame?;
        let f = prog.func(frame.func);
        let locals = gs
            .stack()
            .owned_locals(frame.sp, frame.lr_slot())
            .expect("the unwinder checked the frame");
        for_each_ptr_slot(f, |i| {
            on_slot(frame.sp.add(i * WORD), locals[i]);
            stats.ptr_slots += 1;
        });
        stats.frames += 1;
        stats.bytes = frame.fp.offset_from(gs.sp());
        on_frame(&frame);
        if limit.is_some_and(|l| frame.lr_slot() >= l) {
            break;
        }
    }
    Ok(stats)
}

/// Calls `on_slot(addr, value)` for every pointer slot of the frame of `func` at `sp` in `stack`
/// (which the caller has found to lie within it); returns how many there were.
#[inline]
pub(crate) fn visit_frame(
    prog: &Program,
    stack: &Stack,
    func: FuncId,
    sp: Addr,
    mut on_slot: impl FnMut(Addr, u64),
) -> usize {
    let f = prog.func(func);
    let words = stack
        .words(sp, sp.add(f.frame_size))
        .expect("the caller checked the frame");
    let mut n = 0;
    for_each_ptr_slot(f, |i| {
        on_slot(sp.add(i * WORD), words[i].load(Ordering::Relaxed));
        n += 1;
    });
    n
}

/// Calls `each(i)` for every pointer slot `i` (a word index in the frame) of `f`'s pointer map,
/// walking it one 64-bit chunk at a time and finding the set bits with `trailing_zeros`.
#[inline(always)]
fn for_each_ptr_slot(f: &Func, mut each: impl FnMut(usize)) {
    for (chunk_index, &chunk) in f.ptr_map.as_raw_slice().iter().enumerate() {
        let mut bits = chunk;
        while bits != 0 {
            each(chunk_index * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

/// Scans `gs` as `kind` says, calling `visit(addr, value)` for every pointer slot covered.
pub fn scanstack(
    prog: &Program,
    gs: &mut GStack,
    kind: ScanKind,
    visit: impl FnMut(Addr, u64),
) -> Result<ScanStats, StackError> {
    scanstack_with_signals(prog, gs, kind, &mut NoSignals, visit)
}

/// [`scanstack`] by a goroutine on its own M (a self-scan at a safe point), where a signal may
/// land between the stores of each barrier it removes or installs (see `signal`).
pub fn scanstack_with_signals(
    prog: &Program,
    gs: &mut GStack,
    kind: ScanKind,
    sig: &mut impl Signals,
    visit: impl FnMut(Addr, u64),
) -> Result<ScanStats, StackError> {
    match kind {
        ScanKind::Whole => scan_frames(prog, gs, None, |_| {}, visit),
        ScanKind::Rescan => scan_frames(prog, gs, gs.rescan_limit(), |_| {}, visit),
        ScanKind::Mark(mode) => {
            gs.with_stack_lock(|gs| scan_and_install(prog, gs, mode, sig, visit))
        }
    }
}

/// The concurrent scan; the caller holds the stack-barrier lock.
fn scan_and_install(
    prog: &Program,
    gs: &mut GStack,
    mode: StackBarrierMode,
    sig: &mut impl Signals,
    visit: impl FnMut(Addr, u64),
) -> Result<ScanStats, StackError> {
    let stale = gs.remove_stack_barriers_locked(prog, sig)?;

    let mut placement = BarrierPlacement::new(mode, gs.sp(), gs.stack().stkbar_cap());
    let mut slots: SmallVec<[Addr; 24]> = SmallVec::new();
    let mut stats = scan_frames(
        prog,
        gs,
        None,
        |frame| {
            if placement.wants(frame) {
                slots.push(frame.lr_slot());
            }
        },
        visit,
    )?;
    for &slot in &slots {
        gs.install_stack_barrier(prog, slot, sig)?;
    }
    stats.barriers_installed = slots.len();
    stats.stale_barriers_removed = stale;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Ret;
    use crate::testutil::{f, goroutine, pool, program};

    #[test]
    fn a_scan_visits_exactly_the_pointer_slots() {
        let prog = program();
        let mut pool = pool(StackBarrierMode::GO);
        let (mid, leaf, tiny) = (
            f(&prog, "main.mid"),
            f(&prog, "main.leaf"),
            f(&prog, "main.tiny"),
        );
        let mut gs = goroutine(&prog, &mut pool, &[mid, leaf, tiny]);
        // Fill every word of every frame but the return PCs with a recognisable value; scalars too,
        // including one that looks like a heap pointer.
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        for fr in &frames {
            for a in (fr.sp.0..fr.lr_slot().0).step_by(8) {
                gs.write(Addr(a), 0xc0_0000_0000 + a).unwrap();
            }
        }
        let mut seen = Vec::new();
        let stats = scanstack(&prog, &mut gs, ScanKind::Whole, |a, v| seen.push((a, v))).unwrap();
        let (sp_leaf, sp_mid) = (frames[1].sp, frames[2].sp);
        let want: Vec<(Addr, u64)> = [sp_leaf, sp_leaf.add(16), sp_mid.add(8)]
            .into_iter()
            .map(|a| (a, 0xc0_0000_0000 + a.0))
            .collect();
        assert_eq!(
            seen, want,
            "leaf's slots 0 and 2, mid's slot 1; tiny has none"
        );
        assert_eq!(
            stats,
            ScanStats {
                frames: 3,
                bytes: 16 + 32 + 64,
                ptr_slots: 3,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_rescan_stops_at_the_frame_holding_the_lowest_unhit_barrier() {
        // One goroutine scanned at depth 1,000 that then oscillates 3 frames: the re-scan covers
        // exactly the frames up to its first barrier.
        let prog = program();
        let mode = StackBarrierMode::GO;
        let mut pool = pool(mode);
        let leaf = f(&prog, "main.leaf");
        let mut gs = goroutine(&prog, &mut pool, &vec![leaf; 1000]);
        let sp0 = gs.sp();
        let stats = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
        assert_eq!((stats.frames, stats.bytes), (1000, 32_000));
        // 32-byte frames: the first slot at or above sp0+1024 is frame 32's, at sp0+1048.
        let first = gs.rescan_limit().unwrap();
        assert_eq!(first, sp0.add(1048));
        for _ in 0..50 {
            for _ in 0..3 {
                assert_eq!(gs.ret(&prog).unwrap(), Ret::Returned { hit_barrier: false });
            }
            for site in 0..3 {
                crate::testutil::call(&prog, &mut pool, &mut gs, leaf, site);
            }
        }
        let rescan = scanstack(&prog, &mut gs, ScanKind::Rescan, |_, _| {}).unwrap();
        assert_eq!(rescan.frames, 33);
        assert_eq!(
            rescan.bytes,
            33 * 32,
            "from the SP to the end of the frame holding the barrier"
        );
        assert_eq!(rescan.barriers_installed, 0);
        let whole = scanstack(&prog, &mut gs, ScanKind::Whole, |_, _| {}).unwrap();
        assert_eq!(whole.bytes, 32_000);
    }

    #[test]
    fn a_rescan_after_every_barrier_was_hit_covers_the_whole_stack() {
        let prog = program();
        let mode = StackBarrierMode::On { first_offset: 256 };
        let mut pool = pool(mode);
        let leaf = f(&prog, "main.leaf");
        let mut gs = goroutine(&prog, &mut pool, &[leaf; 40]);
        let n = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
            .unwrap()
            .barriers_installed;
        assert_eq!(
            n, 3,
            "slots at sp0+280, sp0+536 and sp0+1048 of a 1280-byte stack"
        );
        for _ in 0..33 {
            gs.ret(&prog).unwrap();
        }
        assert_eq!(gs.counters().hit, 3);
        assert_eq!(gs.rescan_limit(), None);
        let rescan = scanstack(&prog, &mut gs, ScanKind::Rescan, |_, _| {}).unwrap();
        assert_eq!((rescan.frames, rescan.bytes), (7, 224));
    }

    #[test]
    fn a_rescan_reaches_past_frame_zero_when_it_alone_crosses_the_offset() {
        // Frame 0 is big [0, 1024): its slot, 1016 above the SP, is past the 512-byte offset, but
        // the running frame never gets a barrier, so the first one lands on frame 1 (mid
        // [1024, 1088)) and a re-scan covers size(frame 0) + size(F) = 1088 bytes, more than
        // max(2x, first_offset) + size(F) = 576: the bound needs its frame-0 term.
        let prog = program();
        let mode = StackBarrierMode::On { first_offset: 512 };
        let mut pool = pool(mode);
        let (mid, big) = (f(&prog, "main.mid"), f(&prog, "main.big"));
        let mut gs = goroutine(&prog, &mut pool, &[mid, mid, mid, big]);
        let sp0 = gs.sp();
        let stats = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
        assert_eq!(
            stats.barriers_installed, 2,
            "slots 1080 and 1144; 1208 < 2048"
        );
        assert_eq!(gs.rescan_limit(), Some(sp0.add(1080)));
        let rescan = scanstack(&prog, &mut gs, ScanKind::Rescan, |_, _| {}).unwrap();
        assert_eq!((rescan.frames, rescan.bytes), (2, 1024 + 64));
        // After big returns (x = 1016) and a 32-byte frame is called, the re-scan covers that
        // frame and F: 96 bytes, within (sp0 - sp) + max(2x, 512, 1024) + 64 = -992 + 2032 + 64.
        gs.ret(&prog).unwrap();
        crate::testutil::call(&prog, &mut pool, &mut gs, f(&prog, "main.leaf"), 0);
        assert_eq!(gs.sp(), sp0.add(1024 - 32));
        let rescan = scanstack(&prog, &mut gs, ScanKind::Rescan, |_, _| {}).unwrap();
        assert_eq!((rescan.frames, rescan.bytes), (2, 32 + 64));
    }
}
