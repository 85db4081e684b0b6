//! Benchmarks of the collector's hot paths, with the ARCHITECTURE.md §6 targets they answer to:
//! * `mutator/gc_off/*` — the mutator interpreter with GC off, one goroutine on one P, ops per
//!   second (target ≥ 80 M ops/s per thread). `stack_ops/*` runs calls and returns oscillating
//!   within three frames plus local copies and clears; `heap_ops/*` mixes in global loads, heap
//!   loads and stores (`LoadField`/`StoreField`) and an occasional `Alloc`. Each runs under the
//!   deterministic engine (`…/engine`, `Deterministic::run_ops`: the engine's schedule draw per
//!   operation included), by calling `Runtime::mutator_step` once per operation
//!   (`…/mutator_step`: the goroutine is looked up and put back each time), and by one
//!   `Runtime::mutator_run` of 10,000 operations (`…/mutator_run`: the interpreter loop a P's
//!   thread runs, polling for a scan request at every operation boundary);
//! * `write_barrier/*` — one barriered store (`Runtime::write_barrier`), ns each: `off` outside a
//!   cycle, then each design (`dijkstra`, `hybrid`, `yuasa`) during a cycle's mark with old and new
//!   values that are heap objects already marked (the common case: `find_object` and a
//!   test-and-set that finds the bit set), and with nil values (`*_nil`). The bed is
//!   `gc::wbarrier::cost::StoreBed`, the one the run-time probe `measure_ns_per_store` times.
//!   ARCHITECTURE.md §6 sets no target; the barrier install / hit targets (≤ 10 ns / ≤ 5 ns) are the scale
//!   it should match;
//! * `mark/heap_MB_per_s/*` — mark throughput over a 50,000-object random graph of 32-byte `node`s
//!   (two pointer fields) reachable from one global, bytes marked per second, one fresh cycle per
//!   iteration: `mark_step` loops `Runtime::mark_step` (roots, then drains of `mark_step_bytes`,
//!   one object by default) until done, as the engines do; `drain` times one unbounded
//!   `Runtime::drain` after the root step. ARCHITECTURE.md §6 sets no target; the stack scan's ≥ 4 GB/s is
//!   the figure to compare with;
//! * `mark/parallel_MB_per_s/N` — concurrent mark throughput with `N` mark workers on `N` threads
//!   (each with its own `GcWork`, sharing the global full/empty work-buffer lists), over a
//!   1,000,000-object random graph (32 MB, beyond the per-core caches, so a marker that waited
//!   for each grey object in turn would run at memory latency), one fresh cycle per iteration:
//!   the mark machinery itself. ARCHITECTURE.md §6's targets: one worker ≥ 160 MiB/s, two
//!   workers ≥ 1.7× one on a quiet 2-core machine (measure scaling with nothing else running).
//!   `N` runs over 1, 2, 4, … up to the machine's CPUs, or the list in `STKBAR_MARK_WORKERS`
//!   (comma-separated), so the same binary can be carried to a larger machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gc::heap::Lookup;
use gc::mark::MarkProgress;
use gc::sched::P;
use gc::wbarrier::cost::{
    StoreBed, StoreValues, bare_runtime, gc_off_config, mark_with_workers, random_graph,
};
use gc::wbarrier::{BarrierDesign, Dijkstra, Hybrid, Yuasa};
use gc::workbuf::GcWork;
use gc::{
    Behaviour, Ctx, Deterministic, GcConfig, ObjType, Op, Phase, Rng, Runtime, Step, TypeId,
    WorkloadImage,
};
use stacks::{FuncId, Program};

/// Mutator operations per benchmark iteration.
const OPS: u64 = 10_000;

/// The `node` type: 4 words, pointer fields 0 and 1 (in [`types`] and in the type list of
/// `gc::wbarrier::cost::bare_runtime`, the mark benches' runtime).
const NODE: TypeId = TypeId(0);

/// Four functions of assorted frame sizes and pointer slots.
fn program() -> Program {
    Program::builder()
        .func_with_pointers("bench.a", 64, &[0, 1, 2, 3])
        .func_with_pointers("bench.b", 32, &[0, 2])
        .func_with_pointers("bench.c", 128, &[0, 1, 3, 5, 8, 11])
        .func_with_pointers("bench.d", 48, &[1, 2, 4])
        .build()
        .unwrap()
}

