//! What the hand-built scenario tests share: a program of one function, `main.leaf` (a 32-byte
//! frame whose words 0 and 2 are pointer slots), one object type, `main.node` (4 words, pointers
//! in 0 and 1), two globals, and goroutines that play the operations a test queues — yielding
//! when there are none — on a runtime with one P, no pacing and every re-scan recorded.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gc::sched::P;
use gc::{Behaviour, Ctx, GcConfig, ObjType, Op, Rng, Runtime, TypeId, WorkloadImage};
use stacks::{FuncId, Program};

/// A goroutine's script: the operations it has yet to play.
pub(crate) type Queue = Arc<Mutex<VecDeque<Op>>>;

/// Plays the operations the test queues, and yields when there are none.
#[derive(Debug)]
pub(crate) struct Script(pub(crate) Queue);

impl Behaviour for Script {
    fn next_op(&mut self, _: &Ctx, _: &mut Rng) -> Op {
        self.0.lock().unwrap().pop_front().unwrap_or(Op::Yield)
    }
}

/// `main.leaf`: the first user function follows the six runtime functions.
pub(crate) const LEAF: FuncId = FuncId(6);
/// `main.node`.
pub(crate) const NODE: TypeId = TypeId(0);

/// A call of `main.leaf`.
pub(crate) fn call() -> Op {
    Op::Call {
        func: LEAF,
        site: 0,
    }
}

/// A runtime with one P and a goroutine playing each of `scripts` (created in that order), its
/// configuration adjusted by `tweak`.
pub(crate) fn scripted_runtime(
    scripts: &[Queue],
    tweak: impl FnOnce(&mut GcConfig),
) -> (Runtime, P) {
    let program = Program::builder()
        .func_with_pointers("main.leaf", 32, &[0, 2])
        .build()
        .unwrap();
    assert_eq!(program.lookup("main.leaf"), Some(LEAF));
    let image = WorkloadImage {
        program,
        types: vec![ObjType::new("main.node", 4, &[0, 1])],
        globals: 2,
        goroutines: scripts
            .iter()
            .map(|q| Box::new(Script(Arc::clone(q))) as Box<dyn Behaviour>)
            .collect(),
        wakes_per_ms: 0.0,
    };
    let mut config = GcConfig {
        gogc: None,
        procs: 1,
        record_rescans: true,
        ..GcConfig::default()
    };
    tweak(&mut config);
    let mut ps = vec![P::new(0)];
    let rt = Runtime::new(config, image, &mut ps).unwrap();
    (rt, ps.pop().unwrap())
}
