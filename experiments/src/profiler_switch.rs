//! `profiler_switch`: the sampling profiler under a high sample rate on workloads that switch
//! goroutines, grow and scan their stacks and cross stack barriers as often as they can, under Go
//! 1.7's rules and seed 003's, every traceback checked against the true frames.
//!
//! Invariant: under checked rules (`go1.7`, `seed003`) no sample is malformed — every traceback
//! the handler records, of a goroutine stack or of an M's g0, is exactly that stack's frames
//! (ARCHITECTURE.md §6: 0 in 10^6 samples). The experiment is the evidence: each checked rule set
//! draws at least 10^6 samples (10^5 with `--quick`) from runs with `validate` on, so each
//! traceback is compared with frames kept apart from stack memory, and any mismatch or unwinder
//! error is a checker violation (a report naming the run, its counts and some malformed stacks;
//! exit 3). Runs under `none` (no checks, Go before seed 003) show the malformed tracebacks the
//! rules prevent; `--profile-rules none` runs only those, and then malformed samples are the
//! expected result. Side by side, the rule sets answer the historical question: how much of a
//! profile is `System` under each. Under `go1.7`, the samples that land inside the `stackBarrier`
//! trampoline are unwound (`unwound_mid_barrier`), runtime work on g0 is a g0 traceback, and
//! `System` is only what sits in a switch; under `seed003`, all of those are `System`.
//!
//! The algorithm. Four configurations: `switch-heavy` (seed 003's `TestGoroutineSwitch`, a
//! `Gosched` loop: signals land inside `gogo` and `mcall`), `deep-oscillate` and `deep-unwind` with
//! a stack barrier on every frame and a cycle forced every 20,000 operations (barriers are
//! installed at every scan, hit at every return, passed by every panic unwind: signals land inside
//! each of those operations), and `mixed` under Go's own barrier setting. Each runs under every
//! rule set, on the deterministic engine — a seeded countdown signals each running M every
//! [`PERIOD`] micro-operation boundaries on average, so with one seed the rule sets see exactly the
//! same signals; these runs give the bulk of the samples, exactly reproducible — and on the
//! threaded engine, where a real profiler thread signals a random running P every [`INTERVAL_US`] µs
//! on average while the Ps run on their own threads. A run is one engine: it completes cycles in
//! chunks (re-running `run` on the same engine, whose profile accumulates; `next_chunk` sizes each
//! from the rate so far) until its share of the sample target is reached. A checked rule set's
//! deterministic runs share the target equally, so their total alone meets it; its threaded runs
//! aim at a hundredth each but stop at a wall-time budget ([`threaded_budget`]: the profiler thread
//! signals only as fast as the machine lets the Ps run); `none`'s runs take a tenth
//! (deterministic) or a two-hundredth (threaded) each, unless it runs alone. With `--seeds N` each
//! configuration runs N seeds that split its share. Deterministic runs go in parallel on `--jobs`
//! threads, threaded runs one at a time afterwards, alone on the machine.
//!
//! Outputs: `OUT/profiler_switch.csv`, one row per run (the sample counts of [`gc::SampleCounts`],
//! the engine's signals sent, cycles and wall time); `OUT/profiler_switch.json`, the configuration,
//! the totals per rule set (ARCHITECTURE.md §7) and the rows; and
//! `OUT/profiler_switch_switch-heavy.folded`, the folded stacks of the deterministic `go1.7` run of
//! `switch-heavy` (flame-graph input; `runtime._System` and `runtime._Malformed` mark the samples
//! that were not unwound and those unwound wrongly).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use clap::Parser;
use gc::profile::ProfileRules;
use gc::{ProfileConfig, RuntimeError, SampleCounts};
use serde::{Deserialize, Serialize};

use crate::cli;
use crate::shard::{self, RunItem};
use crate::suite::{self, Design, Mode, Plan, Seed, SuiteArgs, SuiteError, Workload};
use crate::testbed::{self, Resolved};

/// Deterministic engine: mean micro-operation boundaries between two signals to an M.
pub const PERIOD: u64 = 16;
/// Threaded engine: mean microseconds between two signals from the profiler thread.
pub const INTERVAL_US: u64 = 50;
/// Ps of the threaded runs unless `--procs` says otherwise.
pub const THREADED_PROCS: usize = 2;
/// Samples each checked rule set's runs must draw in all: ARCHITECTURE.md §6's 10^6, a tenth of it
/// with `--quick`.
pub const FULL_SAMPLES: u64 = 1_000_000;
/// `--quick`'s sample target.
pub const QUICK_SAMPLES: u64 = 100_000;
/// A cycle is forced after this many mutator operations without one, so barriers are installed,
/// hit and removed all the time.
const FORCE_GC_EVERY: u64 = 20_000;
/// The smallest heap goal: small, so cycles also start from allocation.
const HEAP_MINIMUM: u64 = 256 << 10;
/// Most cycles one call to an engine's `run` completes; the target is checked between calls.
const MAX_CHUNK: u64 = 256;

