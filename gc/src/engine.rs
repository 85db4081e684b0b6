//! The deterministic engine: one OS thread interleaves every P's mutator steps with the
//! collector's steps by a seeded schedule.
//!
//! Invariant: the same configuration, workload and seed give the same sequence of steps, and so
//! the same counters, bit for bit; only the `_ns` timings differ between runs. Nothing here is a
//! model of the runtime: each step calls the runtime functions the threaded engine calls
//! ([`Runtime::mutator_step`], [`Runtime::mark_step`], [`Runtime::sweep_step`],
//! [`Runtime::stop_p`], [`Runtime::gc_start`], [`Runtime::mark_termination`]).
//!
//! Schedule. While the collector has concurrent work (marking or sweeping), each step goes to it
//! with probability `gc_share` (Go's 25 % background mark utilisation); otherwise a P chosen at
//! random runs one operation of its goroutine. A collector step is one root job (the globals, or
//! one goroutine's stack), `mark_step_bytes` of grey objects (one object by default, about what a
//! real marker scans while the mutator runs one operation), or one span swept. Every step
//! boundary is a safe point. A requested cycle starts at the next boundary with a stop-the-world
//! (every P stopped through `stop_p`; a procs schedule changes the P count there, Go's
//! `procresize`, and only the first `gomaxprocs` Ps are picked after it); the background sweep
//! runs on the P the step's draw picks; when a mark step finds nothing to do, the engine flushes
//! every P's work buffer (Go's ragged `forEachP` barrier in `gcMarkDone`) and, if marking is then
//! complete, stops the world for mark termination. When no goroutine can run, a blocked one is
//! woken (the engine's timer), and when none is left alive, cycles are forced so a run always
//! completes. While tracing, the engine reads full trace buffers between steps; while profiling,
//! each P's M takes signals from a seeded countdown of its micro-operation boundaries.

use rand::{RngExt, SeedableRng};

use crate::error::RuntimeError;
use crate::mark::MarkProgress;
use crate::mgc::Phase;
use crate::mmu::MmuPoint;
use crate::mutator::Rng;
use crate::profile::Profile;
use crate::runtime::{GcConfig, Runtime, Step, WorkloadImage};
use crate::sched::P;
use crate::stats::{CycleStats, RescanBound, RescanRecord, Totals};
use crate::trace::{STW_MARK_TERMINATION, STW_SWEEP_TERMINATION, TraceStats};
use crate::workbuf::GcWork;

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// One row per completed cycle.
    pub cycles: Vec<CycleStats>,
    /// Sums and summaries.
    pub totals: Totals,
    /// Per-goroutine re-scan records since the engine started, if the configuration asked for
    /// them.
    pub rescans: Vec<RescanRecord>,
    /// DESIGN §4's bound over every re-scan since the engine started.
    pub rescan_bound: RescanBound,
    /// Minimum mutator utilisation over the run, for the windows of
    /// [`crate::mmu::MMU_WINDOWS_NS`] that fit in it; empty under the deterministic engine,
    /// which has no clock.
    pub mmu: Vec<MmuPoint>,
    /// The profile since the engine started, if the configuration profiles.
    pub profile: Option<Profile>,
    /// The tracer's counters, if the configuration traces.
    pub trace: Option<TraceStats>,
}

/// The deterministic engine.
#[derive(Debug)]
pub struct Deterministic {
    rt: Runtime,
    ps: Vec<P>,
    worker: GcWork,
    rng: Rng,
    /// `gc_share` as a fraction of 2^32: the collector's turn is a 32-bit draw below it.
    gc_share_threshold: u64,
    ops_since_cycle: u64,
    ops: u64,
}

