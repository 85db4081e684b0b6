//! The experiments of ARCHITECTURE.md §5 as plans of testbed runs: which workloads, sizes, designs, seeds
//! and engines each one sweeps, in `--quick` and `--full`.
//!
//! Invariant: counters come from the deterministic engine (exact, reproducible bit for bit) with
//! `gccheckmark=1`, so every counter row is also a soundness check; pause and MMU figures come from
//! the threaded engine with no checker on (checkmark stops the world longer than the pause it
//! would measure). A sweep that reports both runs each point on both engines and says which in the
//! `engine` column.
//!
//! Each experiment is one function here returning its summary line; the binaries in `src/bin/`
//! only parse flags and call it.

use std::time::Instant;

use crate::suite::{
    self, Design, MmuRow, Mode, Plan, RunRow, SuiteArgs, SuiteError, Workload, workload_label,
};

/// Go's first stack-barrier offset.
pub const GO_FIRST_OFFSET: usize = 1024;

/// The barrier settings `rescan_offsets` compares, densest first.
pub const OFFSET_DESIGNS: [Design; 8] = [
    Design::StkbarAll,
    Design::Stkbar(256),
    Design::Stkbar(512),
    Design::Stkbar(1024),
    Design::Stkbar(2048),
    Design::Stkbar(4096),
    Design::Stkbar(8192),
    Design::FullRescan,
];

/// The designs whose re-scan counters a sweep reports (the ones that re-scan).
const RESCAN_DESIGNS: [Design; 3] = [
    Design::FullRescan,
    Design::Stkbar(GO_FIRST_OFFSET),
    Design::StkbarAll,
];

/// The stack-barrier designs a sweep also runs with the barriers removed inside the pause (Go
/// 1.5/1.6's removal) beside Go 1.7's after the restart.
const IN_PAUSE_DESIGNS: [Design; 2] = [Design::Stkbar(GO_FIRST_OFFSET), Design::StkbarAll];

/// The designs whose pauses a sweep reports.
const PAUSE_DESIGNS: [Design; 5] = [
    Design::FullRescan,
    Design::Stkbar(GO_FIRST_OFFSET),
    Design::StkbarAll,
    Design::Hybrid,
    Design::Yuasa,
];

/// The designs `barrier_designs` compares (ARCHITECTURE.md §5).
pub const BARRIER_DESIGNS: [Design; 4] = [
    Design::FullRescan,
    Design::Stkbar(GO_FIRST_OFFSET),
    Design::Hybrid,
    Design::Yuasa,
];

/// Cycles every run makes before the ones it reports: the first cycle of a deep workload runs
/// while its goroutines are still building their stacks, and would dominate every steady-state
/// sum (a stack that grows during the cycle must be re-scanned from its scan-time SP down).
pub const WARMUP_CYCLES: u32 = 1;

/// Every workload at its standard size, the replay traces in `args.traces` included.
pub fn standard_workloads(args: &SuiteArgs) -> Result<Vec<Workload>, SuiteError> {
    let many = match args.mode() {
        Mode::Quick => 2_000,
        Mode::Full => 10_000,
    };
    let mut ws = vec![
        ("deep-oscillate", 64, 1000),
        ("deep-unwind", 64, 1000),
        ("many-shallow", many, 10),
        ("mixed", 64, 200),
        ("copy-heavy", 64, 500),
        ("adversarial", 64, 200),
    ]
    .into_iter()
    .map(|(name, g, d)| Workload::new(name, args.size(g), args.size(d)))
    .collect::<Vec<_>>();
    // A replayed trace runs alone on its goroutine's stack (one base frame): its depth profile
    // is the recorded program's.
    for trace in args.trace_files()? {
        ws.push(Workload::replay(&trace, args.size(32), 1));
    }
    Ok(ws)
}

/// A counter run: deterministic engine, checkmark on.
fn counter_plan(w: &Workload, d: Design, seed: u64, args: &SuiteArgs) -> Plan {
    checked_plan(w, d, seed, args, "gccheckmark=1")
}