/// Wall time a threaded run may take before it stops short of its target: the profiler thread
/// signals at the rate the machine allows, and the suite has a time budget.
pub fn threaded_budget(mode: Mode) -> Duration {
    match mode {
        Mode::Quick => Duration::from_secs(1),
        Mode::Full => Duration::from_secs(5),
    }
}

/// Malformed folded stacks a violation report shows.
const REPORT_STACKS: usize = 8;

/// `profiler_switch`: samples across goroutine switches and stack-barrier operations.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "profiler_switch",
    version,
    mut_arg("procs", |a| a.help("Ps for the threaded engine's runs [default: 2]")),
    mut_arg("heap_minimum", |a| a.help("The smallest heap goal of every run, bytes [default: 256 KiB, times --scale]")),
    mut_arg("traces", |a| a.help("Unused: profiler_switch replays no trace")),
    about = "Draw profiling samples at a high rate across goroutine switches, runtime work on g0 and stack-barrier operations, under Go 1.7's sigprof rules and seed 003's; validate every traceback against the true frames and count the malformed ones (ARCHITECTURE.md §6: 0 in 10^6 under each).",
    after_help = "Examples:\n  profiler_switch --quick\n  profiler_switch --json --out /tmp/results\n  profiler_switch --quick --profile-rules go1.7\n  profiler_switch --quick --profile-rules none   (the malformed tracebacks the rules prevent)\n\n\
Runs switch-heavy, deep-oscillate and deep-unwind (a stack barrier on every frame) and mixed, on\n\
the deterministic engine (a signal every 16 micro-operation boundaries of running code on\n\
average) and the threaded one (a profiler thread, a signal to a running P every 50 µs on average,\n\
for at most 5 s a run, 1 s with --quick), under each rule set of --profile-rules (default all\n\
three: go1.7, seed003, none). go1.7 and seed003 each draw at least 10^6 samples (10^5 with\n\
--quick); none, the comparison, a tenth of that. --procs sets the threaded runs' Ps (default 2);\n\
--scale, --heap-minimum, --seeds (which split the samples) and --jobs as for every experiment;\n\
--cycles is the fewest cycles a run completes; --traces is unused.\n\n\
Exit codes: 0 success, 2 bad input, 3 a malformed sample under go1.7 or seed003 (or another\n\
checker violation), 1 a run could not complete."
)]
pub struct ProfilerArgs {
    /// The experiment flags every binary takes.
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Print `{"config": …, "totals": …}` (ARCHITECTURE.md §7; `totals` per rule set) on stdout
    /// instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// The rule sets to run, comma-separated: go1.7 (Go 1.7's sigprof), seed003 (seed 003's
    /// 2013 rule, historical), none (no checks, Go before seed 003: its malformed tracebacks are
    /// expected, not an error) [default: go1.7,seed003,none].
    #[arg(long, value_name = "RULES", value_delimiter = ',', value_parser = parse_rules)]
    pub profile_rules: Vec<ProfileRules>,
    /// For tests: the sample target of each checked rule set (of `none` when it runs alone),
    /// instead of 10^6 (10^5 with --quick).
    #[arg(long, hide = true, value_name = "N")]
    pub samples: Option<u64>,
}

fn parse_rules(s: &str) -> Result<ProfileRules, String> {
    s.parse()
}

/// One configuration: a workload at a size, under a stack-barrier setting.
#[derive(Clone, Copy, Debug)]
struct Setup {
    workload: &'static str,
    goroutines: usize,
    depth: usize,
    design: Design,
}

/// The configurations, in the order results list them.
const SETUPS: [Setup; 4] = [
    Setup {
        workload: "switch-heavy",
        goroutines: 64,
        depth: 8,
        design: Design::Stkbar(1024),
    },
    Setup {
        workload: "deep-oscillate",
        goroutines: 16,
        depth: 200,
        design: Design::StkbarAll,
    },
    Setup {
        workload: "deep-unwind",
        goroutines: 16,
        depth: 200,
        design: Design::StkbarAll,
    },
    Setup {
        workload: "mixed",
        goroutines: 64,
        depth: 100,
        design: Design::Stkbar(1024),
    },
];

/// The workloads whose deterministic run's folded stacks are written: the switch-heavy one only,
/// as the deep workloads' 64-frame stacks are nearly all distinct (14.6 MB of folded lines for
/// `deep-oscillate` at 10^6 samples, too much to keep in `results/`).
const FOLDED: [&str; 1] = ["switch-heavy"];

/// Which engine a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Deterministic,
    Threaded,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Deterministic => "deterministic",
            Engine::Threaded => "threaded",
        }
    }
}

impl RunItem for Cell {
    fn command(&self) -> String {
        let signals = match self.engine {
            Engine::Deterministic => format!("--profile-period {PERIOD}"),
            Engine::Threaded => format!("--profile-interval-us {INTERVAL_US}"),
        };
        format!(
            "{} --profile profile.folded --profile-rules {} {signals}  # profiler_switch runs on past --cycles to {} samples{}, every traceback validated",
            self.plan.command(),
            self.rules.name(),
            self.target,
            match self.engine {
                Engine::Deterministic => "",
                Engine::Threaded => " or its time budget",
            }
        )
    }

