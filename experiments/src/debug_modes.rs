//! The debug-mode experiments: `sanitizer_leak` (seed 004's `BenchmarkSyncLeak`) and
//! `wbshadow_faults` (seed 000's wbshadow against injected missing write barriers).
//!
//! Invariant: every figure here comes from deterministic runs, so a row's `command` reproduces it
//! exactly; and a `wbshadow_faults` run in one mode drops exactly the barriers the same seed and
//! fraction drop in every other mode (the drop is a stateless draw on the store clock, and the
//! checkers change neither the schedule nor the clock), so "the runs in which checkmark alone
//! found a lost object" names the same runs under every mode.
//!
//! `sanitizer_leak`: the `sync-leak` workload with the sanitizer on, once telling its contexts of
//! every free found by sweep and once not, under a procs schedule that grows and shrinks the P
//! count so contexts are created and destroyed mid-run. One row per cycle: the live heap is flat
//! in both modes; the sanitizer's memory is flat after warm-up only with free notification.
//!
//! `wbshadow_faults`: `many-shallow` (64 goroutines, depth 10) with `--inject wb-drop=F` for
//! several fractions and seeds, under
//! `wbshadow=1`, `wbshadow=2,gccheckmark=1` and `gccheckmark=1` alone. A run ends at the first
//! checker report (exit 3) or completes. Checkmark alone reports only barriers whose loss hid a
//! reachable object at mark termination — the runs where a fault lost an object; wbshadow reports
//! a dropped barrier whether or not it lost anything, at the next barriered store to the word or,
//! with `=2`, at the next checkmark walk that scans it. The delay is the number of heap and global
//! pointer stores between the dropped barrier the report names (the one to the reported word, or
//! whose value is the reported missed object) and the report. ARCHITECTURE.md §6 asks `wbshadow=2` with
//! checkmark to catch 100 % of the runs that lose an object; the binary fails (exit 3) if not.
//! A third file, `wbshadow_overhead.csv`, times each mode without faults, one run at a time.
//! The workload is `many-shallow` because its server goroutines wake and run all through the mark
//! phase, storing pointers into objects already marked: a dropped barrier there can lose an
//! object, which the target needs to be more than vacuous. (Under Go's scheduler the CPU-bound
//! workloads run only a few goroutines per mark phase; `mixed` lost no object in 160 runs.)

use std::time::{Duration, Instant};

use gc::error::WbShadowCheck;
use gc::{Deterministic, RuntimeError};
use serde::{Deserialize, Serialize};

use crate::shard::{self, PlanItem, RunItem};
use crate::suite::{self, Design, Mode, Plan, Seed, SuiteArgs, SuiteError, Workload};
use crate::testbed;

/// `sanitizer_leak`'s goroutines (BenchmarkSyncLeak's `G` is 1000; 64 keep a run short).
const LEAK_GOROUTINES: usize = 64;

/// `sanitizer_leak`'s modes: `(mode, testbed flags)`.
const LEAK_MODES: [(&str, &[&str]); 2] = [
    ("free-notify", &["--sanitizer"]),
    ("no-free-notify", &["--sanitizer", "--no-free-notify"]),
];

/// One cycle of a `sanitizer_leak` run (ARCHITECTURE.md §7's four columns first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeakRow {
    /// `free-notify` or `no-free-notify`.
    pub mode: String,
    /// The cycle's index in the run, from 0.
    pub step: usize,
    /// Allocated heap objects at the cycle's start.
    pub live_objects: u64,
    /// The sanitizer's metadata memory at the cycle's start.
    pub sanitizer_bytes: u64,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// Ps during the cycle.
    pub procs: u64,
    /// The cycle number.
    pub cycle: u32,
    /// SyncVars in the sanitizer's table.
    pub sync_vars: u64,
    /// Heap blocks the sanitizer tracks.
    pub blocks: u64,
    /// Live sanitizer contexts (one per live P).
    pub contexts: u64,
    /// Heap bytes the cycle marked live.
    pub heap_live_bytes: u64,
    /// The command that reproduces the run.
    pub command: String,
}

