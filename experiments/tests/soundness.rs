//! Soundness across the design space: every workload under every barrier design and stack-barrier
//! setting (and the hybrid barrier's lazy stack scans), on several seeds, with checkmark and
//! stackshadow on — zero missed objects, no frame a re-scan skipped (or a lazy scan reached late)
//! changed since its scan, and on every re-scanned goroutine the re-scan lies
//! between the oracle and the full stack and within ARCHITECTURE.md §4's bound; the content oracle
//! lies below the return-based one.
//! (The converse — a deliberately wrong bound caught by checkmark — is `gc/tests/rescan.rs`,
//! where the hidden object is placed exactly.)

use experiments::workload::{WORKLOADS, WorkloadParams};
use gc::runtime::{BarrierRemoval, StackScan};
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

/// One point of the design space.
#[derive(Clone, Copy)]
struct Point {
    design: &'static dyn BarrierDesign,
    mode: StackBarrierMode,
    removal: BarrierRemoval,
    scan: StackScan,
}

impl Point {
    fn config(self, seed: u64) -> GcConfig {
        GcConfig {
            barrier_removal: self.removal,
            stack_scan: self.scan,
            ..config(self.design, self.mode, seed)
        }
    }

    fn name(self) -> String {
        format!(
            "{} {} {} {}",
            self.design.name(),
            self.mode,
            self.removal,
            self.scan.name()
        )
    }
}

/// Every design, the stack-barrier ones under both removal modes; the hybrid barrier also with
/// lazy scans, one frame at the stop and with a budget of three and a marker step of two (so
/// the markers and the returns share the work on these 120-frame stacks).
fn designs() -> Vec<Point> {
    let d = wbarrier::design("dijkstra").unwrap();
    let hybrid = wbarrier::design("hybrid").unwrap();
    let point = |design, mode, removal| Point {
        design,
        mode,
        removal,
        scan: StackScan::Eager,
    };
    let mut v = Vec::new();
    for removal in [BarrierRemoval::AfterRestart, BarrierRemoval::InPause] {
        v.extend([
            point(d, StackBarrierMode::GO, removal),
            point(d, StackBarrierMode::On { first_offset: 256 }, removal),
            point(d, StackBarrierMode::EVERY_FRAME, removal),
        ]);
    }
    let after = BarrierRemoval::AfterRestart;
    v.extend([
        point(d, StackBarrierMode::Off, after),
        point(hybrid, StackBarrierMode::Off, after),
        point(
            wbarrier::design("yuasa").unwrap(),
            StackBarrierMode::Off,
            after,
        ),
    ]);
    for scan in [
        StackScan::LAZY,
        StackScan::Lazy {
            first_frames: 3,
            step_frames: 2,
        },
    ] {
        v.push(Point {
            scan,
            ..point(hybrid, StackBarrierMode::Off, after)
        });
    }
    v
}

/// The checks every run must pass, whatever the engine.
fn check_sound(what: &str, point: Point, (r, (on_stacks, ended)): &Ran) {
    let Point {
        design,
        mode,
        removal,
        scan,
    } = point;
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
            assert_eq!(c.rescan_bytes, 0, "{what}");
        }
        if scan == StackScan::Eager {
            assert_eq!(
                c.scan_stalls, c.stacks_scanned,
                "{what}: every scan stops once"
            );
            assert_eq!(c.marker_lazy_frames + c.mutator_scanned_frames, 0, "{what}");
            if design.name() != "dijkstra" {
                assert_eq!(c.barriers_installed, 0, "{what}");
                assert_eq!(c.stackshadow_frames_verified, 0, "{what}: nothing re-scans");
            }
        } else {
            // One watermark at most per scan; the checker verified every frame the markers
            // scanned above one (and those the goroutines did, unless they were taken after
            // the restart).
            assert!(c.barriers_installed <= c.stacks_scanned, "{what}: {c:?}");
            assert!(
                c.stackshadow_frames_verified >= c.marker_lazy_frames,
                "{what}: {c:?}"
            );
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
        for point in designs() {
            for seed in SEEDS {
                let what = format!("{} {} seed {seed}", w.name(), point.name());
                let r =
                    run(w.name(), point.config(seed), 3).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(r.0.cycles.len(), 3, "{what}");
                check_sound(&what, point, &r);
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
        for point in designs() {
            for procs in [2, 8] {
                for seed in SEEDS {
                    let what = format!("threaded {w} {} procs {procs} seed {seed}", point.name());
                    let c = GcConfig {
                        procs,
                        ..point.config(seed)
                    };
                    let r = run_threaded(w, c, 3).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(r.0.cycles.len(), 3, "{what}");
                    check_sound(&what, point, &r);
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
                    scan_stall_ns_p50: 0,
                    scan_stall_ns_p99: 0,
                    scan_stall_ns_max: 0,
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
        let lazy = designs()
            .into_iter()
            .find(|p| p.scan != StackScan::Eager)
            .unwrap();
        let a = strip(run(w.name(), lazy.config(7), 3).unwrap());
        let b = strip(run(w.name(), lazy.config(7), 3).unwrap());
        assert_eq!(a, b, "{}: lazy scans are deterministic too", w.name());
    }
}
