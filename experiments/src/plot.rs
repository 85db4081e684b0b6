//! The `plot` binary's library: every figure of the report, regenerated from the experiment CSVs.
//!
//! Invariant: a figure is drawn only from input that parsed completely. Every CSV is read and
//! checked (each needed column present, each numeric cell a number) *before* the first figure is
//! drawn, so bad input fails the whole run with one [`PlotError`] naming the file, the line and the
//! column, and never leaves half a set of figures behind. Each output file appears atomically: it
//! is written to a temporary file in its own directory and renamed over the target, so a reader
//! sees the old figure or the new one, never a torn one.
//!
//! What it does. The run CSVs (`rescan_offsets.csv`, `depth_sweep.csv`, `goroutine_sweep.csv`,
//! `barrier_designs.csv`) share one column set, read by name (unknown columns are ignored); byte
//! counters and counts in them are sums over the run's `cycles` GC cycles, so every per-cycle
//! figure divides by `cycles` row by row. Rows that differ only in `seed` are one point: the mean,
//! with each seed's value drawn as a small open circle when the seeds disagree; an error bar is
//! always an interval a statistic gives, and the caption says which. (`barrier_designs.csv`
//! itself feeds no figure; its companion `barrier_designs_mmu.csv` does.) The figures:
//!
//! * `rescan_avoided_vs_offset` — share of the mark-termination stack re-scan that stack barriers
//!   avoid, against the first barrier's offset (Go's `firstStackBarrierOffset`): a barrier at every
//!   frame (`stkbar-all`), each `stkbar-<N>`, and none (`full-rescan`); one line per workload.
//! * `offset_tradeoff` — the price of that on `deep-oscillate`, one point per barrier setting at
//!   its share of the full re-scan left to do: (a) the pooled mark-termination median with its
//!   95 % bootstrap interval, from the threaded runs `rescan_offsets` makes of every setting
//!   (`rescan_offsets_pauses.csv`; the panel is left out without it), and (b) barrier traffic,
//!   installs plus hits per cycle.
//! * `rescan_vs_depth` — stack bytes re-scanned per cycle against stack depth: with stack barriers
//!   (`stkbar-1024`), the oracle (only what changed since `scanstack`), and the full re-scan.
//! * `pause_vs_depth`, `pause_vs_goroutines` — the threaded engine's mark-termination pause (p50)
//!   per barrier design, against a dashed 50 µs line (proposal 17503's worst-case goal). Where the
//!   sweep wrote its pooled pauses (`depth_sweep_pauses.csv`, `goroutine_sweep_pauses.csv`), each
//!   point is a configuration's median over every cycle of its runs and the error bar its 95 %
//!   bootstrap interval instead of the seeds' circles; the caption says which.
//! * `mmu` — minimum mutator utilization against window length, small multiples (a panel per
//!   workload), one solid line per design with idle workers' marking counted as the idle time it
//!   filled, and dashed in the same colour the curve its pauses alone would give.
//!
//! `scan_stall.csv` is a run CSV too, read into rows of its own (the stall columns); its
//! figure, one line per design:
//!
//! * `scan_stall` — how long the scan of a goroutine's own stack kept it from running, the tail
//!   of each run's scans (p99 where the run timed at least
//!   [`STALL_P99_MIN_SAMPLES`](crate::sweeps::STALL_P99_MIN_SAMPLES) scans, otherwise the max, as
//!   the legend says), against stack depth at the depth sweep's goroutine count and against
//!   goroutine count at the goroutine sweep's depth; below, what a lazy scan moves elsewhere: the
//!   mark phase per cycle and the mutator's throughput over eager `hybrid`'s (same seed and
//!   point), both against depth.
//!
//! The debug-mode CSVs have columns of their own, also read by name. `sanitizer_leak.csv` holds
//! one row per GC cycle (`step`) per mode per seed; `wbshadow_faults.csv` one row per mode and
//! injected drop fraction, already summed over that cell's seeds (so its points have no range
//! unless rows of several workloads share a cell; they are then one point, like seeds). Their
//! figures, one line per mode (each mode keeps its colour across figures):
//!
//! * `sanitizer_leak` — the sanitizer's metadata (top) and the live heap (bottom) per GC cycle,
//!   with and without free notification, so that metadata growth the live heap does not share
//!   shows as metadata the sanitizer never released.
//! * `wbshadow_detection_vs_drop` — runs ending with a checker report, as a share of the runs in
//!   which at least one write barrier was dropped, against the drop fraction.
//! * `wbshadow_delay_vs_drop` — heap stores from the dropped barrier a report names to the report:
//!   the median as the line, an error bar up to the maximum (not a range over seeds).
//!
//! `profiler_switch.csv` holds one row per profiled run (workload, engine, the handler's rules —
//! `go1.7`, `seed003` or `none` — and seed); its figure sums the seeds of each workload, engine
//! and rule set:
//!
//! * `profiler_switch` — grouped bars per workload, for each engine (`det`, `thr`) one panel for
//!   Go 1.7's rules above one for seed 003's: where the samples went, as a share of them (a
//!   goroutine traceback, a g0 traceback, or `System` by the check that refused: g is g0, SP off
//!   g's stack, PC in a function that sets SP, PC in `stackBarrier`, the stkbar lock held); below, malformed tracebacks per 10⁶ samples per workload for each rule set and engine
//!   on a linear axis, each bar labelled with its value so the checked rules' zeros read as zeros.
//!
//! A CSV that does not exist skips its figures (reported as an [`Event`]); one that exists but
//! does not parse is an error. Colours are fixed per workload, design and mode, so a line keeps its
//! colour from figure to figure, and each series also has its own marker shape, so lines that
//! coincide stay distinguishable. Text is drawn with DejaVu Sans compiled into the binary
//! (machines running this have no system fonts), registered once as `sans-serif`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::suite::Design;

use clap::Parser;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters_backend::{BackendCoord, DrawingErrorKind};

use crate::cli::write_atomically;

/// The run CSV holding the first-barrier-offset sweep.
pub const RESCAN_OFFSETS_CSV: &str = "rescan_offsets.csv";
/// The run CSV holding the stack-depth sweep.
pub const DEPTH_SWEEP_CSV: &str = "depth_sweep.csv";
/// The run CSV holding the goroutine-count sweep.
pub const GOROUTINE_SWEEP_CSV: &str = "goroutine_sweep.csv";
/// The MMU curves of the barrier-design comparison.
pub const MMU_CSV: &str = "barrier_designs_mmu.csv";
/// The offset sweep's pooled pauses (optional: the trade-off figure's pause panel).
pub const OFFSET_PAUSES_CSV: &str = "rescan_offsets_pauses.csv";
/// The depth sweep's pooled pauses (optional: the pause figure's points and intervals).
pub const DEPTH_PAUSES_CSV: &str = "depth_sweep_pauses.csv";
/// The goroutine sweep's pooled pauses (optional, likewise).
pub const GOROUTINE_PAUSES_CSV: &str = "goroutine_sweep_pauses.csv";

/// Proposal 17503's goal for a whole stop-the-world pause, in µs: the line the pause figures are
/// read against.
const PAUSE_GOAL_US: f64 = 50.0;

/// Figures drawn from [`RESCAN_OFFSETS_CSV`].
pub const OFFSET_FIGURES: [&str; 2] = ["rescan_avoided_vs_offset", "offset_tradeoff"];
/// Figures drawn from [`DEPTH_SWEEP_CSV`].
pub const DEPTH_FIGURES: [&str; 2] = ["rescan_vs_depth", "pause_vs_depth"];
/// Figures drawn from [`GOROUTINE_SWEEP_CSV`].
pub const GOROUTINE_FIGURES: [&str; 1] = ["pause_vs_goroutines"];
/// The sanitizer's memory per GC cycle, with and without free notification (seed 004).
pub const SANITIZER_LEAK_CSV: &str = "sanitizer_leak.csv";
/// The checkers against injected missing write barriers, per mode and drop fraction (seed 000).
pub const WBSHADOW_FAULTS_CSV: &str = "wbshadow_faults.csv";
/// Figures drawn from [`SANITIZER_LEAK_CSV`].
pub const SANITIZER_FIGURES: [&str; 1] = ["sanitizer_leak"];
/// Figures drawn from [`WBSHADOW_FAULTS_CSV`].
pub const WBSHADOW_FIGURES: [&str; 2] = ["wbshadow_detection_vs_drop", "wbshadow_delay_vs_drop"];
/// The profiler's samples per run, under each rule set.
pub const PROFILER_SWITCH_CSV: &str = "profiler_switch.csv";
/// Figures drawn from [`PROFILER_SWITCH_CSV`].
pub const PROFILER_FIGURES: [&str; 1] = ["profiler_switch"];
/// The run CSV of the scan-stall sweeps (stack depth and goroutine count, four designs).
pub const SCAN_STALL_CSV: &str = "scan_stall.csv";
/// Figures drawn from [`SCAN_STALL_CSV`].
pub const SCAN_STALL_FIGURES: [&str; 1] = ["scan_stall"];

/// `plot`: regenerate every figure from the experiment CSVs.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "plot",
    version,
    about = "Regenerate every figure (PNG and SVG) of the stkbar report from the experiment CSVs.",
    after_help = "Example:\n  plot --results results\n  plot --results results --out /tmp/report --quiet\n\n\
Reads rescan_offsets.csv, depth_sweep.csv, goroutine_sweep.csv, barrier_designs_mmu.csv,\n\
scan_stall.csv, sanitizer_leak.csv, wbshadow_faults.csv and profiler_switch.csv from --results;\n\
a CSV that does not exist skips its figures. depth_sweep_pauses.csv and goroutine_sweep_pauses.csv,\n\
where present, give the pause figures pooled medians with bootstrap intervals. Writes OUT/figures/NAME.png and .svg.\n\n\
Exit codes: 0 success, 2 bad input (an unknown flag, a malformed CSV), 1 a figure could not be written."
)]
pub struct PlotArgs {
    /// Directory the experiment CSVs are read from.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Directory the figures go under, as DIR/figures/NAME.png and .svg [default: the results
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Why `plot` stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// `--results` does not name a directory.
    #[error("{}: no such results directory", .0.display())]
    NoResultsDir(PathBuf),
    /// The figures' directory cannot take files (`cli::check_output_dir`'s reason).
    #[error("{0}")]
    BadOutput(String),
    /// A CSV lacks a column a figure needs.
    #[error("{}: missing column `{column}`", path.display())]
    MissingColumn {
        /// The CSV.
        path: PathBuf,
        /// The column's name.
        column: &'static str,
    },
    /// A cell that should hold a number does not.
    #[error("{}:{line}: column `{column}`: `{value}` is not a number", path.display())]
    NotANumber {
        /// The CSV.
        path: PathBuf,
        /// Its 1-based line.
        line: u64,
        /// The column's name.
        column: &'static str,
        /// The cell as written.
        value: String,
    },
    /// A row names zero cycles, so its per-cycle figures are undefined.
    #[error("{}:{line}: column `cycles`: a run has at least one cycle, not {value}", path.display())]
    ZeroCycles {
        /// The CSV.
        path: PathBuf,
        /// Its 1-based line.
        line: u64,
        /// The cell as written.
        value: String,
    },
    /// The CSV reader rejected the file (unequal row lengths, bad UTF-8, unreadable).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Csv {
        /// The CSV.
        path: PathBuf,
        /// Its 1-based line, when the reader knows it.
        line: Option<u64>,
        /// The reader's message.
        message: String,
    },
    /// Creating, writing or renaming an output file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Plotters could not draw a figure.
    #[error("drawing {figure}: {message}")]
    Draw {
        /// The figure's name.
        figure: String,
        /// Plotters' message.
        message: String,
    },
    /// The embedded font did not load.
    #[error("the embedded DejaVu Sans font did not load")]
    Font,
}

impl PlotError {
    /// Whether the error is the user's input (the binary exits 2) rather than a failure to write
    /// the figures (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PlotError::NoResultsDir(_)
                | PlotError::BadOutput(_)
                | PlotError::MissingColumn { .. }
                | PlotError::NotANumber { .. }
                | PlotError::ZeroCycles { .. }
                | PlotError::Csv { .. }
        )
    }
}

/// What [`plot_all`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A figure was written, as PNG and SVG.
    Written {
        /// The figure's name, e.g. `pause_vs_depth`.
        figure: String,
        /// The PNG's path.
        png: PathBuf,
        /// The SVG's path.
        svg: PathBuf,
    },
    /// An input CSV does not exist; the figures that need it are skipped.
    MissingInput {
        /// The CSV's path.
        csv: PathBuf,
        /// The figures skipped.
        figures: Vec<String>,
    },
    /// The CSV exists but holds no rows this figure plots; it is skipped.
    NoData {
        /// The figure's name.
        figure: String,
        /// The CSV's path.
        csv: PathBuf,
        /// Which rows were looked for.
        wanted: String,
    },
}

