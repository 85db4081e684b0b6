//! The experiment suite's machinery: the flags every experiment binary shares, plans of testbed
//! runs, running them, and the CSV and JSON rows they produce (ARCHITECTURE.md §5, §7).
//!
//! Invariant: an experiment is a list of [`Plan`]s, each a `testbed` command line, and every row
//! it writes is one such run: the row carries every resolved option of that run (the testbed's
//! `config`), the seed, and the exact `testbed` command that reproduces it, so any number in
//! `results/` can be re-derived by pasting one command. Plans go through the same
//! [`testbed::resolve`] as the `testbed` binary, so an experiment cannot run a configuration the
//! testbed would reject.
//!
//! The algorithm. [`execute`] resolves every plan first (a bad plan is a bad-input error before
//! anything runs), then runs the deterministic-engine plans in parallel on `--jobs` threads (each
//! is single-threaded and exact, so parallelism changes no counter), then the threaded-engine
//! plans one at a time, alone on the machine, so their pause and MMU figures are not disturbed by
//! other runs. Results keep plan order whatever order the runs finish in. A run that fails stops
//! the experiment and nothing is written: the previous results stay as they were.
//!
//! Every run of every experiment goes through one chokepoint, [`crate::shard::run_list`], which
//! `execute` is a user of: it runs a list whole, or lists it (`--plan`: one JSON line per run,
//! with the command that reproduces it), or runs every N-th run of it into a shard file
//! (`--shard K/N`), or answers it from shard files (the `merge` binary), and the experiment's own
//! code turns the outputs into its files either way (see `shard`'s module comment).

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::registry::ExperimentArgs;
use crate::shard::{self, PlanItem, Session, Shard};
use crate::testbed::{self, Report, Resolved, TestbedArgs};
use crate::{cli, provenance};

/// How big a sweep is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A small sweep for the README's main job (`scripts/run-all.sh --quick`, under 3 minutes).
    Quick,
    /// The paper's sweep: more points, more seeds, more cycles.
    Full,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        })
    }
}

/// Pause samples (reported cycles of threaded runs) per configuration in `--full`: enough for a
/// 99th percentile that is not just the largest few samples, and for a tight interval around
/// the median.
pub const PAUSE_SAMPLES_FULL: u32 = 200;

/// The flags every experiment binary takes.
#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// The small sweep (the README's main job); the default is --full.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// The paper's sweep (the default): more points, seeds and cycles.
    #[arg(long)]
    pub full: bool,
    /// The first seed; runs use SEED, SEED+1, … up to --seeds of them.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds per configuration [default: 1 with --quick, 3 with --full].
    #[arg(long)]
    pub seeds: Option<u64>,
    /// The first schedule seed: every program seed runs with schedule seeds T, T+1, … (see
    /// --sched-seeds), so the program is held fixed while the schedule varies, or the other way
    /// round [default: each run's program seed].
    #[arg(long, value_name = "T")]
    pub sched_seed: Option<u64>,
    /// Schedule seeds per program seed: each configuration runs --seeds × --sched-seeds times
    /// [default: 1].
    #[arg(long, value_name = "M")]
    pub sched_seeds: Option<u64>,
    /// Where the CSV and JSON files go.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Ps for the threaded engine's runs [default: the number of CPUs].
    #[arg(long)]
    pub procs: Option<usize>,
    /// Deterministic runs to run at once [default: the number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Multiply every goroutine count, depth and default heap minimum by F (at least 1 goroutine
    /// and frame, 64 KiB of heap): `--scale 0.01` turns a sweep into a smoke test, `--scale 4`
    /// stresses it; at most 5 (at 5, every --full sweep fits 24 GiB with two jobs).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub scale: f64,
    /// The smallest heap goal of every run, bytes (Go's heapminimum; smaller means more
    /// frequent cycles) [default: the experiment's, 4 MiB for most, times --scale].
    #[arg(long, value_name = "BYTES")]
    pub heap_minimum: Option<u64>,
    /// Run only these of the experiment's workloads (comma-separated names, `replay:TRACE` for
    /// one replayed trace, `replay` for all of them) [default: every workload it runs].
    #[arg(long, value_name = "W,…", value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,
    /// Run these stack-barrier settings in place of the experiment's (comma-separated: a first
    /// offset in bytes, `all` for a barrier on every frame, `off` for the full re-scan), e.g.
    /// `--offsets 512,1024,4096`; for experiments that compare stack-barrier settings [default:
    /// the experiment's].
    #[arg(long, value_name = "O,…", value_delimiter = ',')]
    pub offsets: Option<Vec<String>>,
    /// GOGC of every run: the heap growth, in percent of the live heap, that starts a cycle
    /// [default: the experiment's, 100 for most, as Go's].
    #[arg(long, value_name = "PERCENT")]
    pub gogc: Option<u32>,
    /// The collector's share of CPU while it has work, in [0.001, 1), for every run [default:
    /// the experiment's, Go's 0.25 for most].
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub gc_share: Option<f64>,
    /// GC cycles per run [default: 10 with --quick, 20 with --full; a --full pause run (threaded)
    /// makes enough for 200 pause samples per configuration: 67 a run at 3 seeds].
    #[arg(long)]
    pub cycles: Option<u32>,
    /// Directory of the replay traces (`*.trace`) the replay workload runs [default:
    /// experiments/data under the current directory, else under the repository the binary was
    /// built in].
    #[arg(long, value_name = "DIR")]
    pub traces: Option<PathBuf>,
    /// Run nothing: print every run as one JSON line (experiment, call, index, total, engine,
    /// command: the command that reproduces it) and exit 0; with --shard, only that shard's runs.
    #[arg(long)]
    pub plan: bool,
    /// Run only the K-th of N shares of the runs (run i when i % N = K-1) and write them to
    /// OUT/NAME.shard-K-of-N.json instead of the results; `merge --out DIR SHARD_DIR…` joins the
    /// N shards into exactly the files one whole run writes.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// What this invocation's run lists have done (not a flag: `merge` sets it to answer them
    /// from shard files).
    #[arg(skip)]
    pub session: Session,
}

/// Where the shipped traces live, relative to the repository root.
const TRACES_IN_REPO: &str = "experiments/data";

