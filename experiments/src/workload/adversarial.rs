//! `adversarial`: deep goroutines that keep objects reachable only from their stacks. Each
//! loads a heap pointer into a local, deletes it from the heap, calls deeper and returns, moves it
//! between frames through `&local`, and only sometimes stores it back — the precise pattern a
//! re-scan that stops below the frames that changed would miss.
//!
//! Scheduling. The goroutines are CPU-bound: each calls `runtime.Gosched()` once, right after its
//! stack is first built (one [`Op::Yield`]), so that every goroutine builds its deep stack early
//! instead of waiting for a time slice or a stop-the-world to get a P — like a benchmark whose
//! goroutines yield once when set up — and then wanders without yielding: only the scheduler's
//! time slice takes its P away.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block in its steady state, often with objects hidden in its frames —
//! a channel receive, with probability `1/block_every` per operation ([`common::Blocker`]) — and
//! `wakes_per_ms` (default 0) is the rate at which the network poller wakes parked goroutines,
//! which `block_every` needs. `running` and `burst` do not apply (ignored).

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, Blocker, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

/// The shallowest depth the workload builds.
pub const MIN_DEPTH: usize = 2;
/// How far above its built depth a goroutine wanders.
pub const ABOVE: usize = 4;

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
        let params = &common::resolve(params, self.blocking());
        common::image(params, (16, 32, 512), |id, funcs| {
            Box::new(Hider::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(MIN_DEPTH) + ABOVE
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// Recurse to `depth`, yield once, then wander between 16 frames below it and [`ABOVE`] frames
/// above, hiding objects as it goes.
#[derive(Debug)]
pub struct Hider {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    blocker: Blocker,
    built: bool,
}

impl Hider {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take [`Adversarial`]'s
    /// defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Hider {
        let blocking = params.blocking.or(Adversarial.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.hide_percent = 35;
        mix.init();
        Hider {
            funcs,
            depth: params.depth.max(MIN_DEPTH),
            mix,
            blocker: Blocker::new(&blocking),
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
            // Set up: let the other goroutines build theirs (runtime.Gosched, once).
            self.built = true;
            return Op::Yield;
        }
        if let Some(op) = self.blocker.poll(rng) {
            return op;
        }
        let floor = self.depth.saturating_sub(16).max(1);
        match rng.random_range(0..100) {
            0..20 if ctx.depth > floor => Op::Ret,
            0..20 => common::call(&self.funcs, rng),
            20..38 if ctx.depth < self.depth + ABOVE => common::call(&self.funcs, rng),
            20..38 => Op::Ret,
            38..48 => self
                .mix
                .up_store(rng, ctx.depth, 8)
                .unwrap_or_else(|| self.mix.next(rng)),
            48..50 => Op::Unwind {
                frames: rng.random_range(2..6),
            },
            _ => self.mix.next(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    fn funcs(seed: u64) -> Arc<[FuncId]> {
        common::program(seed, 16, 32, 512).user_funcs().collect()
    }

    #[test]
    fn yields_once_when_built_then_blocks_only_when_asked() {
        for depth in [1, 10, 100] {
            let params = WorkloadParams::new(4, depth, 7);
            let funcs = funcs(params.seed);
            testing::check_cpu_bound(
                |p| Box::new(Hider::new(1, p, Arc::clone(&funcs))),
                params,
                depth.max(MIN_DEPTH),
            );
        }
    }

    #[test]
    fn wanders_within_max_depth_hiding_objects() {
        for depth in [1, 8, 40] {
            let params = WorkloadParams::new(4, depth, 5);
            let mut b = Hider::new(2, &params, funcs(params.seed));
            let steps = testing::run_alone(&mut b, 5, 30_000);
            assert_eq!(steps.len(), 30_000, "depth {depth}: the goroutine ended");
            let deepest = steps.iter().map(|s| s.depth).max();
            assert_eq!(
                deepest,
                Some(Adversarial.max_depth(&params)),
                "depth {depth}"
            );
            let deletes = steps
                .iter()
                .filter(|s| matches!(s.op, Op::StoreField { src: None, .. }))
                .count();
            assert!(deletes > 30_000 / 10, "depth {depth}: {deletes} deletes");
        }
    }
}