impl Event {
    /// Whether the event reports something not drawn (the binary prints it on stderr).
    pub fn is_skip(&self) -> bool {
        !matches!(self, Event::Written { .. })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Written { png, svg, .. } => {
                write!(f, "wrote {} and {}", png.display(), svg.display())
            }
            Event::MissingInput { csv, figures } => write!(
                f,
                "{} does not exist; skipping {}",
                csv.display(),
                figures.join(", ")
            ),
            Event::NoData {
                figure,
                csv,
                wanted,
            } => write!(
                f,
                "{} has no {wanted} rows; skipping {figure}",
                csv.display()
            ),
        }
    }
}

/// Runs `plot` as its flags say: the figures go under `--out`, or under `--results` without it.
pub fn run(args: &PlotArgs, on_event: &mut dyn FnMut(&Event)) -> Result<(), PlotError> {
    let out = args.out.as_deref().unwrap_or(&args.results);
    plot_all(&args.results, out, on_event)
}

/// Reads every CSV under `results`, then draws every figure it can into `out/figures/`, calling
/// `on_event` once per figure written and once per CSV or figure skipped.
pub fn plot_all(
    results: &Path,
    out: &Path,
    on_event: &mut dyn FnMut(&Event),
) -> Result<(), PlotError> {
    if !results.is_dir() {
        return Err(PlotError::NoResultsDir(results.to_owned()));
    }
    // Read and check everything first: bad input must not leave half the figures rewritten.
    let offsets = read_runs(&results.join(RESCAN_OFFSETS_CSV), OFFSET_COLUMNS)?;
    let depths = read_runs(&results.join(DEPTH_SWEEP_CSV), DEPTH_COLUMNS)?;
    let goroutines = read_runs(&results.join(GOROUTINE_SWEEP_CSV), GOROUTINE_COLUMNS)?;
    let depth_pooled = read_pooled(&results.join(DEPTH_PAUSES_CSV))?;
    let offset_pooled = read_pooled(&results.join(OFFSET_PAUSES_CSV))?;
    let goroutine_pooled = read_pooled(&results.join(GOROUTINE_PAUSES_CSV))?;
    let mmu = read_mmu(&results.join(MMU_CSV))?;
    let stalls = read_stalls(&results.join(SCAN_STALL_CSV))?;
    let sanitizer = read_sanitizer(&results.join(SANITIZER_LEAK_CSV))?;
    let faults = read_faults(&results.join(WBSHADOW_FAULTS_CSV))?;
    let profiler = read_profiler(&results.join(PROFILER_SWITCH_CSV))?;
    crate::cli::check_output_dir("--out", &out.join("figures")).map_err(PlotError::BadOutput)?;

    let mut planned: Vec<(PathBuf, Result<Figure, Skip>)> = Vec::new();
    let mut missing = |csv: &str, figures: &[&str]| {
        on_event(&Event::MissingInput {
            csv: results.join(csv),
            figures: figures.iter().map(|s| (*s).to_owned()).collect(),
        })
    };
    match &offsets {
        Some(t) => {
            planned.push((t.path.clone(), fig_rescan_avoided_vs_offset(t)));
            planned.push((
                t.path.clone(),
                fig_offset_tradeoff(t, offset_pooled.as_ref()),
            ));
        }
        None => missing(RESCAN_OFFSETS_CSV, &OFFSET_FIGURES),
    }
    match &depths {
        Some(t) => {
            planned.push((t.path.clone(), fig_rescan_vs_depth(t)));
            planned.push((t.path.clone(), fig_pause_vs_depth(t, depth_pooled.as_ref())));
        }
        None => missing(DEPTH_SWEEP_CSV, &DEPTH_FIGURES),
    }
    match &goroutines {
        Some(t) => planned.push((
            t.path.clone(),
            fig_pause_vs_goroutines(t, goroutine_pooled.as_ref()),
        )),
        None => missing(GOROUTINE_SWEEP_CSV, &GOROUTINE_FIGURES),
    }
    match &mmu {
        Some(t) => planned.push((t.path.clone(), fig_mmu(t))),
        None => missing(MMU_CSV, &["mmu"]),
    }
    match &stalls {
        Some(t) => planned.push((t.path.clone(), fig_scan_stall(t))),
        None => missing(SCAN_STALL_CSV, &SCAN_STALL_FIGURES),
    }
    match &sanitizer {
        Some(t) => planned.push((t.path.clone(), fig_sanitizer_leak(t))),
        None => missing(SANITIZER_LEAK_CSV, &SANITIZER_FIGURES),
    }
    match &faults {
        Some(t) => {
            planned.push((t.path.clone(), fig_wbshadow_detection_vs_drop(t)));
            planned.push((t.path.clone(), fig_wbshadow_delay_vs_drop(t)));
        }
        None => missing(WBSHADOW_FAULTS_CSV, &WBSHADOW_FIGURES),
    }
    match &profiler {
        Some(t) => planned.push((t.path.clone(), fig_profiler_switch(t))),
        None => missing(PROFILER_SWITCH_CSV, &PROFILER_FIGURES),
    }

    register_fonts()?;
    let dir = out.join("figures");
    fs::create_dir_all(&dir).map_err(|source| PlotError::Write {
        path: dir.clone(),
        source,
    })?;
    for (csv, fig) in planned {
        match fig {
            Ok(fig) => {
                let (png, svg) = write_figure(&fig, &dir)?;
                on_event(&Event::Written {
                    figure: fig.name.clone(),
                    png,
                    svg,
                });
            }
            Err(Skip { figure, wanted }) => on_event(&Event::NoData {
                figure,
                csv,
                wanted,
            }),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the CSVs.

/// Columns every run CSV needs for its figures; others are read when present.
const OFFSET_COLUMNS: &[&str] = &[
    "workload",
    "design",
    "barrier",
    "engine",
    "cycles",
    "rescan_avoided",
    "barriers_installed",
    "barriers_hit",
];
const DEPTH_COLUMNS: &[&str] = &[
    "workload",
    "design",
    "engine",
    "depth",
    "cycles",
    "rescan_bytes",
    "oracle_rescan_bytes",
    "full_rescan_bytes",
    "mark_term_ns_p50",
];
const GOROUTINE_COLUMNS: &[&str] = &[
    "workload",
    "design",
    "engine",
    "goroutines",
    "mark_term_ns_p50",
];
const MMU_COLUMNS: &[&str] = &["workload", "design", "window_ns", "mmu"];
const PAUSES_COLUMNS: &[&str] = &[
    "workload",
    "design",
    "barrier_removal",
    "goroutines",
    "depth",
    "samples",
    "mark_term_ns_p50",
    "mark_term_ns_p50_lo",
    "mark_term_ns_p50_hi",
];

/// One configuration's pooled pauses (`NAME_pauses.csv`): the pause figures' points when a sweep
/// wrote them.
#[derive(Debug, Clone)]
struct PooledRow {
    workload: String,
    /// The series (`design`, with ` in-pause` when the barriers were removed inside the pause).
    design: String,
    goroutines: Option<f64>,
    depth: Option<f64>,
    samples: Option<f64>,
    p50: Option<f64>,
    lo: Option<f64>,
    hi: Option<f64>,
}

fn read_pooled(path: &Path) -> Result<Option<Rows<PooledRow>>, PlotError> {
    let Some(t) = read_table(path, PAUSES_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        let line = *line;
        rows.push(PooledRow {
            workload: t.workload_label(rec),
            design: crate::suite::series_name(
                &t.text(rec, "design"),
                &t.text(rec, "barrier_removal"),
            ),
            goroutines: t.number(line, rec, "goroutines")?,
            depth: t.number(line, rec, "depth")?,
            samples: t.number(line, rec, "samples")?,
            p50: t.number(line, rec, "mark_term_ns_p50")?,
            lo: t.number(line, rec, "mark_term_ns_p50_lo")?,
            hi: t.number(line, rec, "mark_term_ns_p50_hi")?,
        });
    }
    Ok(Some(Rows { path: t.path, rows }))
}
const SCAN_STALL_COLUMNS: &[&str] = &[
    "design",
    "engine",
    "goroutines",
    "depth",
    "seed",
    "cycles",
    "scan_stalls",
    "scan_stall_ns_p99",
    "scan_stall_ns_max",
    "mark_ns",
    "mutator_ops_per_s",
];
/// ARCHITECTURE.md §7 fixes these four columns of `sanitizer_leak.csv`.
const SANITIZER_COLUMNS: &[&str] = &["mode", "step", "live_objects", "sanitizer_bytes"];
const PROFILER_COLUMNS: &[&str] = &[
    "workload",
    "engine",
    "rules",
    "samples",
    "user_samples",
    "g0_samples",
    "malformed",
    "refused_g0",
    "refused_sp",
    "refused_sets_sp",
    "refused_stack_barrier_pc",
    "refused_stkbar_lock",
];
const FAULT_COLUMNS: &[&str] = &[
    "mode",
    "drop_fraction",
    "workload",
    "detection_rate",
    "delay_stores_p50",
    "delay_stores_max",
];

/// One row of a run CSV: the columns the figures use. A numeric cell left empty (or `NaN`) is
/// `None`: no measurement, so no point.
#[derive(Debug, Clone)]
struct RunRow {
    /// `workload`, or `replay:<trace>` for a replayed trace.
    workload: String,
    design: String,
    barrier: String,
    engine: String,
    cycles: Option<f64>,
    depth: Option<f64>,
    goroutines: Option<f64>,
    rescan_bytes: Option<f64>,
    oracle_rescan_bytes: Option<f64>,
    full_rescan_bytes: Option<f64>,
    rescan_avoided: Option<f64>,
    barriers_installed: Option<f64>,
    barriers_hit: Option<f64>,
    mark_term_ns_p50: Option<f64>,
}

impl RunRow {
    /// A summed counter divided by the run's cycles.
    fn per_cycle(&self, sum: Option<f64>) -> Option<f64> {
        Some(sum? / self.cycles?)
    }
}

/// A CSV's rows, each parsed into the struct its figures read, and the file they came from.
#[derive(Debug)]
struct Rows<R> {
    path: PathBuf,
    rows: Vec<R>,
}

type Runs = Rows<RunRow>;

/// One row of the MMU CSV.
#[derive(Debug, Clone)]
struct MmuRow {
    workload: String,
    design: String,
    engine: String,
    window_ns: Option<f64>,
    mmu: Option<f64>,
    /// Absent from results written before the curves were split.
    mmu_excl_idle: Option<f64>,
    mmu_pause_only: Option<f64>,
}

type MmuTable = Rows<MmuRow>;

/// One row of the scan-stall CSV: one run's stall tail and what it cost.
#[derive(Debug, Clone)]
struct StallRow {
    design: String,
    engine: String,
    goroutines: Option<f64>,
    depth: Option<f64>,
    seed: String,
    cycles: Option<f64>,
    scan_stalls: Option<f64>,
    scan_stall_ns_p99: Option<f64>,
    scan_stall_ns_max: Option<f64>,
    mark_ns: Option<f64>,
    mutator_ops_per_s: Option<f64>,
}

impl StallRow {
    /// The run's tail stall in µs, p99 or (with too few scans) max, and whether it is the max.
    fn tail_us(&self) -> Option<(f64, bool)> {
        let (tail, is_max) = crate::sweeps::stall_tail_ns(
            self.scan_stalls? as u64,
            self.scan_stall_ns_p99? as u64,
            self.scan_stall_ns_max? as u64,
        );
        Some((tail as f64 / 1e3, is_max))
    }
}

/// One row of the sanitizer-leak CSV: one GC cycle of one mode and seed.
#[derive(Debug, Clone)]
struct SanitizerRow {
    /// `free-notify` or `no-free-notify`.
    mode: String,
    step: Option<f64>,
    live_objects: Option<f64>,
    sanitizer_bytes: Option<f64>,
}

/// One row of the fault-injection CSV: one checker mode at one drop fraction, over its seeds.
#[derive(Debug, Clone)]
struct FaultRow {
    workload: String,
    /// `wbshadow=1`, `wbshadow=2` (with `gccheckmark=1`) or `checkmark`.
    mode: String,
    drop_fraction: Option<f64>,
    /// Detected runs over runs with faults, 0–1; empty when no run had a fault.
    detection_rate: Option<f64>,
    delay_stores_p50: Option<f64>,
    delay_stores_max: Option<f64>,
}

/// One row of the profiler CSV: one run's samples, by where they went.
#[derive(Debug, Clone)]
struct ProfilerRow {
    workload: String,
    /// `deterministic` or `threaded`.
    engine: String,
    /// The handler's rules: `go1.7`, `seed003` or `none`.
    rules: String,
    samples: Option<f64>,
    user_samples: Option<f64>,
    g0_samples: Option<f64>,
    malformed: Option<f64>,
    refused_g0: Option<f64>,
    refused_sp: Option<f64>,
    refused_sets_sp: Option<f64>,
    refused_stack_barrier_pc: Option<f64>,
    refused_stkbar_lock: Option<f64>,
}

/// A CSV read into string records, with its header index.
struct Table {
    path: PathBuf,
    columns: BTreeMap<String, usize>,
    records: Vec<(u64, csv::StringRecord)>,
}

/// Reads `path`, or `None` when it does not exist; checks that every column in `needed` is there.
fn read_table(path: &Path, needed: &[&'static str]) -> Result<Option<Table>, PlotError> {
    match path.try_exists() {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(e) => {
            return Err(PlotError::Csv {
                path: path.to_owned(),
                line: None,
                message: e.to_string(),
            });
        }
    }
    let csv_err = |e: csv::Error| PlotError::Csv {
        path: path.to_owned(),
        line: e.position().map(|p| p.line()),
        message: csv_message(&e),
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(csv_err)?;
    let columns: BTreeMap<String, usize> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_owned(), i))
        .collect();
    if let Some(column) = needed.iter().find(|c| !columns.contains_key(**c)) {
        return Err(PlotError::MissingColumn {
            path: path.to_owned(),
            column,
        });
    }
    let mut records = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line());
        records.push((line, rec));
    }
    Ok(Some(Table {
        path: path.to_owned(),
        columns,
        records,
    }))
}

/// The csv crate's message without its own position prefix (the error names the line already).
fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("a row of {len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string().replace('\n', " "),
    }
}

