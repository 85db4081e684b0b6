//! Run lists: the one chokepoint every experiment's runs go through, so that a sweep can run
//! whole, be listed (`--plan`), run in shares on many machines (`--shard K/N`) and be joined
//! again (`merge`) into exactly the files a whole run writes.
//!
//! Invariant: an experiment's results are a function of its flags and of the outputs of its run
//! lists, nothing else. Each experiment hands its runs to [`run_list`] in one or more *calls*
//! (numbered 0, 1, … in the order it makes them), each a list of runs that say how to reproduce
//! themselves ([`RunItem`]) and a function that runs one into a serialisable output. A call's
//! run list depends only on the flags, never on another call's outputs, and an experiment makes
//! all its calls before it looks at any of their results (it `?`s them after the last call; an
//! error building a later list goes through [`Session::fail`], so it is not hidden behind an
//! earlier call's [`SuiteError::Partial`]).
//! So whoever produces the outputs — this process, or N shards joined by `merge` — the
//! experiment's own code builds its tables, summaries and files from the same outputs in the same
//! order, and writes the same bytes (up to the figures that time something).
//!
//! The algorithm. [`run_list`] numbers the call and then, by the invocation's mode:
//! * whole (the default): runs every run — the ones that may share the machine in parallel on
//!   `--jobs` threads, then the ones that must run alone ([`RunItem::alone`]: the threaded
//!   engine, timings) one at a time — and returns the outputs in list order;
//! * `--plan`: prints one JSON line per run ([`PlanLine`]) and runs nothing;
//! * `--shard K/N`: runs, in the same order, only the runs whose index `i` has `i % N == K - 1`,
//!   and keeps their outputs, as JSON, with the call's run count and its list of commands (the
//!   sweep's fingerprint);
//! * merge (set by `merge`, never by a flag): takes every output from the shards, after checking
//!   that the shards' commands are the ones this call lists.
//!
//! Under `--plan` and `--shard` a call answers [`SuiteError::Partial`], so the experiment stops
//! after its calls and writes no results; [`finish`] then turns that into success and, for a
//! shard, writes `OUT/NAME.shard-K-of-N.json` atomically ([`ShardFile`]: the format, the
//! experiment, K and N, the binary's arguments without `--shard` and `--out`, and per call its
//! run count, its commands and the outputs it ran by index). A run that fails makes every later
//! call of the invocation answer the same error without running anything, and that error is
//! what the binary reports. `merge` ([`load`]) checks that the shard files of an experiment are
//! one sweep — the same N, every K once, the same arguments and commands, every run's output
//! present once — then parses the recorded arguments with the binary's own flags
//! (`crate::registry`), `--out` replaced, and runs the experiment with its run lists answered
//! from the shards.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli;
use crate::provenance::{self, Provenance};
use crate::suite::{self, Plan, SuiteArgs, SuiteError};

/// The version of the shard-file format [`ShardFile`] writes and [`load`] reads.
pub const FORMAT: u32 = 1;

/// One run of a run list, as `--plan` and shard files describe it.
pub trait RunItem {
    /// The command line that reproduces the run (a `testbed …` line for a testbed run). Where
    /// the experiment does more than the command (repeats it, runs on past its `--cycles`), a
    /// shell comment after the command says so.
    fn command(&self) -> String;

    /// The engine, for a testbed run.
    fn engine(&self) -> Option<&'static str> {
        None
    }

    /// Whether the run must have the machine to itself (the threaded engine, which uses every
    /// CPU; a timing): such runs go one at a time, after the others.
    fn alone(&self) -> bool;

    /// An upper estimate of the memory the run holds at its peak (see
    /// `testbed::estimate_peak_bytes`), which the memory check adds up before a list runs.
    fn peak_bytes(&self) -> u64;
}

/// A run that is one `testbed` plan, with whatever its experiment keeps beside it: it is
/// reproduced by its plan's command and scheduled as its plan is (alone when threaded).
pub trait PlanItem {
    /// The plan.
    fn plan(&self) -> &Plan;
}

impl PlanItem for Plan {
    fn plan(&self) -> &Plan {
        self
    }
}

