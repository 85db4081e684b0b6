//! Simulated goroutine stacks with Go 1.6–1.7-style stack barriers.
//!
//! This crate is the stack half of the stkbar testbed. A goroutine stack here is real memory — 8-byte
//! words at real simulated addresses — holding frames laid out as on amd64: each frame `[sp, sp +
//! frame_size)` has its return PC in its top word, pointer slots named by its function's pointer map,
//! and the goroutine's outermost frame returns to `goexit`. On top of that memory the crate rebuilds
//! the machinery of Go's `mstkbar.go` and `stack.go`: the stkbar array carved from the top of every
//! stack allocation (seed 002), barrier installation during a concurrent scan, the trampoline's hit
//! handler, `gcUnwindBarriers`, the re-scan bound, removal, an unwinder that sees through barriers,
//! and `copystack` that migrates barriers when a stack moves. Barrier placement and stack geometry
//! follow Go 1.7 on linux/amd64 exactly: no barrier on the running frame, the outermost frame
//! barriered like any other, growth when a prologue's check against `stackguard0` fails (one
//! doubling per `morestack`), and `shrinkstack`'s quarter rule counting `_StackLimit` as used.
//!
//! Modules, in the order a reader meets the concepts:
//! * [`addr`] — `Addr` and `Pc`, the two kinds of word;
//! * [`code`] — the text segment: functions, frame sizes, pointer maps, `findfunc`;
//! * [`stack`] — stack memory, the pool, the carved stkbar array, a goroutine's stack fields;
//! * [`unwind`] — `gentraceback`;
//! * [`call`] — the calling convention: call, return, local stores, panic unwinds, runtime bulk writes;
//! * [`barrier`] — stack barriers and the invariant that makes partial re-scans sound;
//! * [`scan`] — `scanstack`: pointer slots for the collector, barriers installed on the way;
//! * [`copystack`] — growing and shrinking stacks with barriers in them;
//! * [`signal`] — where a profiling signal may land inside a barrier operation;
//! * [`g0`] — an M's system stack, where runtime code runs, and its unwinder.
//!
//! Every operation that reads stack contents returns a [`StackError`] naming the goroutine's stack,
//! the frame and the address when the contents do not make sense; nothing panics on bad data.

pub mod addr;
pub mod barrier;
pub mod call;
pub mod code;
pub mod copystack;
pub mod error;
pub mod g0;
pub mod scan;
pub mod signal;
pub mod stack;
pub mod unwind;
pub mod watermark;

#[cfg(test)]
mod testutil;

pub use addr::{Addr, MIN_VALID_POINTER, POISON_GC, POISON_STACK, Pc, WORD, bad_pointer_value};
pub use barrier::{FIRST_STACK_BARRIER_OFFSET, StackBarrierMode, StkbarCounters};
pub use call::{Call, Ret};
pub use code::{Func, FuncId, FuncKind, Program, RandomProgram, RuntimeFn};
pub use error::{StackError, StackId};
pub use g0::{G0_STACK_BASE, G0_STACK_SIZE, G0Stack, G0TracebackError, g0traceback};
pub use scan::{ScanKind, ScanStats, scan_frames, scanstack, scanstack_with_signals};
pub use signal::{MidOp, NoSignals, Signals};
pub use stack::{GStack, Gobuf, Stack, StackPool, Stkbar, max_stack_barriers};
pub use unwind::{Frame, Gentraceback, gentraceback};
pub use watermark::{Advance, advance_watermark};
