//! A live Go peer: the testbed's workloads, ported to Go (`experiments/go/*.go`, our own code),
//! run under a real Go runtime with `GODEBUG=gctrace=1`, their pauses parsed from its trace.
//!
//! Invariant: every figure here comes from a line the Go runtime printed about one of its own
//! cycles; nothing is estimated. The toolchain is whatever `go` the user has (`--go`, else the
//! one on `PATH`; `GOROOT` as the user set it): Debian's `golang-go` package installs one (Go
//! 1.19 on Debian 12, the hybrid barrier's runtime), and a user with Go 1.5–1.7 of their own gets
//! the stack-barrier runtime, whose `GODEBUG=gcstackbarrieroff=1` and `gcstackbarrierall=1`
//! `--godebug` passes through. Nothing here fetches or builds a Go toolchain.
//!
//! Algorithm: `go version` names the runtime; the ports are one program ([`PROGRAM`]: a
//! `-workload` flag picks the port), built once with `go build` from every `.go` file of the
//! sources into a temporary directory (standard library only, named files, so GOPATH-era and
//! module-era toolchains both build it); each port runs for a fixed wall time with `GOMAXPROCS`,
//! `GOGC` and `GODEBUG=gctrace=1[,…]`; every `gc N @Ts P%: a+…+c ms clock, …` line on its stderr
//! is one cycle: the first clock term is the sweep-termination pause, the last the
//! mark-termination pause, the ones between the concurrent phases (Go 1.5 prints five terms, 1.6
//! and later three). The first cycle, the stacks' build-up, is left out, as the testbed's warm-up
//! cycle is, and so is a last line the program's exit at its deadline cut short. Rows are written as the testbed's experiments write theirs, with the pooled statistics of
//! [`crate::stats`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::stats::{Median, Tail};
use crate::suite::{self, Mode, SuiteError};

/// One Go port: the testbed workload it ports (the program's `-workload`).
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// The testbed workload it ports.
    pub workload: &'static str,
}

/// The program every port is part of, built from every `.go` file of the sources.
pub const PROGRAM: &str = "stkbar-ports";

/// The file that names the ports' program: a sources directory without it holds no ports.
pub const MAIN_SOURCE: &str = "main.go";

/// Every port.
pub const PORTS: [Port; 6] = [
    Port {
        workload: "deep-oscillate",
    },
    Port {
        workload: "deep-unwind",
    },
    Port {
        workload: "many-shallow",
    },
    Port { workload: "mixed" },
    Port {
        workload: "copy-heavy",
    },
    Port {
        workload: "adversarial",
    },
];

/// One cycle as a Go runtime's `gctrace=1` line reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct GcTraceLine {
    /// The cycle's number.
    pub cycle: u64,
    /// Seconds since the program started.
    pub at_s: f64,
    /// The sweep-termination pause (the first clock term).
    pub sweep_term_ns: f64,
    /// The concurrent phases between the pauses (the middle clock terms, summed).
    pub concurrent_ns: f64,
    /// The mark-termination pause (the last clock term).
    pub mark_term_ns: f64,
    /// Heap at the cycle's start, end, and marked live (MB).
    pub heap_mb: (u64, u64, u64),
    /// The heap goal (MB).
    pub goal_mb: u64,
    /// Ps (GOMAXPROCS).
    pub procs: u64,
    /// Whether the cycle was forced (`runtime.GC` or the two-minute timer).
    pub forced: bool,
}

