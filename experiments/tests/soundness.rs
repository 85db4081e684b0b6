//! Soundness across the design space: every workload under every barrier design and stack-barrier
//! setting, on several seeds, with checkmark and stackshadow on — zero missed objects, no frame a
//! re-scan skipped changed since its scan, and on every re-scanned goroutine the re-scan lies
//! between the oracle and the full stack and within ARCHITECTURE.md §4's bound; the content oracle
//! lies below the return-based one.
//! (The converse — a deliberately wrong bound caught by checkmark — is `gc/tests/rescan.rs`,
//! where the hidden object is placed exactly.)

use experiments::workload::{WORKLOADS, WorkloadParams};
use gc::runtime::BarrierRemoval;
use gc::wbarrier::{self, BarrierDesign};
use std::time::Duration;

use gc::{Deterministic, GcConfig, Limits, RunResult, RuntimeError, Threaded};
use stacks::StackBarrierMode;

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn config(design: &'static dyn BarrierDesign, mode: StackBarrierMode, seed: u64) -> GcConfig {
    let mut c = GcConfig {
        design,
        stack_barriers: mode,
        heap_minimum: 48 << 10,
        procs: 3,
        seed,
        record_rescans: true,
        ..GcConfig::default()
    };
    c.debug.gccheckmark = true;
    c.debug.stackshadow = true;
    c
}

fn params(workload: &str, seed: u64) -> WorkloadParams {
    WorkloadParams::new(12, if workload == "many-shallow" { 10 } else { 120 }, seed)
}

/// A run's result and its barrier books outside the reported cycles (see `stkbar_books`).
type Ran = (RunResult, (u64, u64));

fn run(workload: &str, config: GcConfig, cycles: u32) -> Result<Ran, RuntimeError> {
    let w = experiments::workload::workload(workload).unwrap();
    let image = w.build(&params(workload, config.seed));
    let mut e = Deterministic::new(config, image)?;
    let r = e.run(cycles, 50_000_000)?;
    Ok((r, e.runtime().stkbar_books()))
}

fn run_threaded(workload: &str, config: GcConfig, cycles: u32) -> Result<Ran, RuntimeError> {
    let w = experiments::workload::workload(workload).unwrap();
    let image = w.build(&params(workload, config.seed));
    let limits = Limits {
        max_ops: 2_000_000_000,
        time_limit: Duration::from_secs(60),
    };
    let mut e = Threaded::new(config, image)?;
    let r = e.run(cycles, limits)?;
    Ok((r, e.runtime().stkbar_books()))
}

/// Every design, the stack-barrier ones under both removal modes.
fn designs() -> Vec<(&'static dyn BarrierDesign, StackBarrierMode, BarrierRemoval)> {
    let d = wbarrier::design("dijkstra").unwrap();
    let mut v = Vec::new();
    for removal in [BarrierRemoval::AfterRestart, BarrierRemoval::InPause] {
        v.extend([
            (d, StackBarrierMode::GO, removal),
            (d, StackBarrierMode::On { first_offset: 256 }, removal),
            (d, StackBarrierMode::EVERY_FRAME, removal),
        ]);
    }
    v.extend([
        (d, StackBarrierMode::Off, BarrierRemoval::AfterRestart),
        (
            wbarrier::design("hybrid").unwrap(),
            StackBarrierMode::Off,
            BarrierRemoval::AfterRestart,
        ),
        (
            wbarrier::design("yuasa").unwrap(),
            StackBarrierMode::Off,
            BarrierRemoval::AfterRestart,
        ),
    ]);
    v
}

