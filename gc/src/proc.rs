//! The scheduler (Go's `proc.go`): creating and ending goroutines, choosing a P's next
//! goroutine, the switches onto and off a P's M, waking blocked goroutines, preemption requests
//! and `procresize`.
//!
//! Invariant: a live goroutine is in exactly one place — a P's run queue, the global run queue,
//! the parked list, or a P's `curg` (owned by that P through its [`GOwner`]) — except while one
//! party holds it between two of them; a dead one's `G` is on the free list. Every move between
//! places is a status change on the goroutine's atomic status word ([`G::try_own`],
//! [`G::release`]), so a marker holding the `SCAN` bit never races a scheduler.
//!
//! Switches. A goroutine reaches its P's M through `gogo` and leaves it through `mcall`, each a
//! few separate register stores with a micro-operation boundary between them, where a profiling
//! signal may land (see `profile`). The scheduler, the switches and the code that runs with the
//! world stopped are `nowritebarrier` regions (see `nowb`).

use std::sync::atomic::{AtomicBool, Ordering};

use rand::{RngExt, SeedableRng};

use crate::error::RuntimeError;
use crate::heap::lock;
use crate::mutator::{Behaviour, Rng};
use crate::nowb::nowritebarrier;
use crate::profile::{BarrierSignals, Curg};
use crate::runtime::Runtime;
use crate::sched::{G, GIndex, GOwner, GState, P, status};
use crate::trace::TraceEv;

impl Runtime {
    /// Stops `p` at a safe point for a stop-the-world: its goroutine goes back to the run queue,
    /// its grey objects to the global lists, its mcache spans to the heap, its counters to the
    /// cycle.
    pub fn stop_p(&self, p: &mut P) {
        let _nowb = nowritebarrier("stopTheWorld");
        self.deschedule(p);
        p.gcw.dispose(&self.gc.pool);
        self.heap.flush_mcache(&mut p.mcache);
        self.gc.fold_p(std::mem::take(&mut p.counters));
    }

