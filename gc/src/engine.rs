//! The deterministic engine: one OS thread interleaves every P's mutator steps with the
//! collector's steps by a seeded schedule.
//!
//! Invariant: the same configuration, workload and seed give the same sequence of steps, and so
//! the same counters, bit for bit; only the `_ns` timings differ between runs. Nothing here is a
//! model of the runtime: each step calls the runtime functions the threaded engine calls
//! ([`Runtime::mutator_step`], [`Runtime::mark_step`], [`Runtime::sweep_step`],
//! [`Runtime::stop_p`], [`Runtime::gc_start`], [`Runtime::mark_termination`]).
//!
//! Schedule. While the collector has concurrent work (marking, the after-restart walk,
//! sweeping), each step goes to it with probability `gc_share` (Go's 25 % background mark
//! utilisation); otherwise a P chosen at random runs one operation of its goroutine. A collector
//! step is one root job (the globals, or one goroutine's stack), `mark_step_bytes` of grey
//! objects (one object by default, about what a real marker scans while the mutator runs one
//! operation), one goroutine of the walk that follows a mark termination (see
//! [`Runtime::removal_step`]), or one span swept. Every step boundary is a point where another P
//! may run, but a goroutine leaves its P only where Go's would (see [`Runtime::mutator_run`]).
//!
//! Clock. The engine keeps its own: every step stands for [`NS_PER_STEP`] of one P's time, so the
//! clock advances by that divided by the P count. `sysmon` ([`Runtime::retake`]) measures the
//! scheduler's time slice on it — a goroutine that has run `time_slice_ns` (10 ms, Go's
//! `forcePreemptNS`) since its P picked it is asked to give the P up at its next call — and the
//! network poller ([`Runtime::netpoll`]) wakes parked goroutines at the workload's rate on it.
//!
//! Stop-the-world. A requested cycle, or a mark phase found complete after the ragged barrier
//! (every P's work buffer flushed, Go's `forEachP` in `gcMarkDone`), asks every P to stop; a P
//! with no goroutine stops at once, and while any goroutine still runs the steps go to the Ps
//! that have one, until each reaches its next call and leaves (Go's `preemptall`), so the world
//! stops where Go's would. Then every P goes through `stop_p` (a procs schedule changes the P
//! count here, Go's `procresize`, and only the first `gomaxprocs` Ps are picked after it) and the
//! pause's work runs: sweep termination, or mark termination on this one thread. When no
//! goroutine can run, a blocked one is woken (the engine's timer), and when none is left alive,
//! cycles are forced so a run always completes. While tracing, the engine reads full trace
//! buffers between steps; while profiling, each P's M takes signals from a seeded countdown of the
//! micro-operation boundaries of the code it runs (an idle P runs none).

use std::time::Instant;

use rand::{RngExt, SeedableRng};

use crate::error::RuntimeError;
use crate::mark::MarkProgress;
use crate::mgc::Phase;
use crate::mmu::MmuPoint;
use crate::mutator::Rng;
use crate::profile::Profile;
use crate::runtime::{GcConfig, Runtime, Step, WorkloadImage};
use crate::sched::P;
use crate::stats::{CycleStats, RescanBound, RescanRecord, Totals, scan_stalls_of};
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
    /// ARCHITECTURE.md §4's bound over every re-scan since the engine started.
    pub rescan_bound: RescanBound,
    /// Minimum mutator utilisation over the run (every GC interval, idle marking excluded, pauses
    /// only), for the windows of [`crate::mmu::MMU_WINDOWS_NS`] that fit in it; empty under the
    /// deterministic engine, which has no clock.
    pub mmu: Vec<MmuPoint>,
    /// The profile since the engine started, if the configuration profiles.
    pub profile: Option<Profile>,
    /// The tracer's counters, if the configuration traces.
    pub trace: Option<TraceStats>,
    /// Every scan's stop since the engine started, as `(cycle, ns)` (see
    /// [`CycleStats::scan_stall_ns_p50`]), for totals over a subset of the cycles.
    pub scan_stalls: Vec<(u32, u64)>,
}

/// Nanoseconds of a P's time one step of the deterministic engine stands for: a mutator
/// operation or a collector step (the two are calibrated to take about as long, see
/// [`crate::mark::MARK_STEP_BYTES`]). The engine's clock, which times the scheduler's time slice
/// and the network poller, advances by this divided by the P count at every step, as `procs`
/// Ps run in parallel. Measured on the threaded engine (2 Ps on the project's 2-core machine,
/// `deep-oscillate` 64 × 1000 and `mixed` 64 × 200, 100 cycles): 10.4–10.5 M mutator
/// operations per second per P with all the collector's work included, 96 ns of a P's time an
/// operation; about a fifth of this engine's steps are the collector's, so a step is 75 ns.
pub const NS_PER_STEP: u64 = 75;

/// A stop-the-world the deterministic engine is bringing about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stw {
    SweepTermination,
    MarkTermination,
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
    /// The engine's clock, in picoseconds since the engine began (see [`NS_PER_STEP`]).
    clock_ps: u64,
    /// A stop-the-world under way: what for, and when it was requested (wall time and trace
    /// time).
    stopping: Option<(Stw, Instant, u64)>,
}

