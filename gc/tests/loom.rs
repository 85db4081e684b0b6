//! `loom` models of the collector's two lock-free protocols; run them with `scripts/loom.sh`.
//!
//! Loom runs each model body once per interleaving of its threads (up to a preemption bound,
//! `LOOM_MAX_PREEMPTIONS`, 3 unless set) and lets every load see any value the C++ memory model
//! allows, so an assertion here holds for every execution, not just the likely ones. With the
//! `loom` feature, `gc`'s own atomics (`gc::sync`) and crossbeam-epoch's (`--cfg crossbeam_loom`)
//! are loom's, and every owner of a goroutine touches a loom cell standing for its stack, so loom
//! also reports two owners whose accesses the status word does not order ("Causality violation").
//!
//! 1. The work-buffer lists (`workbuf`): pushes and pops on an `LfStack`, and full buffers handed
//!    between workers through the `WorkbufPool` — nothing lost, nothing got twice.
//! 2. The `SCAN`-bit handshake (`sched`, as `mark::mark_step` and `runtime::mutator_run` use it):
//!    a marker either takes a goroutine's stack from `Runnable`, or asks the running goroutine to
//!    scan itself (`preempt_scan`); the stack is scanned exactly once unless the goroutine exits
//!    first, and the two never touch the stack concurrently.

#![cfg(feature = "loom")]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use gc::sched::{G, GOwner, status};
use gc::workbuf::{GcWork, LfStack, WORKBUF_ENTRIES, WorkbufPool};
use stacks::Addr;

/// Runs `f` under loom, bounded by `LOOM_MAX_PREEMPTIONS`, or by 3 preemptions when unset.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

// ---------------------------------------------------------------------------------------------
// 1. Work buffers.

/// A value whose every copy is counted by `live`, so a leak or a double drop shows at the end.
struct Item {
    id: u64,
    _live: Arc<()>,
}

/// Keeps crossbeam-epoch's once-per-thread work out of the interleavings a model explores: a
/// thread's first pin registers it and runs a collection, and its exit unregisters it, dozens of
/// atomic operations that would multiply the executions loom must try far beyond what the
/// operations under test need. Mark workers and Ps are long-lived threads, so the steady state,
/// with every thread registered and none leaving, is the one worth exploring. Threads register
/// one at a time, start their operations together, and exit one at a time; the operations
/// themselves interleave freely. (Waits block on a condition variable rather than spin, which
/// loom would have to explore too.)
struct Steady {
    /// Threads registered; threads done with their operations; workers allowed to exit.
    progress: Mutex<[usize; 3]>,
    changed: Condvar,
    threads: usize,
}

const REGISTERED: usize = 0;
const DONE: usize = 1;
const EXITS: usize = 2;

impl Steady {
    fn new(threads: usize) -> Steady {
        Steady {
            progress: Mutex::new([0; 3]),
            changed: Condvar::new(),
            threads,
        }
    }

    fn wait(&self, until: impl Fn(&[usize; 3]) -> bool) {
        let mut p = self.progress.lock().expect("poisoned");
        while !until(&p) {
            p = self.changed.wait(p).expect("poisoned");
        }
    }

    fn bump(&self, which: usize) {
        self.progress.lock().expect("poisoned")[which] += 1;
        self.changed.notify_all();
    }

    /// Registers thread `i` (the main thread is 0) with crossbeam-epoch in its turn: `pin` pins
    /// once.
    fn register(&self, i: usize, pin: impl FnOnce()) {
        self.wait(|p| p[REGISTERED] == i);
        pin();
        self.bump(REGISTERED);
    }

    /// Waits until every thread has registered.
    fn registered(&self) {
        self.wait(|p| p[REGISTERED] == self.threads);
    }

    /// Worker `i` is done with its operations; it returns when it may exit.
    fn finish(&self, i: usize) {
        self.bump(DONE);
        self.wait(|p| p[EXITS] == i);
    }

