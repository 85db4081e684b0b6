//! `deep-oscillate`: each goroutine recurses to depth D, then oscillates a few frames near the
//! top of its stack (the innermost frames), mutating the heap and hiding objects in its locals.
//! Stack barriers should let mark termination re-scan only those few frames.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Workload, WorkloadParams};

/// How many frames the oscillation spans.
pub const OSCILLATION: usize = 3;

/// The workload.
#[derive(Debug)]
pub struct DeepOscillate;

impl Workload for DeepOscillate {
    fn name(&self) -> &'static str {
        "deep-oscillate"
    }
    fn about(&self) -> &'static str {
        "recurse to depth D, then oscillate 3 frames near the innermost end of the stack"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Oscillator::new(id, params, funcs))
        })
    }
}

/// Recurse to `depth`, then oscillate within [`OSCILLATION`] frames of it.
#[derive(Debug)]
pub struct Oscillator {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    built: bool,
}

impl Oscillator {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Oscillator {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Oscillator {
            funcs,
            depth: params.depth.max(OSCILLATION + 1),
            mix,
            built: false,
        }
    }
}

impl Behaviour for Oscillator {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if !self.built {
            if ctx.depth < self.depth {
                // On the way down, leave a pointer or two in most frames.
                return if ctx.depth > 0 && rng.random_bool(0.3) {
                    self.mix.next(rng)
                } else {
                    common::call(&self.funcs, rng)
                };
            }
            self.built = true;
        }
        let bottom = self.depth - OSCILLATION;
        match rng.random_range(0..100) {
            0..30 if ctx.depth > bottom => Op::Ret,
            0..30 => common::call(&self.funcs, rng),
            30..55 if ctx.depth < self.depth => common::call(&self.funcs, rng),
            30..55 => Op::Ret,
            55..57 => Op::Yield,
            57..59 => self.mix.up_store(rng, ctx.depth, 2).unwrap_or(Op::Yield),
            _ => self.mix.next(rng),
        }
    }
}
