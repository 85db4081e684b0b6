//! What every workload shares: the program shape, the object types, the mix of heap operations
//! behaviours draw from, and where their goroutines block ([`Blocker`]).
//!
//! Invariant: every operation sequence [`HeapMix`] queues refers to the frame running when it was
//! queued, and behaviours drain the queue before they call or return, so a sequence's slots always
//! name the frame the sequence was planned for. The one exception is [`HeapMix::init`]'s sequence,
//! queued before the goroutine has any frame: it is held until the first call and runs there.

use std::collections::VecDeque;

use std::sync::Arc;

use gc::{Behaviour, Ctx, ObjType, Op, Rng, TypeId, WorkloadImage};
use rand::RngExt;
use stacks::{FuncId, Program, RandomProgram};

use super::{Blocking, WorkloadParams};

/// The object types: a node with two pointer fields and two scalars, a pointer-free leaf, and a
/// 512-byte object with eight pointer fields.
pub fn types() -> Vec<ObjType> {
    vec![
        ObjType::new("main.node", 4, &[0, 1]),
        ObjType::new("main.leaf", 2, &[]),
        ObjType::new("main.table", 64, &[0, 8, 16, 24, 32, 40, 48, 56]),
    ]
}

/// [`types`]' node.
pub const NODE: TypeId = TypeId(0);
/// [`types`]' leaf.
pub const LEAF: TypeId = TypeId(1);
/// [`types`]' table.
pub const TABLE: TypeId = TypeId(2);

/// A seeded program of `funcs` functions with frames of `min_frame..=max_frame` bytes
/// (log-uniform) whose words are pointer slots with probability 30–70 %.
pub fn program(seed: u64, funcs: usize, min_frame: usize, max_frame: usize) -> Program {
    Program::random(
        seed,
        &RandomProgram {
            funcs,
            min_frame_size: min_frame,
            max_frame_size: max_frame,
            min_ptr_density: 0.3,
            max_ptr_density: 0.7,
            call_sites: 4,
        },
    )
    .expect("the workload's program spec is valid")
}

/// A random user function of `prog`.
pub fn random_func(prog_funcs: &[FuncId], rng: &mut Rng) -> FuncId {
    prog_funcs[rng.random_range(0..prog_funcs.len())]
}

/// Globals per goroutine (its roots), plus [`SHARED_GLOBALS`] shared by all.
pub const GLOBALS_PER_G: usize = 2;
/// Globals every goroutine may use.
pub const SHARED_GLOBALS: usize = 8;

/// The number of globals for `goroutines` goroutines.
pub fn globals(goroutines: usize) -> usize {
    goroutines * GLOBALS_PER_G + SHARED_GLOBALS
}

/// A call to a random function.
pub fn call(funcs: &[FuncId], rng: &mut Rng) -> Op {
    Op::Call {
        func: random_func(funcs, rng),
        site: rng.random_range(0..4),
    }
}

/// The heap operations a goroutine mixes into its work, including the hiding pattern (load a heap
/// pointer into a local, then delete it from the heap) and stores through `&local` into outer
/// frames.
#[derive(Clone, Debug)]
pub struct HeapMix {
    own_global: u32,
    nglobals: u32,
    queue: VecDeque<Op>,
    /// Percent of heap operations that start a hiding sequence.
    pub hide_percent: u32,
}

fn slot(rng: &mut Rng) -> u8 {
    rng.random_range(0..8)
}

impl HeapMix {
    /// The mix for goroutine number `id` of `goroutines`.
    pub fn new(id: usize, goroutines: usize) -> HeapMix {
        HeapMix {
            own_global: (id * GLOBALS_PER_G) as u32,
            nglobals: globals(goroutines) as u32,
            queue: VecDeque::new(),
            hide_percent: 8,
        }
    }

    /// The next queued operation of a sequence in progress. Nothing while the goroutine has no
    /// frame: [`HeapMix::init`]'s sequence waits for the first one.
    pub fn pending(&mut self, ctx: &Ctx) -> Option<Op> {
        if ctx.depth == 0 {
            return None;
        }
        self.queue.pop_front()
    }

    /// Queues the start of the goroutine's life: a root object in its global, made in the
    /// goroutine's first frame (a goroutine starts with none, and a local needs a frame).
    pub fn init(&mut self) {
        self.queue.extend([
            Op::Alloc { ty: NODE, dst: 0 },
            Op::StoreGlobal {
                global: self.own_global,
                src: Some(0),
            },
        ]);
    }

    fn global(&self, rng: &mut Rng) -> u32 {
        if rng.random_bool(0.8) {
            self.own_global + rng.random_range(0..GLOBALS_PER_G as u32)
        } else {
            rng.random_range(0..self.nglobals)
        }
    }

