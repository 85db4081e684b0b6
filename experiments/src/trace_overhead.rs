//! `trace_overhead`: what execution tracing (seed 001) costs a run, JSON export included.
//!
//! Invariant: the traced and untraced runs of a row differ only in `--trace`: each pair is the
//! same `testbed` configuration, resolved by [`testbed::resolve`] from the same flags, so the
//! figure is the tracer's cost and nothing else. Under the deterministic engine tracing changes
//! no counter (the tracer draws no random number and adds no step), so both runs execute the
//! same operations and `mutator_ops` is the same; under the threaded engine the schedule is
//! real and each run differs a little.
//!
//! Algorithm. For each workload (`mixed`, `many-shallow`, `switch-heavy`, and `deep-oscillate`
//! with a barrier on every frame, the most barrier events), each engine (deterministic with 4
//! Ps; threaded with `--procs`, default one per CPU) and each seed, run `reps` times with
//! tracing off and on, alternating, one run at a time so runs never share the machine. A traced
//! run streams its events through a [`crate::trace_export::ChromeTraceWriter`] into a
//! temporary directory, so its wall time — the engine's run plus finishing the trace file
//! ([`testbed::Timings`]) — includes the JSON encoding and the write. A row reports the median
//! run of each side (the upper median for an even count: a real run, whose counters go with
//! its time), `overhead = wall_ms_on / wall_ms_off − 1`, the traced run's events, trace bytes
//! and buffers, and the mark-termination p50 of both (tracing writes events inside the pause).
//! Every run uses a 1 MiB heap minimum unless `--heap-minimum` says otherwise, so cycles come
//! often and a run is short; `switch-heavy`, a goroutine switch per operation, is the worst
//! case: one event per operation.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::shard::{self, RunItem};
use crate::suite::{self, Design, Mode, Plan, Seed, SuiteArgs, SuiteError, Workload};
use crate::testbed::{self, ConfigReport, Timings};

/// The experiment's name: its files are `OUT/trace_overhead.csv` and `.json`.
pub const NAME: &str = "trace_overhead";

/// The workloads: `(name, goroutines, depth, design)`; the design is Go's 1 KiB barriers but
/// for `deep-oscillate`, with a barrier on every frame.
const WORKLOADS: [(&str, usize, usize, Design); 4] = [
    ("mixed", 64, 200, Design::Stkbar(1024)),
    ("many-shallow", 1000, 10, Design::Stkbar(1024)),
    ("switch-heavy", 64, 50, Design::Stkbar(1024)),
    ("deep-oscillate", 32, 1000, Design::StkbarAll),
];

/// Ps of the deterministic engine (the testbed's default, so counters do not depend on the
/// machine).
const DETERMINISTIC_PROCS: usize = 4;

/// The heap minimum of every run unless `--heap-minimum` is given: 1 MiB.
const HEAP_MINIMUM: u64 = 1 << 20;

/// Repetitions per side: 3 with `--quick`, 7 with `--full`.
pub fn default_reps(mode: Mode) -> usize {
    match mode {
        Mode::Quick => 3,
        Mode::Full => 7,
    }
}

/// GC cycles per run: 3 with `--quick`, 10 with `--full`.
fn default_cycles(mode: Mode) -> u32 {
    match mode {
        Mode::Quick => 3,
        Mode::Full => 10,
    }
}

/// `trace_overhead`'s flags beyond the suite's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Runs per side and configuration [default: [`default_reps`]].
    pub reps: Option<usize>,
}

/// One configuration: tracing off against on.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Workload.
    pub workload: String,
    /// `deterministic` or `threaded`.
    pub engine: String,
    /// Ps.
    pub procs: usize,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// Seed.
    pub seed: u64,
    /// GC cycles per run.
    pub cycles: u32,
    /// Runs per side.
    pub reps: usize,
    /// Median wall time untraced, ms.
    pub wall_ms_off: f64,
    /// Median wall time traced (the run plus finishing the trace file), ms.
    pub wall_ms_on: f64,
    /// `wall_ms_on / wall_ms_off - 1`.
    pub overhead: f64,
    /// Mutator operations of the median traced run.
    pub mutator_ops: u64,
    /// Events the median traced run wrote.
    pub events: u64,
    /// `events` per second of `wall_ms_on`.
    pub events_per_sec: f64,
    /// Size of its trace file.
    pub trace_bytes: u64,
    /// Trace buffers it allocated (each 64 KiB).
    pub buffers_allocated: u64,
    /// Median mark-termination pause of the median untraced run.
    pub mark_term_ns_p50_off: u64,
    /// Median mark-termination pause of the median traced run.
    pub mark_term_ns_p50_on: u64,
}

/// One configuration in the JSON summary: its row, the resolved configuration of the untraced
/// run (the traced one adds only `trace`), the command that reproduces it (add `--trace FILE`
/// for the traced side), every run's wall time, and of each traced run's the part spent
/// finishing the trace file (draining the encoder, the metadata, `fsync`, the rename).
#[derive(Debug, Serialize)]
struct Config {
    #[serde(flatten)]
    row: Row,
    command: String,
    config: ConfigReport,
    wall_ms_off_runs: Vec<f64>,
    wall_ms_on_runs: Vec<f64>,
    finish_ms_on_runs: Vec<f64>,
}