    fn engine(&self) -> Option<&'static str> {
        Some(self.engine.name())
    }

    fn alone(&self) -> bool {
        self.engine == Engine::Threaded
    }

    fn peak_bytes(&self) -> u64 {
        crate::testbed::estimate_peak_bytes(&self.resolved)
    }
}

/// One run to make.
#[derive(Debug)]
struct Cell {
    setup: Setup,
    engine: Engine,
    rules: ProfileRules,
    seed: Seed,
    /// Samples to draw before stopping.
    target: u64,
    /// Write this run's folded stacks.
    folded: bool,
    plan: Plan,
    resolved: Resolved,
}

/// One run as a row of `profiler_switch.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRow {
    /// Workload.
    pub workload: String,
    /// `deterministic` or `threaded`.
    pub engine: String,
    /// Ps.
    pub procs: usize,
    /// Goroutines.
    pub goroutines: usize,
    /// Depth.
    pub depth: usize,
    /// `on` (Go's 1024-byte offset), `all` (every frame) or `off`.
    pub stack_barriers: String,
    /// The program's seed.
    pub seed: u64,
    /// The schedule's seed: where the profiling signals land.
    pub sched_seed: u64,
    /// The handler's rules: `go1.7`, `seed003` or `none`.
    pub rules: String,
    /// Deterministic: mean boundaries between two signals to an M; threaded: mean µs between
    /// two signals from the profiler thread.
    pub period_or_interval: u64,
    /// GC cycles completed.
    pub cycles: u64,
    /// Signals handled.
    pub samples: u64,
    /// Samples unwound into a goroutine traceback.
    pub user_samples: u64,
    /// Samples unwound into a g0 traceback.
    pub g0_samples: u64,
    /// Samples recorded as `System`.
    pub system_samples: u64,
    /// Samples taken inside a switch (`gogo`, `mcall`, `morestack`, `systemstack`).
    pub samples_mid_switch: u64,
    /// Samples taken inside a stack-barrier install, hit or removal.
    pub samples_mid_barrier: u64,
    /// Samples taken inside a stack move.
    pub samples_mid_copystack: u64,
    /// Samples taken while the M was on g0.
    pub samples_on_g0: u64,
    /// Tracebacks that failed or differ from the true frames.
    pub malformed: u64,
    /// Of those, taken inside a switch.
    pub malformed_mid_switch: u64,
    /// Of those, taken inside a stack-barrier operation.
    pub malformed_mid_barrier: u64,
    /// Tracebacks compared with the true frames.
    pub validated: u64,
    /// System samples because g was g0 (`seed003`, `none`).
    pub refused_g0: u64,
    /// System samples because SP was outside g's stack.
    pub refused_sp: u64,
    /// System samples because PC was inside a function that sets SP (`seed003`: `gogo` only).
    pub refused_sets_sp: u64,
    /// System samples because PC was inside `stackBarrier` (`seed003`).
    pub refused_stack_barrier_pc: u64,
    /// System samples because the stack-barrier lock was held.
    pub refused_stkbar_lock: u64,
    /// Signals the threaded engine's profiler thread sent (0 for the deterministic engine).
    pub signals_sent: u64,
    /// Wall time of the run, the workload's build excluded.
    pub wall_ms: f64,
    /// Samples taken inside a switch that were unwound (0 under checked rules).
    pub unwound_mid_switch: u64,
    /// Samples taken inside a stack-barrier operation whose goroutine stack was unwound (the
    /// mid-hit samples, under `go1.7`).
    pub unwound_mid_barrier: u64,
    /// The samples the run was to draw.
    pub sample_target: u64,
    /// Mutator operations.
    pub mutator_ops: u64,
    /// Stack barriers installed, over the run's cycles.
    pub barriers_installed: u64,
    /// Stack barriers hit.
    pub barriers_hit: u64,
    /// Stack barriers removed.
    pub barriers_removed: u64,
}

/// A finished run: what a shard file keeps of it.
#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    /// Its row, which holds its sample counts.
    row: RunRow,
    /// The folded stacks, for the runs in [`FOLDED`].
    folded: Option<String>,
    /// The malformed stacks, folded (`runtime._Malformed;frame;… count`), most frequent first.
    malformed_stacks: Vec<String>,
}

impl Outcome {
    /// The run's rule set.
    fn rules(&self) -> Option<ProfileRules> {
        self.row.rules.parse().ok()
    }

    /// Whether its rule set is checked (`go1.7`, `seed003`).
    fn checked(&self) -> bool {
        self.rules().is_some_and(ProfileRules::checked)
    }