/// The procs schedule `sanitizer_leak` runs under for `cycles` cycles: 2 Ps, 4 from a quarter of
/// the way, 1 from half way, 3 from three quarters.
fn leak_procs_schedule(cycles: u32) -> String {
    let at = |q: u32| (cycles * q / 4).max(q) + 1;
    [(at(1), 4), (at(2), 1), (at(3), 3)]
        .iter()
        .filter(|&&(c, _)| c <= cycles)
        .map(|(c, n)| format!("{c}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `sanitizer_leak`: see the module comment.
pub fn sanitizer_leak(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "sanitizer_leak";
    let cycles = args.cycles.unwrap_or(match args.mode() {
        Mode::Quick => 16,
        Mode::Full => 40,
    });
    args.refuse_offsets(name)?;
    let workload = Workload::new("sync-leak", args.size(LEAK_GOROUTINES), 1);
    let workload = args.select_workloads(name, vec![workload])?.remove(0);
    let mut plans = Vec::new();
    for (_, flags) in LEAK_MODES {
        for seed in args.seeds() {
            let mut plan = Plan::new(&workload, Design::Stkbar(1024), seed)
                .with("--cycles", cycles)
                .with("--procs", 2);
            if cycles > 1 {
                plan = plan.with("--procs-schedule", leak_procs_schedule(cycles));
            }
            plan.flags.extend(flags.iter().map(|f| f.to_string()));
            plans.push(plan);
        }
    }
    let start = Instant::now();
    let outcomes = suite::execute(name, args, plans, |o| {
        let mode = match o.report.config.sanitizer {
            "no-free-notify" => LEAK_MODES[1].0,
            _ => LEAK_MODES[0].0,
        };
        let rows: Vec<LeakRow> = o
            .report
            .cycles
            .iter()
            .enumerate()
            .map(|(step, c)| LeakRow {
                mode: mode.to_owned(),
                step,
                live_objects: c.live_objects,
                sanitizer_bytes: c.sanitizer_bytes,
                seed: o.report.config.seed,
                sched_seed: o.report.config.sched_seed,
                procs: c.procs,
                cycle: c.cycle,
                sync_vars: c.sanitizer_sync_vars,
                blocks: c.sanitizer_blocks,
                contexts: c.sanitizer_contexts,
                heap_live_bytes: c.heap_live_bytes,
                command: o.plan.command(),
            })
            .collect();
        rows
    })?;
    let runs = outcomes.len();
    let rows: Vec<LeakRow> = outcomes.into_iter().flatten().collect();
    suite::write_results(args, name, &rows)?;
    let mut out = format!(
        "{name}: {runs} runs ({} mode) in {:.1} s -> {}",
        args.mode(),
        start.elapsed().as_secs_f64(),
        args.out.join(format!("{name}.csv")).display()
    );
    for (mode, _) in LEAK_MODES {
        let mib = |step: usize| {
            rows.iter()
                .find(|r| r.mode == mode && r.seed == args.seed && r.step == step)
                .map_or(0.0, |r| r.sanitizer_bytes as f64 / f64::from(1 << 20))
        };
        let last = cycles as usize - 1;
        out.push_str(&format!(
            "\n  {mode}: sanitizer {:.2} MiB after warm-up (step 2), {:.2} MiB at step {last}",
            mib(2),
            mib(last)
        ));
    }
    Ok(out)
}

/// `wbshadow_faults`' modes: `(mode, knobs)`.
const FAULT_MODES: [(&str, &str); 3] = [
    ("wbshadow=1", "wbshadow=1"),
    ("wbshadow=2", "wbshadow=2,gccheckmark=1"),
    ("checkmark", "gccheckmark=1"),
];

/// The fractions of heap and global stores whose barrier is dropped.
fn drop_fractions(mode: Mode) -> &'static [f64] {
    match mode {
        Mode::Quick => &[0.001, 0.01, 0.1, 0.3],
        Mode::Full => &[0.0001, 0.001, 0.01, 0.1, 0.3],
    }
}

/// Seeds per (mode, fraction): `--seeds` (crossed with `--sched-seeds`), else 8 (quick) or 32
/// (full).
fn fault_seeds(args: &SuiteArgs) -> Vec<Seed> {
    args.seeds_by_default(match args.mode() {
        Mode::Quick => 8,
        Mode::Full => 32,
    })
}

/// GC cycles a fault run completes if no checker stops it.
const FAULT_CYCLES: u32 = 10;

/// One `wbshadow_faults` run.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRunRow {
    /// The mode.
    pub mode: &'static str,
    /// The fraction of stores whose barrier was dropped.
    pub drop_fraction: f64,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// The workload.
    pub workload: String,
    /// Barriers dropped before the run ended.
    pub faults: u64,
    /// Whether a checker stopped the run.
    pub detected: bool,
    /// Which: `wbshadow-store`, `wbshadow-gc`, `checkmark`, `invalidptr`, or empty.
    pub detector: String,
    /// Stores between the dropped barrier the report names and the report; empty if undetected.
    pub delay_stores: Option<u64>,
    /// Heap and global pointer stores the run made.
    pub heap_stores: u64,
    /// Whether checkmark alone, same seed and fraction, found a lost object.
    pub lost_object: bool,
    /// Cycles completed.
    pub cycles_completed: u64,
    /// The command that reproduces the run.
    pub command: String,
}

/// `wbshadow_faults.csv`: one row per (mode, fraction).
#[derive(Clone, Debug, Serialize)]
pub struct FaultRow {
    /// The mode.
    pub mode: &'static str,
    /// The drop fraction.
    pub drop_fraction: f64,
    /// The workload.
    pub workload: String,
    /// Runs.
    pub runs: u64,
    /// Runs in which at least one barrier was dropped.
    pub runs_with_faults: u64,
    /// Barriers dropped, all runs.
    pub faults_injected: u64,
    /// Runs a checker stopped.
    pub detected: u64,
    /// `detected / runs_with_faults`; empty when no run had a fault.
    pub detection_rate: Option<f64>,
    /// Detections by wbshadow at a barriered store.
    pub by_store: u64,
    /// Detections by wbshadow during the checkmark walk.
    pub by_gc: u64,
    /// Detections by checkmark's reachable-but-unmarked report.
    pub by_checkmark: u64,
    /// Median delay in stores over detected runs.
    pub delay_stores_p50: Option<f64>,
    /// Longest delay.
    pub delay_stores_max: Option<u64>,
    /// Runs in which checkmark alone found a lost object.
    pub lost_runs: u64,
    /// Of those, runs this mode stopped.
    pub lost_caught: u64,
}

/// `wbshadow_overhead.csv`: one row per (mode, seed), no faults.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadRow {
    /// `off`, or a fault mode.
    pub mode: &'static str,
    /// The workload.
    pub workload: String,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// Wall time of the run.
    pub wall_ns: u64,
    /// Mutator operations per second of wall time.
    pub mutator_ops_per_s: f64,
    /// `wall_ns` over the `off` run's of the same seed.
    pub slowdown: f64,
    /// wbshadow's shadow memory (largest over the cycles).
    pub shadow_bytes: u64,
    /// The live heap (largest over the cycles).
    pub heap_bytes: u64,
}

