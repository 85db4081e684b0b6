//! The threaded engine under stress: real threads, real stop-the-world, with goroutines that block,
//! wake each other, exit and are replaced, and grow and shrink their stacks while markers wait for
//! them — the cases where a stop-the-world or a stack-scan handshake could deadlock or lose an
//! object. Every run is bounded: in cycles, in operations, and by a watchdog that fails the test
//! if the engine has not returned in time (a deadlocked stop-the-world never returns).

use std::sync::mpsc;
use std::time::Duration;

use gc::runtime::BarrierRemoval;
use gc::wbarrier;
use gc::{
    Behaviour, Ctx, GcConfig, Limits, ObjType, Op, Rng, RunResult, RuntimeError, Threaded, TypeId,
    WorkloadImage,
};
use rand::RngExt;
use stacks::{FuncId, Program, StackBarrierMode};

/// The first user function follows the six runtime functions.
const FRAME: FuncId = FuncId(6);
const BIG_FRAME: FuncId = FuncId(7);
const NODE: TypeId = TypeId(0);

/// Recurses to a random depth (growing its stack through copystack) and back (so the next scan
/// shrinks it), allocating, linking objects, dropping them from the heap while holding them on
/// the stack, blocking, waking others, and at the end of its life spawning its replacement and
/// exiting with its frames still on the stack.
#[derive(Debug)]
struct Churn {
    target: usize,
    lifetime: u32,
    replaced: bool,
}

impl Churn {
    fn new(rng: &mut Rng) -> Churn {
        Churn {
            target: rng.random_range(1..400),
            lifetime: rng.random_range(2_000..20_000),
            replaced: false,
        }
    }
}

impl Behaviour for Churn {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        self.lifetime = self.lifetime.saturating_sub(1);
        if self.lifetime == 0 {
            // Spawn a replacement, then exit, frames and all.
            return if std::mem::replace(&mut self.replaced, true) {
                Op::Exit
            } else {
                Op::Spawn
            };
        }
        if ctx.depth == self.target {
            self.target = rng.random_range(1..400);
        }
        let r = rng.random_range(0..100u32);
        match r {
            0..=29 if ctx.depth < self.target => Op::Call {
                func: if r < 3 { BIG_FRAME } else { FRAME },
                site: 0,
            },
            0..=29 => Op::Ret,
            30..=44 => Op::Alloc {
                ty: NODE,
                dst: rng.random(),
            },
            45..=59 => Op::StoreField {
                obj: rng.random(),
                field: rng.random(),
                src: rng.random::<bool>().then(|| rng.random()),
            },
            60..=74 => Op::LoadField {
                obj: rng.random(),
                field: rng.random(),
                dst: rng.random(),
            },
            75..=84 => Op::StoreGlobal {
                global: rng.random(),
                src: rng.random::<bool>().then(|| rng.random()),
            },
            85..=89 => Op::LoadGlobal {
                global: rng.random(),
                dst: rng.random(),
            },
            90..=93 => Op::Copy {
                src: rng.random(),
                dst: rng.random(),
            },
            94 => Op::Block,
            95..=96 => Op::Wake,
            97..=98 => Op::Yield,
            _ => Op::Unwind {
                frames: rng.random_range(1..8),
            },
        }
    }

    fn spawn(&mut self, rng: &mut Rng) -> Option<Box<dyn Behaviour>> {
        Some(Box::new(Churn::new(rng)))
    }
}

fn image(goroutines: usize, seed: u64) -> WorkloadImage {
    use rand::SeedableRng;
    let program = Program::builder()
        .func_with_pointers("main.frame", 64, &[0, 2, 4])
        .func_with_pointers("main.big", 1024, &[0, 64])
        .build()
        .unwrap();
    assert_eq!(program.lookup("main.frame"), Some(FRAME));
    assert_eq!(program.lookup("main.big"), Some(BIG_FRAME));
    let mut rng = Rng::seed_from_u64(seed);
    WorkloadImage {
        wakes_per_ms: 0.0,
        program,
        types: vec![ObjType::new("main.node", 4, &[0, 1])],
        globals: 8,
        goroutines: (0..goroutines)
            .map(|_| Box::new(Churn::new(&mut rng)) as Box<dyn Behaviour>)
            .collect(),
    }
}

/// Runs the engine on its own thread and fails if it has not returned within `watchdog`.
fn run_bounded(
    config: GcConfig,
    goroutines: usize,
    cycles: u32,
    watchdog: Duration,
) -> Result<RunResult, RuntimeError> {
    run_bounded_with_books(config, goroutines, cycles, watchdog).map(|(r, _)| r)
}