    /// Its sample counts, from its row.
    fn counts(&self) -> SampleCounts {
        let r = &self.row;
        SampleCounts {
            samples: r.samples,
            user_samples: r.user_samples,
            g0_samples: r.g0_samples,
            system_samples: r.system_samples,
            samples_mid_switch: r.samples_mid_switch,
            samples_mid_barrier: r.samples_mid_barrier,
            samples_mid_copystack: r.samples_mid_copystack,
            samples_on_g0: r.samples_on_g0,
            malformed: r.malformed,
            malformed_mid_switch: r.malformed_mid_switch,
            malformed_mid_barrier: r.malformed_mid_barrier,
            validated: r.validated,
            unwound_mid_switch: r.unwound_mid_switch,
            unwound_mid_barrier: r.unwound_mid_barrier,
            refused_g0: r.refused_g0,
            refused_sp: r.refused_sp,
            refused_sets_sp: r.refused_sets_sp,
            refused_stack_barrier_pc: r.refused_stack_barrier_pc,
            refused_stkbar_lock: r.refused_stkbar_lock,
        }
    }
}

/// ARCHITECTURE.md §7's `totals`: the sample counts summed over the runs, and what they came from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// The counts.
    #[serde(flatten)]
    pub counts: SampleCounts,
    /// Runs summed.
    pub runs: u64,
    /// GC cycles over those runs.
    pub cycles: u64,
    /// Signals the threaded runs' profiler threads sent.
    pub signals_sent: u64,
    /// Malformed samples per 10^6 samples.
    pub malformed_per_million: f64,
    /// `System` samples as a share of all samples.
    pub system_share: f64,
}

impl Totals {
    fn of<'a>(rows: impl IntoIterator<Item = &'a Outcome>) -> Totals {
        let mut t = Totals::default();
        for o in rows {
            t.counts.add(&o.counts());
            t.runs += 1;
            t.cycles += o.row.cycles;
            t.signals_sent += o.row.signals_sent;
        }
        let per_sample = |n: u64| {
            if t.counts.samples == 0 {
                0.0
            } else {
                n as f64 / t.counts.samples as f64
            }
        };
        t.malformed_per_million = 1e6 * per_sample(t.counts.malformed);
        t.system_share = per_sample(t.counts.system_samples);
        t
    }
}

/// ARCHITECTURE.md §7's `totals` of this experiment: one [`Totals`] per rule set that ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuleTotals {
    /// Go 1.7's rules.
    #[serde(rename = "go1.7", skip_serializing_if = "Option::is_none")]
    pub go17: Option<Totals>,
    /// Seed 003's rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed003: Option<Totals>,
    /// No checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub none: Option<Totals>,
}

impl RuleTotals {
    fn of(outcomes: &[Outcome], rules: &[ProfileRules]) -> RuleTotals {
        let of = |r: ProfileRules| {
            rules
                .contains(&r)
                .then(|| Totals::of(outcomes.iter().filter(|o| o.row.rules == r.name())))
        };
        RuleTotals {
            go17: of(ProfileRules::Go17),
            seed003: of(ProfileRules::Seed003),
            none: of(ProfileRules::None),
        }
    }
}

/// One configuration as the JSON `config` lists it.
#[derive(Clone, Debug, Serialize)]
struct SetupReport {
    workload: &'static str,
    goroutines: usize,
    depth: usize,
    stack_barriers: &'static str,
    design: String,
}

/// ARCHITECTURE.md §7's `config`.
#[derive(Clone, Debug, Serialize)]
struct ConfigReport {
    experiment: &'static str,
    mode: Mode,
    /// Each configuration's (program, schedule) seeds.
    seeds: Vec<Seed>,
    /// The rule sets that ran.
    rules: Vec<&'static str>,
    /// Samples each checked rule set (or `none` alone) had to draw at least.
    sample_target: u64,
    period: u64,
    interval_us: u64,
    deterministic_procs: usize,
    threaded_procs: usize,
    /// Wall time a threaded run may take (per seed) before it stops short of its target.
    threaded_seconds: f64,
    max_frames: usize,
    validate: bool,
    force_gc_every: u64,
    heap_minimum: u64,
    setups: Vec<SetupReport>,
}

/// What `--json` prints: ARCHITECTURE.md §7's object.
#[derive(Debug, Serialize)]
struct Report<'a> {
    config: &'a ConfigReport,
    totals: &'a RuleTotals,
}

/// `profiler_switch.json`: the report and every row.
#[derive(Debug, Serialize)]
struct ResultsFile<'a> {
    config: &'a ConfigReport,
    totals: &'a RuleTotals,
    rows: Vec<&'a RunRow>,
}

