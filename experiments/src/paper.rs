//! The generated tables of `paper.md`, made from the CSVs in `results/`, and their refresh between
//! `<!-- generated:NAME -->` and `<!-- end generated:NAME -->` markers.
//!
//! Invariant: a table is a pure function of the CSVs, and a refresh replaces exactly the text
//! between a table's two markers, so refreshing twice gives the same file as refreshing once
//! (idempotence), and nothing outside the markers is ever touched. A table whose CSV is absent
//! leaves its section as it was (and says so); a start marker without its end marker is an error,
//! never a guess. Rows that differ only in their seed are averaged (a slowdown, a ratio of wall
//! times, takes the median instead, which one noisy run cannot move); every table says how many
//! seeds went into each cell.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::suite::{Design, series_name, workload_label};
use crate::sweeps::{
    BARRIER_DESIGNS, OFFSET_DESIGNS, SCAN_STALL_DESIGNS, STALL_P99_MIN_SAMPLES, StallHeadline,
    StallRun,
};

/// Why the tables could not be made or placed.
#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    /// A CSV that exists could not be read.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The paper's markers are broken.
    #[error("paper: {0}")]
    Markers(String),
}

/// The columns the tables read from a run CSV (ARCHITECTURE.md §5's core columns and the suite's extras).
#[derive(Clone, Debug, Deserialize)]
struct Row {
    workload: String,
    #[serde(default)]
    replay: String,
    design: String,
    /// Absent from results written before the removal modes existed: after the restart.
    #[serde(default)]
    barrier_removal: String,
    engine: String,
    goroutines: usize,
    depth: usize,
    cycles: u64,
    full_rescan_bytes: u64,
    rescan_bytes: u64,
    oracle_rescan_bytes: u64,
    /// The content oracle; absent from runs without stackshadow's records (and from results
    /// written before it existed).
    #[serde(default)]
    content_rescan_bytes: Option<u64>,
    barriers_installed: u64,
    barriers_hit: u64,
    stkbar_reserved_bytes: u64,
    mark_term_ns_p50: u64,
    /// Absent from results written before the re-scan list was counted.
    #[serde(default)]
    rescan_goroutines: u64,
    #[serde(default)]
    rescan_goroutines_p50: u64,
    mark_term_ns_p99: u64,
    mark_term_ns_max: u64,
    sweep_term_ns_p50: u64,
    checkmark_failures: u64,
    outside_bound: u64,
    mark_ns: u64,
    wb_calls: u64,
    mutator_ops: u64,
    mutator_ops_per_s: f64,
    #[serde(default)]
    wb_ns_per_store: Option<f64>,
}

impl Row {
    /// The series the row belongs to: its design, marked when its barriers were removed in the
    /// pause.
    fn series(&self) -> String {
        series_name(&self.design, &self.barrier_removal)
    }

    /// The workload as tables name it: `replay:TRACE` for a replayed trace.
    fn label(&self) -> String {
        workload_label(&self.workload, &self.replay)
    }
    fn per_cycle(&self, v: u64) -> f64 {
        v as f64 / self.cycles.max(1) as f64
    }
}

/// A `scan_stall.csv` row: one threaded run's stall figures and what they cost (a run CSV; the
/// columns the scan-stall table reads, all of which older run CSVs lack).
#[derive(Clone, Debug, Deserialize)]
struct StallRow {
    design: String,
    engine: String,
    goroutines: usize,
    depth: usize,
    cycles: u64,
    scan_stalls: u64,
    scan_stall_ns_p50: u64,
    scan_stall_ns_p99: u64,
    scan_stall_ns_max: u64,
    mark_term_ns_p50: u64,
    mark_ns: u64,
    mutator_ops_per_s: f64,
    command: String,
}

impl StallRow {
    /// The row as the scan-stall headline reads it.
    fn run(&self) -> StallRun<'_> {
        StallRun {
            design: &self.design,
            goroutines: self.goroutines,
            depth: self.depth,
            scan_stalls: self.scan_stalls,
            scan_stall_ns_p99: self.scan_stall_ns_p99,
            scan_stall_ns_max: self.scan_stall_ns_max,
            mark_term_ns_p50: self.mark_term_ns_p50,
            mutator_ops_per_s: self.mutator_ops_per_s,
        }
    }
}

/// An MMU CSV row.
#[derive(Clone, Debug, Deserialize)]
struct MmuRow {
    workload: String,
    #[serde(default)]
    replay: String,
    design: String,
    window_ns: u64,
    mmu: f64,
    /// Absent from results written before the MMU curves were split.
    #[serde(default)]
    mmu_excl_idle: Option<f64>,
}

/// A `sanitizer_leak.csv` row: the sanitizer's memory after one GC cycle of one mode and seed
/// (seed 004).
#[derive(Clone, Debug, Deserialize)]
struct SanitizerRow {
    /// `free-notify` or `no-free-notify`.
    mode: String,
    step: u64,
    live_objects: u64,
    sanitizer_bytes: u64,
}

/// A `wbshadow_faults.csv` row: one checker mode at one injected drop fraction, counted over the
/// seeds it ran (seed 000).
#[derive(Clone, Debug, Deserialize)]
struct FaultRow {
    /// `wbshadow=1`, `wbshadow=2` (with `gccheckmark=1`) or `checkmark`.
    mode: String,
    drop_fraction: f64,
    workload: String,
    runs: u64,
    runs_with_faults: u64,
    /// `detected / runs_with_faults`; empty when no run had a fault.
    detection_rate: Option<f64>,
    by_store: u64,
    by_gc: u64,
    by_checkmark: u64,
    /// Empty when nothing was detected.
    delay_stores_p50: Option<f64>,
    delay_stores_max: Option<f64>,
    lost_runs: u64,
    lost_caught: u64,
}

/// A `wbshadow_overhead.csv` row: one run of one checker mode and seed.
#[derive(Clone, Debug, Deserialize)]
struct OverheadRow {
    /// `off`, `wbshadow=1`, `wbshadow=2` or `checkmark`.
    mode: String,
    workload: String,
    /// Wall time over the wall time of the same seed's run with `off`.
    slowdown: f64,
    shadow_bytes: u64,
    heap_bytes: u64,
}

/// A `profiler_switch.csv` row: one profiled run of one workload, engine, rule set and seed.
#[derive(Clone, Debug, Deserialize)]
struct ProfilerRow {
    workload: String,
    /// `deterministic` or `threaded`.
    engine: String,
    /// The handler's rules: `go1.7`, `seed003` or `none`.
    rules: String,
    samples: u64,
    user_samples: u64,
    g0_samples: u64,
    system_samples: u64,
    samples_mid_switch: u64,
    unwound_mid_barrier: u64,
    malformed: u64,
}

/// A `soundness.csv` row: one fault, checker and workload of the mutation table.
#[derive(Clone, Debug, Deserialize)]
struct SoundnessRow {
    fault: String,
    checker: String,
    runs: u64,
    runs_effective: u64,
    caught_effective: u64,
    lost: u64,
    lost_caught: u64,
    delay_cycles_p50: Option<f64>,
}

/// A `soundness_campaign.csv` row: one design, workload and engine over many seeds.
#[derive(Clone, Debug, Deserialize)]
struct CampaignRow {
    design: String,
    engine: String,
    workload: String,
    seeds: u64,
    cycles: u64,
    failures: u64,
    stackshadow_frames_verified: u64,
}

/// A `trace_overhead.csv` row: one workload and engine run with tracing off and on (seed 001).
#[derive(Clone, Debug, Deserialize)]
struct TraceOverheadRow {
    workload: String,
    engine: String,
    wall_ms_off: f64,
    wall_ms_on: f64,
    events_per_sec: f64,
    trace_bytes: u64,
    buffers_allocated: u64,
}

/// A configuration's pooled pauses, as `NAME_pauses.csv` holds them (`suite::PauseRow`).
#[derive(Debug, Deserialize)]
struct PausesRow {
    workload: String,
    #[serde(default)]
    replay: String,
    goroutines: usize,
    depth: usize,
    design: String,
    barrier_removal: String,
    procs: usize,
    gogc: Option<u32>,
    heap_minimum: u64,
    gc_share: f64,
    samples: usize,
    mark_term_ns_p50: f64,
    mark_term_ns_p50_lo: f64,
    mark_term_ns_p50_hi: f64,
    mark_term_tail: String,
    mark_term_ns_tail: f64,
    #[serde(default)]
    mark_term_ns_max: f64,
}

/// A workload's pauses under a real Go runtime (`go_peer_pauses.csv`).
#[derive(Debug, Deserialize)]
struct GoPausesRow {
    workload: String,
    goroutines: usize,
    depth: usize,
    go_version: String,
    procs: usize,
    godebug: String,
    samples: usize,
    mark_term_ns_p50: f64,
    mark_term_ns_p50_lo: f64,
    mark_term_ns_p50_hi: f64,
    mark_term_tail: String,
    mark_term_ns_tail: f64,
}

impl PausesRow {
    /// The series it belongs to, as the run rows name theirs.
    fn series(&self) -> String {
        series_name(&self.design, &self.barrier_removal)
    }

    /// The workload as tables name it: `replay:TRACE` for a replayed trace.
    fn label(&self) -> String {
        workload_label(&self.workload, &self.replay)
    }
}

/// A median and its 95 % interval, in µs: `38.1 [35.0, 41.2]`.
fn us_interval(p50: f64, lo: f64, hi: f64) -> String {
    format!("{} [{}, {}]", us(p50), us(lo), us(hi))
}

/// The pooled pauses of `series` at the point `at` picks, where the sweep pooled them.
fn pooled_at<'a>(
    pooled: Option<&'a [PausesRow]>,
    series: &str,
    at: impl Fn(&PausesRow) -> bool,
) -> Option<&'a PausesRow> {
    pooled?.iter().find(|p| at(p) && p.series() == series)
}

/// A table cell of `p`'s pooled median with its interval, its samples counted into `samples`;
/// `–` where the configuration has no pooled pauses.
fn pooled_cell(p: Option<&PausesRow>, samples: &mut Vec<usize>) -> String {
    match p {
        Some(p) => {
            samples.push(p.samples);
            us_interval(
                p.mark_term_ns_p50,
                p.mark_term_ns_p50_lo,
                p.mark_term_ns_p50_hi,
            )
        }
        None => "–".into(),
    }
}

/// What every table built from pooled pauses says about them.
const POOLED_NOTE: &str = "Each cell pools every reported cycle of the configuration's threaded runs (all seeds): the median mark-termination pause with its 95 % percentile-bootstrap interval in brackets (2,000 resamples); the tail is the 99th percentile where a configuration has at least 100 samples and the maximum below that, as its label says.";

