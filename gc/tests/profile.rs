//! The sampling profiler against seed 003's `TestGoroutineSwitch` and its stack-barrier analogue,
//! the trace buffers over a long run, and `nowritebarrier` regions.
//!
//! Samples are drawn at a high rate (a signal every few micro-operation boundaries) from
//! goroutines that mostly switch, or that return through and unwind past a barrier on every
//! frame, so signals land inside `gogo`, `mcall` and every barrier operation thousands of times.

use std::time::Duration;

use gc::profile::SampleStack;
use gc::trace::{TraceEv, Track, VecSink};
use gc::{
    Behaviour, Ctx, Deterministic, GcConfig, Limits, ObjType, Op, ProfileConfig, Rng, RunResult,
    RuntimeError, Threaded, TypeId, WorkloadImage,
};
use rand::{RngExt, SeedableRng};
use stacks::{FuncId, FuncKind, Program, StackBarrierMode};

const NODE: TypeId = TypeId(0);

/// Recurses to `depth`, then yields at most operations (a `Gosched` loop), returning and calling
/// across the frames just above and, now and then, unwinding a few frames as a recovered panic
/// does; allocates enough to keep the collector cycling.
#[derive(Debug)]
struct Switcher {
    depth: usize,
    func: FuncId,
}

impl Behaviour for Switcher {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        let call = Op::Call {
            func: self.func,
            site: rng.random_range(0..2),
        };
        if ctx.depth < self.depth / 2 {
            return call;
        }
        match rng.random_range(0..100u32) {
            0..40 => Op::Yield,
            40..60 if ctx.depth < self.depth => call,
            40..60 => Op::Ret,
            60..75 if ctx.depth > 2 => Op::Ret,
            60..75 => call,
            75..78 if ctx.depth > 6 => Op::Unwind {
                frames: rng.random_range(2..6),
            },
            _ => Op::Alloc {
                ty: NODE,
                dst: rng.random(),
            },
        }
    }
}

fn image(goroutines: usize, depth: usize) -> WorkloadImage {
    let program = Program::builder()
        .func_with_pointers("main.switcher", 48, &[0, 2])
        .build()
        .unwrap();
    let func = program.lookup("main.switcher").unwrap();
    WorkloadImage {
        wakes_per_ms: 0.0,
        program,
        types: vec![ObjType::new("main.node", 4, &[0, 1])],
        globals: 4,
        goroutines: (0..goroutines)
            .map(|_| Box::new(Switcher { depth, func }) as Box<dyn Behaviour>)
            .collect(),
    }
}

fn config(checks: bool, barriers: StackBarrierMode, seed: u64) -> GcConfig {
    GcConfig {
        stack_barriers: barriers,
        gogc: None,
        force_gc_ops: Some(3_000),
        procs: 3,
        seed,
        profile: Some(ProfileConfig {
            checks,
            period: 5,
            interval: Duration::from_micros(20),
            ..ProfileConfig::default()
        }),
        ..GcConfig::default()
    }
}

fn run_deterministic(config: GcConfig, cycles: u32) -> RunResult {
    Deterministic::new(config, image(12, 40))
        .unwrap()
        .run(cycles, 50_000_000)
        .unwrap()
}

/// Seed 003's `TestGoroutineSwitch`: no recorded traceback has `runtime.gogo` (or any runtime
/// function) as a frame, and no sample taken inside a switch was unwound.
#[test]
fn samples_taken_mid_switch_are_never_unwound() {
    for seed in [1, 2] {
        let r = run_deterministic(config(true, StackBarrierMode::GO, seed), 12);
        let prof = r.profile.expect("profiling was on");
        let c = prof.counts;
        assert!(c.samples > 20_000, "{c:?}");
        assert!(
            c.samples_mid_gogo > 1_000 && c.samples_mid_mcall > 500,
            "{c:?}"
        );
        assert_eq!(c.unwound_mid_switch, 0, "{c:?}");
        assert_eq!(c.malformed, 0, "{c:?}");
        assert_eq!(
            c.validated, c.user_samples,
            "every unwound sample was checked"
        );
        assert_eq!(c.samples, c.user_samples + c.system_samples);
        // Mid-gogo samples were refused by each of seed 003's three tests in turn: g is g0, SP
        // is not yet in g's stack, PC is inside gogo.
        assert!(
            c.refused_g0 > 0 && c.refused_sp > 0 && c.refused_gogo > 0,
            "{c:?}"
        );
        let prog = image(1, 1).program;
        for stack in prof.stacks.keys() {
            if let SampleStack::User(frames) = stack {
                assert!(
                    frames.iter().all(|&f| prog.func(f).kind == FuncKind::User),
                    "a traceback with a runtime frame: {frames:?}"
                );
            }
        }
        let folded_total: u64 = prof.stacks.values().sum();
        assert_eq!(folded_total, c.samples);
    }
}

/// The stack-barrier analogue: with a barrier on every frame, signals land inside installs
/// (self-scans), hits (returns) and removals (unwinds); every one of those samples is a System
/// sample, and nothing unwound is malformed.
#[test]
fn barrier_mid_update_samples_are_system_samples() {
    let r = run_deterministic(config(true, StackBarrierMode::EVERY_FRAME, 3), 16);
    let c = r.profile.expect("profiling was on").counts;
    assert!(c.samples_mid_barrier > 200, "{c:?}");
    assert_eq!(c.unwound_mid_barrier, 0, "{c:?}");
    assert!(
        c.refused_stack_barrier_pc > 0,
        "hits are refused by PC: {c:?}"
    );
    assert!(
        c.refused_stkbar_lock > 0,
        "installs and removals by the lock: {c:?}"
    );
    assert_eq!(c.malformed, 0, "{c:?}");
    assert!(r.totals.sum.barriers_hit > 100, "{:?}", r.totals.sum);
}