/// `profiler_switch`: see the module comment. The summary (or the JSON with `--json`) is the
/// result; a malformed sample under checked rules (`go1.7`, `seed003`) is
/// [`SuiteError::Violation`].
pub fn profiler_switch(args: &ProfilerArgs) -> Result<String, SuiteError> {
    let s = &args.suite;
    s.validate()?;
    let name = "profiler_switch";
    let target = match args.samples {
        Some(0) => return Err(SuiteError::BadInput("--samples must be at least 1".into())),
        Some(n) => n,
        None => match s.mode() {
            Mode::Quick => QUICK_SAMPLES,
            Mode::Full => FULL_SAMPLES,
        },
    };
    s.refuse_offsets(name)?;
    let labels: Vec<String> = SETUPS.iter().map(|st| st.workload.to_owned()).collect();
    if !labels.iter().any(|w| s.wants_workload(w)) {
        return Err(s.no_workload_kept(name, &labels));
    }
    let threaded_procs = s.procs.unwrap_or(THREADED_PROCS);
    let seeds = seeds(s);
    // The rule sets, in their canonical order, each once.
    let rules: Vec<ProfileRules> = ProfileRules::ALL
        .into_iter()
        .filter(|r| args.profile_rules.is_empty() || args.profile_rules.contains(r))
        .collect();
    // `none` is the comparison, at a tenth of the target, unless it runs alone.
    let full_share = |r: ProfileRules| r.checked() || rules == [ProfileRules::None];
    let mut cells = Vec::new();
    for &rule in &rules {
        for engine in [Engine::Deterministic, Engine::Threaded] {
            for setup in SETUPS
                .into_iter()
                .filter(|st| s.wants_workload(st.workload))
            {
                for &seed in &seeds {
                    let share = match (full_share(rule), engine) {
                        (true, Engine::Deterministic) => target / SETUPS.len() as u64,
                        (true, Engine::Threaded) => target / 100,
                        (false, Engine::Deterministic) => target / 10,
                        (false, Engine::Threaded) => target / 200,
                    };
                    let per_seed = share.div_ceil(seeds.len() as u64).max(1);
                    let mut c = cell(s, setup, engine, rule, seed, per_seed, threaded_procs)?;
                    c.folded = rule == rules[0]
                        && engine == Engine::Deterministic
                        && seed == seeds[0]
                        && FOLDED.contains(&setup.workload);
                    cells.push(c);
                }
            }
        }
    }
    let start = Instant::now();
    let time_cap = threaded_budget(s.mode()) / seeds.len() as u32;
    // Deterministic runs in parallel, threaded ones one at a time, alone on the machine.
    let outcomes = shard::run_list(name, s, &cells, |c| run_cell(c, time_cap))?;

    let totals = RuleTotals::of(&outcomes, &rules);
    let config = ConfigReport {
        experiment: name,
        mode: s.mode(),
        seeds: seeds.clone(),
        rules: rules.iter().map(|r| r.name()).collect(),
        sample_target: target,
        period: PERIOD,
        interval_us: INTERVAL_US,
        deterministic_procs: cells
            .iter()
            .find(|c| c.engine == Engine::Deterministic)
            .map_or(0, |c| c.resolved.config.procs),
        threaded_procs,
        threaded_seconds: time_cap.as_secs_f64(),
        max_frames: gc::profile::MAX_CPU_PROF_STACK,
        validate: true,
        force_gc_every: FORCE_GC_EVERY,
        heap_minimum: s.heap_minimum_or(HEAP_MINIMUM),
        setups: SETUPS
            .iter()
            .map(|u| SetupReport {
                workload: u.workload,
                goroutines: s.size(u.goroutines),
                depth: s.size(u.depth),
                stack_barriers: stack_barriers(u.design),
                design: u.design.name(),
            })
            .collect(),
    };
    write_outputs(s, name, &config, &totals, &outcomes)?;

    let checked_malformed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.checked() && o.row.malformed > 0)
        .collect();
    if !checked_malformed.is_empty() {
        return Err(SuiteError::Violation(violation_report(&checked_malformed)));
    }
    if args.json {
        return serde_json::to_string(&Report {
            config: &config,
            totals: &totals,
        })
        .map_err(|e| SuiteError::Failed(format!("cannot encode the report: {e}")));
    }
    Ok(summary(name, s, start.elapsed(), &outcomes, &rules))
}

/// The seeds every configuration runs with: `--seeds` (crossed with `--sched-seeds`), else one
/// (the sample target is what grows with `--full`, not the seeds).
fn seeds(s: &SuiteArgs) -> Vec<Seed> {
    s.seeds_by_default(1)
}

fn stack_barriers(d: Design) -> &'static str {
    match d {
        Design::StkbarAll => "all",
        Design::FullRescan => "off",
        _ => "on",
    }
}

/// The run of `setup` on `engine`, resolved as the testbed would, with the profiler on.
fn cell(
    s: &SuiteArgs,
    setup: Setup,
    engine: Engine,
    rules: ProfileRules,
    seed: Seed,
    target: u64,
    threaded_procs: usize,
) -> Result<Cell, SuiteError> {
    let w = Workload::new(
        setup.workload,
        s.size(setup.goroutines),
        s.size(setup.depth),
    );
    let mut plan = Plan::new(&w, setup.design, seed)
        .with("--engine", engine.name())
        .with("--cycles", s.cycles.unwrap_or(1))
        .with("--heap-minimum", s.heap_minimum_or(HEAP_MINIMUM))
        .with("--force-gc-every", FORCE_GC_EVERY);
    if engine == Engine::Threaded {
        plan = plan.with("--procs", threaded_procs);
    }
    let plan = s.apply(plan);
    let mut resolved = suite::resolve(&plan)?;
    resolved.config.profile = Some(ProfileConfig {
        rules,
        period: PERIOD,
        interval: Duration::from_micros(INTERVAL_US),
        validate: true,
        ..ProfileConfig::default()
    });
    Ok(Cell {
        setup,
        engine,
        rules,
        seed,
        target,
        folded: false,
        plan,
        resolved,
    })
}

