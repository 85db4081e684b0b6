//! Go 1.7 around the pause, on hand-built scenarios: the after-restart barrier removal (a running
//! goroutine skipped, its stale barriers hit while the world runs and removed at its next scan),
//! the in-pause mode, mark termination visiting the re-scan list and nothing else, `dequeueRescan`,
//! preemption at the next call (time slice, stop-the-world, `preemptscan`), and the parallel
//! re-scan and drain giving the serial counts.
//!
//! The program (one function, `main.leaf`, a 32-byte frame whose words 0 and 2 are pointer
//! slots) and the scripted goroutines are `common`'s: each plays the operations the test queues,
//! and an empty script yields.

mod common;

use std::sync::Arc;

use common::{NODE, Queue, Script, call, scripted_runtime};
use gc::mark::MarkProgress;
use gc::runtime::BarrierRemoval;
use gc::sched::{P, status};
use gc::trace::Track;
use gc::workbuf::GcWork;
use gc::{CycleStats, GcConfig, Op, Runtime, RuntimeError, Step};

/// A runtime with one P and `n` scripted goroutines.
struct Bed {
    scripts: Vec<Queue>,
    rt: Runtime,
    p: P,
    worker: GcWork,
}

impl Bed {
    fn new(n: usize, tweak: impl FnOnce(&mut GcConfig)) -> Bed {
        let scripts: Vec<Queue> = (0..n).map(|_| Queue::default()).collect();
        let (rt, p) = scripted_runtime(&scripts, |c| {
            c.debug.gccheckmark = true;
            tweak(c);
        });
        Bed {
            scripts,
            rt,
            p,
            worker: GcWork::new(),
        }
    }

    /// Queues `ops` for goroutine `g` (by creation order).
    fn queue(&self, g: usize, ops: impl IntoIterator<Item = Op>) {
        self.scripts[g].lock().unwrap().extend(ops);
    }

    /// Runs `n` mutator steps on the P.
    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.rt.mutator_step(&mut self.p).unwrap();
        }
    }

    /// The goroutine the P runs now.
    fn curg(&self) -> Option<u32> {
        self.p.curg.as_ref().map(|o| o.index())
    }

    /// Sweep termination (the P stopped first).
    fn start(&mut self) {
        self.rt.stop_p(&mut self.p);
        self.rt.gc_start(&mut self.worker, &mut self.p).unwrap();
    }

    /// Mark steps until marking is done (the P's goroutine, if any, is left running).
    fn mark(&mut self) {
        while self.rt.mark_step(&mut self.worker).unwrap() != MarkProgress::Done {}
    }

    /// Stops the P and runs mark termination.
    fn terminate(&mut self) -> Result<CycleStats, RuntimeError> {
        self.rt.stop_p(&mut self.p);
        self.worker.dispose(&self.rt.gc.pool);
        assert!(self.rt.mark_complete());
        self.rt.mark_termination(&mut self.worker, 0)
    }

    /// The last cycle's row, after the after-restart walk.
    fn last(&self) -> CycleStats {
        *self.rt.gc.history().last().expect("a completed cycle")
    }

    /// `(stkbar_len, stkbar_pos)` of goroutine `index`, which must not be running.
    fn stkbar(&self, index: u32) -> (usize, usize) {
        let g = self.rt.g(index);
        let (mut owner, restore) = g.try_own_for_scan().expect("not running");
        let st = g.state(&mut owner).as_ref().expect("alive");
        let r = (st.gs.stkbar_len(), st.gs.stkbar_pos());
        g.release(owner, restore);
        r
    }
}

/// One goroutine, 100 frames deep (3,200 bytes: barriers at the first slots at least 1 and 2 KiB
/// above its SP), scanned by the marker, then run: it is on the re-scan list.
fn deep_goroutine_marked(tweak: impl FnOnce(&mut GcConfig)) -> Bed {
    let mut b = Bed::new(1, tweak);
    b.queue(0, vec![call(); 100]);
    b.steps(100);
    b.start();
    b.mark();
    assert_eq!(b.stkbar(0), (2, 0), "barriers at 1 and 2 KiB");
    b.queue(0, [Op::Ret, call()]);
    b.steps(2);
    b
}

