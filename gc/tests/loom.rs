//! `loom` models of the collector's two lock-free protocols; run them with `scripts/loom.sh`.
//!
//! Loom runs each model body once per interleaving of its threads that differs in the order of
//! dependent operations (up to a bound on preemptions, `LOOM_MAX_PREEMPTIONS`, 3 unless set) and
//! lets every load return any value the C++ memory model allows, so an assertion here holds for
//! every such execution, not just the likely ones. With the `loom` feature, `gc`'s own atomics
//! (`gc::sync`) and, with `--cfg crossbeam_loom`, crossbeam-epoch's are loom's, and every owner of
//! a goroutine touches a loom cell standing for its stack, so loom also reports two owners whose
//! accesses the status word does not order ("Causality violation").
//!
//! 1. The work-buffer lists (`workbuf`): pushes and pops on an `LfStack`, and buffers handed
//!    between workers through the `WorkbufPool`'s full and empty lists: nothing lost, nothing got
//!    twice, every value dropped once.
//! 2. The `SCAN`-bit handshake (`sched`, as `mark::mark_step` and `runtime::mutator_run` use it):
//!    a marker either takes a goroutine's stack from `Runnable` or `Waiting`, or asks the running
//!    goroutine to scan itself (`preempt_scan`); the stack is scanned exactly once unless the
//!    goroutine exits first, and the two never touch the stack concurrently.
//!
//! crossbeam-epoch does dozens of atomic operations the first time a thread pins (it registers the
//! thread and runs a collection) and when the thread exits (it unregisters). Two threads doing
//! that at once multiply the executions a model has far beyond what our operations need (a
//! three-thread `LfStack` model takes 20 times as long), and that race is crossbeam's to check, in
//! its own loom tests. So every model pins the main thread before it spawns anything, and a
//! model with two workers has the first worker pin before it spawns the second. Mark workers and
//! Ps are long-lived threads, so the steady state is what matters; the operations under test
//! still interleave freely.

#![cfg(feature = "loom")]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use gc::sched::{G, GOwner, status};
use gc::workbuf::{GcWork, LfStack, WORKBUF_ENTRIES, WorkbufPool};
use stacks::Addr;

/// Runs `f` under loom with at most `max_preemptions` preemptions, and no more than
/// `LOOM_MAX_PREEMPTIONS` (3 when unset).
fn model_bounded<F: Fn() + Sync + Send + 'static>(max_preemptions: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    let bound = builder.preemption_bound.unwrap_or(3).min(max_preemptions);
    builder.preemption_bound = Some(bound);
    builder.check(f);
}

/// Runs `f` under loom, bounded by `LOOM_MAX_PREEMPTIONS` (3 when unset).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    model_bounded(usize::MAX, f);
}

/// The preemption bound of the three-thread work-buffer models. At 3 the `LfStack` model runs
/// 359,312 executions (34 s in release) and the pool model 1,638,374 (almost 3 minutes); at 2,
/// 43,862 (4 s) and 124,133 (15 s). The two-thread models beside them run at 3.
const THREE_THREAD_PREEMPTIONS: usize = 2;

// ---------------------------------------------------------------------------------------------
// 1. Work buffers.

/// A value for an `LfStack`: counted by `live`, so a leak or a double drop shows at the end, and
/// carrying a loom cell written when it is made, so loom checks that whoever reads it (a pop in
/// another thread) is ordered after the thread that made and pushed it.
struct Item {
    id: u64,
    made: loom::cell::UnsafeCell<()>,
    _live: Arc<()>,
}

impl Item {
    fn new(id: u64, live: Arc<()>) -> Item {
        Item {
            id,
            made: loom::cell::UnsafeCell::new(()),
            _live: live,
        }
    }

    /// Reads the item, as a consumer reads what it popped.
    fn id(&self) -> u64 {
        self.made.with(|_| ());
        self.id
    }
}

#[test]
fn lfstack_two_pushers_and_a_popper_neither_lose_nor_duplicate() {
    // Two workers push one value each while the main thread pops once; then the main thread
    // joins them and pops the rest.
    model_bounded(THREE_THREAD_PREEMPTIONS, || {
        let live = Arc::new(());
        let stack = Arc::new(LfStack::new());
        assert!(stack.is_empty(), "pins the main thread");
        let first = {
            let stack = Arc::clone(&stack);
            let (live1, live2) = (Arc::clone(&live), Arc::clone(&live));
            thread::spawn(move || {
                assert!(
                    stack.is_empty(),
                    "pins the first worker before the second starts"
                );
                let second = {
                    let stack = Arc::clone(&stack);
                    thread::spawn(move || stack.push(Item::new(2, live2)))
                };
                stack.push(Item::new(1, live1));
                second.join().expect("second pusher panicked");
            })
        };
        let mut ids: Vec<u64> = stack.pop().map(|item| item.id()).into_iter().collect();
        first.join().expect("first pusher panicked");
        ids.extend(std::iter::from_fn(|| stack.pop()).map(|item| item.id()));
        ids.sort_unstable();
        assert_eq!(ids, [1, 2], "every value pushed is popped exactly once");
        assert!(stack.is_empty());
        drop(stack);
        assert_eq!(
            Arc::strong_count(&live),
            1,
            "every value dropped exactly once"
        );
    });
}