impl Deterministic {
    /// An engine running `image` under `config` (with `config.procs` Ps).
    pub fn new(config: GcConfig, image: WorkloadImage) -> Result<Deterministic, RuntimeError> {
        let mut ps: Vec<P> = (0..config.max_procs()).map(P::new).collect();
        let sched_seed = config.sched_seed();
        let gc_share = config.gc_share.clamp(0.0, 1.0);
        let rt = Runtime::new(config, image, &mut ps)?;
        rt.start_profiling(ps.iter_mut(), false);
        Ok(Deterministic {
            rt,
            ps,
            worker: GcWork::new(),
            rng: Rng::seed_from_u64(sched_seed.wrapping_add(0x5eed)),
            gc_share_threshold: (gc_share * 4_294_967_296.0) as u64,
            ops_since_cycle: 0,
            ops: 0,
            clock_ps: 0,
            stopping: None,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The engine's clock: nanoseconds since the engine began.
    pub fn now_ns(&self) -> u64 {
        self.clock_ps / 1000
    }

    /// Runs until `cycles` more cycles have completed (each with its after-restart walk); fails
    /// with [`RuntimeError::Stalled`] after `max_ops` mutator operations without getting there.
    pub fn run(&mut self, cycles: u32, max_ops: u64) -> Result<RunResult, RuntimeError> {
        let target = self.rt.gc.cycles_completed() + cycles as usize;
        let start_ops = self.ops;
        while self.rt.gc.cycles_completed() < target || self.rt.removal_pending() {
            if self.ops - start_ops >= max_ops {
                return Err(RuntimeError::Stalled {
                    completed: (self.rt.gc.cycles_completed() + cycles as usize)
                        .saturating_sub(target) as u32,
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
        let cycles = history[target - cycles as usize..target].to_vec();
        let scan_stalls = self.rt.gc.scan_stall_log();
        Ok(RunResult {
            totals: Totals::of(
                &cycles,
                self.rt.gc.total_ops(),
                scan_stalls_of(&scan_stalls, &cycles),
            ),
            scan_stalls,
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
        self.rt.trace_read_pending();
        self.clock_ps += NS_PER_STEP * 1000 / self.rt.gomaxprocs().max(1) as u64;
        if let Some((stw, requested, trace_at)) = self.stopping {
            return self.stopping_step(stw, requested, trace_at);
        }
        let rt = &self.rt;
        if rt.gc.start_requested() && rt.gc.phase() != Phase::Mark && !rt.removal_pending() {
            self.begin_stop(Stw::SweepTermination);
            return Ok(());
        }
        let now = self.now_ns();
        self.rt.netpoll(now, &mut self.rng);
        // One draw per step: the high half decides the collector's turn, the low half picks the P
        // (the one a mutator step runs, or the one the background sweeper runs on).
        let r: u64 = self.rng.random();
        let collector_turn = (r >> 32) < self.gc_share_threshold;
        match self.rt.gc.phase() {
            Phase::Mark if collector_turn => self.mark_step(),
            Phase::Sweep | Phase::Off if collector_turn && self.rt.removal_pending() => {
                // The after-restart walk, one goroutine a step, while the Ps run.
                if self.rt.removal_step(1)? {
                    self.rt.trace_cycle();
                }
                Ok(())
            }
            Phase::Sweep if collector_turn => {
                let i = self.pick_p(r as u32);
                self.rt.sweep_batch(&mut self.ps[i], 1);
                Ok(())
            }
            _ => self.mutator_step(r as u32, now),
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
            self.begin_stop(Stw::MarkTermination);
        }
        Ok(())
    }

    /// Asks every P to stop: a P with no goroutine stops at once, a running goroutine gives up
    /// its P at its next call (see [`Runtime::mutator_run`]).
    fn begin_stop(&mut self, stw: Stw) {
        for p in &self.ps {
            self.rt.preempt_p(p.id);
        }
        self.stopping = Some((stw, Instant::now(), self.rt.trace_now()));
    }

    /// A step while the world is being stopped: one operation of a goroutine still running
    /// (the draw picks which), or, once none is, the stop-the-world's work.
    fn stopping_step(
        &mut self,
        stw: Stw,
        requested: Instant,
        trace_at: u64,
    ) -> Result<(), RuntimeError> {
        let running: Vec<usize> = (0..self.rt.gomaxprocs())
            .filter(|&i| self.ps[i].curg.is_some())
            .collect();
        if !running.is_empty() {
            let r: u32 = self.rng.random();
            let i = running[((u64::from(r) * running.len() as u64) >> 32) as usize];
            self.rt.mutator_step(&mut self.ps[i])?;
            self.ops += 1;
            return Ok(());
        }
        self.stopping = None;
        let stop_ns = requested.elapsed().as_nanos() as u64;
        for p in &mut self.ps {
            self.rt.stop_p(p);
            self.rt.clear_preempt(p.id);
        }
        match stw {
            Stw::SweepTermination => {
                self.ops_since_cycle = 0;
                if let Some(n) = self.rt.config.procs_at_cycle(self.rt.gc.cycle() + 1) {
                    self.rt.procresize(self.ps.iter_mut(), n)?;
                }
                let r = self.rt.gc_start(&mut self.worker, &mut self.ps[0]);
                self.rt.trace_stw(STW_SWEEP_TERMINATION, trace_at);
                r
            }
            Stw::MarkTermination => {
                let r = self.rt.mark_termination(&mut self.worker, stop_ns);
                self.rt.trace_stw(STW_MARK_TERMINATION, trace_at);
                r.map(|_| ())
            }
        }
    }

    /// Runs one operation on the P that `r`, uniform over `u32`, picks; `sysmon` looks at that
    /// P first, at time `now`.
    fn mutator_step(&mut self, r: u32, now: u64) -> Result<(), RuntimeError> {
        let i = self.pick_p(r);
        self.rt.retake(&mut self.ps[i], now);
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
}
