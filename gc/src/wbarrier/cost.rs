//! `wbarrier::cost`: what one barriered store costs, measured at run time.
//!
//! What it measures: the nanoseconds one call of [`Runtime::write_barrier`] takes on this machine,
//! for one design, either outside a cycle (`marking = false`: the barrier's check that it is off,
//! nothing more) or during a cycle's concurrent mark (`marking = true`). The store bed is a bare
//! runtime — no goroutines, one P — holding [`StoreBed::OBJECTS`] 32-byte nodes; with a cycle in
//! progress every node has already been shaded and drained, so each barriered store finds its
//! object (`find_object`) and test-and-sets a mark bit that is already set: the common case in a
//! long mark, where most values a program stores are already black. The stores visit the nodes
//! out of address order (stride 421), old and new values different nodes. The figure is the
//! least of a few timed repetitions (after one untimed warm-up pass) divided by the stores per
//! repetition: the cost without interference, not an average under load.
//!
//! Caveats. It is the barrier alone: the store itself, the interpreter around it, greying a white
//! object (the work-buffer push), and a cache-cold heap are not in it, so it is a lower bound on
//! what a barriered store adds to a mutator. It is wall-clock time on one thread: frequency
//! scaling, other load and the timer's resolution move it; compare figures taken in one process
//! on one machine. The criterion bench `write_barrier/*` (`gc/benches/gc.rs`) times the same bed
//! (this module's [`StoreBed`]) with criterion's statistics; use it for the figures of record and
//! this probe where a binary needs the number at run time.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use stacks::Program;

use crate::RuntimeError;
use crate::heap::{Lookup, ObjType, TypeId};
use crate::mark::MarkProgress;
use crate::mgc::Phase;
use crate::runtime::{GcConfig, Runtime, WorkloadImage};
use crate::sched::P;
use crate::wbarrier::BarrierDesign;
use crate::workbuf::GcWork;

/// The bare runtime's one type: a 32-byte `node`, pointer fields at words 0 and 1.
pub const NODE: TypeId = TypeId(0);

/// Repetitions [`measure_ns_per_store`] times, keeping the least.
pub const REPETITIONS: usize = 5;

/// GC off under `design`: no GOGC trigger, no forced cycles, one P, and an 8 GiB heap limit,
/// since nothing is freed. Cycles start only by hand (or by an engine's request).
pub fn gc_off_config(design: &'static dyn BarrierDesign) -> GcConfig {
    GcConfig {
        design,
        gogc: None,
        procs: 1,
        force_gc_ops: None,
        heap_max: 8 << 30,
        ..GcConfig::default()
    }
}

/// A runtime with no goroutines and one P (`p`), `globals` global words, one type ([`NODE`]),
/// no user functions, and [`gc_off_config`] under `design`. The mark benches use it too.
pub fn bare_runtime(
    design: &'static dyn BarrierDesign,
    globals: usize,
    p: &mut P,
) -> Result<Runtime, RuntimeError> {
    let config = gc_off_config(design);
    let image = WorkloadImage {
        wakes_per_ms: 0.0,
        program: Program::builder()
            .build()
            .expect("a program of runtime functions only is valid"),
        types: vec![ObjType::new("node", 4, &[0, 1])],
        globals,
        goroutines: Vec::new(),
    };
    Runtime::new(config, image, std::slice::from_mut(p))
}

/// Fills `rt` (a [`bare_runtime`] with at least one global) with a heap to mark: `nodes` nodes,
/// all reachable from global 0 along a path through their field 0 in a shuffled order, and field
/// 1 of each pointing at a node drawn at random (xorshift from `seed`, so every build of the
/// same size is the same graph). The mark benches' heap and the drain tests'.
pub fn random_graph(rt: &Runtime, p: &mut P, nodes: usize, seed: u64) -> Result<(), RuntimeError> {
    let objs = (0..nodes)
        .map(|_| Ok(rt.heap.alloc(&mut p.mcache, NODE, false, |_, _| {})?.0))
        .collect::<Result<Vec<u64>, RuntimeError>>()?;
    let mut x = seed | 1;
    let mut below = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut order: Vec<usize> = (0..nodes).collect();
    for i in (1..nodes).rev() {
        order.swap(i, below(i + 1));
    }
    for k in 0..nodes {
        let Lookup::Object(o) = rt.heap.find_object(objs[order[k]]) else {
            unreachable!("just allocated");
        };
        if k + 1 < nodes {
            rt.heap.write_word(o, 0, objs[order[k + 1]]);
        }
        rt.heap.write_word(o, 1, objs[below(nodes)]);
    }
    if let Some(&first) = order.first() {
        rt.globals.write(0, objs[first]);
    }
    Ok(())
}