impl Table {
    fn text(&self, rec: &csv::StringRecord, column: &str) -> String {
        self.columns
            .get(column)
            .and_then(|&i| rec.get(i))
            .unwrap_or("")
            .to_owned()
    }

    /// The cell as a number: `None` when the column is absent or the cell empty or not finite.
    fn number(
        &self,
        line: u64,
        rec: &csv::StringRecord,
        column: &'static str,
    ) -> Result<Option<f64>, PlotError> {
        let cell = self.text(rec, column);
        if cell.is_empty() {
            return Ok(None);
        }
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(_) => Err(PlotError::NotANumber {
                path: self.path.clone(),
                line,
                column,
                value: cell,
            }),
        }
    }

    /// `workload`, or `replay:<trace>` when the row replays a trace.
    fn workload_label(&self, rec: &csv::StringRecord) -> String {
        crate::suite::workload_label(&self.text(rec, "workload"), &self.text(rec, "replay"))
    }
}

fn read_runs(path: &Path, needed: &[&'static str]) -> Result<Option<Runs>, PlotError> {
    let Some(t) = read_table(path, needed)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        let line = *line;
        let cycles = t.number(line, rec, "cycles")?;
        if cycles == Some(0.0) || cycles.is_some_and(|c| c < 0.0) {
            return Err(PlotError::ZeroCycles {
                path: t.path.clone(),
                line,
                value: t.text(rec, "cycles"),
            });
        }
        rows.push(RunRow {
            workload: t.workload_label(rec),
            // A run whose barriers were removed inside the pause is a series of its own.
            design: crate::suite::series_name(
                &t.text(rec, "design"),
                &t.text(rec, "barrier_removal"),
            ),
            barrier: t.text(rec, "barrier"),
            engine: t.text(rec, "engine"),
            cycles,
            depth: t.number(line, rec, "depth")?,
            goroutines: t.number(line, rec, "goroutines")?,
            rescan_bytes: t.number(line, rec, "rescan_bytes")?,
            oracle_rescan_bytes: t.number(line, rec, "oracle_rescan_bytes")?,
            full_rescan_bytes: t.number(line, rec, "full_rescan_bytes")?,
            rescan_avoided: t.number(line, rec, "rescan_avoided")?,
            barriers_installed: t.number(line, rec, "barriers_installed")?,
            barriers_hit: t.number(line, rec, "barriers_hit")?,
            mark_term_ns_p50: t.number(line, rec, "mark_term_ns_p50")?,
        });
    }
    Ok(Some(Runs { path: t.path, rows }))
}

fn read_mmu(path: &Path) -> Result<Option<MmuTable>, PlotError> {
    let Some(t) = read_table(path, MMU_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        rows.push(MmuRow {
            workload: t.workload_label(rec),
            design: t.text(rec, "design"),
            engine: t.text(rec, "engine"),
            window_ns: t.number(*line, rec, "window_ns")?,
            mmu: t.number(*line, rec, "mmu")?,
            mmu_excl_idle: t.number(*line, rec, "mmu_excl_idle")?,
            mmu_pause_only: t.number(*line, rec, "mmu_pause_only")?,
        });
    }
    Ok(Some(MmuTable { path: t.path, rows }))
}

fn read_stalls(path: &Path) -> Result<Option<Rows<StallRow>>, PlotError> {
    let Some(t) = read_table(path, SCAN_STALL_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        let line = *line;
        let n = |column| t.number(line, rec, column);
        let cycles = n("cycles")?;
        if cycles.is_some_and(|c| c <= 0.0) {
            return Err(PlotError::ZeroCycles {
                path: t.path.clone(),
                line,
                value: t.text(rec, "cycles"),
            });
        }
        rows.push(StallRow {
            design: t.text(rec, "design"),
            engine: t.text(rec, "engine"),
            goroutines: n("goroutines")?,
            depth: n("depth")?,
            seed: t.text(rec, "seed"),
            cycles,
            scan_stalls: n("scan_stalls")?,
            scan_stall_ns_p99: n("scan_stall_ns_p99")?,
            scan_stall_ns_max: n("scan_stall_ns_max")?,
            mark_ns: n("mark_ns")?,
            mutator_ops_per_s: n("mutator_ops_per_s")?,
        });
    }
    Ok(Some(Rows { path: t.path, rows }))
}

fn read_sanitizer(path: &Path) -> Result<Option<Rows<SanitizerRow>>, PlotError> {
    let Some(t) = read_table(path, SANITIZER_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        rows.push(SanitizerRow {
            mode: t.text(rec, "mode"),
            step: t.number(*line, rec, "step")?,
            live_objects: t.number(*line, rec, "live_objects")?,
            sanitizer_bytes: t.number(*line, rec, "sanitizer_bytes")?,
        });
    }
    Ok(Some(Rows { path: t.path, rows }))
}

fn read_faults(path: &Path) -> Result<Option<Rows<FaultRow>>, PlotError> {
    let Some(t) = read_table(path, FAULT_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        rows.push(FaultRow {
            workload: t.text(rec, "workload"),
            mode: t.text(rec, "mode"),
            drop_fraction: t.number(*line, rec, "drop_fraction")?,
            detection_rate: t.number(*line, rec, "detection_rate")?,
            delay_stores_p50: t.number(*line, rec, "delay_stores_p50")?,
            delay_stores_max: t.number(*line, rec, "delay_stores_max")?,
        });
    }
    Ok(Some(Rows { path: t.path, rows }))
}

fn read_profiler(path: &Path) -> Result<Option<Rows<ProfilerRow>>, PlotError> {
    let Some(t) = read_table(path, PROFILER_COLUMNS)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, rec) in &t.records {
        let n = |column| t.number(*line, rec, column);
        rows.push(ProfilerRow {
            workload: t.text(rec, "workload"),
            engine: t.text(rec, "engine"),
            rules: t.text(rec, "rules"),
            samples: n("samples")?,
            user_samples: n("user_samples")?,
            g0_samples: n("g0_samples")?,
            malformed: n("malformed")?,
            refused_g0: n("refused_g0")?,
            refused_sp: n("refused_sp")?,
            refused_sets_sp: n("refused_sets_sp")?,
            refused_stack_barrier_pc: n("refused_stack_barrier_pc")?,
            refused_stkbar_lock: n("refused_stkbar_lock")?,
        });
    }
    Ok(Some(Rows { path: t.path, rows }))
}

// ---------------------------------------------------------------------------------------------
// From rows to series: seeds averaged per point.

/// One plotted point: the mean over seeds and their range, or a statistic and its interval.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: f64,
    mean: f64,
    min: f64,
    max: f64,
    /// Each seed's value where the seeds disagree (drawn as small open circles around the mean
    /// instead of a bar); empty where `min..max` is an interval, drawn as a bar.
    seeds: Vec<f64>,
}

/// An `f64` usable as a map key (inputs are finite, so the total order is the usual one).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Samples grouped by series and x: each group becomes one [`Point`].
#[derive(Debug, Default)]
struct Grouper {
    groups: BTreeMap<String, BTreeMap<Key, Vec<f64>>>,
}

impl Grouper {
    fn add(&mut self, series: &str, x: Option<f64>, y: Option<f64>) {
        if let (Some(x), Some(y)) = (x, y) {
            self.groups
                .entry(series.to_owned())
                .or_default()
                .entry(Key(x))
                .or_default()
                .push(y);
        }
    }

    fn points(&self, series: &str) -> Vec<Point> {
        let Some(by_x) = self.groups.get(series) else {
            return Vec::new();
        };
        by_x.iter()
            .map(|(x, ys)| {
                let n = ys.len() as f64;
                let min = ys.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Point {
                    x: x.0,
                    mean: ys.iter().sum::<f64>() / n,
                    min,
                    max,
                    seeds: if max > min { ys.clone() } else { Vec::new() },
                }
            })
            .collect()
    }

    fn series_names(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }
}

// ---------------------------------------------------------------------------------------------
// Names, orders and colours shared by every figure.

/// A fixed list of names with their colours: the order their series are drawn and listed in,
/// and what keeps a name's colour and marker the same from figure to figure. A name outside the
/// list sorts after it and takes a colour and marker chosen by a hash of the name, so it too is
/// stable across figures and runs.
struct Palette {
    names: &'static [(&'static str, RGBColor)],
}

/// The workloads, in ARCHITECTURE.md §5's order.
const WORKLOADS: Palette = Palette {
    names: &[
        ("deep-oscillate", RGBColor(31, 119, 180)),
        ("deep-unwind", RGBColor(255, 127, 14)),
        ("many-shallow", RGBColor(44, 160, 44)),
        ("mixed", RGBColor(214, 39, 40)),
        ("copy-heavy", RGBColor(148, 103, 189)),
        ("adversarial", RGBColor(140, 86, 75)),
    ],
};

/// The debug-mode experiments' modes: the sanitizer's two, then no checker and the write-barrier
/// checkers in the order their CSVs list them (`wbshadow=2` runs with `gccheckmark=1`).
const MODES: Palette = Palette {
    names: &[
        ("free-notify", RGBColor(44, 160, 44)),
        ("no-free-notify", RGBColor(214, 39, 40)),
        ("off", RGBColor(70, 70, 70)),
        ("wbshadow=1", RGBColor(255, 127, 14)),
        ("wbshadow=2", RGBColor(31, 119, 180)),
        ("checkmark", RGBColor(148, 103, 189)),
    ],
};

/// Colours for names outside the fixed tables (replayed traces, other designs), chosen by a hash
/// of the name so they too are stable across figures and runs.
const EXTRA_COLOURS: [RGBColor; 6] = [
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
    RGBColor(0, 90, 50),
    RGBColor(120, 40, 140),
];

fn fnv1a(s: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 1_000_003) as usize
}