/// The directory `--traces` names by default: `experiments/data` under the current directory
/// (the repository root, where the README runs every binary), else under the repository the
/// binary was built in (the one it belongs to, wherever it is run from).
pub fn default_traces_dir() -> PathBuf {
    let here = Path::new(TRACES_IN_REPO);
    if here.is_dir() {
        return here.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

impl SuiteArgs {
    /// A thread pool of `--jobs` threads (default: one per CPU); the error says why it could
    /// not start.
    pub(crate) fn job_pool(&self) -> Result<rayon::ThreadPool, String> {
        let jobs = self.jobs();
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build()
            .map_err(|e| format!("cannot start {jobs} threads: {e}"))
    }

    /// The sweep size.
    pub fn mode(&self) -> Mode {
        if self.quick { Mode::Quick } else { Mode::Full }
    }

    /// Checks the flags clap cannot, against [`crate::limits`]: the scale, the cycles, the seed
    /// count, the jobs, the Ps, the heap minimum; and, unless `--plan` (which writes nothing),
    /// that `--out` is, or can become, a directory that takes files.
    pub fn validate(&self) -> Result<(), SuiteError> {
        use crate::limits::{self, check_range};
        let bad = SuiteError::BadInput;
        if !(self.scale > 0.0 && self.scale <= limits::MAX_SCALE) {
            return Err(bad(format!(
                "--scale {} must lie in (0, {}] (at {}, every --full sweep fits 24 GiB with two jobs)",
                limits::shown(self.scale),
                limits::MAX_SCALE,
                limits::MAX_SCALE
            )));
        }
        if self.cycles == Some(0) {
            return Err(bad("--cycles must be at least 1".into()));
        }
        if let Some(n) = self.seeds {
            check_range(
                "--seeds",
                n,
                1,
                limits::MAX_SEEDS,
                "every run is planned before the first starts: shard more seeds across invocations",
            )
            .map_err(bad)?;
        }
        let runs = self
            .seeds
            .unwrap_or(1)
            .saturating_mul(self.sched_seeds.unwrap_or(1));
        if self.sched_seeds.is_some() {
            check_range(
                "--seeds × --sched-seeds",
                runs,
                1,
                limits::MAX_SEEDS,
                "every run is planned before the first starts: shard more seeds across invocations",
            )
            .map_err(bad)?;
        }
        if let Some(n) = self.jobs {
            let why = format!(
                "{} per CPU on this machine's {}: more only holds more runs in memory at once",
                limits::MAX_JOBS_PER_CPU,
                limits::cpus()
            );
            check_range("--jobs", n, 1, limits::max_jobs(), &why).map_err(bad)?;
        }
        if let Some(n) = self.procs {
            check_range("--procs", n, 1, limits::MAX_PROCS, "Go's most Ps").map_err(bad)?;
        }
        if let Some(names) = &self.workloads {
            for name in names {
                let known = crate::workload::workload(name).is_some()
                    || name == "replay"
                    || name.strip_prefix("replay:").is_some_and(|t| !t.is_empty());
                if !known {
                    return Err(bad(format!(
                        "--workloads: unknown workload {name:?} (valid: {}, replay:TRACE)",
                        crate::workload::workload_names()
                    )));
                }
            }
        }
        self.offset_designs().map_err(bad)?;
        if self.gogc == Some(0) {
            return Err(bad("--gogc 0 must be a positive percentage".into()));
        }
        if let Some(share) = self.gc_share
            && !(limits::MIN_GC_SHARE..1.0).contains(&share)
        {
            return Err(bad(format!(
                "--gc-share {} must lie in [{}, 1) (below, the collector's turns are so rare that the heap outgrows its limit before a mark ends)",
                limits::shown(share),
                limits::MIN_GC_SHARE
            )));
        }
        if let Some(n) = self.heap_minimum {
            let why = "half of a run's 1 GiB heap limit";
            check_range("--heap-minimum", n, 1, limits::MAX_HEAP_MINIMUM, why).map_err(bad)?;
        }
        if !self.plan {
            cli::check_output_dir("--out", &self.out).map_err(bad)?;
        }
        Ok(())
    }

    /// The heap minimum of a run whose experiment would give it `default`: `--heap-minimum` if
    /// given, else `default` times `--scale` (a smaller sweep allocates less per cycle, so its
    /// cycles must start sooner), between 64 KiB and [`crate::limits::MAX_HEAP_MINIMUM`].
    pub fn heap_minimum_or(&self, default: u64) -> u64 {
        self.heap_minimum.unwrap_or_else(|| {
            if self.scale == 1.0 {
                return default;
            }
            let scaled = (default as f64 * self.scale).round() as u64;
            scaled.clamp(64 << 10, crate::limits::MAX_HEAP_MINIMUM)
        })
    }

    /// The `--heap-minimum` a plan of the testbed's default takes: none at the defaults (the
    /// testbed's own applies), else [`SuiteArgs::heap_minimum_or`] of it.
    pub(crate) fn heap_minimum_flag(&self) -> Option<u64> {
        (self.heap_minimum.is_some() || self.scale != 1.0)
            .then(|| self.heap_minimum_or(testbed::DEFAULT_HEAP_MINIMUM))
    }

    /// The workloads of `candidates` that `--workloads` names (all without it); bad input when it
    /// names none of them, listing what `experiment` runs.
    pub fn select_workloads(
        &self,
        experiment: &str,
        candidates: Vec<Workload>,
    ) -> Result<Vec<Workload>, SuiteError> {
        let labels: Vec<String> = candidates.iter().map(Workload::label).collect();
        let kept: Vec<Workload> = candidates
            .into_iter()
            .filter(|w| self.wants_workload(&w.label()))
            .collect();
        if kept.is_empty() {
            return Err(self.no_workload_kept(experiment, &labels));
        }
        Ok(kept)
    }

    /// Whether `--workloads` (if given) names the workload labelled `label` (see
    /// [`Workload::label`]).
    pub fn wants_workload(&self, label: &str) -> bool {
        self.workloads.as_ref().is_none_or(|names| {
            names
                .iter()
                .any(|n| n == label || (n == "replay" && label.starts_with("replay:")))
        })
    }

    /// The bad input of a `--workloads` that keeps none of `labels`, `experiment`'s workloads.
    pub fn no_workload_kept(&self, experiment: &str, labels: &[String]) -> SuiteError {
        let mut runs = labels.to_vec();
        runs.dedup();
        SuiteError::BadInput(format!(
            "--workloads {} keeps none of {experiment}'s workloads ({})",
            self.workloads.as_deref().unwrap_or_default().join(","),
            runs.join(", ")
        ))
    }

    /// The designs an experiment that compares stack-barrier settings runs in place of
    /// `defaults`: with `--offsets`, every stack-barrier design of `defaults` (a first offset,
    /// every frame, or the full re-scan) gives way, at the place of the first, to the settings
    /// `--offsets` names, in its order; the other designs (hybrid, Yuasa, …) stay.
    pub fn designs(&self, defaults: &[Design]) -> Vec<Design> {
        let Ok(Some(offsets)) = self.offset_designs() else {
            return defaults.to_vec();
        };
        let is_stkbar = |d: &Design| {
            matches!(
                d,
                Design::FullRescan | Design::Stkbar(_) | Design::StkbarAll
            )
        };
        let mut out = Vec::new();
        for d in defaults {
            if !is_stkbar(d) {
                out.push(*d);
            } else if !out.iter().any(is_stkbar) {
                out.extend(offsets.iter().copied());
            }
        }
        out
    }

    /// The designs `--offsets` names (`None` without it), or why it is bad.
    fn offset_designs(&self) -> Result<Option<Vec<Design>>, String> {
        let Some(offsets) = &self.offsets else {
            return Ok(None);
        };
        let mut designs = Vec::new();
        for o in offsets {
            let d = match o.as_str() {
                "all" => Design::StkbarAll,
                "off" => Design::FullRescan,
                n => match n.parse::<usize>() {
                    Ok(bytes) if bytes > 0 => Design::Stkbar(bytes),
                    _ => {
                        return Err(format!(
                            "--offsets: {o:?} is not a first offset in bytes (> 0), all or off"
                        ));
                    }
                },
            };
            if !designs.contains(&d) {
                designs.push(d);
            }
        }
        Ok(Some(designs))
    }

    /// Bad input if `--offsets` is given to `experiment`, which does not compare stack-barrier
    /// settings.
    pub fn refuse_offsets(&self, experiment: &str) -> Result<(), SuiteError> {
        match self.offsets {
            Some(_) => Err(SuiteError::BadInput(format!(
                "--offsets: {experiment} runs one stack-barrier setting and does not compare them"
            ))),
            None => Ok(()),
        }
    }

    /// `plan` with the settings these flags give every run, each only where the experiment has
    /// not set it itself (what an experiment sets is what it is about: `trace_overhead`'s Ps,
    /// `soundness`'s heap): `--procs` on a threaded run, the heap minimum (see
    /// [`SuiteArgs::heap_minimum_flag`]), `--gogc` and `--gc-share`. Every experiment's plans
    /// pass through here before they run, so a flag reaches every binary the same way.
    pub fn apply(&self, mut plan: Plan) -> Plan {
        if plan.threaded()
            && let Some(procs) = self.procs
        {
            plan = plan.with_default("--procs", procs);
        }
        if let Some(bytes) = self.heap_minimum_flag() {
            plan = plan.with_default("--heap-minimum", bytes);
        }
        if let Some(gogc) = self.gogc {
            plan = plan.with_default("--gogc", gogc);
        }
        if let Some(share) = self.gc_share {
            plan = plan.with_default("--gc-share", share);
        }
        plan
    }

    /// Deterministic runs at once: `--jobs`, default one per CPU.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(crate::limits::cpus).max(1)
    }

    /// `n` goroutines or frames, scaled by `--scale` (at least 1).
    pub fn size(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    /// GC cycles per run.
    pub fn cycles(&self) -> u32 {
        self.cycles.unwrap_or(match self.mode() {
            Mode::Quick => 10,
            Mode::Full => 20,
        })
    }

    /// Reported cycles per pause run (threaded engine): `--cycles` if given; with `--quick`,
    /// [`SuiteArgs::cycles`]; with `--full`, enough for [`PAUSE_SAMPLES_FULL`] samples per
    /// configuration over its runs (every seed pair), and never fewer than `cycles()`.
    pub fn pause_cycles(&self) -> u32 {
        match (self.cycles, self.mode()) {
            (Some(c), _) => c,
            (None, Mode::Quick) => self.cycles(),
            (None, Mode::Full) => {
                let runs = self.seeds().len().max(1) as u32;
                PAUSE_SAMPLES_FULL.div_ceil(runs).max(self.cycles())
            }
        }
    }

    /// The (program, schedule) seeds every configuration runs with: each of `--seeds` program
    /// seeds from `--seed`, crossed with `--sched-seeds` schedule seeds from `--sched-seed`
    /// (from the program seed itself when unset).
    pub fn seeds(&self) -> Vec<Seed> {
        self.seeds_by_default(match self.mode() {
            Mode::Quick => 1,
            Mode::Full => 3,
        })
    }

    /// [`SuiteArgs::seeds`] for an experiment whose default is `n` program seeds.
    pub fn seeds_by_default(&self, n: u64) -> Vec<Seed> {
        let n = self.seeds.unwrap_or(n);
        let m = self.sched_seeds.unwrap_or(1);
        (0..n)
            .map(|i| self.seed.wrapping_add(i))
            .flat_map(|program| {
                let first = self.sched_seed.unwrap_or(program);
                (0..m).map(move |j| Seed {
                    program,
                    schedule: first.wrapping_add(j),
                })
            })
            .collect()
    }

    /// The replay traces in [`SuiteArgs::traces`], by name. Missing directory or no trace: an
    /// error (bad input).
    pub fn trace_files(&self) -> Result<Vec<PathBuf>, SuiteError> {
        let default = default_traces_dir();
        let dir = self.traces.as_ref().unwrap_or(&default);
        let entries = std::fs::read_dir(dir).map_err(|e| {
            SuiteError::BadInput(format!("cannot read --traces {}: {e}", dir.display()))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "trace"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SuiteError::BadInput(format!(
                "--traces {} holds no *.trace file",
                dir.display()
            )));
        }
        Ok(files)
    }
}

/// How results name a workload: its name, or `replay:TRACE` for a replayed trace (`replay` is
/// the trace's name, empty for every other workload).
pub fn workload_label(workload: &str, replay: &str) -> String {
    if replay.is_empty() {
        workload.to_owned()
    } else {
        format!("replay:{replay}")
    }
}

/// A collector design as the suite names it: the write barrier plus the stack-barrier setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Design {
    /// Dijkstra barrier, no stack barriers: Go 1.5's full re-scan.
    FullRescan,
    /// Dijkstra barrier with stack barriers at `first_offset·2^n` (Go 1.6: 1024).
    Stkbar(usize),
    /// Dijkstra barrier with a stack barrier on every frame.
    StkbarAll,
    /// Go 1.8's hybrid barrier: no re-scan.
    Hybrid,
    /// The hybrid barrier with lazy stack scans behind a watermark (beyond Go).
    HybridLazy,
    /// Yuasa's deletion barrier: no re-scan.
    Yuasa,
}

impl Design {
    /// Its testbed flags.
    pub fn flags(self) -> Vec<String> {
        let f = |s: &[&str]| s.iter().map(|&x| x.to_owned()).collect();
        match self {
            Design::FullRescan => f(&["--barrier", "dijkstra", "--stack-barriers", "off"]),
            Design::Stkbar(off) => {
                let mut v = f(&["--barrier", "dijkstra", "--stack-barriers", "on"]);
                v.extend(["--first-offset".to_owned(), off.to_string()]);
                v
            }
            Design::StkbarAll => f(&["--barrier", "dijkstra", "--stack-barriers", "all"]),
            Design::Hybrid => f(&["--barrier", "hybrid"]),
            Design::HybridLazy => f(&["--barrier", "hybrid", "--stack-scan", "lazy"]),
            Design::Yuasa => f(&["--barrier", "yuasa"]),
        }
    }

    /// Its write barrier's name and whether it re-scans stacks at mark termination.
    pub fn write_barrier(self) -> (&'static str, bool) {
        match self {
            Design::FullRescan | Design::Stkbar(_) | Design::StkbarAll => ("dijkstra", true),
            Design::Hybrid | Design::HybridLazy => ("hybrid", false),
            Design::Yuasa => ("yuasa", false),
        }
    }

    /// Its name in results: `full-rescan`, `stkbar-1024`, `stkbar-all`, `hybrid`, `hybrid-lazy`,
    /// `yuasa`.
    pub fn name(self) -> String {
        match self {
            Design::FullRescan => "full-rescan".into(),
            Design::Stkbar(off) => format!("stkbar-{off}"),
            Design::StkbarAll => "stkbar-all".into(),
            Design::Hybrid => "hybrid".into(),
            Design::HybridLazy => "hybrid-lazy".into(),
            Design::Yuasa => "yuasa".into(),
        }
    }

    /// The design [`Design::name`] names.
    pub fn parse(name: &str) -> Option<Design> {
        match name {
            "full-rescan" => Some(Design::FullRescan),
            "stkbar-all" => Some(Design::StkbarAll),
            "hybrid" => Some(Design::Hybrid),
            "hybrid-lazy" => Some(Design::HybridLazy),
            "yuasa" => Some(Design::Yuasa),
            _ => name
                .strip_prefix("stkbar-")
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .map(Design::Stkbar),
        }
    }

    /// The design a resolved testbed configuration runs.
    pub fn of(config: &testbed::ConfigReport) -> Design {
        match (config.barrier, config.stack_barriers, config.first_offset) {
            ("hybrid", ..) if config.stack_scan == "lazy" => Design::HybridLazy,
            ("hybrid", ..) => Design::Hybrid,
            ("yuasa", ..) => Design::Yuasa,
            (_, "all", _) => Design::StkbarAll,
            (_, "on", Some(off)) => Design::Stkbar(off),
            _ => Design::FullRescan,
        }
    }
}

/// The name a run's series takes in tables and figures: its design ([`Design::name`]), marked
/// ` in-pause` when its barriers were removed inside the mark-termination pause
/// (`--barrier-removal in-pause`, Go 1.5/1.6) rather than after the restart (Go 1.7, the default).
pub fn series_name(design: &str, barrier_removal: &str) -> String {
    if barrier_removal == "in-pause" {
        format!("{design} {IN_PAUSE}")
    } else {
        design.to_owned()
    }
}

/// The suffix [`series_name`] gives an in-pause run.
pub const IN_PAUSE: &str = "in-pause";

/// The design and the in-pause mark of a [`series_name`].
pub fn parse_series(series: &str) -> (&str, bool) {
    match series.strip_suffix(IN_PAUSE) {
        Some(d) => (d.trim_end(), true),
        None => (series, false),
    }
}

/// One run of an experiment: `testbed` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The flags, as `testbed` takes them.
    pub flags: Vec<String>,
}