/// Marks `rt`'s cycle on `workers` threads, each with its own `GcWork` taking root jobs and
/// draining in 16 KiB steps (`Runtime::mark_work`), until every worker has found nothing and no
/// full buffer is left: a worker that finds nothing disposes its buffer and waits until another
/// publishes a full one, or until none is looking. The parallel mark bench's workers, and the
/// tests'.
pub fn mark_with_workers(rt: &Runtime, workers: usize) -> Result<(), RuntimeError> {
    let looking = AtomicUsize::new(workers);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<(), RuntimeError> {
                    let mut gcw = GcWork::new();
                    loop {
                        if rt.mark_work(&mut gcw, 16 << 10, None)? != MarkProgress::Done {
                            continue;
                        }
                        gcw.dispose(&rt.gc.pool);
                        looking.fetch_sub(1, Ordering::AcqRel);
                        loop {
                            if rt.gc.pool.has_full() {
                                looking.fetch_add(1, Ordering::AcqRel);
                                break;
                            }
                            if looking.load(Ordering::Acquire) == 0 && !rt.gc.pool.has_full() {
                                return Ok(());
                            }
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("a mark worker panicked"))
    })
}

/// What the timed stores write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreValues {
    /// Heap nodes (old and new value both), already marked when a cycle is in progress.
    Objects,
    /// Nil, old and new: the barrier's cheapest path while on.
    Nil,
}

/// A bare runtime, its P and the values a pass of barriered stores writes, with a cycle in mark
/// or not.
#[derive(Debug)]
pub struct StoreBed {
    rt: Runtime,
    p: P,
    vals: Box<[u64]>,
}

impl StoreBed {
    /// Nodes in the bed, and stores per [`StoreBed::stores`] pass.
    pub const OBJECTS: usize = 1024;

    /// A bed for `design`: [`StoreBed::OBJECTS`] nodes, and, when `marking`, a cycle started
    /// (the P stopped, `gc_start`) with every node shaded and the grey queue drained, so the
    /// barrier is on and every store finds its objects marked.
    pub fn new(
        design: &'static dyn BarrierDesign,
        marking: bool,
        values: StoreValues,
    ) -> Result<StoreBed, RuntimeError> {
        const N: usize = StoreBed::OBJECTS;
        let mut p = P::new(0);
        let rt = bare_runtime(design, 0, &mut p)?;
        let objs = (0..N)
            .map(|_| Ok(rt.heap.alloc(&mut p.mcache, NODE, false, |_, _| {})?.0))
            .collect::<Result<Vec<u64>, RuntimeError>>()?;
        if marking {
            let mut worker = GcWork::new();
            rt.stop_p(&mut p);
            rt.gc_start(&mut worker, &mut p)?;
            for &o in &objs {
                rt.shade(o, &mut worker, "a store bed's node")?;
            }
            rt.drain(&mut worker, u64::MAX)?;
            worker.dispose(&rt.gc.pool);
            debug_assert_eq!(rt.gc.phase(), Phase::Mark);
        }
        // Out of address order: 421 is prime to N, so i·421 mod N visits every node once.
        let vals = (0..N)
            .map(|i| match values {
                StoreValues::Objects => objs[i * 421 % N],
                StoreValues::Nil => 0,
            })
            .collect();
        Ok(StoreBed { rt, p, vals })
    }