#[test]
fn removal_after_the_restart_skips_a_running_goroutine_which_loses_its_barriers_at_its_next_scan() {
    let mut b = deep_goroutine_marked(|_| {});
    let s = b.terminate().unwrap();
    assert_eq!((s.rescan_goroutines, s.checkmark_failures), (1, 0));
    // The world restarts and the P runs the goroutine again before the walk reaches it.
    b.queue(0, [Op::Clear { dst: 1 }, Op::Clear { dst: 1 }]);
    b.steps(1);
    assert_eq!(b.curg(), Some(0));
    assert!(b.rt.removal_pending());
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    let s = b.last();
    assert_eq!(s.removal_skipped, 1, "{s:?}");
    assert_eq!(
        (s.barriers_installed, s.barriers_removed),
        (2, 0),
        "nothing removed from a running goroutine"
    );
    // While the world runs (the sweep), it returns through both stale barriers.
    b.queue(0, vec![Op::Ret; 70]);
    b.steps(70);
    b.rt.stop_p(&mut b.p);
    assert_eq!(b.stkbar(0), (2, 2), "both hit while the world ran");
    // Its next scan removes what is left of them as stale before installing new ones; the
    // hits count in that cycle.
    b.queue(0, vec![call(); 70]);
    b.steps(70);
    b.start();
    b.mark();
    assert_eq!(b.stkbar(0), (2, 0), "a fresh set");
    b.terminate().unwrap();
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    let s = b.last();
    assert_eq!(s.barriers_hit, 2, "{s:?}");
    assert_eq!(s.checkmark_failures, 0);
    assert_eq!((s.barriers_removed, s.removal_skipped), (2, 0), "{s:?}");
}

#[test]
fn a_stale_barrier_left_by_a_skipped_goroutine_is_removed_un_hit_at_its_next_scan() {
    let mut b = deep_goroutine_marked(|_| {});
    b.terminate().unwrap();
    b.queue(0, [Op::Clear { dst: 1 }]);
    b.steps(1);
    assert_eq!(b.curg(), Some(0));
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    assert_eq!(b.last().removal_skipped, 1);
    b.start();
    b.mark();
    assert_eq!(b.stkbar(0), (2, 0));
    b.queue(0, [Op::Ret, call()]);
    b.steps(2);
    let s = b.terminate().unwrap();
    assert_eq!(s.checkmark_failures, 0);
    // This cycle's books: the two stale barriers the scan removed before installing two more
    // at the same slots (the first cycle counted their installation).
    assert_eq!(
        (s.barriers_installed, s.barriers_removed, s.barriers_hit),
        (2, 2, 0),
        "{s:?}"
    );
}

#[test]
fn in_pause_removal_empties_every_stkbar_array_before_the_world_restarts() {
    let mut b = deep_goroutine_marked(|c| c.barrier_removal = BarrierRemoval::InPause);
    let s = b.terminate().unwrap();
    assert_eq!(b.stkbar(0), (0, 0), "removed inside the pause");
    assert_eq!((s.barriers_installed, s.barriers_removed), (2, 2));
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    let s = b.last();
    assert_eq!(s.removal_skipped, 0);
    assert_eq!(
        s.stack_bytes_used,
        100 * 32,
        "the walk still sums stack use"
    );
}

#[test]
fn the_after_restart_walk_removes_from_a_goroutine_that_is_not_running() {
    let mut b = deep_goroutine_marked(|_| {});
    b.terminate().unwrap();
    assert_eq!(b.stkbar(0), (2, 0), "left in place by the pause");
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    assert_eq!(b.stkbar(0), (0, 0));
    let s = b.last();
    assert_eq!((s.removal_skipped, s.barriers_removed), (0, 2));
    assert_eq!(s.stack_bytes_used, 100 * 32);
    assert!(!b.rt.removal_pending());
}