/// A run's seeds: the program's (`--seed`: the workload's choices, injected faults) and the
/// schedule's (`--sched-seed`). A bare `u64` is both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// `--seed`.
    pub program: u64,
    /// `--sched-seed`.
    pub schedule: u64,
}

impl From<u64> for Seed {
    fn from(seed: u64) -> Seed {
        Seed {
            program: seed,
            schedule: seed,
        }
    }
}

impl Plan {
    /// A plan for `workload` with `goroutines` and `depth`, under `design`, with `seed` (a
    /// [`Seed`], or one `u64` for both; `--sched-seed` is named only where it differs).
    pub fn new(workload: &Workload, design: Design, seed: impl Into<Seed>) -> Plan {
        let seed = seed.into();
        let mut flags: Vec<String> = vec![
            "--workload".into(),
            workload.name.clone(),
            "--goroutines".into(),
            workload.goroutines.to_string(),
            "--depth".into(),
            workload.depth.to_string(),
        ];
        if let Some(trace) = &workload.replay {
            flags.extend(["--replay".into(), trace.display().to_string()]);
        }
        flags.extend(design.flags());
        flags.extend(["--seed".into(), seed.program.to_string()]);
        if seed.schedule != seed.program {
            flags.extend(["--sched-seed".into(), seed.schedule.to_string()]);
        }
        Plan { flags }
    }

    /// Adds `--flag value`.
    pub fn with(mut self, flag: &str, value: impl ToString) -> Plan {
        self.flags.extend([flag.to_owned(), value.to_string()]);
        self
    }

