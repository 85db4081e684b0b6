//! `sync-leak`: the analogue of Go's `BenchmarkSyncLeak` (seed 004). Each goroutine loops: make a
//! buffer, do one atomic operation on a random word of it (a synchronization object the sanitizer
//! keeps metadata for), and keep it in one of `H` slots of its holder, dropping the buffer that
//! was there. The live heap stays flat — at most `H` buffers per goroutine — while the heap
//! addresses that have seen an atomic operation keep growing, so a sanitizer not told of frees
//! accumulates metadata for dead buffers.
//!
//! Scheduling. Like the benchmark's goroutines, each runs its loop without yielding or blocking
//! (the benchmark calls neither `runtime.Gosched` nor anything that blocks): only the scheduler's
//! time slice takes its P away. That takes a function prologue (preemption happens only at a
//! call), and the benchmark's loop calls `rand.Intn`: so does this one, once an iteration, a
//! leaf function with no pointer slots. Its stack is one frame (two inside `rand.Intn`), built by
//! its first operation, so it has no set-up yield.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block in its loop — a channel receive, with probability
//! `1/block_every` per operation of the loop ([`common::Blocker`]), holding whatever its frame
//! holds — and `wakes_per_ms` (default 0) is the rate at which the network poller wakes parked
//! goroutines, which `block_every` needs. `running` and `burst` do not apply (ignored).
//!
//! Invariant: a goroutine's holder is reachable from its own global for its whole life, and every
//! buffer it makes is reachable from a holder slot or a local until the next one replaces it.
//! `--depth` does not apply: the work runs one frame deep, and calls one frame deeper.

use gc::{Behaviour, Ctx, ObjType, Op, Rng, TypeId, WorkloadImage};
use rand::RngExt;
use stacks::Program;

use super::common::{self, Blocker};
use super::{Blocking, Workload, WorkloadParams};

/// Slots in a goroutine's holder (BenchmarkSyncLeak's `H`).
pub const HOLD: usize = 10;
/// Words in a buffer, every one a pointer field an atomic operation may swap (the benchmark's
/// 1000 `uint32`s, shrunk and made pointers so the atomic is a pointer swap the write barrier and
/// wbshadow see).
pub const BUF_WORDS: usize = 64;

/// The holder type.
const HOLDER: TypeId = TypeId(0);
/// The buffer type.
const BUF: TypeId = TypeId(1);

/// The workload.
#[derive(Debug)]
pub struct SyncLeak;

