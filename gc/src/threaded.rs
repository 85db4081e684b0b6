//! The threaded engine: every P on its own OS thread, a real stop-the-world, mark workers on the
//! Ps at `gc_share` of their time, GC assists, and pause and utilisation figures from real clocks.
//!
//! Invariant: the world is stopped exactly while the coordinator holds every P's lock. A P's
//! thread holds its own P's lock whenever it runs goroutines or mark work, and lets go of it
//! only at its scheduler loop with no goroutine on the P, so when the coordinator holds every
//! lock, every goroutine has left its P where Go's would (a call, a block, a yield, an exit) and
//! no marker holds a stack. The runtime code is the deterministic engine's:
//! [`Runtime::mutator_run`], [`Runtime::mark_work`], [`Runtime::gc_start`],
//! [`Runtime::mark_termination_start`], [`Runtime::gchelper`],
//! [`Runtime::mark_termination_finish`], [`Runtime::removal_step`], [`Runtime::stop_p`].
//!
//! Stop-the-world (Go's `stopTheWorld`). The coordinator sets `gcwaiting`, asks every P to give
//! up its goroutine at its next call ([`Runtime::preempt_p`], Go's `preemptall`), and takes every
//! P's lock in turn: a P runs its goroutine until it leaves, then sleeps until the world
//! restarts; an idle P has already given its lock up. The stop (`stw_stop_ns`) ends when the last
//! lock is taken. The coordinator then stops each P ([`Runtime::stop_p`]: grey objects to the
//! global lists, mcache flushed, counters folded), does the phase's work, lets go of the Ps and
//! clears `gcwaiting`. The pause is measured from the request to the restart, as Go's `gctrace`
//! and `GODEBUG` report it.
//!
//! Mark termination runs on `gcprocs` = min(GOMAXPROCS, CPUs, 32) threads (Go's `helpgc`): the
//! coordinator offers the re-scan list and the drain ([`MarkTermWork`]) to the sleeping Ps'
//! threads and works on it itself; a helper that wakes after the work is over leaves without
//! touching it, so the pause never waits for a late one. After the restart the first P round its
//! loop runs the walk over every goroutine that removes the cycle's barriers (Go's
//! `gcTryRemoveAllStackBarriers`, skipping running goroutines) and sums stack use, as GC time on
//! its timeline; the next cycle waits for it.
//!
//! Mark workers (Go 1.7's `gcControllerState`). Of `procs·gc_share` Ps' worth of marking, the
//! whole part runs on dedicated Ps (the first ones), which mark until no work is left; the
//! fractional remainder runs on the next P. A worker runs only when its P has no goroutine (Go
//! runs workers from `schedule`): a dedicated P with one asks it to leave at its next call
//! (`enlistWorker`); the fractional worker starts when its P schedules while its mark time is at
//! or under its share of the mark phase so far (so at the start of the phase), and marks until
//! preempted after a time slice or out of work. An idle P marks too (Go's idle worker).
//! Allocating goroutines assist (see `pacer`).
//! A worker that finds neither roots nor grey objects tells the coordinator, which runs the
//! ragged barrier (Go's `forEachP`: every P publishes its work buffer, at its next safe point or,
//! if idle, by the coordinator holding its lock) and, if marking is then complete, stops the
//! world for mark termination.
//!
//! Scheduling. A P runs its current goroutine until it leaves — it blocks, yields, exits, or is
//! preempted at a call after a time slice — then the next from its own queue, the global queue
//! every 61st time and whenever its own is empty (Go's `schedtick`); a P whose queue is long
//! while another P is idle moves half of it to the global queue (Go's `runqputslow`). Each P is
//! its own `sysmon`: at every turn of its loop (at most every 4,096 operations) it looks at its
//! goroutine's time slice ([`Runtime::retake`]) and polls the network ([`Runtime::netpoll`]).
//! When every P is idle, one wakes a blocked goroutine (the engine's timer). The
//! background sweep runs on the Ps (Go's `bgsweep` goroutine): a P sweeps a batch of spans at
//! each turn of its scheduler loop while the phase is sweep, so every free is told to that P's
//! sanitizer context. A procs schedule changes the P count at a cycle's sweep-termination
//! stop-the-world (Go's `procresize`): the engine starts a thread for every P the run will ever
//! have, and a P beyond the current count is dead — its thread sleeps without it, and the mark
//! workers are laid out over the live Ps.
//!
//! Minimum mutator utilisation. Each P records the intervals it spent marking or assisting, its
//! idle marking apart; the coordinator records every pause; [`crate::mmu::mmu_curves`] turns them
//! into the MMU curves.
//!
//! Tracing and profiling. While tracing, each P writes its events into its own buffer, the
//! coordinator writes the pauses and phases into the global one and reads full buffers at every
//! turn of its loop (see `trace`). While profiling, a profiler thread sends a signal every so
//! often (Go's `setitimer`) to a random P whose thread is on a CPU — never to one asleep; the P's
//! thread takes it at its next micro-operation boundary — inside the interpreter, inside a switch,
//! or at the top of its loop when it has no goroutine, where its M is in the scheduler on g0
//! (see `profile`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};

