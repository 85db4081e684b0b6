//! Mark-termination pauses on real threads: the ARCHITECTURE.md §6 pause targets.
//!
//! Runs `testbed --engine threaded` for `deep-oscillate`, `deep-unwind` (64 goroutines × depth
//! 10,000) and `many-shallow` (10,000 goroutines × depth 10) under `dijkstra` with stack barriers
//! on (Go's 1024-byte first offset), off and at every frame, and under `hybrid`, and prints the
//! sweep- and mark-termination pause p50 / p99 / max of each, then the two targets: `hybrid`'s
//! mark-termination p50 under 50 µs (proposal 17503), and stack barriers cutting the
//! `deep-oscillate` pause at least tenfold against `off`. Every run has checkmark off (it would
//! run inside the pause) and is otherwise `testbed`'s defaults: 10 cycles, GOGC 100, one P per
//! CPU (or `STKBAR_PROCS`). Run with `cargo bench -p experiments --bench pauses`.

use clap::Parser;
use experiments::testbed::{self, Report, TestbedArgs};

/// One configuration: workload, goroutines, depth, barrier, stack barriers.
type Case = (&'static str, usize, usize, &'static str, &'static str);

const CASES: &[Case] = &[
    ("deep-oscillate", 64, 10_000, "dijkstra", "on"),
    ("deep-oscillate", 64, 10_000, "dijkstra", "off"),
    ("deep-oscillate", 64, 10_000, "dijkstra", "all"),
    ("deep-oscillate", 64, 10_000, "hybrid", "off"),
    ("deep-unwind", 64, 10_000, "dijkstra", "on"),
    ("deep-unwind", 64, 10_000, "dijkstra", "off"),
    ("deep-unwind", 64, 10_000, "dijkstra", "all"),
    ("deep-unwind", 64, 10_000, "hybrid", "off"),
    ("many-shallow", 10_000, 10, "dijkstra", "on"),
    ("many-shallow", 10_000, 10, "dijkstra", "off"),
    ("many-shallow", 10_000, 10, "dijkstra", "all"),
    ("many-shallow", 10_000, 10, "hybrid", "off"),
];

fn run(case: &Case, procs: Option<&str>, cycles: &str) -> Report {
    let &(workload, goroutines, depth, barrier, stack_barriers) = case;
    let (g, d) = (goroutines.to_string(), depth.to_string());
    let mut argv = vec![
        "testbed",
        "--engine",
        "threaded",
        "--workload",
        workload,
        "--goroutines",
        &g,
        "--depth",
        &d,
        "--barrier",
        barrier,
        "--cycles",
        cycles,
    ];
    if barrier == "dijkstra" {
        argv.extend(["--stack-barriers", stack_barriers]);
    }
    if let Some(p) = procs {
        argv.extend(["--procs", p]);
    }
    let args = TestbedArgs::try_parse_from(&argv).expect("valid flags");
    let resolved = testbed::resolve(&args).expect("valid configuration");
    testbed::run(&resolved).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects workloads by substring; `--test`
    // (criterion's smoke mode, which CI uses) runs one small case and measures nothing.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let procs = std::env::var("STKBAR_PROCS").ok();
    if args.iter().any(|a| a == "--test") {
        let r = run(
            &("deep-oscillate", 8, 100, "dijkstra", "on"),
            Some("2"),
            "2",
        );
        assert_eq!(r.totals.cycles, 2);
        println!("pauses: smoke run ok");
        return;
    }
    let filter = args.into_iter().find(|a| !a.starts_with("--"));
    let us = |ns: u64| ns as f64 / 1e3;
    println!(
        "{:<15} {:>6} {:>6} {:<9} {:<4} {:>5} | {:>10} {:>10} {:>10} | {:>9} {:>9}",
        "workload",
        "G",
        "depth",
        "barrier",
        "sb",
        "procs",
        "mt p50 µs",
        "mt p99 µs",
        "mt max µs",
        "st p50 µs",
        "st max µs"
    );
    let mut results = Vec::new();
    for case in CASES {
        if filter.as_deref().is_some_and(|f| !case.0.contains(f)) {
            continue;
        }
        let r = run(case, procs.as_deref(), "10");
        let t = &r.totals;
        println!(
            "{:<15} {:>6} {:>6} {:<9} {:<4} {:>5} | {:>10.1} {:>10.1} {:>10.1} | {:>9.1} {:>9.1}",
            case.0,
            case.1,
            case.2,
            case.3,
            if case.3 == "dijkstra" { case.4 } else { "-" },
            r.config.procs,
            us(t.mark_term_ns_p50),
            us(t.mark_term_ns_p99),
            us(t.mark_term_ns_max),
            us(t.sweep_term_ns_p50),
            us(t.sweep_term_ns_max),
        );
        results.push((case, r));
    }
    let p50 = |w: &str, b: &str, sb: &str| {
        results
            .iter()
            .find(|(c, _)| c.0 == w && c.3 == b && (b != "dijkstra" || c.4 == sb))
            .map(|(_, r)| r.totals.mark_term_ns_p50)
    };
    // ARCHITECTURE.md §6 sets the hybrid target at 64 goroutines × depth 10,000; many-shallow is shown
    // for comparison (its pause carries mark termination's per-goroutine work).
    for w in ["deep-oscillate", "deep-unwind"] {
        if let Some(h) = p50(w, "hybrid", "off") {
            let verdict = if h < 50_000 { "meets" } else { "MISSES" };
            println!(
                "target: {w} hybrid mark-termination p50 {:.1} µs < 50 µs: {verdict}",
                us(h)
            );
        }
    }
    if let (Some(on), Some(off)) = (
        p50("deep-oscillate", "dijkstra", "on"),
        p50("deep-oscillate", "dijkstra", "off"),
    ) {
        let ratio = off as f64 / on.max(1) as f64;
        let verdict = if ratio >= 10.0 { "meets" } else { "MISSES" };
        println!(
            "target: deep-oscillate stack barriers cut the mark-termination p50 {ratio:.1}x against off (>= 10x): {verdict}"
        );
    }
}