    /// Adds `--flag value` unless the plan already sets `--flag`.
    pub fn with_default(self, flag: &str, value: impl ToString) -> Plan {
        if self.has(flag) {
            self
        } else {
            self.with(flag, value)
        }
    }

    /// Whether the plan sets `--flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Whether it runs on the threaded engine.
    pub(crate) fn threaded(&self) -> bool {
        self.flags
            .windows(2)
            .any(|w| w[0] == "--engine" && w[1] == "threaded")
    }

    /// The command line that reproduces this run, paths shown relative to the repository.
    pub fn command(&self) -> String {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|p| format!("{}/", p.display()));
        let mut s = String::from("testbed");
        for f in &self.flags {
            let f = match &repo {
                Some(prefix) => f.strip_prefix(prefix.as_str()).unwrap_or(f),
                None => f,
            };
            s.push(' ');
            // An empty value (`--debug ""`, which overrides STKBAR_DEBUG) stays an argument when
            // the line is pasted into a shell.
            s.push_str(if f.is_empty() { "''" } else { f });
        }
        s
    }
}

/// A workload at a size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The `--workload` name.
    pub name: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// The trace, for `replay`.
    pub replay: Option<PathBuf>,
}

impl Workload {
    /// `name` with `goroutines` and `depth`.
    pub fn new(name: &str, goroutines: usize, depth: usize) -> Workload {
        Workload {
            name: name.to_owned(),
            goroutines,
            depth,
            replay: None,
        }
    }

    /// `replay` of `trace`.
    pub fn replay(trace: &Path, goroutines: usize, depth: usize) -> Workload {
        Workload {
            replay: Some(trace.to_owned()),
            ..Workload::new("replay", goroutines, depth)
        }
    }

    /// What tables and `--workloads` call it: its name, or `replay:TRACE` (the trace file's
    /// stem).
    pub fn label(&self) -> String {
        let stem = self
            .replay
            .as_deref()
            .and_then(Path::file_stem)
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        workload_label(&self.name, &stem)
    }
}

/// Why an experiment stopped; each maps to ARCHITECTURE.md §7's exit codes.
#[derive(Clone, Debug)]
pub enum SuiteError {
    /// Bad flags or a plan the testbed rejects: exit 2.
    BadInput(String),
    /// A checker found a violation in a run: exit 3.
    Violation(String),
    /// A run or a write failed: exit 1.
    Failed(String),
    /// Not an error: under `--plan` or `--shard` a run list was listed or run in part, so the
    /// experiment makes no results ([`shard::finish`] turns it into success: exit 0).
    Partial,
}

impl SuiteError {
    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            SuiteError::BadInput(_) => 2,
            SuiteError::Violation(_) => 3,
            SuiteError::Failed(_) => 1,
            SuiteError::Partial => 0,
        })
    }
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuiteError::BadInput(m) | SuiteError::Violation(m) | SuiteError::Failed(m) => {
                f.write_str(m)
            }
            SuiteError::Partial => {
                f.write_str("the runs were listed or run in part (--plan, --shard)")
            }
        }
    }
}

/// One finished run.
#[derive(Debug)]
pub struct Outcome {
    /// Its plan.
    pub plan: Plan,
    /// Its report.
    pub report: Report,
    /// Wall time of the engine's run.
    pub wall: Duration,
}

/// A plan and its resolution: one run of [`execute`]'s list.
#[derive(Debug)]
struct PlanRun {
    plan: Plan,
    resolved: Resolved,
}