#[test]
fn lfstack_pops_racing_pushes_take_each_value_once_and_drop_releases_the_rest() {
    // A worker pushes two values while the main thread pops twice; the stack is then dropped
    // with whatever is left on it.
    model(|| {
        let live = Arc::new(());
        let stack = Arc::new(LfStack::new());
        assert!(stack.is_empty(), "pins the main thread");
        let pusher = {
            let stack = Arc::clone(&stack);
            let live = Arc::clone(&live);
            thread::spawn(move || {
                stack.push(Item::new(1, Arc::clone(&live)));
                stack.push(Item::new(2, live));
            })
        };
        let popped: Vec<u64> = (0..2).filter_map(|_| stack.pop()).map(|i| i.id()).collect();
        pusher.join().expect("pusher panicked");
        assert!(
            matches!(popped[..], [] | [1] | [2] | [1, 2] | [2, 1]),
            "popped {popped:?}"
        );
        drop(stack);
        assert_eq!(
            Arc::strong_count(&live),
            1,
            "every value dropped exactly once"
        );
    });
}

/// Puts `ids` through a fresh worker handle and disposes it.
fn put_all(pool: &WorkbufPool, ids: std::ops::Range<u64>) {
    let mut w = GcWork::new();
    for id in ids {
        w.put(pool, Addr(id));
    }
    w.dispose(pool);
}

/// Takes objects with a fresh worker handle until there are none, then disposes it.
fn drain(pool: &WorkbufPool) -> Vec<u64> {
    let mut w = GcWork::new();
    let got = std::iter::from_fn(|| w.try_get(pool))
        .map(|a| a.0)
        .collect();
    w.dispose(pool);
    got
}

/// Checks that `got` is `want`, each exactly once, and that no full buffer is left.
fn assert_all_got_once(pool: &WorkbufPool, mut got: Vec<u64>, want: impl Iterator<Item = u64>) {
    got.sort_unstable();
    let want: Vec<u64> = want.collect();
    assert!(got == want, "objects lost or got twice: got {got:?}");
    assert!(!pool.has_full());
    assert_eq!(pool.full_buffers(), 0);
}

#[test]
fn workbuf_pool_two_workers_and_a_drainer_hand_every_object_over_once() {
    // Worker A fills a buffer and starts another, so `put` publishes a full buffer (taking the
    // next from `empty`, or allocating it), and its dispose publishes the partial one; worker B
    // publishes one partial buffer; the main thread drains concurrently, recycling what it
    // exhausts to `empty`, and drains the rest after the joins.
    const A: u64 = WORKBUF_ENTRIES as u64 + 1;
    const B: u64 = 2;
    model_bounded(THREE_THREAD_PREEMPTIONS, || {
        let pool = Arc::new(WorkbufPool::new());
        assert!(!pool.has_full(), "pins the main thread");
        let a = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                assert!(!pool.has_full(), "pins worker A before B starts");
                let b = {
                    let pool = Arc::clone(&pool);
                    thread::spawn(move || put_all(&pool, 1000..1000 + B))
                };
                put_all(&pool, 0..A);
                b.join().expect("worker B panicked");
            })
        };
        let mut got = drain(&pool);
        a.join().expect("worker A panicked");
        got.extend(drain(&pool));
        assert_all_got_once(&pool, got, (0..A).chain(1000..1000 + B));
        assert!(
            pool.buffers_allocated() <= 3,
            "{}",
            pool.buffers_allocated()
        );
    });
}

