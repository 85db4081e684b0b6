//! `testbed`: one configuration of the simulated collector on one workload (ARCHITECTURE.md §7).
//! Exit codes: 0 success, 2 bad input, 3 a checker found a violation, 1 the run could not
//! complete as configured. A closed stdout ends it quietly (`experiments::cli`).

use std::process::ExitCode;

use experiments::cli;
use experiments::testbed::{self, TestbedArgs};

fn main() -> ExitCode {
    let args: TestbedArgs = match cli::parse_args("testbed") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let resolved = match testbed::resolve(&args).and_then(|r| {
        testbed::check_fits_memory(&r)?;
        Ok(r)
    }) {
        Ok(r) => r,
        Err(msg) => {
            cli::say("testbed", msg);
            return ExitCode::from(2);
        }
    };
    match testbed::run(&resolved) {
        Ok(report) => {
            let (code, violation) = match testbed::report_violation(&report) {
                Some(v) => (ExitCode::from(3), Some(v)),
                None => (ExitCode::SUCCESS, None),
            };
            let text = if args.json {
                match serde_json::to_string(&report) {
                    Ok(s) => s,
                    Err(e) => {
                        cli::say("testbed", format_args!("cannot encode the report: {e}"));
                        return ExitCode::from(1);
                    }
                }
            } else {
                testbed::summary(&report)
            };
            let code = cli::finish("testbed", &text, code);
            if let Some(v) = violation {
                cli::say("testbed", v);
            }
            code
        }
        Err(e) => {
            cli::say("testbed", &e);
            ExitCode::from(if e.is_checker_violation() { 3 } else { 1 })
        }
    }
}
