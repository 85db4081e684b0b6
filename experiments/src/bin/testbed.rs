//! `testbed`: one configuration of the simulated collector on one workload (ARCHITECTURE.md §7).
//! Exit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 the run could not
//! complete as configured.

use std::process::ExitCode;

use clap::Parser;
use experiments::testbed::{self, TestbedArgs};

fn main() -> ExitCode {
    let args = match TestbedArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.use_stderr() {
                // --help and --version.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message, up to its usage block, folded onto one line.
            let msg = e.to_string();
            let line = msg
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("testbed: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let resolved = match testbed::resolve(&args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("testbed: {msg}");
            return ExitCode::from(2);
        }
    };
    match testbed::run(&resolved) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("testbed: cannot encode the report: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                println!("{}", testbed::summary(&report));
            }
            match testbed::report_violation(&report) {
                Some(v) => {
                    eprintln!("testbed: {v}");
                    ExitCode::from(3)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::from(if e.is_checker_violation() { 3 } else { 1 })
        }
    }
}
