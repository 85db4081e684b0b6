//! `switch-heavy`: each goroutine recurses to depth D, then yields at most of its operations —
//! seed 003's `TestGoroutineSwitch`, a `runtime.Gosched()` loop — between short call/return
//! oscillations and heap operations. Nearly every operation is a goroutine switch, so a sampling
//! profiler's signals land inside `gogo` and `mcall` as often as they can.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Workload, WorkloadParams};

/// Frames the oscillation between yields spans.
pub const OSCILLATION: usize = 2;

/// The workload.
#[derive(Debug)]
pub struct SwitchHeavy;

impl Workload for SwitchHeavy {
    fn name(&self) -> &'static str {
        "switch-heavy"
    }
    fn about(&self) -> &'static str {
        "recurse to depth D, then yield at most operations (a Gosched loop), oscillating 2 frames"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Yielder::new(id, params, funcs))
        })
    }
}

/// Recurse to `depth`, then mostly yield.
#[derive(Debug)]
pub struct Yielder {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    built: bool,
}

impl Yielder {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Yielder {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Yielder {
            funcs,
            depth: params.depth.max(OSCILLATION + 1),
            mix,
            built: false,
        }
    }
}

impl Behaviour for Yielder {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if !self.built {
            if ctx.depth < self.depth {
                return common::call(&self.funcs, rng);
            }
            self.built = true;
        }
        let bottom = self.depth - OSCILLATION;
        match rng.random_range(0..100) {
            0..60 => Op::Yield,
            60..75 if ctx.depth > bottom => Op::Ret,
            60..75 => common::call(&self.funcs, rng),
            75..90 if ctx.depth < self.depth => common::call(&self.funcs, rng),
            75..90 => Op::Ret,
            _ => self.mix.next(rng),
        }
    }
}