/// What one fault run ended with.
#[derive(Debug, Serialize, Deserialize)]
struct FaultOutcome {
    detector: String,
    delay: Option<u64>,
    faults: u64,
    stores: u64,
    cycles: u64,
}

/// One fault run: a mode, a drop fraction, a seed.
#[derive(Debug)]
struct FaultCell {
    mode: &'static str,
    fraction: f64,
    seed: Seed,
    plan: Plan,
}

impl PlanItem for FaultCell {
    fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// Runs `plan` on the deterministic engine, keeping the runtime to read its fault log after a
/// checker stopped it.
fn fault_run(plan: &Plan) -> Result<FaultOutcome, SuiteError> {
    let r = suite::resolve(plan)?;
    let failed = |e: RuntimeError| SuiteError::Failed(suite::run_failed(e, &plan.command()));
    let mut engine =
        Deterministic::new(r.config.clone(), r.workload.build(&r.params)).map_err(failed)?;
    let result = engine.run(r.cycles, r.max_ops);
    let rt = engine.runtime();
    let dropped = rt.fault_log.dropped();
    let cycles = rt.gc.cycles_completed() as u64;
    let stores = rt.fault_log.stores();
    // The dropped barrier a report names: the last one before it to `matches`, else the first.
    let named = |at: u64, matches: &dyn Fn(&gc::debug::DroppedBarrier) -> bool| {
        dropped
            .iter()
            .rev()
            .find(|d| d.store < at && matches(d))
            .or(dropped.first())
            .map(|d| at.saturating_sub(d.store))
    };
    let (detector, delay) = match result {
        Ok(_) => ("", None),
        Err(RuntimeError::MissedWriteBarrier {
            addr,
            found,
            at_store,
            ..
        }) => (
            match found {
                WbShadowCheck::Store => "wbshadow-store",
                WbShadowCheck::Checkmark => "wbshadow-gc",
            },
            named(at_store, &|d| d.addr == addr),
        ),
        Err(RuntimeError::CheckmarkFailed {
            missed, at_store, ..
        }) => ("checkmark", named(at_store, &|d| missed.contains(&d.new))),
        Err(e @ RuntimeError::BadPointer { .. }) if e.is_checker_violation() => {
            ("invalidptr", named(stores, &|_| false))
        }
        Err(e) => return Err(failed(e)),
    };
    Ok(FaultOutcome {
        detector: detector.to_owned(),
        delay,
        faults: dropped.len() as u64,
        stores,
        cycles,
    })
}

/// The median of `v`; `None` when it is empty.
pub(crate) fn median(mut v: Vec<u64>) -> Option<f64> {
    v.sort_unstable();
    let n = v.len();
    (n > 0).then(|| {
        if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
        }
    })
}

