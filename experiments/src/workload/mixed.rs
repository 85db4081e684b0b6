//! `mixed`: a seeded blend of every other behaviour, plus churn — goroutines that spawn
//! short-lived goroutines, which work a little and exit — so stacks are created, freed and reused
//! while the collector runs.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::{RngExt, SeedableRng};
use stacks::FuncId;

use super::adversarial::Hider;
use super::common::{self, HeapMix};
use super::deep_oscillate::Oscillator;
use super::deep_unwind::Unwinder;
use super::many_shallow::Shallow;
use super::{Workload, WorkloadParams};

/// The workload.
#[derive(Debug)]
pub struct Mixed;

impl Workload for Mixed {
    fn name(&self) -> &'static str {
        "mixed"
    }
    fn about(&self) -> &'static str {
        "a seeded blend of all the others, with goroutines spawning short-lived ones"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let mut pick = Rng::seed_from_u64(params.seed ^ 0x006d_6978_6564);
        let shallow = WorkloadParams {
            depth: params.depth.clamp(2, 12),
            ..*params
        };
        common::image(params, (24, 32, 512), |id, f| {
            match pick.random_range(0..5) {
                0 => Box::new(Oscillator::new(id, params, f)),
                1 => Box::new(Unwinder::new(id, params, f)),
                2 => Box::new(Shallow::new(id, &shallow, f)),
                3 => Box::new(Hider::new(id, params, f)),
                _ => Box::new(Spawner::new(id, params, f)),
            }
        })
    }

    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth + 4
    }
}

/// Works at a modest depth and spawns short-lived goroutines.
#[derive(Debug)]
pub struct Spawner {
    id: usize,
    goroutines: usize,
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
}

impl Spawner {
    /// Goroutine `id`'s behaviour.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Spawner {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Spawner {
            id,
            goroutines: params.goroutines,
            funcs,
            depth: (params.depth / 4).max(2),
            mix,
        }
    }
}

impl Behaviour for Spawner {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if ctx.depth < self.depth {
            return common::call(&self.funcs, rng);
        }
        match rng.random_range(0..100) {
            0..3 => Op::Spawn,
            3..6 => Op::Yield,
            6..20 if ctx.depth > self.depth => Op::Ret,
            6..20 => common::call(&self.funcs, rng),
            _ => self.mix.next(rng),
        }
    }

    fn spawn(&mut self, rng: &mut Rng) -> Option<Box<dyn Behaviour>> {
        Some(Box::new(ShortLived {
            funcs: Arc::clone(&self.funcs),
            mix: HeapMix::new(self.id, self.goroutines),
            depth: rng.random_range(2..16),
            ops: rng.random_range(20..200),
        }))
    }
}

/// Calls down a few frames, works, and exits (by returning all the way, or by `Goexit`).
#[derive(Debug)]
pub struct ShortLived {
    funcs: Arc<[FuncId]>,
    mix: HeapMix,
    depth: usize,
    ops: u32,
}

impl Behaviour for ShortLived {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if self.ops == 0 {
            return if rng.random_bool(0.5) {
                Op::Exit
            } else {
                Op::Ret
            };
        }
        self.ops -= 1;
        if ctx.depth < self.depth {
            return common::call(&self.funcs, rng);
        }
        self.mix.next(rng)
    }
}
