//! `many-shallow`: thousands of goroutines of depth about D (10 by default), mostly blocked. A
//! running one works a little near the top of its shallow stack, maybe wakes another, and blocks
//! again. Only goroutines that ran since their scan need re-scanning; the rest cost nothing.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Workload, WorkloadParams};

/// The workload.
#[derive(Debug)]
pub struct ManyShallow;

impl Workload for ManyShallow {
    fn name(&self) -> &'static str {
        "many-shallow"
    }
    fn about(&self) -> &'static str {
        "many goroutines of depth ~D (use a small D such as 10), mostly blocked, waking each other"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Shallow::new(id, params, funcs))
        })
    }
}

/// Build a shallow stack, then alternate short bursts of work with blocking.
#[derive(Debug)]
pub struct Shallow {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    burst: u32,
}

impl Shallow {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Shallow {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Shallow {
            funcs,
            depth: params.depth.max(2),
            mix,
            burst: 0,
        }
    }
}

impl Behaviour for Shallow {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if ctx.depth < self.depth - 1 {
            return common::call(&self.funcs, rng);
        }
        if self.burst == 0 {
            self.burst = rng.random_range(5..40);
            return if rng.random_bool(0.4) {
                Op::Wake
            } else {
                Op::Block
            };
        }
        self.burst -= 1;
        match rng.random_range(0..100) {
            0..15 if ctx.depth >= self.depth => Op::Ret,
            0..15 => common::call(&self.funcs, rng),
            15..18 => self.mix.up_store(rng, ctx.depth, 2).unwrap_or(Op::Wake),
            _ => self.mix.next(rng),
        }
    }
}
