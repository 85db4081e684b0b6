//! `merge`: joins the shard files that `--shard K/N` runs of an experiment binary wrote into the
//! CSV and JSON files one whole run of it writes. For each experiment found, it checks the shards
//! are every share of one sweep, then runs the experiment's own code (the binary's flags, as the
//! shards recorded them, `--out` replaced) with its runs' outputs taken from the shards
//! (`experiments::shard`). Exit codes as ARCHITECTURE.md §7.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use experiments::suite::SuiteError;
use experiments::{cli, registry, shard};

/// Join the shard files of an experiment's `--shard K/N` runs into its results.
#[derive(Parser, Debug)]
#[command(
    name = "merge",
    version,
    about = "Join the shard files (NAME.shard-K-of-N.json) that `--shard K/N` runs of an experiment binary wrote into exactly the CSV and JSON files one whole run writes.",
    after_help = "Examples:\n  rescan_offsets --full --shard 1/3 --out shards/1   (and 2/3, 3/3: anywhere, in any order)\n  merge --out results shards/1 shards/2 shards/3\n  merge --out results shards/*   (every experiment whose shards are there)\n  merge --out results --experiment soundness shards/*\n\n\
Each SHARD_DIR is searched for NAME.shard-K-of-N.json files (a shard file may also be named\n\
directly). Every experiment found is merged, in name order, unless --experiment picks one; each\n\
needs all N of its shards, run with the same flags (--out, --shard, --jobs and --quiet aside).\n\
Run merge from where the shards ran (the repository root): relative paths in their flags, such as\n\
--traces, are read again.\n\n\
Exit codes: 0 success, 2 bad input (no shard files, a shard missing or given twice, shards of\n\
different sweeps), 3 the merged experiment found a violation (as its whole run would), 1 a file\n\
could not be written."
)]
struct Args {
    /// Where the experiments' CSV and JSON files go.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Merge only this experiment's shards [default: every experiment found].
    #[arg(long, value_name = "NAME")]
    experiment: Option<String>,
    /// Directories holding shard files, or shard files.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = match cli::parse_args("merge") {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Err(e) = cli::check_output_dir("--out", &args.out) {
        cli::say("merge", e);
        return ExitCode::from(2);
    }
    match merge(&args) {
        Ok(summaries) => cli::finish("merge", &summaries.join("\n"), ExitCode::SUCCESS),
        Err(e) => {
            cli::say("merge", &e);
            e.exit_code()
        }
    }
}

/// Merges every experiment found (or `--experiment`'s): their summaries, or the first error.
fn merge(args: &Args) -> Result<Vec<String>, SuiteError> {
    let mut sets = shard::load(&args.shards)?;
    if let Some(name) = &args.experiment {
        let found: Vec<String> = sets.iter().map(|s| s.experiment.clone()).collect();
        sets.retain(|s| &s.experiment == name);
        if sets.is_empty() {
            return Err(SuiteError::BadInput(format!(
                "no shards of {name} (found: {})",
                found.join(", ")
            )));
        }
    }
    let mut summaries = Vec::new();
    for set in sets {
        let experiment = registry::find(&set.experiment).ok_or_else(|| {
            SuiteError::BadInput(format!(
                "{}: shards of an experiment this build does not have ({})",
                set.experiment,
                set.files
                    .first()
                    .map_or_else(String::new, |f| f.display().to_string())
            ))
        })?;
        summaries.push(experiment.merge(set, &args.out)?);
    }
    Ok(summaries)
}