impl PlanItem for PlanRun {
    fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// Runs `plans` for experiment `name` (see the module comment for the order) through
/// [`shard::run_list`], showing a progress bar unless `args.quiet` or stderr is not a terminal;
/// `digest` turns each finished run into the output the experiment keeps (it runs beside the
/// run, and its output is what a shard file holds).
pub fn execute<O>(
    name: &str,
    args: &SuiteArgs,
    plans: Vec<Plan>,
    digest: impl Fn(&Outcome) -> O + Sync,
) -> Result<Vec<O>, SuiteError>
where
    O: Serialize + DeserializeOwned + Send,
{
    args.validate().map_err(|e| args.session.fail(e))?;
    let runs = plans
        .into_iter()
        .map(|plan| {
            let plan = args.apply(plan);
            resolve(&plan).map(|resolved| PlanRun { plan, resolved })
        })
        .collect::<Result<Vec<_>, _>>()
        // A later call's bad plan must not hide behind an earlier call's `--plan` listing.
        .map_err(|e| args.session.fail(e))?;
    shard::run_list(name, args, &runs, |run: &PlanRun| {
        let (report, wall) = testbed::run_timed(&run.resolved).map_err(|e| {
            let msg = run_failed(&e, &run.plan.command());
            if e.is_checker_violation() {
                SuiteError::Violation(msg)
            } else {
                SuiteError::Failed(msg)
            }
        })?;
        Ok(digest(&Outcome {
            plan: run.plan.clone(),
            report,
            wall,
        }))
    })
}

/// An upper estimate of `plan`'s peak memory (`testbed::estimate_peak_bytes`); 0 for a plan
/// that does not resolve, whose error its run reports.
pub(crate) fn plan_peak_bytes(plan: &Plan) -> u64 {
    resolve(plan).map_or(0, |r| testbed::estimate_peak_bytes(&r))
}

/// The message of the run `command` failing with `e`: the reason first, the command after.
pub fn run_failed(e: impl fmt::Display, command: &str) -> String {
    format!("{e} (run: {command})")
}

/// Resolves a plan as the testbed would.
pub(crate) fn resolve(plan: &Plan) -> Result<Resolved, SuiteError> {
    let argv = std::iter::once("testbed".to_owned()).chain(plan.flags.iter().cloned());
    let args = TestbedArgs::try_parse_from(argv).map_err(|e| {
        SuiteError::BadInput(format!(
            "{} (plan: {})",
            cli::one_line(&e.to_string()),
            plan.command()
        ))
    })?;
    testbed::resolve(&args)
        .map_err(|e| SuiteError::BadInput(format!("{e} (plan: {})", plan.command())))
}

/// A progress bar for `len` runs of experiment `name`, hidden with `--quiet` or when stderr is
/// not a terminal.
pub(crate) fn progress_bar(name: &str, len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_prefix(name.to_owned());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// One run as a results row: the core columns of ARCHITECTURE.md §5 first, in its order, then the rest
/// of the counters, the timings, and every resolved option.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRow {
    /// Workload name.
    pub workload: String,
    /// Write-barrier design.
    pub barrier: String,
    /// `on`, `off`, `all`.
    pub stack_barriers: String,
    /// First barrier offset, empty unless `on`.
    pub first_offset: Option<usize>,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth (for `replay`, frames below the trace).
    pub depth: usize,
    /// The program's seed (`--seed`).
    pub seed: u64,
    /// Cycles completed; the counters below are sums over them.
    pub cycles: u64,
    /// Used stack bytes at mark termination.
    pub stack_bytes_used: u64,
    /// What a barrier-free re-scan would have cost.
    pub full_rescan_bytes: u64,
    /// Stack bytes re-scanned.
    pub rescan_bytes: u64,
    /// The least any re-scan could cost.
    pub oracle_rescan_bytes: u64,
    /// `1 - rescan_bytes / full_rescan_bytes`.
    pub rescan_avoided: f64,
    /// Barriers installed.
    pub barriers_installed: u64,
    /// Barriers hit.
    pub barriers_hit: u64,
    /// Stack-top bytes reserved for stkbar arrays at mark termination.
    pub stkbar_reserved_bytes: u64,
    /// Median mark-termination pause.
    pub mark_term_ns_p50: u64,
    /// Longest mark-termination pause.
    pub mark_term_ns_max: u64,
    /// Checkmark failures.
    pub checkmark_failures: u64,
    /// The experiment that ran it.
    pub experiment: String,
    /// `quick` or `full`.
    pub mode: Mode,
    /// Cycles run before the reported ones and left out of every counter.
    pub warmup_cycles: u32,
    /// The schedule's seed (`--sched-seed`; the program's, `seed`, unless set).
    pub sched_seed: u64,
    /// The design ([`Design::name`]).
    pub design: String,
    /// The replayed trace's name (`replay` only).
    pub replay: String,
    /// `deterministic` or `threaded`.
    pub engine: String,
    /// Ps.
    pub procs: usize,
    /// Collector CPU share.
    pub gc_share: f64,
    /// GOGC, empty for off.
    pub gogc: Option<u32>,
    /// Heap minimum.
    pub heap_minimum: u64,
    /// Heap bytes per collector step (deterministic engine).
    pub mark_step_bytes: Option<u64>,
    /// Debug knobs.
    pub debug: String,
    /// `after-restart` or `in-pause`.
    pub barrier_removal: String,
    /// The scheduler's time slice, ms.
    pub time_slice_ms: f64,
    /// Mean operations between blocks in the steady state (0: never).
    pub block_every: Option<u32>,
    /// Parked goroutines the network poller wakes per ms.
    pub wakes_per_ms: Option<f64>,
    /// Goroutines that never block (`many-shallow`).
    pub running: Option<usize>,
    /// Mean operations of a woken goroutine's burst (`many-shallow`).
    pub burst: Option<u32>,
    /// Goroutines re-scanned (summed over cycles; Go 1.7's re-scan list).
    pub rescan_goroutines: u64,
    /// Median re-scan list length.
    pub rescan_goroutines_p50: u64,
    /// Median time to stop the world for mark termination.
    pub stw_stop_ns_p50: u64,
    /// Median re-scan part of the mark-termination pause.
    pub mark_term_rescan_ns_p50: u64,
    /// Median drain part of the mark-termination pause.
    pub mark_term_drain_ns_p50: u64,
    /// Median rest of the mark-termination pause.
    pub mark_term_other_ns_p50: u64,
    /// Median time removing stack barriers (after the restart, or in the pause in `in-pause`).
    pub barrier_removal_ns_p50: u64,
    /// Goroutines the after-restart removal skipped because they were running (summed).
    pub removal_skipped: u64,
    /// Frames re-scanned.
    pub rescan_frames: u64,
    /// Barriers removed.
    pub barriers_removed: u64,
    /// Stacks scanned concurrently.
    pub stacks_scanned: u64,
    /// Heap bytes scanned.
    pub scan_bytes: u64,
    /// Live heap at mark termination.
    pub heap_live_bytes: u64,
    /// Stack moves.
    pub copystacks: u64,
    /// Write-barrier calls.
    pub wb_calls: u64,
    /// Heap bytes scanned by assists.
    pub assist_scan_bytes: u64,
    /// Mutator operations.
    pub mutator_ops: u64,
    /// Mark-phase wall time (summed).
    pub mark_ns: u64,
    /// 99th-percentile mark-termination pause.
    pub mark_term_ns_p99: u64,
    /// Median sweep-termination pause.
    pub sweep_term_ns_p50: u64,
    /// 99th-percentile sweep-termination pause.
    pub sweep_term_ns_p99: u64,
    /// Longest sweep-termination pause.
    pub sweep_term_ns_max: u64,
    /// Re-scans bounded by a barrier (ARCHITECTURE.md §4's bound checked on each).
    pub bounded_rescans: u64,
    /// Of those, outside the bound (0 unless placement is broken).
    pub outside_bound: u64,
    /// Largest re-scan reach over return height past the first offset (≤ 2).
    pub max_reach_ratio: f64,
    /// The content oracle (`content_rescan_bytes`): the least any re-scan could cover given what
    /// changed since the scans; empty for runs without stackshadow's records.
    pub content_rescan_bytes: Option<u64>,
    /// Frames stackshadow verified unchanged among those the re-scans skipped; empty without it.
    pub stackshadow_frames_verified: Option<u64>,
    /// The design's write barrier timed on this machine, ns per barriered store with a cycle in
    /// mark (`barrier_designs` only; see `gc::wbarrier::cost`).
    pub wb_ns_per_store: Option<f64>,
    /// `eager` or `lazy` (`--stack-scan`).
    pub stack_scan: String,
    /// Scans whose stop was timed: the samples of the `scan_stall_ns_` columns.
    pub scan_stalls: u64,
    /// Median time a goroutine was kept from running by the scan of its own stack, over the
    /// run's scans.
    pub scan_stall_ns_p50: u64,
    /// Its 99th percentile (meaningful from 100 scans; see `scan_stalls`).
    pub scan_stall_ns_p99: u64,
    /// Its longest.
    pub scan_stall_ns_max: u64,
    /// Returns and unwinds through a watermark that scanned a frame (lazy scans).
    pub watermark_hits: u64,
    /// Frames goroutines scanned themselves at their watermark.
    pub mutator_scanned_frames: u64,
    /// Frames the markers scanned above watermarks.
    pub marker_lazy_frames: u64,
    /// Wall time of the engine's run.
    pub wall_ns: u64,
    /// Mutator operations per second of wall time.
    pub mutator_ops_per_s: f64,
    /// The `testbed` command that reproduces this row.
    pub command: String,
}

impl RunRow {
    /// The row of `outcome` in `experiment`.
    pub fn new(experiment: &str, mode: Mode, outcome: &Outcome) -> RunRow {
        let Report {
            config: c,
            totals: t,
            rescan_bound: b,
            ..
        } = &outcome.report;
        let s = &t.sum;
        // stackshadow's records were kept: its figures mean something.
        let records = c.debug.contains("stackshadow=1");
        let wall_ns = outcome.wall.as_nanos().min(u128::from(u64::MAX)) as u64;
        RunRow {
            workload: c.workload.to_owned(),
            barrier: c.barrier.to_owned(),
            stack_barriers: c.stack_barriers.to_owned(),
            first_offset: c.first_offset,
            goroutines: c.goroutines,
            depth: c.depth,
            seed: c.seed,
            sched_seed: c.sched_seed,
            cycles: t.cycles,
            stack_bytes_used: s.stack_bytes_used,
            full_rescan_bytes: s.full_rescan_bytes,
            rescan_bytes: s.rescan_bytes,
            oracle_rescan_bytes: s.oracle_rescan_bytes,
            rescan_avoided: t.rescan_avoided,
            barriers_installed: s.barriers_installed,
            barriers_hit: s.barriers_hit,
            stkbar_reserved_bytes: s.stkbar_reserved_bytes,
            mark_term_ns_p50: t.mark_term_ns_p50,
            mark_term_ns_max: t.mark_term_ns_max,
            checkmark_failures: s.checkmark_failures,
            experiment: experiment.to_owned(),
            mode,
            warmup_cycles: c.warmup_cycles,
            design: Design::of(c).name(),
            replay: c
                .replay
                .as_deref()
                .and_then(|p| Path::new(p).file_stem())
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            engine: c.engine.to_owned(),
            procs: c.procs,
            gc_share: c.gc_share,
            gogc: c.gogc,
            heap_minimum: c.heap_minimum,
            mark_step_bytes: c.mark_step_bytes,
            debug: c.debug.clone(),
            barrier_removal: c.barrier_removal.clone(),
            time_slice_ms: c.time_slice_ms,
            block_every: c.blocking.block_every,
            wakes_per_ms: c.blocking.wakes_per_ms,
            running: c.blocking.running,
            burst: c.blocking.burst,
            rescan_goroutines: s.rescan_goroutines,
            rescan_goroutines_p50: t.rescan_goroutines_p50,
            stw_stop_ns_p50: t.stw_stop_ns_p50,
            mark_term_rescan_ns_p50: t.mark_term_rescan_ns_p50,
            mark_term_drain_ns_p50: t.mark_term_drain_ns_p50,
            mark_term_other_ns_p50: t.mark_term_other_ns_p50,
            barrier_removal_ns_p50: t.barrier_removal_ns_p50,
            removal_skipped: s.removal_skipped,
            rescan_frames: s.rescan_frames,
            barriers_removed: s.barriers_removed,
            stacks_scanned: s.stacks_scanned,
            scan_bytes: s.scan_bytes,
            heap_live_bytes: s.heap_live_bytes,
            copystacks: s.copystacks,
            wb_calls: s.wb_calls,
            assist_scan_bytes: s.assist_scan_bytes,
            mutator_ops: t.mutator_ops,
            mark_ns: s.mark_ns,
            mark_term_ns_p99: t.mark_term_ns_p99,
            sweep_term_ns_p50: t.sweep_term_ns_p50,
            sweep_term_ns_p99: t.sweep_term_ns_p99,
            sweep_term_ns_max: t.sweep_term_ns_max,
            bounded_rescans: b.bounded_rescans,
            outside_bound: b.outside_bound,
            max_reach_ratio: b.max_reach_ratio,
            content_rescan_bytes: records.then_some(s.content_rescan_bytes),
            stackshadow_frames_verified: records.then_some(s.stackshadow_frames_verified),
            wb_ns_per_store: None,
            stack_scan: c.stack_scan.to_owned(),
            scan_stalls: s.scan_stalls,
            scan_stall_ns_p50: s.scan_stall_ns_p50,
            scan_stall_ns_p99: s.scan_stall_ns_p99,
            scan_stall_ns_max: s.scan_stall_ns_max,
            watermark_hits: s.watermark_hits,
            mutator_scanned_frames: s.mutator_scanned_frames,
            marker_lazy_frames: s.marker_lazy_frames,
            wall_ns,
            mutator_ops_per_s: if wall_ns == 0 {
                0.0
            } else {
                t.mutator_ops as f64 / (wall_ns as f64 / 1e9)
            },
            command: outcome.plan.command(),
        }
    }
}

/// One point of a run's minimum-mutator-utilisation curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MmuRow {
    /// Workload name.
    pub workload: String,
    /// The replayed trace's name (`replay` only).
    pub replay: String,
    /// The design.
    pub design: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// Engine (always `threaded`: the deterministic engine has no clock).
    pub engine: String,
    /// Ps.
    pub procs: usize,
    /// Window length.
    pub window_ns: u64,
    /// The least fraction of the Ps' time left to the mutator in any window of that length, every
    /// GC interval counted (idle workers' marking included).
    pub mmu: f64,
    /// The same with idle workers' marking counted as the idle time it filled.
    pub mmu_excl_idle: f64,
    /// The same with only the stop-the-world pauses counted.
    pub mmu_pause_only: f64,
    /// The experiment.
    pub experiment: String,
    /// `quick` or `full`.
    pub mode: Mode,
    /// The `testbed` command that reproduces the run.
    pub command: String,
}

