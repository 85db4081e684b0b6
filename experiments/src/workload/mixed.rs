//! `mixed`: a seeded blend of the other behaviours, plus churn — goroutines that spawn
//! short-lived goroutines, which work a little and exit — so stacks are created, freed and reused
//! while the collector runs.
//!
//! Each goroutine is, by a seeded draw, one of `deep-oscillate`'s oscillators, `deep-unwind`'s
//! unwinders, `adversarial`'s hiders (all at depth D), `many-shallow`'s goroutines (at depth
//! `D` clamped to 2..=12) or a spawner (at depth about D/4), and blocks and yields where that
//! behaviour does:
//!
//! - The deep members call `runtime.Gosched()` once, right after their stack is first built (one
//!   [`Op::Yield`]: every goroutine builds its deep stack early instead of waiting for a time
//!   slice or a stop-the-world to get a P, like a benchmark whose goroutines yield once when set
//!   up), then run without yielding; like the spawners they are CPU-bound, and block only when
//!   `block_every` (default 0, never) asks them to: a channel receive with probability
//!   `1/block_every` per steady-state operation ([`common::Blocker`]).
//! - The `many-shallow` members are servers: they block once their stack is built and after each
//!   burst of work (mean `burst` operations, default 20), woken by the network poller at
//!   `wakes_per_ms` (default 10 per ms: this workload always has parked goroutines to wake).
//!   Those among the first `running` goroutines (default 0) are instead busy workers that never
//!   block.
//! - A spawner never yields either. It spawns a goroutine at one in [`SPAWN_PER`] of its
//!   operations; a spawned goroutine never blocks or yields: it calls down a few frames, works a
//!   little and exits (returning all the way, or `runtime.Goexit`).
//!
//! Nothing yields for fairness: only the scheduler's time slice takes a running goroutine's P.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::{RngExt, SeedableRng};
use stacks::FuncId;

use super::adversarial::{self, Hider};
use super::common::{self, Blocker, HeapMix};
use super::deep_oscillate::{self, Oscillator};
use super::deep_unwind::{self, Unwinder};
use super::many_shallow::{self, Shallow};
use super::{Blocking, Workload, WorkloadParams};

/// The depths the `many-shallow` members work at.
pub const SHALLOW_DEPTH: std::ops::RangeInclusive<usize> = 2..=12;
/// The deepest a spawned goroutine calls.
pub const SHORT_LIVED_DEPTH: usize = 15;
/// A spawner spawns a goroutine at one in this many of its operations. (Under the old scheduler it
/// spawned at 3 % and yielded at 3 %, so its children ran between its turns; now it keeps its P
/// for a whole time slice, and at 3 % thousands of children would queue behind it.)
pub const SPAWN_PER: u32 = 200;

/// The workload.
#[derive(Debug)]
pub struct Mixed;

impl Workload for Mixed {
    fn name(&self) -> &'static str {
        "mixed"
    }
    fn about(&self) -> &'static str {
        "a seeded blend of deep-oscillate, deep-unwind, adversarial and many-shallow goroutines, \
         with goroutines spawning short-lived ones"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        let mut pick = Rng::seed_from_u64(params.seed ^ 0x006d_6978_6564);
        let shallow = WorkloadParams {
            depth: params
                .depth
                .clamp(*SHALLOW_DEPTH.start(), *SHALLOW_DEPTH.end()),
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
        let depths = [
            deep_oscillate::DeepOscillate.max_depth(params),
            deep_unwind::DeepUnwind.max_depth(params),
            adversarial::Adversarial.max_depth(params),
            many_shallow::ManyShallow.max_depth(&WorkloadParams {
                depth: params.depth.min(*SHALLOW_DEPTH.end()),
                ..*params
            }),
            Spawner::depth(params) + 1,
            SHORT_LIVED_DEPTH,
        ];
        depths.into_iter().max().unwrap_or(0)
    }
    fn blocking(&self) -> Blocking {
        Blocking {
            block_every: Some(0),
            wakes_per_ms: Some(10.0),
            running: Some(0),
            burst: Some(20),
        }
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
    blocker: Blocker,
}

impl Spawner {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take [`Mixed`]'s
    /// defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Spawner {
        let blocking = params.blocking.or(Mixed.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Spawner {
            id,
            goroutines: params.goroutines,
            funcs,
            depth: Spawner::depth(params),
            mix,
            blocker: Blocker::new(&blocking),
        }
    }