/// `wbshadow_faults`: see the module comment.
pub fn wbshadow_faults(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "wbshadow_faults";
    let start = Instant::now();
    args.refuse_offsets(name)?;
    let workload = Workload::new("many-shallow", args.size(64), args.size(10));
    let workload = args.select_workloads(name, vec![workload])?.remove(0);
    let seeds = fault_seeds(args);
    let fractions = drop_fractions(args.mode());
    let mut cells = Vec::new();
    for (mode, knobs) in FAULT_MODES {
        for &fraction in fractions {
            for &seed in &seeds {
                let plan = Plan::new(&workload, Design::Stkbar(1024), seed)
                    .with("--cycles", FAULT_CYCLES)
                    .with("--debug", knobs)
                    .with("--inject", format!("wb-drop={fraction}"));
                cells.push(FaultCell {
                    mode,
                    fraction,
                    seed,
                    plan: args.apply(plan),
                });
            }
        }
    }
    // Two run lists, the second independent of the first: the fault runs, in parallel, then
    // each seed's overhead runs, one seed at a time.
    let outcomes = shard::run_list(name, args, &cells, |c| fault_run(&c.plan));
    let overhead_runs = overhead_seeds(args, &workload);
    let overhead = shard::run_list(name, args, &overhead_runs, overhead_run);
    let (outcomes, overhead) = (outcomes?, overhead?);
    let lost = |f: f64, seed: Seed| {
        cells.iter().zip(&outcomes).any(|(c, o)| {
            c.mode == "checkmark" && c.fraction == f && c.seed == seed && o.detector == "checkmark"
        })
    };
    let runs: Vec<FaultRunRow> = cells
        .iter()
        .zip(&outcomes)
        .map(|(c, o)| FaultRunRow {
            mode: c.mode,
            drop_fraction: c.fraction,
            seed: c.seed.program,
            sched_seed: c.seed.schedule,
            workload: workload.name.clone(),
            faults: o.faults,
            detected: !o.detector.is_empty(),
            lost_object: lost(c.fraction, c.seed),
            detector: o.detector.clone(),
            delay_stores: o.delay,
            heap_stores: o.stores,
            cycles_completed: o.cycles,
            command: c.plan.command(),
        })
        .collect();
    let mut rows = Vec::new();
    for (mode, _) in FAULT_MODES {
        for &f in fractions {
            let cell: Vec<&FaultRunRow> = runs
                .iter()
                .filter(|r| r.mode == mode && r.drop_fraction == f)
                .collect();
            let count =
                |p: &dyn Fn(&FaultRunRow) -> bool| cell.iter().filter(|r| p(r)).count() as u64;
            let with_faults = count(&|r| r.faults > 0);
            let detected = count(&|r| r.detected);
            let delays: Vec<u64> = cell.iter().filter_map(|r| r.delay_stores).collect();
            rows.push(FaultRow {
                mode,
                drop_fraction: f,
                workload: workload.name.clone(),
                runs: cell.len() as u64,
                runs_with_faults: with_faults,
                faults_injected: cell.iter().map(|r| r.faults).sum(),
                detected,
                detection_rate: (with_faults > 0).then(|| detected as f64 / with_faults as f64),
                by_store: count(&|r| r.detector == "wbshadow-store"),
                by_gc: count(&|r| r.detector == "wbshadow-gc"),
                by_checkmark: count(&|r| r.detector == "checkmark"),
                delay_stores_max: delays.iter().copied().max(),
                delay_stores_p50: median(delays),
                lost_runs: count(&|r| r.lost_object),
                lost_caught: count(&|r| r.lost_object && r.detected),
            });
        }
    }
    suite::write_results(args, name, &rows)?;
    suite::write_results(args, &format!("{name}_runs"), &runs)?;
    let overhead = overhead_rows(&workload, &overhead_runs, overhead);
    suite::write_results(args, "wbshadow_overhead", &overhead)?;

    let mut out = format!(
        "{name}: {} runs ({} mode) in {:.1} s -> {}",
        runs.len() + overhead.len(),
        args.mode(),
        start.elapsed().as_secs_f64(),
        args.out.join(format!("{name}.csv")).display()
    );
    for (mode, _) in FAULT_MODES {
        let of = |k: &dyn Fn(&FaultRow) -> u64| -> u64 {
            rows.iter().filter(|r| r.mode == mode).map(k).sum()
        };
        let slowdown = median(
            overhead
                .iter()
                .filter(|r| r.mode == mode)
                .map(|r| (r.slowdown * 1000.0) as u64)
                .collect(),
        )
        .map_or(0.0, |s| s / 1000.0);
        out.push_str(&format!(
            "\n  {mode}: detected {} of {} runs with faults; caught {} of {} that lost an object; {slowdown:.2}x slower without faults",
            of(&|r| r.detected),
            of(&|r| r.runs_with_faults),
            of(&|r| r.lost_caught),
            of(&|r| r.lost_runs),
        ));
    }
    let missed: u64 = rows
        .iter()
        .filter(|r| r.mode == "wbshadow=2")
        .map(|r| r.lost_runs - r.lost_caught)
        .sum();
    if missed > 0 {
        return Err(SuiteError::Violation(format!(
            "wbshadow=2 with checkmark missed {missed} run(s) that lost an object (ARCHITECTURE.md §6 asks 100 %); see {}",
            args.out.join(format!("{name}_runs.csv")).display()
        )));
    }
    Ok(out)
}

