//! `soundness`: the collector's soundness evidence, with the power to fail — a mutation table
//! (injected faults × checkers × workloads) and a checkmark campaign over many seeds, every
//! design and both engines.
//!
//! Invariant: every fault run is deterministic and a checker changes neither the schedule nor
//! the fault draws (each is a stateless function of the seed and the event), so one seed's runs
//! under every checker are the same execution up to the first report; "took effect", measured
//! once per fault, workload and seed on a run with no checker, names the same runs for every
//! checker. The binary fails (exit 3) when stackshadow misses a run in which a re-scan fault took
//! effect, when `wbshadow=2` misses a run that lost an object, or when a campaign run finds a
//! violation.
//!
//! The mutation table. Faults: `wb-drop` (a write barrier skipped), and the four that make
//! mark termination's re-scans shade less than they must: `rescan-skip`, `bound-short`,
//! `hit-lost`, `unwind-skip` (see the README's fault list). For each fault, workload and seed one
//! reference run with no checker counts when the fault fired and when it took effect where it
//! matters: for `wb-drop`, a barrier dropped; for a re-scan fault, a frame the re-scans skipped
//! that had changed since its scan (`skipped_frames_changed`, which the runtime counts whenever
//! such a fault is injected). Then one run per checker — checkmark alone, `wbshadow=2` (with its
//! checkmark walk), `stackshadow=1`, both — ends at the first report (exit 3) or completes; the
//! checkmark run also says whether the fault lost an object. Delay: cycles from the first cycle in
//! which the fault took effect to the one whose report stopped the run.
//!
//! The campaign: `mixed` (small) under every design — full re-scan, stack barriers at Go's offset
//! and on every frame, hybrid, hybrid with lazy stack scans, Yuasa — with checkmark and
//! stackshadow on, over many seeds on the deterministic engine and fewer on the threaded one
//! (2 Ps); and the lazy scan, the one design Go never shipped, on every other workload too, with
//! as many seeds on the threaded engine as on the deterministic one everywhere (stackshadow then
//! checks every frame scanned above a watermark against what it held at the scan's stop): 0
//! failures expected.
//!
//! Outputs: `OUT/soundness.csv` (the table, one row per fault, checker and workload),
//! `OUT/soundness_runs.csv` (every fault run), `OUT/soundness_campaign.csv` (one row per design,
//! engine and workload), each with its `.json`.

use std::time::Instant;

use gc::{RunResult, RuntimeError};
use serde::{Deserialize, Serialize};

use crate::debug_modes::median;
use crate::shard::{self, PlanItem};
use crate::suite::{self, Design, Mode, Plan, Seed, SuiteArgs, SuiteError, Workload};
use crate::testbed;

/// The faults: `(name, --inject spec)`.
pub const FAULTS: [(&str, &str); 5] = [
    ("wb-drop", "wb-drop=0.01"),
    ("rescan-skip", "rescan-skip=0.5"),
    ("bound-short", "bound-short=1"),
    ("hit-lost", "hit-lost=0.5"),
    ("unwind-skip", "unwind-skip=0.5"),
];

/// The checkers: `(name, --debug knobs)`.
pub const CHECKERS: [(&str, &str); 4] = [
    ("checkmark", "gccheckmark=1"),
    ("wbshadow=2", "wbshadow=2"),
    ("stackshadow", "stackshadow=1"),
    ("both", "wbshadow=2,stackshadow=1"),
];

/// The mutation table's workloads at their sizes: `(name, goroutines, depth)`. `mixed` and
/// `adversarial` hide objects on stacks, `deep-unwind` unwinds past barriers, `many-shallow`'s
/// servers store pointers all through the mark (where a dropped barrier loses objects).
const TABLE_WORKLOADS: [(&str, usize, usize); 4] = [
    ("mixed", 32, 200),
    ("adversarial", 32, 200),
    ("deep-unwind", 16, 200),
    ("many-shallow", 64, 10),
];

