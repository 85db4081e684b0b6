//! Fixtures shared by the unit tests: a small program with known frames and goroutines built by
//! calling through it.

use crate::barrier::StackBarrierMode;
use crate::call::Call;
use crate::code::{FuncId, Program};
use crate::scan::{ScanKind, scanstack};
use crate::stack::{GStack, StackPool};

/// `main.leaf` 32 B (pointer slots 0, 2), `main.mid` 64 B (pointer slot 1), `main.big` 1 KiB
/// (pointer slots 0..4), `main.tiny` 16 B (no pointers).
pub(crate) fn program() -> Program {
    Program::builder()
        .func_with_pointers("main.leaf", 32, &[0, 2])
        .func_with_pointers("main.mid", 64, &[1])
        .func_with_pointers("main.big", 1024, &[0, 1, 2, 3])
        .func_with_pointers("main.tiny", 16, &[])
        .build()
        .expect("valid program")
}

pub(crate) fn f(prog: &Program, name: &str) -> FuncId {
    prog.lookup(name).expect("known function")
}

/// A goroutine that has called `chain` in order (outermost first), growing its stack as needed.
pub(crate) fn goroutine(prog: &Program, pool: &mut StackPool, chain: &[FuncId]) -> GStack {
    let mut gs = GStack::new(1, pool.stackalloc(2048).expect("stack"), prog);
    for (i, &callee) in chain.iter().enumerate() {
        call(prog, pool, &mut gs, callee, i as u32);
    }
    gs
}

/// Calls `callee` as the interpreter does: while the prologue check fails, one trip through
/// `newstack` (one doubling) and the call again. Returns the number of trips.
pub(crate) fn call(
    prog: &Program,
    pool: &mut StackPool,
    gs: &mut GStack,
    callee: FuncId,
    site: u32,
) -> usize {
    let mut trips = 0;
    while let Call::MoreStack { .. } = gs.call(prog, callee, site).expect("call") {
        gs.newstack(pool, prog).expect("grow");
        trips += 1;
    }
    trips
}

/// A pool for `mode` with Go's limits.
pub(crate) fn pool(mode: StackBarrierMode) -> StackPool {
    StackPool::new(mode)
}

/// The live words `[sp, hi)` of a goroutine.
pub(crate) fn live_words(gs: &GStack) -> Vec<u64> {
    gs.stack()
        .copy_words(gs.sp(), gs.stack().hi())
        .expect("live stack")
}

/// `main.mid` → `main.leaf` → `main.tiny` (outermost first), on a pool for `mode`.
pub(crate) fn three_frames(prog: &Program, mode: StackBarrierMode) -> (StackPool, GStack) {
    let mut pool = pool(mode);
    let chain = [
        f(prog, "main.mid"),
        f(prog, "main.leaf"),
        f(prog, "main.tiny"),
    ];
    let gs = goroutine(prog, &mut pool, &chain);
    (pool, gs)
}

/// A concurrent scan that visits nothing; returns the number of barriers installed.
pub(crate) fn mark(prog: &Program, gs: &mut GStack, mode: StackBarrierMode) -> usize {
    scanstack(prog, gs, ScanKind::Mark(mode), |_, _| {})
        .expect("scan")
        .barriers_installed
}

/// Frames whose return-PC slot holds a barrier, as the unwinder reports them.
pub(crate) fn barriered_frames(prog: &Program, gs: &GStack) -> usize {
    gs.frames(prog)
        .filter(|fr| fr.as_ref().expect("frame").stkbar.is_some())
        .count()
}