/// `sensitivity`: each design's median mark-termination pause as one setting moves from the
/// base, the others held there.
fn sensitivity_table(rows: &[PausesRow]) -> Table {
    let designs: Vec<&str> = PAUSE_ORDER
        .into_iter()
        .filter(|d| rows.iter().any(|r| r.design == *d))
        .collect();
    // The base: the setting every axis shares, the most frequent value of each.
    fn mode<T: PartialEq + Copy>(xs: impl Iterator<Item = T>) -> Option<T> {
        let xs: Vec<T> = xs.collect();
        xs.iter()
            .copied()
            .max_by_key(|x| xs.iter().filter(|y| *y == x).count())
    }
    let base = (
        mode(rows.iter().map(|r| r.procs)),
        mode(rows.iter().map(|r| r.gogc)),
        mode(rows.iter().map(|r| r.heap_minimum)),
        mode(rows.iter().map(|r| r.gc_share.to_bits())),
    );
    let settings = |r: &PausesRow| {
        (
            Some(r.procs),
            Some(r.gogc),
            Some(r.heap_minimum),
            Some(r.gc_share.to_bits()),
        )
    };
    let mut header = vec!["workload".to_owned(), "setting".to_owned()];
    header.extend(designs.iter().map(|d| format!("{d} p50 µs [95 % CI]")));
    let mut body = Vec::new();
    let mut samples = Vec::new();
    for workload in first_seen(rows, |r| &r.workload) {
        let mine: Vec<&PausesRow> = rows.iter().filter(|r| r.workload == workload).collect();
        let size = mine
            .first()
            .map_or(String::new(), |r| format!("{} × {}", r.goroutines, r.depth));
        // Each axis: the rows whose other three settings are the base's, by value.
        type Axis = (&'static str, fn(&PausesRow) -> f64, fn(f64) -> String);
        let axes: [Axis; 4] = [
            ("GOMAXPROCS", |r| r.procs as f64, |v| format!("{v}")),
            (
                "GOGC",
                |r| f64::from(r.gogc.unwrap_or(0)),
                |v| format!("{v}"),
            ),
            (
                "heap minimum",
                |r| r.heap_minimum as f64,
                |v| format!("{} MiB", mib(v)),
            ),
            ("GC share", |r| r.gc_share, |v| format!("{v}")),
        ];
        for (i, (name, value, show)) in axes.into_iter().enumerate() {
            let on_axis: Vec<&&PausesRow> = mine
                .iter()
                .filter(|r| {
                    let s = settings(r);
                    let b = base;
                    [s.0 == b.0, s.1 == b.1, s.2 == b.2, s.3 == b.3]
                        .iter()
                        .enumerate()
                        .all(|(j, same)| j == i || *same)
                })
                .collect();
            let mut values: Vec<f64> = on_axis.iter().map(|r| value(r)).collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            for v in values {
                let mut cells = vec![format!("{workload} {size}"), format!("{name} {}", show(v))];
                for d in &designs {
                    let p = on_axis
                        .iter()
                        .find(|r| r.design == *d && value(r) == v)
                        .map(|r| **r);
                    cells.push(pooled_cell(p, &mut samples));
                }
                body.push(cells);
            }
        }
    }
    let n = seed_count(samples).unwrap_or_else(|| "0".into());
    let note = format!(
        "`deep-oscillate` and `many-shallow`, threaded engine, one setting at a time moved from the base (the others held there: each axis's base row is the same runs). {POOLED_NOTE} Samples per cell: {n}. Made by `sensitivity --full`; `sensitivity_pauses.csv` names each cell's configuration."
    );
    Table {
        name: "sensitivity".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `go_peer`: the Go runtime's pauses on our ports beside the testbed's hybrid barrier at the same
/// size and GOMAXPROCS (from any `*_pauses.csv` in the directory holding one).
fn go_peer_table(go: &[GoPausesRow], testbed: &[PausesRow]) -> Table {
    let header: Vec<String> = [
        "workload",
        "Go",
        "GODEBUG",
        "Go cycles",
        "Go p50 µs [95 % CI]",
        "Go tail µs",
        "testbed hybrid cycles",
        "testbed hybrid p50 µs [95 % CI]",
        "testbed tail µs",
    ]
    .map(str::to_owned)
    .to_vec();
    let body = go
        .iter()
        .map(|g| {
            let ours = testbed.iter().find(|t| {
                (
                    t.workload.as_str(),
                    t.goroutines,
                    t.depth,
                    t.procs,
                    t.design.as_str(),
                ) == (
                    g.workload.as_str(),
                    g.goroutines,
                    g.depth,
                    g.procs,
                    "hybrid",
                ) && t.barrier_removal == "after-restart"
            });
            let mut cells = vec![
                format!("{} {} × {}", g.workload, g.goroutines, g.depth),
                g.go_version.clone(),
                format!("`{}`", g.godebug),
                g.samples.to_string(),
                us_interval(
                    g.mark_term_ns_p50,
                    g.mark_term_ns_p50_lo,
                    g.mark_term_ns_p50_hi,
                ),
                format!("{} {}", g.mark_term_tail, us(g.mark_term_ns_tail)),
            ];
            match ours {
                Some(t) => cells.extend([
                    t.samples.to_string(),
                    us_interval(
                        t.mark_term_ns_p50,
                        t.mark_term_ns_p50_lo,
                        t.mark_term_ns_p50_hi,
                    ),
                    format!("{} {}", t.mark_term_tail, us(t.mark_term_ns_tail)),
                ]),
                None => cells.extend(["–".into(), "–".into(), "–".into()]),
            }
            cells
        })
        .collect::<Vec<_>>();
    let note = format!(
        "Go: our Go ports (`experiments/go/`) under the Go runtime named, `GOMAXPROCS` as the testbed's Ps, pauses from its `gctrace=1` lines (first cycle left out); testbed: the hybrid barrier at the same workload, size and Ps in this directory's pooled pauses (`–`: no such run). {POOLED_NOTE} Made by `go_peer` (`scripts/go-peer.sh`)."
    );
    Table {
        name: "go_peer".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// Every `*_pauses.csv` of `dir`, pooled (the testbed's configurations, whichever experiment ran
/// them).
fn all_pauses(dir: &Path) -> Result<Vec<PausesRow>, PaperError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix("_pauses.csv").map(|s| format!("{s}_pauses")))
                .filter(|n| n != "go_peer_pauses")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut rows = Vec::new();
    for n in names {
        rows.extend(read::<PausesRow>(dir, &n)?.unwrap_or_default());
    }
    Ok(rows)
}

/// Reads `dir/name.csv`; `Ok(None)` when it does not exist.
fn read<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<Option<Vec<T>>, PaperError> {
    let path = dir.join(format!("{name}.csv"));
    if !path.exists() {
        return Ok(None);
    }
    let err = |message: String| PaperError::Csv {
        path: path.clone(),
        message,
    };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| err(e.to_string()))?;
    let rows = reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| err(e.to_string()))?;
    Ok(Some(rows))
}

/// The mean of `f` over `rows`, and how many there were.
fn mean<'a>(rows: impl IntoIterator<Item = &'a Row>, f: impl Fn(&Row) -> f64) -> (f64, usize) {
    let (mut sum, mut n) = (0.0, 0);
    for r in rows {
        sum += f(r);
        n += 1;
    }
    (if n == 0 { f64::NAN } else { sum / n as f64 }, n)
}

/// The mean of `f` over the rows of `series` at the sweep point `point` picks.
fn mean_at(rows: &[&Row], point: impl Fn(&Row) -> bool, series: &str, f: fn(&Row) -> f64) -> f64 {
    mean(
        rows.iter()
            .copied()
            .filter(|r| point(r) && r.series() == series),
        f,
    )
    .0
}

/// The rows of workload `label` under design `d` (one per seed).
fn select<'a>(rows: &'a [Row], label: &str, d: Design) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.label() == label && r.series() == d.name())
        .collect()
}

/// A generated table: its marker name and its Markdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The marker name.
    pub name: String,
    /// The Markdown, ending in a newline.
    pub markdown: String,
}

