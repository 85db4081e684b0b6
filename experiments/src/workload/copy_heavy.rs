//! `copy-heavy`: stacks that grow and shrink under the collector, so that copystack moves stacks
//! that carry *live* stack barriers (Go's `adjuststkbar`).
//!
//! Each goroutine goes round four phases, each of a seeded length:
//!
//! 1. **Grow**: recurse, mostly through the program's large functions (frames of 512 B–2 KiB), to
//!    a depth drawn from `[D/2, D]` (the first time, `D`), leaving a pointer in some frames on the
//!    way. A call that does not fit the stack grows it (`newstack` → copystack).
//! 2. **Work** near the top, as `deep-oscillate` does: heap mutation, hiding, stores through
//!    `&local`, calls and returns within [`OSCILLATION`] frames.
//! 3. **Return** to a few (3–6) outermost frames, frame by frame or, one time in four, by a
//!    recovered panic that pops everything above them at once (passing their barriers).
//! 4. **Shallow**: work within a frame of that depth. A concurrent scan that finds the goroutine
//!    here halves its stack (Go 1.7's `shrinkstack`: it uses less than a quarter) and installs
//!    barriers on the outermost frames, which are large, so even offset 1024 reaches a few. The
//!    next Grow phase outgrows the halved stack, often before mark termination: the stack then
//!    moves with those barriers not yet hit. A target that varies between rounds also makes
//!    stacks that were not shrunk grow.
//!
//! Live barriers exist only between a goroutine's scan and mark termination, so the concurrent
//! mark has to last for a good part of a round. Stacks are scanned at its start; what keeps it
//! going is heap objects to trace, and the heap mix leaves few live. So each goroutine also keeps a
//! live set: [`RETAINED_NODES`] nodes in two chains hung from two globals of its own (after
//! [`common::globals`], so the heap mix never overwrites them), built in its first frame and then
//! renewed: a few heap operations push a node, and when one chain is full the goroutine drops the
//! other and refills it. Under the deterministic engine, where a mark step scans about one such
//! node, this keeps the mark going for about a thousand of each goroutine's operations at any
//! goroutine count, and about a fifth of the growths then move live barriers (measured with 16–64
//! goroutines at depth 200–500 under the old scheduler, where every goroutine ran in every mark
//! phase; now only those holding a P run, so fewer goroutines grow during a given mark).
//!
//! The deepest stack is `D` frames (at least [`MIN_DEPTH`]).
//!
//! Scheduling. The goroutines are CPU-bound: each calls `runtime.Gosched()` once, right after its
//! first Grow phase has built its stack (one [`Op::Yield`]), so that every goroutine builds its
//! deep stack early instead of waiting for a time slice or a stop-the-world to get a P — like a
//! benchmark whose goroutines yield once when set up — and then goes round the phases without
//! yielding: only the scheduler's time slice takes its P away. A goroutine that runs through a
//! mark phase goes round many times (a round is a thousand or two operations), so the scan finds
//! running goroutines in every phase.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block in any phase of its steady state — a channel receive, with
//! probability `1/block_every` per operation ([`common::Blocker`]) — and `wakes_per_ms` (default
//! 0) is the rate at which the network poller wakes parked goroutines, which `block_every` needs.
//! `running` and `burst` do not apply (ignored).
//!
//! Invariant: as for every workload, the same parameters give the same program and behaviours.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

use super::common::{self, Blocker, HeapMix};
use super::{Blocking, Workload, WorkloadParams};