impl MmuRow {
    /// The MMU rows of `outcome` (none for a deterministic run).
    pub fn of(experiment: &str, mode: Mode, outcome: &Outcome) -> Vec<MmuRow> {
        let run = RunRow::new(experiment, mode, outcome);
        outcome
            .report
            .mmu
            .iter()
            .map(|p| MmuRow {
                workload: run.workload.clone(),
                replay: run.replay.clone(),
                design: run.design.clone(),
                goroutines: run.goroutines,
                depth: run.depth,
                seed: run.seed,
                sched_seed: run.sched_seed,
                engine: run.engine.clone(),
                procs: run.procs,
                window_ns: p.window_ns,
                mmu: p.mmu,
                mmu_excl_idle: p.mmu_excl_idle,
                mmu_pause_only: p.mmu_pause_only,
                experiment: experiment.to_owned(),
                mode,
                command: run.command.clone(),
            })
            .collect()
    }
}

/// One reported cycle of a threaded run: the raw pause samples behind a run row's p50/p99/max,
/// with the counters of the same cycle (`NAME_cycles.csv`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycleRow {
    /// Workload name.
    pub workload: String,
    /// The replayed trace's name (`replay` only).
    pub replay: String,
    /// The design ([`Design::name`]).
    pub design: String,
    /// `after-restart` (Go 1.7) or `in-pause` (Go 1.5/1.6).
    pub barrier_removal: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed.
    pub sched_seed: u64,
    /// Engine (always `threaded`: the deterministic engine's pauses are its own clock's).
    pub engine: String,
    /// Ps at the run's start.
    pub procs: usize,
    /// GOGC (empty: off).
    pub gogc: Option<u32>,
    /// The heap minimum.
    pub heap_minimum: u64,
    /// The collector's CPU share.
    pub gc_share: f64,
    /// The cycle's number in the run (warm-up cycles included, so the first reported one is
    /// `warmup_cycles + 1`).
    pub cycle: u32,
    /// The mark-termination pause.
    pub mark_term_ns: u64,
    /// Its parts: stopping the world, the re-scans, the final drain, the rest.
    pub stw_stop_ns: u64,
    /// The re-scans' part.
    pub mark_term_rescan_ns: u64,
    /// The final drain's part.
    pub mark_term_drain_ns: u64,
    /// The rest.
    pub mark_term_other_ns: u64,
    /// The sweep-termination pause.
    pub sweep_term_ns: u64,
    /// The concurrent mark phase's wall time.
    pub mark_ns: u64,
    /// The after-restart barrier removal's time.
    pub barrier_removal_ns: u64,
    /// Goroutines on the re-scan list at mark termination.
    pub rescan_goroutines: u64,
    /// Stack bytes re-scanned.
    pub rescan_bytes: u64,
    /// Frames re-scanned.
    pub rescan_frames: u64,
    /// What a barrier-free re-scan would have cost.
    pub full_rescan_bytes: u64,
    /// Stack bytes in use at the end of the cycle.
    pub stack_bytes_used: u64,
    /// Barriers installed.
    pub barriers_installed: u64,
    /// Barriers hit.
    pub barriers_hit: u64,
    /// Stack scans timed (the stall samples).
    pub scan_stalls: u64,
    /// The longest scan stall.
    pub scan_stall_ns_max: u64,
    /// Heap bytes marked live.
    pub heap_live_bytes: u64,
    /// The experiment.
    pub experiment: String,
    /// `quick` or `full`.
    pub mode: Mode,
    /// The `testbed` command that reproduces the run.
    pub command: String,
}

impl CycleRow {
    /// The reported cycles of `outcome`, one row each (none for a deterministic run).
    pub fn of(experiment: &str, mode: Mode, outcome: &Outcome) -> Vec<CycleRow> {
        let run = RunRow::new(experiment, mode, outcome);
        if run.engine != "threaded" {
            return Vec::new();
        }
        outcome
            .report
            .cycles
            .iter()
            .map(|c| CycleRow {
                workload: run.workload.clone(),
                replay: run.replay.clone(),
                design: run.design.clone(),
                barrier_removal: run.barrier_removal.clone(),
                goroutines: run.goroutines,
                depth: run.depth,
                seed: run.seed,
                sched_seed: run.sched_seed,
                engine: run.engine.clone(),
                procs: run.procs,
                gogc: run.gogc,
                heap_minimum: run.heap_minimum,
                gc_share: run.gc_share,
                cycle: c.cycle,
                mark_term_ns: c.mark_term_ns,
                stw_stop_ns: c.stw_stop_ns,
                mark_term_rescan_ns: c.mark_term_rescan_ns,
                mark_term_drain_ns: c.mark_term_drain_ns,
                mark_term_other_ns: c.mark_term_other_ns,
                sweep_term_ns: c.sweep_term_ns,
                mark_ns: c.mark_ns,
                barrier_removal_ns: c.barrier_removal_ns,
                rescan_goroutines: c.rescan_goroutines,
                rescan_bytes: c.rescan_bytes,
                rescan_frames: c.rescan_frames,
                full_rescan_bytes: c.full_rescan_bytes,
                stack_bytes_used: c.stack_bytes_used,
                barriers_installed: c.barriers_installed,
                barriers_hit: c.barriers_hit,
                scan_stalls: c.scan_stalls,
                scan_stall_ns_max: c.scan_stall_ns_max,
                heap_live_bytes: c.heap_live_bytes,
                experiment: experiment.to_owned(),
                mode,
                command: run.command.clone(),
            })
            .collect()
    }
}