/// A `rescan_offsets` run: a counter run with stackshadow verifying every cycle too, whose
/// records give the content oracle (it doubles a deep stack's run time, so the sweeps, which do
/// not report that oracle, leave it off).
fn offset_plan(w: &Workload, d: Design, seed: u64, args: &SuiteArgs) -> Plan {
    checked_plan(w, d, seed, args, "gccheckmark=1,stackshadow=1")
}

/// A deterministic run with the debug `knobs`.
fn checked_plan(w: &Workload, d: Design, seed: u64, args: &SuiteArgs, knobs: &str) -> Plan {
    Plan::new(w, d, seed)
        .with("--cycles", args.cycles())
        .with("--warmup-cycles", WARMUP_CYCLES)
        .with("--debug", knobs)
}

/// A pause run: threaded engine.
fn pause_plan(w: &Workload, d: Design, seed: u64, args: &SuiteArgs) -> Plan {
    Plan::new(w, d, seed)
        .with("--cycles", args.cycles())
        .with("--warmup-cycles", WARMUP_CYCLES)
        .with("--engine", "threaded")
}

/// Runs `plans`, writes `name.csv`/`.json` (and `name_mmu.*` when `mmu`), and returns the rows
/// with the wall time. `amend` completes each row with what the experiment measured beside the
/// runs.
fn run_and_write(
    name: &str,
    args: &SuiteArgs,
    plans: Vec<Plan>,
    mmu: bool,
    amend: impl Fn(&mut RunRow),
) -> Result<(Vec<RunRow>, f64), SuiteError> {
    let start = Instant::now();
    let outcomes = suite::execute(name, args, plans)?;
    let rows: Vec<RunRow> = outcomes
        .iter()
        .map(|o| {
            let mut row = RunRow::new(name, args.mode(), o);
            amend(&mut row);
            row
        })
        .collect();
    suite::write_results(args, name, &rows)?;
    if mmu {
        let mmu_rows: Vec<MmuRow> = outcomes
            .iter()
            .flat_map(|o| MmuRow::of(name, args.mode(), o))
            .collect();
        suite::write_results(args, &format!("{name}_mmu"), &mmu_rows)?;
    }
    Ok((rows, start.elapsed().as_secs_f64()))
}

/// The line every experiment ends with.
fn wrote(name: &str, args: &SuiteArgs, runs: usize, secs: f64) -> String {
    format!(
        "{name}: {runs} runs ({} mode) in {secs:.1} s -> {}",
        args.mode(),
        args.out.join(format!("{name}.csv")).display()
    )
}