impl GcTraceLine {
    /// Parses one line of `gctrace=1` output: `None` for a line that is not a cycle's, an error
    /// for one that starts like a cycle's and does not parse (a format this code does not know).
    pub fn parse(line: &str) -> Option<Result<GcTraceLine, String>> {
        let rest = line.strip_prefix("gc ")?;
        let bad = || format!("a gctrace line this parser does not know: {line:?}");
        Some(
            (|| {
                let mut words = rest.split_whitespace();
                let cycle = words.next()?.trim_start_matches('#').parse().ok()?;
                let at_s = words
                    .next()?
                    .strip_prefix('@')?
                    .strip_suffix('s')?
                    .parse()
                    .ok()?;
                words.next()?.strip_suffix("%:")?;
                let clock: Vec<f64> = words
                    .next()?
                    .split('+')
                    .map(|t| t.parse::<f64>().ok().map(|ms| ms * 1e6))
                    .collect::<Option<_>>()?;
                if clock.len() < 2 || words.next()? != "ms" || words.next()? != "clock," {
                    return None;
                }
                let fields: Vec<&str> = rest.split(", ").collect();
                let heap = fields
                    .iter()
                    .find(|f| f.ends_with(" MB") && f.contains("->"))?;
                let heap: Vec<u64> = heap
                    .strip_suffix(" MB")?
                    .split("->")
                    .map(|m| m.parse().ok())
                    .collect::<Option<_>>()?;
                let goal = fields.iter().find_map(|f| f.strip_suffix(" MB goal"))?;
                let procs = fields.iter().find_map(|f| {
                    let f = f.trim_end_matches(" (forced)");
                    f.strip_suffix(" P")
                })?;
                Some(GcTraceLine {
                    cycle,
                    at_s,
                    sweep_term_ns: clock[0],
                    concurrent_ns: clock[1..clock.len() - 1].iter().sum(),
                    mark_term_ns: clock[clock.len() - 1],
                    heap_mb: (*heap.first()?, *heap.get(1)?, *heap.get(2)?),
                    goal_mb: goal.parse().ok()?,
                    procs: procs.parse().ok()?,
                    forced: line.contains("(forced)"),
                })
            })()
            .ok_or_else(bad),
        )
    }
}

/// One reported cycle of a Go run (`go_peer.csv`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoCycleRow {
    /// The testbed workload the port models.
    pub workload: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// `go version`'s version (`go1.19.8`).
    pub go_version: String,
    /// GOMAXPROCS.
    pub procs: usize,
    /// GOGC.
    pub gogc: u32,
    /// GODEBUG, `gctrace=1` first.
    pub godebug: String,
    /// The port's seed.
    pub seed: u64,
    /// The cycle's number in the run.
    pub cycle: u64,
    /// Seconds since the program started.
    pub at_s: f64,
    /// The sweep-termination pause.
    pub sweep_term_ns: f64,
    /// The concurrent mark (and, on Go 1.5, scan) phase.
    pub mark_ns: f64,
    /// The mark-termination pause.
    pub mark_term_ns: f64,
    /// Heap at the cycle's start (MB).
    pub heap_start_mb: u64,
    /// Heap at its end (MB).
    pub heap_end_mb: u64,
    /// Heap marked live (MB).
    pub heap_live_mb: u64,
    /// The heap goal (MB).
    pub goal_mb: u64,
    /// The command that reproduces the run (from the repository root, after `go build`).
    pub command: String,
}

/// A workload's pauses over its cycles (`go_peer_pauses.csv`), as the testbed's
/// `NAME_pauses.csv` reports its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoPauseRow {
    /// The testbed workload the port models.
    pub workload: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// `go version`'s version.
    pub go_version: String,
    /// GOMAXPROCS.
    pub procs: usize,
    /// GODEBUG.
    pub godebug: String,
    /// Cycles pooled.
    pub samples: usize,
    /// Median mark-termination pause.
    pub mark_term_ns_p50: f64,
    /// Its 95 % bootstrap interval's lower end.
    pub mark_term_ns_p50_lo: f64,
    /// Its upper end.
    pub mark_term_ns_p50_hi: f64,
    /// `p99` or `max` (see [`crate::stats::P99_MIN_SAMPLES`]).
    pub mark_term_tail: &'static str,
    /// The tail's value.
    pub mark_term_ns_tail: f64,
    /// The longest.
    pub mark_term_ns_max: f64,
    /// Median sweep-termination pause.
    pub sweep_term_ns_p50: f64,
    /// Median concurrent mark.
    pub mark_ns_p50: f64,
}