impl Palette {
    fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|(n, _)| *n == name)
    }

    fn rank(&self, name: &str) -> (usize, String) {
        (
            self.position(name).unwrap_or(self.names.len()),
            name.to_owned(),
        )
    }

    fn colour(&self, name: &str) -> RGBColor {
        match self.position(name) {
            Some(i) => self.names[i].1,
            None => EXTRA_COLOURS[fnv1a(name) % EXTRA_COLOURS.len()],
        }
    }

    fn marker(&self, name: &str) -> Marker {
        let i = self.position(name).unwrap_or_else(|| fnv1a(name));
        Marker::ALL[i % Marker::ALL.len()]
    }

    /// One series per series name in `g`, in this palette's order; a name without points is
    /// left out.
    fn series(&self, g: &Grouper) -> Vec<Series> {
        let mut names: Vec<&String> = g.series_names().collect();
        names.sort_by_key(|n| self.rank(n));
        names
            .into_iter()
            .map(|n| Series {
                label: n.clone(),
                dashed: false,
                colour: self.colour(n),
                marker: self.marker(n),
                points: g.points(n),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// A series' order in legends: by design, an in-pause series right after its design's.
fn design_rank(series: &str) -> (usize, usize, bool, String) {
    let (d, in_pause) = crate::suite::parse_series(series);
    let (kind, n) = match Design::parse(d) {
        Some(Design::FullRescan) => (0, 0),
        Some(Design::StkbarAll) => (1, 0),
        Some(Design::Stkbar(n)) => (2, n),
        Some(Design::Hybrid) => (3, 0),
        Some(Design::HybridLazy) => (4, 0),
        Some(Design::Yuasa) => (5, 0),
        None => (6, 0),
    };
    (kind, n, in_pause, series.to_owned())
}

/// A series' colour: its design's, lighter for the in-pause removal.
fn design_colour(series: &str) -> RGBColor {
    let (d, in_pause) = crate::suite::parse_series(series);
    let c = match Design::parse(d) {
        Some(Design::FullRescan) => RGBColor(70, 70, 70),
        Some(Design::StkbarAll) => RGBColor(148, 103, 189),
        Some(Design::Stkbar(1024)) => RGBColor(31, 119, 180),
        Some(Design::Stkbar(n)) => EXTRA_COLOURS[(n.max(1).ilog2() as usize) % EXTRA_COLOURS.len()],
        Some(Design::Hybrid) => RGBColor(255, 127, 14),
        Some(Design::HybridLazy) => RGBColor(214, 39, 40),
        Some(Design::Yuasa) => RGBColor(44, 160, 44),
        None => EXTRA_COLOURS[fnv1a(d) % EXTRA_COLOURS.len()],
    };
    if in_pause {
        let lighter = |v: u8| v + (255 - v) / 2;
        RGBColor(lighter(c.0), lighter(c.1), lighter(c.2))
    } else {
        c
    }
}

/// A series' marker: its design's, the next one for the in-pause removal. `hybrid-lazy` has the
/// one shape of its own (the five of [`Marker::ALL`] are taken), `hybrid`'s triangle upside down.
fn design_marker(series: &str) -> Marker {
    let (d, in_pause) = crate::suite::parse_series(series);
    if Design::parse(d) == Some(Design::HybridLazy) && !in_pause {
        return Marker::TriangleDown;
    }
    let i = match Design::parse(d) {
        Some(Design::FullRescan) => 3,
        Some(Design::StkbarAll) => 2,
        Some(Design::Stkbar(n)) => n.max(1).ilog2() as usize,
        Some(Design::Hybrid) => 1,
        Some(Design::HybridLazy) => 5,
        Some(Design::Yuasa) => 4,
        None => fnv1a(d),
    };
    Marker::ALL[(i + usize::from(in_pause)) % Marker::ALL.len()]
}

/// The x axis of the offset figures: a barrier at every frame, each offset present in
/// increasing order, then no barriers at all.
fn offset_categories(rows: &[&RunRow]) -> Vec<Design> {
    let mut cats: Vec<Design> = rows
        .iter()
        .filter_map(|r| Design::parse(&r.design))
        .filter(|d| {
            matches!(
                d,
                Design::StkbarAll | Design::Stkbar(_) | Design::FullRescan
            )
        })
        .collect();
    cats.sort_by_key(|d| match d {
        Design::StkbarAll => (0, 0),
        Design::Stkbar(n) => (1, *n),
        _ => (2, 0),
    });
    cats.dedup();
    cats
}

fn offset_label(d: Design) -> String {
    match d {
        Design::StkbarAll => "every frame".to_owned(),
        Design::Stkbar(n) => n.to_string(),
        Design::FullRescan => "off".to_owned(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The figures, as data.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log,
}

#[derive(Debug, Clone)]
enum Ticks {
    /// Numbers, compact (`1k`, `10M`).
    Number,
    /// One label per integer x, from this list.
    Categories(Vec<String>),
}

#[derive(Debug, Clone)]
struct Axis {
    label: String,
    scale: Scale,
    lo: f64,
    hi: f64,
    ticks: Ticks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
    Cross,
    /// Kept out of [`Marker::ALL`] (which hashed names and offsets cycle through): one design's.
    TriangleDown,
}

impl Marker {
    const ALL: [Marker; 5] = [
        Marker::Circle,
        Marker::Triangle,
        Marker::Square,
        Marker::Diamond,
        Marker::Cross,
    ];
}

#[derive(Debug, Clone)]
struct Series {
    label: String,
    /// A reference curve: drawn thin and dashed, without markers or bars, and listed in the
    /// legend only through a figure note (a solid series of the same label names its colour).
    dashed: bool,
    colour: RGBColor,
    marker: Marker,
    points: Vec<Point>,
}

#[derive(Debug, Clone)]
struct Panel {
    x: Axis,
    y: Axis,
    series: Vec<Series>,
    /// Lines stop short of this x: the points from it on are a different regime (stack barriers
    /// off is not a very large offset), drawn as markers only.
    line_break: Option<f64>,
    /// Draw the series as grouped bars, one group per integer x (a category), instead of lines.
    bars: Option<Bars>,
    /// A horizontal reference line: its y and its label (a target the figure is read against).
    reference: Option<(f64, String)>,
    /// The panel's own title, where a figure's panels differ in what they show (small multiples).
    title: Option<String>,
}

/// How a bar panel is drawn.
#[derive(Debug, Clone, Copy)]
struct Bars {
    /// Write each bar's value above it (so a zero is seen to be a zero, not a missing bar).
    labels: bool,
}

#[derive(Debug, Clone)]
struct Figure {
    name: String,
    title: String,
    legend_title: String,
    /// Lines of text under the legend's entries: what the reader must know to read the figure
    /// that no axis label has room for.
    notes: Vec<String>,
    size: (u32, u32),
    /// Panels per row: 1 stacks them (sharing their x axis when its label is the same); more lay
    /// them out as small multiples, row by row, with the x axis described under the bottom row.
    columns: usize,
    panels: Vec<Panel>,
}

/// A figure that cannot be drawn: its CSV has none of the rows it plots.
#[derive(Debug, Clone)]
struct Skip {
    figure: String,
    /// Which rows were looked for, e.g. `threaded`.
    wanted: String,
}

fn no_data(figure: &str, wanted: &str) -> Skip {
    Skip {
        figure: figure.to_owned(),
        wanted: wanted.to_owned(),
    }
}

/// The axis range for values `vs`: a log axis spans at least one power of ten on each side of
/// the data, so it always carries labelled decades; a linear one starts at zero.
fn axis_range(vs: &[f64], scale: Scale) -> (f64, f64) {
    match scale {
        Scale::Log => {
            let pos: Vec<f64> = vs.iter().copied().filter(|v| *v > 0.0).collect();
            if pos.is_empty() {
                return (1.0, 10.0);
            }
            let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut lo_d = lo.log10().floor();
            let mut hi_d = hi.log10().ceil();
            if hi_d <= lo_d {
                hi_d = lo_d + 1.0;
            }
            // Breathing room for markers that sit exactly on a decade.
            if (lo.log10() - lo_d) < 0.05 {
                lo_d -= 0.1;
            }
            if (hi_d - hi.log10()) < 0.05 {
                hi_d += 0.1;
            }
            (10f64.powf(lo_d), 10f64.powf(hi_d))
        }
        Scale::Linear => {
            let hi = vs.iter().copied().fold(0.0, f64::max);
            let lo = vs.iter().copied().fold(0.0, f64::min);
            let hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
            (lo - 0.02 * (hi - lo), hi)
        }
    }
}

/// Log when the positive values span more than about one and a half decades.
fn pick_scale(vs: &[f64]) -> Scale {
    let pos: Vec<f64> = vs.iter().copied().filter(|v| *v > 0.0).collect();
    let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if pos.len() >= 2 && hi / lo > 30.0 {
        Scale::Log
    } else {
        Scale::Linear
    }
}

fn all_values(series: &[Series]) -> (Vec<f64>, Vec<f64>) {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x))
        .collect();
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.min, p.max]))
        .collect();
    (xs, ys)
}

fn number_axis(label: &str, scale: Scale, values: &[f64]) -> Axis {
    let (lo, hi) = axis_range(values, scale);
    Axis {
        label: label.to_owned(),
        scale,
        lo,
        hi,
        ticks: Ticks::Number,
    }
}

fn offset_axis(cats: &[Design]) -> Axis {
    Axis {
        label: "first stack barrier offset (bytes above SP)".to_owned(),
        scale: Scale::Linear,
        lo: -0.4,
        hi: cats.len() as f64 - 0.6,
        ticks: Ticks::Categories(cats.iter().map(|d| offset_label(*d)).collect()),
    }
}

/// The rows of the offset sweep the offset figures plot, and their x categories.
fn offset_rows(t: &Runs) -> (Vec<&RunRow>, Vec<Design>) {
    let rows: Vec<&RunRow> = t
        .rows
        .iter()
        .filter(|r| r.engine == "deterministic" && r.barrier == "dijkstra")
        .collect();
    let cats = offset_categories(&rows);
    (rows, cats)
}

/// The x of the `off` category (stack barriers off), where offset lines stop.
fn off_category(cats: &[Design]) -> Option<f64> {
    cats.iter()
        .position(|c| *c == Design::FullRescan)
        .map(|i| i as f64)
}

fn category_of(cats: &[Design], design: &str) -> Option<f64> {
    let d = Design::parse(design)?;
    cats.iter().position(|c| *c == d).map(|i| i as f64)
}

fn fig_rescan_avoided_vs_offset(t: &Runs) -> Result<Figure, Skip> {
    const NAME: &str = "rescan_avoided_vs_offset";
    let (rows, cats) = offset_rows(t);
    let mut g = Grouper::default();
    for r in &rows {
        g.add(
            &r.workload,
            category_of(&cats, &r.design),
            r.rescan_avoided.map(|f| 100.0 * f),
        );
    }
    let series = WORKLOADS.series(&g);
    if series.is_empty() {
        return Err(no_data(NAME, "deterministic dijkstra"));
    }
    Ok(Figure {
        name: NAME.to_owned(),
        title: "Stack re-scan avoided by stack barriers, by first barrier offset".to_owned(),
        legend_title: "workload".to_owned(),
        notes: Vec::new(),
        size: (1000, 650),
        columns: 1,
        panels: vec![Panel {
            x: offset_axis(&cats),
            y: Axis {
                label: "stack re-scan avoided (%)".to_owned(),
                scale: Scale::Linear,
                lo: -3.0,
                hi: 103.0,
                ticks: Ticks::Number,
            },
            series,
            line_break: off_category(&cats),
            bars: None,
            reference: None,
            title: None,
        }],
    })
}

/// The offset trade-off on `deep-oscillate`: for each barrier setting, one point at its share of
/// the full re-scan left to do (deterministic engine, mean over seeds) against (a) its pooled
/// mark-termination median with the 95 % interval (threaded runs, where `rescan_offsets` wrote
/// `rescan_offsets_pauses.csv`) and (b) its barrier traffic, installs plus hits per cycle.
fn fig_offset_tradeoff(t: &Runs, pooled: Option<&Rows<PooledRow>>) -> Result<Figure, Skip> {
    const NAME: &str = "offset_tradeoff";
    const WORKLOAD: &str = "deep-oscillate";
    let (rows, cats) = offset_rows(t);
    let rows: Vec<&RunRow> = rows
        .into_iter()
        .filter(|r| r.workload == WORKLOAD)
        .collect();
    let mut left = Grouper::default();
    let mut traffic = Grouper::default();
    for r in &rows {
        left.add(
            &r.design,
            Some(0.0),
            r.rescan_avoided.map(|a| 100.0 * (1.0 - a)),
        );
        let installs_hits = r
            .per_cycle(r.barriers_installed)
            .zip(r.per_cycle(r.barriers_hit))
            .map(|(i, h)| i + h);
        traffic.add(&r.design, Some(0.0), installs_hits);
    }
    // One series per setting: a single point at (re-scan left, y).
    let point_at = |design: &Design, y: Option<Point>| -> Option<Series> {
        let name = design.name();
        let x = left.points(&name).first()?.mean;
        let y = y?;
        Some(Series {
            label: offset_label(*design),
            dashed: false,
            colour: design_colour(&name),
            marker: design_marker(&name),
            points: vec![Point { x, ..y }],
        })
    };
    let pause_series: Vec<Series> = cats
        .iter()
        .filter_map(|d| {
            let p = pooled?
                .rows
                .iter()
                .find(|p| p.workload == WORKLOAD && p.design == d.name())?;
            let (p50, lo, hi) = (p.p50?, p.lo?, p.hi?);
            point_at(
                d,
                Some(Point {
                    x: 0.0,
                    mean: p50 / 1e3,
                    min: lo / 1e3,
                    max: hi / 1e3,
                    seeds: Vec::new(),
                }),
            )
        })
        .collect();
    let traffic_series: Vec<Series> = cats
        .iter()
        .filter_map(|d| point_at(d, traffic.points(&d.name()).first().cloned()))
        .collect();
    if traffic_series.is_empty() {
        return Err(no_data(NAME, "deterministic dijkstra deep-oscillate"));
    }
    // Every setting's point is on the x axis of both panels: the traffic panel has them all. The
    // settings span the full re-scan's 100 % down to a fraction of a percent: a log axis.
    let x_axis = {
        let (xs, _) = all_values(&traffic_series);
        number_axis(
            "stack re-scan left to mark termination (% of the full re-scan)",
            pick_scale(&xs),
            &xs,
        )
    };
    let panel = |label: &str, series: Vec<Series>| {
        let (_, ys) = all_values(&series);
        Panel {
            x: x_axis.clone(),
            y: number_axis(label, pick_scale(&ys), &ys),
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }
    };
    let mut panels = Vec::new();
    let mut notes = vec![
        "`deep-oscillate`: one point".to_owned(),
        "per barrier setting".to_owned(),
    ];
    if pause_series.is_empty() {
        notes.extend([
            "(no threaded runs: no".to_owned(),
            "pause panel)".to_owned(),
        ]);
    } else {
        panels.push(panel("(a) mark-termination p50 (µs)", pause_series));
        notes.extend([
            "(a) median over the pooled".to_owned(),
            "cycles; bars: 95 % bootstrap".to_owned(),
            "interval".to_owned(),
        ]);
    }
    panels.push(panel(
        "(b) barriers installed + hit per cycle",
        traffic_series,
    ));
    Ok(Figure {
        name: NAME.to_owned(),
        title: "The offset trade-off: re-scan left against pause and barrier traffic".to_owned(),
        legend_title: "first offset".to_owned(),
        notes,
        size: (1000, if panels.len() == 2 { 800 } else { 650 }),
        columns: 1,
        panels,
    })
}