/// One seed's overhead runs: each mode without faults (`off` first), one after the other on the
/// same machine, so each mode's slowdown compares runs that shared nothing but the machine.
#[derive(Debug)]
struct OverheadSeed {
    seed: Seed,
    /// `(mode, plan)`, `off` first.
    plans: Vec<(&'static str, Plan)>,
}

impl RunItem for OverheadSeed {
    fn command(&self) -> String {
        let commands: Vec<String> = self.plans.iter().map(|(_, p)| p.command()).collect();
        commands.join(" && ")
    }

    fn engine(&self) -> Option<&'static str> {
        self.plans.first().and_then(|(_, p)| RunItem::engine(p))
    }

    fn alone(&self) -> bool {
        true
    }

    fn peak_bytes(&self) -> u64 {
        // One plan after another: the largest.
        self.plans
            .iter()
            .map(|(_, p)| p.peak_bytes())
            .max()
            .unwrap_or(0)
    }
}

/// What an overhead run measured.
#[derive(Debug, Serialize, Deserialize)]
struct OverheadRun {
    wall: Duration,
    mutator_ops: u64,
    shadow_bytes: u64,
    heap_bytes: u64,
}

/// Every seed's overhead runs.
fn overhead_seeds(args: &SuiteArgs, workload: &Workload) -> Vec<OverheadSeed> {
    let modes = std::iter::once(("off", "")).chain(FAULT_MODES);
    args.seeds()
        .into_iter()
        .map(|seed| OverheadSeed {
            seed,
            plans: modes
                .clone()
                .map(|(mode, knobs)| {
                    let plan = Plan::new(workload, Design::Stkbar(1024), seed)
                        .with("--cycles", FAULT_CYCLES)
                        .with("--debug", knobs);
                    (mode, args.apply(plan))
                })
                .collect(),
        })
        .collect()
}

