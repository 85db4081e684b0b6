//! `adversarial`: deep goroutines that keep objects reachable only from their stacks. Each
//! loads a heap pointer into a local, deletes it from the heap, calls deeper and returns, moves it
//! between frames through `&local`, and only sometimes stores it back — the precise pattern a
//! re-scan that stops below the frames that changed would miss.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Workload, WorkloadParams};

/// The workload.
#[derive(Debug)]
pub struct Adversarial;

impl Workload for Adversarial {
    fn name(&self) -> &'static str {
        "adversarial"
    }
    fn about(&self) -> &'static str {
        "hide heap objects on the stack (load, delete from the heap), move them across frames"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        common::image(params, (16, 32, 512), |id, funcs| {
            Box::new(Hider::new(id, params, funcs))
        })
    }
}

/// Recurse to `depth`, then wander up and down by up to 16 frames, hiding objects as it goes.
#[derive(Debug)]
pub struct Hider {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    built: bool,
}

impl Hider {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Hider {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.hide_percent = 35;
        mix.init();
        Hider {
            funcs,
            depth: params.depth.max(2),
            mix,
            built: false,
        }
    }
}

impl Behaviour for Hider {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if !self.built {
            if ctx.depth < self.depth {
                return if ctx.depth > 0 && rng.random_bool(0.5) {
                    self.mix.next(rng)
                } else {
                    common::call(&self.funcs, rng)
                };
            }
            self.built = true;
        }
        let floor = self.depth.saturating_sub(16).max(1);
        match rng.random_range(0..100) {
            0..20 if ctx.depth > floor => Op::Ret,
            0..20 => common::call(&self.funcs, rng),
            20..38 if ctx.depth < self.depth + 4 => common::call(&self.funcs, rng),
            20..38 => Op::Ret,
            38..40 => Op::Yield,
            40..50 => self.mix.up_store(rng, ctx.depth, 8).unwrap_or(Op::Yield),
            50..52 => Op::Unwind {
                frames: rng.random_range(2..6),
            },
            _ => self.mix.next(rng),
        }
    }
}
