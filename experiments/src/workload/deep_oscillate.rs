//! `deep-oscillate`: each goroutine recurses to depth D, then oscillates a few frames near the
//! top of its stack (the innermost frames), mutating the heap and hiding objects in its locals.
//! Stack barriers should let mark termination re-scan only those few frames.
//!
//! Scheduling. The goroutines are CPU-bound, like a benchmark's workers: each calls
//! `runtime.Gosched()` once, right after its stack is first built (one [`Op::Yield`]), so that
//! every goroutine builds its deep stack early instead of waiting for a time slice or a
//! stop-the-world to get a P — like a benchmark whose goroutines yield once when set up — and
//! then oscillates without ever yielding: only the scheduler's time slice takes its P away. So,
//! as in Go 1.7 on few Ps, only the goroutines that held a P during a mark phase ran since their
//! scan and need re-scanning.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block in its steady state — a channel receive, with probability
//! `1/block_every` per operation ([`common::Blocker`]) — and `wakes_per_ms` (default 0) is the
//! rate at which the network poller wakes parked goroutines, which `block_every` needs.
//! `running` and `burst` do not apply (ignored).

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, Blocker, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

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
        let params = &common::resolve(params, self.blocking());
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Oscillator::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(OSCILLATION + 1)
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// Recurse to `depth`, yield once, then oscillate within [`OSCILLATION`] frames of it.
#[derive(Debug)]
pub struct Oscillator {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    blocker: Blocker,
    built: bool,
}

impl Oscillator {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take
    /// [`DeepOscillate`]'s defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Oscillator {
        let blocking = params.blocking.or(DeepOscillate.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Oscillator {
            funcs,
            depth: params.depth.max(OSCILLATION + 1),
            mix,
            blocker: Blocker::new(&blocking),
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
            // Set up: let the other goroutines build theirs (runtime.Gosched, once).
            self.built = true;
            return Op::Yield;
        }
        if let Some(op) = self.blocker.poll(rng) {
            return op;
        }
        let bottom = self.depth - OSCILLATION;
        match rng.random_range(0..100) {
            0..30 if ctx.depth > bottom => Op::Ret,
            0..30 => common::call(&self.funcs, rng),
            30..55 if ctx.depth < self.depth => common::call(&self.funcs, rng),
            30..55 => Op::Ret,
            55..57 => self
                .mix
                .up_store(rng, ctx.depth, 2)
                .unwrap_or_else(|| self.mix.next(rng)),
            _ => self.mix.next(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    #[test]
    fn yields_once_when_built_then_blocks_only_when_asked() {
        for depth in [1, 10, 100] {
            let params = WorkloadParams::new(4, depth, 7);
            let prog = common::program(params.seed, 16, 32, 256);
            let funcs: Arc<[FuncId]> = prog.user_funcs().collect();
            testing::check_cpu_bound(
                |p| Box::new(Oscillator::new(1, p, Arc::clone(&funcs))),
                params,
                depth.max(OSCILLATION + 1),
            );
        }
    }

    #[test]
    fn oscillates_near_the_top_within_max_depth() {
        let params = WorkloadParams::new(4, 50, 3);
        let prog = common::program(params.seed, 16, 32, 256);
        let mut b = Oscillator::new(0, &params, prog.user_funcs().collect());
        let steps = testing::run_alone(&mut b, 3, 20_000);
        let yield_at = testing::positions(&steps, Op::Yield)[0];
        assert!(
            steps[yield_at..]
                .iter()
                .all(|s| (47..=50).contains(&s.depth))
        );
        assert_eq!(
            steps.iter().map(|s| s.depth).max(),
            Some(DeepOscillate.max_depth(&params))
        );
    }
}
