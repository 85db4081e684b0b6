//! Fatal runtime errors.
//!
//! Invariant: every way a run can go wrong ends in one [`RuntimeError`] whose message names what
//! was found where — the goroutine, the frame, the address, the object — as Go's `throw` output
//! does, and [`RuntimeError::is_checker_violation`] tells a checker's finding (a collector bug
//! caught: exit code 3) from a configuration the run could not satisfy.

use stacks::{Addr, StackError};

use crate::heap::HeapError;

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    /// An inconsistent stack or a stack-barrier protocol violation.
    #[error("fatal error: {0}")]
    Stack(#[from] StackError),
    /// A pointer slot holding a value that cannot be a pointer, or a heap address outside every
    /// allocated object (Go's "invalid pointer found on stack" / "found bad pointer in Go heap").
    #[error("fatal error: invalid pointer {value:#x} found in {place}: {why}")]
    BadPointer {
        /// The value.
        value: u64,
        /// Where it was found (a stack slot, an object field, a global).
        place: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Objects reachable at mark termination that the concurrent mark did not mark.
    #[error(
        "fatal error: checkmark found {failures} reachable unmarked object(s) in cycle {cycle}:\n{report}"
    )]
    CheckmarkFailed {
        /// The cycle.
        cycle: u32,
        /// Objects missed.
        failures: u64,
        /// One line per missed object (the first few).
        report: String,
    },
    /// The heap is full.
    #[error("fatal error: {0}")]
    Heap(#[from] HeapError),
    /// A behaviour broke the mutator contract (for example, storing a stack address into the heap).
    #[error("fatal error: goroutine {goid}: {what}")]
    Mutator {
        /// The goroutine.
        goid: u64,
        /// What it tried.
        what: String,
    },
    /// The run did not complete its cycles within its operation limit.
    #[error(
        "the run completed {completed} of {wanted} GC cycles within {ops} mutator operations; allocate more or lower --gogc"
    )]
    Stalled {
        /// Cycles completed.
        completed: u32,
        /// Cycles wanted.
        wanted: u32,
        /// Operations executed.
        ops: u64,
    },
    /// The threaded run did not complete its cycles within its wall-clock limit.
    #[error(
        "the run completed {completed} of {wanted} GC cycles within its {secs} s time limit; allocate more, lower --gogc or raise --time-limit"
    )]
    TimeLimit {
        /// Cycles completed.
        completed: u32,
        /// Cycles wanted.
        wanted: u32,
        /// The limit, in seconds.
        secs: f64,
    },
}

impl RuntimeError {
    /// Whether a checker found a collector bug (exit code 3), as opposed to a run that could not
    /// be completed as configured.
    pub fn is_checker_violation(&self) -> bool {
        match self {
            RuntimeError::Stack(e) => !matches!(
                e,
                StackError::StackOverflow { .. } | StackError::OutOfStackSpace { .. }
            ),
            RuntimeError::BadPointer { .. } | RuntimeError::CheckmarkFailed { .. } => true,
            RuntimeError::Heap(_)
            | RuntimeError::Mutator { .. }
            | RuntimeError::Stalled { .. }
            | RuntimeError::TimeLimit { .. } => false,
        }
    }
}

/// Where a bad pointer was found, for messages.
pub(crate) fn stack_place(goid: u64, slot: Addr) -> String {
    format!("goroutine {goid} stack slot {slot}")
}
