//! The generated tables of `paper.md`, made from the CSVs in `results/`, and their refresh between
//! `<!-- generated:NAME -->` and `<!-- end generated:NAME -->` markers.
//!
//! Invariant: a table is a pure function of the CSVs, and a refresh replaces exactly the text
//! between a table's two markers, so refreshing twice gives the same file as refreshing once
//! (idempotence), and nothing outside the markers is ever touched. A table whose CSV is absent
//! leaves its section as it was (and says so); a start marker without its end marker is an error,
//! never a guess. Rows that differ only in their seed are averaged; every table says how many
//! seeds went into each cell.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::suite::{Design, workload_label};
use crate::sweeps::{BARRIER_DESIGNS, OFFSET_DESIGNS};

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

/// The columns the tables read from a run CSV (DESIGN §5's core columns and the suite's extras).
#[derive(Clone, Debug, Deserialize)]
struct Row {
    workload: String,
    #[serde(default)]
    replay: String,
    design: String,
    engine: String,
    goroutines: usize,
    depth: usize,
    cycles: u64,
    full_rescan_bytes: u64,
    rescan_bytes: u64,
    oracle_rescan_bytes: u64,
    barriers_installed: u64,
    barriers_hit: u64,
    stkbar_reserved_bytes: u64,
    mark_term_ns_p50: u64,
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
    /// The workload as tables name it: `replay:TRACE` for a replayed trace.
    fn label(&self) -> String {
        workload_label(&self.workload, &self.replay)
    }
    fn per_cycle(&self, v: u64) -> f64 {
        v as f64 / self.cycles.max(1) as f64
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

/// The rows of workload `label` under design `d` (one per seed).
fn select<'a>(rows: &'a [Row], label: &str, d: Design) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.label() == label && r.design == d.name())
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

/// The seeds-per-cell note.
fn seeds_note(counts: impl IntoIterator<Item = usize>) -> String {
    let (lo, hi) = counts
        .into_iter()
        .filter(|&n| n > 0)
        .fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    match (lo, hi) {
        (usize::MAX, _) => String::new(),
        (1, 1) => "Each cell is one seed's run.".to_owned(),
        (lo, hi) if lo == hi => format!("Each cell is the mean of {lo} seeds."),
        (lo, hi) => format!("Each cell is the mean of {lo}–{hi} seeds."),
    }
}