    /// Changes the P count to `nprocs` (Go's `procresize`), with the world stopped: `ps` is every
    /// P the engine has, each stopped by [`Runtime::stop_p`]. A P that dies hands its run queue to
    /// the global queue and destroys its sanitizer context (`raceprocdestroy`); a P that comes
    /// alive gets a fresh context (`raceproccreate`). Dead Ps stay allocated, as in Go. Then the
    /// sanitizer's books are checked: every context is a live P's, every metadata slot is in
    /// the table, a live context's cache or the global pool.
    pub fn procresize<'p>(
        &self,
        ps: impl IntoIterator<Item = &'p mut P>,
        nprocs: usize,
    ) -> Result<(), RuntimeError> {
        let _nowb = nowritebarrier("procresize");
        let mut contexts = Vec::new();
        for p in ps {
            let dead = p.id >= nprocs;
            if dead && !p.dead {
                debug_assert!(p.curg.is_none(), "stop_p descheduled it");
                if let Some(tr) = &self.trace {
                    tr.release(&mut p.tracebuf);
                }
                lock(&self.globrunq).extend(p.runq.drain(..));
                p.gcw.dispose(&self.gc.pool);
                self.heap.flush_mcache(&mut p.mcache);
                if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.take()) {
                    san.proc_destroy(ctx);
                }
            } else if !dead
                && p.dead
                && let Some(san) = &self.sanitizer
            {
                p.racectx = Some(san.proc_create());
            }
            p.dead = dead;
            contexts.extend(p.racectx.as_ref());
        }
        self.gomaxprocs.store(nprocs, Ordering::Relaxed);
        match &self.sanitizer {
            Some(san) => san
                .check_accounting(&contexts)
                .map_err(RuntimeError::SanitizerAccounting),
            None => Ok(()),
        }
    }

    /// Asks P `id` to leave its goroutine at the next safe point and return to its scheduler
    /// loop (`mutator_run` and preemptible mark work return early).
    pub fn preempt_p(&self, id: usize) {
        self.preempt.set(id);
    }

    /// Clears P `id`'s preemption request; its scheduler loop calls this before looking at why
    /// it was preempted.
    pub fn clear_preempt(&self, id: usize) {
        self.preempt.clear(id);
    }

    /// Whether P `id` has been asked to come to a safe point.
    #[inline]
    pub fn preempt_requested(&self, id: usize) -> bool {
        self.preempt.is_set(id)
    }

    /// Creates a goroutine running `behaviour` and queues it on `p` (Go's `newproc`).
    pub fn newproc(&self, behaviour: Box<dyn Behaviour>, p: &mut P) -> Result<(), RuntimeError> {
        let index = match lock(&self.gfree).pop() {
            Some(i) => i,
            None => {
                let i = self.allg.count() as GIndex;
                let pushed = self.allg.push(G::new(i));
                debug_assert_eq!(pushed as GIndex, i);
                pushed as GIndex
            }
        };
        let g = self.g(index);
        let mut owner = g
            .try_own(status::DEAD, status::IDLE)
            .expect("a free G is dead and unowned");
        let goid = self.next_goid.fetch_add(1, Ordering::Relaxed);
        g.set_goid(goid);
        // A request to scan the G's previous goroutine does not carry over to this one.
        g.preempt_scan.store(false, Ordering::Relaxed);
        let stack = lock(&self.stackpool).stackalloc(stacks::stack::FIXED_STACK)?;
        let rng = Rng::seed_from_u64(self.config.seed ^ goid.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *g.state(&mut owner) = Some(GState {
            gs: stacks::GStack::new(goid, stack, &self.prog),
            depth: 0,
            behaviour,
            rng,
            track: None,
            gc_assist_bytes: 0,
            assist_cycle: 0,
            true_frames: Vec::new(),
            shadow: None,
            frame_memos: Default::default(),
        });
        self.live_gs.fetch_add(1, Ordering::Relaxed);
        p.counters.spawned += 1;
        self.trace_p(p, TraceEv::GoCreate, [goid, 0]);
        self.gc.note_new_goroutine(self, index);
        g.release(owner, status::RUNNABLE);
        p.runq.push_back(index);
        Ok(())
    }

    /// Makes the next runnable goroutine `p`'s current one; false if there is none.
    pub fn schedule(&self, p: &mut P) -> bool {
        let _nowb = nowritebarrier("schedule");
        debug_assert!(p.curg.is_none());
        for _ in 0..p.runq.len() + 1 {
            p.schedtick = p.schedtick.wrapping_add(1);
            let global_first = p.schedtick.is_multiple_of(61);
            let next = global_first
                .then(|| lock(&self.globrunq).pop_front())
                .flatten()
                .or_else(|| p.runq.pop_front())
                .or_else(|| lock(&self.globrunq).pop_front());
            let Some(index) = next else { return false };
            let g = self.g(index);
            let Some(owner) = g.try_own(status::RUNNABLE, status::RUNNING) else {
                // A marker holds its stack: try it again later.
                p.runq.push_back(index);
                continue;
            };
            if g.scan_valid_cycle.load(Ordering::Relaxed) == self.gc.cycle() {
                // It runs again after its scan: its stack is no longer known good (Go's
                // `casgstatus` to running calls `queueRescan`; outside a mark that only clears
                // `gcscanvalid`).
                g.scan_valid_cycle.store(0, Ordering::Relaxed);
                self.gc.queue_rescan(self, index);
            }
            p.curg = Some(owner);
            return true;
        }
        false
    }

    /// Takes `p`'s current goroutine off it at once, runnable, to the global run queue as a
    /// preempted goroutine goes (`gopreempt_m`). The engines never need it while goroutines
    /// leave only at their prologues; `stop_p` keeps it as the guarantee that a stopped P holds
    /// no goroutine.
    pub fn deschedule(&self, p: &mut P) {
        if let Some(mut owner) = p.curg.take() {
            let index = owner.index();
            let g = self.g(index);
            if let Some(st) = g.state(&mut owner).as_ref() {
                g.stack_used.store(st.gs.used() as u64, Ordering::Relaxed);
            }
            self.trace_go_left(p, index, crate::trace::LEFT_PREEMPT);
            self.g0_reset_to_scheduler(p);
            g.release(owner, status::RUNNABLE);
            lock(&self.globrunq).push_back(index);
        }
    }

    /// Go's `sysmon` looking at P `p` at time `now_ns` (`retake`): if the goroutine running there
    /// has had the P for the time slice (`forcePreemptNS`) since the scheduler last picked one,
    /// ask it to give up the P at its next call (`preemptone`). A new pick restarts the count.
    pub fn retake(&self, p: &mut P, now_ns: u64) {
        if p.sysmon_tick != p.schedtick {
            p.sysmon_tick = p.schedtick;
            p.sysmon_since_ns = now_ns;
        } else if p.curg.is_some()
            && now_ns.saturating_sub(p.sysmon_since_ns) >= self.config.time_slice_ns
        {
            self.preempt_p(p.id);
        }
    }

    /// The network poller and timers (Go's `netpoll` in `findrunnable` and `sysmon`): readies as
    /// many parked goroutines as the workload's wake rate has made due by `now_ns` (time since
    /// the runtime began), chosen at random by `rng`, onto the global run queue
    /// (`injectglist`). A wake that finds no parked goroutine is lost, as a request that
    /// arrives for a server with every goroutine busy would queue in the kernel instead.
    pub fn netpoll(&self, now_ns: u64, rng: &mut Rng) {
        if self.wake_per_ns <= 0.0 {
            return;
        }
        let due = (now_ns as f64 * self.wake_per_ns) as u64;
        let mut done = self.netpoll_woken.load(Ordering::Relaxed);
        loop {
            if due <= done {
                return;
            }
            match self.netpoll_woken.compare_exchange_weak(
                done,
                due,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => done = now,
            }
        }
        for _ in done..due {
            let index = {
                let mut parked = lock(&self.parked);
                if parked.is_empty() {
                    return;
                }
                let i = rng.random_range(0..parked.len());
                parked.swap_remove(i)
            };
            self.ready_to(index, None);
        }
    }

    /// Moves the back half of `p`'s run queue, beyond `keep` goroutines, to the global queue
    /// where idle Ps find it (Go's `runqputslow`).
    pub fn spill_runq(&self, p: &mut P, keep: usize) {
        if p.runq.len() <= keep {
            return;
        }
        let n = if keep == 0 {
            p.runq.len()
        } else {
            (p.runq.len() - keep).div_ceil(2)
        };
        let at = p.runq.len() - n;
        lock(&self.globrunq).extend(p.runq.drain(at..));
    }

    /// Wakes one blocked goroutine, if the P has nothing to do and no goroutine can run anywhere
    /// (the engine's stand-in for a timer or the network poller). Returns whether it did.
    pub fn wake_one_if_all_blocked(&self, p: &mut P, rng: &mut Rng) -> bool {
        let mut parked = lock(&self.parked);
        if parked.is_empty() {
            return false;
        }
        let i = rng.random_range(0..parked.len());
        let index = parked.swap_remove(i);
        drop(parked);
        self.ready(index, p);
        true
    }

    /// Moves a blocked goroutine to `p`'s run queue (Go's `ready`).
    pub(crate) fn ready(&self, index: GIndex, p: &mut P) {
        self.ready_to(index, Some(p));
    }

    /// Makes blocked goroutine `index` runnable, on `p`'s run queue, or on the global one.
    fn ready_to(&self, index: GIndex, p: Option<&mut P>) {
        let g = self.g(index);
        loop {
            if let Some(owner) = g.try_own(status::WAITING, status::RUNNABLE) {
                g.release(owner, status::RUNNABLE);
                break;
            }
            // A marker is scanning it; it releases the stack in a bounded time.
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        match p {
            Some(p) => p.runq.push_back(index),
            None => lock(&self.globrunq).push_back(index),
        }
    }

    /// The scheduler has picked `p`'s goroutine (a signal boundary on g0, in `schedule`); `p`'s
    /// M switches to it (Go's `gogo`: g, then SP, then PC, a signal boundary once the PC is in
    /// `gogo` and after each store but the last; see `profile`).
    pub(crate) fn gogo(&self, p: &mut P) {
        let _nowb = nowritebarrier("gogo");
        self.sig_boundary_scheduler(p);
        let mut owner = p.curg.take().expect("schedule made it current");
        let index = owner.index();
        let st = self
            .g(index)
            .state(&mut owner)
            .as_ref()
            .expect("a scheduled goroutine has state");
        if let Some(tr) = &self.trace {
            p.trace_running_since = tr.now_ns();
        }
        self.gogo_switch(p, Curg::of(index, st));
        p.curg = Some(owner);
    }

    /// Ends the owned goroutine, on g0 in `goexit0`'s `gfput`: its remaining barriers are passed,
    /// its stack returns to the pool and its `G` to the free list (seed 002's `gfput`: the
    /// barriers go with the goroutine).
    pub(crate) fn goexit(&self, mut owner: GOwner, p: &mut P) -> Result<(), RuntimeError> {
        let index = owner.index();
        let g = self.g(index);
        let mut st = g
            .state(&mut owner)
            .take()
            .expect("a running goroutine has state");
        let hi = st.gs.stack().hi();
        let mut sig = BarrierSignals::on(self, p, index, &st.true_frames);
        let passed = st
            .gs
            .unwind_barriers_with_signals(&self.prog, hi, &mut sig)?;
        if passed > 0 {
            self.trace_p(p, TraceEv::BarrierUnwind, [st.gs.goid(), passed as u64]);
        }
        self.gc.note_goroutine_exit(&st.gs.take_counters());
        g.stack_used.store(0, Ordering::Relaxed);
        lock(&self.stackpool).stackfree(st.gs.into_stack());
        self.live_gs.fetch_sub(1, Ordering::Relaxed);
        g.release(owner, status::DEAD);
        lock(&self.gfree).push(index);
        Ok(())
    }
}

/// One flag per P, raised by another thread and looked at by the P's own at its safe points:
/// a preemption request (Go's `preempt`), a pending profiling signal. Ids beyond the Ps are
/// never set.
#[derive(Debug)]
pub(crate) struct PFlags(Box<[AtomicBool]>);

impl PFlags {
    pub(crate) fn new(procs: usize) -> PFlags {
        PFlags((0..procs).map(|_| AtomicBool::new(false)).collect())
    }

    pub(crate) fn set(&self, id: usize) {
        if let Some(f) = self.0.get(id) {
            f.store(true, Ordering::Release);
        }
    }

    pub(crate) fn clear(&self, id: usize) {
        if let Some(f) = self.0.get(id) {
            f.store(false, Ordering::Release);
        }
    }

    /// Whether P `id`'s flag is up (a relaxed look, cheap at every operation).
    #[inline]
    pub(crate) fn is_set(&self, id: usize) -> bool {
        self.0.get(id).is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Lowers P `id`'s flag; whether it was up.
    #[inline]
    pub(crate) fn take(&self, id: usize) -> bool {
        self.is_set(id) && self.0[id].swap(false, Ordering::Acquire)
    }
}
