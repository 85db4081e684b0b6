//! The README's "Adding a workload", step 1, done for real: a complete workload (`sawtooth`: each
//! goroutine climbs to `--depth` frames and falls back to half of it, again and again, mixing in
//! the shared heap operations), written against the same API the registered workloads use, then
//! run through the testbed — `testbed::resolve_with`, the entry `--workload NAME` reaches once the
//! workload is in `workload::WORKLOADS` (step 2) — under every barrier with checkmark on, on both
//! engines. A file like this one, moved to `experiments/src/workload/sawtooth.rs` with its two
//! registry lines, is all a new workload takes.

use std::sync::Arc;

use clap::Parser;
use experiments::testbed::{self, TestbedArgs};
use experiments::workload::common::{self, HeapMix};
use experiments::workload::{Blocking, Workload, WorkloadParams};
use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::FuncId;

/// The workload: its name, one line about it, its image, its deepest stack, its blocking.
#[derive(Debug)]
struct Sawtooth;

impl Workload for Sawtooth {
    fn name(&self) -> &'static str {
        "sawtooth"
    }
    fn about(&self) -> &'static str {
        "climb to depth D, fall back to D/2, again and again"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        // 16 functions of 32 to 256-byte frames; one behaviour per goroutine.
        common::image(params, (16, 32, 256), |id, funcs| {
            Box::new(Climber::new(id, params, funcs))
        })
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth.max(2)
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// One goroutine: climbing or falling, with the heap mix in between.
#[derive(Debug)]
struct Climber {
    funcs: Arc<[FuncId]>,
    depth: usize,
    mix: HeapMix,
    climbing: bool,
}

impl Climber {
    fn new(id: usize, params: &WorkloadParams, funcs: Arc<[FuncId]>) -> Climber {
        let mut mix = HeapMix::new(id, params.goroutines);
        mix.init();
        Climber {
            funcs,
            depth: params.depth.max(2),
            mix,
            climbing: true,
        }
    }
}

impl Behaviour for Climber {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if ctx.depth == 0 {
            return common::call(&self.funcs, rng);
        }
        if rng.random_range(0..100) < 40 {
            return self.mix.next(rng);
        }
        if self.climbing && ctx.depth >= self.depth {
            self.climbing = false;
        } else if !self.climbing && ctx.depth <= self.depth / 2 {
            self.climbing = true;
        }
        if self.climbing {
            common::call(&self.funcs, rng)
        } else {
            Op::Ret
        }
    }
}

fn run(flags: &[&str]) -> testbed::Report {
    let argv = ["testbed", "--workload", "sawtooth", "--goroutines", "8"]
        .iter()
        .chain(flags);
    let args = TestbedArgs::try_parse_from(argv).unwrap();
    let resolved = testbed::resolve_with(&args, Arc::new(Sawtooth)).unwrap();
    testbed::run(&resolved).unwrap()
}

#[test]
fn a_new_workload_runs_under_every_barrier_with_checkmark_on_both_engines() {
    for barrier in [
        &["--barrier", "dijkstra"][..],
        &["--barrier", "dijkstra", "--stack-barriers", "all"],
        &["--barrier", "hybrid"],
        &["--barrier", "hybrid", "--stack-scan", "lazy"],
        &["--barrier", "yuasa"],
    ] {
        for engine in ["deterministic", "threaded"] {
            let flags = [
                barrier,
                &[
                    "--depth",
                    "60",
                    "--cycles",
                    "3",
                    "--engine",
                    engine,
                    "--procs",
                    "2",
                    "--heap-minimum",
                    "131072",
                    "--debug",
                    "gccheckmark=1",
                ],
            ]
            .concat();
            let report = run(&flags);
            assert_eq!(report.config.workload, "sawtooth");
            assert_eq!(report.totals.cycles, 3, "{flags:?}");
            assert_eq!(report.totals.sum.checkmark_failures, 0, "{flags:?}");
            assert!(report.totals.sum.stack_bytes_used > 0, "{flags:?}");
        }
    }
}

#[test]
fn its_counters_are_reproducible_like_every_workloads() {
    let flags = ["--depth", "40", "--cycles", "3", "--seed", "5"];
    let a = run(&flags);
    let b = run(&flags);
    assert_eq!(a.totals.sum.rescan_bytes, b.totals.sum.rescan_bytes);
    assert_eq!(a.totals.sum.barriers_hit, b.totals.sum.barriers_hit);
    assert_eq!(a.totals.mutator_ops, b.totals.mutator_ops);
    assert!(
        a.totals.sum.barriers_installed > 0,
        "stack barriers at the default 1024 bytes"
    );
}
