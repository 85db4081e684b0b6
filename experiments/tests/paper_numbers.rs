//! `paper.md` against `results/`: its generated tables are exactly what `paper_tables` makes of
//! the committed results, and every number its prose quotes is one of those tables' numbers (at
//! the precision and in the unit the prose gives it) or a setting named below with what it is.
//! When the results are re-run and the prose is not rewritten to them, this fails, naming the
//! line of each number that drifted.

use std::path::Path;

use experiments::paper;
use experiments::prose_numbers::{self, Constant};

/// Numbers the prose may quote that are not results: the setup, Go's constants, and the
/// targets the paper is read against. Each says what it is.
const SETTINGS: &[Constant] = &[
    ("720", "Go's stack guard, bytes (StackGuard on linux/amd64)"),
    (
        "20,000",
        "operations between the profiler experiment's forced cycles",
    ),
    // The previous version's figures, quoted where the paper says what changed (its tables are
    // in the history: `git show 0cc95d8:paper.md`).
    (
        "9.7",
        "previous version: the Dijkstra barrier's ns per store",
    ),
    (
        "18.3",
        "previous version: the hybrid barrier's ns per store",
    ),
    (
        "29.3",
        "previous version: the headline's stack-barrier ratio, ×",
    ),
    (
        "132",
        "previous version: many-shallow's re-scan list at 10,000 G",
    ),
    (
        "28.9",
        "previous version: deep-oscillate's hybrid mutator Mops/s",
    ),
    (
        "42.8",
        "previous version: the hybrid pause at 64 × 10,000, µs",
    ),
    (
        "2775",
        "previous version: the full re-scan's pause at 64 × 10,000, µs",
    ),
    (
        "94.8",
        "previous version: stack barriers' pause at 64 × 10,000, µs",
    ),
    (
        "35.3",
        "previous version: deep-unwind's re-scan avoided at 1 KiB, %",
    ),
    (
        "167",
        "previous version: many-shallow's smallest re-scanning pause at 10,000 G, µs",
    ),
    (
        "177",
        "previous version: many-shallow's largest re-scanning pause at 10,000 G, µs",
    ),
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn committed_paper() -> String {
    std::fs::read_to_string(root().join("paper.md")).expect("paper.md")
}

#[test]
fn the_committed_tables_are_what_paper_tables_makes_of_the_committed_results() {
    let paper = committed_paper();
    let (tables, _missing) = paper::tables(&root().join("results")).expect("tables");
    let (refreshed, _untouched) = paper::refresh(&paper, &tables).expect("markers");
    if refreshed != paper {
        let first = paper
            .lines()
            .zip(refreshed.lines())
            .position(|(a, b)| a != b)
            .map_or(paper.lines().count().min(refreshed.lines().count()), |i| i);
        panic!(
            "paper.md's generated tables differ from results/ at line {}: run `cargo run --release -p experiments --bin paper_tables -- --results results --paper paper.md` (never edit them by hand)\n  paper:   {:?}\n  results: {:?}",
            first + 1,
            paper.lines().nth(first).unwrap_or(""),
            refreshed.lines().nth(first).unwrap_or("")
        );
    }
}

#[test]
fn every_number_the_prose_quotes_is_in_a_generated_table_or_a_named_setting() {
    let paper = committed_paper();
    let unbacked = prose_numbers::unbacked(&paper, SETTINGS);
    let report: Vec<String> = unbacked
        .iter()
        .map(|q| format!("  paper.md:{}: {}", q.line, q.text))
        .collect();
    assert!(
        unbacked.is_empty(),
        "{} numbers in paper.md's prose are in no generated table (quote the table, or name a setting in SETTINGS):\n{}",
        unbacked.len(),
        report.join("\n")
    );
}

/// Every named setting is quoted somewhere: the list holds nothing the paper does not use.
#[test]
fn every_named_setting_is_quoted() {
    let paper = committed_paper();
    let quoted = prose_numbers::quoted(&paper);
    for (text, what) in SETTINGS {
        let value = prose_numbers::value_of(text).expect("a number");
        assert!(
            quoted.iter().any(|q| q.value == value),
            "{text} ({what}) is in SETTINGS but the prose never quotes it"
        );
    }
}
