//! The sampling profiler against seed 003's `TestGoroutineSwitch` and its stack-barrier analogue,
//! the trace buffers over a long run, and `nowritebarrier` regions.
//!
//! Samples are drawn at a high rate (a signal every few micro-operation boundaries) from
//! goroutines that mostly switch, or that return through and unwind past a barrier on every
//! frame, so signals land inside `gogo`, `mcall` and every barrier operation thousands of times.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Queue, call, scripted_runtime};
use gc::mark::MarkProgress;
use gc::workbuf::GcWork;

use gc::profile::{ProfileRules, SampleStack};
use gc::sched::P;
use gc::trace::{TraceEv, Track, VecSink};
use gc::{
    Behaviour, Ctx, Deterministic, GcConfig, Limits, ObjType, Op, ProfileConfig, Rng, RunResult,
    Runtime, RuntimeError, Threaded, TypeId, WorkloadImage,
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

fn config(rules: ProfileRules, barriers: StackBarrierMode, seed: u64) -> GcConfig {
    GcConfig {
        stack_barriers: barriers,
        gogc: None,
        force_gc_ops: Some(3_000),
        procs: 3,
        seed,
        profile: Some(ProfileConfig {
            rules,
            period: 5,
            interval: Duration::from_micros(20),
            ..ProfileConfig::default()
        }),
        ..GcConfig::default()
    }
}

/// `cycles` cycles of 8 switchers 40 frames deep on real threads.
fn run_threaded(config: GcConfig, cycles: u32) -> RunResult {
    let limits = Limits {
        max_ops: 100_000_000,
        time_limit: Duration::from_secs(120),
    };
    Threaded::new(config, image(8, 40))
        .unwrap()
        .run(cycles, limits)
        .unwrap()
}

fn run_deterministic(config: GcConfig, cycles: u32) -> RunResult {
    Deterministic::new(config, image(12, 40))
        .unwrap()
        .run(cycles, 50_000_000)
        .unwrap()
}

/// Seed 003's `TestGoroutineSwitch`, under both rule sets: no sample taken inside a switch is
/// unwound, none is malformed, and every traceback is checked. Under `seed003` no traceback
/// holds a runtime frame; under `go1.7` the scheduler's samples are g0 tracebacks of runtime
/// frames only.
#[test]
fn samples_taken_mid_switch_are_never_unwound() {
    for (rules, seed) in [(ProfileRules::Go17, 1), (ProfileRules::Seed003, 2)] {
        let r = run_deterministic(config(rules, StackBarrierMode::GO, seed), 12);
        let prof = r.profile.expect("profiling was on");
        let c = prof.counts;
        assert!(c.samples > 20_000, "{rules}: {c:?}");
        assert!(c.samples_mid_switch > 1_000, "{rules}: {c:?}");
        assert_eq!(c.unwound_mid_switch, 0, "{rules}: {c:?}");
        assert_eq!(c.malformed, 0, "{rules}: {c:?}");
        assert_eq!(c.validated, c.user_samples + c.g0_samples, "{rules}");
        assert_eq!(c.samples, c.user_samples + c.g0_samples + c.system_samples);
        assert!(c.refused_sp > 0 && c.refused_sets_sp > 0, "{rules}: {c:?}");
        let prog = image(1, 1).program;
        let kinds = |frames: &[FuncId]| -> Vec<bool> {
            frames
                .iter()
                .map(|&f| prog.func(f).kind == FuncKind::User)
                .collect()
        };
        for stack in prof.stacks.keys() {
            if let SampleStack::Traceback(frames) = stack {
                let user = kinds(frames);
                assert!(
                    user.iter().all(|&u| u)
                        || (rules == ProfileRules::Go17 && !user.contains(&true)),
                    "{rules}: a traceback mixing stacks: {frames:?}"
                );
            }
        }
        match rules {
            ProfileRules::Go17 => assert!(c.g0_samples > 1_000 && c.refused_g0 == 0, "{c:?}"),
            _ => assert!(c.g0_samples == 0 && c.refused_g0 > 1_000, "{c:?}"),
        }
        let folded_total: u64 = prof.stacks.values().sum();
        assert_eq!(folded_total, c.samples);
    }
}

/// With a barrier on every frame, signals land inside installs (self-scans), hits (returns),
/// removals (unwinds) and stack moves. Under `go1.7` the mid-hit samples are unwound through the
/// trampoline and the others are g0 tracebacks; under `seed003` all of them are System; nothing
/// is malformed under either.
#[test]
fn barrier_mid_update_samples_follow_each_rule_set() {
    for rules in [ProfileRules::Go17, ProfileRules::Seed003] {
        let r = run_deterministic(config(rules, StackBarrierMode::EVERY_FRAME, 3), 16);
        let c = r.profile.expect("profiling was on").counts;
        assert!(c.samples_mid_barrier > 200, "{rules}: {c:?}");
        assert_eq!(c.malformed, 0, "{rules}: {c:?}");
        assert!(r.totals.sum.barriers_hit > 100, "{:?}", r.totals.sum);
        match rules {
            ProfileRules::Go17 => {
                assert!(
                    c.unwound_mid_barrier > 0,
                    "mid-hit samples are unwound: {c:?}"
                );
                assert_eq!(c.refused_stack_barrier_pc + c.refused_stkbar_lock, 0);
            }
            _ => {
                assert_eq!(c.unwound_mid_barrier, 0, "{c:?}");
                assert!(
                    c.refused_stack_barrier_pc > 0,
                    "hits are refused by PC: {c:?}"
                );
            }
        }
    }
}

/// Lazy stack scans (`hybrid`, a watermark moved by the markers and by returns): samples land
/// inside watermark hits — popped into the trampoline (Go 1.7 unwinds them through the fix-up)
/// and inside the handler, which holds the stack-barrier lock (Go 1.7 records System); seed
/// 003 refuses both by the trampoline's PC — and none is malformed, on either engine, though the marker moves the watermark
/// under the running goroutine on real threads.
#[test]
fn samples_mid_watermark_hit_unwind_correctly() {
    let lazy = |rules, seed| GcConfig {
        design: gc::wbarrier::design("hybrid").unwrap(),
        stack_scan: gc::StackScan::Lazy {
            first_frames: 1,
            step_frames: 1,
        },
        ..config(rules, StackBarrierMode::Off, seed)
    };
    for rules in [ProfileRules::Go17, ProfileRules::Seed003] {
        let r = run_deterministic(lazy(rules, 3), 16);
        let c = r.profile.expect("profiling was on").counts;
        assert!(r.totals.sum.watermark_hits > 50, "{:?}", r.totals.sum);
        assert!(c.samples_mid_barrier > 10, "{rules}: {c:?}");
        assert_eq!(c.malformed, 0, "{rules}: {c:?}");
        match rules {
            ProfileRules::Go17 => {
                assert!(c.unwound_mid_barrier > 0, "popped: {c:?}");
                assert!(c.refused_stkbar_lock > 0, "inside the handler: {c:?}");
            }
            _ => assert!(c.refused_stack_barrier_pc > 0, "refused by the PC: {c:?}"),
        }
        let mut cfg = lazy(rules, 5);
        cfg.procs = 2;
        let r = run_threaded(cfg, 6);
        let prof = r.profile.expect("profiling was on");
        assert!(r.totals.sum.marker_lazy_frames > 0, "{:?}", r.totals.sum);
        assert_eq!(prof.counts.malformed, 0, "{rules}: {:?}", prof.counts);
    }
}

/// Without checks (Go before seed 003) the same runs record malformed tracebacks, all of them
/// inside switches: what the rules prevent.
#[test]
fn without_checks_mid_switch_samples_are_malformed() {
    let r = run_deterministic(
        config(ProfileRules::None, StackBarrierMode::EVERY_FRAME, 3),
        12,
    );
    let c = r.profile.expect("profiling was on").counts;
    assert!(c.unwound_mid_switch > 0, "{c:?}");
    assert!(c.malformed_mid_switch > 0, "{c:?}");
    assert_eq!(
        c.malformed, c.malformed_mid_switch,
        "outside switches every traceback is right: {c:?}"
    );
}

/// The same seed gives the same samples, bit for bit, and the rule sets see the same signals.
#[test]
fn deterministic_profiles_reproduce_and_pair_across_rule_sets() {
    let a = run_deterministic(config(ProfileRules::Go17, StackBarrierMode::GO, 7), 4);
    let b = run_deterministic(config(ProfileRules::Go17, StackBarrierMode::GO, 7), 4);
    assert_eq!(a.profile, b.profile);
    let c = run_deterministic(config(ProfileRules::Seed003, StackBarrierMode::GO, 7), 4);
    let (a, c) = (a.profile.unwrap().counts, c.profile.unwrap().counts);
    assert_eq!(
        (a.samples, a.samples_mid_switch, a.samples_on_g0),
        (c.samples, c.samples_mid_switch, c.samples_on_g0)
    );
}

/// Real threads and a real profiler thread: signals arrive at any moment, only to Ps on a CPU,
/// and no sample is malformed under either rule set.
#[test]
fn a_threaded_run_with_a_profiler_thread_records_no_malformed_sample() {
    for rules in [ProfileRules::Go17, ProfileRules::Seed003] {
        let mut cfg = config(rules, StackBarrierMode::EVERY_FRAME, 5);
        cfg.procs = 2;
        let r = run_threaded(cfg, 6);
        let prof = r.profile.expect("profiling was on");
        assert!(prof.signals_sent > 0 && prof.counts.samples > 0, "{prof:?}");
        assert!(prof.counts.samples <= prof.signals_sent);
        assert_eq!(prof.counts.malformed, 0, "{rules}: {:?}", prof.counts);
    }
}

/// The profiler thread signals only Ps whose threads are on a CPU: a sleeping P's thread never
/// gets one, and with every thread asleep none is sent.
#[test]
fn an_idle_p_is_never_signalled() {
    let cfg = GcConfig {
        procs: 4,
        ..config(ProfileRules::Go17, StackBarrierMode::GO, 1)
    };
    let mut ps: Vec<P> = (0..4).map(P::new).collect();
    let rt = Runtime::new(cfg, image(1, 4), &mut ps).unwrap();
    let mut rng = Rng::seed_from_u64(1);
    assert_eq!(rt.signal_running_p(&mut rng), None, "every thread asleep");
    rt.set_oncpu(1, true);
    rt.set_oncpu(3, true);
    let mut hits = [0u32; 4];
    for _ in 0..1_000 {
        hits[rt.signal_running_p(&mut rng).unwrap()] += 1;
    }
    assert_eq!((hits[0], hits[2]), (0, 0), "{hits:?}");
    assert!(
        hits[1] > 400 && hits[3] > 400,
        "uniform over the running: {hits:?}"
    );
    rt.set_oncpu(3, false);
    assert!((0..100).all(|_| rt.signal_running_p(&mut rng) == Some(1)));
}

/// One goroutine on one P, a signal at every boundary (period 1), a barrier on every frame: it
/// grows its stack, scans itself, hits two barriers, passes barriers in a bulk write and in a
/// recovered panic, yields, and exits with barriers left — every operation that holds the
/// stack-barrier lock on the goroutine's own M, and the hit that does not — then its P idles.
/// Returns the profile and the runtime.
fn scripted_profile(rules: ProfileRules) -> (gc::Profile, Runtime) {
    let q = Queue::default();
    let (rt, mut p) = scripted_runtime(std::slice::from_ref(&q), |c| {
        c.stack_barriers = StackBarrierMode::EVERY_FRAME;
        c.profile = Some(ProfileConfig {
            rules,
            period: 1,
            ..ProfileConfig::default()
        });
    });
    rt.start_profiling([&mut p], false);
    let mut worker = GcWork::new();
    let play = |rt: &Runtime, p: &mut P, ops: Vec<Op>| {
        let n = ops.len();
        q.lock().unwrap().extend(ops);
        for _ in 0..n {
            rt.mutator_step(p).unwrap();
        }
    };
    // 70 frames of 32 bytes outgrow the 2 KiB stack: copystack.
    play(&rt, &mut p, vec![call(); 70]);
    rt.stop_p(&mut p);
    rt.gc_start(&mut worker, &mut p).unwrap();
    assert_eq!(rt.mark_step(&mut worker).unwrap(), MarkProgress::Worked); // globals
    // The goroutine runs again; the marker finds it running and asks it to scan itself, which
    // it does at its next prologue.
    play(&rt, &mut p, vec![call()]);
    rt.mark_step(&mut worker).unwrap();
    play(&rt, &mut p, vec![call()]);
    play(
        &rt,
        &mut p,
        vec![
            Op::Ret, // the running frame has no barrier
            Op::Ret, // hit
            Op::Ret, // hit
            Op::TakeAddr {
                up: 3,
                slot: 0,
                dst: 0,
            },
            Op::Clear { dst: 1 },
            Op::BulkWrite { ptr: 0, src: 1 },
            Op::Unwind { frames: 5 }, // past the bulk write's three
            Op::Yield,
            call(),
            Op::Exit,
        ],
    );
    let profile = rt.profile([&p]).unwrap();
    // No goroutine is left: the idle M takes no signal, even one at every boundary.
    for _ in 0..10 {
        assert_eq!(rt.mutator_step(&mut p).unwrap(), gc::Step::Idle);
    }
    assert_eq!(
        rt.profile([&p]).unwrap(),
        profile,
        "an idle M takes no signal"
    );
    (profile, rt)
}

/// Go 1.7's rules on every kind of sample: a sample inside the trampoline, before and after
/// `stkbar_pos` advances, unwinds to the true frames; a sample in each lock-holding operation
/// is a g0 traceback of its runtime frames; a sample mid-`gogo` is System. Under seed 003's
/// rules the same signals (the run is the same) give System for every one of them.
#[test]
fn each_rule_set_on_each_kind_of_sample() {
    let (go17, rt) = scripted_profile(ProfileRules::Go17);
    let (seed003, _) = scripted_profile(ProfileRules::Seed003);
    let prog = &rt.prog;
    let (c7, c3) = (go17.counts, seed003.counts);
    assert_eq!(c7.samples, c3.samples, "the same signals");
    for c in [&c7, &c3] {
        assert_eq!(c.malformed, 0, "{c:?}");
        assert_eq!(c.validated, c.user_samples + c.g0_samples, "{c:?}");
        assert_eq!(c.unwound_mid_switch, 0, "{c:?}");
        assert!(c.samples_mid_copystack > 0, "{c:?}");
    }
    // Two hits, two boundaries each (before and after stkbar_pos advances): unwound under go1.7,
    // refused by PC under seed003.
    assert_eq!(c7.unwound_mid_barrier, 4, "{c7:?}");
    assert_eq!(c3.refused_stack_barrier_pc, 4, "{c3:?}");
    assert_eq!(c3.unwound_mid_barrier + c3.g0_samples, 0, "{c3:?}");
    assert_eq!(c7.refused_g0 + c7.refused_stkbar_lock, 0, "{c7:?}");
    let folded = go17.folded(prog);
    for g0_stack in [
        "runtime.mstart;runtime.schedule",
        "runtime.morestack;runtime.newstack;runtime.copystack",
        "runtime.morestack;runtime.newstack;runtime.scanstack;runtime.gcInstallStackBarrier",
        "runtime.mstart;runtime.systemstack;runtime.heapBitsBulkBarrier.func1;runtime.gcUnwindBarriers;runtime.gcRemoveStackBarrier",
        "runtime.mcall;runtime.recovery;runtime.gcUnwindBarriers;runtime.gcRemoveStackBarrier",
        "runtime.mcall;runtime.gosched_m;runtime.schedule",
        "runtime.mcall;runtime.goexit0;runtime.gfput;runtime.gcRemoveStackBarrier",
    ] {
        assert!(
            folded
                .lines()
                .any(|l| l.strip_prefix(g0_stack).is_some_and(|n| n.starts_with(' '))),
            "no g0 traceback {g0_stack}:\n{folded}"
        );
    }
    // Every g0 traceback under go1.7 is a System sample at the same function under seed003.
    let innermost_g0 = |p: &gc::Profile| -> BTreeMap<FuncId, u64> {
        let mut m = BTreeMap::new();
        for (stack, n) in &p.stacks {
            let f = match stack {
                SampleStack::Traceback(fs) => fs.last().copied(),
                SampleStack::System(f) => *f,
                SampleStack::Malformed(_) => None,
            };
            if let Some(f) =
                f.filter(|&f| matches!(prog.func(f).kind, FuncKind::Runtime | FuncKind::Schedule))
            {
                *m.entry(f).or_default() += n;
            }
        }
        m
    };
    assert_eq!(innermost_g0(&go17), innermost_g0(&seed003));
    assert_eq!(
        innermost_g0(&go17).values().sum::<u64>(),
        c7.g0_samples,
        "g0 tracebacks end in a runtime function"
    );
    // Mid-gogo samples are System under both.
    let gogo = SampleStack::System(Some(prog.gogo()));
    assert!(go17.stacks.get(&gogo).is_some_and(|&n| n > 0));
    assert_eq!(go17.stacks.get(&gogo), seed003.stacks.get(&gogo));
}

/// Trace buffers are recycled: over a long traced run the events fill many buffers, every event
/// reaches the sink once, and the buffers ever allocated stay a handful (one per P, the global
/// one, and the ones waiting for the reader).
#[test]
fn trace_buffers_are_recycled_not_leaked_across_a_long_run() {
    let mut cfg = config(ProfileRules::Go17, StackBarrierMode::EVERY_FRAME, 9);
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
