//! `go_peer`: the testbed's workloads ported to Go (`experiments/go/`), run under the Go
//! toolchain on PATH (or `--go`) with `GODEBUG=gctrace=1`; every cycle's pauses, as the Go
//! runtime reports them, into `OUT/go_peer.csv` and each workload's pooled pauses into
//! `OUT/go_peer_pauses.csv` (`experiments::go_peer`). It never fetches or builds a Go toolchain.
//! Exit codes as ARCHITECTURE.md §7 (2: bad flags, or no Go toolchain).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use experiments::go_peer::{self, GoPeer, PORTS};
use experiments::suite::{Mode, SuiteError};
use experiments::{cli, limits, provenance};

/// Run the Go ports of the testbed's workloads under a real Go runtime and record its pauses.
#[derive(Parser, Debug)]
#[command(
    name = "go_peer",
    version,
    about = "Run the Go ports of the testbed's workloads (experiments/go/) under a real Go runtime with GODEBUG=gctrace=1, and record every cycle's pauses beside the testbed's.",
    after_help = "Examples:\n  go_peer --quick --out /tmp/peer\n  go_peer --full   (into results/)\n  GOROOT=$HOME/go1.7.4 go_peer --go $HOME/go1.7.4/bin/go --godebug gcstackbarrieroff=1\n  go_peer --go $HOME/go1.7.4/bin/go --godebug gcstackbarrierall=1 --workloads deep-oscillate\n\n\
The toolchain is the user's: Debian's golang-go package installs one (apt-get install golang-go);\n\
a Go 1.5-1.7 toolchain of your own gives the stack-barrier runtime, whose GODEBUG knobs\n\
--godebug passes through. Nothing here fetches or builds a Go toolchain.\n\n\
Exit codes: 0 success, 2 bad input (including no Go toolchain), 1 a build or run failed."
)]
struct Args {
    /// The small run: each workload at the testbed's --quick size for 3 s.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The paper's run (the default): the testbed's --full sizes, 30 s, 3 seeds.
    #[arg(long)]
    full: bool,
    /// Where the CSV and JSON files go.
    #[arg(long, default_value = "results", value_name = "DIR")]
    out: PathBuf,
    /// The `go` command [default: go, on PATH].
    #[arg(long, default_value = "go", value_name = "PATH")]
    go: PathBuf,
    /// GOMAXPROCS.
    #[arg(long, default_value_t = 2)]
    procs: usize,
    /// GOGC.
    #[arg(long, default_value_t = 100)]
    gogc: u32,
    /// More GODEBUG settings after gctrace=1, comma-separated (e.g. gcstackbarrieroff=1 on Go
    /// 1.5–1.7).
    #[arg(long, value_name = "K=V,…", value_delimiter = ',')]
    godebug: Vec<String>,
    /// Seconds each run lasts [default: 3 with --quick, 30 with --full].
    #[arg(long)]
    seconds: Option<f64>,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per workload, seeds SEED, SEED+1, … [default: 1 with --quick, 3 with --full].
    #[arg(long)]
    seeds: Option<u64>,
    /// Only these workloads (comma-separated) [default: every port].
    #[arg(long, value_name = "W,…", value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Multiply every goroutine count and depth by F, in (0, 5].
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    scale: f64,
    /// Where the ports' sources are [default: experiments/go under the current directory, else
    /// under the repository the binary was built in].
    #[arg(long, value_name = "DIR")]
    sources: Option<PathBuf>,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Args = match cli::parse_args("go_peer") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let run = provenance::Run::start(&argv);
    let result = peer(&args).and_then(|peer| {
        let summary = go_peer::run_and_write(&peer, &args.out)?;
        provenance::record(&args.out, "go_peer", run.finish())?;
        Ok(summary)
    });
    match result {
        Ok(summary) => cli::finish("go_peer", &summary, ExitCode::SUCCESS),
        Err(e) => {
            cli::say("go_peer", &e);
            e.exit_code()
        }
    }
}

/// The run `args` describe, or why they are bad.
fn peer(args: &Args) -> Result<GoPeer, SuiteError> {
    let bad = SuiteError::BadInput;
    cli::check_output_dir("--out", &args.out).map_err(bad)?;
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    limits::check_range("--procs", args.procs, 1, limits::MAX_PROCS, "Go's most Ps")
        .map_err(bad)?;
    if args.gogc == 0 {
        return Err(bad("--gogc 0 must be a positive percentage".into()));
    }
    let seeds = args.seeds.unwrap_or(match mode {
        Mode::Quick => 1,
        Mode::Full => 3,
    });
    limits::check_range(
        "--seeds",
        seeds,
        1,
        limits::MAX_SEEDS,
        "the runs go one at a time",
    )
    .map_err(bad)?;
    let seconds = args.seconds.unwrap_or(match mode {
        Mode::Quick => 3.0,
        Mode::Full => 30.0,
    });
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(bad(format!(
            "--seconds {} must lie in (0, 3600]",
            limits::shown(seconds)
        )));
    }
    if !(args.scale > 0.0 && args.scale <= limits::MAX_SCALE) {
        return Err(bad(format!(
            "--scale {} must lie in (0, {}]",
            limits::shown(args.scale),
            limits::MAX_SCALE
        )));
    }
    let ports: Vec<_> = PORTS
        .into_iter()
        .filter(|p| {
            args.workloads
                .as_ref()
                .is_none_or(|ws| ws.iter().any(|w| w == p.workload))
        })
        .collect();
    if let Some(ws) = &args.workloads
        && let Some(unknown) = ws.iter().find(|w| !PORTS.iter().any(|p| p.workload == *w))
    {
        let ported: Vec<&str> = PORTS.iter().map(|p| p.workload).collect();
        return Err(bad(format!(
            "--workloads: {unknown:?} has no Go port (ported: {})",
            ported.join(", ")
        )));
    }
    if let Some(bad_term) = args
        .godebug
        .iter()
        .find(|t| !t.contains('=') || t.contains(' '))
    {
        return Err(bad(format!(
            "--godebug: {bad_term:?} is not a NAME=VALUE setting"
        )));
    }
    let sources = args.sources.clone().unwrap_or_else(|| {
        let here = Path::new("experiments/go");
        if here.is_dir() {
            here.to_owned()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("go")
        }
    });
    if !sources.join(go_peer::MAIN_SOURCE).is_file() {
        return Err(bad(format!(
            "--sources {}: no {} there",
            sources.display(),
            go_peer::MAIN_SOURCE
        )));
    }
    Ok(GoPeer {
        go: args.go.clone(),
        sources,
        ports,
        sizes: go_peer::standard_size,
        seconds,
        procs: args.procs,
        gogc: args.gogc,
        godebug: args.godebug.clone(),
        seeds: (0..seeds).map(|i| args.seed + i).collect(),
        mode,
        scale: args.scale,
    })
}
