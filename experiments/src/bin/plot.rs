//! `plot`: every figure of the report (PNG and SVG) regenerated from the experiment CSVs; the
//! figures and their inputs are described in [`experiments::plot`].
//! Exit codes: 0 success (missing CSVs only skip their figures), 2 bad input (a bad flag, a
//! malformed CSV), 1 a figure could not be drawn or written.

use std::process::ExitCode;

use experiments::cli;
use experiments::plot::{self, PlotArgs};

fn main() -> ExitCode {
    let args: PlotArgs = match cli::parse_args("plot") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let quiet = args.quiet;
    let mut report = |e: &plot::Event| {
        if quiet {
            return;
        }
        if e.is_skip() {
            eprintln!("plot: {e}");
        } else {
            println!("{e}");
        }
    };
    match plot::run(&args, &mut report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot: {}", cli::one_line(&e.to_string()));
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    }
}
