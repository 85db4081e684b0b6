//! Exact counters on hand-built scenarios: one goroutine, scripted operation by operation, with the
//! collector's steps called in a chosen order, so every re-scan figure is known in advance.
//!
//! The program is `common`'s: one function, `main.leaf`, a 32-byte frame whose words 0 and 2 are
//! pointer slots. A goroutine recurses 1,000 frames deep (32,000 bytes), is scanned concurrently there (the
//! scan-time SP `sp0`), then oscillates: three returns and three calls, fifty times.

mod common;

use std::collections::VecDeque;

use common::{NODE, Queue, call, scripted_runtime};
use gc::mark::MarkProgress;
use gc::sched::P;
use gc::workbuf::GcWork;
use gc::{CycleStats, GcConfig, Inject, Op, Runtime, RuntimeError};
use stacks::StackBarrierMode;

struct World {
    script: Queue,
    rt: Runtime,
    p: P,
    worker: GcWork,
}

impl World {
    fn new(mode: StackBarrierMode, inject: Inject, checkmark: bool, script: Vec<Op>) -> World {
        World::with(mode, script, |c| {
            c.inject = inject;
            c.debug.gccheckmark = checkmark;
        })
    }

    /// A world whose configuration `tweak` adjusts.
    fn with(mode: StackBarrierMode, script: Vec<Op>, tweak: impl FnOnce(&mut GcConfig)) -> World {
        let queue = Queue::new(VecDeque::from(script).into());
        let (rt, p) = scripted_runtime(std::slice::from_ref(&queue), |c| {
            c.stack_barriers = mode;
            tweak(c);
        });
        World {
            script: queue,
            rt,
            p,
            worker: GcWork::new(),
        }
    }

    /// Queues `ops` and runs them.
    fn play(&mut self, ops: Vec<Op>) {
        let n = ops.len();
        self.script.lock().unwrap().extend(ops);
        self.ops(n);
    }

    fn ops(&mut self, n: usize) {
        for _ in 0..n {
            self.rt.mutator_step(&mut self.p).unwrap();
        }
    }

    /// Sweep termination; then the marker takes the globals and the goroutine's stack.
    fn start_and_scan_roots(&mut self) {
        self.rt.stop_p(&mut self.p);
        self.rt.gc_start(&mut self.worker, &mut self.p).unwrap();
        assert_eq!(
            self.rt.mark_step(&mut self.worker).unwrap(),
            MarkProgress::Worked
        ); // globals
        assert_eq!(
            self.rt.mark_step(&mut self.worker).unwrap(),
            MarkProgress::Worked
        ); // the stack
    }

    /// Drains, then mark termination, then (the world restarted, the goroutine not running)
    /// the after-restart walk, whose figures complete the cycle's row.
    fn finish(&mut self) -> Result<CycleStats, RuntimeError> {
        while self.rt.mark_step(&mut self.worker)? != MarkProgress::Done {}
        self.rt.stop_p(&mut self.p);
        self.worker.dispose(&self.rt.gc.pool);
        assert!(self.rt.mark_complete());
        self.rt.mark_termination(&mut self.worker, 0)?;
        assert!(self.rt.removal_step(usize::MAX)?);
        Ok(*self.rt.gc.history().last().expect("a completed cycle"))
    }
}

/// Recurse 1,000 frames; after the scan, oscillate 3 frames 50 times.
fn oscillation_cycle(mode: StackBarrierMode) -> CycleStats {
    let mut w = World::new(mode, Inject::default(), true, vec![call(); 1000]);
    w.ops(1000);
    w.start_and_scan_roots();
    let mut script = Vec::new();
    for _ in 0..50 {
        script.extend([Op::Ret, Op::Ret, Op::Ret, call(), call(), call()]);
    }
    w.play(script);
    let stats = w.finish().unwrap();
    let recs = w.rt.gc.rescan_records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].rescan_bytes as u64, stats.rescan_bytes);
    if let StackBarrierMode::On { first_offset } = mode {
        assert!(recs[0].within_bound(first_offset), "{:?}", recs[0]);
    }
    stats
}

#[test]
fn a_rescan_at_depth_1000_covers_exactly_the_frames_up_to_the_first_barrier() {
    let s = oscillation_cycle(StackBarrierMode::GO);
    // 32-byte frames: the first return-PC slot at least 1,024 bytes above sp0 is frame 32's (at
    // sp0 + 1,048), so the re-scan covers frames 0..=32: 33 frames, 1,056 bytes.
    assert_eq!((s.rescan_frames, s.rescan_bytes), (33, 1056));
    assert_eq!(s.full_rescan_bytes, 32_000);
    // The oracle: the three frames pushed again and the frame returned into, 4 × 32 bytes.
    assert_eq!(s.oracle_rescan_bytes, 128);
    // Barriers at the first slots ≥ 1, 2, 4, 8, 16 KiB above sp0; the oscillation hits none.
    assert_eq!(
        (s.barriers_installed, s.barriers_hit, s.barriers_removed),
        (5, 0, 5)
    );
    assert_eq!((s.stacks_scanned, s.scan_bytes), (1, 32_000));
    assert_eq!(s.checkmark_failures, 0);
}