/// Cycles a fault run makes.
const FAULT_CYCLES: u32 = 6;

/// The campaign's designs (every design the suite knows, the stack-barrier one at Go's offset).
const CAMPAIGN_DESIGNS: [Design; 6] = [
    Design::FullRescan,
    Design::Stkbar(crate::sweeps::GO_FIRST_OFFSET),
    Design::StkbarAll,
    Design::Hybrid,
    Design::HybridLazy,
    Design::Yuasa,
];

/// Cycles a campaign run makes.
const CAMPAIGN_CYCLES: u32 = 3;

/// Seeds of the mutation table, and of the campaign per engine.
fn seed_counts(mode: Mode) -> (u64, u64, u64) {
    match mode {
        Mode::Quick => (2, 30, 4),
        Mode::Full => (16, 1_000, 100),
    }
}

/// Seeds of the lazy scan's campaign, per workload and engine (on every workload, `mixed`
/// included).
fn lazy_seed_count(mode: Mode) -> u64 {
    match mode {
        Mode::Quick => 6,
        Mode::Full => 1_000,
    }
}

/// One fault run.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRun {
    /// The fault.
    pub fault: &'static str,
    /// The checker, or `none` for the reference run.
    pub checker: &'static str,
    /// The workload.
    pub workload: &'static str,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// Which report stopped the run: `checkmark`, `wbshadow`, `stackshadow`, `invalidptr`,
    /// `stack` (an inconsistent stack), or empty.
    pub caught_by: String,
    /// The cycle whose report stopped it.
    pub caught_cycle: Option<u32>,
    /// Cycles completed.
    pub cycles: u64,
    /// How often the fault fired (reference runs).
    pub fired: u64,
    /// How often it took effect where it matters (reference runs).
    pub effective: u64,
    /// The first cycle in which it took effect (reference runs).
    pub first_effect_cycle: Option<u32>,
    /// The command that reproduces the run.
    pub command: String,
}

/// One row of the mutation table.
#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    /// The fault.
    pub fault: &'static str,
    /// The checker.
    pub checker: &'static str,
    /// The workload.
    pub workload: &'static str,
    /// Seeds run.
    pub runs: u64,
    /// Runs in which the fault fired at all.
    pub runs_fired: u64,
    /// Runs in which it took effect where it matters (a dropped barrier; a changed frame skipped).
    pub runs_effective: u64,
    /// Runs the checker stopped.
    pub caught: u64,
    /// Of the runs in which the fault took effect, those it stopped.
    pub caught_effective: u64,
    /// `caught_effective / runs_effective`; empty with none.
    pub detection_rate: Option<f64>,
    /// Runs that lost an object (checkmark's verdict on the same seed).
    pub lost: u64,
    /// Of those, the runs this checker stopped.
    pub lost_caught: u64,
    /// Median cycles from the first effect to the report, over the caught effective runs.
    pub delay_cycles_p50: Option<f64>,
}

/// One row of the campaign.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignRow {
    /// The design.
    pub design: String,
    /// `deterministic` or `threaded`.
    pub engine: &'static str,
    /// The workload.
    pub workload: &'static str,
    /// Seeds run.
    pub seeds: u64,
    /// Cycles completed over them.
    pub cycles: u64,
    /// Runs that found a violation (checkmark or stackshadow): 0 expected.
    pub failures: u64,
    /// Reachable objects checkmark found unmarked.
    pub checkmark_failures: u64,
    /// Frames stackshadow verified unchanged among those the re-scans skipped.
    pub stackshadow_frames_verified: u64,
    /// The first failing run's command, if any.
    pub first_failure: String,
}

/// One fault run of the mutation table.
#[derive(Debug)]
struct TableCell {
    fault: &'static str,
    checker: &'static str,
    workload: &'static str,
    seed: Seed,
    plan: Plan,
}