/// What to run: the flags of the `go_peer` binary.
#[derive(Clone, Debug)]
pub struct GoPeer {
    /// The `go` command.
    pub go: PathBuf,
    /// Where the ports' sources are.
    pub sources: PathBuf,
    /// The ports to run.
    pub ports: Vec<Port>,
    /// Goroutines and depth per workload (by the testbed workload's name).
    pub sizes: fn(&str, Mode, f64) -> (usize, usize),
    /// Wall time of each run, seconds.
    pub seconds: f64,
    /// GOMAXPROCS.
    pub procs: usize,
    /// GOGC.
    pub gogc: u32,
    /// GODEBUG terms after `gctrace=1`.
    pub godebug: Vec<String>,
    /// Seeds (one run each).
    pub seeds: Vec<u64>,
    /// `--quick` or `--full`.
    pub mode: Mode,
    /// `--scale`.
    pub scale: f64,
}

/// The testbed's standard sizes (ARCHITECTURE.md §6's pause configurations), scaled.
pub fn standard_size(workload: &str, mode: Mode, scale: f64) -> (usize, usize) {
    let (g, d) = match (workload, mode) {
        ("many-shallow", Mode::Quick) => (1_000, 10),
        ("many-shallow", Mode::Full) => (10_000, 10),
        ("copy-heavy", _) => (64, 500),
        ("mixed", _) => (64, 200),
        (_, Mode::Quick) => (16, 300),
        (_, Mode::Full) => (64, 1_000),
    };
    // The shallowest stack each port accepts (copy-heavy's phases need 17 frames).
    let least = if workload == "copy-heavy" { 17 } else { 4 };
    let s = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    (s(g), s(d).max(least))
}

