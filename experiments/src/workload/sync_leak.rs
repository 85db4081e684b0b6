//! `sync-leak`: the analogue of Go's `BenchmarkSyncLeak` (seed 004). Each goroutine loops: make a
//! buffer, do one atomic operation on a random word of it (a synchronization object the sanitizer
//! keeps metadata for), and keep it in one of `H` slots of its holder, dropping the buffer that
//! was there. The live heap stays flat — at most `H` buffers per goroutine — while the heap
//! addresses that have seen an atomic operation keep growing, so a sanitizer not told of frees
//! accumulates metadata for dead buffers.
//!
//! Invariant: a goroutine's holder is reachable from its own global for its whole life, and every
//! buffer it makes is reachable from a holder slot or a local until the next one replaces it.
//! `--depth` does not apply: the work runs one frame deep.

use gc::{Behaviour, Ctx, ObjType, Op, Rng, TypeId, WorkloadImage};
use rand::RngExt;
use stacks::Program;

use super::{Workload, WorkloadParams};

/// Slots in a goroutine's holder (BenchmarkSyncLeak's `H`).
pub const HOLD: usize = 10;
/// Words in a buffer, every one a pointer field an atomic operation may swap (the benchmark's
/// 1000 `uint32`s, shrunk and made pointers so the atomic is a pointer swap the write barrier and
/// wbshadow see).
pub const BUF_WORDS: usize = 64;
/// Iterations between two yields, so the goroutines interleave.
const YIELD_EVERY: u32 = 16;

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
        // One worker function: frame words 0-3 are pointer slots (holder, buffer, swapped-out
        // value, spare), word 4 a scalar; the top word is the return PC.
        let program = Program::builder()
            .func_with_pointers("main.syncLeakWorker", 48, &[0, 1, 2, 3])
            .build()
            .expect("the sync-leak program is valid");
        let worker = program.user_func(0).expect("one user function");
        let all: Vec<usize> = (0..BUF_WORDS).collect();
        let hold: Vec<usize> = (0..HOLD).collect();
        WorkloadImage {
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
                        global: id as u32,
                        step: 0,
                        iterations: 0,
                    }) as Box<dyn Behaviour>
                })
                .collect(),
        }
    }
    fn max_depth(&self, _params: &WorkloadParams) -> usize {
        1
    }
}

/// One goroutine: call the worker, make its holder, then loop.
#[derive(Debug)]
pub struct SyncLeakG {
    worker: stacks::FuncId,
    global: u32,
    /// Position in the setup and loop sequences.
    step: u32,
    iterations: u32,
}

/// Local slots of the worker frame.
const HOLDER_SLOT: u8 = 0;
const BUF_SLOT: u8 = 1;
const OLD_SLOT: u8 = 2;

impl Behaviour for SyncLeakG {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if ctx.depth == 0 {
            self.step = 0;
            return Op::Call {
                func: self.worker,
                site: 0,
            };
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
            // The loop: a := make(buf); atomic op on a[rand]; hold[rand] = a.
            2 => Op::Alloc {
                ty: BUF,
                dst: BUF_SLOT,
            },
            3 => Op::SwapField {
                obj: BUF_SLOT,
                field: rng.random_range(0..BUF_WORDS) as u8,
                src: None,
                dst: OLD_SLOT,
            },
            4 => Op::StoreField {
                obj: HOLDER_SLOT,
                field: rng.random_range(0..HOLD) as u8,
                src: Some(BUF_SLOT),
            },
            5 => Op::Clear { dst: BUF_SLOT },
            _ => {
                self.iterations += 1;
                self.step = 2;
                if self.iterations.is_multiple_of(YIELD_EVERY) {
                    return Op::Yield;
                }
                return self.next_op(ctx, rng);
            }
        };
        self.step += 1;
        op
    }
}