/// [`run_bounded`], also returning the barrier books left outside the reported cycles.
fn run_bounded_with_books(
    config: GcConfig,
    goroutines: usize,
    cycles: u32,
    watchdog: Duration,
) -> Result<(RunResult, (u64, u64)), RuntimeError> {
    let (tx, rx) = mpsc::channel();
    let what = format!(
        "{} procs {} seed {}",
        config.design.name(),
        config.procs,
        config.seed
    );
    let seed = config.seed;
    std::thread::spawn(move || {
        let r = Threaded::new(config, image(goroutines, seed)).and_then(|mut e| {
            e.run(
                cycles,
                Limits {
                    max_ops: 2_000_000_000,
                    time_limit: Duration::from_secs(120),
                },
            )
            .map(|r| (r, e.runtime().stkbar_books()))
        });
        let _ = tx.send(r);
    });
    rx.recv_timeout(watchdog)
        .unwrap_or_else(|_| panic!("{what}: the threaded engine did not return: deadlock"))
}

fn config(design: &str, mode: StackBarrierMode, procs: usize, seed: u64) -> GcConfig {
    let mut c = GcConfig {
        design: wbarrier::design(design).unwrap(),
        stack_barriers: mode,
        gogc: None,
        force_gc_ops: Some(3_000),
        procs,
        seed,
        record_rescans: true,
        ..GcConfig::default()
    };
    c.debug.gccheckmark = true;
    c
}

#[test]
fn stop_the_world_never_deadlocks_with_blocked_exiting_and_growing_goroutines() {
    for (design, mode, removal) in [
        (
            "dijkstra",
            StackBarrierMode::On { first_offset: 256 },
            BarrierRemoval::AfterRestart,
        ),
        (
            "dijkstra",
            StackBarrierMode::EVERY_FRAME,
            BarrierRemoval::AfterRestart,
        ),
        (
            "dijkstra",
            StackBarrierMode::EVERY_FRAME,
            BarrierRemoval::InPause,
        ),
        (
            "hybrid",
            StackBarrierMode::Off,
            BarrierRemoval::AfterRestart,
        ),
        ("yuasa", StackBarrierMode::Off, BarrierRemoval::AfterRestart),
    ] {
        for procs in [3, 8] {
            let mut c = config(design, mode, procs, procs as u64);
            c.barrier_removal = removal;
            let what = format!("{design} {mode} {removal} procs {procs}");
            let (r, (on_stacks, ended)) =
                run_bounded_with_books(c, 24, 25, Duration::from_secs(120))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.cycles.len(), 25, "{what}");
            let t = &r.totals;
            assert_eq!(t.sum.checkmark_failures, 0, "{what}");
            assert!(t.sum.copystacks > 0, "{what}: stacks grew and shrank");
            assert!(
                r.cycles
                    .iter()
                    .all(|c| c.sweep_term_ns > 0 && c.mark_term_ns > 0),
                "{what}: every pause is measured"
            );
            assert_eq!(
                t.sum.barriers_installed,
                t.sum.barriers_hit + t.sum.barriers_removed + ended + on_stacks,
                "{what}: every barrier is hit or removed, or still on a stack at the end"
            );
            if removal == BarrierRemoval::InPause {
                assert_eq!(
                    on_stacks + ended,
                    0,
                    "{what}: the pause removed every barrier"
                );
            }
            let first_offset = mode.first_offset().unwrap_or(0);
            for rec in &r.rescans {
                assert!(rec.within_bound(first_offset), "{what}: {rec:?}");
                assert!(rec.oracle_bytes <= rec.rescan_bytes, "{what}: {rec:?}");
            }
        }
    }
}

#[test]
fn a_threaded_run_reports_pause_percentiles_and_the_mmu_curve() {
    let c = config("dijkstra", StackBarrierMode::GO, 2, 9);
    let r = run_bounded(c, 16, 10, Duration::from_secs(60)).unwrap();
    let t = &r.totals;
    assert!(t.mark_term_ns_p50 > 0 && t.mark_term_ns_p50 <= t.mark_term_ns_p99);
    assert!(t.mark_term_ns_p99 <= t.mark_term_ns_max);
    assert!(t.sweep_term_ns_p50 <= t.sweep_term_ns_max);
    assert!(!r.mmu.is_empty(), "the run lasts longer than 100 µs");
    assert_eq!(r.mmu[0].window_ns, 100_000);
    for w in r.mmu.windows(2) {
        assert!(w[0].window_ns < w[1].window_ns);
    }
    for m in &r.mmu {
        assert!((0.0..=1.0).contains(&m.mmu), "{m:?}");
    }
    // Windows shorter than the longest pause see no mutator at all.
    let longest = t.mark_term_ns_max.max(t.sweep_term_ns_max);
    for m in r.mmu.iter().filter(|m| m.window_ns <= longest) {
        assert_eq!(m.mmu, 0.0, "{m:?} inside a {longest} ns pause");
    }
}