/// The program: this many functions with frames of [`MIN_FRAME`]..=[`MAX_FRAME`] bytes.
pub const FUNCS: usize = 24;
/// The smallest frame.
pub const MIN_FRAME: usize = 64;
/// The largest frame.
pub const MAX_FRAME: usize = 2048;
/// A function whose frame is at least this big is "large" (and so is every function in the
/// largest third of the program, whatever its size, so the set is never empty).
pub const LARGE_FRAME: usize = 512;
/// Percent of Grow-phase calls that go to a large function.
pub const LARGE_CALL_PERCENT: u32 = 90;
/// Frames the Shallow phase keeps (drawn per round).
pub const SHALLOW: Range<usize> = 3..7;
/// Frames the Work phase oscillates over below its target depth.
pub const OSCILLATION: usize = 3;
/// The smallest `D` the workload runs with.
pub const MIN_DEPTH: usize = 2 * SHALLOW.end + OSCILLATION;
/// Operations of a Work phase.
pub const WORK_OPS: Range<u32> = 50..400;
/// Operations of a Shallow phase.
pub const SHALLOW_OPS: Range<u32> = 200..1_500;
/// Nodes a goroutine keeps live, across its two chains.
pub const RETAINED_NODES: u32 = 1024;
/// Percent of Work and Shallow heap operations that add a node to the live set.
pub const RETAIN_PERCENT: u32 = 1;

/// The workload.
#[derive(Debug)]
pub struct CopyHeavy;

impl Workload for CopyHeavy {
    fn name(&self) -> &'static str {
        "copy-heavy"
    }
    fn about(&self) -> &'static str {
        "grow to a seeded depth in [D/2, D] through large frames, work, return to a few frames \
         and work there while the scan shrinks the stack, grow again: copystack moves live barriers"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        // The same seed gives the same program, so this one names the image's functions.
        let palette = Palette::of(&common::program(params.seed, FUNCS, MIN_FRAME, MAX_FRAME));
        let mut image = common::image(params, (FUNCS, MIN_FRAME, MAX_FRAME), |id, funcs| {
            debug_assert_eq!(funcs.len(), palette.large.len() + palette.small.len());
            Box::new(GrowShrink::new(id, params, palette.clone()))
        });
        image.globals += LiveSet::GLOBALS * params.goroutines;
        image
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(MIN_DEPTH)
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// The program's user functions, split by frame size.
#[derive(Clone, Debug)]
pub struct Palette {
    /// Frames of at least [`LARGE_FRAME`] bytes, and at least the largest third: never empty.
    pub large: Arc<[FuncId]>,
    /// The others (possibly empty).
    pub small: Arc<[FuncId]>,
}

impl Palette {
    /// Splits `prog`'s user functions (it must have at least one).
    pub fn of(prog: &stacks::Program) -> Palette {
        let mut by_size: Vec<FuncId> = prog.user_funcs().collect();
        by_size.sort_by_key(|&f| std::cmp::Reverse(prog.func(f).frame_size));
        let third = by_size.len().div_ceil(3);
        let split = by_size
            .iter()
            .position(|&f| prog.func(f).frame_size < LARGE_FRAME)
            .unwrap_or(by_size.len())
            .max(third);
        let small = by_size.split_off(split);
        Palette {
            large: by_size.into(),
            small: small.into(),
        }
    }

    /// A call, to a large function with probability `large_percent`%.
    fn call(&self, rng: &mut Rng, large_percent: u32) -> Op {
        let from = if self.small.is_empty() || rng.random_range(0..100) < large_percent {
            &self.large
        } else {
            &self.small
        };
        common::call(from, rng)
    }
}

/// A goroutine's live set: two chains of nodes, each hung from a global of its own.
#[derive(Clone, Debug)]
struct LiveSet {
    /// The globals of the two chains.
    anchors: [u32; 2],
    /// The chain being filled.
    filling: usize,
    /// Nodes in it.
    len: u32,
}

impl LiveSet {
    /// Globals per goroutine, after [`common::globals`].
    const GLOBALS: usize = 2;

    fn new(id: usize, goroutines: usize) -> LiveSet {
        let first = (common::globals(goroutines) + id * LiveSet::GLOBALS) as u32;
        LiveSet {
            anchors: [first, first + 1],
            filling: 0,
            len: 0,
        }
    }