fn types() -> Vec<ObjType> {
    vec![ObjType::new("node", 4, &[0, 1])]
}

/// GC off: no GOGC trigger, no forced cycles, one P (the probe's configuration).
fn gc_off() -> GcConfig {
    gc_off_config(&Dijkstra)
}

/// A goroutine that runs `prefix` once, then `body` forever: no random draws.
#[derive(Debug)]
struct Script {
    ops: Box<[Op]>,
    loop_start: usize,
    next: usize,
}

impl Script {
    fn new(prefix: Vec<Op>, body: Vec<Op>) -> Script {
        let loop_start = prefix.len();
        let mut ops = prefix;
        ops.extend(body);
        Script {
            ops: ops.into(),
            loop_start,
            next: 0,
        }
    }
}

impl Behaviour for Script {
    #[inline]
    fn next_op(&mut self, _: &Ctx, _: &mut Rng) -> Op {
        let op = self.ops[self.next];
        self.next += 1;
        if self.next == self.ops.len() {
            self.next = self.loop_start;
        }
        op
    }
}

fn call(f: FuncId, site: u8) -> Op {
    Op::Call { func: f, site }
}
fn copy(src: u8, dst: u8) -> Op {
    Op::Copy { src, dst }
}
fn clear(dst: u8) -> Op {
    Op::Clear { dst }
}
fn load_field(obj: u8, field: u8, dst: u8) -> Op {
    Op::LoadField { obj, field, dst }
}
fn store_field(obj: u8, field: u8, src: u8) -> Op {
    Op::StoreField {
        obj,
        field,
        src: Some(src),
    }
}
fn load_global(global: u32, dst: u8) -> Op {
    Op::LoadGlobal { global, dst }
}

/// Calls and returns within three frames of the outermost one, and local copies and clears:
/// 4 calls, 4 returns and 10 local operations per round.
fn stack_ops(prog: &Program) -> Script {
    let f = |i| prog.user_func(i).unwrap();
    let (a, b, c, d) = (f(0), f(1), f(2), f(3));
    Script::new(
        vec![call(a, 0)],
        vec![
            call(b, 0),
            copy(0, 1),
            clear(1),
            call(c, 1),
            copy(1, 2),
            copy(0, 3),
            Op::Ret,
            copy(1, 0),
            call(d, 2),
            call(a, 3),
            clear(2),
            copy(3, 1),
            Op::Ret,
            Op::Ret,
            clear(0),
            Op::Ret,
            copy(2, 3),
            clear(1),
        ],
    )
}

/// Two objects A and B in globals 0 and 1 (and the outermost frame's slots 0 and 1); each round
/// of 18 operations calls two frames down, loads the objects through the globals and each other,
/// stores them into each other's fields and returns; one round in four also allocates a node and
/// links it to A. Per 74 operations: 16 calls and returns, 24 local copies and clears, 8 global
/// loads, 16 field loads, 9 field stores, 1 allocation.
fn heap_ops(prog: &Program) -> Script {
    let f = |i| prog.user_func(i).unwrap();
    let (a, b, c) = (f(0), f(1), f(2));
    let round = |alloc: bool| {
        let mut ops = vec![
            call(b, 0),
            load_global(0, 0),    // b.0 = A
            load_field(0, 0, 1),  // b.1 = A.f0 = B
            store_field(1, 1, 0), // B.f1 = A
            call(c, 1),           //
            load_global(1, 0),    // c.0 = B
            load_field(0, 1, 1),  // c.1 = B.f1 = A
            store_field(1, 1, 0), // A.f1 = B
            copy(1, 2),           // c.2 = A
            clear(3),             //
        ];
        if alloc {
            ops.push(Op::Alloc { ty: NODE, dst: 3 }); // c.3 = new node
            ops.push(store_field(3, 0, 2)); // new.f0 = A
        }
        ops.extend([
            Op::Ret,
            copy(0, 1),          // b.1 = A
            load_field(1, 0, 0), // b.0 = A.f0 = B
            Op::Ret,
            copy(0, 2),          // a.2 = A
            load_field(1, 1, 3), // a.3 = B.f1 = A
            clear(2),
            clear(3),
        ]);
        ops
    };
    let mut body = round(true);
    for _ in 0..3 {
        body.extend(round(false));
    }
    Script::new(
        vec![
            call(a, 0),
            Op::Alloc { ty: NODE, dst: 0 }, // a.0 = A
            Op::StoreGlobal {
                global: 0,
                src: Some(0),
            },
            Op::Alloc { ty: NODE, dst: 1 }, // a.1 = B
            store_field(0, 0, 1),           // A.f0 = B
            Op::StoreGlobal {
                global: 1,
                src: Some(1),
            },
        ],
        body,
    )
}