impl<T: PlanItem> RunItem for T {
    fn command(&self) -> String {
        self.plan().command()
    }

    fn engine(&self) -> Option<&'static str> {
        Some(if self.plan().threaded() {
            "threaded"
        } else {
            "deterministic"
        })
    }

    fn alone(&self) -> bool {
        self.plan().threaded()
    }

    fn peak_bytes(&self) -> u64 {
        suite::plan_peak_bytes(self.plan())
    }
}

/// `--shard K/N`: the K-th of N shares of every run list (1 ≤ K ≤ N).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K, from 1.
    pub k: usize,
    /// N.
    pub n: usize,
}

impl Shard {
    /// Whether run `index` (from 0) is this shard's: `index % N == K - 1`.
    pub fn owns(self, index: usize) -> bool {
        index % self.n == self.k - 1
    }

    /// The shard file of `experiment`: `NAME.shard-K-of-N.json`.
    pub fn file_name(self, experiment: &str) -> String {
        format!("{experiment}.shard-{}-of-{}.json", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not K/N with 1 ≤ K ≤ N (e.g. 2/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// What `--plan` prints for each run: one JSON object per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLine {
    /// The experiment.
    pub experiment: String,
    /// The call of [`run_list`] the run belongs to, from 0.
    pub call: usize,
    /// Its index in that call's list, from 0 (the shard that runs it: `index % N + 1`).
    pub index: usize,
    /// Runs in that call.
    pub total: usize,
    /// `deterministic` or `threaded`, for a testbed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The command that reproduces it.
    pub command: String,
}

/// One call as a shard file records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardCall {
    /// The call's number, from 0.
    pub call: usize,
    /// Its runs, all shards together.
    pub total: usize,
    /// Every run's command, in list order: the sweep's fingerprint, the same in every shard.
    pub commands: Vec<String>,
    /// The outputs of the runs this shard ran.
    pub outputs: Vec<ShardOutput>,
}

/// One run's output in a shard file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardOutput {
    /// The run's index in its call.
    pub index: usize,
    /// What the experiment's run function returned, as JSON.
    pub output: Value,
}

/// `OUT/NAME.shard-K-of-N.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardFile {
    /// [`FORMAT`].
    pub format: u32,
    /// The experiment (its binary's name).
    pub experiment: String,
    /// K.
    pub shard: usize,
    /// N.
    pub of: usize,
    /// The binary's arguments, its name and `--shard`/`--out` left out: what `merge` parses.
    pub argv: Vec<String>,
    /// Every call the experiment made, in order.
    pub calls: Vec<ShardCall>,
    /// The command, commit, compiler and machine of this shard's run (absent in files written
    /// before shards recorded it).
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

/// What an invocation's run lists have done, shared by every clone of its [`SuiteArgs`] (whose
/// `session` it is; not a flag).
#[derive(Clone, Debug, Default)]
pub struct Session(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// The experiment, from the first call.
    experiment: Option<String>,
    /// Calls made so far.
    calls: usize,
    /// Under `--shard`: what each call ran. Under `--plan`: each call's commands, no outputs.
    records: Vec<ShardCall>,
    /// The first failure of a call: every later call answers it.
    error: Option<SuiteError>,
    /// The command line, when a binary's `main` set it.
    argv: Option<Vec<String>>,
    /// The invocation's run, timed from when a binary's `main` (or `merge`) started it.
    run: Option<provenance::Run>,
    /// Under `merge`: the shards the outputs come from.
    merge: Option<ShardSet>,
}

impl Session {
    /// A session whose run lists take their outputs from `shards` (what `merge` runs).
    pub fn merging(shards: ShardSet) -> Session {
        Session(Arc::new(Mutex::new(State {
            merge: Some(shards),
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves nothing half-updated that matters here.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the binary's command line (its name first), for the shard file.
    pub fn set_argv(&self, argv: Vec<String>) {
        self.state().argv = Some(argv);
    }

    /// Starts timing the invocation `run` describes, for its provenance.
    pub fn start_run(&self, run: provenance::Run) {
        self.state().run = Some(run);
    }

    /// The provenance of the invocation so far (`None` if no run was started): for a merge,
    /// with every joined shard's.
    pub fn provenance(&self) -> Option<Provenance> {
        let st = self.state();
        let mut p = st.run.as_ref()?.finish();
        if let Some(set) = &st.merge {
            p.shards = set.provenance.clone();
        }
        Some(p)
    }

    /// The first error a call answered, if any.
    fn error(&self) -> Option<SuiteError> {
        self.state().error.clone()
    }

    /// Records `e`, an error building a run list after an earlier call, so that it, not that
    /// call's [`SuiteError::Partial`], is what a `--plan` or `--shard` invocation reports; gives
    /// it back.
    pub fn fail(&self, e: SuiteError) -> SuiteError {
        if !matches!(e, SuiteError::Partial) {
            self.state().error.get_or_insert_with(|| e.clone());
        }
        e
    }

    /// Checks, after the experiment returned, that it made every call the shards hold.
    pub fn check_merged(&self) -> Result<(), SuiteError> {
        let st = self.state();
        match &st.merge {
            Some(set) if set.calls.len() != st.calls => Err(SuiteError::BadInput(format!(
                "{}: the shards hold {} run list(s) but these flags make {} (shards of another build?)",
                set.experiment,
                set.calls.len(),
                st.calls
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs `runs` for experiment `name` (see the module comment): the outputs in list order, or
/// [`SuiteError::Partial`] under `--plan` and `--shard`.
pub fn run_list<T, O>(
    name: &str,
    args: &SuiteArgs,
    runs: &[T],
    run: impl Fn(&T) -> Result<O, SuiteError> + Sync,
) -> Result<Vec<O>, SuiteError>
where
    T: RunItem + Sync,
    O: Serialize + DeserializeOwned + Send,
{
    let session = &args.session;
    let call = {
        let mut st = session.state();
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        match &st.experiment {
            Some(first) if first != name => {
                return Err(SuiteError::Failed(format!(
                    "run lists of two experiments ({first}, {name}) in one invocation"
                )));
            }
            _ => st.experiment = Some(name.to_owned()),
        }
        st.calls += 1;
        st.calls - 1
    };
    let commands: Vec<String> = runs.iter().map(RunItem::command).collect();
    let merged = session.state().merge.is_some();
    let done = if merged {
        take_merged(session, name, call, &commands)
    } else if args.plan {
        match print_plan(name, call, runs, &commands, args.shard) {
            // A closed stdout (`--plan | head`) ends the listing quietly.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(SuiteError::Failed(format!("cannot write to stdout: {e}")))
            }
            _ => Err(SuiteError::Partial),
        }
    } else if let Some(shard) = args.shard {
        let selected: Vec<usize> = (0..runs.len()).filter(|&i| shard.owns(i)).collect();
        execute(name, args, runs, &selected, &run).and_then(|outputs| {
            let outputs = outputs
                .into_iter()
                .map(|(index, o)| to_json::<O>(name, call, index, &o))
                .collect::<Result<Vec<_>, _>>()?;
            session.state().records.push(ShardCall {
                call,
                total: runs.len(),
                commands,
                outputs,
            });
            Err(SuiteError::Partial)
        })
    } else {
        let all: Vec<usize> = (0..runs.len()).collect();
        execute(name, args, runs, &all, &run).map(|v| v.into_iter().map(|(_, o)| o).collect())
    };
    done.map_err(|e| session.fail(e))
}

/// Runs `selected` of `runs`: the ones that may share the machine in parallel on `--jobs`
/// threads, then the others one at a time; the outputs with their indices, in index order.
fn execute<T, O>(
    name: &str,
    args: &SuiteArgs,
    runs: &[T],
    selected: &[usize],
    run: &(impl Fn(&T) -> Result<O, SuiteError> + Sync),
) -> Result<Vec<(usize, O)>, SuiteError>
where
    T: RunItem + Sync,
    O: Send,
{
    let bar = suite::progress_bar(name, selected.len() as u64, args.quiet);
    let run_one = |&i: &usize| -> Result<(usize, O), SuiteError> {
        bar.set_message(runs[i].command());
        let done = run(&runs[i]);
        bar.inc(1);
        done.map(|o| (i, o))
    };
    let (alone, shared): (Vec<usize>, Vec<usize>) =
        selected.iter().partition(|&&i| runs[i].alone());
    check_memory(runs, &alone, &shared, args.jobs())?;
    let pool = args.job_pool().map_err(SuiteError::Failed)?;
    let mut outputs: Vec<(usize, O)> =
        pool.install(|| shared.par_iter().map(run_one).collect::<Result<_, _>>())?;
    for i in &alone {
        outputs.push(run_one(i)?);
    }
    bar.finish_and_clear();
    outputs.sort_by_key(|&(i, _)| i);
    Ok(outputs)
}

/// Refuses to start when the runs held at once would not fit in memory: the `jobs` largest of
/// the `shared` runs (which run in parallel), or the largest `alone` run (see
/// [`crate::limits`]). The message names the largest run's command.
fn check_memory<T: RunItem>(
    runs: &[T],
    alone: &[usize],
    shared: &[usize],
    jobs: usize,
) -> Result<(), SuiteError> {
    let physical = crate::limits::physical_memory();
    if physical.is_none() {
        return Ok(());
    }
    let peak = |&i: &usize| (runs[i].peak_bytes(), i);
    let mut shared: Vec<(u64, usize)> = shared.iter().map(peak).collect();
    shared.sort_unstable_by(|a, b| b.cmp(a));
    let together = shared.len().min(jobs);
    let bytes: u64 = shared.iter().take(together).map(|&(b, _)| b).sum();
    let largest_alone = alone.iter().map(peak).max();
    let refuse = |e: String, i: usize| {
        SuiteError::BadInput(format!("{e} (largest run: {})", runs[i].command()))
    };
    let remedy = "a smaller --scale or fewer --jobs fit";
    if let Some(&(_, largest)) = shared.first() {
        let what = format!("{together} runs in parallel (--jobs {jobs})");
        crate::limits::check_memory(bytes, physical, what, remedy)
            .map_err(|e| refuse(e, largest))?;
    }
    if let Some((bytes, i)) = largest_alone {
        crate::limits::check_memory(bytes, physical, "a run alone", remedy)
            .map_err(|e| refuse(e, i))?;
    }
    Ok(())
}

/// `o` as JSON, checked to read back: a figure JSON cannot hold (NaN, infinity) is an error here,
/// not in `merge`.
fn to_json<O: Serialize + DeserializeOwned>(
    name: &str,
    call: usize,
    index: usize,
    o: &O,
) -> Result<ShardOutput, SuiteError> {
    let fail = |e: serde_json::Error| {
        SuiteError::Failed(format!(
            "call {call} run {index} of {name}: its output cannot be kept in a shard file ({e}; a NaN or infinite figure?)"
        ))
    };
    let output = serde_json::to_value(o).map_err(fail)?;
    serde_json::from_value::<O>(output.clone()).map_err(fail)?;
    Ok(ShardOutput { index, output })
}

/// Prints call `call`'s runs as [`PlanLine`]s (with `shard`, only its runs); stops at the first
/// write error.
fn print_plan<T: RunItem>(
    name: &str,
    call: usize,
    runs: &[T],
    commands: &[String],
    shard: Option<Shard>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (index, (r, command)) in runs.iter().zip(commands).enumerate() {
        if shard.is_some_and(|s| !s.owns(index)) {
            continue;
        }
        let line = PlanLine {
            experiment: name.to_owned(),
            call,
            index,
            total: runs.len(),
            engine: r.engine().map(str::to_owned),
            command: command.clone(),
        };
        // Serialising strings and integers cannot fail.
        let Ok(json) = serde_json::to_string(&line) else {
            continue;
        };
        writeln!(out, "{json}")?;
    }
    out.flush()
}

/// Call `call`'s outputs from the merged shards, once its commands are checked against
/// `commands`.
fn take_merged<O: DeserializeOwned>(
    session: &Session,
    name: &str,
    call: usize,
    commands: &[String],
) -> Result<Vec<O>, SuiteError> {
    let mut st = session.state();
    let set = st
        .merge
        .as_mut()
        .ok_or_else(|| SuiteError::Failed(format!("no shards of {name} to merge")))?;
    let bad = |msg: String| SuiteError::BadInput(format!("{msg} (shards of {name})"));
    let Some(merged) = set.calls.get_mut(call) else {
        return Err(bad(format!(
            "the shards hold {} run list(s) but these flags make more (shards of another build?)",
            set.calls.len()
        )));
    };
    if merged.commands.len() != commands.len() {
        return Err(bad(format!(
            "call {call}: the shards ran {} runs but these flags list {} (shards of another sweep?)",
            merged.commands.len(),
            commands.len()
        )));
    }
    if let Some(i) = (0..commands.len()).find(|&i| merged.commands[i] != commands[i]) {
        return Err(bad(format!(
            "call {call} run {i}: the shards ran `{}` but these flags build `{}` (shards of another sweep, or a default that depends on the machine: give --procs explicitly)",
            merged.commands[i], commands[i]
        )));
    }
    std::mem::take(&mut merged.outputs)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| {
                bad(format!(
                    "call {call} run {i}: the shard's output does not read as this build's ({e})"
                ))
            })
        })
        .collect()
}

/// Ends an experiment's invocation: a whole run's summary as it is; under `--plan`, success with
/// nothing more to print (the plan was printed); under `--shard`, the shard file written and its
/// one-line summary. A call's failure wins over [`SuiteError::Partial`].
pub fn finish(
    name: &str,
    args: &SuiteArgs,
    result: Result<String, SuiteError>,
) -> Result<String, SuiteError> {
    let partial = args.plan || args.shard.is_some();
    match result {
        Ok(summary) if !partial => {
            if let Some(p) = args.session.provenance() {
                provenance::record(&args.out, name, p)?;
            }
            Ok(summary)
        }
        Ok(_) => Err(SuiteError::Failed(
            "the experiment finished without a run list, so --plan and --shard do not apply".into(),
        )),
        Err(SuiteError::Partial) => {
            if let Some(e) = args.session.error() {
                return Err(e);
            }
            match args.shard {
                Some(shard) if !args.plan => write_shard(name, args, shard),
                _ => Ok(String::new()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Writes `OUT/NAME.shard-K-of-N.json` and says so.
fn write_shard(name: &str, args: &SuiteArgs, shard: Shard) -> Result<String, SuiteError> {
    let st = args.session.state();
    let argv = st.argv.as_deref().ok_or_else(|| {
        SuiteError::BadInput("--shard records the command line, which must be UTF-8".into())
    })?;
    let file = ShardFile {
        format: FORMAT,
        experiment: name.to_owned(),
        shard: shard.k,
        of: shard.n,
        argv: recorded_args(argv.get(1..).unwrap_or_default()),
        calls: st.records.clone(),
        provenance: st.run.as_ref().map(provenance::Run::finish),
    };
    let path = args.out.join(shard.file_name(name));
    cli::write_atomically(&path, |w| {
        serde_json::to_writer(&mut *w, &file).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|e| SuiteError::Failed(format!("cannot write {}: {e}", path.display())))?;
    let ran: usize = file.calls.iter().map(|c| c.outputs.len()).sum();
    let total: usize = file.calls.iter().map(|c| c.total).sum();
    Ok(format!(
        "{name}: shard {shard}: {ran} of {total} runs -> {}; join the {} shards with `merge --out DIR SHARD_DIR…`",
        path.display(),
        shard.n
    ))
}

/// The flags that say where and which share a shard runs, not what the sweep is: left out of the
/// recorded arguments.
const SHARD_ONLY_FLAGS: [&str; 3] = ["--shard", "--out", "--plan"];

/// The flags that change neither a run list nor an output: ignored when shards' arguments are
/// compared.
const NEUTRAL_FLAGS: [&str; 2] = ["--jobs", "--quiet"];

/// `args` without the flags in `drop` (`--flag value` and `--flag=value`; `--plan` and `--quiet`
/// take no value).
fn without(args: &[String], drop: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let flag = a.split_once('=').map_or(a.as_str(), |(f, _)| f);
        if drop.contains(&flag) {
            skip_value = !a.contains('=') && !matches!(flag, "--plan" | "--quiet");
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// The arguments a shard file records: all but `--shard`, `--out` and `--plan`.
pub fn recorded_args(args: &[String]) -> Vec<String> {
    without(args, &SHARD_ONLY_FLAGS)
}

/// The shard files of one experiment, checked to be one sweep and joined: what a merge session
/// answers run lists from.
#[derive(Debug)]
pub struct ShardSet {
    /// The experiment.
    pub experiment: String,
    /// N.
    pub n: usize,
    /// The recorded arguments (shard 1's; the others' differ at most in `--jobs`, `--quiet`).
    pub argv: Vec<String>,
    /// The files, shard 1 first.
    pub files: Vec<PathBuf>,
    /// Every call, every run's output in list order.
    calls: Vec<MergedCall>,
    /// The shards' provenance, shard 1 first (those that recorded one).
    pub provenance: Vec<Provenance>,
}

#[derive(Debug)]
struct MergedCall {
    commands: Vec<String>,
    outputs: Vec<Value>,
}

/// The shard files in `paths` (directories, searched for `*.shard-K-of-N.json`, or files),
/// grouped by experiment in name order, each group checked and joined (see the module comment).
/// No shard file, a missing or doubled shard, shards of different sweeps: bad input.
pub fn load(paths: &[PathBuf]) -> Result<Vec<ShardSet>, SuiteError> {
    let bad = SuiteError::BadInput;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p)
                .map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_shard_file_name(f))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(bad(format!("{}: no such directory or file", p.display())));
        }
    }
    if files.is_empty() {
        return Err(bad(format!(
            "no shard files (NAME.shard-K-of-N.json) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut by_experiment: BTreeMap<String, Vec<(PathBuf, ShardFile)>> = BTreeMap::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let file: ShardFile = serde_json::from_str(&text)
            .map_err(|e| bad(format!("{}: not a shard file: {e}", path.display())))?;
        if file.format != FORMAT {
            return Err(bad(format!(
                "{}: shard format {} (this merge reads {FORMAT})",
                path.display(),
                file.format
            )));
        }
        by_experiment
            .entry(file.experiment.clone())
            .or_default()
            .push((path, file));
    }
    by_experiment
        .into_iter()
        .map(|(name, shards)| join(&name, shards))
        .collect()
}

/// Whether `path` is named like a shard file: `NAME.shard-K-of-N.json`.
fn is_shard_file_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.rsplit_once(".shard-"))
        .and_then(|(_, kn)| kn.split_once("-of-"))
        .is_some_and(|(k, n)| k.parse::<usize>().is_ok() && n.parse::<usize>().is_ok())
}

/// Checks that `shards` (all of experiment `name`) are every shard of one sweep, and joins them.
fn join(name: &str, mut shards: Vec<(PathBuf, ShardFile)>) -> Result<ShardSet, SuiteError> {
    let bad = |msg: String| SuiteError::BadInput(format!("{msg} (shards of {name})"));
    shards.sort_by_key(|(_, f)| (f.of, f.shard));
    let (first_path, first) = &shards[0];
    let n = first.of;
    let show = |p: &Path| p.display().to_string();
    for (path, f) in &shards {
        if f.of != n {
            return Err(bad(format!(
                "shards of different splits: {} is {}/{}, {} is {}/{}",
                show(first_path),
                first.shard,
                n,
                show(path),
                f.shard,
                f.of
            )));
        }
        if f.shard == 0 || f.shard > n {
            return Err(bad(format!(
                "{}: shard {}/{n} is out of range",
                show(path),
                f.shard
            )));
        }
    }
    for pair in shards.windows(2) {
        if pair[0].1.shard == pair[1].1.shard {
            return Err(bad(format!(
                "shard {}/{n} given twice: {} and {}",
                pair[0].1.shard,
                show(&pair[0].0),
                show(&pair[1].0)
            )));
        }
    }
    let have: Vec<usize> = shards.iter().map(|(_, f)| f.shard).collect();
    if let Some(missing) = (1..=n).find(|k| !have.contains(k)) {
        let found: Vec<String> = have.iter().map(|k| format!("{k}/{n}")).collect();
        return Err(bad(format!(
            "shard {missing}/{n} is missing (found {})",
            found.join(", ")
        )));
    }
    let neutral = |f: &ShardFile| without(&f.argv, &NEUTRAL_FLAGS);
    for (path, f) in &shards[1..] {
        if neutral(f) != neutral(first) {
            return Err(bad(format!(
                "{} was run with other flags than {} (`{}` vs `{}`): shards of different sweeps",
                show(path),
                show(first_path),
                f.argv.join(" "),
                first.argv.join(" ")
            )));
        }
        if f.calls.len() != first.calls.len()
            || f.calls
                .iter()
                .zip(&first.calls)
                .any(|(a, b)| a.total != b.total || a.commands != b.commands)
        {
            return Err(bad(format!(
                "{} lists other runs than {}: shards of different sweeps (or builds)",
                show(path),
                show(first_path)
            )));
        }
    }
    let mut calls = Vec::with_capacity(first.calls.len());
    for (c, first_call) in first.calls.iter().enumerate() {
        let mut outputs: Vec<Option<Value>> = vec![None; first_call.total];
        for (path, f) in &shards {
            let shard = Shard { k: f.shard, n };
            let call = &f.calls[c];
            let owned = (0..call.total).filter(|&i| shard.owns(i)).count();
            if call.outputs.len() != owned {
                return Err(bad(format!(
                    "{}: call {c} holds {} outputs, shard {shard} has {owned} runs: an incomplete shard file",
                    show(path),
                    call.outputs.len()
                )));
            }
            for o in &call.outputs {
                let slot = outputs.get_mut(o.index).filter(|_| shard.owns(o.index));
                match slot {
                    Some(slot @ None) => *slot = Some(o.output.clone()),
                    _ => {
                        return Err(bad(format!(
                            "{}: call {c} holds an output for run {}, which is not shard {shard}'s or is there twice",
                            show(path),
                            o.index
                        )));
                    }
                }
            }
        }
        calls.push(MergedCall {
            commands: first_call.commands.clone(),
            // Every slot is filled: each shard held exactly its own runs, each once.
            outputs: outputs.into_iter().map(Option::unwrap_or_default).collect(),
        });
    }
    Ok(ShardSet {
        experiment: name.to_owned(),
        n,
        argv: first.argv.clone(),
        files: shards.iter().map(|(p, _)| p.clone()).collect(),
        calls,
        provenance: shards
            .iter()
            .filter_map(|(_, f)| f.provenance.clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_k_of_n_and_owns_every_nth_run() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { k: 2, n: 3 });
        let owned: Vec<usize> = (0..8).filter(|&i| s.owns(i)).collect();
        assert_eq!(owned, [1, 4, 7]);
        assert_eq!(s.file_name("x"), "x.shard-2-of-3.json");
        for bad in ["0/3", "4/3", "x", "1/0", "1", "/", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn recorded_arguments_leave_out_where_and_which_share() {
        let argv: Vec<String> = [
            "--quick",
            "--shard",
            "2/3",
            "--out",
            "o",
            "--seeds",
            "2",
            "--out=p",
            "--shard=1/2",
            "--plan",
            "--jobs",
            "4",
            "--quiet",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            recorded_args(&argv),
            ["--quick", "--seeds", "2", "--jobs", "4", "--quiet"]
        );
        assert_eq!(
            without(&recorded_args(&argv), &NEUTRAL_FLAGS),
            ["--quick", "--seeds", "2"]
        );
    }

    #[test]
    fn shard_file_names_are_recognised() {
        for good in ["a.shard-1-of-2.json", "dir/x_y.shard-10-of-12.json"] {
            assert!(is_shard_file_name(Path::new(good)), "{good}");
        }
        for bad in [
            "a.json",
            "a.shard-1-of-2.csv",
            "a.shard-x-of-2.json",
            "a.csv",
        ] {
            assert!(!is_shard_file_name(Path::new(bad)), "{bad}");
        }
    }
}