#[test]
fn mark_termination_visits_the_rescan_list_and_no_other_goroutine() {
    const PARKED: usize = 2_000;
    let mut b = Bed::new(PARKED + 1, |_| {});
    for g in 1..=PARKED {
        b.queue(g, [call(), call(), Op::Block]);
    }
    // Goroutine 0 runs; the others build two frames and park.
    b.queue(0, [call(), call()]);
    while b.rt.parked_goroutines() < PARKED {
        b.steps(1);
    }
    b.start();
    b.mark();
    // After its scan goroutine 0 runs again: it alone joins the re-scan list.
    b.queue(0, [Op::Alloc { ty: NODE, dst: 0 }, call()]);
    while b.curg() != Some(0) {
        b.steps(1);
    }
    b.steps(2);
    let s = b.terminate().unwrap();
    assert_eq!(s.rescan_goroutines, 1);
    assert_eq!(s.checkmark_failures, 0);
    let (visits, listed) = b.rt.gc.last_mark_term_visits();
    assert_eq!(listed, 1);
    assert!(
        visits <= 2 * listed,
        "mark termination reached {visits} goroutines for a re-scan list of {listed}, of {}",
        b.rt.allglen()
    );
    // The per-goroutine work Go 1.7 does outside the pause: the walk after the restart.
    assert!(b.rt.removal_step(usize::MAX).unwrap());
    assert_eq!(b.last().stack_bytes_used, (PARKED as u64 + 1) * 64 + 32);
}

#[test]
fn a_goroutine_created_during_mark_and_then_scanned_leaves_the_rescan_list() {
    // Goroutine 0 exits before the cycle, so the goroutine created during the mark reuses its
    // G, which the cycle's roots include: the marker scans it and `dequeueRescan` takes it off
    // the list it joined when it was created.
    let mut b = Bed::new(2, |_| {});
    b.queue(0, [call(), Op::Exit]);
    b.queue(1, [call()]);
    while b.rt.live_goroutines() > 1 {
        b.steps(1);
    }
    b.start();
    let q = Queue::default();
    q.lock().unwrap().extend([call()]);
    b.rt.newproc(Box::new(Script(Arc::clone(&q))), &mut b.p)
        .unwrap();
    assert_eq!(b.rt.allglen(), 2, "the dead G was reused");
    b.mark();
    let s = b.terminate().unwrap();
    assert_eq!(s.rescan_goroutines, 0, "{s:?}");
    // A goroutine created during the mark on a new G is not a root of the cycle: it is
    // re-scanned whole, as never scanned.
    b.rt.removal_step(usize::MAX).unwrap();
    b.start();
    let q = Queue::default();
    q.lock().unwrap().extend([call()]);
    b.rt.newproc(Box::new(Script(Arc::clone(&q))), &mut b.p)
        .unwrap();
    assert_eq!(b.rt.allglen(), 3);
    b.mark();
    let s = b.terminate().unwrap();
    assert_eq!(s.rescan_goroutines, 1, "{s:?}");
    let recs = b.rt.gc.rescan_records();
    let last = recs.last().unwrap();
    assert!(!last.scanned && !last.bounded, "{last:?}");
}

#[test]
fn a_preempted_goroutine_gives_up_its_p_at_its_next_call_to_the_global_queue() {
    let mut b = Bed::new(2, |_| {});
    b.queue(
        0,
        [
            call(),
            Op::Alloc { ty: NODE, dst: 0 },
            Op::Clear { dst: 0 },
            call(),
        ],
    );
    b.steps(1);
    assert_eq!(b.curg(), Some(0));
    b.rt.preempt_p(0);
    assert_eq!(
        b.rt.mutator_step(&mut b.p).unwrap(),
        Step::Ran,
        "not a call"
    );
    assert_eq!(
        b.rt.mutator_step(&mut b.p).unwrap(),
        Step::Ran,
        "not a call"
    );
    assert_eq!(b.curg(), Some(0));
    assert_eq!(
        b.rt.mutator_step(&mut b.p).unwrap(),
        Step::Switched,
        "the callee's prologue"
    );
    assert_eq!(b.curg(), None);
    assert!(!b.rt.globrunq_is_empty(), "preempted to the global queue");
    assert_eq!(b.rt.g(0).status(), status::RUNNABLE);
}

#[test]
fn sysmon_preempts_a_goroutine_that_has_run_for_its_time_slice() {
    let mut b = Bed::new(2, |c| c.time_slice_ns = 1_000);
    b.queue(0, vec![call(); 10]);
    b.steps(1);
    b.rt.retake(&mut b.p, 5_000); // sysmon sees a new pick: the slice starts now
    b.rt.retake(&mut b.p, 5_999);
    assert!(!b.rt.preempt_requested(0));
    b.rt.retake(&mut b.p, 6_000);
    assert!(b.rt.preempt_requested(0), "a full slice");
    assert_eq!(b.rt.mutator_step(&mut b.p).unwrap(), Step::Switched);
}

