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

use serde::{Deserialize, Serialize};

use crate::shard::{self, RunItem};
use crate::suite::{
    self, CycleRow, Design, MmuRow, Mode, PauseRow, Plan, RunRow, Seed, SuiteArgs, SuiteError,
    Workload, workload_label,
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

/// The designs `scan_stall` compares: Go 1.5's full re-scan and Go 1.7's stack barriers (both
/// stop a goroutine for the scan of its whole stack, then re-scan at mark termination), Go 1.8's
/// hybrid barrier with the same whole-stack scan and no re-scan, and the hybrid barrier scanning
/// lazily behind a watermark (beyond Go: JDK ZGC's stack watermarks, JEP 376).
pub const SCAN_STALL_DESIGNS: [Design; 4] = [
    Design::FullRescan,
    Design::Stkbar(GO_FIRST_OFFSET),
    Design::Hybrid,
    Design::HybridLazy,
];

/// Scans a run must time before its 99th-percentile stall means something (the p99 of fewer
/// samples is one of the few largest); below it, figures and tables show the longest stall.
pub const STALL_P99_MIN_SAMPLES: u64 = crate::stats::P99_MIN_SAMPLES as u64;

/// Cycles every run makes before the ones it reports: the first cycle of a deep workload runs
/// while its goroutines are still building their stacks, and would dominate every steady-state
/// sum (a stack that grows during the cycle must be re-scanned from its scan-time SP down).
pub const WARMUP_CYCLES: u32 = 1;

/// Every workload at its standard size, the replay traces in `args.traces` included, as
/// `--workloads` selects them for `experiment`.
pub fn standard_workloads(experiment: &str, args: &SuiteArgs) -> Result<Vec<Workload>, SuiteError> {
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
    args.select_workloads(experiment, ws)
}

/// A counter run: deterministic engine, checkmark on.
fn counter_plan(w: &Workload, d: Design, seed: Seed, args: &SuiteArgs) -> Plan {
    checked_plan(w, d, seed, args, "gccheckmark=1")
}

/// A `rescan_offsets` run: a counter run with stackshadow verifying every cycle too, whose
/// records give the content oracle (it doubles a deep stack's run time, so the sweeps, which do
/// not report that oracle, leave it off).
fn offset_plan(w: &Workload, d: Design, seed: Seed, args: &SuiteArgs) -> Plan {
    checked_plan(w, d, seed, args, "gccheckmark=1,stackshadow=1")
}

/// A deterministic run with the debug `knobs`.
fn checked_plan(w: &Workload, d: Design, seed: Seed, args: &SuiteArgs, knobs: &str) -> Plan {
    Plan::new(w, d, seed)
        .with("--cycles", args.cycles())
        .with("--warmup-cycles", WARMUP_CYCLES)
        .with("--debug", knobs)
}

/// A pause run: threaded engine, [`SuiteArgs::pause_cycles`] cycles.
fn pause_plan(w: &Workload, d: Design, seed: Seed, args: &SuiteArgs) -> Plan {
    Plan::new(w, d, seed)
        .with("--cycles", args.pause_cycles())
        .with("--warmup-cycles", WARMUP_CYCLES)
        .with("--engine", "threaded")
}

/// What a sweep keeps of one run: its row, its MMU curve (empty unless asked for) and, for a
/// threaded run, its reported cycles.
#[derive(Debug, Serialize, Deserialize)]
struct SweepRun {
    row: RunRow,
    mmu: Vec<MmuRow>,
    cycles: Vec<CycleRow>,
}

/// Runs `plans` (one run list) into their rows, with their MMU rows when `mmu`.
fn run_rows(
    name: &str,
    args: &SuiteArgs,
    plans: Vec<Plan>,
    mmu: bool,
) -> Result<Vec<SweepRun>, SuiteError> {
    let mode = args.mode();
    suite::execute(name, args, plans, |o| SweepRun {
        row: RunRow::new(name, mode, o),
        mmu: if mmu {
            MmuRow::of(name, mode, o)
        } else {
            Vec::new()
        },
        cycles: CycleRow::of(name, mode, o),
    })
}

/// Writes `runs` to `name.csv`/`.json` (and `name_mmu.*` when `mmu`; when there are threaded
/// runs, `name_cycles.csv`, every one of their reported cycles — CSV only: the raw samples are a
/// plain table, and a JSON copy would triple the largest files of a results directory — and
/// `name_pauses.*`, each configuration's pauses over those cycles with intervals) and returns the
/// rows. `amend` completes each row with what the experiment measured beside the runs.
fn write_rows(
    name: &str,
    args: &SuiteArgs,
    runs: Vec<SweepRun>,
    mmu: bool,
    amend: impl Fn(&mut RunRow),
) -> Result<Vec<RunRow>, SuiteError> {
    let mut rows = Vec::with_capacity(runs.len());
    let mut mmu_rows = Vec::new();
    let mut cycle_rows = Vec::new();
    for run in runs {
        rows.push(run.row);
        mmu_rows.push(run.mmu);
        cycle_rows.extend(run.cycles);
    }
    rows.iter_mut().for_each(amend);
    suite::write_results(args, name, &rows)?;
    if !cycle_rows.is_empty() {
        suite::write_csv(&args.out.join(format!("{name}_cycles.csv")), &cycle_rows)?;
        let pauses = PauseRow::summarise(&cycle_rows, &rows);
        suite::write_results(args, &format!("{name}_pauses"), &pauses)?;
    }
    if mmu {
        let mmu_rows: Vec<MmuRow> = mmu_rows.into_iter().flatten().collect();
        suite::write_results(args, &format!("{name}_mmu"), &mmu_rows)?;
    }
    Ok(rows)
}

/// Runs `plans`, writes `name.csv`/`.json`, and returns the rows with the wall time.
fn run_and_write(
    name: &str,
    args: &SuiteArgs,
    plans: Vec<Plan>,
) -> Result<(Vec<RunRow>, f64), SuiteError> {
    let start = Instant::now();
    let runs = run_rows(name, args, plans, false)?;
    let rows = write_rows(name, args, runs, false, |_| ())?;
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

/// `rescan_offsets`: every barrier offset × every workload, deterministic engine (the counters),
/// and every offset on `deep-oscillate`, threaded engine (what each costs in pause).
pub fn rescan_offsets(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "rescan_offsets";
    let workloads = standard_workloads(name, args)?;
    let mut plans = Vec::new();
    for w in &workloads {
        for d in args.designs(&OFFSET_DESIGNS) {
            for &seed in &args.seeds() {
                plans.push(offset_plan(w, d, seed, args));
            }
        }
    }
    // What each offset costs in pause: `deep-oscillate` (where re-scans are deep) on real
    // threads, every offset, for the trade-off of re-scan left against pause and barrier traffic.
    for w in workloads.iter().filter(|w| w.name == "deep-oscillate") {
        for d in args.designs(&OFFSET_DESIGNS) {
            for &seed in &args.seeds() {
                plans.push(pause_plan(w, d, seed, args));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans)?;
    let mut out = wrote(name, args, rows.len(), secs);
    for r in &rows {
        if r.design == Design::Stkbar(GO_FIRST_OFFSET).name()
            && r.seed == args.seed
            && r.engine == "deterministic"
        {
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
    let points = args.select_workloads(name, points)?;
    let rescan_designs = args.designs(&RESCAN_DESIGNS);
    let pause_designs = args.designs(&PAUSE_DESIGNS);
    // Barriers removed inside the pause: only designs that install barriers have any.
    let in_pause_designs: Vec<Design> = args
        .designs(&IN_PAUSE_DESIGNS)
        .into_iter()
        .filter(|&d| d != Design::FullRescan)
        .collect();
    let mut plans = Vec::new();
    for w in &points {
        for &seed in &args.seeds() {
            for &d in &rescan_designs {
                plans.push(counter_plan(w, d, seed, args));
            }
            for &d in &pause_designs {
                plans.push(pause_plan(w, d, seed, args));
            }
            for &d in &in_pause_designs {
                plans.push(pause_plan(w, d, seed, args).with("--barrier-removal", "in-pause"));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans)?;
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

/// `barrier_designs`' timing of one design's write barrier, alone on the machine.
#[derive(Clone, Copy, Debug)]
struct WbProbe(Design);

impl RunItem for WbProbe {
    fn command(&self) -> String {
        let (barrier, _) = self.0.write_barrier();
        format!(
            "cargo bench -p gc --bench gc -- write_barrier/{barrier}  \
             # the store bed barrier_designs times for {} ({WB_PROBE_STORES} stores while marking)",
            self.0.name()
        )
    }

    fn alone(&self) -> bool {
        true
    }

    fn peak_bytes(&self) -> u64 {
        // The store bed: its objects, two words each, and the runtime around them.
        (WB_PROBE_STORES as u64 * 16).max(32 << 20)
    }
}

/// Nanoseconds per barriered store of `probe`'s barrier with a cycle in mark.
fn measure_wb(probe: &WbProbe) -> Result<f64, SuiteError> {
    let (barrier, _) = probe.0.write_barrier();
    let design = gc::wbarrier::design(barrier)
        .ok_or_else(|| SuiteError::Failed(format!("no barrier design {barrier}")))?;
    gc::wbarrier::cost::measure_ns_per_store(design, true, WB_PROBE_STORES)
        .map_err(|e| SuiteError::Failed(format!("timing the {barrier} barrier: {e}")))
}

/// `barrier_designs`: full re-scan, stack barriers, hybrid and Yuasa on every workload but
/// `adversarial` (a correctness workload), threaded engine: pauses, MMU, mark time, write-barrier
/// cost and mutator throughput.
pub fn barrier_designs(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "barrier_designs";
    let workloads: Vec<Workload> = standard_workloads(name, args)?
        .into_iter()
        .filter(|w| w.name != "adversarial")
        .collect();
    let designs = args.designs(&BARRIER_DESIGNS);
    let mut plans = Vec::new();
    for w in &workloads {
        for &d in &designs {
            for &seed in &args.seeds() {
                plans.push(pause_plan(w, d, seed, args));
            }
        }
    }
    let start = Instant::now();
    // Each design's barrier, timed alone before the runs start (the first run list); the runs
    // are the second, which does not depend on the first.
    let probes: Vec<WbProbe> = designs.iter().copied().map(WbProbe).collect();
    let wb_ns = shard::run_list(name, args, &probes, measure_wb);
    let runs = run_rows(name, args, plans, true);
    let (wb_ns, runs) = (wb_ns?, runs?);
    let wb_ns: Vec<(String, f64)> = probes.iter().map(|p| p.0.name()).zip(wb_ns).collect();
    let rows = write_rows(name, args, runs, true, |row| {
        row.wb_ns_per_store = wb_ns
            .iter()
            .find(|(d, _)| *d == row.design)
            .map(|&(_, ns)| ns);
    })?;
    let mut out = wrote(name, args, rows.len(), start.elapsed().as_secs_f64());
    out.push_str("\n  write barrier, ns per store while marking:");
    for (d, ns) in &wb_ns {
        out.push_str(&format!(" {d} {ns:.1};"));
    }
    Ok(out)
}

/// `scan_stall`: how long the scan of a goroutine's own stack keeps it from running, for each of
/// [`SCAN_STALL_DESIGNS`], against stack depth (at a fixed goroutine count) and against goroutine
/// count (at depth 1000), `deep-oscillate` on the threaded engine with one P per CPU and no
/// checker. An eager scan stops a goroutine for its whole stack, so its stall grows with depth;
/// a lazy one stops it for the first frames only, and the rest is scanned by markers or by the
/// goroutine itself as it returns through the watermark. What that moves elsewhere shows in the
/// same rows: the mark phase, the mark-termination pause and the mutator's throughput.
///
/// Every point has at least [`STALL_P99_MIN_SAMPLES`] scans unless `--scale` or `--cycles`
/// shrinks it (each goroutine's stack is scanned once a cycle): `--quick` sweeps depth at 16
/// goroutines × 10 cycles, `--full` at 64 goroutines × [`SuiteArgs::pause_cycles`] (67 cycles at 3 seeds).
pub fn scan_stall(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "scan_stall";
    let (depth_goroutines, counts): (usize, &[usize]) = match args.mode() {
        Mode::Quick => (16, &[16, 64, 256]),
        Mode::Full => (64, &[16, 64, 256, 1_024]),
    };
    let depths = [10, 100, 1_000, 10_000];
    let count_depth = 1_000;
    // The union of both sweeps' points, each once (they share one, and `--scale` can merge more).
    let mut points: Vec<(usize, usize)> = depths
        .iter()
        .map(|&d| (args.size(depth_goroutines), args.size(d)))
        .chain(
            counts
                .iter()
                .map(|&g| (args.size(g), args.size(count_depth))),
        )
        .collect();
    points.sort_unstable();
    points.dedup();
    let workloads: Vec<Workload> = points
        .iter()
        .map(|&(g, depth)| Workload::new("deep-oscillate", g, depth))
        .collect();
    let workloads = args.select_workloads(name, workloads)?;
    let mut plans = Vec::new();
    for w in &workloads {
        for d in args.designs(&SCAN_STALL_DESIGNS) {
            for &seed in &args.seeds() {
                plans.push(pause_plan(w, d, seed, args));
            }
        }
    }
    let (rows, secs) = run_and_write(name, args, plans)?;
    let mut out = wrote(name, args, rows.len(), secs);
    let runs: Vec<StallRun<'_>> = rows.iter().map(StallRun::of).collect();
    match StallHeadline::of(&runs) {
        Some(h) => out.push_str(&format!("\n  {h}")),
        None => out.push_str("\n  no hybrid and hybrid-lazy runs at the deepest point"),
    }
    Ok(out)
}

/// A run as the scan-stall headline reads it (from a [`RunRow`] or a results CSV).
#[derive(Clone, Copy, Debug)]
pub struct StallRun<'a> {
    /// [`Design::name`].
    pub design: &'a str,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// Scans timed: the stall samples.
    pub scan_stalls: u64,
    /// The 99th-percentile stall.
    pub scan_stall_ns_p99: u64,
    /// The longest stall.
    pub scan_stall_ns_max: u64,
    /// The median mark-termination pause.
    pub mark_term_ns_p50: u64,
    /// Mutator operations per second of wall time.
    pub mutator_ops_per_s: f64,
}

impl<'a> StallRun<'a> {
    /// The stall figures of `row`.
    pub fn of(row: &'a RunRow) -> StallRun<'a> {
        StallRun {
            design: &row.design,
            goroutines: row.goroutines,
            depth: row.depth,
            scan_stalls: row.scan_stalls,
            scan_stall_ns_p99: row.scan_stall_ns_p99,
            scan_stall_ns_max: row.scan_stall_ns_max,
            mark_term_ns_p50: row.mark_term_ns_p50,
            mutator_ops_per_s: row.mutator_ops_per_s,
        }
    }

    /// The run's tail stall: its p99, or its max when it has fewer than
    /// [`STALL_P99_MIN_SAMPLES`] scans (then `true`).
    pub fn tail_ns(&self) -> (u64, bool) {
        stall_tail_ns(
            self.scan_stalls,
            self.scan_stall_ns_p99,
            self.scan_stall_ns_max,
        )
    }
}

/// The tail stall of a run with `samples` scans: `p99`, or `max` (and `true`) when there are
/// fewer than [`STALL_P99_MIN_SAMPLES`].
pub fn stall_tail_ns(samples: u64, p99: u64, max: u64) -> (u64, bool) {
    if samples >= STALL_P99_MIN_SAMPLES {
        (p99, false)
    } else {
        (max, true)
    }
}

/// `scan_stall`'s headline: at the deepest point (the largest goroutine count there, should
/// there be several), the lazy scan's tail stall against the eager one's, and what the move cost:
/// both designs' mark-termination p50 and the lazy design's mutator throughput over the eager
/// one's. Each figure is the median over the point's seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StallHeadline {
    /// Goroutines at the point.
    pub goroutines: usize,
    /// Its depth.
    pub depth: usize,
    /// `hybrid`'s tail stall (p99, or max where too few scans).
    pub eager_tail_ns: f64,
    /// `hybrid-lazy`'s.
    pub lazy_tail_ns: f64,
    /// Whether either tail is a max rather than a p99.
    pub tail_is_max: bool,
    /// `hybrid`'s mark-termination p50.
    pub eager_mark_term_ns: f64,
    /// `hybrid-lazy`'s.
    pub lazy_mark_term_ns: f64,
    /// `hybrid-lazy`'s mutator operations per second over `hybrid`'s.
    pub throughput_ratio: f64,
    /// Seeds behind each figure (the fewer of the two designs').
    pub seeds: usize,
}

impl StallHeadline {
    /// The headline of `runs`; `None` without both hybrid designs at the deepest point.
    pub fn of(runs: &[StallRun<'_>]) -> Option<StallHeadline> {
        let depth = runs.iter().map(|r| r.depth).max()?;
        let goroutines = runs
            .iter()
            .filter(|r| r.depth == depth)
            .map(|r| r.goroutines)
            .max()?;
        let of = |d: Design| -> Vec<&StallRun<'_>> {
            let name = d.name();
            runs.iter()
                .filter(|r| r.depth == depth && r.goroutines == goroutines && r.design == name)
                .collect()
        };
        let (eager, lazy) = (of(Design::Hybrid), of(Design::HybridLazy));
        if eager.is_empty() || lazy.is_empty() {
            return None;
        }
        let med = |rs: &[&StallRun<'_>], f: &dyn Fn(&StallRun<'_>) -> f64| {
            crate::paper::median(rs.iter().map(|r| f(r)).collect())
        };
        let tail = |r: &StallRun<'_>| r.tail_ns().0 as f64;
        let mark_term = |r: &StallRun<'_>| r.mark_term_ns_p50 as f64;
        let ops = |r: &StallRun<'_>| r.mutator_ops_per_s;
        Some(StallHeadline {
            goroutines,
            depth,
            eager_tail_ns: med(&eager, &tail),
            lazy_tail_ns: med(&lazy, &tail),
            tail_is_max: eager.iter().chain(&lazy).any(|r| r.tail_ns().1),
            eager_mark_term_ns: med(&eager, &mark_term),
            lazy_mark_term_ns: med(&lazy, &mark_term),
            throughput_ratio: med(&lazy, &ops) / med(&eager, &ops),
            seeds: eager.len().min(lazy.len()),
        })
    }

    /// How many times shorter the lazy tail stall is than the eager one.
    pub fn stall_ratio(&self) -> f64 {
        self.eager_tail_ns / self.lazy_tail_ns
    }

    /// `p99`, or `max` when either tail is a max.
    pub fn tail_name(&self) -> &'static str {
        if self.tail_is_max { "max" } else { "p99" }
    }
}

impl std::fmt::Display for StallHeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {} G × depth {}: scan stall {}, hybrid-lazy {:.1} µs vs hybrid {:.1} µs ({:.0}× shorter); \
             mark termination p50, hybrid-lazy {:.1} µs vs hybrid {:.1} µs; hybrid-lazy's mutator \
             throughput {:.2}× hybrid's",
            self.goroutines,
            self.depth,
            self.tail_name(),
            self.lazy_tail_ns / 1e3,
            self.eager_tail_ns / 1e3,
            self.stall_ratio(),
            self.lazy_mark_term_ns / 1e3,
            self.eager_mark_term_ns / 1e3,
            self.throughput_ratio,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(design: &'static str, g: usize, depth: usize, p99: u64, ops: f64) -> StallRun<'static> {
        StallRun {
            design,
            goroutines: g,
            depth,
            scan_stalls: (g * 10) as u64,
            scan_stall_ns_p99: p99,
            scan_stall_ns_max: 10 * p99,
            mark_term_ns_p50: 50_000,
            mutator_ops_per_s: ops,
        }
    }

    #[test]
    fn a_tail_is_the_p99_from_100_scans_and_the_max_below() {
        assert_eq!(stall_tail_ns(100, 7, 9), (7, false));
        assert_eq!(stall_tail_ns(99, 7, 9), (9, true));
    }

    #[test]
    fn the_headline_compares_the_hybrid_designs_at_the_deepest_point() {
        let runs = [
            run("hybrid", 64, 1_000, 300_000, 1e7),
            run("hybrid-lazy", 64, 1_000, 3_000, 1e7),
            run("hybrid", 16, 10_000, 900_000, 2e7),
            run("hybrid", 16, 10_000, 1_100_000, 2e7),
            run("hybrid-lazy", 16, 10_000, 5_000, 1.5e7),
            run("hybrid-lazy", 16, 10_000, 5_000, 1.5e7),
            run("full-rescan", 16, 10_000, 9_000_000, 2e7),
        ];
        let h = StallHeadline::of(&runs).expect("both designs at depth 10000");
        assert_eq!((h.goroutines, h.depth, h.seeds), (16, 10_000, 2));
        assert!(!h.tail_is_max);
        assert_eq!(h.eager_tail_ns, 1_000_000.0, "the median of the seeds");
        assert_eq!(h.stall_ratio(), 200.0);
        assert_eq!(h.throughput_ratio, 0.75);
        assert!(h.to_string().contains("(200× shorter)"), "{h}");
        assert_eq!(StallHeadline::of(&runs[..2]).map(|h| h.depth), Some(1_000));
        assert_eq!(StallHeadline::of(&runs[2..4]), None, "no lazy run there");
    }
}

/// The designs `sensitivity` varies the runtime's settings under: Go 1.5's full re-scan, Go
/// 1.7's stack barriers, Go 1.8's hybrid barrier, and the hybrid barrier with lazy stack scans.
pub const SENSITIVITY_DESIGNS: [Design; 4] = [
    Design::FullRescan,
    Design::Stkbar(GO_FIRST_OFFSET),
    Design::Hybrid,
    Design::HybridLazy,
];

/// One setting `sensitivity` varies, and the values it takes around the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    /// GOMAXPROCS (`--procs`).
    Procs,
    /// GOGC (`--gogc`).
    Gogc,
    /// The heap minimum (`--heap-minimum`).
    HeapMinimum,
    /// The collector's CPU share (`--gc-share`).
    GcShare,
}

/// A point of `sensitivity`: every setting's value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Settings {
    procs: usize,
    gogc: u32,
    heap_minimum: u64,
    gc_share: f64,
}

impl Settings {
    /// `self` with `setting` at `value`.
    fn with(self, setting: Setting, value: f64) -> Settings {
        match setting {
            Setting::Procs => Settings {
                procs: value as usize,
                ..self
            },
            Setting::Gogc => Settings {
                gogc: value as u32,
                ..self
            },
            Setting::HeapMinimum => Settings {
                heap_minimum: value as u64,
                ..self
            },
            Setting::GcShare => Settings {
                gc_share: value,
                ..self
            },
        }
    }

    /// `plan` (a pause run) with these settings.
    fn plan(self, plan: Plan) -> Plan {
        plan.with("--procs", self.procs)
            .with("--gogc", self.gogc)
            .with("--heap-minimum", self.heap_minimum)
            .with("--gc-share", self.gc_share)
    }
}

/// The base point and each setting's values (the base's among them): GOMAXPROCS 1, 2, 4 and 8,
/// 16 where the machine has that many CPUs; GOGC 50, 100, 200; the heap minimum a quarter, one
/// and four times the base's; the GC share 0.1, 0.25 (Go's), 0.5. `--procs`, `--gogc`,
/// `--heap-minimum` and `--gc-share` move the base.
fn sensitivity_axes(args: &SuiteArgs) -> (Settings, Vec<(Setting, Vec<f64>)>) {
    let base = Settings {
        procs: args.procs.unwrap_or(2),
        gogc: args.gogc.unwrap_or(100),
        heap_minimum: args.heap_minimum_or(crate::testbed::DEFAULT_HEAP_MINIMUM),
        gc_share: args.gc_share.unwrap_or(0.25),
    };
    let cpus = crate::limits::cpus();
    let with_base = |mut values: Vec<f64>, b: f64| {
        if !values.contains(&b) {
            values.push(b);
            values.sort_by(f64::total_cmp);
        }
        values
    };
    let procs = [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&p| p <= 4 || p <= cpus)
        .map(|p| p as f64)
        .collect();
    let heap = base.heap_minimum as f64;
    let axes = vec![
        (Setting::Procs, with_base(procs, base.procs as f64)),
        (
            Setting::Gogc,
            with_base(vec![50.0, 100.0, 200.0], f64::from(base.gogc)),
        ),
        (
            Setting::HeapMinimum,
            vec![(heap / 4.0).max(65536.0).round(), heap, heap * 4.0],
        ),
        (
            Setting::GcShare,
            with_base(vec![0.1, 0.25, 0.5], base.gc_share),
        ),
    ];
    (base, axes)
}

/// `sensitivity`: the pauses of full re-scan, stack barriers and the hybrid barrier (eager and
/// lazy) as GOMAXPROCS, GOGC, the heap minimum and the collector's CPU share each move away from
/// a base (the others held there), on `deep-oscillate` (deep stacks: re-scans matter) and
/// `many-shallow` (many goroutines), threaded engine. Each point runs once however many axes
/// it lies on; `sensitivity_pauses.csv` holds every point's pooled pauses with its settings, so
/// an axis is the rows whose other settings are the base's.
pub fn sensitivity(args: &SuiteArgs) -> Result<String, SuiteError> {
    args.validate()?;
    let name = "sensitivity";
    let (deep, many) = match args.mode() {
        Mode::Quick => ((16, 300), (1_000, 10)),
        Mode::Full => ((64, 1_000), (10_000, 10)),
    };
    let workloads = args.select_workloads(
        name,
        vec![
            Workload::new("deep-oscillate", args.size(deep.0), args.size(deep.1)),
            Workload::new("many-shallow", args.size(many.0), args.size(many.1)),
        ],
    )?;
    let (base, axes) = sensitivity_axes(args);
    let mut points = vec![base];
    for (setting, values) in &axes {
        for &v in values {
            let p = base.with(*setting, v);
            if !points.contains(&p) {
                points.push(p);
            }
        }
    }
    let mut plans = Vec::new();
    for w in &workloads {
        for d in args.designs(&SENSITIVITY_DESIGNS) {
            for &p in &points {
                for &seed in &args.seeds() {
                    plans.push(p.plan(pause_plan(w, d, seed, args)));
                }
            }
        }
    }
    let start = Instant::now();
    let runs = run_rows(name, args, plans, false)?;
    let rows = write_rows(name, args, runs, false, |_| ())?;
    let mut out = wrote(name, args, rows.len(), start.elapsed().as_secs_f64());
    // Per workload and design, each axis's median mark-termination pauses (µs), in value order.
    let p50 = |w: &Workload, d: &str, s: Settings| -> Option<f64> {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| {
                (&r.workload, r.goroutines, r.depth, r.design.as_str())
                    == (&w.name, w.goroutines, w.depth, d)
                    && r.procs == s.procs
                    && r.gogc == Some(s.gogc)
                    && r.heap_minimum == s.heap_minimum
                    && r.gc_share == s.gc_share
            })
            .map(|r| r.mark_term_ns_p50 as f64 / 1e3)
            .collect();
        crate::stats::Median::of(&v).map(|m| m.value)
    };
    for w in &workloads {
        for d in args.designs(&SENSITIVITY_DESIGNS) {
            out.push_str(&format!(
                "\n  {} {}×{} {:<12} mark-term p50 µs:",
                w.name,
                w.goroutines,
                w.depth,
                d.name()
            ));
            for (setting, values) in &axes {
                let shown: Vec<String> = values
                    .iter()
                    .map(|&v| p50(w, &d.name(), base.with(*setting, v)))
                    .map(|m| m.map_or_else(|| "–".into(), |m| format!("{m:.0}")))
                    .collect();
                let label = match setting {
                    Setting::Procs => "procs",
                    Setting::Gogc => "gogc",
                    Setting::HeapMinimum => "heap-min",
                    Setting::GcShare => "gc-share",
                };
                out.push_str(&format!(" {label} {}", shown.join("/")));
            }
        }
    }
    Ok(out)
}