/// `trace_overhead.json`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    experiment: &'static str,
    mode: Mode,
    reps: usize,
    seeds: &'a [Seed],
    cpus: usize,
    heap_minimum: u64,
    configs: &'a [Config],
}

/// One run's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Run {
    /// The engine's run plus finishing the outputs.
    wall: Duration,
    /// Finishing the outputs.
    finish: Duration,
    /// Mutator operations.
    mutator_ops: u64,
    /// The median mark-termination pause.
    mark_term_ns_p50: u64,
    /// Events the tracer wrote (0 untraced).
    events: u64,
    /// Trace buffers it allocated.
    buffers_allocated: u64,
    trace_bytes: u64,
}

/// One configuration's runs: `reps` untraced and `reps` traced, alternating, one at a time.
#[derive(Debug)]
struct ConfigRuns {
    plan: Plan,
    config: ConfigReport,
    reps: usize,
}

impl RunItem for ConfigRuns {
    fn command(&self) -> String {
        let c = self.plan.command();
        format!(
            "{c} && {c} --trace trace.json  # trace_overhead alternates the two {} times",
            self.reps
        )
    }

    fn engine(&self) -> Option<&'static str> {
        RunItem::engine(&self.plan)
    }

    fn alone(&self) -> bool {
        // Timings: every run has the machine to itself.
        true
    }

    fn peak_bytes(&self) -> u64 {
        self.plan.peak_bytes()
    }
}

/// A configuration's runs, each side in run order.
#[derive(Debug, Serialize, Deserialize)]
struct Sides {
    off: Vec<Run>,
    on: Vec<Run>,
}

/// Runs `c`'s reps, alternating off and on, the traces in a temporary directory.
fn run_config(c: &ConfigRuns) -> Result<Sides, SuiteError> {
    let dir = tempfile::Builder::new()
        .prefix("stkbar-trace-overhead-")
        .tempdir()
        .map_err(|e| {
            SuiteError::Failed(format!("{NAME}: cannot create a temporary directory: {e}"))
        })?;
    let trace = dir.path().join("trace.json");
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..c.reps {
        off.push(run_once(&c.plan, None)?);
        on.push(run_once(&c.plan, Some(&trace))?);
    }
    Ok(Sides { off, on })
}

/// Runs `plan` once, traced into `trace` if given; the trace file is removed afterwards.
fn run_once(plan: &Plan, trace: Option<&Path>) -> Result<Run, SuiteError> {
    let plan = match trace {
        Some(path) => plan.clone().with("--trace", path.display()),
        None => plan.clone(),
    };
    let r = suite::resolve(&plan)?;
    let (report, Timings { run, outputs }) = testbed::run_measured(&r).map_err(|e| {
        let msg = suite::run_failed(&e, &plan.command());
        if e.is_checker_violation() {
            SuiteError::Violation(msg)
        } else {
            SuiteError::Failed(msg)
        }
    })?;
    let trace_bytes = match trace {
        Some(path) => {
            let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
            // Best effort: the directory is temporary and removed at the end anyway.
            let _ = std::fs::remove_file(path);
            bytes
        }
        None => 0,
    };
    let stats = report.trace.unwrap_or_default();
    Ok(Run {
        wall: run + outputs,
        finish: outputs,
        mutator_ops: report.totals.mutator_ops,
        mark_term_ns_p50: report.totals.mark_term_ns_p50,
        events: stats.events,
        buffers_allocated: stats.buffers_allocated,
        trace_bytes,
    })
}