/// One configuration's pauses over every reported cycle of its threaded runs (all seeds pooled):
/// medians with 95 % bootstrap intervals, the tail the sample count supports, and the counters
/// of the same cycles beside the deterministic engine's for the configuration
/// (`NAME_pauses.csv`; see [`crate::stats`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PauseRow {
    /// Workload name.
    pub workload: String,
    /// The replayed trace's name (`replay` only).
    pub replay: String,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// The design ([`Design::name`]).
    pub design: String,
    /// `after-restart` or `in-pause`.
    pub barrier_removal: String,
    /// Ps.
    pub procs: usize,
    /// GOGC (empty: off).
    pub gogc: Option<u32>,
    /// The heap minimum.
    pub heap_minimum: u64,
    /// The collector's CPU share.
    pub gc_share: f64,
    /// Threaded runs pooled (one per seed pair).
    pub runs: usize,
    /// Cycles pooled: the samples behind every figure below.
    pub samples: usize,
    /// Median mark-termination pause.
    pub mark_term_ns_p50: f64,
    /// Its 95 % bootstrap interval's lower end.
    pub mark_term_ns_p50_lo: f64,
    /// Its upper end.
    pub mark_term_ns_p50_hi: f64,
    /// `p99` with at least [`crate::stats::P99_MIN_SAMPLES`] samples, else `max`.
    pub mark_term_tail: &'static str,
    /// The mark-termination pause's tail, as `mark_term_tail` says.
    pub mark_term_ns_tail: f64,
    /// The longest mark-termination pause.
    pub mark_term_ns_max: f64,
    /// Median sweep-termination pause.
    pub sweep_term_ns_p50: f64,
    /// Its interval's lower end.
    pub sweep_term_ns_p50_lo: f64,
    /// Its upper end.
    pub sweep_term_ns_p50_hi: f64,
    /// Median time to stop the world for mark termination.
    pub stw_stop_ns_p50: f64,
    /// Median re-scan part of the mark-termination pause.
    pub mark_term_rescan_ns_p50: f64,
    /// Median final-drain part.
    pub mark_term_drain_ns_p50: f64,
    /// Median concurrent mark phase.
    pub mark_ns_p50: f64,
    /// Median re-scan list length of the same cycles.
    pub rescan_goroutines_p50: f64,
    /// Median stack bytes re-scanned per cycle, same cycles.
    pub rescan_bytes_p50: f64,
    /// Median frames re-scanned per cycle, same cycles.
    pub rescan_frames_p50: f64,
    /// Median bytes a barrier-free re-scan would have covered, same cycles.
    pub full_rescan_bytes_p50: f64,
    /// Median barriers hit per cycle, same cycles.
    pub barriers_hit_p50: f64,
    /// The deterministic engine's re-scan list per cycle for this configuration (its counter
    /// runs' mean; empty where the experiment made none).
    pub det_rescan_goroutines_per_cycle: Option<f64>,
    /// The deterministic engine's re-scanned bytes per cycle.
    pub det_rescan_bytes_per_cycle: Option<f64>,
    /// The deterministic engine's full re-scan bytes per cycle.
    pub det_full_rescan_bytes_per_cycle: Option<f64>,
    /// The experiment.
    pub experiment: String,
    /// `quick` or `full`.
    pub mode: Mode,
    /// The configuration: a run's `testbed` command without its seeds (add `--seed N` to
    /// reproduce one of its runs).
    pub configuration: String,
}

impl PauseRow {
    /// One row per configuration of `cycles` — runs whose commands differ only in their seeds
    /// — in first-seen order, the deterministic counters from `runs`' counter rows of the same
    /// workload, size, design, barrier removal, GOGC, heap minimum and GC share.
    pub fn summarise(cycles: &[CycleRow], runs: &[RunRow]) -> Vec<PauseRow> {
        let mut groups: Vec<(String, Vec<&CycleRow>)> = Vec::new();
        for c in cycles {
            let key = without_seeds(&c.command);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(c),
                None => groups.push((key, vec![c])),
            }
        }
        groups
            .iter()
            .map(|(_, group)| PauseRow::of(group, runs))
            .collect()
    }

    /// The row of one configuration's cycles (non-empty).
    fn of(cycles: &[&CycleRow], runs: &[RunRow]) -> PauseRow {
        use crate::stats::{Median, Tail};
        let first = cycles[0];
        let samples =
            |f: fn(&CycleRow) -> u64| -> Vec<f64> { cycles.iter().map(|c| f(c) as f64).collect() };
        let median = |f: fn(&CycleRow) -> u64| -> Median {
            Median::of(&samples(f)).expect("a configuration has cycles")
        };
        let p50 = |f: fn(&CycleRow) -> u64| median(f).value;
        let mark_term = median(|c| c.mark_term_ns);
        let sweep_term = median(|c| c.sweep_term_ns);
        let tail = Tail::of(&samples(|c| c.mark_term_ns)).expect("a configuration has cycles");
        let mut seeds: Vec<(u64, u64)> = cycles.iter().map(|c| (c.seed, c.sched_seed)).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let counter_runs: Vec<&RunRow> = runs
            .iter()
            .filter(|r| {
                r.engine == "deterministic"
                    && (&r.workload, &r.replay, r.goroutines, r.depth, &r.design)
                        == (
                            &first.workload,
                            &first.replay,
                            first.goroutines,
                            first.depth,
                            &first.design,
                        )
                    && r.barrier_removal == first.barrier_removal
                    && (r.gogc, r.heap_minimum) == (first.gogc, first.heap_minimum)
                    && r.gc_share == first.gc_share
            })
            .collect();
        let per_cycle = |f: fn(&RunRow) -> u64| -> Option<f64> {
            let cycles: u64 = counter_runs.iter().map(|r| r.cycles).sum();
            (cycles > 0)
                .then(|| counter_runs.iter().map(|r| f(r)).sum::<u64>() as f64 / cycles as f64)
        };
        PauseRow {
            workload: first.workload.clone(),
            replay: first.replay.clone(),
            goroutines: first.goroutines,
            depth: first.depth,
            design: first.design.clone(),
            barrier_removal: first.barrier_removal.clone(),
            procs: first.procs,
            gogc: first.gogc,
            heap_minimum: first.heap_minimum,
            gc_share: first.gc_share,
            runs: seeds.len(),
            samples: cycles.len(),
            mark_term_ns_p50: mark_term.value,
            mark_term_ns_p50_lo: mark_term.lo,
            mark_term_ns_p50_hi: mark_term.hi,
            mark_term_tail: tail.label(),
            mark_term_ns_tail: tail.value(),
            mark_term_ns_max: samples(|c| c.mark_term_ns).into_iter().fold(0.0, f64::max),
            sweep_term_ns_p50: sweep_term.value,
            sweep_term_ns_p50_lo: sweep_term.lo,
            sweep_term_ns_p50_hi: sweep_term.hi,
            stw_stop_ns_p50: p50(|c| c.stw_stop_ns),
            mark_term_rescan_ns_p50: p50(|c| c.mark_term_rescan_ns),
            mark_term_drain_ns_p50: p50(|c| c.mark_term_drain_ns),
            mark_ns_p50: p50(|c| c.mark_ns),
            rescan_goroutines_p50: p50(|c| c.rescan_goroutines),
            rescan_bytes_p50: p50(|c| c.rescan_bytes),
            rescan_frames_p50: p50(|c| c.rescan_frames),
            full_rescan_bytes_p50: p50(|c| c.full_rescan_bytes),
            barriers_hit_p50: p50(|c| c.barriers_hit),
            det_rescan_goroutines_per_cycle: per_cycle(|r| r.rescan_goroutines),
            det_rescan_bytes_per_cycle: per_cycle(|r| r.rescan_bytes),
            det_full_rescan_bytes_per_cycle: per_cycle(|r| r.full_rescan_bytes),
            experiment: first.experiment.clone(),
            mode: first.mode,
            configuration: without_seeds(&first.command),
        }
    }
}

/// A `testbed` command line without its `--seed` and `--sched-seed` flags.
fn without_seeds(command: &str) -> String {
    let mut words = command.split(' ');
    let mut kept = Vec::new();
    while let Some(w) = words.next() {
        if w == "--seed" || w == "--sched-seed" {
            words.next();
        } else {
            kept.push(w);
        }
    }
    kept.join(" ")
}

/// The JSON file beside each CSV: the experiment, how it was run, and its rows.
#[derive(Debug, Serialize)]
struct JsonResults<'a, R> {
    experiment: &'a str,
    mode: Mode,
    /// The program seed of every run of a configuration, in run order.
    seeds: Vec<u64>,
    /// Their schedule seeds, pairwise.
    sched_seeds: Vec<u64>,
    rows: &'a [R],
}