use crate::engine::RunResult;
use crate::error::RuntimeError;
use crate::heap::lock;
use crate::mark::{MarkProgress, MarkTermWork};
use crate::mgc::Phase;
use crate::mmu::{self, GcTimeline, MMU_WINDOWS_NS};
use crate::mutator::Rng;
use crate::runtime::{GcConfig, Runtime, Step, WorkloadImage};
use crate::sched::P;
use crate::stats::{Totals, scan_stalls_of};
use crate::trace::{
    STW_MARK_TERMINATION, STW_SWEEP_TERMINATION, TraceEv, Track, WORKER_DEDICATED,
    WORKER_FRACTIONAL, WORKER_IDLE,
};
use crate::workbuf::GcWork;

/// Operations a P runs between two looks at its scheduler loop (it still stops at every
/// operation when asked to).
const BATCH_OPS: u64 = 4096;

/// Heap bytes a mark worker scans between two looks at its clock.
const WORKER_DRAIN_BYTES: u64 = 16 << 10;

/// How long a dedicated or idle worker marks before looking at its scheduler loop again.
const WORKER_SLICE: Duration = Duration::from_millis(1);

/// Spans a P sweeps at each turn of its scheduler loop while the phase is sweep.
const SWEEP_BATCH: usize = 64;

/// How long a dead P's thread sleeps between looks at whether it is alive again.
const DEAD_P_SLEEP: Duration = Duration::from_millis(1);

/// How long an idle P sleeps before looking for work again.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// How long the coordinator sleeps when nothing needs it.
const COORDINATOR_SLEEP: Duration = Duration::from_micros(200);

/// A mark phase this long without a worker reporting "no work" makes the coordinator check
/// for termination itself (assists alone may have finished the marking).
const MARK_DONE_CHECK: Duration = Duration::from_millis(5);

/// How the mark workers are laid out over the Ps (Go 1.5's `startCycle`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerPlan {
    /// Ps that mark full time during the mark phase.
    pub dedicated: usize,
    /// The share of one more P that marks (0 for none).
    pub fractional: f64,
}

impl WorkerPlan {
    /// `procs·gc_share` Ps' worth of marking: its whole part dedicated, the rest fractional.
    pub fn new(procs: usize, gc_share: f64) -> WorkerPlan {
        let total = procs as f64 * gc_share;
        let dedicated = (total as usize).min(procs);
        let fractional = if dedicated < procs {
            total - dedicated as f64
        } else {
            0.0
        };
        WorkerPlan {
            dedicated,
            fractional,
        }
    }
}

/// Limits on a run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Give up after this many mutator operations.
    pub max_ops: u64,
    /// Give up after this much wall time.
    pub time_limit: Duration,
}

/// What the coordinator and the P threads share.
#[derive(Debug)]
struct Control {
    /// A stop-the-world is under way: Ps give up their lock at their next safe point.
    gcwaiting: AtomicBool,
    /// Guards the restart condition; `restart` is signalled when the world restarts and when
    /// the run ends, and idle Ps sleep on it.
    world: Mutex<()>,
    restart: Condvar,
    /// The run is over.
    done: AtomicBool,
    /// The first error any thread met.
    error: Mutex<Option<RuntimeError>>,
    /// Ragged barrier: the generation requested, and per P the generation it has flushed.
    flush_gen: AtomicU64,
    flushed: Box<[AtomicU64]>,
    /// A worker found no mark work.
    mark_done_hint: AtomicBool,
    /// Ps with nothing to run.
    idle_ps: AtomicUsize,
    /// Mutator operations, all Ps, and since the last cycle started.
    ops: AtomicU64,
    ops_since_cycle: AtomicU64,
    /// The mark phase's start, in ns since the origin.
    mark_start_ns: AtomicU64,
    /// The coordinator, to wake when a P asks for a cycle or finds marking done.
    coordinator: Thread,
    /// Mark termination's offer of parallel work to the stopped Ps' threads (Go's `helpgc`):
    /// the work and how many helpers it wants; `help_gen` counts offers, `help_claims` the
    /// threads that took the current one.
    help: Mutex<Option<(Arc<MarkTermWork>, usize)>>,
    help_gen: AtomicU64,
    help_claims: AtomicUsize,
    /// The last mark termination's after-restart walk waits for a P to run it.
    removal_offered: AtomicBool,
}