fn fig_rescan_vs_depth(t: &Runs) -> Result<Figure, Skip> {
    const NAME: &str = "rescan_vs_depth";
    let rows: Vec<&RunRow> = t
        .rows
        .iter()
        .filter(|r| r.engine == "deterministic" && r.workload == "deep-oscillate")
        .collect();
    const STKBAR: &str = "stack barriers, 1024 B";
    const ORACLE: &str = "oracle (what changed)";
    const FULL: &str = "full re-scan";
    const ALL: &str = "barriers on every frame";
    let mut g = Grouper::default();
    let mut full_from_design = Grouper::default();
    for r in &rows {
        match Design::parse(&r.design) {
            Some(Design::Stkbar(1024)) => {
                g.add(STKBAR, r.depth, r.per_cycle(r.rescan_bytes));
                g.add(ORACLE, r.depth, r.per_cycle(r.oracle_rescan_bytes));
                g.add(FULL, r.depth, r.per_cycle(r.full_rescan_bytes));
            }
            Some(Design::StkbarAll) => g.add(ALL, r.depth, r.per_cycle(r.rescan_bytes)),
            Some(Design::FullRescan) => {
                full_from_design.add(FULL, r.depth, r.per_cycle(r.rescan_bytes))
            }
            _ => {}
        }
    }
    let full = {
        let p = g.points(FULL);
        if p.is_empty() {
            full_from_design.points(FULL)
        } else {
            p
        }
    };
    let style = [
        (FULL, design_colour("full-rescan"), Marker::Square, full),
        (
            STKBAR,
            design_colour("stkbar-1024"),
            Marker::Circle,
            g.points(STKBAR),
        ),
        // The oracle first: every-frame barriers re-scan exactly the oracle's bytes on this
        // workload, and their line must stay visible on top of it.
        (
            ORACLE,
            RGBColor(214, 39, 40),
            Marker::Cross,
            g.points(ORACLE),
        ),
        (
            ALL,
            design_colour("stkbar-all"),
            Marker::Triangle,
            g.points(ALL),
        ),
    ];
    let series: Vec<Series> = style
        .into_iter()
        .filter(|(_, _, _, p)| !p.is_empty())
        .map(|(label, colour, marker, points)| Series {
            label: label.to_owned(),
            dashed: false,
            colour,
            marker,
            points,
        })
        .collect();
    if series.is_empty() {
        return Err(no_data(NAME, "deterministic deep-oscillate"));
    }
    let (xs, ys) = all_values(&series);
    Ok(Figure {
        name: NAME.to_owned(),
        title: "Mark-termination stack re-scan vs stack depth (deep-oscillate)".to_owned(),
        legend_title: "stack bytes".to_owned(),
        notes: Vec::new(),
        size: (1000, 650),
        columns: 1,
        panels: vec![Panel {
            x: number_axis("stack depth (frames)", Scale::Log, &xs),
            y: number_axis("stack bytes re-scanned per cycle", Scale::Log, &ys),
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }],
    })
}

