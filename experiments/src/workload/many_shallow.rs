//! `many-shallow`: a server. Thousands of goroutines of depth about D (10 by default), most of
//! them parked waiting for a request; a few busy workers that never block. Only goroutines that
//! ran since their scan need re-scanning; the parked ones cost nothing.
//!
//! The goroutines ([`Workload::blocking`], defaults in parentheses):
//!
//! - **Busy workers**: the first `running` goroutines (default 4; all of them if there are
//!   fewer) build a stack of about D frames, then work near its top for ever — heap mutation,
//!   hiding objects in their locals, stores through `&local`, calls and returns between D−1 and D
//!   frames — without blocking or yielding: only the scheduler's time slice takes their P away.
//! - **Servers**: every other goroutine builds its stack of about D frames, then blocks
//!   ([`Op::Block`]: waiting for a request, a read on a connection). The network poller wakes
//!   parked goroutines at `wakes_per_ms` per millisecond of the engine's clock (default 10:
//!   requests arriving; Go's `netpoll`). A woken server runs a burst — a length drawn uniformly
//!   from `1..=2·burst` operations, mean about `burst` (default 20), counting the second halves of
//!   the sequences it starts — of heap work and a call or two near the top of its stack, then
//!   blocks again.
//!
//! Goroutines never wake each other ([`Op::Wake`]): requests come only from the poller (and from
//! the engine when every P is idle). `block_every` does not apply (ignored): a server blocks
//! after each burst, a busy worker never.

use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

/// The shallowest depth the workload builds.
pub const MIN_DEPTH: usize = 2;

/// The workload.
#[derive(Debug)]
pub struct ManyShallow;

impl Workload for ManyShallow {
    fn name(&self) -> &'static str {
        "many-shallow"
    }
    fn about(&self) -> &'static str {
        "a server: many goroutines of depth ~D (use a small D such as 10) blocked until the poller \
         wakes them for a short burst, and a few busy workers that never block"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Shallow::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(MIN_DEPTH)
    }
    fn blocking(&self) -> Blocking {
        Blocking {
            block_every: Some(0),
            wakes_per_ms: Some(10.0),
            running: Some(4),
            burst: Some(20),
        }
    }
}

/// What a goroutine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Never blocks.
    Busy,
    /// Blocks after each burst of this mean length.
    Server { burst: u32 },
}

/// Build a shallow stack, then work near its top: for ever (a busy worker) or in bursts between
/// blocks (a server).
#[derive(Debug)]
pub struct Shallow {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    role: Role,
    built: bool,
    /// Operations left in a server's burst.
    left: u32,
}

impl Shallow {
    /// Goroutine `id`'s behaviour: a busy worker if `id` is among the first `running`, else a
    /// server; blocking fields `params` leaves unset take [`ManyShallow`]'s defaults.
    pub fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Shallow {
        let blocking = params.blocking.or(ManyShallow.blocking());
        let running = blocking.running.unwrap_or(0).min(params.goroutines);
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Shallow {
            funcs,
            depth: params.depth.max(MIN_DEPTH),
            mix,
            role: if id < running {
                Role::Busy
            } else {
                Role::Server {
                    burst: blocking.burst.unwrap_or(1).max(1),
                }
            },
            built: false,
            left: 0,
        }
    }

    /// One operation of work near the top of the stack, between `depth - 1` and `depth` frames.
    fn work(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        match rng.random_range(0..100) {
            0..15 if ctx.depth >= self.depth => Op::Ret,
            0..15 => common::call(&self.funcs, rng),
            15..18 => self
                .mix
                .up_store(rng, ctx.depth, 2)
                .unwrap_or_else(|| self.mix.next(rng)),
            _ => self.mix.next(rng),
        }
    }
}