    /// A hiding sequence: `dst = obj.field; obj.field = nil`.
    pub fn hide(&mut self, rng: &mut Rng) -> Op {
        let obj = slot(rng);
        let dst = (obj + 1 + rng.random_range(0..7)) % 8;
        let field = rng.random_range(0..2);
        self.queue.push_back(Op::StoreField {
            obj,
            field,
            src: None,
        });
        Op::LoadField { obj, field, dst }
    }

    /// A store into an outer frame through `&local`: take the address of a slot `1..=max_up`
    /// frames up, then store a local through it, either with a write barrier or as a runtime
    /// bulk write (a channel receive).
    pub fn up_store(&mut self, rng: &mut Rng, depth: usize, max_up: usize) -> Option<Op> {
        if depth < 2 {
            return None;
        }
        let up = rng.random_range(1..=max_up.min(depth - 1)) as u16;
        let ptr = slot(rng);
        let src = (ptr + 1 + rng.random_range(0..7)) % 8;
        self.queue.push_back(if rng.random_bool(0.5) {
            Op::StoreThrough {
                ptr,
                src: Some(src),
            }
        } else {
            Op::BulkWrite { ptr, src }
        });
        Some(Op::TakeAddr {
            up,
            slot: slot(rng),
            dst: ptr,
        })
    }

    /// One heap operation (or the start of a sequence).
    pub fn next(&mut self, rng: &mut Rng) -> Op {
        if let Some(op) = self.queue.pop_front() {
            return op;
        }
        let (a, b, c) = (slot(rng), slot(rng), slot(rng));
        let field = rng.random_range(0..2);
        let roll = rng.random_range(0..100);
        if roll < self.hide_percent {
            return self.hide(rng);
        }
        match roll {
            0..22 => Op::Alloc { ty: NODE, dst: a },
            22..36 => Op::StoreField {
                obj: a,
                field,
                src: Some(b),
            },
            36..52 => Op::LoadField {
                obj: a,
                field,
                dst: c,
            },
            52..60 => Op::LoadGlobal {
                global: self.global(rng),
                dst: a,
            },
            60..64 => Op::StoreGlobal {
                global: self.global(rng),
                src: Some(a),
            },
            64..74 => Op::Copy { src: a, dst: b },
            74..78 => Op::Clear { dst: a },
            78..84 => Op::Alloc { ty: LEAF, dst: a },
            84..86 => Op::Alloc { ty: TABLE, dst: a },
            _ => Op::StoreField {
                obj: a,
                field,
                src: None,
            },
        }
    }
}

/// The defaults of a CPU-bound workload: its goroutines never block (`block_every` 0) and the
/// network poller wakes nothing (`wakes_per_ms` 0). `running` and `burst` apply only to
/// `many-shallow`'s servers: 0 here, and ignored.
pub const CPU_BOUND: Blocking = Blocking {
    block_every: Some(0),
    wakes_per_ms: Some(0.0),
    running: Some(0),
    burst: Some(0),
};

/// `params` with every field of its blocking set: the caller's where set, `defaults` (the
/// workload's [`super::Workload::blocking`]) elsewhere. Every `build` starts with this, since
/// tests and benches pass [`Blocking::UNSET`].
pub fn resolve(params: &WorkloadParams, defaults: Blocking) -> WorkloadParams {
    WorkloadParams {
        blocking: params.blocking.or(defaults),
        ..*params
    }
}

/// Where a CPU-bound goroutine blocks in its steady state: with probability `1/block_every` per
/// operation it receives from a channel ([`Op::Block`]) and waits for the network poller (the
/// workload's `wakes_per_ms`) to wake it; with `block_every` 0, never. A behaviour asks once per
/// steady-state operation it chooses, after it has drained any sequence in progress
/// ([`HeapMix::pending`]), so a goroutine never blocks inside one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocker {
    every: u32,
}

impl Blocker {
    /// The blocker for `blocking`'s `block_every` (unset: never).
    pub fn new(blocking: &Blocking) -> Blocker {
        Blocker {
            every: blocking.block_every.unwrap_or(0),
        }
    }

    /// [`Op::Block`] with probability `1/block_every`, else nothing. It draws from `rng` only when
    /// `block_every > 0`, so a workload that never blocks makes the same program as before it
    /// asked.
    pub fn poll(&self, rng: &mut Rng) -> Option<Op> {
        (self.every > 0 && rng.random_ratio(1, self.every)).then_some(Op::Block)
    }
}

/// A workload image: a seeded program of `funcs` functions with frames of `min_frame..=max_frame`
/// bytes, the shared types and globals, goroutine `id`'s behaviour from `behaviour(id, funcs)`,
/// and the poller's wake rate from `params` (which must be [`resolve`]d).
pub fn image(
    params: &WorkloadParams,
    (funcs, min_frame, max_frame): (usize, usize, usize),
    mut behaviour: impl FnMut(usize, Arc<[FuncId]>) -> Box<dyn Behaviour>,
) -> WorkloadImage {
    let program = program(params.seed, funcs, min_frame, max_frame);
    let funcs: Arc<[FuncId]> = program.user_funcs().collect();
    let goroutines = (0..params.goroutines)
        .map(|id| behaviour(id, Arc::clone(&funcs)))
        .collect();
    WorkloadImage {
        program,
        types: types(),
        globals: globals(params.goroutines),
        goroutines,
        wakes_per_ms: params
            .blocking
            .wakes_per_ms
            .expect("a workload resolves its blocking before it builds its image"),
    }
}