#[test]
fn without_barriers_the_rescan_covers_the_whole_stack() {
    let s = oscillation_cycle(StackBarrierMode::Off);
    assert_eq!((s.rescan_frames, s.rescan_bytes), (1000, 32_000));
    assert_eq!(s.oracle_rescan_bytes, 128);
    assert_eq!(s.barriers_installed, 0);
}

#[test]
fn barriers_on_every_frame_rescan_exactly_the_oracle() {
    let s = oscillation_cycle(StackBarrierMode::EVERY_FRAME);
    assert_eq!((s.rescan_frames, s.rescan_bytes), (4, 128));
    assert_eq!(s.oracle_rescan_bytes, 128);
    // Every frame but frame 0 (the running frame at the scan, which Go never barriers), the
    // outermost included; of the first three returns, the first pops frame 0 and the next two
    // hit the barriers of frames 1 and 2. The rest are removed after the restart.
    assert_eq!(
        (s.barriers_installed, s.barriers_hit, s.barriers_removed),
        (999, 2, 997)
    );
}

/// A goroutine at depth 1,000 hides an object: after its scan it returns three frames, loads
/// `global0.f0` into a local of the frame it returned into, deletes it from the heap, and calls
/// three frames deeper. Only that frame holds the object at mark termination.
fn hidden_object_cycle(mode: StackBarrierMode, inject: Inject) -> Result<CycleStats, RuntimeError> {
    hidden_object_cycle_with(mode, |c| {
        c.inject = inject;
        c.debug.gccheckmark = true;
    })
}

/// [`hidden_object_cycle`] under a configuration `tweak` adjusts.
fn hidden_object_cycle_with(
    mode: StackBarrierMode,
    tweak: impl FnOnce(&mut GcConfig),
) -> Result<CycleStats, RuntimeError> {
    hidden_object_cycle_via(mode, Hide::Returns, tweak)
}

/// How the goroutine gets the object into an outer frame after its scan.
#[derive(Clone, Copy, Debug)]
enum Hide {
    /// Three returns (the last two through barriers), then loads into the frame returned into.
    Returns,
    /// A three-frame unwind (a recovered panic, passing the same barriers), then the loads.
    Unwind,
    /// A bulk write (a channel receive into `&local`) of the object into the slot of the frame
    /// two above the running one, which passes the barrier between them.
    BulkWrite,
}

/// [`hidden_object_cycle_with`], the object hidden `via` one of the ways a frame above the
/// running one changes.
fn hidden_object_cycle_via(
    mode: StackBarrierMode,
    via: Hide,
    tweak: impl FnOnce(&mut GcConfig),
) -> Result<CycleStats, RuntimeError> {
    let mut setup = vec![
        call(),
        Op::Alloc { ty: NODE, dst: 0 },
        Op::StoreGlobal {
            global: 0,
            src: Some(0),
        },
        Op::Alloc { ty: NODE, dst: 1 },
        Op::StoreField {
            obj: 0,
            field: 0,
            src: Some(1),
        },
        Op::Clear { dst: 0 },
        Op::Clear { dst: 1 },
    ];
    setup.extend(vec![call(); 999]);
    let n = setup.len();
    let mut w = World::with(mode, setup, tweak);
    w.ops(n);
    w.start_and_scan_roots();
    let load_and_delete = [
        Op::LoadGlobal { global: 0, dst: 0 },
        Op::LoadField {
            obj: 0,
            field: 0,
            dst: 1,
        },
        Op::StoreField {
            obj: 0,
            field: 0,
            src: None,
        },
        Op::Clear { dst: 0 },
    ];
    let mut hide = match via {
        Hide::Returns => vec![Op::Ret, Op::Ret, Op::Ret],
        Hide::Unwind => vec![Op::Unwind { frames: 3 }],
        Hide::BulkWrite => vec![
            Op::LoadGlobal { global: 0, dst: 1 },
            Op::LoadField {
                obj: 1,
                field: 0,
                dst: 1,
            },
            Op::TakeAddr {
                up: 2,
                slot: 0,
                dst: 0,
            },
            Op::BulkWrite { ptr: 0, src: 1 },
            Op::Clear { dst: 1 },
        ],
    };
    if let Hide::BulkWrite = via {
        // The object is in the outer frame already: delete it from the heap and forget it here.
        hide.extend([
            Op::LoadGlobal { global: 0, dst: 1 },
            Op::StoreField {
                obj: 1,
                field: 0,
                src: None,
            },
            Op::Clear { dst: 1 },
            Op::Clear { dst: 0 },
        ]);
    } else {
        hide.extend(load_and_delete);
    }
    hide.extend([call(), call(), call()]);
    w.play(hide);
    w.finish()
}