impl Behaviour for Shallow {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            self.left = self.left.saturating_sub(1);
            return op;
        }
        if !self.built {
            if ctx.depth < self.depth - 1 {
                return common::call(&self.funcs, rng);
            }
            self.built = true;
        }
        match self.role {
            Role::Busy => self.work(ctx, rng),
            Role::Server { burst } => {
                if self.left == 0 {
                    // Wait for the next request; the burst that serves it starts when woken.
                    self.left = rng.random_range(1..=2 * burst);
                    return Op::Block;
                }
                self.left -= 1;
                self.work(ctx, rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing::{self, Step};

    fn behaviour(id: usize, params: &WorkloadParams) -> Shallow {
        let funcs = common::program(params.seed, 16, 32, 256)
            .user_funcs()
            .collect();
        Shallow::new(id, params, funcs)
    }

    fn depths(steps: &[Step]) -> impl Iterator<Item = usize> + '_ {
        steps.iter().map(|s| s.depth)
    }

    #[test]
    fn busy_workers_never_block_or_yield() {
        let params = WorkloadParams::new(100, 10, 1);
        for id in 0..4 {
            let steps = testing::run_alone(&mut behaviour(id, &params), id as u64, 20_000);
            assert_eq!(steps.len(), 20_000, "g{id} ended");
            assert!(
                steps
                    .iter()
                    .all(|s| !matches!(s.op, Op::Block | Op::Yield | Op::Wake)),
                "g{id}"
            );
            let top: Vec<usize> = depths(&steps).skip(20).collect();
            assert!(top.iter().all(|d| (9..=10).contains(d)), "g{id}");
            assert!(top.contains(&10), "g{id} never calls near the top");
        }
    }

    #[test]
    fn servers_block_when_built_and_after_each_burst() {
        let params = WorkloadParams::new(100, 10, 2);
        for id in [4, 50, 99] {
            let steps = testing::run_alone(&mut behaviour(id, &params), id as u64, 50_000);
            assert_eq!(steps.len(), 50_000, "g{id} ended");
            assert!(
                steps.iter().all(|s| !matches!(s.op, Op::Yield | Op::Wake)),
                "g{id}"
            );
            let blocks = testing::positions(&steps, Op::Block);
            // The first block comes once the stack is built: nine calls and the root's two
            // operations.
            assert_eq!(blocks[0], 11, "g{id}");
            assert_eq!(steps[blocks[0]].depth, 9, "g{id}");
            let bursts: Vec<usize> = blocks.windows(2).map(|w| w[1] - w[0] - 1).collect();
            let mean = bursts.iter().sum::<usize>() as f64 / bursts.len() as f64;
            assert!((19.0..24.0).contains(&mean), "g{id}: mean burst {mean}");
            assert!(bursts.iter().all(|&n| (1..=50).contains(&n)), "g{id}");
            assert!(depths(&steps).skip(11).all(|d| (9..=10).contains(&d)));
        }
    }

    #[test]
    fn running_and_burst_override_the_defaults_and_running_is_clamped() {
        let params = WorkloadParams {
            blocking: Blocking {
                running: Some(1_000),
                ..Blocking::UNSET
            },
            ..WorkloadParams::new(8, 6, 3)
        };
        let image = ManyShallow.build(&params);
        assert_eq!(image.goroutines.len(), 8);
        assert_eq!(image.wakes_per_ms, 10.0);
        let steps = testing::run_alone(&mut behaviour(7, &params), 3, 5_000);
        assert!(!steps.iter().any(|s| s.op == Op::Block), "g7 is busy");

        let params = WorkloadParams {
            blocking: Blocking {
                running: Some(0),
                burst: Some(100),
                wakes_per_ms: Some(2.5),
                ..Blocking::UNSET
            },
            ..WorkloadParams::new(8, 6, 3)
        };
        assert_eq!(ManyShallow.build(&params).wakes_per_ms, 2.5);
        let steps = testing::run_alone(&mut behaviour(0, &params), 3, 50_000);
        let blocks = testing::positions(&steps, Op::Block);
        let mean = (blocks[blocks.len() - 1] - blocks[0]) as f64 / (blocks.len() - 1) as f64;
        assert!((95.0..115.0).contains(&mean), "g0 is a server: mean {mean}");
    }
}