#[test]
fn workbuf_pool_recycles_buffers_while_a_worker_fills_them() {
    // A worker publishes two full buffers and a partial one, taking empty buffers as it goes,
    // while the main thread drains all of them, putting each buffer it exhausts back on
    // `empty`: the worker's `get_empty` races the drainer's `put_empty`.
    const N: u64 = 2 * WORKBUF_ENTRIES as u64 + 1;
    model(|| {
        let pool = Arc::new(WorkbufPool::new());
        assert!(!pool.has_full(), "pins the main thread");
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || put_all(&pool, 0..N))
        };
        // Drains until it has everything, so every buffer it exhausts races the worker.
        let mut w = GcWork::new();
        let mut got = Vec::new();
        while got.len() < N as usize {
            match w.try_get(&pool) {
                Some(a) => got.push(a.0),
                None => thread::yield_now(),
            }
        }
        w.dispose(&pool);
        worker.join().expect("worker panicked");
        assert_all_got_once(&pool, got, 0..N);
        assert!(
            pool.buffers_allocated() <= 3,
            "{}",
            pool.buffers_allocated()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 2. The SCAN-bit handshake.

/// Safe points the goroutine passes each time it runs.
const SAFE_POINTS: usize = 2;

/// How the goroutine leaves its P the last time it runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leave {
    /// `release(owner, RUNNABLE)`: yield or preemption.
    Yield,
    /// `release(owner, WAITING)`: it blocks.
    Block,
    /// `release(owner, DEAD)`: goexit.
    Exit,
}

impl Leave {
    fn status(self) -> u32 {
        match self {
            Leave::Yield => status::RUNNABLE,
            Leave::Block => status::WAITING,
            Leave::Exit => status::DEAD,
        }
    }
}

/// Where the goroutine is when the marker starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    /// Already running: its token was minted before the threads start.
    Running,
    /// On a run queue: its thread schedules it, racing the marker's `try_own_for_scan`.
    Runnable,
}

/// What ended the marker's root job for the goroutine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MarkerSaw {
    /// The stack was already scanned (`scan_done_cycle == cycle`).
    ScanDone,
    /// The marker held the `SCAN` bit and scanned the stack.
    Scanned,
    /// The goroutine was dead: nothing to scan.
    Dead,
}

/// One goroutine and this cycle's scan book-keeping.
struct World {
    g: G,
    /// `scan_done_cycle == cycle` (Go's `gcscandone`): set by whoever scans, after the scan.
    scan_done: AtomicBool,
    /// Scans performed.
    scans: AtomicUsize,
}

impl World {
    /// A goroutine left runnable by its creator (as `newproc` does), with no state.
    fn new() -> World {
        let g = G::new_for_model(0);
        let owner = g
            .try_own(status::DEAD, status::IDLE)
            .expect("a new G is dead");
        g.release(owner, status::RUNNABLE);
        World {
            g,
            scan_done: AtomicBool::new(false),
            scans: AtomicUsize::new(0),
        }
    }

    /// `scan_g`: walks the stack through the owner's token, then records the scan.
    fn scan(&self, owner: &mut GOwner) {
        let _stack = self.g.state(owner);
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.scan_done.store(true, Ordering::Release);
    }

    /// `schedule`: takes the goroutine from `Runnable`; while a marker holds the stack the CAS
    /// fails and the P tries again later.
    fn schedule(&self) -> GOwner {
        loop {
            match self.g.try_own(status::RUNNABLE, status::RUNNING) {
                Some(o) => return o,
                None => thread::yield_now(),
            }
        }
    }

    /// `mutator_run` over `SAFE_POINTS` operations: at each safe point, honour a marker's request
    /// to scan the stack, then run one operation, which reads and writes the stack.
    fn run(&self, owner: &mut GOwner) {
        let g = &self.g;
        for _ in 0..SAFE_POINTS {
            if g.preempt_scan_for_model().load(Ordering::Acquire) {
                g.preempt_scan_for_model().store(false, Ordering::Relaxed);
                // `self_scan`: skips a stack already scanned this cycle, checked while owning it.
                if !self.scan_done.load(Ordering::Acquire) {
                    self.scan(owner);
                }
            }
            let _stack = g.state(owner);
        }
    }

    /// The goroutine's thread: it runs `rounds` times, yielding between them (and scheduled
    /// again each time), and leaves with `leave` the last time.
    fn goroutine(&self, mut owner: Option<GOwner>, rounds: usize, leave: Leave) {
        for round in 1..=rounds {
            let mut o = owner.take().unwrap_or_else(|| self.schedule());
            self.run(&mut o);
            let to = if round == rounds {
                leave.status()
            } else {
                status::RUNNABLE
            };
            self.g.release(o, to);
        }
    }