    /// Queues the whole set: both chains full.
    fn fill(&mut self, queue: &mut VecDeque<Op>) {
        for _ in 0..RETAINED_NODES {
            self.push(queue);
        }
    }

    /// Queues `n = new(node); n.next = chain; chain = n; n = nil`, first dropping the other chain
    /// when this one is full. It uses the frame's first two pointer slots (distinct in any frame
    /// with two or more; with one, the chain is cut and regrows) and clears them after, so no
    /// other operation ever holds a node of the set and the heap mix cannot cut a chain.
    fn push(&mut self, queue: &mut VecDeque<Op>) {
        let (n, head) = (0, 1);
        if self.len >= RETAINED_NODES / 2 {
            self.filling ^= 1;
            self.len = 0;
            queue.push_back(Op::StoreGlobal {
                global: self.anchors[self.filling],
                src: None,
            });
        }
        self.len += 1;
        let global = self.anchors[self.filling];
        queue.extend([
            Op::Alloc {
                ty: common::NODE,
                dst: n,
            },
            Op::LoadGlobal { global, dst: head },
            Op::StoreField {
                obj: n,
                field: 0,
                src: Some(head),
            },
            Op::StoreGlobal {
                global,
                src: Some(n),
            },
            Op::Clear { dst: n },
            Op::Clear { dst: head },
        ]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Grow { target: usize },
    Work { target: usize, left: u32 },
    Return { to: usize },
    Shallow { depth: usize, left: u32 },
}

/// Grow, work, return, work shallow; again.
#[derive(Debug)]
pub struct GrowShrink {
    palette: Palette,
    depth: usize,
    mix: HeapMix,
    live: LiveSet,
    queue: VecDeque<Op>,
    phase: Phase,
    /// Whether the live set has been built (in the first frame: at depth 0 there are no locals).
    filled: bool,
    blocker: Blocker,
    /// Whether the first Grow phase is over (and the goroutine has yielded).
    built: bool,
}

impl GrowShrink {
    /// Goroutine `id`'s behaviour; blocking fields `params` leaves unset take [`CopyHeavy`]'s
    /// defaults.
    pub fn new(id: usize, params: &WorkloadParams, palette: Palette) -> GrowShrink {
        let blocking = params.blocking.or(CopyHeavy.blocking());
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        let depth = params.depth.max(MIN_DEPTH);
        GrowShrink {
            palette,
            depth,
            mix,
            live: LiveSet::new(id, params.goroutines),
            queue: VecDeque::new(),
            phase: Phase::Grow { target: depth },
            filled: false,
            blocker: Blocker::new(&blocking),
            built: false,
        }
    }

    /// A heap operation, now and then adding to the live set.
    fn heap_op(&mut self, rng: &mut Rng) -> Op {
        if rng.random_range(0..100) < RETAIN_PERCENT {
            self.live.push(&mut self.queue);
            if let Some(op) = self.queue.pop_front() {
                return op;
            }
        }
        self.mix.next(rng)
    }
}

impl Behaviour for GrowShrink {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.queue.pop_front().or_else(|| self.mix.pending(ctx)) {
            return op;
        }
        if !self.filled && ctx.depth > 0 {
            self.filled = true;
            self.live.fill(&mut self.queue);
            if let Some(op) = self.queue.pop_front() {
                return op;
            }
        }
        if self.built
            && let Some(op) = self.blocker.poll(rng)
        {
            return op;
        }
        // Each phase change goes on to the new phase's first operation.
        loop {
            return match self.phase {
                Phase::Grow { target } if ctx.depth < target => match rng.random_range(0..100) {
                    0..10 if ctx.depth > 0 => self.mix.next(rng),
                    _ => self.palette.call(rng, LARGE_CALL_PERCENT),
                },
                Phase::Grow { target } => {
                    self.phase = Phase::Work {
                        target,
                        left: rng.random_range(WORK_OPS),
                    };
                    if self.built {
                        continue;
                    }
                    // Set up: let the other goroutines build theirs (runtime.Gosched, once).
                    self.built = true;
                    Op::Yield
                }
                Phase::Work { left: 0, .. } => {
                    let to = rng.random_range(SHALLOW);
                    if rng.random_bool(0.25) {
                        // A recovered panic back to the outermost frames, passing every barrier.
                        self.phase = Phase::Shallow {
                            depth: to,
                            left: rng.random_range(SHALLOW_OPS),
                        };
                        Op::Unwind {
                            frames: (ctx.depth - to).min(u16::MAX as usize) as u16,
                        }
                    } else {
                        self.phase = Phase::Return { to };
                        continue;
                    }
                }
                Phase::Work { target, left } => {
                    self.phase = Phase::Work {
                        target,
                        left: left - 1,
                    };
                    match rng.random_range(0..100) {
                        0..25 if ctx.depth > target - OSCILLATION => Op::Ret,
                        0..50 if ctx.depth < target => self.palette.call(rng, 50),
                        0..50 => Op::Ret,
                        50..54 => self
                            .mix
                            .up_store(rng, ctx.depth, 3)
                            .unwrap_or_else(|| self.heap_op(rng)),
                        _ => self.heap_op(rng),
                    }
                }
                Phase::Return { to } if ctx.depth > to => {
                    if rng.random_bool(0.1) {
                        self.mix.next(rng)
                    } else {
                        Op::Ret
                    }
                }
                Phase::Return { to } => {
                    self.phase = Phase::Shallow {
                        depth: to,
                        left: rng.random_range(SHALLOW_OPS),
                    };
                    continue;
                }
                Phase::Shallow { left: 0, .. } => {
                    // Deep enough that the Work phase stays above every Shallow depth.
                    let least = (self.depth / 2).max(SHALLOW.end + OSCILLATION);
                    self.phase = Phase::Grow {
                        target: rng.random_range(least..=self.depth),
                    };
                    continue;
                }
                Phase::Shallow { depth, left } => {
                    self.phase = Phase::Shallow {
                        depth,
                        left: left - 1,
                    };
                    match rng.random_range(0..100) {
                        0..15 if ctx.depth >= depth => Op::Ret,
                        0..30 if ctx.depth <= depth => self.palette.call(rng, 50),
                        0..30 => Op::Ret,
                        30..34 => self
                            .mix
                            .up_store(rng, ctx.depth, 2)
                            .unwrap_or_else(|| self.heap_op(rng)),
                        _ => self.heap_op(rng),
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc::{Deterministic, GcConfig, RunResult, wbarrier};
    use rand::SeedableRng;
    use stacks::StackBarrierMode;

    /// Goroutine 0's behaviour run alone against a shadow depth, as the interpreter would run it:
    /// the depth after each operation.
    fn shadow_depths(params: &WorkloadParams, ops: usize) -> Vec<usize> {
        let prog = common::program(params.seed, FUNCS, MIN_FRAME, MAX_FRAME);
        let mut b = GrowShrink::new(0, params, Palette::of(&prog));
        let mut rng = Rng::seed_from_u64(params.seed);
        let mut depth = 0;
        (0..ops)
            .map(|_| {
                match b.next_op(&Ctx { depth }, &mut rng) {
                    Op::Call { .. } => depth += 1,
                    Op::Ret => {
                        assert!(depth > 1, "returns from its outermost frame");
                        depth -= 1;
                    }
                    Op::Unwind { frames } => {
                        assert!((frames as usize) < depth, "unwinds its outermost frame");
                        depth -= frames as usize;
                    }
                    Op::Exit | Op::Spawn => panic!("copy-heavy goroutines neither exit nor spawn"),
                    _ => {}
                }
                depth
            })
            .collect()
    }

    #[test]
    fn depth_stays_within_max_depth_and_goes_round_the_phases() {
        for depth in [1, 20, 200, 500] {
            let params = WorkloadParams::new(1, depth, 3);
            let max = CopyHeavy.max_depth(&params);
            let seen = shadow_depths(&params, 300_000);
            assert_eq!(
                seen.iter().max(),
                Some(&max),
                "depth {depth}: reaches D, never more"
            );
            let returns = seen
                .windows(2)
                .filter(|w| w[0] > SHALLOW.end && w[1] <= SHALLOW.end)
                .count();
            assert!(
                returns >= 10,
                "depth {depth}: {returns} returns to the outermost frames"
            );
        }
    }

    #[test]
    fn yields_once_when_built_then_blocks_only_when_asked() {
        for depth in [1, 40, 200] {
            let params = WorkloadParams::new(4, depth, 9);
            let palette = Palette::of(&common::program(params.seed, FUNCS, MIN_FRAME, MAX_FRAME));
            common::testing::check_cpu_bound(
                |p| Box::new(GrowShrink::new(1, p, palette.clone())),
                params,
                CopyHeavy.max_depth(&params),
            );
        }
    }

    #[test]
    fn the_palette_splits_large_from_small_frames() {
        for seed in 0..50 {
            let prog = common::program(seed, FUNCS, MIN_FRAME, MAX_FRAME);
            let p = Palette::of(&prog);
            assert_eq!(p.large.len() + p.small.len(), FUNCS);
            assert!(p.large.len() >= FUNCS / 3, "seed {seed}");
            let size = |f: &FuncId| prog.func(*f).frame_size;
            let min_large = p.large.iter().map(size).min();
            let max_small = p.small.iter().map(size).max();
            assert!(min_large >= max_small, "seed {seed}");
            assert!(p.small.iter().all(|f| size(f) < LARGE_FRAME), "seed {seed}");
        }
    }

    fn run(design: &str, mode: StackBarrierMode, goroutines: usize, seed: u64) -> RunResult {
        let mut config = GcConfig {
            design: wbarrier::design(design).unwrap(),
            stack_barriers: mode,
            heap_minimum: 256 << 10,
            procs: 2,
            seed,
            record_rescans: true,
            ..GcConfig::default()
        };
        config.debug.gccheckmark = true;
        let params = WorkloadParams::new(goroutines, 120, seed);
        Deterministic::new(config, CopyHeavy.build(&params))
            .unwrap()
            .run(4, 50_000_000)
            .unwrap()
    }

    #[test]
    fn every_cycle_moves_stacks_and_marks_everything() {
        for (design, mode) in [
            ("dijkstra", StackBarrierMode::GO),
            ("dijkstra", StackBarrierMode::On { first_offset: 256 }),
            ("dijkstra", StackBarrierMode::EVERY_FRAME),
            ("hybrid", StackBarrierMode::Off),
            ("yuasa", StackBarrierMode::Off),
        ] {
            let r = run(design, mode, 8, 11);
            let what = format!("{design} {mode}");
            let moves: Vec<u64> = r.cycles.iter().map(|c| c.copystacks).collect();
            assert!(moves.iter().all(|&n| n > 0), "{what}: {moves:?}");
            assert!(r.cycles.iter().all(|c| c.checkmark_failures == 0), "{what}");
            assert_eq!(r.rescan_bound.outside_bound, 0, "{what}");
            if design == "dijkstra" {
                let sum = &r.totals.sum;
                assert!(sum.barriers_installed > 0 && sum.barriers_hit > 0, "{what}");
            }
        }
    }

    #[test]
    fn the_live_set_stays_live() {
        let goroutines = 8;
        let r = run("dijkstra", StackBarrierMode::GO, goroutines, 5);
        // Each goroutine keeps at least one full chain (half its nodes) of 32-byte nodes.
        let floor = goroutines as u64 * u64::from(RETAINED_NODES / 2) * 32;
        for c in r.cycles.iter().skip(1) {
            assert!(
                c.heap_live_bytes >= floor,
                "{} < {floor}",
                c.heap_live_bytes
            );
        }
    }
}