impl Control {
    /// Records the first error any thread met and wakes the coordinator to end the run.
    fn fail(&self, e: RuntimeError) {
        lock(&self.error).get_or_insert(e);
        self.coordinator.unpark();
    }

    /// Offers `work` to `helpers` of the parked P threads, waking that many of them (waking
    /// every one would leave the others runnable for nothing, competing for the cores with the
    /// threads doing the work).
    fn offer_help(&self, work: &Arc<MarkTermWork>, helpers: usize) {
        if helpers == 0 {
            return;
        }
        let _w = lock(&self.world);
        *lock(&self.help) = Some((Arc::clone(work), helpers));
        self.help_claims.store(0, Ordering::Relaxed);
        self.help_gen.fetch_add(1, Ordering::AcqRel);
        for _ in 0..helpers {
            self.restart.notify_one();
        }
    }

    /// Withdraws the offer; a helper that took it and arrives late finds the work over.
    fn withdraw_help(&self) {
        *lock(&self.help) = None;
    }
}

/// Go's `gcprocs`: the threads mark termination runs on, `min(GOMAXPROCS, CPUs, 32)`.
pub fn gcprocs(gomaxprocs: usize, cpus: usize) -> usize {
    gomaxprocs.min(cpus).clamp(1, 32)
}

/// The threaded engine.
#[derive(Debug)]
pub struct Threaded {
    rt: Runtime,
    ps: Box<[Mutex<P>]>,
    plan: WorkerPlan,
    worker: GcWork,
    stw: Vec<(u64, u64)>,
    origin: Instant,
    /// Signals the profiler thread has sent since the engine started.
    signals_sent: u64,
    /// When the engine began: the network poller's clock.
    created: Instant,
}

/// The stopped world: every P, held.
struct Stopped<'a> {
    ps: Vec<MutexGuard<'a, P>>,
    requested: Instant,
    /// When the last P was taken.
    stopped: Instant,
}