    /// One pass: [`StoreBed::OBJECTS`] barriered stores, store `i` overwriting value `i` with
    /// value `i + 1`.
    #[inline]
    pub fn stores(&mut self) -> Result<(), RuntimeError> {
        const N: usize = StoreBed::OBJECTS;
        let vals = black_box(&self.vals[..]);
        for i in 0..N {
            // `% N` of a constant power of two is a mask, not a division in the timed loop.
            self.rt
                .write_barrier(&mut self.p, vals[i], vals[(i + 1) % N])?;
        }
        Ok(())
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The P the stores run on (its work buffer holds whatever they greyed).
    pub fn p(&self) -> &P {
        &self.p
    }
}

/// Nanoseconds per barriered store of `design` with a cycle in mark (`marking`) or none, timing
/// at least `stores` stores (whole passes of [`StoreBed::OBJECTS`]) in each of [`REPETITIONS`]
/// repetitions and keeping the least. See the module header for what the figure includes.
pub fn measure_ns_per_store(
    design: &'static dyn BarrierDesign,
    marking: bool,
    stores: usize,
) -> Result<f64, RuntimeError> {
    let mut bed = StoreBed::new(design, marking, StoreValues::Objects)?;
    let passes = stores.div_ceil(StoreBed::OBJECTS).max(1);
    bed.stores()?;
    let mut best = u128::MAX;
    for _ in 0..REPETITIONS {
        let t0 = Instant::now();
        for _ in 0..passes {
            bed.stores()?;
        }
        best = best.min(t0.elapsed().as_nanos());
    }
    Ok(best as f64 / (passes * StoreBed::OBJECTS) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark::MarkProgress;
    use crate::wbarrier::DESIGNS;

    #[test]
    fn every_design_gives_a_finite_positive_cost() {
        for design in DESIGNS.iter().copied() {
            for marking in [false, true] {
                let ns = measure_ns_per_store(design, marking, 20_000).unwrap();
                assert!(
                    ns.is_finite() && ns > 0.0,
                    "{} {marking}: {ns}",
                    design.name()
                );
            }
        }
    }

    /// After a run of stores the bed is as it was set up: nothing greyed, every node marked once,
    /// every store counted, and the cycle finishes cleanly with exactly the nodes live.
    #[test]
    fn stores_leave_the_runtime_consistent() {
        for design in DESIGNS.iter().copied() {
            for values in [StoreValues::Objects, StoreValues::Nil] {
                let what = format!("{} {values:?}", design.name());
                let mut bed = StoreBed::new(design, true, values).unwrap();
                for _ in 0..3 {
                    bed.stores().unwrap();
                }
                assert!(
                    bed.p.gcw.is_empty(),
                    "{what}: every value was already marked"
                );
                assert_eq!(
                    bed.p.counters.wb_calls,
                    3 * StoreBed::OBJECTS as u64,
                    "{what}"
                );
                assert_eq!(bed.rt.gc.phase(), Phase::Mark, "{what}");
                let node_bytes = 32 * StoreBed::OBJECTS as u64;
                assert_eq!(bed.rt.gc.pool.bytes_marked(), node_bytes, "{what}");
                assert_eq!(bed.p.gcw.bytes_marked(), 0, "{what}: nothing newly marked");
                // Finish the cycle as an engine does: the root jobs (globals; no stacks), then
                // mark termination.
                let mut worker = GcWork::new();
                while bed.rt.mark_step(&mut worker).unwrap() != MarkProgress::Done {}
                worker.dispose(&bed.rt.gc.pool);
                bed.rt.stop_p(&mut bed.p);
                assert!(bed.rt.mark_complete(), "{what}");
                let stats = bed.rt.mark_termination(&mut worker, 0).unwrap();
                assert_eq!(stats.heap_live_bytes, node_bytes, "{what}");
                assert_eq!(stats.wb_calls, 3 * StoreBed::OBJECTS as u64, "{what}");
                assert_eq!(bed.rt.gc.phase(), Phase::Sweep, "{what}");
            }
        }
    }

    #[test]
    fn outside_a_cycle_the_barrier_does_nothing() {
        let mut bed = StoreBed::new(DESIGNS[0], false, StoreValues::Objects).unwrap();
        bed.stores().unwrap();
        assert_eq!(bed.rt.gc.phase(), Phase::Off);
        assert_eq!(bed.p.counters.wb_calls, 0);
        assert_eq!(bed.rt.gc.pool.bytes_marked() + bed.rt.heap.black_bytes(), 0);
    }
}