/// With seed 003's checks off (Go before it), the same runs record malformed tracebacks, inside
/// switches and inside barrier installs and removals: what the checks prevent.
#[test]
fn without_the_checks_mid_switch_and_mid_barrier_samples_are_malformed() {
    let r = run_deterministic(config(false, StackBarrierMode::EVERY_FRAME, 3), 12);
    let c = r.profile.expect("profiling was on").counts;
    assert!(
        c.unwound_mid_switch > 0 && c.unwound_mid_barrier > 0,
        "{c:?}"
    );
    assert!(c.malformed_mid_switch > 0, "{c:?}");
    assert!(c.malformed_mid_barrier > 0, "{c:?}");
    assert_eq!(
        c.malformed,
        c.malformed_mid_switch + c.malformed_mid_barrier,
        "outside switches and barrier operations every traceback is right: {c:?}"
    );
}

/// The same seed gives the same samples, bit for bit.
#[test]
fn deterministic_profiles_reproduce() {
    let a = run_deterministic(config(true, StackBarrierMode::GO, 7), 4);
    let b = run_deterministic(config(true, StackBarrierMode::GO, 7), 4);
    assert_eq!(a.profile, b.profile);
}

/// Real threads and a real profiler thread: signals arrive at any moment, and no sample is
/// malformed.
#[test]
fn a_threaded_run_with_a_profiler_thread_records_no_malformed_sample() {
    let mut cfg = config(true, StackBarrierMode::EVERY_FRAME, 5);
    cfg.procs = 2;
    let r = Threaded::new(cfg, image(8, 40))
        .unwrap()
        .run(
            6,
            Limits {
                max_ops: 100_000_000,
                time_limit: Duration::from_secs(120),
            },
        )
        .unwrap();
    let prof = r.profile.expect("profiling was on");
    assert!(prof.signals_sent > 0 && prof.counts.samples > 0, "{prof:?}");
    assert!(prof.counts.samples <= prof.signals_sent);
    assert_eq!(prof.counts.malformed, 0, "{:?}", prof.counts);
}

/// Trace buffers are recycled: over a long traced run the events fill many buffers, every event
/// reaches the sink once, and the buffers ever allocated stay a handful (one per P, the global
/// one, and the ones waiting for the reader).
#[test]
fn trace_buffers_are_recycled_not_leaked_across_a_long_run() {
    let mut cfg = config(true, StackBarrierMode::EVERY_FRAME, 9);
    cfg.profile = None;
    cfg.trace = true;
    let mut engine = Deterministic::new(cfg, image(12, 40)).unwrap();
    let sink = VecSink::default();
    engine
        .runtime()
        .trace
        .as_ref()
        .unwrap()
        .set_sink(Box::new(sink.clone()));
    let mut allocated = Vec::new();
    for _ in 0..6 {
        let r = engine.run(20, 50_000_000).unwrap();
        allocated.push(r.trace.unwrap().buffers_allocated);
    }
    let stats = engine.runtime().trace.as_ref().unwrap().stats();
    let events = sink.0.lock().unwrap();
    assert_eq!(stats.events, stats.events_read);
    assert_eq!(events.len() as u64, stats.events);
    // Ten times more events than the buffers ever allocated hold.
    let capacity = gc::trace::TRACE_BUF_EVENTS as u64 * stats.buffers_allocated;
    assert!(stats.events > 10 * capacity, "{stats:?}");
    assert!(stats.buffers_allocated <= 3 + 2, "{stats:?}");
    assert_eq!(
        allocated.first(),
        allocated.last(),
        "no growth: {allocated:?}"
    );
    // The kinds of event the runtime writes, on the tracks they belong to.
    let seen = |ev: TraceEv| events.iter().any(|e| e.ev == ev);
    for ev in [
        TraceEv::GcPhase,
        TraceEv::Stw,
        TraceEv::StackScan,
        TraceEv::Rescan,
        TraceEv::BarrierInstall,
        TraceEv::BarrierHit,
        TraceEv::BarrierRemove,
        TraceEv::BarrierUnwind,
        TraceEv::Sweep,
        TraceEv::GoRun,
        TraceEv::GoCreate,
    ] {
        assert!(seen(ev), "no {ev:?} event");
    }
    assert!(events.iter().all(|e| match e.ev {
        TraceEv::GcPhase | TraceEv::Stw | TraceEv::Rescan => e.track == Track::Gc,
        TraceEv::GoRun | TraceEv::BarrierHit | TraceEv::Sweep => matches!(e.track, Track::P(_)),
        _ => true,
    }));
}

/// A write barrier inside a `nowritebarrier` region is a fatal error (debug builds).
#[cfg(debug_assertions)]
#[test]
fn a_write_barrier_in_a_nowritebarrier_region_is_fatal() {
    let engine = Deterministic::new(GcConfig::default(), image(1, 4)).unwrap();
    let rt = engine.runtime();
    let mut p = gc::sched::P::new(0);
    assert!(rt.write_barrier(&mut p, 0, 0).is_ok());
    let _region = gc::nowb::nowritebarrier("stopTheWorld");
    let err = rt.write_barrier(&mut p, 0, 0).unwrap_err();
    assert!(matches!(
        err,
        RuntimeError::WriteBarrierInNoWriteBarrier {
            region: "stopTheWorld"
        }
    ));
    assert!(err.is_checker_violation());
    assert_eq!(
        err.to_string(),
        "fatal error: write barrier in nowritebarrier function stopTheWorld"
    );
    let _ = Rng::seed_from_u64(0);
}