/// One series per design (per design and workload when the rows span several workloads).
fn design_series(rows: &[&RunRow], x: impl Fn(&RunRow) -> Option<f64>) -> Vec<Series> {
    let mut workloads: Vec<&str> = rows.iter().map(|r| r.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    let several = workloads.len() > 1;
    let mut g = Grouper::default();
    let mut keys: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for r in rows {
        let label = if several {
            format!("{}, {}", r.design, r.workload)
        } else {
            r.design.clone()
        };
        g.add(&label, x(r), r.mark_term_ns_p50.map(|ns| ns / 1000.0));
        keys.insert(label, (&r.design, &r.workload));
    }
    let mut labels: Vec<(&String, &(&str, &str))> = keys.iter().collect();
    labels.sort_by_key(|(_, (d, w))| (design_rank(d), WORKLOADS.rank(w)));
    labels
        .into_iter()
        .map(|(label, (d, w))| Series {
            label: label.clone(),
            dashed: false,
            colour: design_colour(d),
            marker: if several {
                WORKLOADS.marker(w)
            } else {
                design_marker(d)
            },
            points: g.points(label),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// A pause figure: the median mark-termination pause per design against `x`. With the sweep's
/// pooled pauses, each point is a configuration's median over every cycle of its runs and the
/// error bar its 95 % bootstrap interval; without them (results from before pooled pauses), the
/// mean of the seeds' per-run medians, each seed drawn where they differ. A dashed line marks
/// 50 µs, and the y axis always reaches it.
fn pause_figure(
    name: &str,
    title: &str,
    x_label: &str,
    runs: &Runs,
    pooled: Option<&Rows<PooledRow>>,
    x: SweepAxis,
) -> Result<Figure, Skip> {
    let (series, bars_note) = match pooled {
        Some(p) => {
            let samples: Vec<f64> = p.rows.iter().filter_map(|r| r.samples).collect();
            let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = samples.iter().copied().fold(0.0, f64::max);
            let n = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo}–{hi}")
            };
            (
                pooled_series(&p.rows, x),
                vec![
                    format!("points: median of {n} cycles,"),
                    "seeds pooled; bars: its 95 %".to_owned(),
                    "bootstrap interval".to_owned(),
                ],
            )
        }
        None => {
            let rows: Vec<&RunRow> = runs
                .rows
                .iter()
                .filter(|r| r.engine == "threaded")
                .collect();
            (
                design_series(&rows, |r| x.of_run(r)),
                vec![
                    "points: mean of the seeds'".to_owned(),
                    "per-run medians;".to_owned(),
                    "circles: each seed's".to_owned(),
                ],
            )
        }
    };
    if series.is_empty() {
        return Err(no_data(name, "threaded"));
    }
    let (xs, mut ys) = all_values(&series);
    ys.push(PAUSE_GOAL_US);
    Ok(Figure {
        name: name.to_owned(),
        title: title.to_owned(),
        legend_title: "design".to_owned(),
        notes: bars_note
            .into_iter()
            .chain([
                format!("dashed: {PAUSE_GOAL_US} µs, the worst-case"),
                "goal of proposal 17503".to_owned(),
            ])
            .collect(),
        size: (1000, 650),
        columns: 1,
        panels: vec![Panel {
            x: number_axis(x_label, Scale::Log, &xs),
            y: number_axis("mark-termination pause, p50 (µs)", Scale::Log, &ys),
            series,
            line_break: None,
            bars: None,
            reference: Some((PAUSE_GOAL_US, format!("{PAUSE_GOAL_US} µs"))),
            title: None,
        }],
    })
}

/// What a sweep's figure puts on its x axis.
#[derive(Debug, Clone, Copy)]
enum SweepAxis {
    Depth,
    Goroutines,
}

impl SweepAxis {
    fn of_run(self, r: &RunRow) -> Option<f64> {
        match self {
            SweepAxis::Depth => r.depth,
            SweepAxis::Goroutines => r.goroutines,
        }
    }

    fn of_pooled(self, r: &PooledRow) -> Option<f64> {
        match self {
            SweepAxis::Depth => r.depth,
            SweepAxis::Goroutines => r.goroutines,
        }
    }
}

/// One series per design (and workload, where several) of pooled pauses, points at `x`, in µs,
/// the interval as the error bar.
fn pooled_series(rows: &[PooledRow], x: SweepAxis) -> Vec<Series> {
    let mut workloads: Vec<&str> = rows.iter().map(|r| r.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    let several = workloads.len() > 1;
    // By label: the design, the workload, and the points.
    type Line<'a> = (&'a str, &'a str, Vec<Point>);
    let mut by_label: BTreeMap<String, Line<'_>> = BTreeMap::new();
    for r in rows {
        let (Some(at), Some(p50), Some(lo), Some(hi)) = (x.of_pooled(r), r.p50, r.lo, r.hi) else {
            continue;
        };
        let label = if several {
            format!("{}, {}", r.design, r.workload)
        } else {
            r.design.clone()
        };
        by_label
            .entry(label)
            .or_insert_with(|| (&r.design, &r.workload, Vec::new()))
            .2
            .push(Point {
                x: at,
                mean: p50 / 1000.0,
                min: lo / 1000.0,
                max: hi / 1000.0,
                seeds: Vec::new(),
            });
    }
    let mut series: Vec<(String, Line<'_>)> = by_label.into_iter().collect();
    series.sort_by_key(|(_, (d, w, _))| (design_rank(d), WORKLOADS.rank(w)));
    series
        .into_iter()
        .map(|(label, (d, w, mut points))| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            Series {
                label,
                dashed: false,
                colour: design_colour(d),
                marker: if several {
                    WORKLOADS.marker(w)
                } else {
                    design_marker(d)
                },
                points,
            }
        })
        .collect()
}

fn fig_pause_vs_depth(t: &Runs, pooled: Option<&Rows<PooledRow>>) -> Result<Figure, Skip> {
    pause_figure(
        "pause_vs_depth",
        "Mark-termination pause vs stack depth (threaded engine)",
        "stack depth (frames)",
        t,
        pooled,
        SweepAxis::Depth,
    )
}

fn fig_pause_vs_goroutines(t: &Runs, pooled: Option<&Rows<PooledRow>>) -> Result<Figure, Skip> {
    pause_figure(
        "pause_vs_goroutines",
        "Mark-termination pause vs goroutines (threaded engine)",
        "goroutines",
        t,
        pooled,
        SweepAxis::Goroutines,
    )
}

/// One series per design in `g`, in design order, with each design's colour and marker.
fn design_palette_series(g: &Grouper) -> Vec<Series> {
    let mut designs: Vec<&String> = g.series_names().collect();
    designs.sort_by_key(|d| design_rank(d));
    designs
        .into_iter()
        .map(|d| Series {
            label: d.clone(),
            dashed: false,
            colour: design_colour(d),
            marker: design_marker(d),
            points: g.points(d),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// The value of `key` that takes the most distinct values of `other` among `rows` (the larger on
/// a tie): a sweep's fixed coordinate, e.g. the goroutine count at which the depths were swept.
fn sweep_fixed(
    rows: &[&StallRow],
    key: fn(&StallRow) -> Option<f64>,
    other: fn(&StallRow) -> Option<f64>,
) -> Option<f64> {
    let mut by: BTreeMap<Key, Vec<Key>> = BTreeMap::new();
    for r in rows {
        if let (Some(k), Some(o)) = (key(r), other(r)) {
            let others = by.entry(Key(k)).or_default();
            if !others.contains(&Key(o)) {
                others.push(Key(o));
            }
        }
    }
    by.into_iter()
        .max_by_key(|(k, others)| (others.len(), *k))
        .map(|(k, _)| k.0)
}

/// `scan_stall`: the tail stall per design against depth and against goroutine count, then the
/// mark phase and the mutator throughput (over `hybrid`'s) against depth.
fn fig_scan_stall(t: &Rows<StallRow>) -> Result<Figure, Skip> {
    const NAME: &str = "scan_stall";
    let rows: Vec<&StallRow> = t.rows.iter().filter(|r| r.engine == "threaded").collect();
    let by_depth_at = sweep_fixed(&rows, |r| r.goroutines, |r| r.depth);
    let by_count_at = sweep_fixed(&rows, |r| r.depth, |r| r.goroutines);
    let (Some(g0), Some(d0)) = (by_depth_at, by_count_at) else {
        return Err(no_data(NAME, "threaded"));
    };
    let (mut vs_depth, mut vs_count) = (Grouper::default(), Grouper::default());
    let (mut mark, mut throughput) = (Grouper::default(), Grouper::default());
    // Runs with a tail, and of them tails that are a max: in all, at depths, at counts.
    let (mut points, mut as_max) = ([0; 3], [0; 3]);
    for r in &rows {
        let tail = r.tail_us();
        let in_panel = [true, r.goroutines == Some(g0), r.depth == Some(d0)];
        if let Some((_, is_max)) = tail {
            for (i, _) in in_panel.iter().enumerate().filter(|(_, in_it)| **in_it) {
                points[i] += 1;
                as_max[i] += usize::from(is_max);
            }
        }
        let tail = tail.map(|(us, _)| us);
        if r.goroutines == Some(g0) {
            vs_depth.add(&r.design, r.depth, tail);
            let per_cycle = r.mark_ns.zip(r.cycles).map(|(ns, c)| ns / c / 1e6);
            mark.add(&r.design, r.depth, per_cycle);
            // Against eager hybrid's run of the same seed at the same point.
            let eager = rows.iter().find(|h| {
                h.design == "hybrid"
                    && h.seed == r.seed
                    && h.goroutines == r.goroutines
                    && h.depth == r.depth
            });
            let ratio = match (r.mutator_ops_per_s, eager.and_then(|h| h.mutator_ops_per_s)) {
                (Some(ops), Some(base)) if base > 0.0 => Some(ops / base),
                _ => None,
            };
            throughput.add(&r.design, r.depth, ratio);
        }
        if r.depth == Some(d0) {
            vs_count.add(&r.design, r.goroutines, tail);
        }
    }
    let (vs_depth, vs_count) = (
        design_palette_series(&vs_depth),
        design_palette_series(&vs_count),
    );
    if vs_depth.is_empty() && vs_count.is_empty() {
        return Err(no_data(NAME, "threaded"));
    }
    let depth_label = format!("stack depth (frames), {} goroutines", compact(g0));
    let log_panel = |x_label: &str, y_label: &str, series: Vec<Series>| {
        let (xs, ys) = all_values(&series);
        Panel {
            x: number_axis(x_label, Scale::Log, &xs),
            y: number_axis(y_label, Scale::Log, &ys),
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }
    };
    // The y label names what the panel's points are: p99s, maxima, or both (the legend says which
    // is which).
    let tail = |i: usize| match (as_max[i], points[i]) {
        (0, _) => "p99",
        (m, n) if m == n => "max",
        _ => "p99 or max",
    };
    let mut panels = vec![
        log_panel(
            &depth_label,
            &format!("(a) scan stall {} (µs)", tail(1)),
            vs_depth,
        ),
        log_panel(
            &format!("goroutines, depth {}", compact(d0)),
            &format!("(b) scan stall {} (µs)", tail(2)),
            vs_count,
        ),
    ];
    let mark = design_palette_series(&mark);
    if !mark.is_empty() {
        let (xs, ys) = all_values(&mark);
        panels.push(Panel {
            x: number_axis(&depth_label, Scale::Log, &xs),
            y: number_axis("(c) mark phase/cycle (ms)", pick_scale(&ys), &ys),
            series: mark,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        });
    }
    let throughput = design_palette_series(&throughput);
    if !throughput.is_empty() {
        let (xs, ys) = all_values(&throughput);
        // Around 1 (hybrid itself), wide enough to read a tenth either way.
        let lo = ys.iter().copied().fold(0.9, f64::min);
        let hi = ys.iter().copied().fold(1.1, f64::max);
        panels.push(Panel {
            x: number_axis(&depth_label, Scale::Log, &xs),
            y: Axis {
                label: "(d) mutator ops/s ÷ hybrid".to_owned(),
                scale: Scale::Linear,
                lo: lo - 0.05,
                hi: hi + 0.05,
                ticks: Ticks::Number,
            },
            series: throughput,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        });
    }
    let mut notes = vec![
        "stall: how long a scan of its".to_owned(),
        "own stack kept a goroutine".to_owned(),
        "from running; p99 only where".to_owned(),
        format!(
            "a run has ≥ {} scans, otherwise",
            crate::sweeps::STALL_P99_MIN_SAMPLES
        ),
        format!("max (here: {} of {} runs)", as_max[0], points[0]),
    ];
    if as_max[0] == 0 {
        notes.pop();
        notes.push("max (here: none)".to_owned());
    }
    Ok(Figure {
        name: NAME.to_owned(),
        title: "Stack-scan stall and its cost, deep-oscillate (threaded)".to_owned(),
        legend_title: "design".to_owned(),
        notes,
        size: (1000, 1600),
        columns: 1,
        panels,
    })
}

/// The MMU figure: small multiples, one panel per workload, one solid line per design with idle
/// workers' marking counted as the idle time it filled (`mmu_excl_idle`), and, dashed in the same
/// colour, the curve the design's stop-the-world pauses alone would give (`mmu_pause_only`): the
/// gap between them is what concurrent marking and assists cost the mutator. Seeds are averaged,
/// each seed drawn where they disagree. From the threaded engine's rows when there are any (MMU
/// from a deterministic schedule is a model, not a measurement). Results written before the
/// curves were split have only `mmu` (idle marking counted): drawn alone, and the note says so.
fn fig_mmu(t: &MmuTable) -> Result<Figure, Skip> {
    const NAME: &str = "mmu";
    let mut workloads: Vec<&str> = t.rows.iter().map(|r| r.workload.as_str()).collect();
    workloads.sort_by_key(|w| WORKLOADS.rank(w));
    workloads.dedup();
    let split = t.rows.iter().any(|r| r.mmu_excl_idle.is_some());
    let mut panels = Vec::new();
    let mut engines: Vec<&str> = Vec::new();
    for w in workloads {
        let of_w: Vec<&MmuRow> = t.rows.iter().filter(|r| r.workload == w).collect();
        let engine = if of_w.iter().any(|r| r.engine == "threaded") {
            "threaded"
        } else {
            of_w.first().map_or("", |r| r.engine.as_str())
        };
        let (mut solid, mut dashed) = (Grouper::default(), Grouper::default());
        for r in of_w.iter().filter(|r| r.engine == engine) {
            let x = r.window_ns.map(|ns| ns / 1e6);
            solid.add(&r.design, x, if split { r.mmu_excl_idle } else { r.mmu });
            dashed.add(&r.design, x, r.mmu_pause_only);
        }
        let mut designs: Vec<&String> = solid.series_names().collect();
        designs.sort_by_key(|d| design_rank(d));
        let line = |g: &Grouper, d: &str, is_dashed: bool| Series {
            label: d.to_owned(),
            dashed: is_dashed,
            colour: design_colour(d),
            marker: design_marker(d),
            points: g.points(d),
        };
        let series: Vec<Series> = designs
            .iter()
            .map(|d| line(&solid, d, false))
            .chain(designs.iter().map(|d| line(&dashed, d, true)))
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.iter().all(|s| s.dashed) {
            continue;
        }
        if !engines.contains(&engine) {
            engines.push(engine);
        }
        let (xs, _) = all_values(&series);
        panels.push(Panel {
            x: number_axis("window (ms)", Scale::Log, &xs),
            y: Axis {
                label: "MMU (0–1)".to_owned(),
                scale: Scale::Linear,
                lo: -0.02,
                hi: 1.04,
                ticks: Ticks::Number,
            },
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: Some(w.to_owned()),
        });
    }
    if panels.is_empty() {
        return Err(no_data(NAME, "MMU"));
    }
    let solid_note = if split {
        vec![
            "solid: idle workers' marking".to_owned(),
            "counted as idle time".to_owned(),
            "dashed: the pauses alone".to_owned(),
        ]
    } else {
        vec!["every GC interval counted".to_owned()]
    };
    let columns = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(columns) as u32;
    Ok(Figure {
        name: NAME.to_owned(),
        title: format!(
            "Minimum mutator utilization by workload ({} engine)",
            engines.join(", ")
        ),
        legend_title: "design".to_owned(),
        notes: solid_note,
        size: (1400, 120 + 330 * rows),
        columns,
        panels,
    })
}

const MIB: f64 = 1024.0 * 1024.0;

fn fig_sanitizer_leak(t: &Rows<SanitizerRow>) -> Result<Figure, Skip> {
    const NAME: &str = "sanitizer_leak";
    let mut metadata = Grouper::default();
    let mut live = Grouper::default();
    for r in &t.rows {
        metadata.add(&r.mode, r.step, r.sanitizer_bytes.map(|b| b / MIB));
        live.add(&r.mode, r.step, r.live_objects);
    }
    let metadata = MODES.series(&metadata);
    let live = MODES.series(&live);
    if metadata.is_empty() && live.is_empty() {
        return Err(no_data(NAME, "measured"));
    }
    let (xs, _) = all_values(&[metadata.as_slice(), live.as_slice()].concat());
    let panel = |label: &str, series: Vec<Series>| {
        let (_, ys) = all_values(&series);
        Panel {
            x: number_axis("step (GC cycle)", Scale::Linear, &xs),
            y: number_axis(label, Scale::Linear, &ys),
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }
    };
    Ok(Figure {
        name: NAME.to_owned(),
        title: "Sanitizer metadata and live heap per GC cycle".to_owned(),
        legend_title: "mode".to_owned(),
        notes: Vec::new(),
        size: (1000, 800),
        columns: 1,
        panels: vec![
            panel("sanitizer metadata (MiB)", metadata),
            panel("live objects", live),
        ],
    })
}

/// The drop-fraction axis (log: the fractions step by factors of ten).
fn drop_axis(xs: &[f64]) -> Axis {
    number_axis(
        "write barriers dropped (fraction of heap stores)",
        Scale::Log,
        xs,
    )
}

/// The workloads the faults were injected into, as a title suffix: ` (mixed)`.
fn fault_workloads(rows: &[FaultRow]) -> String {
    let mut workloads: Vec<&str> = rows
        .iter()
        .map(|r| r.workload.as_str())
        .filter(|w| !w.is_empty())
        .collect();
    workloads.sort_by_key(|w| WORKLOADS.rank(w));
    workloads.dedup();
    if workloads.is_empty() {
        String::new()
    } else {
        format!(" ({})", workloads.join(", "))
    }
}

fn fig_wbshadow_detection_vs_drop(t: &Rows<FaultRow>) -> Result<Figure, Skip> {
    const NAME: &str = "wbshadow_detection_vs_drop";
    let mut g = Grouper::default();
    for r in &t.rows {
        g.add(
            &r.mode,
            r.drop_fraction,
            r.detection_rate.map(|f| 100.0 * f),
        );
    }
    let series = MODES.series(&g);
    if series.is_empty() {
        return Err(no_data(NAME, "faulted-run"));
    }
    let (xs, _) = all_values(&series);
    Ok(Figure {
        name: NAME.to_owned(),
        title: format!(
            "Missing write barriers detected, by drop fraction{}",
            fault_workloads(&t.rows)
        ),
        legend_title: "checker".to_owned(),
        notes: Vec::new(),
        size: (1000, 650),
        columns: 1,
        panels: vec![Panel {
            x: drop_axis(&xs),
            y: Axis {
                label: "detected (% of runs with a dropped barrier)".to_owned(),
                scale: Scale::Linear,
                lo: -3.0,
                hi: 103.0,
                ticks: Ticks::Number,
            },
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }],
    })
}

fn fig_wbshadow_delay_vs_drop(t: &Rows<FaultRow>) -> Result<Figure, Skip> {
    const NAME: &str = "wbshadow_delay_vs_drop";
    let mut p50 = Grouper::default();
    let mut max = Grouper::default();
    for r in &t.rows {
        p50.add(&r.mode, r.drop_fraction, r.delay_stores_p50);
        max.add(&r.mode, r.drop_fraction, r.delay_stores_max);
    }
    // The line is the median delay; its error bar reaches up to the longest delay (a bar, not
    // circles, even where several workloads' cells share a point).
    let series: Vec<Series> = MODES
        .series(&p50)
        .into_iter()
        .map(|mut s| {
            let tops = max.points(&s.label);
            for pt in &mut s.points {
                if let Some(top) = tops.iter().find(|top| top.x == pt.x) {
                    pt.max = pt.max.max(top.max);
                }
                pt.seeds.clear();
            }
            s
        })
        .collect();
    if series.is_empty() {
        return Err(no_data(NAME, "detected"));
    }
    let (xs, ys) = all_values(&series);
    Ok(Figure {
        name: NAME.to_owned(),
        title: format!(
            "Heap stores until a missing barrier is reported{}",
            fault_workloads(&t.rows)
        ),
        legend_title: "checker".to_owned(),
        notes: Vec::new(),
        size: (1000, 650),
        columns: 1,
        panels: vec![Panel {
            x: drop_axis(&xs),
            y: number_axis("stores to report (p50, bar to max)", Scale::Log, &ys),
            series,
            line_break: None,
            bars: None,
            reference: None,
            title: None,
        }],
    })
}

/// Where the profiler's samples went, as the CSV's columns name them, with their colours.
const SAMPLE_FATES: [(&str, RGBColor); 7] = [
    ("goroutine traceback", RGBColor(44, 160, 44)),
    ("g0 traceback", RGBColor(23, 190, 207)),
    ("System: g is g0", RGBColor(127, 127, 127)),
    ("System: SP off g's stack", RGBColor(255, 127, 14)),
    ("System: PC sets SP", RGBColor(148, 103, 189)),
    ("System: PC in stackBarrier", RGBColor(140, 86, 75)),
    ("System: stkbar lock held", RGBColor(227, 119, 194)),
];

/// The rule sets whose sample fates the figure shows side by side.
const FATE_RULES: [&str; 2] = ["go1.7", "seed003"];

/// The rule sets and engines of the malformed panel, with their colours.
const RULE_ENGINES: [(&str, &str, &str, RGBColor); 6] = [
    (
        "go1.7",
        "deterministic",
        "go1.7, deterministic",
        RGBColor(31, 119, 180),
    ),
    (
        "go1.7",
        "threaded",
        "go1.7, threaded",
        RGBColor(120, 170, 215),
    ),
    (
        "seed003",
        "deterministic",
        "seed003, deterministic",
        RGBColor(188, 189, 34),
    ),
    (
        "seed003",
        "threaded",
        "seed003, threaded",
        RGBColor(219, 219, 141),
    ),
    (
        "none",
        "deterministic",
        "no checks, deterministic",
        RGBColor(214, 39, 40),
    ),
    (
        "none",
        "threaded",
        "no checks, threaded",
        RGBColor(240, 140, 140),
    ),
];

fn fig_profiler_switch(t: &Rows<ProfilerRow>) -> Result<Figure, Skip> {
    const NAME: &str = "profiler_switch";
    let mut workloads: Vec<&str> = Vec::new();
    for r in &t.rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let x_of = |w: &str| workloads.iter().position(|x| *x == w).map(|i| i as f64);
    // Sums over every run (seeds and, for the fates, engines) of a workload.
    let sum = |rows: &mut dyn Iterator<Item = &ProfilerRow>, f: fn(&ProfilerRow) -> Option<f64>| {
        rows.filter_map(f).sum::<f64>()
    };
    let bar_series = |label: &str, colour: RGBColor, points: Vec<Point>| Series {
        label: label.to_owned(),
        dashed: false,
        colour,
        marker: Marker::Square,
        points,
    };
    let point = |x: f64, v: f64| Point {
        x,
        mean: v,
        min: v,
        max: v,
        seeds: Vec::new(),
    };
    let fates: [fn(&ProfilerRow) -> Option<f64>; 7] = [
        |r| r.user_samples,
        |r| r.g0_samples,
        |r| r.refused_g0,
        |r| r.refused_sp,
        |r| r.refused_sets_sp,
        |r| r.refused_stack_barrier_pc,
        |r| r.refused_stkbar_lock,
    ];
    // Per workload, `scale · Σf / Σsamples` over the runs of `engine` under `rules` (no point
    // where those runs took no sample).
    let per_workload =
        |engine: &str, rules: &str, scale: f64, f: fn(&ProfilerRow) -> Option<f64>| {
            let mut points = Vec::new();
            for w in &workloads {
                let of = || {
                    t.rows
                        .iter()
                        .filter(|r| r.workload == *w && r.engine == engine && r.rules == rules)
                };
                let samples = sum(&mut of(), |r| r.samples);
                if samples > 0.0 {
                    points.extend(x_of(w).map(|x| point(x, scale * sum(&mut of(), f) / samples)));
                }
            }
            points
        };
    // One panel of fates per engine and rule set, the two rule sets of an engine one above the
    // other (the engines sample differently: every boundary alike, or in proportion to time); a
    // fate no panel has is left out of all.
    let mut fate_panels: Vec<(String, Vec<Series>)> = Vec::new();
    for engine in ["deterministic", "threaded"] {
        for rules in FATE_RULES {
            let mut fate_series = Vec::new();
            for ((label, colour), f) in SAMPLE_FATES.iter().zip(fates) {
                let points = per_workload(engine, rules, 100.0, f);
                fate_series.push(bar_series(label, *colour, points));
            }
            if fate_series.iter().any(|s| !s.points.is_empty()) {
                let short = if engine == "threaded" { "thr" } else { "det" };
                fate_panels.push((format!("{rules} {short}, samples (%)"), fate_series));
            }
        }
    }
    let empty_everywhere = |i: usize| {
        fate_panels
            .iter()
            .all(|(_, series)| series[i].points.iter().all(|p| p.mean == 0.0))
    };
    let keep: Vec<bool> = (0..SAMPLE_FATES.len())
        .map(|i| !empty_everywhere(i))
        .collect();
    for (_, series) in &mut fate_panels {
        let mut i = 0;
        series.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    let mut malformed_series = Vec::new();
    for (rules, engine, label, colour) in RULE_ENGINES {
        let points = per_workload(engine, rules, 1e6, |r| r.malformed);
        if !points.is_empty() {
            malformed_series.push(bar_series(label, colour, points));
        }
    }
    if malformed_series.is_empty() {
        return Err(no_data(NAME, "sampled"));
    }
    let x = Axis {
        label: "workload".to_owned(),
        scale: Scale::Linear,
        lo: -0.5,
        hi: workloads.len() as f64 - 0.5,
        ticks: Ticks::Categories(workloads.iter().map(|w| (*w).to_owned()).collect()),
    };
    let mut panels = Vec::new();
    for (label, series) in fate_panels {
        panels.push(Panel {
            x: x.clone(),
            y: Axis {
                label,
                scale: Scale::Linear,
                lo: 0.0,
                hi: 105.0,
                ticks: Ticks::Number,
            },
            series,
            line_break: None,
            bars: Some(Bars { labels: false }),
            reference: None,
            title: None,
        });
    }
    let (_, ys) = all_values(&malformed_series);
    let (_, hi) = axis_range(&ys, Scale::Linear);
    panels.push(Panel {
        x,
        y: Axis {
            label: "malformed per 10⁶ samples".to_owned(),
            scale: Scale::Linear,
            lo: 0.0,
            hi: hi * 1.08,
            ticks: Ticks::Number,
        },
        series: malformed_series,
        line_break: None,
        bars: Some(Bars { labels: true }),
        reference: None,
        title: None,
    });
    Ok(Figure {
        name: NAME.to_owned(),
        title: "Profiler samples under Go 1.7's sigprof rules and seed 003's".to_owned(),
        legend_title: "samples".to_owned(),
        notes: Vec::new(),
        size: (1000, 1500),
        columns: 1,
        panels,
    })
}

// ---------------------------------------------------------------------------------------------
// Drawing.

const FONT: &str = "sans-serif";
const TITLE_PX: u32 = 26;
const DESC_PX: u32 = 19;
const LABEL_PX: u32 = 16;
const LEGEND_PX: u32 = 16;
const LEGEND_W: u32 = 270;

/// Registers the embedded DejaVu Sans as `sans-serif`, once per process.
fn register_fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// A tick value, short: `0.5`, `20`, `1k`, `250k`, `10M`.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if scaled == 0.0 {
        "0".to_owned()
    } else {
        let digits = (3 - scaled.abs().log10().floor() as i32 - 1).clamp(0, 6) as usize;
        let s = format!("{scaled:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    format!("{s}{suffix}")
}

fn tick_label(axis: &Axis, v: f64) -> String {
    match &axis.ticks {
        Ticks::Number => {
            if axis.scale == Scale::Log {
                // Label decades and the 2 and 5 between them; the other light lines stay bare.
                let m = v / 10f64.powf(v.log10().floor());
                let near = |k: f64| (m - k).abs() < 1e-6 * k;
                if near(1.0) || near(2.0) || near(5.0) {
                    compact(v)
                } else {
                    String::new()
                }
            } else {
                compact(v)
            }
        }
        Ticks::Categories(names) => {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    }
}

fn draw_error<E: fmt::Display>(figure: &str) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        figure: figure.to_owned(),
        message: e.to_string(),
    }
}

/// Renders `fig` as PNG and SVG under `dir`, each in memory first and then written with
/// [`write_atomically`]: a temporary file beside the target, renamed over it.
fn write_figure(fig: &Figure, dir: &Path) -> Result<(PathBuf, PathBuf), PlotError> {
    let png = dir.join(format!("{}.png", fig.name));
    let svg = dir.join(format!("{}.svg", fig.name));
    let (w, h) = fig.size;

    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, fig.size).into_drawing_area();
        render(&root, fig).map_err(draw_error(&fig.name))?;
        root.present().map_err(draw_error(&fig.name))?;
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, fig.size).into_drawing_area();
        render(&root, fig).map_err(draw_error(&fig.name))?;
        root.present().map_err(draw_error(&fig.name))?;
    }

    write_atomically(&png, |out| {
        let mut enc = png::Encoder::new(out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut image = enc.write_header().map_err(std::io::Error::other)?;
        image
            .write_image_data(&rgb)
            .map_err(std::io::Error::other)?;
        image.finish().map_err(std::io::Error::other)
    })
    .map_err(|source| PlotError::Write {
        path: png.clone(),
        source,
    })?;
    write_atomically(&svg, |out| out.write_all(text.as_bytes())).map_err(|source| {
        PlotError::Write {
            path: svg.clone(),
            source,
        }
    })?;
    Ok((png, svg))
}

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure) -> Result<(), String> {
    let de = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(de)?;
    let body = root
        .titled(&fig.title, (FONT, TITLE_PX).into_font().color(&BLACK))
        .map_err(de)?;
    let (w, _) = body.dim_in_pixel();
    let (plots, legend) = body.split_horizontally(w.saturating_sub(LEGEND_W));
    let columns = fig.columns.max(1);
    let rows = fig.panels.len().div_ceil(columns).max(1);
    let areas = plots.split_evenly((rows, columns));
    let last = fig.panels.len().saturating_sub(1);
    for (i, (area, panel)) in areas.iter().zip(&fig.panels).enumerate() {
        // Stacked panels that share their x axis describe it once, under the bottom one; small
        // multiples describe it under their bottom row.
        let shared = if columns == 1 {
            i < last && fig.panels[i + 1].x.label == panel.x.label
        } else {
            i + columns <= last
        };
        match &panel.title {
            Some(title) => {
                let area = area
                    .titled(title, (FONT, DESC_PX).into_font().color(&BLACK))
                    .map_err(de)?;
                draw_panel(&area, panel, !shared)?;
            }
            None => draw_panel(area, panel, !shared)?,
        }
    }
    let mut entries: Vec<&Series> = Vec::new();
    for s in fig.panels.iter().flat_map(|p| &p.series) {
        if !s.dashed && !entries.iter().any(|e| e.label == s.label) {
            entries.push(s);
        }
    }
    // Every figure whose points show seeds says what the circles are.
    let mut notes = fig.notes.clone();
    let shows_seeds = fig
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .any(|s| !s.dashed && s.points.iter().any(|pt| !pt.seeds.is_empty()));
    if shows_seeds && !notes.iter().any(|n| n.contains("circles")) {
        notes.push("circles: each seed, where seeds differ".to_owned());
    }
    draw_legend(&legend, &fig.legend_title, &entries, &notes).map_err(de)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    x_desc: bool,
) -> Result<(), String> {
    let (x0, x1, y0, y1) = (p.x.lo, p.x.hi, p.y.lo, p.y.hi);
    match (p.x.scale, p.y.scale) {
        (Scale::Linear, Scale::Linear) => draw_in(area, p, x_desc, x0..x1, y0..y1),
        (Scale::Log, Scale::Linear) => draw_in(area, p, x_desc, (x0..x1).log_scale(), y0..y1),
        (Scale::Linear, Scale::Log) => draw_in(area, p, x_desc, x0..x1, (y0..y1).log_scale()),
        (Scale::Log, Scale::Log) => {
            draw_in(area, p, x_desc, (x0..x1).log_scale(), (y0..y1).log_scale())
        }
    }
}

fn draw_in<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    x_desc: bool,
    x: X,
    y: Y,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let de = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .margin_top(12)
        .margin_right(18)
        .margin_left(8)
        .x_label_area_size(if x_desc { 58 } else { 30 })
        .y_label_area_size(78)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    let x_fmt = |v: &f64| tick_label(&p.x, *v);
    let y_fmt = |v: &f64| tick_label(&p.y, *v);
    let x_labels = match &p.x.ticks {
        Ticks::Categories(c) => c.len(),
        Ticks::Number => 12,
    };
    chart
        .configure_mesh()
        .x_desc(if x_desc { p.x.label.as_str() } else { "" })
        .y_desc(p.y.label.as_str())
        .axis_desc_style((FONT, DESC_PX))
        .label_style((FONT, LABEL_PX))
        .x_labels(x_labels)
        .y_labels(10)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(RGBColor(200, 200, 200))
        .light_line_style(RGBColor(240, 240, 240))
        .max_light_lines(if p.y.scale == Scale::Log { 9 } else { 1 })
        .draw()
        .map_err(de)?;

    if let Some(bars) = p.bars {
        return draw_bars(&mut chart, p, bars).map_err(de);
    }
    if let Some((y, label)) = &p.reference {
        // Dashed: 12-pixel-ish dashes over the axis's range, in the axis's own scale.
        let grey = RGBColor(90, 90, 90).stroke_width(1);
        let dashes = 48;
        let at = |i: usize| match p.x.scale {
            Scale::Log => p.x.lo * (p.x.hi / p.x.lo).powf(i as f64 / dashes as f64),
            _ => p.x.lo + (p.x.hi - p.x.lo) * i as f64 / dashes as f64,
        };
        chart
            .draw_series(
                (0..dashes)
                    .step_by(2)
                    .map(|i| PathElement::new(vec![(at(i), *y), (at(i + 1), *y)], grey)),
            )
            .map_err(de)?;
        let style = TextStyle::from((FONT, LABEL_PX).into_font())
            .color(&RGBColor(90, 90, 90))
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Bottom,
            ));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((p.x.hi, *y)) + Text::new(label.clone(), (-4, -3), style),
            ))
            .map_err(de)?;
    }
    let log_y = p.y.scale == Scale::Log;
    let log_x = p.x.scale == Scale::Log;
    let drawable = |pt: &Point| (!log_y || pt.mean > 0.0) && (!log_x || pt.x > 0.0);
    for s in &p.series {
        let pts: Vec<&Point> = s.points.iter().filter(|pt| drawable(pt)).collect();
        if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().map(|pt| (pt.x, pt.mean)),
                    6,
                    4,
                    s.colour.stroke_width(1),
                ))
                .map_err(de)?;
            continue;
        }
        let line = s.colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                pts.iter()
                    .filter(|pt| p.line_break.is_none_or(|b| pt.x < b))
                    .map(|pt| (pt.x, pt.mean)),
                line,
            ))
            .map_err(de)?;
        // Seeds that disagree: each seed's value as a small open circle.
        let thin = s.colour.stroke_width(1);
        chart
            .draw_series(pts.iter().flat_map(|pt| {
                pt.seeds
                    .iter()
                    .filter(|&&v| !log_y || v > 0.0)
                    .map(|&v| Circle::new((pt.x, v), 3, thin))
            }))
            .map_err(de)?;
        // An interval (a statistic's, not the seeds'): an error bar.
        let spread: Vec<(f64, f64, f64)> = pts
            .iter()
            .filter(|pt| pt.seeds.is_empty() && pt.max > pt.min)
            .map(|pt| {
                let lo = if log_y && pt.min <= 0.0 {
                    pt.mean
                } else {
                    pt.min
                };
                (pt.x, lo, pt.max)
            })
            .collect();
        chart
            .draw_series(
                spread
                    .iter()
                    .map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], thin)),
            )
            .map_err(de)?;
        chart
            .draw_series(
                spread
                    .iter()
                    .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)])
                    .map(|at| EmptyElement::at(at) + PathElement::new(vec![(-4, 0), (4, 0)], thin)),
            )
            .map_err(de)?;
        chart
            .draw_series(pts.iter().map(|pt| MarkerElement {
                at: (pt.x, pt.mean),
                marker: s.marker,
                colour: s.colour,
            }))
            .map_err(de)?;
    }
    // A log axis has no zero: say where zeros were left out instead of hiding them.
    let mut zeros: BTreeMap<Key, (usize, usize)> = BTreeMap::new();
    if log_y {
        for pt in p.series.iter().flat_map(|s| &s.points) {
            let (zero, all) = zeros.entry(Key(pt.x)).or_default();
            *zero += usize::from(pt.mean <= 0.0);
            *all += 1;
        }
    }
    let style = TextStyle::from((FONT, LABEL_PX).into_font())
        .color(&RGBColor(110, 110, 110))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Bottom,
        ));
    let floor = p.y.lo;
    for (x, (zero, all)) in zeros {
        let note = match zero {
            0 => continue,
            z if z == all => "all 0".to_owned(),
            z => format!("{z} at 0"),
        };
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x.0, floor)) + Text::new(note, (0, -6), style.clone()),
            ))
            .map_err(de)?;
    }
    Ok(())
}