#[test]
fn a_correct_bound_finds_the_object_hidden_in_the_frame_holding_the_barrier() {
    for mode in [
        StackBarrierMode::EVERY_FRAME,
        StackBarrierMode::GO,
        StackBarrierMode::Off,
    ] {
        let s = hidden_object_cycle(mode, Inject::default()).unwrap();
        assert_eq!(s.checkmark_failures, 0, "{mode}");
    }
}

#[test]
fn a_rescan_one_frame_short_is_caught_by_checkmark() {
    let inject = Inject::parse("bound-short=1").unwrap();
    let err = hidden_object_cycle(StackBarrierMode::EVERY_FRAME, inject).unwrap_err();
    match &err {
        RuntimeError::CheckmarkFailed {
            failures, report, ..
        } => {
            assert_eq!(*failures, 1);
            assert!(
                report.contains("main.node object") && report.contains("goroutine 1 stack slot"),
                "{report}"
            );
        }
        e => panic!("expected a checkmark failure, got {e}"),
    }
    assert!(err.is_checker_violation());
}

#[test]
fn an_injected_rescan_skip_is_caught_by_checkmark_and_counted() {
    for mode in [StackBarrierMode::EVERY_FRAME, StackBarrierMode::Off] {
        let err = hidden_object_cycle_with(mode, |c| {
            c.inject = Inject::parse("rescan-skip=1").unwrap();
            c.debug.gccheckmark = true;
        })
        .unwrap_err();
        assert!(
            matches!(err, RuntimeError::CheckmarkFailed { failures: 1, .. }),
            "{mode}: {err}"
        );
        // Skipping nothing is the correct run.
        let s = hidden_object_cycle_with(mode, |c| {
            c.inject = Inject::parse("rescan-skip=0").unwrap();
            c.debug.gccheckmark = true;
        })
        .unwrap();
        assert_eq!(s.checkmark_failures, 0);
    }
}

#[test]
fn wbshadow_2_runs_the_checkmark_walk_and_catches_the_hidden_object_too() {
    let err = hidden_object_cycle_with(StackBarrierMode::EVERY_FRAME, |c| {
        c.inject.bound_short = 1;
        c.debug.wbshadow = 2;
    })
    .unwrap_err();
    assert!(
        matches!(err, RuntimeError::CheckmarkFailed { failures: 1, .. }),
        "{err}"
    );
}

/// A goroutine two frames deep whose running frame's first pointer slot holds `junk`, as a wrong
/// pointer map or a stack-writing bug would leave it.
fn world_with_junk_slot(junk: u64, invalidptr: bool) -> World {
    let mut w = World::with(StackBarrierMode::GO, vec![call(), call()], |c| {
        c.debug.invalidptr = invalidptr;
    });
    w.ops(2);
    let owner = w.p.curg.as_mut().expect("the goroutine is running");
    let g = w.rt.g(owner.index());
    let st = g.state(owner).as_mut().expect("it has state");
    let sp = st.gs.sp();
    st.gs.write(sp, junk).unwrap(); // word 0 of main.leaf is a pointer slot
    w
}

#[test]
fn invalidptr_a_junk_pointer_slot_found_by_the_stack_scan_is_fatal_with_a_traceback() {
    let mut w = world_with_junk_slot(0x10, true);
    w.rt.stop_p(&mut w.p);
    w.rt.gc_start(&mut w.worker, &mut w.p).unwrap();
    w.rt.mark_step(&mut w.worker).unwrap(); // globals
    let err = w.rt.mark_step(&mut w.worker).unwrap_err(); // the stack
    let msg = err.to_string();
    assert!(err.is_checker_violation());
    assert!(
        msg.contains("invalid pointer 0x10")
            && msg.contains("goroutine 1 stack slot")
            && msg.contains("first page")
            && msg.contains("\ngoroutine 1 [stack")
            && msg.matches("\tmain.leaf()").count() == 2,
        "{msg}"
    );
}

