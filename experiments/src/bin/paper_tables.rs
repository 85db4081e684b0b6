//! `paper_tables`: regenerates the tables of `paper.md` from the CSVs in `results/`, between
//! `<!-- generated:NAME -->` and `<!-- end generated:NAME -->` markers, and prints the headline
//! table as the suite's summary. Exit codes: 0 success, 2 bad input (a malformed CSV, broken
//! markers, an unreadable paper), 1 the paper could not be written.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use experiments::{cli, paper};

/// Regenerate paper.md's tables from results/ and print the headline figures.
#[derive(Parser, Debug)]
#[command(
    name = "paper_tables",
    version,
    about = "Regenerate paper.md's tables (between <!-- generated:NAME --> markers) from the experiment CSVs and print the headline figures.",
    after_help = "Example:\n  paper_tables --results results --paper paper.md\n\nExit codes: 0 success, 2 bad input, 1 the paper could not be written."
)]
struct Args {
    /// Where the experiment CSVs are.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// The paper whose tables are refreshed.
    #[arg(long, default_value = "paper.md", value_name = "FILE")]
    paper: PathBuf,
    /// Print every table, not only the headline.
    #[arg(long)]
    all: bool,
}

fn main() -> ExitCode {
    let args: Args = match cli::parse_args("paper_tables") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let say = |msg: &dyn std::fmt::Display| cli::say("paper_tables", msg);
    let shown = args.paper.display();
    if let Err(e) = cli::check_output_file("--paper", &args.paper) {
        say(&e);
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(&args.paper) {
        Ok(t) => t,
        Err(e) => {
            say(&format_args!("cannot read --paper {shown}: {e}"));
            return ExitCode::from(2);
        }
    };
    let (tables, missing) = match paper::tables(&args.results) {
        Ok(t) => t,
        Err(e) => {
            say(&e);
            return ExitCode::from(2);
        }
    };
    let placed: Vec<&str> = tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| paper::has_markers(&text, name))
        .collect();
    if placed.is_empty() && !tables.is_empty() {
        say(&format_args!(
            "--paper {shown} has no <!-- generated:NAME --> marker for any of the {} tables ({}): not a paper whose tables this can refresh",
            tables.len(),
            tables
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return ExitCode::from(2);
    }
    let (new, untouched) = match paper::refresh(&text, &tables) {
        Ok(r) => r,
        Err(e) => {
            say(&format_args!("{e} (in --paper {shown})"));
            return ExitCode::from(2);
        }
    };
    if new != text
        && let Err(e) = cli::write_atomically(&args.paper, |w| w.write_all(new.as_bytes()))
    {
        say(&format_args!("cannot write --paper {shown}: {e}"));
        return ExitCode::from(1);
    }
    for name in &missing {
        say(&format_args!(
            "no CSV for table {name}; its section is left as it was"
        ));
    }
    for t in tables.iter().filter(|t| !placed.contains(&t.name.as_str())) {
        say(&format_args!(
            "{shown} has no markers for table {}; it is not placed",
            t.name
        ));
    }
    for name in untouched.iter().filter(|n| !missing.contains(n)) {
        say(&format_args!(
            "{shown} has a section {name} that no table fills"
        ));
    }
    let mut out = String::new();
    for t in &tables {
        if args.all || t.name == "headline" {
            out.push_str(&format!("{}\n{}\n", t.name, t.markdown));
        }
    }
    out.push_str(&format!(
        "{shown}: {} tables refreshed{}",
        placed.len(),
        if new == text { " (no change)" } else { "" }
    ));
    cli::finish("paper_tables", &out, ExitCode::SUCCESS)
}