/// A Markdown table from a header and rows.
fn markdown(header: &[String], rows: &[Vec<String>], note: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { " --- |" } else { " ---: |" })
            .collect::<String>()
    );
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    if !note.is_empty() {
        let _ = writeln!(s, "\n{note}");
    }
    s
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{:.1}", 100.0 * x)
    }
}
fn kib(bytes: f64) -> String {
    if bytes.is_nan() {
        "–".into()
    } else {
        format!("{:.1}", bytes / 1024.0)
    }
}
fn us(ns: f64) -> String {
    if ns.is_nan() {
        "–".into()
    } else if ns >= 100_000.0 {
        format!("{:.0}", ns / 1e3)
    } else {
        format!("{:.1}", ns / 1e3)
    }
}
fn num(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.digits$}")
    }
}
fn mib(bytes: f64) -> String {
    num(bytes / (1024.0 * 1024.0), 2)
}
/// A count that may be a median of counts: whole, or with the half a median of two can leave.
fn count(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// The median of `xs` (the mean of the middle two when their number is even); NaN when empty.
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The distinct values of `f` over `rows`, in first-seen order.
fn first_seen<T>(rows: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in rows {
        if !seen.iter().any(|s| s == f(r)) {
            seen.push(f(r).to_owned());
        }
    }
    seen
}

/// The labels of `rows`' workloads, in first-seen order.
fn labels(rows: &[Row]) -> Vec<String> {
    let mut seen = Vec::new();
    for r in rows {
        let l = r.label();
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    seen
}

/// The distinct values of `f` over `rows`, ascending.
fn axis(rows: &[&Row], f: impl Fn(&Row) -> usize) -> Vec<usize> {
    let mut v: Vec<usize> = rows.iter().map(|r| f(r)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// How many seeds went into each cell: `3`, or `2–3` when cells differ; `None` when none did.
fn seed_count(counts: impl IntoIterator<Item = usize>) -> Option<String> {
    let (lo, hi) = counts
        .into_iter()
        .filter(|&n| n > 0)
        .fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    match (lo, hi) {
        (usize::MAX, _) => None,
        (lo, hi) if lo == hi => Some(lo.to_string()),
        (lo, hi) => Some(format!("{lo}–{hi}")),
    }
}

/// The seeds-per-cell note.
fn seeds_note(counts: impl IntoIterator<Item = usize>) -> String {
    seeds_note_of("Each cell", counts)
}

/// The seeds-per-cell note of the cells `subject` names ("Each cell", "Each re-scan cell").
fn seeds_note_of(subject: &str, counts: impl IntoIterator<Item = usize>) -> String {
    match seed_count(counts).as_deref() {
        None => String::new(),
        Some("1") => format!("{subject} is one seed's run."),
        Some(n) => format!("{subject} is the mean of {n} seeds."),
    }
}

/// `rescan_offsets`: re-scan avoided (%) per workload and offset.
fn rescan_offsets_table(rows: &[Row]) -> Table {
    let header: Vec<String> = std::iter::once("workload".to_owned())
        .chain(OFFSET_DESIGNS.iter().map(|d| offset_label(&d.name())))
        .chain(["return oracle".to_owned(), "content oracle".to_owned()])
        .collect();
    let mut counts = Vec::new();
    let go = Design::Stkbar(crate::sweeps::GO_FIRST_OFFSET);
    let body: Vec<Vec<String>> = labels(rows)
        .into_iter()
        .map(|label| {
            let go_rows = select(rows, &label, go);
            let oracle = mean(go_rows.iter().copied(), |r| {
                avoided_at(r, Some(r.oracle_rescan_bytes))
            });
            let content = mean(go_rows.iter().copied(), |r| {
                avoided_at(r, r.content_rescan_bytes)
            });
            std::iter::once(format!("`{label}`"))
                .chain(OFFSET_DESIGNS.iter().map(|d| {
                    let (m, n) = mean(select(rows, &label, *d), avoided);
                    counts.push(n);
                    pct(m)
                }))
                .chain([pct(oracle.0), pct(content.0)])
                .collect()
        })
        .collect();
    let note = format!(
        "Re-scan avoided, % of the full re-scan (`1 - rescan_bytes / full_rescan_bytes`), deterministic engine, checkmark and stackshadow on. The oracles, in the runs at Go's offset, are what a re-scan would avoid that covered exactly the frames returned into or written since the scan (return oracle, the floor of any return-barrier scheme) or exactly the frames whose pointer slots changed or are new (content oracle, stackshadow's records: the floor of any re-scan); – where a run kept no records. {}",
        seeds_note(counts)
    );
    Table {
        name: "rescan_offsets".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `1 - bytes / full` for a re-scan of `bytes` (NaN when unknown).
fn avoided_at(r: &Row, bytes: Option<u64>) -> f64 {
    match bytes {
        None => f64::NAN,
        Some(_) if r.full_rescan_bytes == 0 => 1.0,
        Some(b) => 1.0 - b as f64 / r.full_rescan_bytes as f64,
    }
}

/// `1 - rescan / full` summed over the run's cycles.
fn avoided(r: &Row) -> f64 {
    if r.full_rescan_bytes == 0 {
        1.0
    } else {
        1.0 - r.rescan_bytes as f64 / r.full_rescan_bytes as f64
    }
}

/// A design's column label in offset tables.
fn offset_label(design: &str) -> String {
    match design {
        "stkbar-all" => "every frame".into(),
        "full-rescan" => "off".into(),
        d => d.strip_prefix("stkbar-").unwrap_or(d).to_owned(),
    }
}

/// `offset_tradeoff`: what each offset costs and buys, per workload that has a depth profile of
/// interest (`deep-oscillate` and the replayed traces).
///
/// `pooled`: `rescan_offsets_pauses.csv` where the run wrote it (every offset on `deep-oscillate`,
/// threaded): a column of each offset's pooled mark-termination median with its interval.
fn offset_tradeoff_table(rows: &[Row], pooled: Option<&[PausesRow]>) -> Table {
    let mut header: Vec<String> = [
        "workload",
        "offset",
        "re-scan avoided %",
        "re-scan / oracle",
        "stkbar reserved KiB/cycle",
        "barriers installed/cycle",
        "barriers hit/cycle",
    ]
    .map(str::to_owned)
    .to_vec();
    if pooled.is_some() {
        header.push("mark-term p50 µs [95 % CI]".into());
    }
    let mut samples = Vec::new();
    let mut body = Vec::new();
    let mut counts = Vec::new();
    for label in labels(rows)
        .into_iter()
        .filter(|l| l == "deep-oscillate" || l.starts_with("replay:"))
    {
        for d in OFFSET_DESIGNS {
            let sel = select(rows, &label, d);
            if sel.is_empty() {
                continue;
            }
            counts.push(sel.len());
            let ratio = mean(sel.iter().copied(), |r| {
                if r.oracle_rescan_bytes == 0 {
                    f64::NAN
                } else {
                    r.rescan_bytes as f64 / r.oracle_rescan_bytes as f64
                }
            })
            .0;
            body.push(vec![
                format!("`{label}`"),
                offset_label(&d.name()),
                pct(mean(sel.iter().copied(), avoided).0),
                num(ratio, 2),
                kib(mean(sel.iter().copied(), |r| {
                    r.per_cycle(r.stkbar_reserved_bytes)
                })
                .0),
                num(
                    mean(sel.iter().copied(), |r| r.per_cycle(r.barriers_installed)).0,
                    0,
                ),
                num(
                    mean(sel.iter().copied(), |r| r.per_cycle(r.barriers_hit)).0,
                    0,
                ),
            ]);
            if let Some(pooled) = pooled {
                let p = pooled_at(Some(pooled), &d.name(), |p| p.workload == label);
                body.last_mut()
                    .expect("just pushed")
                    .push(pooled_cell(p, &mut samples));
            }
        }
    }
    let pauses_note = match seed_count(samples) {
        Some(n) => format!(
            " The pause column: the threaded engine's runs of the same offsets. {POOLED_NOTE} Samples per pause cell: {n}."
        ),
        None => String::new(),
    };
    let note = format!(
        "Deterministic engine. `re-scan / oracle` is the price of spacing barriers out (the oracle re-scans exactly what changed). {}{pauses_note}",
        seeds_note(counts)
    );
    Table {
        name: "offset_tradeoff".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// The series of a sweep's pause columns, in a fixed order.
const PAUSE_ORDER: [&str; 8] = [
    "full-rescan",
    "stkbar-1024",
    "stkbar-1024 in-pause",
    "stkbar-all",
    "stkbar-all in-pause",
    "hybrid",
    "hybrid-lazy",
    "yuasa",
];

/// `depth_sweep` / `goroutine_sweep`: re-scan per cycle (deterministic) and pause p50
/// (threaded) at each point of the sweep's axis.
/// `pooled`: the sweep's `NAME_pauses.csv` when its run wrote one: the pause cells are then
/// pooled medians with intervals; results from before pooled pauses give the mean of the seeds'
/// per-run medians.
fn sweep_table(
    name: &str,
    rows: &[Row],
    pooled: Option<&[PausesRow]>,
    axis_name: &str,
    at: fn(&Row) -> usize,
) -> Table {
    let all: Vec<&Row> = rows.iter().collect();
    let mut header: Vec<String> = vec![
        axis_name.to_owned(),
        "full re-scan KiB/cycle".into(),
        "stkbar-1024 re-scan KiB/cycle".into(),
        "oracle KiB/cycle".into(),
        "G re-scanned/cycle".into(),
    ];
    let designs: Vec<&str> = PAUSE_ORDER
        .into_iter()
        .filter(|d| {
            rows.iter()
                .any(|r| r.engine == "threaded" && r.series() == *d)
        })
        .collect();
    let pause_header = if pooled.is_some() {
        "p50 µs [95 % CI]"
    } else {
        "p50 µs"
    };
    header.extend(designs.iter().map(|d| format!("{d} {pause_header}")));
    let mut counts = Vec::new();
    let mut samples = Vec::new();
    let body = axis(&all, at)
        .into_iter()
        .map(|x| {
            let det = |design: &'static str| {
                rows.iter().filter(move |r| {
                    at(r) == x && r.engine == "deterministic" && r.series() == design
                })
            };
            let full = mean(det("full-rescan"), |r| r.per_cycle(r.rescan_bytes));
            let bars = mean(det("stkbar-1024"), |r| r.per_cycle(r.rescan_bytes));
            let oracle = mean(det("stkbar-1024"), |r| r.per_cycle(r.oracle_rescan_bytes));
            let listed = mean(det("stkbar-1024"), |r| r.per_cycle(r.rescan_goroutines));
            counts.extend([full.1, bars.1]);
            let mut cells = vec![
                x.to_string(),
                kib(full.0),
                kib(bars.0),
                kib(oracle.0),
                num(listed.0, 1),
            ];
            for d in &designs {
                let runs = rows
                    .iter()
                    .filter(|r| at(r) == x && r.engine == "threaded" && r.series() == *d);
                let cell = pooled.map(|pooled| {
                    let point = runs.clone().next();
                    let p = point.and_then(|run| {
                        pooled_at(Some(pooled), d, |p| {
                            (p.goroutines, p.depth) == (run.goroutines, run.depth)
                        })
                    });
                    pooled_cell(p, &mut samples)
                });
                let cell = cell.unwrap_or_else(|| {
                    let p = mean(runs, |r| r.mark_term_ns_p50 as f64);
                    counts.push(p.1);
                    us(p.0)
                });
                cells.push(cell);
            }
            cells
        })
        .collect::<Vec<_>>();
    let (seeds_subject, pauses_note) = match seed_count(samples) {
        Some(n) => (
            "Each re-scan cell",
            format!("{POOLED_NOTE} Samples per pause cell: {n}."),
        ),
        None => ("Each cell", String::new()),
    };
    let note = format!(
        "Re-scan columns: deterministic engine, bytes (and goroutines on the re-scan list) summed over cycles divided by cycles. Pause columns: mark-termination p50, threaded engine; `in-pause`: the barriers removed inside the pause (`--barrier-removal in-pause`, Go 1.5/1.6) instead of after the restart (Go 1.7). {} {pauses_note}",
        seeds_note_of(seeds_subject, counts)
    );
    Table {
        name: name.into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `barrier_designs`: pauses, mark time, barrier cost and throughput per workload and design. The
/// pauses are the pooled ones where the experiment wrote them (median with its interval, the tail
/// its sample count supports, the max); older results give the seeds' means of per-run figures.
fn barrier_designs_table(
    rows: &[Row],
    pooled: Option<&[PausesRow]>,
    mmu: Option<&[MmuRow]>,
) -> Table {
    let pause_header = if pooled.is_some() {
        ["mark term p50 µs [95 % CI]", "tail µs", "max µs"]
    } else {
        ["mark term p50 µs", "p99 µs", "max µs"]
    };
    let header: Vec<String> = ["workload", "design"]
        .into_iter()
        .chain(pause_header)
        .chain([
            "sweep term p50 µs",
            "mark ms/cycle",
            "WB calls/op",
            "WB ns/store",
            "mutator Mops/s",
            "MMU 1 ms",
            "MMU 10 ms",
        ])
        .map(str::to_owned)
        .collect();
    let mut body = Vec::new();
    let mut counts = Vec::new();
    let mut samples = Vec::new();
    for label in labels(rows) {
        for d in BARRIER_DESIGNS {
            let sel = select(rows, &label, d);
            if sel.is_empty() {
                continue;
            }
            counts.push(sel.len());
            let m = |f: &dyn Fn(&Row) -> f64| mean(sel.iter().copied(), f).0;
            let mmu_at = |window_ns: u64| {
                let pts: Vec<f64> = mmu
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| {
                        p.design == d.name()
                            && p.window_ns == window_ns
                            && workload_label(&p.workload, &p.replay) == label
                    })
                    .map(|p| p.mmu_excl_idle.unwrap_or(p.mmu))
                    .collect();
                if pts.is_empty() {
                    "–".to_owned()
                } else {
                    num(pts.iter().sum::<f64>() / pts.len() as f64, 2)
                }
            };
            let pauses = match pooled_at(pooled, &d.name(), |p| p.label() == label) {
                Some(p) => [
                    pooled_cell(Some(p), &mut samples),
                    format!("{} {}", p.mark_term_tail, us(p.mark_term_ns_tail)),
                    us(p.mark_term_ns_max),
                ],
                None if pooled.is_some() => ["–".into(), "–".into(), "–".into()],
                None => [
                    us(m(&|r| r.mark_term_ns_p50 as f64)),
                    us(m(&|r| r.mark_term_ns_p99 as f64)),
                    us(m(&|r| r.mark_term_ns_max as f64)),
                ],
            };
            let mut row = vec![format!("`{label}`"), d.name()];
            row.extend(pauses);
            row.extend([
                us(m(&|r| r.sweep_term_ns_p50 as f64)),
                num(m(&|r| r.per_cycle(r.mark_ns) / 1e6), 2),
                num(m(&|r| r.wb_calls as f64 / r.mutator_ops.max(1) as f64), 3),
                num(m(&|r| r.wb_ns_per_store.unwrap_or(f64::NAN)), 1),
                num(m(&|r| r.mutator_ops_per_s / 1e6), 1),
                mmu_at(1_000_000),
                mmu_at(10_000_000),
            ]);
            body.push(row);
        }
    }
    let split = mmu
        .unwrap_or_default()
        .iter()
        .any(|p| p.mmu_excl_idle.is_some());
    let mmu_note = if split {
        "MMU: minimum mutator utilisation over every window of that length, idle workers' marking counted as the idle time it filled (figure `mmu` adds the pause-only curve)."
    } else {
        "MMU: minimum mutator utilisation over every window of that length, every GC interval counted."
    };
    let (pause_note, seeds) = match seed_count(samples) {
        Some(n) => (
            format!("Pause columns: {POOLED_NOTE} Samples per pause cell: {n}. "),
            seeds_note_of("Each other cell", counts),
        ),
        None => (String::new(), seeds_note(counts)),
    };
    let note = format!(
        "Threaded engine. {pause_note}WB ns/store: the design's barrier timed on this machine with a cycle in progress (`gc::wbarrier` probe). {mmu_note} {seeds}"
    );
    Table {
        name: "barrier_designs".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// The designs whose mark phase, mark-termination pause and throughput the scan-stall table
/// reports beside their stalls: the eager and the lazy scan of the same barrier.
const STALL_COST_DESIGNS: [Design; 2] = [Design::Hybrid, Design::HybridLazy];

/// `scan_stall`: per sweep point (the depth sweep's first, then the goroutine sweep's), each
/// design's stall p50 / p99 and, for the two hybrid designs, what the lazy scan moves elsewhere:
/// the mark phase per cycle, the mark-termination p50 and the mutator's throughput. Medians over
/// seeds (a p99 of one run is one noisy number; the median of three is not moved by one). The
/// note carries the headline ([`StallHeadline`]) and the commands.
fn scan_stall_table(rows: &[StallRow]) -> Table {
    let rows: Vec<&StallRow> = rows.iter().filter(|r| r.engine == "threaded").collect();
    let designs: Vec<Design> = SCAN_STALL_DESIGNS
        .into_iter()
        .filter(|d| rows.iter().any(|r| r.design == d.name()))
        .collect();
    let costs: Vec<Design> = STALL_COST_DESIGNS
        .into_iter()
        .filter(|d| designs.contains(d))
        .collect();
    let mut header: Vec<String> = vec!["depth".into(), "goroutines".into()];
    header.extend(
        designs
            .iter()
            .map(|d| format!("{} stall p50 / p99 µs", d.name())),
    );
    for d in &costs {
        header.extend([
            format!("{} mark ms/cycle", d.name()),
            format!("{} mark term p50 µs", d.name()),
            format!("{} Mops/s", d.name()),
        ]);
    }
    // The depth sweep's goroutine count: the one run at the most depths (the larger on a tie).
    let mut depths_at: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for r in &rows {
        let ds = depths_at.entry(r.goroutines).or_default();
        if !ds.contains(&r.depth) {
            ds.push(r.depth);
        }
    }
    let swept = depths_at
        .iter()
        .max_by_key(|(g, ds)| (ds.len(), **g))
        .map_or(0, |(g, _)| *g);
    let mut points: Vec<(usize, usize)> = rows.iter().map(|r| (r.goroutines, r.depth)).collect();
    points.sort_by_key(|&(g, depth)| (g != swept, g, depth));
    points.dedup();
    let mut counts = Vec::new();
    let mut tails_as_max = false;
    let body: Vec<Vec<String>> = points
        .into_iter()
        .map(|(g, depth)| {
            let of = |d: Design| -> Vec<&StallRow> {
                rows.iter()
                    .copied()
                    .filter(|r| r.goroutines == g && r.depth == depth && r.design == d.name())
                    .collect()
            };
            let med = |sel: &[&StallRow], f: &dyn Fn(&StallRow) -> f64| {
                median(sel.iter().map(|r| f(r)).collect())
            };
            let mut cells = vec![depth.to_string(), g.to_string()];
            for &d in &designs {
                let sel = of(d);
                counts.push(sel.len());
                let as_max = sel.iter().any(|r| r.run().tail_ns().1);
                tails_as_max |= as_max;
                let p50 = med(&sel, &|r| r.scan_stall_ns_p50 as f64);
                let tail = med(&sel, &|r| r.run().tail_ns().0 as f64);
                cells.push(format!(
                    "{} / {}{}",
                    us(p50),
                    us(tail),
                    if as_max { "*" } else { "" }
                ));
            }
            for &d in &costs {
                let sel = of(d);
                cells.extend([
                    num(
                        med(&sel, &|r| r.mark_ns as f64 / r.cycles.max(1) as f64 / 1e6),
                        2,
                    ),
                    us(med(&sel, &|r| r.mark_term_ns_p50 as f64)),
                    num(med(&sel, &|r| r.mutator_ops_per_s / 1e6), 1),
                ]);
            }
            cells
        })
        .collect();
    let seeds = match seed_count(counts).as_deref() {
        None => String::new(),
        Some("1") => "Each cell is one seed's run. ".to_owned(),
        Some(n) => format!("Each cell is the median of {n} seeds. "),
    };
    let max_note = if tails_as_max {
        format!("* the max, not the p99: the run timed fewer than {STALL_P99_MIN_SAMPLES} scans. ")
    } else {
        String::new()
    };
    let runs: Vec<StallRun<'_>> = rows.iter().map(|r| r.run()).collect();
    let headline = match StallHeadline::of(&runs) {
        Some(h) => {
            let lazy = rows
                .iter()
                .find(|r| {
                    r.design == Design::HybridLazy.name()
                        && r.goroutines == h.goroutines
                        && r.depth == h.depth
                })
                .map_or(String::new(), |r| {
                    format!(" (one of its runs: `{}`)", r.command)
                });
            format!(
                "At {} G × depth {}, hybrid-lazy's {} stall is {} µs against hybrid's {} µs ({}× shorter), its mark-termination p50 {} µs against {} µs, and its mutator throughput {}× hybrid's{lazy}. ",
                h.goroutines,
                h.depth,
                h.tail_name(),
                us(h.lazy_tail_ns),
                us(h.eager_tail_ns),
                num(h.stall_ratio(), 0),
                us(h.lazy_mark_term_ns),
                us(h.eager_mark_term_ns),
                num(h.throughput_ratio, 2),
            )
        }
        None => String::new(),
    };
    let note = format!(
        "`deep-oscillate`, threaded engine, one P per CPU, no checker. Stall: how long a goroutine was kept from running by the scan of its own stack, per scan, over a run's scans (one per goroutine per cycle). {max_note}Mark: the mark phase's wall time per cycle; mark term: the mark-termination pause; Mops/s: mutator operations per second of wall time. {seeds}{headline}Made by `scan_stall --full` (`scripts/run-all.sh --full`); each row of `scan_stall.csv` names the `testbed` command that reproduces it."
    );
    Table {
        name: "scan_stall".into(),
        markdown: markdown(&header, &body, note.trim_end()),
    }
}

/// `headline`: the figures the abstract quotes, each with where it comes from.
fn headline_table(dir: &Path) -> Result<Option<Table>, PaperError> {
    let offsets: Vec<Row> = read::<Row>(dir, "rescan_offsets")?
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.engine == "deterministic")
        .collect();
    let depth: Vec<Row> = read(dir, "depth_sweep")?.unwrap_or_default();
    let stalls: Vec<StallRow> = read(dir, "scan_stall")?.unwrap_or_default();
    if offsets.is_empty() && depth.is_empty() && stalls.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    let osc: Vec<&Row> = offsets
        .iter()
        .filter(|r| r.label() == "deep-oscillate" && r.series() == "stkbar-1024")
        .collect();
    if let Some(r) = osc.first() {
        body.push(vec![
            format!(
                "re-scan avoided, `deep-oscillate` {} G × depth {}, offset 1024",
                r.goroutines, r.depth
            ),
            format!("{} %", pct(mean(osc.iter().copied(), avoided).0)),
            "≥ 95 %".into(),
            met(mean(osc.iter().copied(), avoided).0 >= 0.95),
        ]);
    }
    let outside: u64 = offsets.iter().chain(&depth).map(|r| r.outside_bound).sum();
    let checkmark: u64 = offsets
        .iter()
        .chain(&depth)
        .map(|r| r.checkmark_failures)
        .sum();
    if !offsets.is_empty() {
        body.push(vec![
            "re-scans outside ARCHITECTURE.md §4's bound, all counter runs".into(),
            outside.to_string(),
            "0".into(),
            met(outside == 0),
        ]);
        body.push(vec![
            "checkmark failures, all counter runs".into(),
            checkmark.to_string(),
            "0".into(),
            met(checkmark == 0),
        ]);
    }
    // The pause targets, at each sweep's largest point, threaded engine: pooled medians where the
    // sweep wrote its pooled pauses, else the mean of the seeds' per-run medians.
    let depth_pooled: Option<Vec<PausesRow>> = read(dir, "depth_sweep_pauses")?;
    let threaded: Vec<&Row> = depth.iter().filter(|r| r.engine == "threaded").collect();
    if let Some(&deepest) = axis(&threaded, |r| r.depth).last() {
        let at = |d: &str, f: fn(&Row) -> f64| mean_at(&threaded, |r| r.depth == deepest, d, f);
        let pooled = |d: &str| pooled_at(depth_pooled.as_deref(), d, |p| p.depth == deepest);
        let p50 = |d: &str| match pooled(d) {
            Some(p) => p.mark_term_ns_p50,
            None => at(d, |r| r.mark_term_ns_p50 as f64),
        };
        let interval = |d: &str| {
            pooled(d).map_or_else(String::new, |p| {
                format!(
                    " [{}, {}]",
                    us(p.mark_term_ns_p50_lo),
                    us(p.mark_term_ns_p50_hi)
                )
            })
        };
        let listed = |d: &str| at(d, |r| r.rescan_goroutines_p50 as f64);
        let g = threaded.first().map_or(0, |r| r.goroutines);
        let (off, on, all) = (p50("full-rescan"), p50("stkbar-1024"), p50("stkbar-all"));
        body.push(vec![
            format!("mark-termination p50, stack barriers vs off, {g} G × depth {deepest}"),
            format!(
                "{} µs{} vs {} µs{} ({}× shorter); re-scan lists {} and {} G",
                us(on),
                interval("stkbar-1024"),
                us(off),
                interval("full-rescan"),
                num(off / on, 1),
                num(listed("stkbar-1024"), 0),
                num(listed("full-rescan"), 0)
            ),
            "≥ 10× shorter".into(),
            met(off / on >= 10.0),
        ]);
        body.push(vec![
            format!("mark-termination p50, every frame vs stack barriers, {g} G × depth {deepest}"),
            format!(
                "{} µs vs {} µs ({}×); re-scan list {} G",
                us(all),
                us(on),
                num(all / on, 2),
                num(listed("stkbar-all"), 0)
            ),
            "≤ 2×".into(),
            met(all / on <= 2.0),
        ]);
        body.push(vec![
            format!("hybrid mark-termination p50, {g} G × depth {deepest}"),
            format!("{} µs{}", us(p50("hybrid")), interval("hybrid")),
            "< 50 µs".into(),
            met(p50("hybrid") < 50_000.0),
        ]);
    }
    let many: Vec<Row> = read(dir, "goroutine_sweep")?.unwrap_or_default();
    let many_pooled: Option<Vec<PausesRow>> = read(dir, "goroutine_sweep_pauses")?;
    let threaded: Vec<&Row> = many.iter().filter(|r| r.engine == "threaded").collect();
    let point = axis(&threaded, |r| r.goroutines)
        .into_iter()
        .rfind(|&g| g <= MANY_SHALLOW_TARGET_GOROUTINES);
    if let Some(most) = point {
        let at = |d: &str, f: fn(&Row) -> f64| mean_at(&threaded, |r| r.goroutines == most, d, f);
        let pooled = |d: &str| pooled_at(many_pooled.as_deref(), d, |p| p.goroutines == most);
        let p50 = |d: &str| match pooled(d) {
            Some(p) => p.mark_term_ns_p50,
            None => at(d, |r| r.mark_term_ns_p50 as f64),
        };
        let (off, on, all) = (p50("full-rescan"), p50("stkbar-1024"), p50("stkbar-all"));
        let spread = on.max(off).max(all) / on.min(off).min(all) - 1.0;
        let depth = threaded.first().map_or(0, |r| r.depth);
        body.push(vec![
            format!(
                "mark-termination p50, barriers on / off / every frame, `many-shallow` {most} G × depth {depth}"
            ),
            format!(
                "{} / {} / {} µs (largest {} % above smallest); re-scan list {} G",
                us(on),
                us(off),
                us(all),
                pct(spread),
                num(at("stkbar-1024", |r| r.rescan_goroutines_p50 as f64), 0)
            ),
            "within ±30 %".into(),
            met(spread <= 0.30),
        ]);
    }
    if let Some(&most) = axis(&threaded, |r| r.goroutines).last() {
        // The worst configuration's median: pooled where the sweep pooled its pauses, else the
        // worst run's.
        let worst = match &many_pooled {
            Some(pooled) => pooled
                .iter()
                .filter(|p| p.series() == "hybrid")
                .map(|p| p.mark_term_ns_p50 as u64)
                .max(),
            None => threaded
                .iter()
                .filter(|r| r.series() == "hybrid")
                .map(|r| r.mark_term_ns_p50)
                .max(),
        };
        if let Some(worst) = worst {
            body.push(vec![
                format!(
                    "hybrid mark-termination p50, `many-shallow` up to {most} G, worst {}",
                    if many_pooled.is_some() {
                        "point"
                    } else {
                        "run"
                    }
                ),
                format!("{} µs", us(worst as f64)),
                "< 50 µs".into(),
                met(worst < 50_000),
            ]);
        }
    }
    // Beyond Go: the lazy scan's stall against the eager one's, at the deepest point.
    let runs: Vec<StallRun<'_>> = stalls
        .iter()
        .filter(|r| r.engine == "threaded")
        .map(StallRow::run)
        .collect();
    if let Some(h) = StallHeadline::of(&runs) {
        body.push(vec![
            format!(
                "scan stall {}, hybrid-lazy vs hybrid, `deep-oscillate` {} G × depth {}",
                h.tail_name(),
                h.goroutines,
                h.depth
            ),
            format!(
                "{} µs vs {} µs ({}× shorter); mark-termination p50 {} vs {} µs; mutator throughput {}×",
                us(h.lazy_tail_ns),
                us(h.eager_tail_ns),
                num(h.stall_ratio(), 0),
                us(h.lazy_mark_term_ns),
                us(h.eager_mark_term_ns),
                num(h.throughput_ratio, 2)
            ),
            "– (beyond Go)".into(),
            "–".into(),
        ]);
    }
    Ok(Some(Table {
        name: "headline".into(),
        markdown: markdown(
            &[
                "figure".into(),
                "measured".into(),
                "ARCHITECTURE.md §6 target".into(),
                "met".into(),
            ],
            &body,
            "",
        ),
    }))
}

/// A headline row's verdict: whether its measured value meets its target.
fn met(ok: bool) -> String {
    if ok { "yes" } else { "**no**" }.into()
}

/// The `many-shallow` size of the pause target: 10,000 goroutines.
const MANY_SHALLOW_TARGET_GOROUTINES: usize = 10_000;

/// Sanitizer steps before this one are warm-up: the first cycles create the Ps' contexts and fill
/// the heap, so growth is measured from here.
const SANITIZER_WARMUP_STEPS: u64 = 2;

/// `sanitizer_leak`: the sanitizer's memory per mode at the first step after warm-up, the middle
/// of the steps from there on, and the last, with the live heap at the last step.
fn sanitizer_leak_table(rows: &[SanitizerRow]) -> Table {
    let mut after_warmup: Vec<u64> = rows
        .iter()
        .map(|r| r.step)
        .filter(|&s| s >= SANITIZER_WARMUP_STEPS)
        .collect();
    after_warmup.sort_unstable();
    after_warmup.dedup();
    let last = after_warmup
        .last()
        .copied()
        .unwrap_or(SANITIZER_WARMUP_STEPS);
    let middle = after_warmup
        .get(after_warmup.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(SANITIZER_WARMUP_STEPS);
    let warm = SANITIZER_WARMUP_STEPS;
    let header: Vec<String> = vec![
        "mode".into(),
        format!("MiB at step {warm}"),
        format!("MiB at step {middle}"),
        format!("MiB at step {last}"),
        format!("growth (step {last} / step {warm})"),
        format!("live objects at step {last}"),
    ];
    let mut counts = Vec::new();
    let body: Vec<Vec<String>> = first_seen(rows, |r| &r.mode)
        .into_iter()
        .map(|mode| {
            let mut at = |step: u64, f: fn(&SanitizerRow) -> u64| {
                let xs: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.mode == mode && r.step == step)
                    .map(|r| f(r) as f64)
                    .collect();
                counts.push(xs.len());
                if xs.is_empty() {
                    f64::NAN
                } else {
                    xs.iter().sum::<f64>() / xs.len() as f64
                }
            };
            let bytes = |r: &SanitizerRow| r.sanitizer_bytes;
            let (w, m, l) = (at(warm, bytes), at(middle, bytes), at(last, bytes));
            let live = at(last, |r| r.live_objects);
            vec![mode, mib(w), mib(m), mib(l), num(l / w, 2), num(live, 0)]
        })
        .collect();
    let note = format!(
        "The sanitizer's metadata memory (per-P contexts and per-object metadata) at step N (one step per GC cycle); steps before {warm} are warm-up. `free-notify`: sweep tells the sanitizer of every object it frees, so that object's metadata is released; `no-free-notify`: it does not. The P count follows a schedule during the run, so contexts are created and destroyed with their Ps. ARCHITECTURE.md §6 target: flat after warm-up. {}",
        seeds_note(counts)
    );
    Table {
        name: "sanitizer_leak".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `wbshadow_faults`: per workload, checker mode and injected drop fraction, how many faulted
/// runs ended in a report, which check made it, how long after the fault, and whether the runs
/// that lost an object were caught.
fn wbshadow_faults_table(rows: &[FaultRow]) -> Table {
    let header: Vec<String> = [
        "workload",
        "mode",
        "drop fraction",
        "runs with faults",
        "detected %",
        "by store",
        "by GC",
        "by checkmark",
        "lost caught",
        "delay p50 (stores)",
        "delay max (stores)",
    ]
    .map(str::to_owned)
    .to_vec();
    let workloads = first_seen(rows, |r| &r.workload);
    let modes = first_seen(rows, |r| &r.mode);
    let rank = |names: &[String], name: &str| names.iter().position(|n| n == name);
    let mut sorted: Vec<&FaultRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (rank(&workloads, &a.workload), rank(&modes, &a.mode))
            .cmp(&(rank(&workloads, &b.workload), rank(&modes, &b.mode)))
            .then(a.drop_fraction.total_cmp(&b.drop_fraction))
    });
    let body: Vec<Vec<String>> = sorted
        .into_iter()
        .map(|r| {
            vec![
                format!("`{}`", r.workload),
                r.mode.clone(),
                r.drop_fraction.to_string(),
                format!("{} / {}", r.runs_with_faults, r.runs),
                pct(r.detection_rate.unwrap_or(f64::NAN)),
                r.by_store.to_string(),
                r.by_gc.to_string(),
                r.by_checkmark.to_string(),
                format!("{} / {}", r.lost_caught, r.lost_runs),
                count(r.delay_stores_p50),
                count(r.delay_stores_max),
            ]
        })
        .collect();
    let note = "`--inject wb-drop=F` skips the write barrier at a seeded fraction F of heap stores. Runs with faults: of the seeds run, those in which at least one barrier was dropped; detected: of those, the share ending with a checker report, made by wbshadow at a barriered store (by store), by wbshadow checking a word during the checkmark walk (by GC), or by checkmark finding a reachable object left unmarked (by checkmark). Lost caught: of the runs in which checkmark alone found a lost object (same seed and fraction), those this mode caught; ARCHITECTURE.md §6 target: all of them for `wbshadow=2`, which runs with `gccheckmark=1`. Delay: heap stores from the dropped barrier a report names to the report, over the detected runs.";
    Table {
        name: "wbshadow_faults".into(),
        markdown: markdown(&header, &body, note),
    }
}

/// `wbshadow_overhead`: what each checker mode costs in wall time and memory, per workload.
fn wbshadow_overhead_table(rows: &[OverheadRow]) -> Table {
    let header: Vec<String> = [
        "workload",
        "mode",
        "slowdown vs off (median)",
        "shadow MiB",
        "shadow % of live heap",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut counts = Vec::new();
    let mut body = Vec::new();
    for workload in first_seen(rows, |r| &r.workload) {
        let of_workload: Vec<&OverheadRow> =
            rows.iter().filter(|r| r.workload == workload).collect();
        for mode in first_seen(&of_workload, |r| &r.mode) {
            let sel: Vec<&OverheadRow> = of_workload
                .iter()
                .copied()
                .filter(|r| r.mode == mode)
                .collect();
            counts.push(sel.len());
            let n = sel.len() as f64;
            let shadow = sel.iter().map(|r| r.shadow_bytes as f64).sum::<f64>() / n;
            let share = sel
                .iter()
                .map(|r| r.shadow_bytes as f64 / r.heap_bytes.max(1) as f64)
                .sum::<f64>()
                / n;
            body.push(vec![
                format!("`{workload}`"),
                mode,
                num(median(sel.iter().map(|r| r.slowdown).collect()), 2),
                mib(shadow),
                pct(share),
            ]);
        }
    }
    let seeds = seed_count(counts).unwrap_or_else(|| "0".into());
    let note = format!(
        "Slowdown: a run's wall time over that of the same seed's run with no checker (`off`), the median of {seeds} seeds. Shadow: the memory of wbshadow's shadow copy of every heap and global pointer word, the mean of {seeds} seeds, and as a share of the live heap (the shadow covers every mapped heap word, live or not: Go's shadow heap mirrors the whole arena). `wbshadow=2` runs with `gccheckmark=1`."
    );
    Table {
        name: "wbshadow_overhead".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `profiler_switch`: per workload, engine and rule set, where the samples went and how many
/// tracebacks were malformed, summed over the seeds.
fn profiler_switch_table(rows: &[ProfilerRow]) -> Table {
    let header: Vec<String> = [
        "workload",
        "engine",
        "rules",
        "samples",
        "goroutine tracebacks",
        "of them mid-hit",
        "g0 tracebacks",
        "System",
        "System %",
        "mid-switch",
        "malformed",
        "malformed per 10⁶",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut body = Vec::new();
    let mut counts = Vec::new();
    for workload in first_seen(rows, |r| &r.workload) {
        for engine in ["deterministic", "threaded"] {
            for rules in ["go1.7", "seed003", "none"] {
                let sel: Vec<&ProfilerRow> = rows
                    .iter()
                    .filter(|r| r.workload == workload && r.engine == engine && r.rules == rules)
                    .collect();
                if sel.is_empty() {
                    continue;
                }
                counts.push(sel.len());
                let sum = |f: fn(&ProfilerRow) -> u64| sel.iter().map(|r| f(r)).sum::<u64>();
                let samples = sum(|r| r.samples);
                let per = |n: u64, scale: f64, digits: usize| {
                    if samples == 0 {
                        "–".into()
                    } else {
                        num(scale * n as f64 / samples as f64, digits)
                    }
                };
                let (malformed, system) = (sum(|r| r.malformed), sum(|r| r.system_samples));
                body.push(vec![
                    format!("`{workload}`"),
                    engine.to_owned(),
                    rules.to_owned(),
                    samples.to_string(),
                    sum(|r| r.user_samples).to_string(),
                    sum(|r| r.unwound_mid_barrier).to_string(),
                    sum(|r| r.g0_samples).to_string(),
                    system.to_string(),
                    per(system, 100.0, 1),
                    sum(|r| r.samples_mid_switch).to_string(),
                    malformed.to_string(),
                    per(malformed, 1e6, 0),
                ]);
            }
        }
    }
    let seeds = match seed_count(counts).as_deref() {
        None | Some("1") => "one seed".to_owned(),
        Some(n) => format!("{n} seeds, summed"),
    };
    let note = format!(
        "Samples: profiling signals handled ({seeds}); signals come in proportion to CPU time, so an idle M takes none. Rules: go1.7 is Go 1.7's `sigprof` (System only when SP is outside g's stack, PC is inside a function that sets SP — `gogo`, `mcall`, `morestack`, `systemstack` — or the stack-barrier lock of the M's goroutine is held; a sample inside the `stackBarrier` trampoline is unwound through `gentraceback`'s fix-up, a sample on g0 is a g0 traceback); seed003 is seed 003's 2013 rule (a traceback only of the M's user goroutine: not g0, SP within its stack, PC not inside `gogo`) with the testbed's first stack-barrier refusals (PC inside `stackBarrier`, the lock held); none is Go before seed 003 (no checks). Goroutine and g0 tracebacks are each compared with the true frames; of them mid-hit: goroutine tracebacks taken inside a barrier hit. Mid-switch: samples between the register stores of a switch. Malformed: tracebacks that failed or differed from the true frames; ARCHITECTURE.md §6 target under go1.7 and seed003: 0 in 10⁶ samples."
    );
    Table {
        name: "profiler_switch".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `trace_overhead`: per workload and engine, what tracing costs in wall time and what it writes.
fn trace_overhead_table(rows: &[TraceOverheadRow]) -> Table {
    let header: Vec<String> = [
        "workload",
        "engine",
        "overhead % (median)",
        "events/s",
        "buffers allocated",
        "MiB written",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut body = Vec::new();
    let mut counts = Vec::new();
    for workload in first_seen(rows, |r| &r.workload) {
        let of_workload: Vec<&TraceOverheadRow> =
            rows.iter().filter(|r| r.workload == workload).collect();
        for engine in first_seen(&of_workload, |r| &r.engine) {
            let sel: Vec<&TraceOverheadRow> = of_workload
                .iter()
                .copied()
                .filter(|r| r.engine == engine)
                .collect();
            counts.push(sel.len());
            let n = sel.len() as f64;
            let overhead = median(
                sel.iter()
                    .map(|r| 100.0 * (r.wall_ms_on / r.wall_ms_off - 1.0))
                    .collect(),
            );
            let mean = |f: fn(&TraceOverheadRow) -> f64| sel.iter().map(|r| f(r)).sum::<f64>() / n;
            body.push(vec![
                format!("`{workload}`"),
                engine,
                num(overhead, 1),
                num(mean(|r| r.events_per_sec), 0),
                num(mean(|r| r.buffers_allocated as f64), 0),
                mib(mean(|r| r.trace_bytes as f64)),
            ]);
        }
    }
    let seeds = seed_count(counts).unwrap_or_else(|| "0".into());
    let note = format!(
        "Overhead: a run's wall time with tracing on over the same run's with it off, less one, the median of {seeds} seed(s). Events/s: trace events written per second of the traced run; buffers allocated: per-P trace buffers the run ever allocated (they are recycled, not freed); MiB written: the trace bytes the run wrote. The other columns are means over the seeds."
    );
    Table {
        name: "trace_overhead".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `soundness`: per fault and checker, summed over the workloads and seeds, the runs in which
/// the fault took effect, how many the checker caught, the runs that lost an object and how many
/// it caught.
fn soundness_table(rows: &[SoundnessRow]) -> Table {
    let header: Vec<String> = [
        "fault",
        "checker",
        "runs",
        "took effect",
        "caught",
        "detection %",
        "lost an object",
        "of them caught",
        "delay (cycles, median)",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut body = Vec::new();
    for fault in first_seen(rows, |r| &r.fault) {
        for checker in first_seen(rows, |r| &r.checker) {
            let sel: Vec<&SoundnessRow> = rows
                .iter()
                .filter(|r| r.fault == fault && r.checker == checker)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let sum = |f: fn(&SoundnessRow) -> u64| sel.iter().map(|r| f(r)).sum::<u64>();
            let (effective, caught) = (sum(|r| r.runs_effective), sum(|r| r.caught_effective));
            let delays: Vec<f64> = sel.iter().filter_map(|r| r.delay_cycles_p50).collect();
            body.push(vec![
                format!("`{fault}`"),
                checker.to_owned(),
                sum(|r| r.runs).to_string(),
                effective.to_string(),
                caught.to_string(),
                if effective == 0 {
                    "–".into()
                } else {
                    num(100.0 * caught as f64 / effective as f64, 0)
                },
                sum(|r| r.lost).to_string(),
                sum(|r| r.lost_caught).to_string(),
                if delays.is_empty() {
                    "–".into()
                } else {
                    num(delays.iter().copied().fold(f64::NAN, f64::max), 0)
                },
            ]);
        }
    }
    let note = "Deterministic engine; each fault on `mixed` and `adversarial` (32 G × depth 200), `deep-unwind` (16 × 200) and `many-shallow` (64 × 10), 6 cycles, Go's barrier offset, one run per seed and checker. Took effect: for `wb-drop`, a barrier was dropped; for the re-scan faults, a frame the re-scans skipped had changed since its scan (counted on a run with no checker, the same execution). Caught: the checker stopped the run (exit 3) among those. Lost an object: checkmark found a reachable object unmarked on the same seed. Delay: the largest per-workload median, in cycles from the first cycle the fault took effect to the report. `wbshadow=2` runs checkmark's walk; both is `wbshadow=2` and `stackshadow=1`.";
    Table {
        name: "soundness".into(),
        markdown: markdown(&header, &body, note),
    }
}

/// `soundness_campaign`: per design, workload and engine, the seeds run with checkmark and stackshadow on
/// and the failures (0 expected).
fn soundness_campaign_table(rows: &[CampaignRow]) -> Table {
    let header: Vec<String> = [
        "design",
        "workload",
        "engine",
        "seeds",
        "cycles",
        "failures",
        "frames stackshadow verified",
    ]
    .map(str::to_owned)
    .to_vec();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.design.clone(),
                format!("`{}`", r.workload),
                r.engine.clone(),
                r.seeds.to_string(),
                r.cycles.to_string(),
                r.failures.to_string(),
                r.stackshadow_frames_verified.to_string(),
            ]
        })
        .collect();
    let note = "Small workloads (8 goroutines, depth 40), 3 cycles a seed, checkmark and stackshadow on; the threaded runs on 2 Ps. Failures: runs stopped by either checker (ARCHITECTURE.md §6: 0). Frames verified: those the re-scans skipped (the Dijkstra designs), or those scanned above a watermark (hybrid-lazy); the other designs never re-scan and give stackshadow nothing to verify.".to_owned();
    Table {
        name: "soundness_campaign".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// Every table the CSVs in `dir` allow, with the names of those whose CSV is absent.
pub fn tables(dir: &Path) -> Result<(Vec<Table>, Vec<String>), PaperError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    if let Some(t) = headline_table(dir)? {
        out.push(t);
    } else {
        missing.push("headline".to_owned());
    }
    match read::<Row>(dir, "rescan_offsets")? {
        Some(rows) => {
            // The counters are the deterministic runs'; the threaded runs give the pauses.
            let counters: Vec<Row> = rows
                .into_iter()
                .filter(|r| r.engine == "deterministic")
                .collect();
            let pooled = read::<PausesRow>(dir, "rescan_offsets_pauses")?;
            out.push(rescan_offsets_table(&counters));
            out.push(offset_tradeoff_table(&counters, pooled.as_deref()));
        }
        None => missing.extend(["rescan_offsets".into(), "offset_tradeoff".into()]),
    }
    match read::<Row>(dir, "depth_sweep")? {
        Some(rows) => {
            let pooled = read::<PausesRow>(dir, "depth_sweep_pauses")?;
            out.push(sweep_table(
                "depth_sweep",
                &rows,
                pooled.as_deref(),
                "depth",
                |r| r.depth,
            ))
        }
        None => missing.push("depth_sweep".into()),
    }
    match read::<Row>(dir, "goroutine_sweep")? {
        Some(rows) => {
            let pooled = read::<PausesRow>(dir, "goroutine_sweep_pauses")?;
            out.push(sweep_table(
                "goroutine_sweep",
                &rows,
                pooled.as_deref(),
                "goroutines",
                |r| r.goroutines,
            ))
        }
        None => missing.push("goroutine_sweep".into()),
    }
    match read::<Row>(dir, "barrier_designs")? {
        Some(rows) => {
            let mmu = read::<MmuRow>(dir, "barrier_designs_mmu")?;
            let pooled = read::<PausesRow>(dir, "barrier_designs_pauses")?;
            out.push(barrier_designs_table(
                &rows,
                pooled.as_deref(),
                mmu.as_deref(),
            ));
        }
        None => missing.push("barrier_designs".into()),
    }
    match read::<StallRow>(dir, "scan_stall")? {
        Some(rows) => out.push(scan_stall_table(&rows)),
        None => missing.push("scan_stall".into()),
    }
    match read::<FaultRow>(dir, "wbshadow_faults")? {
        Some(rows) => out.push(wbshadow_faults_table(&rows)),
        None => missing.push("wbshadow_faults".into()),
    }
    match read::<OverheadRow>(dir, "wbshadow_overhead")? {
        Some(rows) => out.push(wbshadow_overhead_table(&rows)),
        None => missing.push("wbshadow_overhead".into()),
    }
    match read::<SoundnessRow>(dir, "soundness")? {
        Some(rows) => out.push(soundness_table(&rows)),
        None => missing.push("soundness".into()),
    }
    match read::<CampaignRow>(dir, "soundness_campaign")? {
        Some(rows) => out.push(soundness_campaign_table(&rows)),
        None => missing.push("soundness_campaign".into()),
    }
    match read::<SanitizerRow>(dir, "sanitizer_leak")? {
        Some(rows) => out.push(sanitizer_leak_table(&rows)),
        None => missing.push("sanitizer_leak".into()),
    }
    match read::<ProfilerRow>(dir, "profiler_switch")? {
        Some(rows) => out.push(profiler_switch_table(&rows)),
        None => missing.push("profiler_switch".into()),
    }
    match read::<TraceOverheadRow>(dir, "trace_overhead")? {
        Some(rows) => out.push(trace_overhead_table(&rows)),
        None => missing.push("trace_overhead".into()),
    }
    match read::<PausesRow>(dir, "sensitivity_pauses")? {
        Some(rows) => out.push(sensitivity_table(&rows)),
        None => missing.push("sensitivity".into()),
    }
    match read::<GoPausesRow>(dir, "go_peer_pauses")? {
        Some(rows) => out.push(go_peer_table(&rows, &all_pauses(dir)?)),
        None => missing.push("go_peer".into()),
    }
    Ok((out, missing))
}

/// The start and end markers of table `name`.
fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- generated:{name} -->"),
        format!("<!-- end generated:{name} -->"),
    )
}

/// Whether `paper` has the start marker of table `name` (where [`refresh`] places it).
pub fn has_markers(paper: &str, name: &str) -> bool {
    paper.contains(&markers(name).0)
}

/// `paper` with every table of `tables` placed between its markers. Returns the new text and the
/// names of the paper's sections no table refreshed.
pub fn refresh(paper: &str, tables: &[Table]) -> Result<(String, Vec<String>), PaperError> {
    let mut out = String::with_capacity(paper.len());
    let mut rest = paper;
    let mut untouched = Vec::new();
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    while let Some(start) = rest.find("<!-- generated:") {
        let after = &rest[start + "<!-- generated:".len()..];
        let Some(close) = after.find("-->") else {
            return Err(PaperError::Markers(
                "an unterminated `<!-- generated:` marker".into(),
            ));
        };
        let name = after[..close].trim().to_owned();
        let (open_marker, end_marker) = markers(&name);
        let body_start = start + open_marker.len();
        if !rest[start..].starts_with(&open_marker) {
            return Err(PaperError::Markers(format!(
                "marker for {name:?} must read exactly {open_marker}"
            )));
        }
        let Some(end_rel) = rest[body_start..].find(&end_marker) else {
            return Err(PaperError::Markers(format!(
                "{open_marker} has no {end_marker}"
            )));
        };
        if seen.insert(name.clone(), ()).is_some() {
            return Err(PaperError::Markers(format!("table {name:?} appears twice")));
        }
        out.push_str(&rest[..body_start]);
        match tables.iter().find(|t| t.name == name) {
            Some(t) => {
                out.push('\n');
                out.push_str(&t.markdown);
            }
            None => {
                out.push_str(&rest[body_start..body_start + end_rel]);
                untouched.push(name);
            }
        }
        out.push_str(&end_marker);
        rest = &rest[body_start + end_rel + end_marker.len()..];
    }
    out.push_str(rest);
    Ok((out, untouched))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, md: &str) -> Table {
        Table {
            name: name.into(),
            markdown: md.into(),
        }
    }

    #[test]
    fn refreshing_replaces_only_between_markers_and_is_idempotent() {
        let paper = "# P\n\ntext\n<!-- generated:a -->\nold a\n<!-- end generated:a -->\nmid\n\
                     <!-- generated:b -->\nold b\n<!-- end generated:b -->\nend\n";
        let tables = [table("a", "| new a |\n")];
        let (once, untouched) = refresh(paper, &tables).unwrap();
        assert_eq!(
            once,
            "# P\n\ntext\n<!-- generated:a -->\n| new a |\n<!-- end generated:a -->\nmid\n\
             <!-- generated:b -->\nold b\n<!-- end generated:b -->\nend\n"
        );
        assert_eq!(untouched, ["b"]);
        let (twice, _) = refresh(&once, &tables).unwrap();
        assert_eq!(twice, once);
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
        read(Path::new(FIXTURES), name)
            .expect("the fixture parses")
            .expect("the fixture exists")
    }

    #[test]
    fn sanitizer_leak_table_reads_warm_up_middle_and_last_steps() {
        let md = sanitizer_leak_table(&fixture("sanitizer_leak")).markdown;
        assert_eq!(
            md,
            concat!(
                "| mode | MiB at step 2 | MiB at step 4 | MiB at step 7 | growth (step 7 / step 2) | live objects at step 7 |\n",
                "| --- | ---: | ---: | ---: | ---: | ---: |\n",
                "| free-notify | 0.80 | 0.62 | 0.68 | 0.85 | 12045 |\n",
                "| no-free-notify | 1.64 | 2.30 | 3.63 | 2.21 | 12045 |\n",
                "\n",
                "The sanitizer's metadata memory (per-P contexts and per-object metadata) at step N (one step per GC cycle); steps before 2 are warm-up. ",
                "`free-notify`: sweep tells the sanitizer of every object it frees, so that object's metadata is released; `no-free-notify`: it does not. ",
                "The P count follows a schedule during the run, so contexts are created and destroyed with their Ps. ",
                "ARCHITECTURE.md §6 target: flat after warm-up. Each cell is the mean of 3 seeds.\n",
            )
        );
    }

    #[test]
    fn wbshadow_faults_table_has_a_row_per_mode_and_drop_fraction() {
        let md = wbshadow_faults_table(&fixture("wbshadow_faults")).markdown;
        assert_eq!(
            md,
            concat!(
                "| workload | mode | drop fraction | runs with faults | detected % | by store | by GC | by checkmark | lost caught | delay p50 (stores) | delay max (stores) |\n",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
                "| `mixed` | wbshadow=1 | 0.00001 | 0 / 10 | – | 0 | 0 | 0 | 0 / 0 | – | – |\n",
                "| `mixed` | wbshadow=1 | 0.0001 | 4 / 10 | 75.0 | 3 | 0 | 0 | 0 / 1 | 1840 | 5210 |\n",
                "| `mixed` | wbshadow=1 | 0.001 | 10 / 10 | 80.0 | 8 | 0 | 0 | 3 / 4 | 960 | 4410 |\n",
                "| `mixed` | wbshadow=1 | 0.01 | 10 / 10 | 100.0 | 10 | 0 | 0 | 9 / 9 | 88 | 730 |\n",
                "| `mixed` | wbshadow=1 | 0.1 | 10 / 10 | 100.0 | 10 | 0 | 0 | 10 / 10 | 9 | 61 |\n",
                "| `mixed` | wbshadow=2 | 0.00001 | 0 / 10 | – | 0 | 0 | 0 | 0 / 0 | – | – |\n",
                "| `mixed` | wbshadow=2 | 0.0001 | 4 / 10 | 100.0 | 3 | 1 | 0 | 1 / 1 | 1620.5 | 4980 |\n",
                "| `mixed` | wbshadow=2 | 0.001 | 10 / 10 | 100.0 | 8 | 2 | 0 | 4 / 4 | 910 | 4410 |\n",
                "| `mixed` | wbshadow=2 | 0.01 | 10 / 10 | 100.0 | 10 | 0 | 0 | 9 / 9 | 88 | 730 |\n",
                "| `mixed` | wbshadow=2 | 0.1 | 10 / 10 | 100.0 | 10 | 0 | 0 | 10 / 10 | 9 | 61 |\n",
                "| `mixed` | checkmark | 0.00001 | 0 / 10 | – | 0 | 0 | 0 | 0 / 0 | – | – |\n",
                "| `mixed` | checkmark | 0.0001 | 4 / 10 | 25.0 | 0 | 0 | 1 | 1 / 1 | 7420 | 7420 |\n",
                "| `mixed` | checkmark | 0.001 | 10 / 10 | 40.0 | 0 | 0 | 4 | 4 / 4 | 6100 | 9870 |\n",
                "| `mixed` | checkmark | 0.01 | 10 / 10 | 90.0 | 0 | 0 | 9 | 9 / 9 | 2950 | 8120 |\n",
                "| `mixed` | checkmark | 0.1 | 10 / 10 | 100.0 | 0 | 0 | 10 | 10 / 10 | 1210 | 4030 |\n",
                "\n",
                "`--inject wb-drop=F` skips the write barrier at a seeded fraction F of heap stores. ",
                "Runs with faults: of the seeds run, those in which at least one barrier was dropped; ",
                "detected: of those, the share ending with a checker report, made by wbshadow at a barriered store (by store), ",
                "by wbshadow checking a word during the checkmark walk (by GC), or by checkmark finding a reachable object left unmarked (by checkmark). ",
                "Lost caught: of the runs in which checkmark alone found a lost object (same seed and fraction), those this mode caught; ",
                "ARCHITECTURE.md §6 target: all of them for `wbshadow=2`, which runs with `gccheckmark=1`. ",
                "Delay: heap stores from the dropped barrier a report names to the report, over the detected runs.\n",
            )
        );
    }

    #[test]
    fn wbshadow_overhead_table_takes_the_median_slowdown_and_the_mean_shadow() {
        let md = wbshadow_overhead_table(&fixture("wbshadow_overhead")).markdown;
        assert_eq!(
            md,
            concat!(
                "| workload | mode | slowdown vs off (median) | shadow MiB | shadow % of live heap |\n",
                "| --- | ---: | ---: | ---: | ---: |\n",
                "| `mixed` | off | 1.00 | 0.00 | 0.0 |\n",
                "| `mixed` | wbshadow=1 | 1.31 | 28.19 | 100.2 |\n",
                "| `mixed` | wbshadow=2 | 1.62 | 28.19 | 100.2 |\n",
                "| `mixed` | checkmark | 1.18 | 0.00 | 0.0 |\n",
                "\n",
                "Slowdown: a run's wall time over that of the same seed's run with no checker (`off`), the median of 3 seeds. ",
                "Shadow: the memory of wbshadow's shadow copy of every heap and global pointer word, the mean of 3 seeds, and as a share of the live heap (the shadow covers every mapped heap word, live or not: Go's shadow heap mirrors the whole arena). ",
                "`wbshadow=2` runs with `gccheckmark=1`.\n",
            )
        );
    }

    fn pauses(design: &str, procs: usize, gogc: u32, p50_us: f64) -> PausesRow {
        PausesRow {
            workload: "deep-oscillate".into(),
            replay: String::new(),
            goroutines: 64,
            depth: 1000,
            design: design.into(),
            barrier_removal: "after-restart".into(),
            procs,
            gogc: Some(gogc),
            heap_minimum: 4 << 20,
            gc_share: 0.25,
            samples: 201,
            mark_term_ns_p50: p50_us * 1e3,
            mark_term_ns_p50_lo: (p50_us - 1.0) * 1e3,
            mark_term_ns_p50_hi: (p50_us + 2.0) * 1e3,
            mark_term_tail: "p99".into(),
            mark_term_ns_tail: p50_us * 3e3,
            mark_term_ns_max: p50_us * 5e3,
        }
    }

    /// With pooled pauses, the barrier-design table's pause columns are the pooled median with its
    /// interval, the tail by its label and the max, and a configuration without them shows `–`.
    #[test]
    fn barrier_designs_take_their_pauses_from_the_pooled_cycles() {
        let row = |design: &str| -> Row {
            let csv = format!(
                "workload,design,engine,goroutines,depth,cycles,full_rescan_bytes,rescan_bytes,oracle_rescan_bytes,barriers_installed,barriers_hit,stkbar_reserved_bytes,mark_term_ns_p50,mark_term_ns_p99,mark_term_ns_max,sweep_term_ns_p50,checkmark_failures,outside_bound,mark_ns,wb_calls,mutator_ops,mutator_ops_per_s\n\
                 deep-oscillate,{design},threaded,64,1000,10,0,0,0,0,0,0,99000,99000,99000,12000,0,0,50000000,10,1000,2e7\n"
            );
            csv::Reader::from_reader(csv.as_bytes())
                .deserialize()
                .next()
                .expect("a row")
                .expect("parses")
        };
        let rows = [row("hybrid"), row("full-rescan")];
        let pooled = [pauses("hybrid", 2, 100, 20.0)];
        let t = barrier_designs_table(&rows, Some(&pooled), None);
        assert!(
            t.markdown
                .contains("| `deep-oscillate` | hybrid | 20.0 [19.0, 22.0] | p99 60.0 | 100 |"),
            "{}",
            t.markdown
        );
        assert!(
            t.markdown
                .contains("| `deep-oscillate` | full-rescan | – | – | – |"),
            "{}",
            t.markdown
        );
        assert!(
            t.markdown.contains("Samples per pause cell: 201."),
            "{}",
            t.markdown
        );
        let old = barrier_designs_table(&rows, None, None);
        assert!(
            old.markdown
                .contains("| `deep-oscillate` | hybrid | 99.0 | 99.0 | 99.0 |"),
            "{}",
            old.markdown
        );
    }

    #[test]
    fn sensitivity_lists_each_axis_around_the_base_with_intervals() {
        let mut rows = Vec::new();
        for d in ["stkbar-1024", "hybrid"] {
            rows.push(pauses(d, 2, 100, 40.0));
            rows.push(pauses(d, 1, 100, 30.0));
            rows.push(pauses(d, 4, 100, 50.0));
            rows.push(pauses(d, 2, 50, 45.0));
            rows.push(pauses(d, 2, 200, 35.0));
        }
        let t = sensitivity_table(&rows).markdown;
        let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("| deep")).collect();
        // GOMAXPROCS 1, 2, 4; GOGC 50, 100, 200; the heap minimum and share at the base only.
        assert_eq!(lines.len(), 3 + 3 + 1 + 1, "{t}");
        assert!(
            lines[0].contains("GOMAXPROCS 1 | 30.0 [29.0, 32.0] | 30.0 [29.0, 32.0]"),
            "{t}"
        );
        assert!(lines[3].contains("GOGC 50 | 45.0 [44.0, 47.0]"), "{t}");
        assert!(lines[6].contains("heap minimum 4.00 MiB | 40.0"), "{t}");
        assert!(t.contains("Samples per cell: 201"));
    }

    #[test]
    fn the_go_peer_sits_beside_the_testbeds_hybrid_at_the_same_size_and_ps() {
        let go = vec![GoPausesRow {
            workload: "deep-oscillate".into(),
            goroutines: 64,
            depth: 1000,
            go_version: "go1.19.8".into(),
            procs: 2,
            godebug: "gctrace=1".into(),
            samples: 300,
            mark_term_ns_p50: 64_000.0,
            mark_term_ns_p50_lo: 63_000.0,
            mark_term_ns_p50_hi: 65_000.0,
            mark_term_tail: "p99".into(),
            mark_term_ns_tail: 130_000.0,
        }];
        let testbed = vec![
            pauses("hybrid", 4, 100, 99.0),
            pauses("stkbar-1024", 2, 100, 88.0),
            pauses("hybrid", 2, 100, 16.0),
        ];
        let t = go_peer_table(&go, &testbed).markdown;
        assert!(
            t.contains("| deep-oscillate 64 × 1000 | go1.19.8 | `gctrace=1` | 300 | 64.0 [63.0, 65.0] | p99 130 | 201 | 16.0 [15.0, 18.0] | p99 48.0 |"),
            "{t}"
        );
        let none = go_peer_table(&go, &testbed[..2]).markdown;
        assert!(none.contains("| – | – | – |"), "{none}");
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn debug_mode_tables_are_made_from_their_csvs_or_reported_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (made, missing) = tables(dir.path()).expect("no CSV is no error");
        assert!(made.is_empty());
        for name in ["wbshadow_faults", "wbshadow_overhead", "sanitizer_leak"] {
            assert!(missing.iter().any(|m| m == name), "{missing:?}");
        }

        for csv in [
            "wbshadow_faults.csv",
            "wbshadow_overhead.csv",
            "sanitizer_leak.csv",
        ] {
            std::fs::copy(Path::new(FIXTURES).join(csv), dir.path().join(csv)).expect("copy");
        }
        let (made, missing) = tables(dir.path()).expect("the fixtures parse");
        let names: Vec<&str> = made.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["wbshadow_faults", "wbshadow_overhead", "sanitizer_leak"]
        );
        assert!(
            !missing.iter().any(|m| names.contains(&m.as_str())),
            "{missing:?}"
        );

        let faults = dir.path().join("wbshadow_faults.csv");
        let text = std::fs::read_to_string(&faults).expect("read");
        std::fs::write(&faults, text.replacen(",0.0001,", ",0.0o01,", 1)).expect("write");
        let err = tables(dir.path()).expect_err("a bad float is an error");
        assert!(
            err.to_string().contains("wbshadow_faults.csv"),
            "{err} should name the file"
        );
    }

    #[test]
    fn rescan_offsets_table_puts_both_oracles_beside_the_offsets() {
        let md = rescan_offsets_table(&fixture("rescan_offsets")).markdown;
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| workload | every frame | 256 | 512 | 1024 | 2048 | 4096 | 8192 | off | return oracle | content oracle |"
        );
        let mut rows = 0;
        for line in &lines[2..] {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 12 {
                break;
            }
            rows += 1;
            let pct = |i: usize| cells[i].parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
            // The content oracle is the floor: it avoids at least what the return oracle does,
            // which avoids at least what any offset does.
            assert!(pct(11) >= pct(10), "{line}");
            assert!((2..=9).all(|i| pct(10) >= pct(i)), "{line}");
        }
        assert!(rows >= 5, "{md}");
    }

    #[test]
    fn profiler_switch_table_sums_each_workload_engine_and_rule_set() {
        let md = profiler_switch_table(&fixture("profiler_switch")).markdown;
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| workload | engine | rules | samples | goroutine tracebacks | of them mid-hit | g0 tracebacks | System | System % | mid-switch | malformed | malformed per 10⁶ |"
        );
        // Four workloads × two engines × three rule sets, in the CSV's workload order.
        assert_eq!(lines.len(), 2 + 24 + 2, "{md}");
        assert_eq!(
            lines[2],
            "| `switch-heavy` | deterministic | go1.7 | 28669 | 6234 | 0 | 3694 | 18741 | 65.4 | 18741 | 0 | 0 |"
        );
        assert_eq!(
            lines[3],
            "| `switch-heavy` | deterministic | seed003 | 28669 | 6234 | 0 | 0 | 22435 | 78.3 | 18741 | 0 | 0 |"
        );
        assert_eq!(
            lines[14],
            "| `deep-unwind` | deterministic | go1.7 | 25071 | 23447 | 732 | 1422 | 202 | 0.8 | 202 | 0 | 0 |"
        );
        assert!(lines[27].starts_with("Samples: profiling signals handled (one seed);"));
    }

    #[test]
    fn trace_overhead_table_takes_the_median_overhead_and_mean_figures() {
        let md = trace_overhead_table(&fixture("trace_overhead")).markdown;
        assert_eq!(
            md,
            concat!(
                "| workload | engine | overhead % (median) | events/s | buffers allocated | MiB written |\n",
                "| --- | ---: | ---: | ---: | ---: | ---: |\n",
                "| `deep-oscillate` | deterministic | 4.5 | 853022 | 5 | 3.97 |\n",
                "| `deep-oscillate` | threaded | 10.0 | 1818182 | 7 | 10.00 |\n",
                "| `mixed` | deterministic | 10.0 | 568182 | 5 | 1.00 |\n",
                "\n",
                "Overhead: a run's wall time with tracing on over the same run's with it off, less one, the median of 1–2 seed(s). ",
                "Events/s: trace events written per second of the traced run; buffers allocated: per-P trace buffers the run ever allocated (they are recycled, not freed); ",
                "MiB written: the trace bytes the run wrote. The other columns are means over the seeds.\n",
            )
        );
    }

    #[test]
    fn observability_tables_are_made_from_their_csvs_or_reported_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, missing) = tables(dir.path()).expect("no CSV is no error");
        for name in ["profiler_switch", "trace_overhead"] {
            assert!(missing.iter().any(|m| m == name), "{missing:?}");
        }
        for csv in ["profiler_switch.csv", "trace_overhead.csv"] {
            std::fs::copy(Path::new(FIXTURES).join(csv), dir.path().join(csv)).expect("copy");
        }
        let (made, missing) = tables(dir.path()).expect("the fixtures parse");
        let names: Vec<&str> = made.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["profiler_switch", "trace_overhead"]);
        assert!(!missing.iter().any(|m| names.contains(&m.as_str())));

        let path = dir.path().join("trace_overhead.csv");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replacen(",200.0,", ",2oo.0,", 1)).expect("write");
        let err = tables(dir.path()).expect_err("a bad number is an error");
        assert!(err.to_string().contains("trace_overhead.csv"), "{err}");
    }

    #[test]
    fn scan_stall_table_puts_the_depth_sweep_first_and_marks_max_tails() {
        let md = scan_stall_table(&fixture("scan_stall")).markdown;
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| depth | goroutines | full-rescan stall p50 / p99 µs | stkbar-1024 stall p50 / p99 µs | hybrid stall p50 / p99 µs | hybrid-lazy stall p50 / p99 µs | hybrid mark ms/cycle | hybrid mark term p50 µs | hybrid Mops/s | hybrid-lazy mark ms/cycle | hybrid-lazy mark term p50 µs | hybrid-lazy Mops/s |"
        );
        let points: Vec<(&str, &str)> = lines[2..8]
            .iter()
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1], cells[2])
            })
            .collect();
        // The depth sweep (8 goroutines) first, then the goroutine sweep at depth 500.
        assert_eq!(
            points,
            [
                ("5", "8"),
                ("50", "8"),
                ("500", "8"),
                ("5000", "8"),
                ("500", "32"),
                ("500", "128")
            ]
        );
        // 8 goroutines × 4 cycles is too few scans for a p99: the max, starred; 32 × 4 is not.
        assert!(lines[5].contains('*'), "{}", lines[5]);
        assert!(!lines[6].contains('*'), "{}", lines[6]);
        assert_eq!(lines[8], "");
        let note = lines[9];
        assert!(note.contains("* the max, not the p99"), "{note}");
        assert!(note.contains("the median of 2 seeds"), "{note}");
        assert!(
            note.contains("At 8 G × depth 5000, hybrid-lazy's max stall is"),
            "{note}"
        );
        assert!(
            note.contains("`testbed --workload deep-oscillate"),
            "{note}"
        );
        assert!(note.contains("`scan_stall --full`"), "{note}");
    }

    #[test]
    fn the_headline_quotes_the_lazy_scans_stall_from_scan_stall_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            Path::new(FIXTURES).join("scan_stall.csv"),
            dir.path().join("scan_stall.csv"),
        )
        .expect("copy");
        let (made, missing) = tables(dir.path()).expect("the fixture parses");
        let names: Vec<&str> = made.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["headline", "scan_stall"]);
        assert!(!missing.iter().any(|m| m == "scan_stall"), "{missing:?}");
        let headline = &made[0].markdown;
        assert!(
            headline.contains(
                "| scan stall max, hybrid-lazy vs hybrid, `deep-oscillate` 8 G × depth 5000 |"
            ),
            "{headline}"
        );
        let runs: Vec<StallRow> = fixture("scan_stall");
        let runs: Vec<StallRun<'_>> = runs.iter().map(StallRow::run).collect();
        let h = StallHeadline::of(&runs).expect("both hybrid designs at the deepest point");
        assert!(h.tail_is_max && h.seeds == 2, "{h:?}");
        assert!(h.stall_ratio() > 10.0, "{h:?}");
        assert!(
            headline.contains(&format!("({}× shorter)", num(h.stall_ratio(), 0))),
            "{headline}"
        );
    }

    #[test]
    fn broken_markers_are_errors() {
        for paper in [
            "<!-- generated:a -->\nno end\n",
            "<!-- generated:a\n",
            "<!-- generated:a -->\n<!-- end generated:a -->\n<!-- generated:a -->\n<!-- end generated:a -->\n",
            "<!-- generated: a -->\n<!-- end generated:a -->\n",
        ] {
            assert!(refresh(paper, &[]).is_err(), "{paper:?}");
        }
    }
}
