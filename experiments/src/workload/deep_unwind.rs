//! `deep-unwind`: each goroutine recurses to depth D, works near the top for a while, then goes
//! back to the bottom of its stack — by returning frame by frame, or all at once as a recovered
//! panic does (passing every barrier on the way) — and recurses again. Re-scans here must cover
//! most of the stack; stack barriers cannot save much.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Workload, WorkloadParams};

/// The workload.
#[derive(Debug)]
pub struct DeepUnwind;

impl Workload for DeepUnwind {
    fn name(&self) -> &'static str {
        "deep-unwind"
    }
    fn about(&self) -> &'static str {
        "recurse to depth D, work, then return or panic-unwind to the bottom and recurse again"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Unwinder::new(id, params, funcs))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Down,
    Work(u32),
    Up,
}

/// Down to `depth`, work, back up to the bottom.
#[derive(Debug)]
pub struct Unwinder {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    stage: Stage,
}

impl Unwinder {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Unwinder {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Unwinder {
            funcs,
            depth: params.depth.max(4),
            mix,
            stage: Stage::Down,
        }
    }
}

impl Behaviour for Unwinder {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        match self.stage {
            Stage::Down if ctx.depth < self.depth => {
                if ctx.depth > 0 && rng.random_bool(0.3) {
                    self.mix.next(rng)
                } else {
                    common::call(&self.funcs, rng)
                }
            }
            Stage::Down => {
                self.stage = Stage::Work(rng.random_range(50..400));
                Op::Yield
            }
            Stage::Work(0) => {
                if rng.random_bool(0.5) {
                    // A recovered panic: everything but the two outermost frames at once.
                    self.stage = Stage::Down;
                    Op::Unwind {
                        frames: (ctx.depth.saturating_sub(2)).min(u16::MAX as usize) as u16,
                    }
                } else {
                    self.stage = Stage::Up;
                    Op::Yield
                }
            }
            Stage::Work(n) => {
                self.stage = Stage::Work(n - 1);
                match rng.random_range(0..100) {
                    0..20 if ctx.depth > self.depth - 2 => Op::Ret,
                    0..20 => common::call(&self.funcs, rng),
                    20..25 => Op::Yield,
                    25..28 => self.mix.up_store(rng, ctx.depth, 4).unwrap_or(Op::Yield),
                    _ => self.mix.next(rng),
                }
            }
            Stage::Up if ctx.depth > 2 => {
                if rng.random_bool(0.2) {
                    self.mix.next(rng)
                } else {
                    Op::Ret
                }
            }
            Stage::Up => {
                self.stage = Stage::Down;
                Op::Yield
            }
        }
    }
}