impl Threaded {
    /// An engine running `image` under `config`, with `config.procs` P threads.
    pub fn new(config: GcConfig, image: WorkloadImage) -> Result<Threaded, RuntimeError> {
        let mut ps: Vec<P> = (0..config.max_procs()).map(P::new).collect();
        let plan = WorkerPlan::new(config.procs.max(1), config.gc_share.clamp(0.0, 1.0));
        let rt = Runtime::new(config, image, &mut ps)?;
        rt.start_profiling(ps.iter_mut(), true);
        Ok(Threaded {
            rt,
            ps: ps.into_iter().map(Mutex::new).collect(),
            plan,
            worker: GcWork::new(),
            stw: Vec::new(),
            origin: Instant::now(),
            signals_sent: 0,
            created: Instant::now(),
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The mark-worker layout at the start (a procs schedule changes it with the P count).
    pub fn plan(&self) -> WorkerPlan {
        self.plan
    }

    /// Runs until `cycles` more cycles have completed, or fails when a limit is reached first
    /// ([`RuntimeError::Stalled`], [`RuntimeError::TimeLimit`]) or any thread meets an error.
    pub fn run(&mut self, cycles: u32, limits: Limits) -> Result<RunResult, RuntimeError> {
        let first = self.rt.gc.cycles_completed();
        let target = first + cycles as usize;
        self.origin = Instant::now();
        self.stw.clear();
        for p in self.ps.iter_mut() {
            let p = p.get_mut().unwrap_or_else(|e| e.into_inner());
            p.clock = Some(self.origin);
            p.gc_timeline = GcTimeline::new();
            p.idle_mark_timeline = GcTimeline::new();
        }
        let ctl = Control {
            gcwaiting: AtomicBool::new(false),
            world: Mutex::new(()),
            restart: Condvar::new(),
            done: AtomicBool::new(false),
            error: Mutex::new(None),
            flush_gen: AtomicU64::new(0),
            flushed: self.ps.iter().map(|_| AtomicU64::new(0)).collect(),
            mark_done_hint: AtomicBool::new(false),
            idle_ps: AtomicUsize::new(0),
            ops: AtomicU64::new(0),
            ops_since_cycle: AtomicU64::new(0),
            mark_start_ns: AtomicU64::new(0),
            coordinator: std::thread::current(),
            help: Mutex::new(None),
            help_gen: AtomicU64::new(0),
            help_claims: AtomicUsize::new(0),
            removal_offered: AtomicBool::new(false),
        };
        let (rt, ps, origin, created) = (&self.rt, &self.ps, self.origin, self.created);
        let mut signals_sent = 0;
        let gc_share = rt.config.gc_share.clamp(0.0, 1.0);
        let mut coordinator = Coordinator {
            rt,
            ps,
            ctl: &ctl,
            origin,
            worker: &mut self.worker,
            stw: &mut self.stw,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let outcome = std::thread::scope(|s| {
            for i in 0..ps.len() {
                let ctl = &ctl;
                std::thread::Builder::new()
                    .name(format!("P{i}"))
                    .spawn_scoped(s, move || {
                        PThread {
                            rt,
                            ps,
                            ctl,
                            gc_share,
                            i,
                            rng: Rng::seed_from_u64(rt.config.sched_seed() ^ (0x9e37 + i as u64)),
                            cycle: 0,
                            fractional_ns: 0,
                            dedicated_idle: false,
                            created,
                            helper_gcw: GcWork::new(),
                            help_seen: 0,
                        }
                        .run();
                    })
                    .expect("spawn a P thread");
            }
            let profiler = rt.config.profile.map(|cfg| {
                let ctl = &ctl;
                std::thread::Builder::new()
                    .name("profiler".into())
                    .spawn_scoped(s, move || profiler_thread(rt, ctl, cfg.interval))
                    .expect("spawn the profiler thread")
            });
            let r = coordinator.run(target, cycles, limits);
            ctl.done.store(true, Ordering::Release);
            if let Some(t) = profiler {
                signals_sent = t.join().unwrap_or(0);
            }
            for i in 0..ps.len() {
                rt.preempt_p(i);
            }
            let _w = lock(&ctl.world);
            ctl.restart.notify_all();
            r
        });
        let end_ns = self.origin.elapsed().as_nanos() as u64;
        for p in self.ps.iter_mut() {
            let p = p.get_mut().unwrap_or_else(|e| e.into_inner());
            self.rt.stop_p(p);
            self.rt.clear_preempt(p.id);
        }
        self.rt.trace_flush(
            self.ps
                .iter_mut()
                .map(|p| p.get_mut().unwrap_or_else(|e| e.into_inner())),
        );
        self.signals_sent += signals_sent;
        let profile = self
            .rt
            .profile(
                self.ps
                    .iter_mut()
                    .map(|p| &*p.get_mut().unwrap_or_else(|e| e.into_inner())),
            )
            .map(|mut prof| {
                prof.signals_sent = self.signals_sent;
                prof
            });
        let error = ctl.error.into_inner().unwrap_or_else(|e| e.into_inner());
        outcome?;
        if let Some(e) = error {
            return Err(e);
        }
        let (work, idle_mark): (Vec<GcTimeline>, Vec<GcTimeline>) = self
            .ps
            .iter_mut()
            .map(|p| {
                let p = p.get_mut().unwrap_or_else(|e| e.into_inner());
                p.clock = None;
                (
                    std::mem::take(&mut p.gc_timeline),
                    std::mem::take(&mut p.idle_mark_timeline),
                )
            })
            .unzip();
        let work: Vec<&[(u64, u64)]> = work.iter().map(GcTimeline::intervals).collect();
        let idle_mark: Vec<&[(u64, u64)]> = idle_mark.iter().map(GcTimeline::intervals).collect();
        let history = self.rt.gc.history();
        let cycles = history[first..target].to_vec();
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
            mmu: mmu::mmu_curves(&work, &idle_mark, &self.stw, (0, end_ns), &MMU_WINDOWS_NS),
            profile,
            trace: self.rt.trace.as_ref().map(|t| t.stats()),
        })
    }
}

/// The coordinator: cycle starts, the ragged barrier, mark termination, the background sweep.
struct Coordinator<'a> {
    rt: &'a Runtime,
    ps: &'a [Mutex<P>],
    ctl: &'a Control,
    origin: Instant,
    worker: &'a mut GcWork,
    stw: &'a mut Vec<(u64, u64)>,
    /// The machine's CPUs, read once (reading them takes a system call or two).
    cpus: usize,
}

impl<'a> Coordinator<'a> {
    fn run(&mut self, target: usize, wanted: u32, limits: Limits) -> Result<(), RuntimeError> {
        let rt = self.rt;
        let started = Instant::now();
        let mut mark_checked = Instant::now();
        loop {
            if let Some(e) = lock(&self.ctl.error).take() {
                return Err(e);
            }
            let completed = rt.gc.cycles_completed();
            if completed >= target && !rt.removal_pending() {
                return Ok(());
            }
            let completed = (completed + wanted as usize - target) as u32;
            let ops = self.ctl.ops.load(Ordering::Relaxed);
            if ops >= limits.max_ops {
                return Err(RuntimeError::Stalled {
                    completed,
                    wanted,
                    ops,
                });
            }
            if started.elapsed() >= limits.time_limit {
                return Err(RuntimeError::TimeLimit {
                    completed,
                    wanted,
                    secs: limits.time_limit.as_secs_f64(),
                });
            }
            let phase = rt.gc.phase();
            rt.trace_read_pending();
            if rt.gc.start_requested() && phase != Phase::Mark && !rt.removal_pending() {
                self.ctl.ops_since_cycle.store(0, Ordering::Relaxed);
                let stw = rt.trace_now();
                let mut world = self.stop_the_world();
                let r = match rt.config.procs_at_cycle(rt.gc.cycle() + 1) {
                    Some(n) => rt.procresize(world.ps.iter_mut().map(|p| &mut **p), n),
                    None => Ok(()),
                }
                .and_then(|()| rt.gc_start(self.worker, &mut world.ps[0]));
                let pause = self.start_the_world(world);
                rt.trace_stw(STW_SWEEP_TERMINATION, stw);
                rt.gc.set_sweep_term_pause(pause);
                self.ctl
                    .mark_start_ns
                    .store(self.now_ns(), Ordering::Relaxed);
                mark_checked = Instant::now();
                r?;
                continue;
            }
            if phase == Phase::Mark
                && (self.ctl.mark_done_hint.swap(false, Ordering::AcqRel)
                    || mark_checked.elapsed() >= MARK_DONE_CHECK)
            {
                mark_checked = Instant::now();
                self.for_each_p_flush();
                self.worker.dispose(&rt.gc.pool);
                if rt.mark_complete() {
                    let stw = rt.trace_now();
                    let world = self.stop_the_world();
                    let stop_ns = world.stopped.duration_since(world.requested).as_nanos() as u64;
                    // The re-scans and the drain on `gcprocs` threads: this one and the
                    // stopped Ps' (Go's `helpgc`).
                    let work = Arc::new(rt.mark_termination_start());
                    let helpers = gcprocs(rt.gomaxprocs(), self.cpus).saturating_sub(1);
                    self.ctl.offer_help(&work, helpers);
                    rt.gchelper(&work, self.worker, false, Track::Gc);
                    self.ctl.withdraw_help();
                    let r = rt.mark_termination_finish(&work, stop_ns);
                    let pause = self.start_the_world(world);
                    rt.trace_stw(STW_MARK_TERMINATION, stw);
                    rt.gc.set_mark_term_pause(pause, stop_ns);
                    // The after-restart walk runs on the first P to come round its loop.
                    self.ctl.removal_offered.store(true, Ordering::Release);
                    r?;
                }
                continue;
            }
            if phase == Phase::Off && rt.live_goroutines() == 0 {
                // Nothing left to run: only forced cycles can finish the run.
                rt.gc.request_start();
                continue;
            }
            std::thread::park_timeout(COORDINATOR_SLEEP);
        }
    }

    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Stops the world: request, then take every P as it reaches a safe point, then stop it.
    fn stop_the_world(&self) -> Stopped<'a> {
        let requested = Instant::now();
        self.ctl.gcwaiting.store(true, Ordering::Release);
        for i in 0..self.ps.len() {
            self.rt.preempt_p(i);
        }
        let mut ps: Vec<MutexGuard<'a, P>> = self.ps.iter().map(lock).collect();
        let stopped = Instant::now();
        for p in &mut ps {
            self.rt.stop_p(p);
        }
        Stopped {
            ps,
            requested,
            stopped,
        }
    }