/// Writes `OUT/NAME.csv` and `OUT/NAME.json`, each atomically.
pub fn write_results<R: Serialize>(
    args: &SuiteArgs,
    name: &str,
    rows: &[R],
) -> Result<(), SuiteError> {
    write_csv(&args.out.join(format!("{name}.csv")), rows)?;
    let json = JsonResults {
        experiment: name,
        mode: args.mode(),
        seeds: args.seeds().iter().map(|s| s.program).collect(),
        sched_seeds: args.seeds().iter().map(|s| s.schedule).collect(),
        rows,
    };
    write_json(&args.out.join(format!("{name}.json")), &json)
}

/// Writes `rows` to the CSV file `path` atomically, a header from the first row's fields.
pub fn write_csv<R: Serialize>(path: &Path, rows: &[R]) -> Result<(), SuiteError> {
    cli::write_atomically(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        for row in rows {
            csv.serialize(row).map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
    .map_err(|e| write_failed(path, &e))
}

/// Writes `value` to the JSON file `path` atomically, pretty-printed.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SuiteError> {
    cli::write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|e| write_failed(path, &e))
}

fn write_failed(path: &Path, e: &dyn fmt::Display) -> SuiteError {
    SuiteError::Failed(format!("cannot write {}: {e}", path.display()))
}

/// The body of an experiment binary: parse the flags, run the experiment (`A::run`), print its
/// summary on stdout — or, under `--plan`, nothing more than the plan, and under `--shard`, where
/// the shard file went ([`shard::finish`]) — and report errors on stderr with ARCHITECTURE.md §7's
/// exit codes.
pub fn main<A: ExperimentArgs>() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut args: A = match cli::parse_args_from(A::NAME, argv.iter().cloned()) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.suite_mut()
        .session
        .start_run(provenance::Run::start(&shown));
    let argv: Option<Vec<String>> = argv.into_iter().map(|a| a.into_string().ok()).collect();
    if let Some(argv) = argv {
        args.suite_mut().session.set_argv(argv);
    }
    // Bad flags and a bad --out are found before any work.
    if let Err(e) = args.suite().validate() {
        cli::say(A::NAME, &e);
        return e.exit_code();
    }
    let result = args.run();
    match shard::finish(A::NAME, args.suite(), result) {
        Ok(summary) => cli::finish(A::NAME, &summary, ExitCode::SUCCESS),
        Err(e) => {
            cli::say(A::NAME, &e);
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_names_round_trip_and_match_the_testbed_flags() {
        for d in [
            Design::FullRescan,
            Design::Stkbar(256),
            Design::Stkbar(1024),
            Design::StkbarAll,
            Design::Hybrid,
            Design::Yuasa,
        ] {
            assert_eq!(Design::parse(&d.name()), Some(d));
            let argv = ["testbed", "--workload", "mixed"]
                .into_iter()
                .map(str::to_owned)
                .chain(d.flags());
            let resolved = testbed::resolve(&TestbedArgs::try_parse_from(argv).unwrap()).unwrap();
            assert_eq!(Design::of(&resolved.report), d, "{d:?}");
        }
        for bad in ["stkbar-0", "stkbar-", "stkbar-x", "dijkstra", ""] {
            assert_eq!(Design::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_failed_run_gives_the_reason_first_and_no_prefix() {
        assert_eq!(
            run_failed("heap limit reached", "testbed --workload mixed"),
            "heap limit reached (run: testbed --workload mixed)"
        );
    }

    #[test]
    fn seeds_cross_schedules_pause_runs_make_enough_cycles_and_plans_name_a_different_schedule() {
        let parse = |extra: &[&str]| {
            let argv = ["x", "--quick"].iter().chain(extra).copied();
            SuiteArgs::augment_args(clap::Command::new("x"))
                .try_get_matches_from(argv)
                .and_then(|m| <SuiteArgs as clap::FromArgMatches>::from_arg_matches(&m))
                .unwrap()
        };
        let pairs = |a: &SuiteArgs| -> Vec<(u64, u64)> {
            a.seeds().iter().map(|s| (s.program, s.schedule)).collect()
        };
        assert_eq!(pairs(&parse(&["--seeds", "2"])), [(1, 1), (2, 2)]);
        assert_eq!(
            pairs(&parse(&[
                "--seed",
                "5",
                "--seeds",
                "2",
                "--sched-seeds",
                "2"
            ])),
            [(5, 5), (5, 6), (6, 6), (6, 7)]
        );
        assert_eq!(
            pairs(&parse(&["--seeds", "2", "--sched-seed", "9"])),
            [(1, 9), (2, 9)]
        );
        let full = |extra: &[&str]| {
            let argv = ["x", "--full"].iter().chain(extra).copied();
            SuiteArgs::augment_args(clap::Command::new("x"))
                .try_get_matches_from(argv)
                .and_then(|m| <SuiteArgs as clap::FromArgMatches>::from_arg_matches(&m))
                .unwrap()
                .pause_cycles()
        };
        assert_eq!(full(&[]), 67, "3 seeds × 67 ≥ 200 samples");
        assert_eq!(full(&["--seeds", "1"]), PAUSE_SAMPLES_FULL);
        assert_eq!(full(&["--seeds", "2", "--sched-seeds", "2"]), 50);
        assert_eq!(
            full(&["--seeds", "100"]),
            20,
            "never fewer than --full's cycles"
        );
        assert_eq!(full(&["--cycles", "5"]), 5);
        assert_eq!(parse(&[]).pause_cycles(), 10);
        let w = Workload::new("mixed", 2, 3);
        let same = Plan::new(&w, Design::Hybrid, Seed::from(4)).command();
        assert!(same.ends_with("--seed 4"), "{same}");
        let other = Plan::new(
            &w,
            Design::Hybrid,
            Seed {
                program: 4,
                schedule: 8,
            },
        )
        .command();
        assert!(other.ends_with("--seed 4 --sched-seed 8"), "{other}");
    }

    #[test]
    fn offsets_replace_the_stack_barrier_designs_in_place_and_workloads_select_by_label() {
        let parse = |extra: &[&str]| {
            let argv = ["x", "--quick"].iter().chain(extra).copied();
            SuiteArgs::augment_args(clap::Command::new("x"))
                .try_get_matches_from(argv)
                .and_then(|m| <SuiteArgs as clap::FromArgMatches>::from_arg_matches(&m))
                .unwrap()
        };
        let defaults = [
            Design::FullRescan,
            Design::Stkbar(1024),
            Design::StkbarAll,
            Design::Hybrid,
            Design::Yuasa,
        ];
        assert_eq!(parse(&[]).designs(&defaults), defaults);
        assert_eq!(
            parse(&["--offsets", "512,all,512"]).designs(&defaults),
            [
                Design::Stkbar(512),
                Design::StkbarAll,
                Design::Hybrid,
                Design::Yuasa
            ]
        );
        assert_eq!(
            parse(&["--offsets", "off,2048"]).designs(&[Design::Hybrid, Design::Stkbar(1024)]),
            [Design::Hybrid, Design::FullRescan, Design::Stkbar(2048)]
        );
        assert!(parse(&["--offsets", "x"]).validate().is_err());
        let a = parse(&["--workloads", "mixed,replay"]);
        let trace = Workload::replay(Path::new("data/lua.trace"), 1, 1);
        assert_eq!(trace.label(), "replay:lua");
        assert!(a.wants_workload("mixed") && a.wants_workload("replay:lua"));
        assert!(!a.wants_workload("deep-unwind"));
        let b = parse(&["--workloads", "replay:lua"]);
        assert!(b.wants_workload("replay:lua") && !b.wants_workload("replay:other"));
        let kept = b
            .select_workloads("e", vec![Workload::new("mixed", 1, 1), trace])
            .unwrap();
        assert_eq!(kept.len(), 1);
        let e = b
            .select_workloads("e", vec![Workload::new("mixed", 1, 1)])
            .unwrap_err();
        assert!(
            matches!(e, SuiteError::BadInput(m) if m.contains("keeps none of e's workloads (mixed)"))
        );
        assert!(parse(&["--workloads", "nope"]).validate().is_err());
    }

    #[test]
    fn a_plan_command_names_every_flag() {
        let w = Workload::new("deep-oscillate", 8, 30);
        let plan = Plan::new(&w, Design::Stkbar(512), 7).with("--cycles", 3);
        assert_eq!(
            plan.command(),
            "testbed --workload deep-oscillate --goroutines 8 --depth 30 --barrier dijkstra \
             --stack-barriers on --first-offset 512 --seed 7 --cycles 3"
        );
    }
}