/// The upper-median run by wall time.
fn median(runs: &[Run]) -> &Run {
    let mut order: Vec<&Run> = runs.iter().collect();
    order.sort_by_key(|r| r.wall);
    order[order.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `trace_overhead`: see the module comment.
pub fn trace_overhead(args: &SuiteArgs, opts: Options) -> Result<String, SuiteError> {
    args.validate()?;
    let reps = opts.reps.unwrap_or_else(|| default_reps(args.mode()));
    let why = "medians of more are no steadier, and the runs go one at a time";
    crate::limits::check_range("--reps", reps, 1, crate::limits::MAX_REPS, why)
        .map_err(SuiteError::BadInput)?;
    let cycles = args.cycles.unwrap_or_else(|| default_cycles(args.mode()));
    let heap_minimum = args.heap_minimum_or(HEAP_MINIMUM);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threaded_procs = args.procs.unwrap_or(cpus);
    // One seed unless --seeds asks for more: the pairs, not the seeds, carry the figure.
    let seeds = args.seeds_by_default(1);
    args.refuse_offsets(NAME)?;
    let labels: Vec<String> = WORKLOADS.iter().map(|w| w.0.to_owned()).collect();
    if !labels.iter().any(|w| args.wants_workload(w)) {
        return Err(args.no_workload_kept(NAME, &labels));
    }
    let mut plans = Vec::new();
    for (name, goroutines, depth, design) in WORKLOADS {
        if !args.wants_workload(name) {
            continue;
        }
        let workload = Workload::new(name, args.size(goroutines), args.size(depth));
        for (engine, procs) in [
            ("deterministic", DETERMINISTIC_PROCS),
            ("threaded", threaded_procs),
        ] {
            for &seed in &seeds {
                let plan = Plan::new(&workload, design, seed)
                    .with("--engine", engine)
                    .with("--procs", procs)
                    .with("--cycles", cycles)
                    .with("--heap-minimum", heap_minimum);
                let plan = args.apply(plan);
                // Resolve now: a bad plan is bad input before anything runs.
                let config = suite::resolve(&plan)?.report;
                plans.push((plan, config));
            }
        }
    }
    let start = Instant::now();
    let runs: Vec<ConfigRuns> = plans
        .into_iter()
        .map(|(plan, config)| ConfigRuns { plan, config, reps })
        .collect();
    let sides = shard::run_list(NAME, args, &runs, run_config)?;
    let mut configs = Vec::new();
    for (c, Sides { off, on }) in runs.into_iter().zip(sides) {
        let (m_off, m_on) = (median(&off), median(&on));
        let (wall_ms_off, wall_ms_on) = (ms(m_off.wall), ms(m_on.wall));
        let config = c.config;
        let row = Row {
            workload: config.workload.to_owned(),
            engine: config.engine.to_owned(),
            procs: config.procs,
            goroutines: config.goroutines,
            depth: config.depth,
            seed: config.seed,
            cycles: config.cycles,
            reps,
            wall_ms_off,
            wall_ms_on,
            overhead: wall_ms_on / wall_ms_off.max(1e-9) - 1.0,
            mutator_ops: m_on.mutator_ops,
            events: m_on.events,
            events_per_sec: m_on.events as f64 / (wall_ms_on / 1e3).max(1e-12),
            trace_bytes: m_on.trace_bytes,
            buffers_allocated: m_on.buffers_allocated,
            mark_term_ns_p50_off: m_off.mark_term_ns_p50,
            mark_term_ns_p50_on: m_on.mark_term_ns_p50,
        };
        configs.push(Config {
            row,
            command: c.plan.command(),
            config,
            wall_ms_off_runs: off.iter().map(|r| ms(r.wall)).collect(),
            wall_ms_on_runs: on.iter().map(|r| ms(r.wall)).collect(),
            finish_ms_on_runs: on.iter().map(|r| ms(r.finish)).collect(),
        });
    }
    let rows: Vec<Row> = configs.iter().map(|c| c.row.clone()).collect();
    suite::write_csv(&args.out.join(format!("{NAME}.csv")), &rows)?;
    suite::write_json(
        &args.out.join(format!("{NAME}.json")),
        &Summary {
            experiment: NAME,
            mode: args.mode(),
            reps,
            seeds: &seeds,
            cpus,
            heap_minimum,
            configs: &configs,
        },
    )?;
    Ok(summary(args, &rows, start.elapsed()))
}

/// The lines the binary prints: where the files went, then one line per row.
fn summary(args: &SuiteArgs, rows: &[Row], took: Duration) -> String {
    let mut out = format!(
        "{NAME}: {} configurations × {} runs each side ({} mode) in {:.1} s -> {}",
        rows.len(),
        rows.first().map_or(0, |r| r.reps),
        args.mode(),
        took.as_secs_f64(),
        args.out.join(format!("{NAME}.csv")).display()
    );
    for r in rows {
        out.push_str(&format!(
            "\n  {:<15} {:<13} P{} off {:>8.1} ms, on {:>8.1} ms ({:+6.1} %), {:>9} events ({:.2} M/s), {:.1} MiB",
            r.workload,
            r.engine,
            r.procs,
            r.wall_ms_off,
            r.wall_ms_on,
            100.0 * r.overhead,
            r.events,
            r.events_per_sec / 1e6,
            r.trace_bytes as f64 / f64::from(1 << 20),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ms: u64) -> Run {
        Run {
            wall: Duration::from_millis(ms),
            finish: Duration::ZERO,
            mutator_ops: 0,
            mark_term_ns_p50: 0,
            events: 0,
            buffers_allocated: 0,
            trace_bytes: ms,
        }
    }

    #[test]
    fn the_median_is_a_real_run_the_upper_one_for_even_counts() {
        let odd = [run(5), run(1), run(3)];
        assert_eq!(median(&odd).trace_bytes, 3);
        let even = [run(4), run(1), run(3), run(2)];
        assert_eq!(median(&even).trace_bytes, 3);
        assert_eq!(median(&[run(7)]).trace_bytes, 7);
    }

    #[test]
    fn every_workload_resolves_on_both_engines() {
        for (name, goroutines, depth, design) in WORKLOADS {
            for engine in ["deterministic", "threaded"] {
                let workload = Workload::new(name, goroutines, depth);
                let plan = Plan::new(&workload, design, 1).with("--engine", engine);
                assert!(suite::resolve(&plan).is_ok(), "{}", plan.command());
            }
        }
    }
}