/// The checks every run must pass, whatever the engine.
fn check_sound(
    what: &str,
    design: &dyn BarrierDesign,
    mode: StackBarrierMode,
    removal: BarrierRemoval,
    (r, (on_stacks, ended)): &Ran,
) {
    let s = &r.totals.sum;
    assert_eq!(
        s.barriers_installed,
        s.barriers_hit + s.barriers_removed + ended + on_stacks,
        "{what}: every barrier is hit or removed, or still on a stack at the end"
    );
    for c in &r.cycles {
        assert_eq!(c.checkmark_failures, 0, "{what}");
        assert_eq!(c.skipped_frames_changed, 0, "{what}");
        assert!(
            c.content_rescan_bytes <= c.oracle_rescan_bytes,
            "{what}: {c:?}"
        );
        assert!(c.oracle_rescan_bytes <= c.rescan_bytes, "{what}: {c:?}");
        assert!(c.rescan_bytes <= c.full_rescan_bytes, "{what}: {c:?}");
        if removal == BarrierRemoval::InPause {
            assert_eq!(
                c.barriers_installed,
                c.barriers_hit + c.barriers_removed,
                "{what}: in-pause removal balances every cycle"
            );
            assert_eq!(c.removal_skipped, 0, "{what}");
        }
        if design.name() != "dijkstra" {
            assert_eq!((c.rescan_bytes, c.barriers_installed), (0, 0), "{what}");
            assert_eq!(c.stackshadow_frames_verified, 0, "{what}: nothing re-scans");
        }
        if mode == StackBarrierMode::Off {
            assert_eq!(c.rescan_bytes, c.full_rescan_bytes, "{what}");
        }
    }
    if removal == BarrierRemoval::InPause {
        assert_eq!((*on_stacks, *ended), (0, 0), "{what}");
    }
    let first_offset = mode.first_offset().unwrap_or(0);
    for rec in &r.rescans {
        assert!(
            rec.oracle_bytes <= rec.rescan_bytes && rec.rescan_bytes <= rec.used,
            "{what}: {rec:?}"
        );
        assert!(rec.within_bound(first_offset), "{what}: {rec:?}");
    }
    let b = r.rescan_bound;
    let bounded = r.rescans.iter().filter(|rec| rec.bounded).count() as u64;
    assert_eq!((b.bounded_rescans, b.outside_bound), (bounded, 0), "{what}");
    assert!(b.max_reach_ratio <= 2.0, "{what}: {b:?}");
}

#[test]
fn every_workload_design_and_seed_marks_everything_reachable() {
    for w in WORKLOADS {
        for (design, mode, removal) in designs() {
            for seed in SEEDS {
                let what = format!(
                    "{} {} {mode} {removal} seed {seed}",
                    w.name(),
                    design.name()
                );
                let c = GcConfig {
                    barrier_removal: removal,
                    ..config(design, mode, seed)
                };
                let r = run(w.name(), c, 3).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(r.0.cycles.len(), 3, "{what}");
                check_sound(&what, design, mode, removal, &r);
            }
        }
    }
}

/// The same matrix on real threads, where a marker and a goroutine race for a stack, barriers
/// are hit while other stacks are being scanned, and the world stops for real: for `mixed` and
/// `adversarial` (the workloads that hide objects on stacks), at 2 Ps and at 8 (more Ps than
/// this machine has cores).
#[test]
fn on_real_threads_every_design_and_seed_marks_everything_reachable() {
    for w in ["mixed", "adversarial"] {
        for (design, mode, removal) in designs() {
            for procs in [2, 8] {
                for seed in SEEDS {
                    let what = format!(
                        "threaded {w} {} {mode} {removal} procs {procs} seed {seed}",
                        design.name()
                    );
                    let c = GcConfig {
                        procs,
                        barrier_removal: removal,
                        ..config(design, mode, seed)
                    };
                    let r = run_threaded(w, c, 3).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(r.0.cycles.len(), 3, "{what}");
                    check_sound(&what, design, mode, removal, &r);
                }
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_counters() {
    for w in WORKLOADS {
        let strip = |(r, _): Ran| {
            r.cycles
                .into_iter()
                .map(|c| gc::CycleStats {
                    sweep_term_ns: 0,
                    mark_ns: 0,
                    mark_term_ns: 0,
                    stw_stop_ns: 0,
                    mark_term_rescan_ns: 0,
                    mark_term_drain_ns: 0,
                    mark_term_other_ns: 0,
                    barrier_removal_ns: 0,
                    ..c
                })
                .collect::<Vec<_>>()
        };
        let d = wbarrier::design("dijkstra").unwrap();
        let a = strip(run(w.name(), config(d, StackBarrierMode::GO, 7), 3).unwrap());
        let b = strip(run(w.name(), config(d, StackBarrierMode::GO, 7), 3).unwrap());
        let c = strip(run(w.name(), config(d, StackBarrierMode::GO, 8), 3).unwrap());
        assert_eq!(a, b, "{}", w.name());
        assert_ne!(a, c, "{}: another seed, another run", w.name());
    }
}
