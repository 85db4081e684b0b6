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
    // The first stdout error; a closed stdout silences the rest of the listing.
    let mut stdout_error: Option<std::io::Error> = None;
    let mut report = |e: &plot::Event| {
        if quiet {
            return;
        }
        if e.is_skip() {
            cli::say("plot", e);
        } else if stdout_error.is_none()
            && let Err(err) = cli::println_out(&e.to_string())
        {
            stdout_error = Some(err);
        }
    };
    let code = match plot::run(&args, &mut report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::say("plot", cli::one_line(&e.to_string()));
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    };
    match stdout_error {
        Some(e) => cli::stdout_failed("plot", &e, code),
        None => code,
    }
}