#[test]
fn a_running_goroutine_scans_its_own_stack_at_its_next_call_and_runs_on() {
    let mut b = Bed::new(1, |_| {});
    b.queue(0, vec![call(); 40]);
    b.steps(40);
    b.rt.stop_p(&mut b.p);
    b.rt.gc_start(&mut b.worker, &mut b.p).unwrap();
    b.queue(
        0,
        [
            Op::Alloc { ty: NODE, dst: 0 },
            Op::Clear { dst: 0 },
            call(),
            call(),
        ],
    );
    b.steps(1); // running again
    assert_eq!(b.curg(), Some(0));
    // The marker cannot take a running goroutine's stack: it asks it to scan itself.
    assert_eq!(b.rt.mark_step(&mut b.worker).unwrap(), MarkProgress::Worked); // globals
    b.rt.mark_step(&mut b.worker).unwrap(); // the stack job, put back for a retry
    b.steps(1); // Clear: not a prologue
    assert_ne!(b.rt.g(0).scan_done_cycle(), b.rt.gc.cycle());
    b.steps(1); // a call: it scans itself there and keeps its P
    assert_eq!(b.rt.g(0).scan_done_cycle(), b.rt.gc.cycle());
    assert_eq!(b.curg(), Some(0));
    b.mark();
    let s = b.terminate().unwrap();
    assert_eq!((s.rescan_goroutines, s.checkmark_failures), (1, 0));
}

/// A cycle of `n` deep goroutines that each ran after their scan, brought to mark termination;
/// `helpers` threads share the re-scans and the drain with this one.
fn parallel_cycle(helpers: usize) -> (CycleStats, Vec<gc::RescanRecord>) {
    const N: usize = 24;
    let mut b = Bed::new(N, |_| {});
    for g in 0..N {
        let mut ops = vec![call(); 60 + 7 * g];
        ops.push(Op::Alloc { ty: NODE, dst: 0 });
        ops.push(Op::StoreGlobal {
            global: (g % 2) as u32,
            src: Some(0),
        });
        ops.push(Op::Yield);
        b.queue(g, ops);
    }
    // Every goroutine plays its script to the end (each then yields, round the global queue).
    while b.scripts.iter().any(|q| !q.lock().unwrap().is_empty()) {
        b.steps(1);
    }
    b.start();
    b.mark();
    for g in 0..N {
        b.queue(
            g,
            [Op::Ret, Op::Alloc { ty: NODE, dst: 2 }, call(), Op::Yield],
        );
    }
    for _ in 0..N * 5 {
        b.steps(1);
    }
    b.rt.stop_p(&mut b.p);
    b.worker.dispose(&b.rt.gc.pool);
    let work = Arc::new(b.rt.mark_termination_start());
    assert_eq!(work.rescan_goroutines(), N);
    std::thread::scope(|s| {
        for i in 0..helpers {
            let (rt, work) = (&b.rt, Arc::clone(&work));
            s.spawn(move || rt.gchelper(&work, &mut GcWork::new(), true, Track::Worker(i as u16)));
        }
        b.rt.gchelper(&work, &mut b.worker, false, Track::Gc);
    });
    let stats = b.rt.mark_termination_finish(&work, 0).unwrap();
    // A helper that arrives after the end leaves without touching anything.
    b.rt.gchelper(&work, &mut GcWork::new(), true, Track::Gc);
    (stats, b.rt.gc.rescan_records())
}

#[test]
fn the_parallel_rescan_and_drain_count_what_one_thread_counts() {
    let (serial, serial_recs) = parallel_cycle(0);
    assert_eq!(serial.rescan_goroutines, 24);
    assert_eq!(serial.checkmark_failures, 0);
    for helpers in [1, 3] {
        let (par, recs) = parallel_cycle(helpers);
        assert_eq!(par.checkmark_failures, 0);
        assert_eq!(
            (
                par.rescan_goroutines,
                par.rescan_bytes,
                par.rescan_frames,
                par.full_rescan_bytes,
                par.oracle_rescan_bytes,
                par.heap_live_bytes
            ),
            (
                serial.rescan_goroutines,
                serial.rescan_bytes,
                serial.rescan_frames,
                serial.full_rescan_bytes,
                serial.oracle_rescan_bytes,
                serial.heap_live_bytes
            ),
            "{helpers} helpers"
        );
        assert_eq!(recs, serial_recs, "records in goid order");
    }
}
