//! Workloads: seeded goroutine behaviours that stress a collector's handling of stacks.
//!
//! Invariant: a workload is a function of its [`WorkloadParams`] — the same goroutine count,
//! depth and seed give the same program, types, globals and behaviours, so a run under the
//! deterministic engine is reproducible. Every workload hides heap objects on stacks: it loads a
//! pointer from a heap object into a local and then deletes it from the heap, so the object stays
//! reachable only from that stack, exactly what a wrong re-scan bound would miss (and what a
//! checkmark pass then catches).
//!
//! Each workload is one file and one line in [`WORKLOADS`]. They share [`common`]: one program
//! shape (functions of a few frame sizes, the first half of each frame's words pointer slots), one
//! object type, [`common::HeapMix`], the mix of heap operations every behaviour draws from, and
//! [`common::Blocker`], where a CPU-bound goroutine blocks when `block_every` asks it to.
//!
//! Scheduling. A goroutine runs until it blocks, yields, exits or is preempted at a call after
//! the scheduler's time slice, as in Go, so the workloads yield only where the program they model
//! calls `runtime.Gosched()`: the ones that build a deep stack yield once, right after building
//! it (as a benchmark's goroutines might when set up), and `switch-heavy` is a `Gosched` loop.
//! None yields for fairness: on few Ps only a handful of CPU-bound goroutines run, and need
//! re-scanning, per mark phase. Each workload's header says where its goroutines block and what
//! each [`Blocking`] field means for it; [`Workload::blocking`] gives its defaults. Every
//! `build` resolves `params.blocking` over those defaults first ([`common::resolve`]), since
//! tests and benches pass [`Blocking::UNSET`].

pub mod adversarial;
pub mod common;
pub mod copy_heavy;
pub mod deep_oscillate;
pub mod deep_unwind;
pub mod many_shallow;
pub mod mixed;
pub mod replay;
pub mod switch_heavy;
pub mod sync_leak;

use std::path::Path;
use std::sync::Arc;

use gc::WorkloadImage;

/// How a workload is sized.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct WorkloadParams {
    /// Goroutines to start.
    pub goroutines: usize,
    /// The stack depth (frames) the workload works at.
    pub depth: usize,
    /// The seed.
    pub seed: u64,
    /// Where its goroutines block and how often; [`Blocking::UNSET`] takes the workload's own
    /// defaults ([`Workload::blocking`]).
    pub blocking: Blocking,
}

impl WorkloadParams {
    /// Parameters with the workload's own blocking defaults.
    pub fn new(goroutines: usize, depth: usize, seed: u64) -> WorkloadParams {
        WorkloadParams {
            goroutines,
            depth,
            seed,
            blocking: Blocking::UNSET,
        }
    }
}

/// Where and how often a workload's goroutines block, as a Go program's would: a goroutine runs
/// until it blocks, yields (`runtime.Gosched`, only where the modelled program calls it), exits
/// or is preempted after the scheduler's time slice. Each field left `None` takes the
/// workload's default; every workload documents its defaults and what each field means for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Blocking {
    /// Mean operations between two blocks of a goroutine in its steady state (a channel receive,
    /// a read); `Some(0)` never blocks.
    pub block_every: Option<u32>,
    /// Parked goroutines the network poller wakes per millisecond (requests arriving, timers
    /// firing), on the engine's clock.
    pub wakes_per_ms: Option<f64>,
    /// Goroutines that never block (`many-shallow`'s busy workers).
    pub running: Option<usize>,
    /// Mean operations a woken goroutine runs before it blocks again (`many-shallow`).
    pub burst: Option<u32>,
}

impl Blocking {
    /// Every field left to the workload.
    pub const UNSET: Blocking = Blocking {
        block_every: None,
        wakes_per_ms: None,
        running: None,
        burst: None,
    };

    /// `self`'s fields where set, `defaults`' elsewhere.
    pub fn or(self, defaults: Blocking) -> Blocking {
        Blocking {
            block_every: self.block_every.or(defaults.block_every),
            wakes_per_ms: self.wakes_per_ms.or(defaults.wakes_per_ms),
            running: self.running.or(defaults.running),
            burst: self.burst.or(defaults.burst),
        }
    }
}

/// A workload: a named recipe for a [`WorkloadImage`].
pub trait Workload: Send + Sync {
    /// Its `--workload` name.
    fn name(&self) -> &'static str;
    /// One line saying what it does.
    fn about(&self) -> &'static str;
    /// The program, types, globals and goroutines for `params`.
    fn build(&self, params: &WorkloadParams) -> WorkloadImage;
    /// The deepest stack (frames) a goroutine reaches, for checking it fits the stack limit.
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth
    }
    /// Where its goroutines block by default (every field set); `--block-every`,
    /// `--wake-rate`, `--running` and `--burst` override fields one by one.
    fn blocking(&self) -> Blocking;
}

/// Every workload, by name.
pub static WORKLOADS: &[&dyn Workload] = &[
    &deep_oscillate::DeepOscillate,
    &deep_unwind::DeepUnwind,
    &many_shallow::ManyShallow,
    &mixed::Mixed,
    &adversarial::Adversarial,
    &copy_heavy::CopyHeavy,
    &sync_leak::SyncLeak,
    &switch_heavy::SwitchHeavy,
];

/// The workload called `name`.
pub fn workload(name: &str) -> Option<&'static dyn Workload> {
    WORKLOADS.iter().copied().find(|w| w.name() == name)
}

/// The workload names, comma-separated (`replay` last: it reads a trace file).
pub fn workload_names() -> String {
    WORKLOADS
        .iter()
        .map(|w| w.name())
        .chain(["replay"])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The workload called `name`, reading `replay_file` for `replay` (which needs one; the others
/// take none). The error is a one-line message for exit code 2.
pub fn resolve(name: &str, replay_file: Option<&Path>) -> Result<Arc<dyn Workload>, String> {
    match (name, replay_file) {
        ("replay", Some(path)) => replay::Replay::load(path)
            .map(|w| Arc::new(w) as Arc<dyn Workload>)
            .map_err(|e| e.to_string()),
        ("replay", None) => {
            Err("--workload replay needs --replay FILE (a stkbar-replay trace)".into())
        }
        (_, Some(_)) if workload(name).is_some() => Err(format!(
            "--replay applies only to --workload replay, not {name}"
        )),
        _ => workload(name)
            .map(|w| Arc::new(w) as Arc<dyn Workload>)
            .ok_or_else(|| format!("unknown workload {name:?} (valid: {})", workload_names())),
    }
}

/// A registered workload behind a reference is a workload, so [`resolve`] hands out one type.
impl Workload for &'static dyn Workload {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn about(&self) -> &'static str {
        (**self).about()
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        (**self).build(params)
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        (**self).max_depth(params)
    }
    fn blocking(&self) -> Blocking {
        (**self).blocking()
    }
}