impl Deterministic {
    /// An engine running `image` under `config` (with `config.procs` Ps).
    pub fn new(config: GcConfig, image: WorkloadImage) -> Result<Deterministic, RuntimeError> {
        let mut ps: Vec<P> = (0..config.max_procs()).map(P::new).collect();
        let seed = config.seed;
        let gc_share = config.gc_share.clamp(0.0, 1.0);
        let rt = Runtime::new(config, image, &mut ps)?;
        rt.start_profiling(ps.iter_mut(), false);
        Ok(Deterministic {
            rt,
            ps,
            worker: GcWork::new(),
            rng: Rng::seed_from_u64(seed.wrapping_add(0x5eed)),
            gc_share_threshold: (gc_share * 4_294_967_296.0) as u64,
            ops_since_cycle: 0,
            ops: 0,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Runs until `cycles` more cycles have completed; fails with [`RuntimeError::Stalled`]
    /// after `max_ops` mutator operations without getting there.
    pub fn run(&mut self, cycles: u32, max_ops: u64) -> Result<RunResult, RuntimeError> {
        let target = self.rt.gc.cycles_completed() + cycles as usize;
        let start_ops = self.ops;
        while self.rt.gc.cycles_completed() < target {
            if self.ops - start_ops >= max_ops {
                return Err(RuntimeError::Stalled {
                    completed: (self.rt.gc.cycles_completed() + cycles as usize - target) as u32,
                    wanted: cycles,
                    ops: self.ops - start_ops,
                });
            }
            self.step()?;
        }
        for p in &mut self.ps {
            self.rt.stop_p(p);
        }
        self.rt.trace_flush(self.ps.iter_mut());
        let history = self.rt.gc.history();
        let cycles = history[target - cycles as usize..].to_vec();
        Ok(RunResult {
            totals: Totals::of(&cycles, self.rt.gc.total_ops()),
            cycles,
            rescans: self.rt.gc.rescan_records(),
            rescan_bound: self.rt.gc.rescan_bound(),
            mmu: Vec::new(),
            profile: self.rt.profile(self.ps.iter()),
            trace: self.rt.trace.as_ref().map(|t| t.stats()),
        })
    }

    /// Runs `n` mutator operations with the collector idle unless a cycle is triggered (the
    /// interpreter benchmark's loop).
    pub fn run_ops(&mut self, n: u64) -> Result<(), RuntimeError> {
        let end = self.ops + n;
        while self.ops < end {
            self.step()?;
        }
        Ok(())
    }

    /// One scheduling decision.
    pub fn step(&mut self) -> Result<(), RuntimeError> {
        let rt = &self.rt;
        rt.trace_read_pending();
        if rt.gc.start_requested() && rt.gc.phase() != Phase::Mark {
            let stw = rt.trace_now();
            self.stop_the_world();
            self.ops_since_cycle = 0;
            if let Some(n) = self.rt.config.procs_at_cycle(self.rt.gc.cycle() + 1) {
                self.rt.procresize(self.ps.iter_mut(), n)?;
            }
            let r = self.rt.gc_start(&mut self.worker, &mut self.ps[0]);
            self.rt.trace_stw(STW_SWEEP_TERMINATION, stw);
            return r;
        }
        // One draw per step: the high half decides the collector's turn, the low half picks the P
        // (the one a mutator step runs, or the one the background sweeper runs on).
        let r: u64 = self.rng.random();
        let collector_turn = (r >> 32) < self.gc_share_threshold;
        match rt.gc.phase() {
            Phase::Mark if collector_turn => self.mark_step(),
            Phase::Sweep if collector_turn => {
                let i = self.pick_p(r as u32);
                self.rt.sweep_batch(&mut self.ps[i], 1);
                Ok(())
            }
            _ => self.mutator_step(r as u32),
        }
    }

    /// The live P that `r`, uniform over `u32`, picks.
    fn pick_p(&self, r: u32) -> usize {
        ((u64::from(r) * self.rt.gomaxprocs() as u64) >> 32) as usize
    }

    fn mark_step(&mut self) -> Result<(), RuntimeError> {
        if self.rt.mark_step(&mut self.worker)? != MarkProgress::Done {
            return Ok(());
        }
        // Ragged barrier: every P publishes its grey objects (forEachP(dispose)).
        for p in &mut self.ps {
            p.gcw.dispose(&self.rt.gc.pool);
        }
        self.worker.dispose(&self.rt.gc.pool);
        if self.rt.mark_complete() {
            let stw = self.rt.trace_now();
            self.stop_the_world();
            let r = self.rt.mark_termination(&mut self.worker);
            self.rt.trace_stw(STW_MARK_TERMINATION, stw);
            self.rt.trace_cycle();
            r?;
        }
        Ok(())
    }

    /// Runs one operation on the P that `r`, uniform over `u32`, picks.
    fn mutator_step(&mut self, r: u32) -> Result<(), RuntimeError> {
        let i = self.pick_p(r);
        match self.rt.mutator_step(&mut self.ps[i])? {
            Step::Ran | Step::Switched => {
                self.ops += 1;
                self.ops_since_cycle += 1;
                if self
                    .rt
                    .config
                    .force_gc_ops
                    .is_some_and(|n| self.ops_since_cycle >= n)
                {
                    self.rt.gc.request_start();
                }
            }
            Step::Idle => {
                let all_idle = self
                    .ps
                    .iter()
                    .all(|p| p.curg.is_none() && p.runq.is_empty())
                    && self.rt.globrunq_is_empty();
                if all_idle
                    && !self
                        .rt
                        .wake_one_if_all_blocked(&mut self.ps[i], &mut self.rng)
                {
                    // Nobody left alive: only forced cycles can make progress.
                    if self.rt.live_goroutines() == 0 {
                        match self.rt.gc.phase() {
                            Phase::Mark => self.mark_step()?,
                            Phase::Sweep => {
                                self.rt.sweep_batch(&mut self.ps[i], 1);
                            }
                            Phase::Off => self.rt.gc.request_start(),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn stop_the_world(&mut self) {
        for p in &mut self.ps {
            self.rt.stop_p(p);
        }
    }
}