    /// The main thread is done: it waits for every worker to be done, then lets them exit and
    /// joins them, one at a time.
    fn join_all<T>(&self, workers: Vec<thread::JoinHandle<T>>) -> Vec<T> {
        self.bump(DONE);
        self.wait(|p| p[DONE] == self.threads);
        workers
            .into_iter()
            .map(|w| {
                self.bump(EXITS);
                w.join().expect("worker panicked")
            })
            .collect()
    }
}

#[test]
fn lfstack_two_pushers_and_a_popper_neither_lose_nor_duplicate() {
    // Two threads push while the main thread pops once, then it joins them and drains the rest.
    model(|| {
        let live = Arc::new(());
        let stack = Arc::new(LfStack::new());
        let steady = Arc::new(Steady::new(3));
        steady.register(0, || assert!(stack.is_empty()));
        let pushers: Vec<_> = (1..3)
            .map(|i| {
                let stack = Arc::clone(&stack);
                let steady = Arc::clone(&steady);
                let item = Item {
                    id: i as u64,
                    _live: Arc::clone(&live),
                };
                thread::spawn(move || {
                    steady.register(i, || assert!(stack.is_empty()));
                    steady.registered();
                    stack.push(item);
                    steady.finish(i);
                })
            })
            .collect();
        steady.registered();
        let mut ids: Vec<u64> = stack.pop().map(|item| item.id).into_iter().collect();
        steady.join_all(pushers);
        ids.extend(std::iter::from_fn(|| stack.pop()).map(|item| item.id));
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
fn lfstack_drop_releases_what_no_pop_took() {
    model(|| {
        let live = Arc::new(());
        let stack = Arc::new(LfStack::new());
        let pusher = {
            let stack = Arc::clone(&stack);
            let item = Item {
                id: 0,
                _live: Arc::clone(&live),
            };
            thread::spawn(move || stack.push(item))
        };
        let popped = stack.pop().map(|item| item.id);
        pusher.join().expect("pusher panicked");
        assert_eq!(stack.is_empty(), popped.is_some());
        drop(stack);
        assert_eq!(
            Arc::strong_count(&live),
            1,
            "the value is dropped exactly once"
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

#[test]
fn workbuf_pool_hands_every_object_over_exactly_once() {
    // Worker A fills a buffer and starts another, so it publishes a full buffer (and takes a
    // second one from `empty`, or allocates it) before its dispose publishes the partial one;
    // worker B publishes one partial buffer; the main thread drains concurrently, recycling what
    // it exhausts to `empty`, and again after the joins.
    const A: u64 = WORKBUF_ENTRIES as u64 + 1;
    const B: u64 = 2;
    model(|| {
        let pool = Arc::new(WorkbufPool::new());
        // Registers the main thread with crossbeam-epoch before the workers start, so loom need
        // not explore racing initialisations of the default collector.
        assert!(!pool.has_full());
        let a = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || put_all(&pool, 0..A))
        };
        let b = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || put_all(&pool, 1000..1000 + B))
        };
        let mut got = drain(&pool);
        a.join().expect("worker A panicked");
        b.join().expect("worker B panicked");
        got.extend(drain(&pool));
        got.sort_unstable();
        let want: Vec<u64> = (0..A).chain(1000..1000 + B).collect();
        assert!(got == want, "objects lost or got twice: {got:?}");
        assert!(!pool.has_full());
        assert_eq!(pool.full_buffers(), 0);
        assert!(
            pool.buffers_allocated() <= 3,
            "{}",
            pool.buffers_allocated()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 2. The SCAN-bit handshake.

/// Safe points the goroutine passes while running.
const SAFE_POINTS: usize = 2;

/// How the goroutine leaves its P at the end of the model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leave {
    /// `release(owner, RUNNABLE)`: yield or preemption.
    Yield,
    /// `release(owner, DEAD)`: goexit.
    Exit,
}

/// Where the goroutine is when the marker starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    /// Already running: its token was minted before the threads start.
    Running,
    /// On a run queue: its thread schedules it (`try_own(RUNNABLE, RUNNING)`, retried while a
    /// marker holds the stack), racing the marker's `try_own_for_scan`.
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

    /// The goroutine's thread: `mutator_run` over `SAFE_POINTS` operations, then `leave`.
    fn goroutine(&self, owner: Option<GOwner>, leave: Leave) {
        let g = &self.g;
        let mut owner = owner.unwrap_or_else(|| {
            loop {
                // `schedule`: a marker holding the stack makes the CAS fail; try again later.
                match g.try_own(status::RUNNABLE, status::RUNNING) {
                    Some(o) => break o,
                    None => thread::yield_now(),
                }
            }
        });
        for _ in 0..SAFE_POINTS {
            if g.preempt_scan_for_model().load(Ordering::Acquire) {
                g.preempt_scan_for_model().store(false, Ordering::Relaxed);
                // `self_scan`: skips a stack already scanned this cycle, checked while owning it.
                if !self.scan_done.load(Ordering::Acquire) {
                    self.scan(&mut owner);
                }
            }
            // One mutator operation: it reads and writes the stack.
            let _stack = g.state(&mut owner);
        }
        let to = match leave {
            Leave::Yield => status::RUNNABLE,
            Leave::Exit => status::DEAD,
        };
        g.release(owner, to);
    }

    /// A mark worker's root job for the goroutine, retried until it ends (`mark_step`'s
    /// `Job::Stack`, with the goroutine going back on the retry queue when it is running).
    /// `recheck_when_owned` re-reads `scan_done` after taking the `SCAN` bit.
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

/// Runs the goroutine and a marker; checks that the stack was scanned exactly once, unless the
/// goroutine exited first and the marker found it dead.
fn handshake(start: Start, leave: Leave, recheck_when_owned: bool) {
    model(move || {
        let world = Arc::new(World::new());
        let owner = match start {
            Start::Running => Some(
                world
                    .g
                    .try_own(status::RUNNABLE, status::RUNNING)
                    .expect("nobody else has started"),
            ),
            Start::Runnable => None,
        };
        let goroutine = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.goroutine(owner, leave))
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
        let end = match leave {
            Leave::Yield => status::RUNNABLE,
            Leave::Exit => status::DEAD,
        };
        assert_eq!(
            world.g.status(),
            end,
            "the marker restored the status it found"
        );
    });
}

#[test]
fn scan_handshake_running_goroutine_that_yields_is_scanned_once() {
    handshake(Start::Running, Leave::Yield, true);
}

#[test]
fn scan_handshake_running_goroutine_that_exits_is_scanned_at_most_once() {
    handshake(Start::Running, Leave::Exit, true);
}

#[test]
fn scan_handshake_runnable_goroutine_that_yields_is_scanned_once() {
    handshake(Start::Runnable, Leave::Yield, true);
}

#[test]
fn scan_handshake_runnable_goroutine_that_exits_is_scanned_at_most_once() {
    handshake(Start::Runnable, Leave::Exit, true);
}

/// `mark_step` checks `scan_done_cycle` only before `try_own_for_scan`, and `scan_g` does not
/// check it again: the goroutine can scan itself in between (at a safe point, asked by an earlier
/// attempt of the same marker) and then yield, and the marker's CAS then succeeds and scans the
/// stack a second time. Without the re-check under the `SCAN` bit loom finds that execution.
#[test]
#[should_panic(expected = "stack scanned 2 times")]
fn scan_handshake_without_a_recheck_under_the_scan_bit_can_scan_twice() {
    handshake(Start::Running, Leave::Yield, false);
}

/// A check of the model itself: a marker that takes a goroutine's stack while it is running
/// (which `try_own_for_scan` refuses to do) touches the stack concurrently with the goroutine,
/// and loom must say so. If this stops panicking, `G`'s loom tracking is broken.
#[test]
#[should_panic(expected = "Causality violation")]
fn scan_handshake_marker_that_takes_a_running_stack_races_with_the_goroutine() {
    model(|| {
        let world = Arc::new(World::new());
        let owner = world
            .g
            .try_own(status::RUNNABLE, status::RUNNING)
            .expect("nobody else has started");
        let goroutine = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.goroutine(Some(owner), Leave::Yield))
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