/// Runs `c` until it has drawn its target (a threaded run also stops after `time_cap`), at least
/// the plan's `--cycles`.
fn run_cell(c: &Cell, time_cap: Duration) -> Result<Outcome, SuiteError> {
    let failed = |e: RuntimeError| {
        let msg = format!(
            "{e} ({} rules, {} engine; run: {})",
            c.rules,
            c.engine.name(),
            c.plan.command()
        );
        if e.is_checker_violation() {
            SuiteError::Violation(msg)
        } else {
            SuiteError::Failed(msg)
        }
    };
    let r = &c.resolved;
    let mut engine = testbed::Engine::new(r, r.workload.build(&r.params)).map_err(failed)?;
    let start = Instant::now();
    let mut cycles = 0u64;
    let (mut installed, mut hit, mut removed) = (0, 0, 0);
    let mut chunk = 1;
    let (profile, mutator_ops) = loop {
        let result = engine.run(chunk, r.max_ops).map_err(failed)?;
        cycles += result.cycles.len() as u64;
        for cy in &result.cycles {
            installed += cy.barriers_installed;
            hit += cy.barriers_hit;
            removed += cy.barriers_removed;
        }
        let profile = result
            .profile
            .ok_or_else(|| SuiteError::Failed("a run without its profile".into()))?;
        let enough = profile.counts.samples >= c.target && cycles >= u64::from(r.cycles);
        let out_of_time = c.engine == Engine::Threaded && start.elapsed() >= time_cap;
        if enough || out_of_time {
            break (profile, result.totals.mutator_ops);
        }
        let limit =
            (c.engine == Engine::Threaded).then(|| time_cap.saturating_sub(start.elapsed()));
        chunk = next_chunk(
            cycles,
            profile.counts.samples,
            c.target,
            start.elapsed(),
            limit,
        );
    };
    let wall = start.elapsed();
    let folded =
        (c.folded || profile.counts.malformed > 0).then(|| profile.folded(&engine.runtime().prog));
    let malformed_stacks = malformed_stacks(folded.as_deref().unwrap_or(""));
    let folded = folded.filter(|_| c.folded);
    let k = &profile.counts;
    let row = RunRow {
        workload: c.setup.workload.to_owned(),
        engine: c.engine.name().to_owned(),
        procs: r.config.procs,
        goroutines: r.params.goroutines,
        depth: r.params.depth,
        stack_barriers: r.report.stack_barriers.to_owned(),
        seed: c.seed.program,
        sched_seed: c.seed.schedule,
        rules: c.rules.name().to_owned(),
        period_or_interval: match c.engine {
            Engine::Deterministic => PERIOD,
            Engine::Threaded => INTERVAL_US,
        },
        cycles,
        samples: k.samples,
        user_samples: k.user_samples,
        g0_samples: k.g0_samples,
        system_samples: k.system_samples,
        samples_mid_switch: k.samples_mid_switch,
        samples_mid_barrier: k.samples_mid_barrier,
        samples_mid_copystack: k.samples_mid_copystack,
        samples_on_g0: k.samples_on_g0,
        malformed: k.malformed,
        malformed_mid_switch: k.malformed_mid_switch,
        malformed_mid_barrier: k.malformed_mid_barrier,
        validated: k.validated,
        refused_g0: k.refused_g0,
        refused_sp: k.refused_sp,
        refused_sets_sp: k.refused_sets_sp,
        refused_stack_barrier_pc: k.refused_stack_barrier_pc,
        refused_stkbar_lock: k.refused_stkbar_lock,
        signals_sent: profile.signals_sent,
        wall_ms: (wall.as_secs_f64() * 1e3 * 1000.0).round() / 1000.0,
        unwound_mid_switch: k.unwound_mid_switch,
        unwound_mid_barrier: k.unwound_mid_barrier,
        sample_target: c.target,
        mutator_ops,
        barriers_installed: installed,
        barriers_hit: hit,
        barriers_removed: removed,
    };
    Ok(Outcome {
        row,
        folded,
        malformed_stacks,
    })
}

/// Cycles the next call to `run` should complete: as many as the rate so far says are left to
/// draw the target (or, with a time `limit`, to use it up), so a run takes a few calls — each
/// call merges every P's profile, and a threaded one computes an MMU curve — and overshoots its
/// target by less than a call's worth.
fn next_chunk(
    cycles: u64,
    samples: u64,
    target: u64,
    elapsed: Duration,
    limit: Option<Duration>,
) -> u32 {
    let cycles = cycles.max(1);
    let per_cycle = (samples as f64 / cycles as f64).max(1.0);
    let mut n = target.saturating_sub(samples) as f64 / per_cycle;
    if let Some(left) = limit {
        // Aim at three quarters of the time left: a threaded cycle's length varies.
        let per_cycle_s = elapsed.as_secs_f64() / cycles as f64;
        if per_cycle_s > 0.0 {
            n = n.min(0.75 * left.as_secs_f64() / per_cycle_s);
        }
    }
    (n.ceil() as u64).clamp(1, MAX_CHUNK) as u32
}

