//! A test-only wrong write barrier — a design that shades nothing — on a real workload: checkmark
//! must catch the objects it loses, and wbshadow, which checks that barriers *run*, not what they
//! shade, must not blame the stores (every one went through the barrier).

use clap::Parser;
use experiments::testbed::{self, TestbedArgs};
use gc::wbarrier::{BarrierDesign, StackPolicy};
use gc::{Deterministic, RuntimeError};

/// Dijkstra's stack policy with a barrier that shades neither value.
#[derive(Debug)]
struct ShadesNothing;

impl BarrierDesign for ShadesNothing {
    fn name(&self) -> &'static str {
        "shades-nothing"
    }
    fn shades_old(&self) -> bool {
        false
    }
    fn shades_new(&self) -> bool {
        false
    }
    fn stack_policy(&self) -> StackPolicy {
        StackPolicy::ConcurrentScanRescan
    }
}

/// `many-shallow`: its server goroutines wake and run throughout the mark phase, so pointer
/// stores into already-marked objects, and the objects they alone keep, come in every cycle.
fn run(seed: u64, knobs: &str) -> Result<(), RuntimeError> {
    let args = TestbedArgs::parse_from([
        "testbed",
        "--workload",
        "many-shallow",
        "--goroutines",
        "64",
        "--depth",
        "10",
        "--cycles",
        "20",
        "--seed",
        &seed.to_string(),
        "--debug",
        knobs,
    ]);
    let mut r = testbed::resolve(&args).unwrap();
    r.config.design = &ShadesNothing;
    Deterministic::new(r.config.clone(), r.workload.build(&r.params))?
        .run(r.cycles, r.max_ops)
        .map(|_| ())
}

#[test]
fn checkmark_catches_a_barrier_that_shades_nothing() {
    let caught = (1..=4)
        .filter(|&seed| match run(seed, "gccheckmark=1") {
            Err(RuntimeError::CheckmarkFailed { failures, .. }) => failures > 0,
            Ok(()) => false,
            Err(e) => panic!("seed {seed}: expected a checkmark failure, got {e}"),
        })
        .count();
    assert!(caught >= 3, "caught in {caught} of 4 seeds");
}

#[test]
fn wbshadow_does_not_blame_stores_that_ran_a_wrong_barrier() {
    // Every store ran the (wrong) barrier, so every shadow is up to date: wbshadow=1 finds
    // nothing. What it misses, checkmark above catches — the two checkers divide the work.
    for seed in 1..=2 {
        match run(seed, "wbshadow=1,invalidptr=0") {
            Ok(()) => {}
            Err(e @ RuntimeError::MissedWriteBarrier { .. }) => panic!("seed {seed}: {e}"),
            // A lost object may be freed and then dereferenced: a use-after-free, not wbshadow.
            Err(RuntimeError::BadPointer { .. }) => {}
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
}