/// One campaign run.
#[derive(Debug)]
struct CampaignCell {
    group: (Design, &'static str, &'static str),
    plan: Plan,
}

impl PlanItem for TableCell {
    fn plan(&self) -> &Plan {
        &self.plan
    }
}

impl PlanItem for CampaignCell {
    fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// What the mutation table keeps of a fault run.
#[derive(Debug, Serialize, Deserialize)]
struct FaultEnd {
    caught_by: String,
    caught_cycle: Option<u32>,
    cycles: u64,
    /// Reference runs: how often the fault fired, took effect, and the first cycle it did.
    fired: u64,
    effective: u64,
    first_effect_cycle: Option<u32>,
}

/// Runs a fault run and reads its verdict (and, for a reference run, the fault's effects).
fn fault_end(c: &TableCell) -> Result<FaultEnd, SuiteError> {
    let e = execute(&c.plan)?;
    let (caught_by, caught_cycle) = caught(&c.plan, &e)?;
    let (mut fired, mut effective, mut first_effect_cycle) = (0, 0, None);
    if c.checker == "none" {
        let r = e.result.as_ref().map_err(|err| {
            SuiteError::Failed(format!("soundness: `{}` failed: {err}", c.plan.command()))
        })?;
        for cy in &r.cycles {
            let (f, eff) = if c.fault == "wb-drop" {
                (cy.wb_dropped, cy.wb_dropped)
            } else {
                let f = cy.rescan_frames_skipped + cy.rescans_shortened + cy.hits_lost;
                (f + cy.unwinds_skipped, cy.skipped_frames_changed)
            };
            fired += f;
            effective += eff;
            if eff > 0 && first_effect_cycle.is_none() {
                first_effect_cycle = Some(cy.cycle);
            }
        }
    }
    Ok(FaultEnd {
        caught_by: caught_by.to_owned(),
        caught_cycle,
        cycles: e.cycles,
        fired,
        effective,
        first_effect_cycle,
    })
}

/// What the campaign keeps of a run.
#[derive(Debug, Serialize, Deserialize)]
struct CampaignEnd {
    cycles: u64,
    /// Reachable objects checkmark found unmarked (its totals, or its report's).
    checkmark_failures: u64,
    /// Frames stackshadow verified (0 when a checker stopped the run).
    frames_verified: u64,
    /// The checker's report, first line, with the command: when a checker stopped the run.
    failure: Option<String>,
}

/// Runs a campaign run; a failure no checker made is an error.
fn campaign_end(c: &CampaignCell) -> Result<CampaignEnd, SuiteError> {
    let e = execute(&c.plan)?;
    match &e.result {
        Ok(r) => Ok(CampaignEnd {
            cycles: e.cycles,
            checkmark_failures: r.totals.sum.checkmark_failures,
            frames_verified: r.totals.sum.stackshadow_frames_verified,
            failure: None,
        }),
        Err(err) if err.is_checker_violation() => Ok(CampaignEnd {
            cycles: e.cycles,
            checkmark_failures: match err {
                RuntimeError::CheckmarkFailed { failures, .. } => *failures,
                _ => 0,
            },
            frames_verified: 0,
            failure: Some(
                format!("{}: {err}", c.plan.command())
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        }),
        Err(err) => Err(SuiteError::Failed(suite::run_failed(
            err,
            &c.plan.command(),
        ))),
    }
}

/// How a run ended.
struct Ended {
    result: Result<RunResult, RuntimeError>,
    cycles: u64,
    /// The cycle under way when it stopped.
    cycle: u32,
}

/// Runs `plan` on its engine.
fn execute(plan: &Plan) -> Result<Ended, SuiteError> {
    let r = suite::resolve(plan)?;
    let mut engine = testbed::Engine::new(&r, r.workload.build(&r.params))
        .map_err(|e| SuiteError::Failed(suite::run_failed(e, &plan.command())))?;
    let result = engine.run(r.cycles, r.max_ops);
    let rt = engine.runtime();
    Ok(Ended {
        cycles: rt.gc.cycles_completed() as u64,
        cycle: rt.gc.cycle(),
        result,
    })
}

/// The checker a failed run's error names, and the cycle of its report; a failure no checker
/// made is an error.
fn caught(plan: &Plan, ended: &Ended) -> Result<(&'static str, Option<u32>), SuiteError> {
    let e = match &ended.result {
        Ok(_) => return Ok(("", None)),
        Err(e) => e,
    };
    let by = match e {
        RuntimeError::CheckmarkFailed { cycle, .. } => return Ok(("checkmark", Some(*cycle))),
        RuntimeError::StackShadowViolation { cycle, .. } => {
            return Ok(("stackshadow", Some(*cycle)));
        }
        RuntimeError::MissedWriteBarrier { .. } => "wbshadow",
        RuntimeError::BadPointer { .. } => "invalidptr",
        RuntimeError::Stack(_) if e.is_checker_violation() => "stack",
        _ => {
            return Err(SuiteError::Failed(suite::run_failed(e, &plan.command())));
        }
    };
    Ok((by, Some(ended.cycle)))
}

/// The campaign's groups, `(design, engine, workload, seeds)`: every design on `mixed`, then
/// the lazy scan on every other workload; the lazy scan, the one design no Go release had, as
/// many seeds on each engine everywhere.
fn campaign_groups(args: &SuiteArgs) -> Vec<(Design, &'static str, &'static str, u64)> {
    let (_, det_seeds, thr_seeds) = seed_counts(args.mode());
    let lazy_seeds = lazy_seed_count(args.mode());
    let mut groups = Vec::new();
    for design in args.designs(&CAMPAIGN_DESIGNS) {
        let (det, thr) = if design == Design::HybridLazy {
            (lazy_seeds, lazy_seeds)
        } else {
            (det_seeds, thr_seeds)
        };
        groups.push((design, "deterministic", "mixed", det));
        groups.push((design, "threaded", "mixed", thr));
    }
    for w in crate::workload::WORKLOADS
        .iter()
        .filter(|w| w.name() != "mixed")
    {
        for engine in ["deterministic", "threaded"] {
            groups.push((Design::HybridLazy, engine, w.name(), lazy_seeds));
        }
    }
    groups.retain(|g| args.wants_workload(g.2));
    groups
}

/// Every campaign run, group by group, `seeds(n)` giving a group's seeds.
fn campaign_cells(args: &SuiteArgs, seeds: &dyn Fn(u64) -> Vec<Seed>) -> Vec<CampaignCell> {
    let mut cells = Vec::new();
    for (design, engine, workload, n) in campaign_groups(args) {
        let w = Workload::new(workload, args.size(8), args.size(40));
        for seed in seeds(n) {
            let mut plan = Plan::new(&w, design, seed)
                .with("--cycles", CAMPAIGN_CYCLES)
                .with("--debug", "gccheckmark=1,stackshadow=1")
                .with("--heap-minimum", args.heap_minimum_or(128 << 10));
            if engine == "threaded" {
                plan = plan
                    .with("--engine", "threaded")
                    .with("--procs", args.procs.unwrap_or(2));
            }
            cells.push(CampaignCell {
                group: (design, engine, workload),
                plan: args.apply(plan),
            });
        }
    }
    cells
}

/// `soundness`: see the module comment.
pub fn soundness(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "soundness";
    let start = Instant::now();
    let (table_seeds, _, _) = seed_counts(args.mode());
    let seeds = |n: u64| -> Vec<Seed> { args.seeds_by_default(n) };

    // The mutation table: a reference run and one run per checker for every fault, workload
    // and seed.
    let mut cells = Vec::new();
    for (fault, spec) in FAULTS {
        for (workload, g, d) in TABLE_WORKLOADS {
            if !args.wants_workload(workload) {
                continue;
            }
            let w = Workload::new(workload, args.size(g), args.size(d));
            for seed in seeds(table_seeds) {
                let base = Plan::new(&w, Design::Stkbar(crate::sweeps::GO_FIRST_OFFSET), seed)
                    .with("--cycles", args.cycles.unwrap_or(FAULT_CYCLES))
                    .with("--inject", spec)
                    .with("--heap-minimum", args.heap_minimum_or(256 << 10));
                let base = args.apply(base);
                let cell = |checker, plan| TableCell {
                    fault,
                    checker,
                    workload,
                    seed,
                    plan,
                };
                cells.push(cell("none", base.clone()));
                for (checker, knobs) in CHECKERS {
                    cells.push(cell(checker, base.clone().with("--debug", knobs)));
                }
            }
        }
    }
    let campaign_cells = campaign_cells(args, &seeds);
    if cells.is_empty() && campaign_cells.is_empty() {
        // The table's workloads and the campaign's, which covers every workload.
        let labels: Vec<String> = crate::workload::WORKLOADS
            .iter()
            .map(|w| w.name().to_owned())
            .collect();
        return Err(args.no_workload_kept(name, &labels));
    }

    // Two run lists, the campaign's independent of the table's.
    let ended = shard::run_list(name, args, &cells, fault_end);
    let campaign_ended = shard::run_list(name, args, &campaign_cells, campaign_end);
    let (ended, campaign_ended) = (ended?, campaign_ended?);
    let runs: Vec<FaultRun> = cells
        .iter()
        .zip(ended)
        .map(|(c, e)| FaultRun {
            fault: c.fault,
            checker: c.checker,
            workload: c.workload,
            seed: c.seed.program,
            sched_seed: c.seed.schedule,
            caught_by: e.caught_by,
            caught_cycle: e.caught_cycle,
            cycles: e.cycles,
            fired: e.fired,
            effective: e.effective,
            first_effect_cycle: e.first_effect_cycle,
            command: c.plan.command(),
        })
        .collect();
    // A run's reference and checkmark twins: the same fault, workload and seeds.
    let twin = |a: &FaultRun, b: &FaultRun| {
        (a.fault, a.workload, a.seed, a.sched_seed) == (b.fault, b.workload, b.seed, b.sched_seed)
    };
    let reference = |run: &FaultRun| {
        runs.iter()
            .find(|r| r.checker == "none" && twin(r, run))
            .expect("every cell has its reference run")
    };
    let lost = |run: &FaultRun| {
        runs.iter()
            .any(|r| r.checker == "checkmark" && twin(r, run) && r.caught_by == "checkmark")
    };
    let mut table = Vec::new();
    for (fault, _) in FAULTS {
        for (checker, _) in CHECKERS {
            for (workload, ..) in TABLE_WORKLOADS {
                if !args.wants_workload(workload) {
                    continue;
                }
                let cell: Vec<&FaultRun> = runs
                    .iter()
                    .filter(|r| r.fault == fault && r.checker == checker && r.workload == workload)
                    .collect();
                let (mut fired, mut effective, mut caught, mut caught_eff) = (0, 0, 0, 0);
                let (mut lost_runs, mut lost_caught, mut delays) = (0, 0, Vec::new());
                for r in &cell {
                    let reference = reference(r);
                    let is_caught = !r.caught_by.is_empty();
                    let is_effective = reference.effective > 0;
                    fired += u64::from(reference.fired > 0);
                    effective += u64::from(is_effective);
                    caught += u64::from(is_caught);
                    if is_effective && is_caught {
                        caught_eff += 1;
                        if let (Some(at), Some(first)) =
                            (r.caught_cycle, reference.first_effect_cycle)
                        {
                            delays.push(u64::from(at.saturating_sub(first)));
                        }
                    }
                    if lost(r) {
                        lost_runs += 1;
                        lost_caught += u64::from(is_caught);
                    }
                }
                table.push(TableRow {
                    fault,
                    checker,
                    workload,
                    runs: cell.len() as u64,
                    runs_fired: fired,
                    runs_effective: effective,
                    caught,
                    caught_effective: caught_eff,
                    detection_rate: (effective > 0).then(|| caught_eff as f64 / effective as f64),
                    lost: lost_runs,
                    lost_caught,
                    delay_cycles_p50: median(delays),
                });
            }
        }
    }

    let mut campaign = Vec::new();
    for group in campaign_groups(args) {
        let (design, engine, workload, _) = group;
        let cell: Vec<(&CampaignCell, &CampaignEnd)> = campaign_cells
            .iter()
            .zip(&campaign_ended)
            .filter(|(c, _)| c.group == (design, engine, workload))
            .collect();
        let mut row = CampaignRow {
            design: design.name(),
            engine,
            workload,
            seeds: cell.len() as u64,
            cycles: 0,
            failures: 0,
            checkmark_failures: 0,
            stackshadow_frames_verified: 0,
            first_failure: String::new(),
        };
        for (_, e) in cell {
            row.cycles += e.cycles;
            row.checkmark_failures += e.checkmark_failures;
            row.stackshadow_frames_verified += e.frames_verified;
            if let Some(failure) = &e.failure {
                row.failures += 1;
                if row.first_failure.is_empty() {
                    row.first_failure.clone_from(failure);
                }
            }
        }
        campaign.push(row);
    }

    suite::write_results(args, name, &table)?;
    suite::write_results(args, &format!("{name}_runs"), &runs)?;
    suite::write_results(args, &format!("{name}_campaign"), &campaign)?;

    let mut out = format!(
        "{name}: {} fault runs and {} campaign runs ({} mode) in {:.1} s -> {}",
        runs.len(),
        campaign_ended.len(),
        args.mode(),
        start.elapsed().as_secs_f64(),
        args.out.join(format!("{name}.csv")).display()
    );
    let mut violations = Vec::new();
    for (fault, _) in FAULTS {
        for (checker, _) in CHECKERS {
            let of = |k: &dyn Fn(&TableRow) -> u64| -> u64 {
                table
                    .iter()
                    .filter(|r| r.fault == fault && r.checker == checker)
                    .map(k)
                    .sum()
            };
            let (eff, caught_eff) = (of(&|r| r.runs_effective), of(&|r| r.caught_effective));
            let (lost, lost_caught) = (of(&|r| r.lost), of(&|r| r.lost_caught));
            out.push_str(&format!(
                "\n  {fault:<12} {checker:<12} caught {caught_eff} of {eff} runs where it took effect; {lost_caught} of {lost} that lost an object"
            ));
            let must_catch_effective =
                fault != "wb-drop" && matches!(checker, "stackshadow" | "both");
            if must_catch_effective && caught_eff < eff {
                violations.push(format!(
                    "{checker} caught {caught_eff} of {eff} {fault} runs that skipped a changed frame"
                ));
            }
            if matches!(checker, "wbshadow=2" | "both") && lost_caught < lost {
                violations.push(format!(
                    "{checker} caught {lost_caught} of {lost} {fault} runs that lost an object"
                ));
            }
        }
    }
    for r in &campaign {
        out.push_str(&format!(
            "\n  campaign {:<12} {:<15} {:<13}: {} seeds, {} cycles, {} failures, {} frames verified by stackshadow",
            r.design,
            r.workload,
            r.engine,
            r.seeds,
            r.cycles,
            r.failures,
            r.stackshadow_frames_verified
        ));
        if r.failures > 0 {
            violations.push(format!(
                "campaign {} {} {}: {} failing run(s), first {}",
                r.design, r.workload, r.engine, r.failures, r.first_failure
            ));
        }
    }
    if !violations.is_empty() {
        return Err(SuiteError::Violation(format!(
            "{}; see {}",
            violations.join("; "),
            args.out.join(format!("{name}_runs.csv")).display()
        )));
    }
    Ok(out)
}