    /// The depth it works at (and one frame deeper).
    fn depth(params: &WorkloadParams) -> usize {
        (params.depth / 4).max(2)
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
        if let Some(op) = self.blocker.poll(rng) {
            return op;
        }
        match rng.random_range(0..SPAWN_PER) {
            0 => Op::Spawn,
            n if n < SPAWN_PER * 14 / 100 && ctx.depth > self.depth => Op::Ret,
            n if n < SPAWN_PER * 14 / 100 => common::call(&self.funcs, rng),
            _ => self.mix.next(rng),
        }
    }

    fn spawn(&mut self, rng: &mut Rng) -> Option<Box<dyn Behaviour>> {
        Some(Box::new(ShortLived {
            funcs: Arc::clone(&self.funcs),
            mix: HeapMix::new(self.id, self.goroutines),
            depth: rng.random_range(2..=SHORT_LIVED_DEPTH),
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

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing;

    /// What a goroutine of the image is (its behaviour's type) and what it did alone.
    fn members(params: &WorkloadParams, ops: usize) -> Vec<(String, Vec<testing::Step>)> {
        Mixed
            .build(params)
            .goroutines
            .into_iter()
            .enumerate()
            .map(|(id, mut b)| {
                let kind = format!("{b:?}");
                let kind = kind[..kind.find(' ').unwrap_or(kind.len())].to_owned();
                (kind, testing::run_alone(&mut *b, id as u64, ops))
            })
            .collect()
    }

    fn count(steps: &[testing::Step], op: Op) -> usize {
        testing::positions(steps, op).len()
    }

    #[test]
    fn members_block_and_yield_where_their_workloads_do() {
        let params = WorkloadParams::new(40, 30, 2);
        assert_eq!(Mixed.build(&params).wakes_per_ms, 10.0);
        let max = Mixed.max_depth(&params);
        let members = members(&params, 20_000);
        let mut kinds: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            ["Hider", "Oscillator", "Shallow", "Spawner", "Unwinder"]
        );
        for (id, (kind, steps)) in members.iter().enumerate() {
            assert_eq!(steps.len(), 20_000, "g{id} ({kind}) ended");
            assert!(steps.iter().all(|s| s.depth <= max), "g{id} ({kind})");
            let (yields, blocks) = (count(steps, Op::Yield), count(steps, Op::Block));
            match kind.as_str() {
                "Shallow" => {
                    assert_eq!(yields, 0, "g{id}");
                    assert!((500..1_500).contains(&blocks), "g{id}: {blocks} blocks");
                }
                "Spawner" => {
                    assert_eq!((yields, blocks), (0, 0), "g{id}");
                    let spawns = count(steps, Op::Spawn);
                    let expect = 20_000 / SPAWN_PER as usize;
                    assert!(
                        (expect / 2..expect * 2).contains(&spawns),
                        "g{id}: {spawns}"
                    );
                }
                _ => assert_eq!((yields, blocks), (1, 0), "g{id} ({kind})"),
            }
        }
    }

    #[test]
    fn spawned_goroutines_work_a_little_and_exit() {
        let params = WorkloadParams::new(4, 30, 1);
        let funcs: Arc<[FuncId]> = common::program(1, 24, 32, 512).user_funcs().collect();
        let mut spawner = Spawner::new(0, &params, funcs);
        let mut rng = Rng::seed_from_u64(1);
        for seed in 0..50 {
            let mut child = spawner.spawn(&mut rng).expect("a spawner spawns");
            let steps = testing::run_alone(&mut *child, seed, 10_000);
            assert!(
                steps.len() < 400,
                "child {seed} ran {} operations",
                steps.len()
            );
            assert!(matches!(steps.last().unwrap().op, Op::Exit | Op::Ret));
            assert!(steps.iter().all(|s| !matches!(s.op, Op::Yield | Op::Block)));
            assert!(steps.iter().all(|s| s.depth <= SHORT_LIVED_DEPTH));
        }
    }

    #[test]
    fn block_every_makes_the_cpu_bound_members_block() {
        let params = WorkloadParams {
            blocking: Blocking {
                block_every: Some(50),
                ..Blocking::UNSET
            },
            ..WorkloadParams::new(40, 30, 2)
        };
        for (id, (kind, steps)) in members(&params, 40_000).iter().enumerate() {
            let blocks = count(steps, Op::Block) as f64 / 40_000.0;
            match kind.as_str() {
                // Servers block after each burst whatever block_every says.
                "Shallow" => assert!(blocks > 1.0 / 40.0, "g{id}: {blocks}"),
                // Up to a quarter of a hider's operations finish a sequence and never block.
                _ => assert!(
                    (0.6 / 50.0..1.2 / 50.0).contains(&blocks),
                    "g{id} ({kind}): blocks at {blocks}"
                ),
            }
        }
    }
}
