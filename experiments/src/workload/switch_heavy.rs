//! `switch-heavy`: each goroutine recurses to depth D, then yields at most of its operations —
//! seed 003's `TestGoroutineSwitch`, a `runtime.Gosched()` loop — between short call/return
//! oscillations and heap operations. Nearly every operation is a goroutine switch, so a sampling
//! profiler's signals land inside `gogo` and `mcall` as often as they can.
//!
//! Scheduling. The yields ([`Op::Yield`], `runtime.Gosched`) are the point of this workload, not
//! filler: the program it models is a `runtime.Gosched()` loop, so unlike the others it keeps
//! them. It has no separate set-up yield: it yields at most operations from the start of its
//! steady state.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine also block in its steady state — a channel receive, with probability
//! `1/block_every` per operation ([`common::Blocker`]) — and `wakes_per_ms` (default 0) is the
//! rate at which the network poller wakes parked goroutines, which `block_every` needs.
//! `running` and `burst` do not apply (ignored).

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, Blocker, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

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
        let params = &common::resolve(params, self.blocking());
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Yielder::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(OSCILLATION + 1)
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// Recurse to `depth`, then mostly yield.
#[derive(Debug)]
pub struct Yielder {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    blocker: Blocker,
    built: bool,
}

impl Yielder {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take [`SwitchHeavy`]'s
    /// defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Yielder {
        let blocking = params.blocking.or(SwitchHeavy.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Yielder {
            funcs,
            depth: params.depth.max(OSCILLATION + 1),
            mix,
            blocker: Blocker::new(&blocking),
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
        if let Some(op) = self.blocker.poll(rng) {
            return op;
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

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    fn yielder(params: &WorkloadParams) -> Yielder {
        let funcs = common::program(params.seed, 16, 32, 256)
            .user_funcs()
            .collect();
        Yielder::new(0, params, funcs)
    }

    #[test]
    fn yields_at_most_operations_and_blocks_only_when_asked() {
        let params = WorkloadParams::new(4, 20, 1);
        let steps = testing::run_alone(&mut yielder(&params), 1, 20_000);
        assert_eq!(steps.len(), 20_000);
        assert!(steps.iter().all(|s| s.op != Op::Block));
        let yields = testing::positions(&steps, Op::Yield).len();
        assert!((10_000..13_000).contains(&yields), "{yields} yields");
        assert!(steps[30..].iter().all(|s| (18..=20).contains(&s.depth)));

        let params = testing::blocking_every(params, 50);
        let steps = testing::run_alone(&mut yielder(&params), 1, 20_000);
        let blocks = testing::positions(&steps, Op::Block).len();
        assert!((300..480).contains(&blocks), "{blocks} blocks");
    }
}