#[test]
fn invalidptr_copystack_refuses_junk_and_poison_but_not_with_invalidptr_off() {
    for (junk, invalidptr, fatal) in [
        (0x10, true, true),
        (0x10, false, false),
        (stacks::POISON_STACK, false, true),
        (stacks::POISON_GC, true, true),
    ] {
        let mut w = world_with_junk_slot(junk, invalidptr);
        // 100 more 32-byte frames outgrow the 2 KiB stack: copystack walks every slot.
        w.script.lock().unwrap().extend(vec![call(); 100]);
        let mut result = Ok(gc::Step::Ran);
        for _ in 0..100 {
            result = w.rt.mutator_step(&mut w.p);
            if result.is_err() {
                break;
            }
        }
        match result {
            Err(e) => {
                assert!(fatal, "{junk:#x} invalidptr={invalidptr}: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("invalid pointer {junk:#x}"))
                        && msg.contains("while moving the stack")
                        && msg.contains("\ngoroutine 1 [stack"),
                    "{msg}"
                );
            }
            Ok(_) => assert!(!fatal, "{junk:#x} invalidptr={invalidptr} was not caught"),
        }
    }
}

/// stackshadow catches each re-scan fault on a scenario built so that the fault makes the
/// re-scan skip the frame that changed; with the checker off the run counts that frame
/// (`skipped_frames_changed`), and without the fault nothing is skipped that changed.
#[test]
fn stackshadow_catches_each_rescan_fault_on_the_frame_it_changed() {
    let cases = [
        ("rescan-skip=1", Hide::Returns),
        ("bound-short=1", Hide::Returns),
        ("hit-lost=1", Hide::Returns),
        ("unwind-skip=1", Hide::Unwind),
        ("unwind-skip=1", Hide::BulkWrite),
    ];
    for (fault, via) in cases {
        let mode = StackBarrierMode::EVERY_FRAME;
        let inject = Inject::parse(fault).unwrap();
        let err = hidden_object_cycle_via(mode, via, |c| {
            c.inject = inject;
            c.debug.stackshadow = true;
        })
        .unwrap_err();
        let RuntimeError::StackShadowViolation { report, .. } = &err else {
            panic!("{fault} via {via:?}: expected a stackshadow violation, got {err}");
        };
        assert!(err.is_checker_violation());
        for needle in [
            "stackshadow: goroutine 1",
            "the re-scan skipped a frame that changed",
            "main.leaf",
            "traceback",
            "stkbar (stkbar_pos",
        ] {
            assert!(report.contains(needle), "{fault} via {via:?}: {report}");
        }
        // The changed slot, both values, and the frame marked in the traceback.
        assert!(
            report.contains("held 0x0 at the scan, holds 0x") || report.contains("is new"),
            "{fault} via {via:?}: {report}"
        );
        assert!(report.contains("\n   *"), "{fault} via {via:?}: {report}");

        let counted = hidden_object_cycle_via(mode, via, |c| c.inject = inject).unwrap();
        assert!(
            counted.skipped_frames_changed > 0,
            "{fault} via {via:?}: {counted:?}"
        );
        let took_effect = counted.rescan_frames_skipped
            + counted.rescans_shortened
            + counted.hits_lost
            + counted.unwinds_skipped;
        assert!(took_effect > 0, "{fault} via {via:?}: {counted:?}");

        let clean = hidden_object_cycle_via(mode, via, |c| c.debug.stackshadow = true).unwrap();
        assert_eq!(clean.skipped_frames_changed, 0);
        assert!(clean.stackshadow_frames_verified > 900, "{clean:?}");
        assert_eq!(clean.checkmark_failures, 0);
    }
}

/// A write-barriered store through a pointer into an outer frame changes a frame the re-scan
/// skips, legitimately: stackshadow's record follows it, and the run is clean.
#[test]
fn stackshadow_follows_a_barriered_store_into_an_outer_frame() {
    let mut script = vec![call(); 100];
    script.push(Op::Alloc { ty: NODE, dst: 1 });
    let mut w = World::with(StackBarrierMode::EVERY_FRAME, script, |c| {
        c.debug.stackshadow = true;
    });
    w.ops(101);
    w.start_and_scan_roots();
    w.play(vec![
        Op::TakeAddr {
            up: 5,
            slot: 0,
            dst: 0,
        },
        Op::StoreThrough {
            ptr: 0,
            src: Some(1),
        },
        Op::Clear { dst: 0 },
    ]);
    let s = w.finish().unwrap();
    assert_eq!(s.skipped_frames_changed, 0);
    // 100 frames; the re-scan covers the running frame and frame 1, which holds the lowest barrier.
    assert_eq!((s.rescan_frames, s.stackshadow_frames_verified), (2, 98));
    // The content oracle: nothing changed without a barrier (the running frame's address slot
    // was cleared again; frame 5's new value was the write barrier's), so no re-scan was needed.
    assert_eq!(s.content_rescan_bytes, 0);
    assert!(s.oracle_rescan_bytes > 0);
}