/// Runs one seed's overhead runs, one at a time.
fn overhead_run(s: &OverheadSeed) -> Result<Vec<OverheadRun>, SuiteError> {
    s.plans
        .iter()
        .map(|(_, plan)| {
            let r = suite::resolve(plan)?;
            let (report, wall) = testbed::run_timed(&r)
                .map_err(|e| SuiteError::Failed(suite::run_failed(e, &plan.command())))?;
            Ok(OverheadRun {
                wall,
                mutator_ops: report.totals.mutator_ops,
                shadow_bytes: report.totals.sum.shadow_bytes,
                heap_bytes: report
                    .cycles
                    .iter()
                    .map(|c| c.heap_live_bytes)
                    .max()
                    .unwrap_or(0),
            })
        })
        .collect()
}

/// The overhead rows of `runs` (each seed's modes, `off` first).
fn overhead_rows(
    workload: &Workload,
    seeds: &[OverheadSeed],
    runs: Vec<Vec<OverheadRun>>,
) -> Vec<OverheadRow> {
    let mut rows: Vec<OverheadRow> = Vec::new();
    for (s, runs) in seeds.iter().zip(runs) {
        for ((mode, _), run) in s.plans.iter().zip(runs) {
            let wall_ns = run.wall.as_nanos() as u64;
            let off = rows
                .iter()
                .find(|r| {
                    (r.seed, r.sched_seed) == (s.seed.program, s.seed.schedule) && r.mode == "off"
                })
                .map_or(wall_ns, |r| r.wall_ns);
            rows.push(OverheadRow {
                mode,
                workload: workload.name.clone(),
                seed: s.seed.program,
                sched_seed: s.seed.schedule,
                wall_ns,
                mutator_ops_per_s: run.mutator_ops as f64 / run.wall.as_secs_f64().max(1e-9),
                slowdown: wall_ns as f64 / off.max(1) as f64,
                shadow_bytes: run.shadow_bytes,
                heap_bytes: run.heap_bytes,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leak_schedule_grows_and_shrinks_within_the_run() {
        assert_eq!(leak_procs_schedule(16), "5:4,9:1,13:3");
        assert_eq!(leak_procs_schedule(4), "2:4,3:1,4:3");
        assert_eq!(leak_procs_schedule(2), "2:4");
        for cycles in 2..100 {
            let s = testbed::parse_procs_schedule(&leak_procs_schedule(cycles)).unwrap();
            assert!(s.iter().all(|&(c, _)| c <= cycles), "{cycles}: {s:?}");
        }
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3.0));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2.5));
    }
}