/// Grouped bars: at each category x, one bar per series side by side, from zero up to the
/// series' value there (a linear y axis).
fn draw_bars<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    p: &Panel,
    bars: Bars,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let n = p.series.len().max(1) as f64;
    let group = 0.8;
    let width = group / n;
    let label_style = TextStyle::from((FONT, LABEL_PX - 3).into_font())
        .color(&RGBColor(60, 60, 60))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Bottom,
        ));
    for (k, s) in p.series.iter().enumerate() {
        let left = |x: f64| x - group / 2.0 + k as f64 * width;
        chart.draw_series(s.points.iter().map(|pt| {
            let x0 = left(pt.x);
            Rectangle::new(
                [(x0 + 0.04 * width, 0.0), (x0 + 0.96 * width, pt.mean)],
                s.colour.filled(),
            )
        }))?;
        if bars.labels {
            chart.draw_series(s.points.iter().map(|pt| {
                EmptyElement::at((left(pt.x) + width / 2.0, pt.mean))
                    + Text::new(compact(pt.mean), (0, -3), label_style.clone())
            }))?;
        }
    }
    Ok(())
}

/// A series marker at `at`, about 10 px across, filled (the cross is drawn in strokes). One
/// element type for every shape, so a chart and the legend draw markers the same way.
struct MarkerElement<C> {
    at: C,
    marker: Marker,
    colour: RGBColor,
}