/// A workload's one goroutine, built for its program.
type MakeScript = fn(&Program) -> Script;

fn image(script: MakeScript) -> WorkloadImage {
    let program = program();
    let g = Box::new(script(&program)) as Box<dyn Behaviour>;
    WorkloadImage {
        wakes_per_ms: 0.0,
        program,
        types: types(),
        globals: 2,
        goroutines: vec![g],
    }
}

/// Checks the heap workload really reached the heap: B.f1 = A was stored through two loads.
fn check_heap_ops(rt: &Runtime) {
    let (a, b) = (rt.globals.read(0), rt.globals.read(1));
    let Lookup::Object(ob) = rt.heap.find_object(b) else {
        panic!("global 1 holds no object")
    };
    assert_eq!(rt.heap.read_word(ob, 1), a, "B.f1 = A");
    assert!(rt.heap.allocated_objects() > 2, "the workload allocates");
}

fn bench_mutator(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutator/gc_off");
    g.throughput(Throughput::Elements(OPS));
    let workloads: [(&str, MakeScript); 2] = [("stack_ops", stack_ops), ("heap_ops", heap_ops)];
    for (name, script) in workloads {
        let mut engine = Deterministic::new(gc_off(), image(script)).unwrap();
        engine.run_ops(100_000).unwrap();
        assert_eq!(engine.runtime().live_goroutines(), 1);
        assert_eq!(engine.runtime().gc.phase(), Phase::Off);
        if name == "heap_ops" {
            check_heap_ops(engine.runtime());
        }
        g.bench_function(format!("{name}/engine"), |b| {
            b.iter(|| engine.run_ops(black_box(OPS)).unwrap())
        });

        let mut ps = [P::new(0)];
        let rt = Runtime::new(gc_off(), image(script), &mut ps).unwrap();
        let [p] = &mut ps;
        for _ in 0..100_000 {
            assert_eq!(rt.mutator_step(p).unwrap(), Step::Ran);
        }
        if name == "heap_ops" {
            check_heap_ops(&rt);
        }
        g.bench_function(format!("{name}/mutator_step"), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    black_box(rt.mutator_step(p).unwrap());
                }
            })
        });
        g.bench_function(format!("{name}/mutator_run"), |b| {
            b.iter(|| assert_eq!(rt.mutator_run(p, black_box(OPS)).unwrap(), Step::Ran))
        });
    }
    g.finish();
}