/// The `runtime._Malformed` lines of a folded profile, most frequent first.
fn malformed_stacks(folded: &str) -> Vec<String> {
    let count = |l: &str| -> u64 {
        l.rsplit_once(' ')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    };
    let mut lines: Vec<String> = folded
        .lines()
        .filter(|l| l.starts_with("runtime._Malformed"))
        .map(str::to_owned)
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(count(l)));
    lines
}

/// Writes the CSV, the JSON and the folded stacks, each atomically.
fn write_outputs(
    s: &SuiteArgs,
    name: &str,
    config: &ConfigReport,
    totals: &RuleTotals,
    outcomes: &[Outcome],
) -> Result<(), SuiteError> {
    let fail = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        SuiteError::Failed(format!("cannot write {}: {e}", path.display()))
    };
    let csv_path = s.out.join(format!("{name}.csv"));
    cli::write_atomically(&csv_path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        for o in outcomes {
            csv.serialize(&o.row).map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
    .map_err(|e| fail(&csv_path, &e))?;
    let json_path = s.out.join(format!("{name}.json"));
    let file = ResultsFile {
        config,
        totals,
        rows: outcomes.iter().map(|o| &o.row).collect(),
    };
    cli::write_atomically(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &file).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|e| fail(&json_path, &e))?;
    for o in outcomes {
        if let Some(folded) = &o.folded {
            let path = s.out.join(format!("{name}_{}.folded", o.row.workload));
            cli::write_atomically(&path, |w| w.write_all(folded.as_bytes()))
                .map_err(|e| fail(&path, &e))?;
        }
    }
    Ok(())
}

/// The checker's report: every run under checked rules with a malformed sample, its counts, and
/// its most frequent malformed stacks.
fn violation_report(checked: &[&Outcome]) -> String {
    let bad: Vec<&&Outcome> = checked.iter().filter(|o| o.row.malformed > 0).collect();
    let total: u64 = bad.iter().map(|o| o.row.malformed).sum();
    let mut out = format!(
        "{total} malformed profiler traceback(s) under checked rules (ARCHITECTURE.md §6: 0), in {} run(s)",
        bad.len()
    );
    for o in bad {
        let r = &o.row;
        let _ = write!(
            out,
            "\n  {} ({} G × depth {}, stack barriers {}), {} rules, {} engine, {} Ps, seed {}: \
             malformed {} of {} validated ({} mid-switch, {} mid-barrier); samples {}, \
             mid-switch {}, on g0 {}, mid-barrier {}, unwound mid-switch {}, unwound mid-barrier {}",
            r.workload,
            r.goroutines,
            r.depth,
            r.stack_barriers,
            r.rules,
            r.engine,
            r.procs,
            r.seed,
            r.malformed,
            r.validated,
            r.malformed_mid_switch,
            r.malformed_mid_barrier,
            r.samples,
            r.samples_mid_switch,
            r.samples_on_g0,
            r.samples_mid_barrier,
            r.unwound_mid_switch,
            r.unwound_mid_barrier,
        );
        let _ = write!(
            out,
            "\n    most frequent malformed stacks (what the unwinder produced, outermost frame first; count last):"
        );
        for line in o.malformed_stacks.iter().take(REPORT_STACKS) {
            let _ = write!(out, "\n      {line}");
        }
    }
    out
}

