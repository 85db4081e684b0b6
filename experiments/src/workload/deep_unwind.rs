//! `deep-unwind`: each goroutine recurses to depth D, works near the top for a while, then goes
//! back to the bottom of its stack — by returning frame by frame, or all at once as a recovered
//! panic does (passing every barrier on the way) — and recurses again. Re-scans here must cover
//! most of the stack; stack barriers cannot save much.
//!
//! Scheduling. The goroutines are CPU-bound: each calls `runtime.Gosched()` once, right after its
//! stack is first built (one [`Op::Yield`]), so that every goroutine builds its deep stack early
//! instead of waiting for a time slice or a stop-the-world to get a P — like a benchmark whose
//! goroutines yield once when set up — and from then on goes round (work, return or unwind,
//! recurse) without yielding: only the scheduler's time slice takes its P away.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block anywhere in its steady state (working, returning or recursing
//! again) — a channel receive, with probability `1/block_every` per operation
//! ([`common::Blocker`]) — and `wakes_per_ms` (default 0) is the rate at which the network poller
//! wakes parked goroutines, which `block_every` needs. `running` and `burst` do not apply
//! (ignored).

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, Blocker, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

/// The shallowest depth the workload runs at.
pub const MIN_DEPTH: usize = 4;

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
        let params = &common::resolve(params, self.blocking());
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Unwinder::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(MIN_DEPTH)
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Down,
    Work(u32),
    Up,
}

/// Down to `depth` (the first time, then a yield), work, back up to the bottom.
#[derive(Debug)]
pub struct Unwinder {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    blocker: Blocker,
    stage: Stage,
    /// Whether the stack has been built once (and the goroutine has yielded).
    built: bool,
}

impl Unwinder {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take [`DeepUnwind`]'s
    /// defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Unwinder {
        let blocking = params.blocking.or(DeepUnwind.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Unwinder {
            funcs,
            depth: params.depth.max(MIN_DEPTH),
            mix,
            blocker: Blocker::new(&blocking),
            stage: Stage::Down,
            built: false,
        }
    }
}

impl Behaviour for Unwinder {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if self.built
            && let Some(op) = self.blocker.poll(rng)
        {
            return op;
        }
        // Each stage change goes on to the new stage's first operation.
        loop {
            return match self.stage {
                Stage::Down if ctx.depth < self.depth => {
                    if ctx.depth > 0 && rng.random_bool(0.3) {
                        self.mix.next(rng)
                    } else {
                        common::call(&self.funcs, rng)
                    }
                }
                Stage::Down => {
                    self.stage = Stage::Work(rng.random_range(50..400));
                    if self.built {
                        continue;
                    }
                    // Set up: let the other goroutines build theirs (runtime.Gosched, once).
                    self.built = true;
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
                        continue;
                    }
                }
                Stage::Work(n) => {
                    self.stage = Stage::Work(n - 1);
                    match rng.random_range(0..100) {
                        0..20 if ctx.depth > self.depth - 2 => Op::Ret,
                        0..20 => common::call(&self.funcs, rng),
                        20..23 => self
                            .mix
                            .up_store(rng, ctx.depth, 4)
                            .unwrap_or_else(|| self.mix.next(rng)),
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
                    continue;
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    fn funcs(seed: u64) -> Arc<[FuncId]> {
        common::program(seed, 16, 32, 256).user_funcs().collect()
    }

    #[test]
    fn yields_once_when_built_then_blocks_only_when_asked() {
        for depth in [1, 10, 100] {
            let params = WorkloadParams::new(4, depth, 7);
            let funcs = funcs(params.seed);
            testing::check_cpu_bound(
                |p| Box::new(Unwinder::new(1, p, Arc::clone(&funcs))),
                params,
                depth.max(MIN_DEPTH),
            );
        }
    }

    #[test]
    fn goes_round_to_the_bottom_and_back_within_max_depth() {
        let params = WorkloadParams::new(4, 60, 3);
        let mut b = Unwinder::new(0, &params, funcs(params.seed));
        let steps = testing::run_alone(&mut b, 3, 50_000);
        assert_eq!(steps.len(), 50_000);
        let depths: Vec<usize> = steps.iter().map(|s| s.depth).collect();
        assert_eq!(depths.iter().max(), Some(&DeepUnwind.max_depth(&params)));
        let descents = depths.windows(2).filter(|w| w[0] == 2 && w[1] == 3).count();
        let unwinds = steps
            .iter()
            .filter(|s| matches!(s.op, Op::Unwind { .. }))
            .count();
        assert!(
            descents >= 20 && unwinds >= 5,
            "{descents} descents, {unwinds} unwinds"
        );
    }
}