/// Helpers for the workloads' unit tests: a behaviour run alone, as the interpreter would run it.
#[cfg(test)]
pub mod testing {
    use gc::{Behaviour, Ctx, Op, Rng};
    use rand::SeedableRng;

    use super::super::{Blocking, WorkloadParams};

    /// One operation a behaviour chose, and the depth it chose it at.
    #[derive(Clone, Copy, Debug)]
    pub struct Step {
        /// The operation.
        pub op: Op,
        /// Frames on the stack when it was chosen.
        pub depth: usize,
    }

    /// Runs `b` alone for up to `ops` operations against a shadow depth: a call pushes a frame, a
    /// return pops one, an unwind pops its frames but never the outermost (as the interpreter
    /// does), a block or a yield returns at once (as if woken or rescheduled
    /// straight away). Stops early when the goroutine ends (an exit, or a return from its
    /// outermost frame).
    pub fn run_alone(b: &mut dyn Behaviour, seed: u64, ops: usize) -> Vec<Step> {
        let mut rng = Rng::seed_from_u64(seed);
        let mut depth = 0;
        let mut steps = Vec::with_capacity(ops);
        for _ in 0..ops {
            let op = b.next_op(&Ctx { depth }, &mut rng);
            steps.push(Step { op, depth });
            match op {
                Op::Call { .. } => depth += 1,
                Op::Ret if depth <= 1 => break,
                Op::Ret => depth -= 1,
                Op::Unwind { frames } => depth -= usize::from(frames).min(depth.saturating_sub(1)),
                Op::Exit => break,
                _ => {}
            }
        }
        steps
    }

    /// `params` with its goroutines asked to block every `every` operations on average, woken
    /// at 1 per ms (`--block-every`, `--wake-rate`).
    pub fn blocking_every(params: WorkloadParams, every: u32) -> WorkloadParams {
        WorkloadParams {
            blocking: Blocking {
                block_every: Some(every),
                wakes_per_ms: Some(1.0),
                ..Blocking::UNSET
            },
            ..params
        }
    }

    /// The positions of `op` in `steps`.
    pub fn positions(steps: &[Step], op: Op) -> Vec<usize> {
        (0..steps.len()).filter(|&i| steps[i].op == op).collect()
    }

    /// Checks a CPU-bound behaviour made by `make` from `params`: with the workload's defaults it
    /// never blocks and yields exactly once, at `built_depth` frames, when its stack is first
    /// built; with `block_every` 50 it still yields once there, never blocks before it, and blocks
    /// at about one in 50 of its steady-state operations.
    pub fn check_cpu_bound(
        make: impl Fn(&WorkloadParams) -> Box<dyn Behaviour>,
        params: WorkloadParams,
        built_depth: usize,
    ) {
        const OPS: usize = 60_000;
        for seed in 0..3 {
            let steps = run_alone(&mut *make(&params), seed, OPS);
            assert_eq!(steps.len(), OPS, "seed {seed}: the goroutine ended");
            assert_eq!(
                positions(&steps, Op::Block),
                Vec::<usize>::new(),
                "seed {seed}: blocks"
            );
            let yields = positions(&steps, Op::Yield);
            assert_eq!(yields.len(), 1, "seed {seed}: yields {yields:?}");
            let first_built = steps.iter().position(|s| s.depth == built_depth);
            assert_eq!(
                first_built,
                Some(yields[0]),
                "seed {seed}: the yield comes right after the first build (at {built_depth} frames)"
            );
            assert!(
                steps[..yields[0]].iter().all(|s| s.depth < built_depth),
                "seed {seed}"
            );

            let blocking = blocking_every(params, 50);
            let steps = run_alone(&mut *make(&blocking), seed, OPS);
            let yields = positions(&steps, Op::Yield);
            assert_eq!(yields.len(), 1, "seed {seed}, block_every 50: {yields:?}");
            let blocks = positions(&steps, Op::Block);
            assert!(blocks.iter().all(|&i| i > yields[0]), "seed {seed}");
            // Some of the steady state's operations finish a sequence and never block: up to a
            // quarter of an adversarial goroutine's.
            let steady = (OPS - yields[0] - 1) as f64;
            let rate = blocks.len() as f64 / steady;
            assert!(
                (0.6 / 50.0..1.2 / 50.0).contains(&rate),
                "seed {seed}: blocks at {rate} of {steady} steady-state operations"
            );
        }
    }
}