/// The human-readable summary: a line per rule set and engine, then the totals per rule set.
fn summary(
    name: &str,
    s: &SuiteArgs,
    elapsed: Duration,
    outcomes: &[Outcome],
    rules: &[ProfileRules],
) -> String {
    let mut out = format!(
        "{name}: {} runs ({} mode) in {:.1} s -> {}",
        outcomes.len(),
        s.mode(),
        elapsed.as_secs_f64(),
        s.out.join(format!("{name}.csv")).display()
    );
    for &rule in rules {
        for engine in [Engine::Deterministic, Engine::Threaded] {
            let t = Totals::of(
                outcomes
                    .iter()
                    .filter(|o| o.rules() == Some(rule) && o.row.engine == engine.name()),
            );
            if t.runs == 0 {
                continue;
            }
            let c = &t.counts;
            let sent = if engine == Engine::Threaded {
                format!(" of {} signals sent", t.signals_sent)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "\n  {:<7} {:<13}: {} samples{sent}: {} goroutine tracebacks ({} mid-barrier), {} g0, {} System ({:.1} %: {} g0, {} SP, {} sets-SP PC, {} stackBarrier PC, {} lock); malformed {} of {} validated",
                rule.name(),
                engine.name(),
                c.samples,
                c.user_samples,
                c.unwound_mid_barrier,
                c.g0_samples,
                c.system_samples,
                100.0 * t.system_share,
                c.refused_g0,
                c.refused_sp,
                c.refused_sets_sp,
                c.refused_stack_barrier_pc,
                c.refused_stkbar_lock,
                c.malformed,
                c.validated,
            );
        }
    }
    for &rule in rules {
        let t = Totals::of(outcomes.iter().filter(|o| o.rules() == Some(rule)));
        let _ = write!(
            out,
            "\n  totals ({}): {} samples, {:.1} % System, {} malformed{}",
            rule.name(),
            t.counts.samples,
            100.0 * t.system_share,
            t.counts.malformed,
            if rule.checked() {
                " (ARCHITECTURE.md §6: 0 in 10^6)"
            } else {
                " (no checks: expected)"
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_covers_what_is_left_at_the_rate_so_far() {
        let s = Duration::from_secs(1);
        assert_eq!(next_chunk(2, 1_000, 10_000, s, None), 18);
        assert_eq!(next_chunk(2, 10_000, 10_000, s, None), 1);
        assert_eq!(next_chunk(0, 0, 10_000, s, None), MAX_CHUNK as u32);
        // A time limit caps it: half a second left at two cycles a second is one cycle.
        assert_eq!(next_chunk(2, 1_000, 10_000, s, Some(s / 2)), 1);
        assert_eq!(next_chunk(2, 1_000, 10_000, s, Some(s * 4)), 6);
    }

    #[test]
    fn a_violation_report_names_the_run_its_counts_and_its_most_frequent_malformed_stacks() {
        let folded = "main.f0;main.f1 7\nruntime._Malformed;main.f0 2\nruntime._Malformed;main.f0;main.f2 9\nruntime._System;runtime.gogo 3\n";
        let stacks = malformed_stacks(folded);
        assert_eq!(
            stacks,
            [
                "runtime._Malformed;main.f0;main.f2 9",
                "runtime._Malformed;main.f0 2"
            ]
        );
        let row = RunRow {
            workload: "switch-heavy".into(),
            engine: "deterministic".into(),
            procs: 4,
            goroutines: 64,
            depth: 8,
            stack_barriers: "on".into(),
            seed: 3,
            sched_seed: 3,
            rules: "go1.7".into(),
            period_or_interval: PERIOD,
            cycles: 2,
            samples: 100,
            user_samples: 30,
            g0_samples: 10,
            system_samples: 60,
            samples_mid_switch: 30,
            samples_mid_barrier: 5,
            samples_mid_copystack: 1,
            samples_on_g0: 15,
            malformed: 11,
            malformed_mid_switch: 9,
            malformed_mid_barrier: 2,
            validated: 40,
            refused_g0: 30,
            refused_sp: 10,
            refused_sets_sp: 10,
            refused_stack_barrier_pc: 5,
            refused_stkbar_lock: 5,
            signals_sent: 0,
            wall_ms: 1.0,
            unwound_mid_switch: 9,
            unwound_mid_barrier: 2,
            sample_target: 100,
            mutator_ops: 1000,
            barriers_installed: 0,
            barriers_hit: 0,
            barriers_removed: 0,
        };
        let bad = Outcome {
            row,
            folded: None,
            malformed_stacks: stacks,
        };
        let mut clean = Outcome {
            row: bad.row.clone(),
            folded: None,
            malformed_stacks: Vec::new(),
        };
        clean.row.malformed = 0;
        clean.row.workload = "mixed".into();
        let report = violation_report(&[&clean, &bad]);
        assert!(
            report.starts_with("11 malformed profiler traceback(s) under checked rules"),
            "{report}"
        );
        assert!(report.contains("in 1 run(s)"), "{report}");
        assert!(report.contains("switch-heavy (64 G × depth 8, stack barriers on), go1.7 rules, deterministic engine, 4 Ps, seed 3"), "{report}");
        assert!(
            report.contains("malformed 11 of 40 validated (9 mid-switch, 2 mid-barrier)"),
            "{report}"
        );
        assert!(!report.contains("mixed"), "{report}");
        let first = report
            .find("main.f0;main.f2 9")
            .expect("the most frequent stack");
        let second = report
            .find("runtime._Malformed;main.f0 2")
            .expect("the other stack");
        assert!(first < second, "{report}");
    }

    #[test]
    fn every_setup_resolves_on_both_engines() {
        let args = ProfilerArgs::try_parse_from(["profiler_switch", "--quick"]).unwrap();
        for setup in SETUPS {
            for engine in [Engine::Deterministic, Engine::Threaded] {
                let c = cell(
                    &args.suite,
                    setup,
                    engine,
                    ProfileRules::Seed003,
                    Seed::from(1),
                    10,
                    2,
                )
                .unwrap();
                assert!(
                    c.resolved
                        .config
                        .profile
                        .is_some_and(|p| p.rules == ProfileRules::Seed003 && p.validate)
                );
                assert_eq!(c.resolved.report.engine, engine.name());
            }
        }
    }
}
