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
    let (tables, missing) = match paper::tables(&args.results) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("paper_tables: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&args.paper) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("paper_tables: cannot read {}: {e}", args.paper.display());
            return ExitCode::from(2);
        }
    };
    let (new, untouched) = match paper::refresh(&text, &tables) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paper_tables: {}: {e}", args.paper.display());
            return ExitCode::from(2);
        }
    };
    if new != text
        && let Err(e) = cli::write_atomically(&args.paper, |w| w.write_all(new.as_bytes()))
    {
        eprintln!("paper_tables: cannot write {}: {e}", args.paper.display());
        return ExitCode::from(1);
    }
    for name in &missing {
        eprintln!("paper_tables: no CSV for table {name}; its section is left as it was");
    }
    for name in untouched.iter().filter(|n| !missing.contains(n)) {
        eprintln!(
            "paper_tables: {} has a section {name} that no table fills",
            args.paper.display()
        );
    }
    for t in &tables {
        if args.all || t.name == "headline" {
            println!("{}\n{}", t.name, t.markdown);
        }
    }
    println!(
        "{}: {} tables refreshed{}",
        args.paper.display(),
        tables.len()
            - tables
                .iter()
                .filter(|t| untouched.contains(&t.name))
                .count(),
        if new == text { " (no change)" } else { "" }
    );
    ExitCode::SUCCESS
}