impl Workload for SyncLeak {
    fn name(&self) -> &'static str {
        "sync-leak"
    }
    fn about(&self) -> &'static str {
        "BenchmarkSyncLeak: make a buffer, one atomic op on a random word, keep it in 1 of 10 slots"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        let blocker = Blocker::new(&params.blocking);
        // The worker function: frame words 0-3 are pointer slots (holder, buffer, swapped-out
        // value, spare), word 4 a scalar; the top word is the return PC. And the leaf it calls
        // once an iteration, with no pointer slots.
        let program = Program::builder()
            .func_with_pointers("main.syncLeakWorker", 48, &[0, 1, 2, 3])
            .func_with_pointers("math/rand.Intn", 32, &[])
            .build()
            .expect("the sync-leak program is valid");
        let worker = program.user_func(0).expect("the worker");
        let intn = program.user_func(1).expect("the leaf");
        let all: Vec<usize> = (0..BUF_WORDS).collect();
        let hold: Vec<usize> = (0..HOLD).collect();
        WorkloadImage {
            wakes_per_ms: params.blocking.wakes_per_ms.expect("resolved blocking"),
            program,
            types: vec![
                ObjType::new("main.syncHolder", HOLD, &hold),
                ObjType::new("main.syncBuf", BUF_WORDS, &all),
            ],
            globals: params.goroutines,
            goroutines: (0..params.goroutines)
                .map(|id| {
                    Box::new(SyncLeakG {
                        worker,
                        intn,
                        global: id as u32,
                        step: 0,
                        blocker,
                    }) as Box<dyn Behaviour>
                })
                .collect(),
        }
    }
    fn max_depth(&self, _params: &WorkloadParams) -> usize {
        2
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// One goroutine: call the worker, make its holder, then loop.
#[derive(Debug)]
pub struct SyncLeakG {
    worker: stacks::FuncId,
    /// `rand.Intn`, called once an iteration.
    intn: stacks::FuncId,
    global: u32,
    /// Position in the setup and loop sequences.
    step: u32,
    blocker: Blocker,
}

/// Local slots of the worker frame.
const HOLDER_SLOT: u8 = 0;
const BUF_SLOT: u8 = 1;
const OLD_SLOT: u8 = 2;

/// The loop's first step (after the two of setup) and its last.
const FIRST_LOOP_STEP: u32 = 2;
const LAST_LOOP_STEP: u32 = 6;

impl Behaviour for SyncLeakG {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if ctx.depth == 0 {
            self.step = 0;
            return Op::Call {
                func: self.worker,
                site: 0,
            };
        }
        if ctx.depth > 1 {
            // rand.Intn returns.
            return Op::Ret;
        }
        if self.step >= FIRST_LOOP_STEP
            && let Some(op) = self.blocker.poll(rng)
        {
            return op;
        }
        let op = match self.step {
            // Setup: the holder, rooted in the goroutine's global.
            0 => Op::Alloc {
                ty: HOLDER,
                dst: HOLDER_SLOT,
            },
            1 => Op::StoreGlobal {
                global: self.global,
                src: Some(HOLDER_SLOT),
            },
            // The loop: a := make(buf); atomic op on a[rand.Intn(n)]; hold[rand] = a.
            2 => Op::Alloc {
                ty: BUF,
                dst: BUF_SLOT,
            },
            3 => Op::Call {
                func: self.intn,
                site: 1,
            },
            4 => Op::SwapField {
                obj: BUF_SLOT,
                field: rng.random_range(0..BUF_WORDS) as u8,
                src: None,
                dst: OLD_SLOT,
            },
            5 => Op::StoreField {
                obj: HOLDER_SLOT,
                field: rng.random_range(0..HOLD) as u8,
                src: Some(BUF_SLOT),
            },
            _ => Op::Clear { dst: BUF_SLOT },
        };
        self.step = if self.step >= LAST_LOOP_STEP {
            FIRST_LOOP_STEP
        } else {
            self.step + 1
        };
        op
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    fn goroutine(params: &WorkloadParams) -> Box<dyn Behaviour> {
        let mut image = SyncLeak.build(params);
        assert_eq!(
            image.wakes_per_ms,
            params.blocking.wakes_per_ms.unwrap_or(0.0)
        );
        image.goroutines.swap_remove(0)
    }

    #[test]
    fn loops_without_yielding_and_blocks_only_when_asked() {
        let params = WorkloadParams::new(2, 10, 1);
        let steps = testing::run_alone(&mut *goroutine(&params), 1, 40_000);
        assert_eq!(steps.len(), 40_000);
        assert!(steps.iter().all(|s| !matches!(s.op, Op::Yield | Op::Block)));
        assert!(steps[1..].iter().all(|s| (1..=2).contains(&s.depth)));
        // Setup, then the six operations of each iteration, one of them a call (a prologue, where
        // the goroutine can be preempted).
        let count = |f: fn(&Op) -> bool| steps.iter().filter(|s| f(&s.op)).count();
        let iterations = (40_000 - 3) / 6;
        assert_eq!(count(|op| matches!(op, Op::SwapField { .. })), iterations);
        assert_eq!(count(|op| matches!(op, Op::Call { .. })), iterations + 1);

        let params = testing::blocking_every(params, 50);
        let steps = testing::run_alone(&mut *goroutine(&params), 1, 40_000);
        let blocks = testing::positions(&steps, Op::Block);
        // Blocks come in the worker's frame, never inside rand.Intn: five of the six.
        assert!(blocks.iter().all(|&i| steps[i].depth == 1));
        assert!(
            (520..800).contains(&blocks.len()),
            "{} blocks in 40000 operations",
            blocks.len()
        );
        assert!(steps.iter().all(|s| s.op != Op::Yield));
    }
}