    /// Restarts the world; returns the pause, from the request to now.
    fn start_the_world(&mut self, world: Stopped<'a>) -> u64 {
        let Stopped { ps, requested, .. } = world;
        drop(ps);
        // The world has restarted once the Ps are told so. Read the clock before letting go of
        // the world lock: the woken Ps need it, so none of them can take this thread's core
        // between the restart and the reading.
        let end = {
            let _w = lock(&self.ctl.world);
            self.ctl.gcwaiting.store(false, Ordering::Release);
            self.ctl.restart.notify_all();
            Instant::now()
        };
        let at = |t: Instant| t.duration_since(self.origin).as_nanos() as u64;
        self.stw.push((at(requested), at(end)));
        end.duration_since(requested).as_nanos() as u64
    }

    /// Go's `forEachP(dispose)`: every P publishes its grey objects. A P that is running does
    /// it at its next safe point; an idle one, whose lock is free, is flushed here.
    fn for_each_p_flush(&mut self) {
        let generation = self.ctl.flush_gen.fetch_add(1, Ordering::AcqRel) + 1;
        for i in 0..self.ps.len() {
            self.rt.preempt_p(i);
        }
        loop {
            let mut all = true;
            for (i, flushed) in self.ctl.flushed.iter().enumerate() {
                if flushed.load(Ordering::Acquire) >= generation {
                    continue;
                }
                match self.ps[i].try_lock() {
                    Ok(mut p) => {
                        p.gcw.dispose(&self.rt.gc.pool);
                        flushed.store(generation, Ordering::Release);
                    }
                    Err(_) => all = false,
                }
            }
            if all || self.ctl.done.load(Ordering::Acquire) {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// The profiler thread (the threaded engine's `setitimer`): until the run ends, sleeps a random
/// time of mean `interval` (the OS rounds short sleeps up to tens of microseconds), then signals
/// the M of a random P whose thread is on a CPU; with every thread asleep it sends nothing, as
/// `ITIMER_PROF` counts only CPU time. A P that falls asleep drops a signal still pending.
/// Returns the signals sent. It sleeps rather than spins so that it takes no core from the Ps.
fn profiler_thread(rt: &Runtime, ctl: &Control, interval: Duration) -> u64 {
    let mut rng = Rng::seed_from_u64(rt.config.sched_seed() ^ 0x5167_7071);
    let mean_ns = interval.as_nanos().max(1) as u64;
    let mut sent = 0;
    while !ctl.done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_nanos(rng.random_range(0..2 * mean_ns)));
        sent += u64::from(rt.signal_running_p(&mut rng).is_some());
    }
    sent
}

/// One P's thread.
struct PThread<'a> {
    rt: &'a Runtime,
    ps: &'a [Mutex<P>],
    ctl: &'a Control,
    gc_share: f64,
    i: usize,
    rng: Rng,
    /// The cycle the fractional accounting is for.
    cycle: u32,
    /// Nanoseconds the fractional worker marked in that cycle.
    fractional_ns: u64,
    /// A dedicated worker found no work: run goroutines for one batch before looking again.
    dedicated_idle: bool,
    /// When the engine began: the clock `sysmon` and the network poller read.
    created: Instant,
    /// The work buffer this thread marks into when it helps mark termination without its P.
    helper_gcw: GcWork,
    /// The last help offer this thread has seen.
    help_seen: u64,
}

/// What a P does next.
enum Turn {
    Mark { until: Instant, fractional: bool },
    Mutator,
}

impl<'a> PThread<'a> {
    fn run(mut self) {
        self.rt.set_oncpu(self.i, true);
        let mut p = lock(&self.ps[self.i]);
        while !self.ctl.done.load(Ordering::Acquire) {
            // The scheduler loop is a safe point: a P with no goroutine has answered any request
            // to come here.
            if p.curg.is_none() {
                self.rt.clear_preempt(self.i);
            }
            if self.ctl.gcwaiting.load(Ordering::Acquire) {
                if p.curg.is_some() {
                    // A running goroutine stops at its next call, not here.
                    if let Err(e) = self.mutate(&mut p) {
                        self.ctl.fail(e);
                        break;
                    }
                } else {
                    p = self.park(p, None);
                }
                continue;
            }
            if p.dead {
                // Beyond the current P count: sleep without the P until a procresize revives it.
                p = self.park(p, Some(DEAD_P_SLEEP));
                continue;
            }
            // Between goroutines the loop is the scheduler, on g0.
            if p.curg.is_none() {
                self.rt.sig_boundary_scheduler(&mut p);
            }
            let now = self.created.elapsed().as_nanos() as u64;
            self.rt.retake(&mut p, now);
            self.rt.netpoll(now, &mut self.rng);
            if self.ctl.removal_offered.swap(false, Ordering::AcqRel)
                && let Err(e) = self.remove_barriers(&mut p)
            {
                self.ctl.fail(e);
                break;
            }
            self.rt.sweep_batch(&mut p, SWEEP_BATCH);
            let generation = self.ctl.flush_gen.load(Ordering::Acquire);
            if self.ctl.flushed[self.i].load(Ordering::Acquire) < generation {
                p.gcw.dispose(&self.rt.gc.pool);
                self.ctl.flushed[self.i].store(generation, Ordering::Release);
            }
            let r = match self.turn(&mut p) {
                Turn::Mark { until, fractional } => self.mark(&mut p, until, fractional, false),
                Turn::Mutator => match self.mutate(&mut p) {
                    Ok(Step::Idle) => {
                        p = self.idle(p);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = r {
                self.ctl.fail(e);
                break;
            }
        }
        self.rt.set_oncpu(self.i, false);
    }

    /// The last mark termination's after-restart walk (Go's `gcTryRemoveAllStackBarriers`), on
    /// this P, as GC time on its timeline; then the cycle's `gctrace` line.
    fn remove_barriers(&mut self, p: &mut P) -> Result<(), RuntimeError> {
        let t0 = p.now_ns();
        self.rt.removal_step(usize::MAX)?;
        if let Some(t0) = t0 {
            p.note_gc_time(t0);
        }
        self.rt.trace_cycle();
        self.ctl.coordinator.unpark();
        Ok(())
    }

    /// Gives up the P until the world restarts (or, with `timeout`, at most that long), helping
    /// mark termination meanwhile if it asks.
    fn park(&mut self, p: MutexGuard<'a, P>, timeout: Option<Duration>) -> MutexGuard<'a, P> {
        drop(p);
        self.rt.set_oncpu(self.i, false);
        loop {
            let w = lock(&self.ctl.world);
            match timeout {
                None => {
                    let seen = self.help_seen;
                    let _w = self
                        .ctl
                        .restart
                        .wait_while(w, |_| {
                            self.ctl.gcwaiting.load(Ordering::Acquire)
                                && !self.ctl.done.load(Ordering::Acquire)
                                && self.ctl.help_gen.load(Ordering::Acquire) == seen
                        })
                        .unwrap_or_else(|e| e.into_inner());
                }
                Some(t) => {
                    let _w = self
                        .ctl
                        .restart
                        .wait_timeout(w, t)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
            if !self.help() || timeout.is_some() {
                break;
            }
        }
        self.rt.set_oncpu(self.i, true);
        lock(&self.ps[self.i])
    }

    /// Takes mark termination's offer of work if there is a new one with room for a helper
    /// (Go's `gchelper`); whether there was a new offer.
    fn help(&mut self) -> bool {
        let generation = self.ctl.help_gen.load(Ordering::Acquire);
        if generation == self.help_seen {
            return false;
        }
        self.help_seen = generation;
        let offer = lock(&self.ctl.help).clone();
        if let Some((work, helpers)) = offer
            && self.ctl.help_claims.fetch_add(1, Ordering::AcqRel) < helpers
        {
            let track = Track::Worker(self.i as u16);
            self.rt.gchelper(&work, &mut self.helper_gcw, true, track);
        }
        true
    }

    fn turn(&mut self, p: &mut P) -> Turn {
        let rt = self.rt;
        if rt.gc.phase() != Phase::Mark {
            self.dedicated_idle = false;
            return Turn::Mutator;
        }
        let plan = WorkerPlan::new(rt.gomaxprocs(), self.gc_share);
        let now = Instant::now();
        if self.i < plan.dedicated {
            if std::mem::take(&mut self.dedicated_idle) {
                return Turn::Mutator;
            }
            if p.curg.is_some() {
                // A worker runs only when the P schedules: ask the goroutine to give up the P
                // at its next call (`enlistWorker`'s `preemptone`).
                rt.preempt_p(self.i);
                return Turn::Mutator;
            }
            // A dedicated worker's goroutines go where the other Ps can run them.
            rt.spill_runq(p, 0);
            return Turn::Mark {
                until: now + WORKER_SLICE,
                fractional: false,
            };
        }
        // Go 1.7's fractional worker: when the P schedules and the worker is at or under its
        // share of the mark phase so far (so it starts the phase), it marks until preempted —
        // a time slice — or out of work.
        if self.i == plan.dedicated && plan.fractional > 0.0 && p.curg.is_none() {
            let cycle = rt.gc.cycle();
            if cycle != self.cycle {
                self.cycle = cycle;
                self.fractional_ns = 0;
            }
            let elapsed = p
                .now_ns()
                .unwrap_or(0)
                .saturating_sub(self.ctl.mark_start_ns.load(Ordering::Relaxed));
            if (self.fractional_ns as f64) <= plan.fractional * elapsed as f64 {
                return Turn::Mark {
                    until: now + Duration::from_nanos(rt.config.time_slice_ns),
                    fractional: true,
                };
            }
        }
        Turn::Mutator
    }

    /// Marks until `until`, a stop request, or no work.
    fn mark(
        &mut self,
        p: &mut P,
        until: Instant,
        fractional: bool,
        idle: bool,
    ) -> Result<(), RuntimeError> {
        let rt = self.rt;
        let Some(t0) = p.now_ns() else {
            return Ok(());
        };
        let trace_t0 = rt.trace_now();
        let mut progress;
        loop {
            progress = rt.mark_work(&mut p.gcw, WORKER_DRAIN_BYTES, Some(self.i))?;
            if progress == MarkProgress::Done
                || rt.preempt_requested(self.i)
                || Instant::now() >= until
            {
                break;
            }
            if progress == MarkProgress::Waiting {
                std::thread::yield_now();
            }
        }
        if idle {
            p.note_idle_mark_time(t0);
        } else {
            p.note_gc_time(t0);
        }
        let kind = if fractional {
            WORKER_FRACTIONAL
        } else if idle {
            WORKER_IDLE
        } else {
            WORKER_DEDICATED
        };
        let track = Track::Worker(self.i as u16);
        rt.trace_slice_p(p, track, TraceEv::MarkWorker, trace_t0, [kind, 0]);
        if fractional {
            self.fractional_ns += p.now_ns().unwrap_or(t0) - t0;
        }
        if progress == MarkProgress::Done {
            self.dedicated_idle = true;
            self.ctl.mark_done_hint.store(true, Ordering::Release);
            self.ctl.coordinator.unpark();
        }
        Ok(())
    }

    /// Runs a batch of goroutine operations.
    fn mutate(&mut self, p: &mut P) -> Result<Step, RuntimeError> {
        let rt = self.rt;
        let before = p.counters.ops;
        let step = rt.mutator_run(p, BATCH_OPS)?;
        let ran = p.counters.ops - before;
        if ran > 0 {
            self.ctl.ops.fetch_add(ran, Ordering::Relaxed);
            let since = self.ctl.ops_since_cycle.fetch_add(ran, Ordering::Relaxed) + ran;
            if rt.config.force_gc_ops.is_some_and(|n| since >= n) {
                rt.gc.request_start();
            }
            if self.ctl.idle_ps.load(Ordering::Relaxed) > 0 {
                rt.spill_runq(p, 1);
            }
        }
        if rt.gc.start_requested() && rt.gc.phase() != Phase::Mark {
            self.ctl.coordinator.unpark();
        }
        Ok(step)
    }

    /// Nothing to run: mark if there is marking (Go's idle worker), wake a blocked goroutine if
    /// every P is idle (the timer), else sleep a little without the P.
    fn idle(&mut self, mut p: MutexGuard<'a, P>) -> MutexGuard<'a, P> {
        let rt = self.rt;
        if rt.gc.phase() == Phase::Mark {
            let until = Instant::now() + WORKER_SLICE;
            if let Err(e) = self.mark(&mut p, until, false, true) {
                self.ctl.fail(e);
            }
            return p;
        }
        let idle = self.ctl.idle_ps.fetch_add(1, Ordering::AcqRel) + 1;
        if idle == rt.gomaxprocs() && rt.wake_one_if_all_blocked(&mut p, &mut self.rng) {
            self.ctl.idle_ps.fetch_sub(1, Ordering::AcqRel);
            return p;
        }
        let p = self.park(p, Some(IDLE_SLEEP));
        self.ctl.idle_ps.fetch_sub(1, Ordering::AcqRel);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_plan_follows_go_1_5() {
        assert_eq!(
            WorkerPlan::new(8, 0.25),
            WorkerPlan {
                dedicated: 2,
                fractional: 0.0
            }
        );
        let p = WorkerPlan::new(2, 0.25);
        assert_eq!(p.dedicated, 0);
        assert!((p.fractional - 0.5).abs() < 1e-12);
        let p = WorkerPlan::new(6, 0.25);
        assert_eq!(p.dedicated, 1);
        assert!((p.fractional - 0.5).abs() < 1e-12);
    }
}