/// `go version`'s version word (`go1.19.8`), or why there is no usable toolchain (bad input:
/// the user must install one).
pub fn go_version(go: &Path) -> Result<String, SuiteError> {
    let none = |why: String| {
        SuiteError::BadInput(format!(
            "no Go toolchain at {} ({why}): install Debian's golang-go, or pass --go PATH (this never fetches or builds one)",
            go.display()
        ))
    };
    let out = Command::new(go)
        .arg("version")
        .output()
        .map_err(|e| none(e.to_string()))?;
    if !out.status.success() {
        return Err(none(format!("`go version` exited with {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("go1") || w.starts_with("devel"))
        .map(str::to_owned)
        .ok_or_else(|| none(format!("`go version` said {:?}", text.trim())))
}

/// Runs every port and seed: the cycles and each workload's pooled pauses.
pub fn run(peer: &GoPeer) -> Result<(Vec<GoCycleRow>, Vec<GoPauseRow>), SuiteError> {
    let version = go_version(&peer.go)?;
    let build_dir = tempfile::tempdir()
        .map_err(|e| SuiteError::Failed(format!("cannot make a build directory: {e}")))?;
    let godebug = std::iter::once("gctrace=1".to_owned())
        .chain(peer.godebug.iter().cloned())
        .collect::<Vec<_>>()
        .join(",");
    let exe = build_dir.path().join(PROGRAM);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&peer.sources)
        .map_err(|e| SuiteError::Failed(format!("{}: {e}", peer.sources.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "go"))
        .collect();
    sources.sort();
    let built = Command::new(&peer.go)
        .arg("build")
        .arg("-o")
        .arg(&exe)
        .args(&sources)
        .output()
        .map_err(|e| SuiteError::Failed(format!("go build {}: {e}", peer.sources.display())))?;
    if !built.status.success() {
        return Err(SuiteError::Failed(format!(
            "go build {} failed: {}",
            peer.sources.display(),
            crate::cli::one_line(&String::from_utf8_lossy(&built.stderr))
        )));
    }
    let mut cycles = Vec::new();
    let mut pauses = Vec::new();
    for port in &peer.ports {
        let (goroutines, depth) = (peer.sizes)(port.workload, peer.mode, peer.scale);
        let first = cycles.len();
        for &seed in &peer.seeds {
            let args = [
                format!("-workload={}", port.workload),
                format!("-goroutines={goroutines}"),
                format!("-depth={depth}"),
                format!("-seconds={}", peer.seconds),
                format!("-seed={seed}"),
            ];
            let command = format!(
                "GOMAXPROCS={} GOGC={} GODEBUG={godebug} ./{PROGRAM} {}  # go build -o {PROGRAM} experiments/go/*.go",
                peer.procs,
                peer.gogc,
                args.join(" "),
            );
            let out = Command::new(&exe)
                .args(&args)
                .env("GOMAXPROCS", peer.procs.to_string())
                .env("GOGC", peer.gogc.to_string())
                .env("GODEBUG", &godebug)
                .output()
                .map_err(|e| SuiteError::Failed(format!("{command}: {e}")))?;
            if !out.status.success() {
                return Err(SuiteError::Failed(format!(
                    "{command} exited with {}: {}",
                    out.status,
                    crate::cli::one_line(&String::from_utf8_lossy(&out.stderr))
                )));
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            // A program that ends at its deadline may cut the runtime's last line short: a
            // final line without its newline is not a cycle's report.
            let complete = match stderr.rfind('\n') {
                Some(end) if end + 1 < stderr.len() => &stderr[..end + 1],
                Some(_) => &stderr[..],
                None => "",
            };
            for line in complete.lines() {
                let Some(parsed) = GcTraceLine::parse(line) else {
                    continue;
                };
                let c = parsed.map_err(SuiteError::Failed)?;
                // The first cycle builds the stacks: left out, as the testbed's warm-up.
                if c.cycle <= 1 || c.forced {
                    continue;
                }
                cycles.push(GoCycleRow {
                    workload: port.workload.to_owned(),
                    goroutines,
                    depth,
                    go_version: version.clone(),
                    procs: peer.procs,
                    gogc: peer.gogc,
                    godebug: godebug.clone(),
                    seed,
                    cycle: c.cycle,
                    at_s: c.at_s,
                    sweep_term_ns: c.sweep_term_ns,
                    mark_ns: c.concurrent_ns,
                    mark_term_ns: c.mark_term_ns,
                    heap_start_mb: c.heap_mb.0,
                    heap_end_mb: c.heap_mb.1,
                    heap_live_mb: c.heap_mb.2,
                    goal_mb: c.goal_mb,
                    command: command.clone(),
                });
            }
        }
        let mine = &cycles[first..];
        if mine.is_empty() {
            return Err(SuiteError::Failed(format!(
                "{}: no cycle after the first in {} s; give it longer (--seconds)",
                port.workload, peer.seconds
            )));
        }
        pauses.push(pause_row(mine));
    }
    Ok((cycles, pauses))
}

/// The pooled pauses of one workload's cycles (non-empty).
fn pause_row(cycles: &[GoCycleRow]) -> GoPauseRow {
    let samples = |f: fn(&GoCycleRow) -> f64| -> Vec<f64> { cycles.iter().map(f).collect() };
    let median = |f| Median::of(&samples(f)).expect("cycles");
    let mark_term = median(|c| c.mark_term_ns);
    let tail = Tail::of(&samples(|c| c.mark_term_ns)).expect("cycles");
    let c = &cycles[0];
    GoPauseRow {
        workload: c.workload.clone(),
        goroutines: c.goroutines,
        depth: c.depth,
        go_version: c.go_version.clone(),
        procs: c.procs,
        godebug: c.godebug.clone(),
        samples: cycles.len(),
        mark_term_ns_p50: mark_term.value,
        mark_term_ns_p50_lo: mark_term.lo,
        mark_term_ns_p50_hi: mark_term.hi,
        mark_term_tail: tail.label(),
        mark_term_ns_tail: tail.value(),
        mark_term_ns_max: samples(|c| c.mark_term_ns).into_iter().fold(0.0, f64::max),
        sweep_term_ns_p50: median(|c| c.sweep_term_ns).value,
        mark_ns_p50: median(|c| c.mark_ns).value,
    }
}

/// Runs `peer` and writes `out/go_peer.csv`, `go_peer_pauses.csv` and their JSON: the summary.
pub fn run_and_write(peer: &GoPeer, out: &Path) -> Result<String, SuiteError> {
    let start = Instant::now();
    let (cycles, pauses) = run(peer)?;
    suite::write_csv(&out.join("go_peer.csv"), &cycles)?;
    suite::write_json(&out.join("go_peer.json"), &cycles)?;
    suite::write_csv(&out.join("go_peer_pauses.csv"), &pauses)?;
    suite::write_json(&out.join("go_peer_pauses.json"), &pauses)?;
    let mut summary = format!(
        "go_peer: {} cycles of {} under {} in {:.1} s -> {}",
        cycles.len(),
        pauses.len(),
        pauses.first().map_or("", |p| p.go_version.as_str()),
        start.elapsed().as_secs_f64(),
        out.join("go_peer.csv").display()
    );
    for p in &pauses {
        summary.push_str(&format!(
            "\n  {:<15} {}×{}: mark termination p50 {:.1} µs [{:.1}, {:.1}], {} {:.1} µs over {} cycles",
            p.workload,
            p.goroutines,
            p.depth,
            p.mark_term_ns_p50 / 1e3,
            p.mark_term_ns_p50_lo / 1e3,
            p.mark_term_ns_p50_hi / 1e3,
            p.mark_term_tail,
            p.mark_term_ns_tail / 1e3,
            p.samples
        ));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gctrace_lines_of_go_1_5_1_7_and_1_19_parse() {
        // Go 1.19: three clock terms, stacks and globals in the line, `(forced)` at the end.
        let l = "gc 4 @0.566s 2%: 0.095+16+0.061 ms clock, 0.19+3.4/2.0/0+0.12 ms cpu, 16->17->1 MB, 17 MB goal, 16 MB stacks, 0 MB globals, 2 P";
        let c = GcTraceLine::parse(l).unwrap().unwrap();
        assert_eq!((c.cycle, c.at_s, c.procs, c.forced), (4, 0.566, 2, false));
        assert_eq!(
            (c.sweep_term_ns, c.concurrent_ns, c.mark_term_ns),
            (95_000.0, 16e6, 61_000.0)
        );
        assert_eq!((c.heap_mb, c.goal_mb), ((16, 17, 1), 17));
        // Go 1.7.
        let l = "gc 12 @3.012s 4%: 0.043+5.0+0.027 ms clock, 0.13+0.26/4.4/6.6+0.083 ms cpu, 4->4->2 MB, 5 MB goal, 4 P (forced)";
        let c = GcTraceLine::parse(l).unwrap().unwrap();
        assert_eq!(
            (c.cycle, c.procs, c.forced, c.mark_term_ns),
            (12, 4, true, 27_000.0)
        );
        // Go 1.5: `#N`, five clock terms (the middle three concurrent).
        let l = "gc #7 @1.5s 3%: 0.017+0.18+0+0.25+0.034 ms clock, 0.034+0.18+0+0.1/0.2/0.3+0.068 ms cpu, 4->5->3 MB, 4 MB goal, 2 P";
        let c = GcTraceLine::parse(l).unwrap().unwrap();
        assert_eq!(
            (c.cycle, c.sweep_term_ns, c.mark_term_ns),
            (7, 17_000.0, 34_000.0)
        );
        assert!((c.concurrent_ns - 430_000.0).abs() < 1e-6);
        // Not a cycle's line, and a cycle's line in a format this parser does not know.
        assert!(GcTraceLine::parse("scvg0: inuse: 4, idle: 0").is_none());
        assert!(GcTraceLine::parse("gc 3 something else").unwrap().is_err());
    }

    #[test]
    fn sizes_are_the_testbeds_scaled() {
        assert_eq!(
            standard_size("deep-oscillate", Mode::Full, 1.0),
            (64, 1_000)
        );
        assert_eq!(standard_size("many-shallow", Mode::Full, 1.0), (10_000, 10));
        assert_eq!(standard_size("deep-unwind", Mode::Full, 1.0), (64, 1_000));
        assert_eq!(standard_size("deep-oscillate", Mode::Quick, 0.01), (1, 4));
        assert_eq!(standard_size("copy-heavy", Mode::Quick, 1.0), (64, 500));
        assert_eq!(standard_size("copy-heavy", Mode::Full, 0.01), (1, 17));
        assert_eq!(standard_size("adversarial", Mode::Full, 1.0), (64, 1_000));
        assert_eq!(standard_size("mixed", Mode::Quick, 1.0), (64, 200));
    }
}