    /// A mark worker's root job for the goroutine, retried until it ends (`mark_step`'s
    /// `Job::Stack`, with the goroutine going back on the retry queue while it runs).
    /// `recheck_when_owned` re-reads `scan_done` after taking the `SCAN` bit, as `mark_step`
    /// does (Go's `scang`).
    fn marker(&self, recheck_when_owned: bool) -> MarkerSaw {
        let g = &self.g;
        loop {
            if self.scan_done.load(Ordering::Acquire) {
                return MarkerSaw::ScanDone;
            }
            if let Some((mut owner, restore)) = g.try_own_for_scan() {
                let saw = if recheck_when_owned && self.scan_done.load(Ordering::Acquire) {
                    MarkerSaw::ScanDone
                } else {
                    self.scan(&mut owner);
                    MarkerSaw::Scanned
                };
                g.release(owner, restore);
                return saw;
            }
            if g.status() == status::DEAD {
                return MarkerSaw::Dead;
            }
            // Running (or being scheduled): ask it to scan itself at its next safe point.
            g.preempt_scan_for_model().store(true, Ordering::Release);
            thread::yield_now();
        }
    }
}

/// Runs the goroutine (`rounds` times, then `leave`) against a marker; checks that the stack
/// was scanned exactly once, unless the goroutine exited first and the marker found it dead,
/// and that the marker gave back the status it took.
fn handshake(start: Start, rounds: usize, leave: Leave, recheck_when_owned: bool) {
    model(move || {
        let world = Arc::new(World::new());
        let owner = match start {
            Start::Running => Some(world.schedule()),
            Start::Runnable => None,
        };
        let goroutine = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.goroutine(owner, rounds, leave))
        };
        let saw = world.marker(recheck_when_owned);
        goroutine.join().expect("goroutine panicked");
        let scans = world.scans.load(Ordering::Relaxed);
        assert!(
            scans <= 1,
            "stack scanned {scans} times (marker saw {saw:?})"
        );
        match saw {
            MarkerSaw::ScanDone | MarkerSaw::Scanned => assert_eq!(scans, 1, "{saw:?}"),
            MarkerSaw::Dead => assert_eq!(leave, Leave::Exit, "only an exit leaves it dead"),
        }
        assert_eq!(
            world.g.status(),
            leave.status(),
            "the marker restored the status"
        );
    });
}

#[test]
fn scan_handshake_running_goroutine_that_yields_is_scanned_once() {
    handshake(Start::Running, 1, Leave::Yield, true);
}

#[test]
fn scan_handshake_running_goroutine_that_blocks_is_scanned_once() {
    handshake(Start::Running, 1, Leave::Block, true);
}

#[test]
fn scan_handshake_running_goroutine_that_exits_is_scanned_at_most_once() {
    handshake(Start::Running, 1, Leave::Exit, true);
}

#[test]
fn scan_handshake_runnable_goroutine_that_yields_is_scanned_once() {
    handshake(Start::Runnable, 1, Leave::Yield, true);
}

#[test]
fn scan_handshake_runnable_goroutine_that_exits_is_scanned_at_most_once() {
    handshake(Start::Runnable, 1, Leave::Exit, true);
}

#[test]
fn scan_handshake_goroutine_that_runs_again_after_a_yield_is_scanned_once() {
    // A request left in `preempt_scan` after the marker scanned the stack itself is honoured
    // at the next run and finds the stack already scanned.
    handshake(Start::Running, 2, Leave::Yield, true);
}

#[test]
fn scan_handshake_goroutine_that_exits_after_running_again_is_scanned_at_most_once() {
    handshake(Start::Running, 2, Leave::Exit, true);
}

/// Why `mark_step` reads `scan_done_cycle` again under the `SCAN` bit: without that re-check the
/// goroutine can scan itself between the marker's first look and its CAS (at a safe point, asked
/// by an earlier attempt of the same marker) and then yield, and the marker's CAS succeeds and
/// scans the stack a second time. Loom finds that execution; it found it in `mark_step` before
/// the re-check was added.
#[test]
#[should_panic(expected = "stack scanned 2 times")]
fn scan_handshake_without_a_recheck_under_the_scan_bit_can_scan_twice() {
    handshake(Start::Running, 1, Leave::Yield, false);
}

/// A check of the model itself: a marker that takes a goroutine's stack while it is running
/// (which `try_own_for_scan` refuses to do) touches the stack concurrently with the goroutine,
/// and loom must say so. If this stops panicking, `G`'s loom tracking is broken.
#[test]
#[should_panic(expected = "Causality violation")]
fn scan_handshake_marker_that_takes_a_running_stack_races_with_the_goroutine() {
    model(|| {
        let world = Arc::new(World::new());
        let owner = world.schedule();
        let goroutine = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.goroutine(Some(owner), 1, Leave::Yield))
        };
        if let Some(mut owner) = world
            .g
            .try_own(status::RUNNING, status::RUNNING | status::SCAN)
        {
            world.scan(&mut owner);
            world.g.release(owner, status::RUNNING);
        }
        goroutine.join().expect("goroutine panicked");
    });
}