fn bench_write_barrier(c: &mut Criterion) {
    const N: usize = StoreBed::OBJECTS;
    let mut g = c.benchmark_group("write_barrier");
    g.throughput(Throughput::Elements(N as u64));
    let designs: [(&str, &'static dyn BarrierDesign, bool, StoreValues); 7] = [
        ("off", &Dijkstra, false, StoreValues::Objects),
        ("dijkstra", &Dijkstra, true, StoreValues::Objects),
        ("hybrid", &Hybrid, true, StoreValues::Objects),
        ("yuasa", &Yuasa, true, StoreValues::Objects),
        ("dijkstra_nil", &Dijkstra, true, StoreValues::Nil),
        ("hybrid_nil", &Hybrid, true, StoreValues::Nil),
        ("yuasa_nil", &Yuasa, true, StoreValues::Nil),
    ];
    for (name, design, marking, values) in designs {
        // The same bed as the run-time probe `gc::wbarrier::cost::measure_ns_per_store`.
        let mut bed = StoreBed::new(design, marking, values).unwrap();
        if marking {
            assert_eq!(bed.runtime().gc.phase(), Phase::Mark);
            assert_eq!(bed.runtime().gc.pool.bytes_marked(), 32 * N as u64);
        }
        g.bench_function(name, |b| b.iter(|| bed.stores().unwrap()));
        assert!(
            bed.p().gcw.is_empty(),
            "every shaded object was already marked"
        );
    }
    g.finish();
}

/// A heap of `NODES` nodes linked into a random graph reachable from global 0.
struct MarkBed {
    rt: Runtime,
    p: P,
    worker: GcWork,
    nodes: usize,
}

const NODES: usize = 50_000;

/// Objects in the parallel mark's heap.
const PARALLEL_NODES: usize = 1_000_000;

impl MarkBed {
    fn new() -> MarkBed {
        MarkBed::with_nodes(NODES)
    }

    fn with_nodes(nodes: usize) -> MarkBed {
        let mut p = P::new(0);
        let rt = bare_runtime(&Dijkstra, 1, &mut p).unwrap();
        random_graph(&rt, &mut p, nodes, 0x2545_f491_4f6c_dd1d).unwrap();
        rt.stop_p(&mut p);
        let mut bed = MarkBed {
            rt,
            p,
            worker: GcWork::new(),
            nodes,
        };
        bed.cycle(false);
        bed
    }

    /// One complete cycle; returns the time spent marking (all of `mark_step` to done, or the
    /// drain after the root step).
    fn cycle(&mut self, drain_only: bool) -> Duration {
        let rt = &self.rt;
        rt.gc_start(&mut self.worker, &mut self.p).unwrap();
        if drain_only {
            assert_eq!(
                rt.mark_step(&mut self.worker).unwrap(),
                MarkProgress::Worked
            );
        }
        let t = Instant::now();
        if drain_only {
            black_box(rt.drain(&mut self.worker, u64::MAX).unwrap());
        } else {
            while rt.mark_step(&mut self.worker).unwrap() != MarkProgress::Done {}
        }
        let elapsed = t.elapsed();
        self.worker.dispose(&rt.gc.pool);
        rt.stop_p(&mut self.p);
        assert!(rt.mark_complete());
        let stats = rt.mark_termination(&mut self.worker, 0).unwrap();
        assert_eq!(stats.heap_live_bytes, (32 * self.nodes) as u64);
        elapsed
    }

    /// One complete cycle marked by `workers` threads; returns the time from the start of
    /// marking until every worker has found nothing left.
    fn parallel_cycle(&mut self, workers: usize) -> Duration {
        let rt = &self.rt;
        rt.gc_start(&mut self.worker, &mut self.p).unwrap();
        let t = Instant::now();
        mark_with_workers(rt, workers).unwrap();
        let elapsed = t.elapsed();
        rt.stop_p(&mut self.p);
        assert!(rt.mark_complete());
        let stats = rt.mark_termination(&mut self.worker, 0).unwrap();
        assert_eq!(stats.heap_live_bytes, (32 * self.nodes) as u64);
        elapsed
    }
}

/// The mark-worker counts to measure: `STKBAR_MARK_WORKERS`, or powers of two up to the CPUs.
fn mark_worker_counts() -> Vec<usize> {
    if let Ok(list) = std::env::var("STKBAR_MARK_WORKERS") {
        return list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("STKBAR_MARK_WORKERS: comma-separated counts")
            })
            .collect();
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut v: Vec<usize> = std::iter::successors(Some(1), |n| Some(n * 2))
        .take_while(|&n| n <= cpus)
        .collect();
    if *v.last().unwrap() != cpus {
        v.push(cpus);
    }
    v
}

fn bench_parallel_mark(c: &mut Criterion) {
    let mut g = c.benchmark_group("mark/parallel_MB_per_s");
    g.throughput(Throughput::Bytes((32 * PARALLEL_NODES) as u64));
    let mut bed = MarkBed::with_nodes(PARALLEL_NODES);
    for workers in mark_worker_counts() {
        g.bench_function(workers.to_string(), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bed.parallel_cycle(workers)).sum())
        });
    }
    g.finish();
}

fn bench_mark(c: &mut Criterion) {
    let mut g = c.benchmark_group("mark/heap_MB_per_s");
    g.throughput(Throughput::Bytes((32 * NODES) as u64));
    let mut bed = MarkBed::new();
    for (name, drain_only) in [("mark_step", false), ("drain", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bed.cycle(drain_only)).sum())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group!(
    name = benches;
    config = config();
    targets = bench_mutator, bench_write_barrier, bench_mark, bench_parallel_mark
);
criterion_main!(benches);