/// `rescan_offsets`: every barrier offset × every workload, deterministic engine.
pub fn rescan_offsets(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "rescan_offsets";
    let mut plans = Vec::new();
    for w in standard_workloads(args)? {
        for d in OFFSET_DESIGNS {
            for &seed in &args.seeds() {
                plans.push(offset_plan(&w, d, seed, args));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans, false, |_| ())?;
    let mut out = wrote(name, args, rows.len(), secs);
    for r in &rows {
        if r.design == Design::Stkbar(GO_FIRST_OFFSET).name() && r.seed == args.seed {
            let label = workload_label(&r.workload, &r.replay);
            out.push_str(&format!(
                "\n  {label:<24} re-scan avoided at {GO_FIRST_OFFSET} B: {:6.2}%",
                100.0 * r.rescan_avoided
            ));
        }
    }
    Ok(out)
}

/// `depth_sweep`: `deep-oscillate` at growing depth; counters of the re-scanning designs
/// (deterministic) and pauses of every design (threaded).
pub fn depth_sweep(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let depths: &[usize] = match args.mode() {
        Mode::Quick => &[10, 100, 1_000, 10_000],
        Mode::Full => &[10, 30, 100, 300, 1_000, 3_000, 10_000],
    };
    let points = depths
        .iter()
        .map(|&depth| Workload::new("deep-oscillate", args.size(64), args.size(depth)))
        .collect();
    sweep("depth_sweep", args, points, ("depth", |r| r.depth))
}

/// `goroutine_sweep`: `many-shallow` (depth 10) at growing goroutine counts; counters
/// (deterministic) and pauses (threaded).
pub fn goroutine_sweep(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let counts: &[usize] = match args.mode() {
        Mode::Quick => &[10, 100, 1_000, 10_000],
        Mode::Full => &[10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000],
    };
    let points = counts
        .iter()
        .map(|&g| Workload::new("many-shallow", args.size(g), args.size(10)))
        .collect();
    sweep(
        "goroutine_sweep",
        args,
        points,
        ("goroutines", |r| r.goroutines),
    )
}

/// A sweep over `points`: each at every seed, the re-scanning designs on the deterministic engine
/// and every design on the threaded one. The summary names the median mark-termination pause per
/// design at the largest point of `axis` (its name and the row field it reads).
fn sweep(
    name: &str,
    args: &SuiteArgs,
    points: Vec<Workload>,
    (axis, at): (&str, fn(&RunRow) -> usize),
) -> Result<String, SuiteError> {
    let mut plans = Vec::new();
    for w in &points {
        for &seed in &args.seeds() {
            for d in RESCAN_DESIGNS {
                plans.push(counter_plan(w, d, seed, args));
            }
            for d in PAUSE_DESIGNS {
                plans.push(pause_plan(w, d, seed, args));
            }
            for d in IN_PAUSE_DESIGNS {
                plans.push(pause_plan(w, d, seed, args).with("--barrier-removal", "in-pause"));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans, false, |_| ())?;
    let mut out = wrote(name, args, rows.len(), secs);
    let threaded: Vec<&RunRow> = rows
        .iter()
        .filter(|r| r.engine == "threaded" && r.seed == args.seed)
        .collect();
    if let Some(top) = threaded.iter().map(|r| at(r)).max() {
        out.push_str(&format!("\n  mark termination p50 at {axis} {top}:"));
        for r in threaded.iter().filter(|r| at(r) == top) {
            out.push_str(&format!(
                " {} {:.1} µs ({} G re-scanned);",
                suite::series_name(&r.design, &r.barrier_removal),
                r.mark_term_ns_p50 as f64 / 1e3,
                r.rescan_goroutines_p50
            ));
        }
    }
    Ok(out)
}

/// Stores per write-barrier timing (a few milliseconds per design).
const WB_PROBE_STORES: usize = 1 << 20;

/// `barrier_designs`: full re-scan, stack barriers, hybrid and Yuasa on every workload but
/// `adversarial` (a correctness workload), threaded engine: pauses, MMU, mark time, write-barrier
/// cost and mutator throughput.
pub fn barrier_designs(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "barrier_designs";
    let workloads: Vec<Workload> = standard_workloads(args)?
        .into_iter()
        .filter(|w| w.name != "adversarial")
        .collect();
    // Each design's barrier, timed alone before the runs start.
    let mut wb_ns = Vec::new();
    for d in BARRIER_DESIGNS {
        let (barrier, _) = d.write_barrier();
        let design = gc::wbarrier::design(barrier)
            .ok_or_else(|| SuiteError::Failed(format!("{name}: no barrier design {barrier}")))?;
        let ns = gc::wbarrier::cost::measure_ns_per_store(design, true, WB_PROBE_STORES).map_err(
            |e| SuiteError::Failed(format!("{name}: timing the {barrier} barrier: {e}")),
        )?;
        wb_ns.push((d.name(), ns));
    }
    let mut plans = Vec::new();
    for w in &workloads {
        for d in BARRIER_DESIGNS {
            for &seed in &args.seeds() {
                plans.push(pause_plan(w, d, seed, args));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans, true, |row| {
        row.wb_ns_per_store = wb_ns
            .iter()
            .find(|(d, _)| *d == row.design)
            .map(|&(_, ns)| ns);
    })?;
    let mut out = wrote(name, args, rows.len(), secs);
    out.push_str("\n  write barrier, ns per store while marking:");
    for (d, ns) in &wb_ns {
        out.push_str(&format!(" {d} {ns:.1};"));
    }
    Ok(out)
}