impl<'b, C: 'b> PointCollection<'b, C> for &'b MarkerElement<C> {
    type Point = &'b C;
    type IntoIter = std::iter::Once<&'b C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for MarkerElement<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = points.next() else {
            return Ok(());
        };
        let fill = self.colour.filled();
        match self.marker {
            Marker::Circle => backend.draw_circle((x, y), 5, &fill, true),
            Marker::Triangle => {
                backend.fill_polygon(vec![(x, y - 6), (x + 6, y + 4), (x - 6, y + 4)], &fill)
            }
            Marker::TriangleDown => {
                backend.fill_polygon(vec![(x, y + 6), (x + 6, y - 4), (x - 6, y - 4)], &fill)
            }
            Marker::Square => backend.draw_rect((x - 4, y - 4), (x + 4, y + 4), &fill, true),
            Marker::Diamond => {
                backend.fill_polygon(vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], &fill)
            }
            Marker::Cross => {
                let stroke = self.colour.stroke_width(2);
                backend.draw_path(vec![(x - 5, y - 5), (x + 5, y + 5)], &stroke)?;
                backend.draw_path(vec![(x - 5, y + 5), (x + 5, y - 5)], &stroke)
            }
        }
    }
}

/// A legend label that fits the legend column: long trace names are cut with an ellipsis.
fn legend_label(label: &str) -> String {
    const MAX_CHARS: usize = 26;
    if label.chars().count() <= MAX_CHARS {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(MAX_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// The legend, beside the plots rather than over them, so it never hides a point; the figure's
/// notes, one line each, follow its entries.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    entries: &[&Series],
    notes: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let heading = TextStyle::from((FONT, LEGEND_PX + 1).into_font().style(FontStyle::Bold));
    let text = TextStyle::from((FONT, LEGEND_PX).into_font()).color(&BLACK);
    let top = 24;
    area.draw_text(title, &heading, (12, top))?;
    for (i, s) in entries.iter().enumerate() {
        let y = top + 34 + 28 * i as i32;
        area.draw(&PathElement::new(
            vec![(12, y), (46, y)],
            s.colour.stroke_width(2),
        ))?;
        area.draw(&MarkerElement {
            at: (29, y),
            marker: s.marker,
            colour: s.colour,
        })?;
        area.draw_text(
            &legend_label(&s.label),
            &text,
            (56, y - (LEGEND_PX as i32) / 2 - 1),
        )?;
    }
    let note = TextStyle::from((FONT, LEGEND_PX - 2).into_font()).color(&RGBColor(90, 90, 90));
    let below = top + 34 + 28 * entries.len() as i32;
    for (i, line) in notes.iter().enumerate() {
        area.draw_text(line, &note, (12, below + 20 * i as i32))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ticks_are_short() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(20.0), "20");
        assert_eq!(compact(1000.0), "1000");
        assert_eq!(compact(10_000.0), "10k");
        assert_eq!(compact(2.5e6), "2.5M");
    }

    #[test]
    fn offset_categories_run_every_frame_then_offsets_then_off() {
        let row = |d: &str| RunRow {
            workload: "mixed".into(),
            design: d.into(),
            barrier: "dijkstra".into(),
            engine: "deterministic".into(),
            cycles: Some(1.0),
            depth: None,
            goroutines: None,
            rescan_bytes: None,
            oracle_rescan_bytes: None,
            full_rescan_bytes: None,
            rescan_avoided: None,
            barriers_hit: None,
            barriers_installed: None,
            mark_term_ns_p50: None,
        };
        let rows = [
            row("full-rescan"),
            row("stkbar-4096"),
            row("stkbar-all"),
            row("stkbar-256"),
            row("hybrid"),
            row("stkbar-256"),
        ];
        let refs: Vec<&RunRow> = rows.iter().collect();
        let labels: Vec<String> = offset_categories(&refs)
            .into_iter()
            .map(offset_label)
            .collect();
        assert_eq!(labels, ["every frame", "256", "4096", "off"]);
    }

    #[test]
    fn seeds_average_into_one_point_with_their_range() {
        let mut g = Grouper::default();
        g.add("a", Some(1.0), Some(2.0));
        g.add("a", Some(1.0), Some(4.0));
        g.add("a", Some(2.0), None);
        assert_eq!(
            g.points("a"),
            [Point {
                x: 1.0,
                mean: 3.0,
                min: 2.0,
                max: 4.0,
                seeds: vec![2.0, 4.0],
            }]
        );
    }

    /// Results from before the MMU curves were split still plot: the one curve they have, solid,
    /// and a note saying what it counts; split results get a dashed pause-only curve per design.
    #[test]
    fn mmu_small_multiples_draw_what_the_rows_hold() {
        let row = |workload: &str, split: bool| MmuRow {
            workload: workload.into(),
            design: "hybrid".into(),
            engine: "threaded".into(),
            window_ns: Some(1e6),
            mmu: Some(0.2),
            mmu_excl_idle: split.then_some(0.4),
            mmu_pause_only: split.then_some(0.9),
        };
        let table = |rows| MmuTable {
            path: PathBuf::from("barrier_designs_mmu.csv"),
            rows,
        };
        let old = fig_mmu(&table(vec![row("mixed", false)])).expect("figure");
        assert_eq!((old.columns, old.panels.len()), (1, 1));
        assert_eq!(old.panels[0].series.len(), 1);
        assert_eq!(old.panels[0].series[0].points[0].mean, 0.2);
        assert!(old.notes.iter().any(|n| n == "every GC interval counted"));

        let new = fig_mmu(&table(vec![
            row("mixed", true),
            row("deep-oscillate", true),
            row("many-shallow", true),
        ]))
        .expect("figure");
        assert_eq!((new.columns, new.panels.len()), (2, 3));
        let titles: Vec<_> = new.panels.iter().map(|p| p.title.as_deref()).collect();
        assert_eq!(
            titles,
            [Some("deep-oscillate"), Some("many-shallow"), Some("mixed")]
        );
        let means: Vec<(bool, f64)> = new.panels[0]
            .series
            .iter()
            .map(|s| (s.dashed, s.points[0].mean))
            .collect();
        assert_eq!(means, [(false, 0.4), (true, 0.9)]);
    }

    #[test]
    fn log_axis_always_spans_a_labelled_decade() {
        let (lo, hi) = axis_range(&[1500.0, 9000.0], Scale::Log);
        assert!(lo <= 1000.0 && hi >= 10_000.0);
    }
}