/// `rescan_offsets`: re-scan avoided (%) per workload and offset.
fn rescan_offsets_table(rows: &[Row]) -> Table {
    let header: Vec<String> = std::iter::once("workload".to_owned())
        .chain(OFFSET_DESIGNS.iter().map(|d| offset_label(&d.name())))
        .collect();
    let mut counts = Vec::new();
    let body: Vec<Vec<String>> = labels(rows)
        .into_iter()
        .map(|label| {
            std::iter::once(format!("`{label}`"))
                .chain(OFFSET_DESIGNS.iter().map(|d| {
                    let (m, n) = mean(select(rows, &label, *d), avoided);
                    counts.push(n);
                    pct(m)
                }))
                .collect()
        })
        .collect();
    let note = format!(
        "Re-scan avoided, % of the full re-scan (`1 - rescan_bytes / full_rescan_bytes`), deterministic engine, checkmark on. {}",
        seeds_note(counts)
    );
    Table {
        name: "rescan_offsets".into(),
        markdown: markdown(&header, &body, &note),
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
fn offset_tradeoff_table(rows: &[Row]) -> Table {
    let header: Vec<String> = [
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
        }
    }
    let note = format!(
        "Deterministic engine. `re-scan / oracle` is the price of spacing barriers out (the oracle re-scans exactly what changed). {}",
        seeds_note(counts)
    );
    Table {
        name: "offset_tradeoff".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// The designs of a sweep's pause columns, in a fixed order.
const PAUSE_ORDER: [&str; 5] = [
    "full-rescan",
    "stkbar-1024",
    "stkbar-all",
    "hybrid",
    "yuasa",
];

/// `depth_sweep` / `goroutine_sweep`: re-scan per cycle (deterministic) and pause p50
/// (threaded) at each point of the sweep's axis.
fn sweep_table(name: &str, rows: &[Row], axis_name: &str, at: fn(&Row) -> usize) -> Table {
    let all: Vec<&Row> = rows.iter().collect();
    let mut header: Vec<String> = vec![
        axis_name.to_owned(),
        "full re-scan KiB/cycle".into(),
        "stkbar-1024 re-scan KiB/cycle".into(),
        "oracle KiB/cycle".into(),
    ];
    let designs: Vec<&str> = PAUSE_ORDER
        .into_iter()
        .filter(|d| {
            rows.iter()
                .any(|r| r.engine == "threaded" && r.design == *d)
        })
        .collect();
    header.extend(designs.iter().map(|d| format!("{d} p50 µs")));
    let mut counts = Vec::new();
    let body = axis(&all, at)
        .into_iter()
        .map(|x| {
            let det = |design: &'static str| {
                rows.iter().filter(move |r| {
                    at(r) == x && r.engine == "deterministic" && r.design == design
                })
            };
            let full = mean(det("full-rescan"), |r| r.per_cycle(r.rescan_bytes));
            let bars = mean(det("stkbar-1024"), |r| r.per_cycle(r.rescan_bytes));
            let oracle = mean(det("stkbar-1024"), |r| r.per_cycle(r.oracle_rescan_bytes));
            counts.extend([full.1, bars.1]);
            let mut cells = vec![x.to_string(), kib(full.0), kib(bars.0), kib(oracle.0)];
            for d in &designs {
                let p = mean(
                    rows.iter()
                        .filter(|r| at(r) == x && r.engine == "threaded" && r.design == *d),
                    |r| r.mark_term_ns_p50 as f64,
                );
                counts.push(p.1);
                cells.push(us(p.0));
            }
            cells
        })
        .collect::<Vec<_>>();
    let note = format!(
        "Re-scan columns: deterministic engine, bytes summed over cycles divided by cycles. Pause columns: mark-termination p50, threaded engine. {}",
        seeds_note(counts)
    );
    Table {
        name: name.into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `barrier_designs`: pauses, mark time, barrier cost and throughput per workload and design.
fn barrier_designs_table(rows: &[Row], mmu: Option<&[MmuRow]>) -> Table {
    let header: Vec<String> = [
        "workload",
        "design",
        "mark term p50 µs",
        "p99 µs",
        "max µs",
        "sweep term p50 µs",
        "mark ms/cycle",
        "WB calls/op",
        "WB ns/store",
        "mutator Mops/s",
        "MMU 1 ms",
        "MMU 10 ms",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut body = Vec::new();
    let mut counts = Vec::new();
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
                    .map(|p| p.mmu)
                    .collect();
                if pts.is_empty() {
                    "–".to_owned()
                } else {
                    num(pts.iter().sum::<f64>() / pts.len() as f64, 2)
                }
            };
            body.push(vec![
                format!("`{label}`"),
                d.name(),
                us(m(&|r| r.mark_term_ns_p50 as f64)),
                us(m(&|r| r.mark_term_ns_p99 as f64)),
                us(m(&|r| r.mark_term_ns_max as f64)),
                us(m(&|r| r.sweep_term_ns_p50 as f64)),
                num(m(&|r| r.per_cycle(r.mark_ns) / 1e6), 2),
                num(m(&|r| r.wb_calls as f64 / r.mutator_ops.max(1) as f64), 3),
                num(m(&|r| r.wb_ns_per_store.unwrap_or(f64::NAN)), 1),
                num(m(&|r| r.mutator_ops_per_s / 1e6), 1),
                mmu_at(1_000_000),
                mmu_at(10_000_000),
            ]);
        }
    }
    let note = format!(
        "Threaded engine. WB ns/store: the design's barrier timed on this machine with a cycle in progress (`gc::wbarrier` probe). MMU: minimum mutator utilisation over every window of that length. {}",
        seeds_note(counts)
    );
    Table {
        name: "barrier_designs".into(),
        markdown: markdown(&header, &body, &note),
    }
}

/// `headline`: the figures the abstract quotes, each with where it comes from.
fn headline_table(dir: &Path) -> Result<Option<Table>, PaperError> {
    let offsets: Vec<Row> = read(dir, "rescan_offsets")?.unwrap_or_default();
    let depth: Vec<Row> = read(dir, "depth_sweep")?.unwrap_or_default();
    if offsets.is_empty() && depth.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    let osc: Vec<&Row> = offsets
        .iter()
        .filter(|r| r.label() == "deep-oscillate" && r.design == "stkbar-1024")
        .collect();
    if let Some(r) = osc.first() {
        body.push(vec![
            format!(
                "re-scan avoided, `deep-oscillate` {} G × depth {}, offset 1024",
                r.goroutines, r.depth
            ),
            format!("{} %", pct(mean(osc.iter().copied(), avoided).0)),
            "≥ 95 %".into(),
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
            "re-scans outside DESIGN §4's bound, all counter runs".into(),
            outside.to_string(),
            "0".into(),
        ]);
        body.push(vec![
            "checkmark failures, all counter runs".into(),
            checkmark.to_string(),
            "0".into(),
        ]);
    }
    let threaded: Vec<&Row> = depth.iter().filter(|r| r.engine == "threaded").collect();
    if let Some(&deepest) = axis(&threaded, |r| r.depth).last() {
        let p50 = |d: &str| {
            mean(
                threaded
                    .iter()
                    .copied()
                    .filter(|r| r.depth == deepest && r.design == d),
                |r| r.mark_term_ns_p50 as f64,
            )
            .0
        };
        let g = threaded.first().map_or(0, |r| r.goroutines);
        let (off, on, hybrid) = (p50("full-rescan"), p50("stkbar-1024"), p50("hybrid"));
        body.push(vec![
            format!("mark-termination p50, stack barriers vs off, {g} G × depth {deepest}"),
            format!(
                "{} µs vs {} µs ({}× shorter)",
                us(on),
                us(off),
                num(off / on, 1)
            ),
            "≥ 10× shorter".into(),
        ]);
        body.push(vec![
            format!("hybrid mark-termination p50, {g} G × depth {deepest}"),
            format!("{} µs", us(hybrid)),
            "< 50 µs".into(),
        ]);
    }
    Ok(Some(Table {
        name: "headline".into(),
        markdown: markdown(
            &[
                "figure".into(),
                "measured".into(),
                "DESIGN §6 target".into(),
            ],
            &body,
            "",
        ),
    }))
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
            out.push(rescan_offsets_table(&rows));
            out.push(offset_tradeoff_table(&rows));
        }
        None => missing.extend(["rescan_offsets".into(), "offset_tradeoff".into()]),
    }
    match read::<Row>(dir, "depth_sweep")? {
        Some(rows) => out.push(sweep_table("depth_sweep", &rows, "depth", |r| r.depth)),
        None => missing.push("depth_sweep".into()),
    }
    match read::<Row>(dir, "goroutine_sweep")? {
        Some(rows) => out.push(sweep_table("goroutine_sweep", &rows, "goroutines", |r| {
            r.goroutines
        })),
        None => missing.push("goroutine_sweep".into()),
    }
    match read::<Row>(dir, "barrier_designs")? {
        Some(rows) => {
            let mmu = read::<MmuRow>(dir, "barrier_designs_mmu")?;
            out.push(barrier_designs_table(&rows, mmu.as_deref()));
        }
        None => missing.push("barrier_designs".into()),
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
