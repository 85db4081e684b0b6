//! Fatal runtime errors.
//!
//! Invariant: every way a run can go wrong ends in one [`RuntimeError`] whose message names what
//! was found where — the goroutine, the frame, the address, the object — as Go's `throw` output
//! does, and [`RuntimeError::is_checker_violation`] tells a checker's finding (a collector bug
//! caught: exit code 3) from a configuration the run could not satisfy.

use std::fmt::Write as _;

use stacks::{Addr, GStack, Program, StackError};

use crate::heap::HeapError;
use crate::runtime::Runtime;

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    /// An inconsistent stack or a stack-barrier protocol violation.
    #[error("fatal error: {0}")]
    Stack(#[from] StackError),
    /// A pointer slot holding a value that cannot be a pointer, or a heap address outside every
    /// allocated object (Go's "invalid pointer found on stack" / "found bad pointer in Go heap").
    #[error("fatal error: invalid pointer {value:#x} found in {place}: {why}{traceback}")]
    BadPointer {
        /// The value.
        value: u64,
        /// Where it was found (a stack slot, an object field, a global).
        place: String,
        /// What is wrong with it.
        why: &'static str,
        /// The traceback of the goroutine whose stack holds the slot (a leading newline), or
        /// empty for a heap or global slot.
        traceback: String,
    },
    /// A pointer word that differs from its wbshadow copy: a store bypassed the write barrier
    /// (seed 000's "missed write barrier").
    #[error(
        "runtime: write barrier dst={addr:#x} old={holds:#x} shadow={shadow:#x}{new_part}\n\
         fatal error: missed write barrier: {place} holds {holds:#x} but its shadow holds {shadow:#x}; \
         found {found} after {at_store} heap stores{traceback}",
        new_part = .new.map_or(String::new(), |n| format!(" new={n:#x}"))
    )]
    MissedWriteBarrier {
        /// The word's address.
        addr: u64,
        /// What the word holds.
        holds: u64,
        /// What its shadow holds.
        shadow: u64,
        /// The value being stored, when found at a store.
        new: Option<u64>,
        /// The word: the object, its type and the field, or the global.
        place: String,
        /// Which check found it.
        found: WbShadowCheck,
        /// Heap and global pointer stores the run had made when it was found.
        at_store: u64,
        /// The writing goroutine's traceback (a leading newline), or empty during checkmark.
        traceback: String,
    },
    /// A frame a mark-termination re-scan skipped changed since the concurrent scan
    /// (`stackshadow=1`, see `stackshadow`).
    #[error("fatal error: {report}")]
    StackShadowViolation {
        /// The cycle.
        cycle: u32,
        /// The report: goroutine, frame, slot, both values, traceback, stkbar array.
        report: String,
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
        /// The base addresses of the first few missed objects, in the order found.
        missed: Vec<u64>,
        /// Heap and global pointer stores the run had made (when counted; see
        /// [`crate::debug::FaultLog`]).
        at_store: u64,
    },
    /// The sanitizer's books do not balance after a `procresize`: a context or a metadata slot
    /// was lost or counted twice.
    #[error("fatal error: sanitizer accounting after procresize: {0}")]
    SanitizerAccounting(String),
    /// A write barrier ran inside a `nowritebarrier` region (debug builds; see `nowb`).
    #[error("fatal error: write barrier in nowritebarrier function {region}")]
    WriteBarrierInNoWriteBarrier {
        /// The innermost region.
        region: &'static str,
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
            RuntimeError::BadPointer { .. }
            | RuntimeError::MissedWriteBarrier { .. }
            | RuntimeError::SanitizerAccounting(_)
            | RuntimeError::WriteBarrierInNoWriteBarrier { .. }
            | RuntimeError::CheckmarkFailed { .. }
            | RuntimeError::StackShadowViolation { .. } => true,
            RuntimeError::Heap(_)
            | RuntimeError::Mutator { .. }
            | RuntimeError::Stalled { .. }
            | RuntimeError::TimeLimit { .. } => false,
        }
    }
}

/// Which wbshadow check found a missed write barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WbShadowCheck {
    /// The next barriered store to the word (`wbshadow=1`).
    Store,
    /// The checkmark walk, which checks every word it scans (`wbshadow=2`).
    Checkmark,
}

impl std::fmt::Display for WbShadowCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WbShadowCheck::Store => "at a barriered store",
            WbShadowCheck::Checkmark => "by the checkmark walk",
        })
    }
}

/// Where a bad pointer was found, for messages.
pub(crate) fn stack_place(goid: u64, slot: Addr) -> String {
    format!("goroutine {goid} stack slot {slot}")
}

/// Frames a traceback in a report prints before eliding the rest.
pub const TRACEBACK_FRAMES: usize = 16;

/// A goroutine's traceback in Go's shape — `goroutine N [stack lo-hi]:` then one line per frame,
/// innermost first, through any stack barrier to the real return PCs — at most `max` frames, the
/// rest counted. Each line starts with a newline, so the result can follow a message.
pub fn traceback(prog: &Program, gs: &GStack, max: usize) -> String {
    let s = gs.stack();
    let mut out = format!("\ngoroutine {} [stack {}-{}]:", gs.goid(), s.lo(), s.hi());
    let mut shown = 0;
    let mut more = 0usize;
    for frame in gs.frames(prog) {
        match frame {
            Ok(f) if shown < max => {
                let bar = if f.stkbar.is_some() { " [stkbar]" } else { "" };
                let _ = write!(
                    out,
                    "\n\t{}() pc={} sp={} fp={}{bar}",
                    prog.func(f.func).name,
                    f.pc,
                    f.sp,
                    f.fp
                );
                shown += 1;
            }
            Ok(_) => more += 1,
            Err(e) => {
                let _ = write!(out, "\n\t… traceback stopped: {e}");
                break;
            }
        }
    }
    if more > 0 {
        let _ = write!(out, "\n\t…additional frames elided ({more} more)");
    }
    out
}

/// A one-line short traceback: the innermost `max` function names, innermost first.
pub fn short_traceback(prog: &Program, gs: &GStack, max: usize) -> String {
    let mut names = Vec::new();
    let mut more = 0usize;
    for frame in gs.frames(prog) {
        match frame {
            Ok(f) if names.len() < max => names.push(prog.func(f.func).name.to_string()),
            Ok(_) => more += 1,
            Err(_) => {
                names.push("?".into());
                break;
            }
        }
    }
    let mut s = names.join(" < ");
    if more > 0 {
        let _ = write!(s, " < …{more} more");
    }
    s
}

impl Runtime {
    /// A stack error from moving `gs`; a pointer slot holding junk (Go's "invalid pointer found
    /// on stack" in `adjustpointers`) becomes a bad-pointer error with the goroutine's traceback.
    pub(crate) fn copystack_error(&self, e: StackError, gs: &GStack) -> RuntimeError {
        match e {
            StackError::InvalidPointer {
                slot,
                value,
                func,
                why,
                ..
            } => RuntimeError::BadPointer {
                value,
                place: format!(
                    "{} (a frame of {func}) while moving the stack",
                    stack_place(gs.goid(), slot)
                ),
                why,
                traceback: traceback(&self.prog, gs, TRACEBACK_FRAMES),
            },
            e => e.into(),
        }
    }
}
