//! A simulated Go 1.5–1.8 garbage collector: heap, scheduler, mutator interpreter, concurrent mark
//! with stack barriers, the mark-termination re-scan, sweep, checkmark, and three write-barrier
//! designs, driven by a deterministic engine (exact counters) or a threaded one (real pauses).
//!
//! This crate is the runtime half of the stkbar testbed; the `stacks` crate supplies goroutine
//! stacks, stack barriers, the unwinder and copystack. The collector here is Go's 1.5–1.7 design:
//! the world stops briefly at sweep termination, goroutine stacks and the heap are marked
//! concurrently while mutators run behind a write barrier, and the world stops again for mark
//! termination, which — because the `dijkstra` insertion barrier does not cover stack writes —
//! re-scans every stack that ran since its scan, only up to its lowest stack barrier not hit. The
//! `hybrid` (Go 1.8) and `yuasa` designs sit beside it for comparison.
//!
//! Modules, in the order a reader meets the concepts:
//! * [`heap`] — spans, size classes, mcaches, mark bits, sweep, the globals;
//! * [`workbuf`] — grey-object work buffers on lock-free lists (Go's `gcWork`, `lfstack`);
//! * [`sched`] — goroutines, Ps, and the status word that is the lock on a stack;
//! * [`mutator`] — behaviours and the operations they issue;
//! * [`runtime`] — the shared runtime's state and configuration;
//! * [`proc`] — the scheduler: goroutines created, scheduled, switched, preempted and ended;
//! * [`interp`] — the mutator interpreter, one operation at a time;
//! * [`malloc`] — allocation and free hooks (`allocfreetrace`, the sanitizer);
//! * [`wbarrier`] — the write-barrier designs and the one write-barrier entry point;
//! * [`mgc`] — the cycle: its phases, sweep termination, mark termination;
//! * [`pacer`] — the GC controller: trigger, heap goal, assists;
//! * [`mark`] — root jobs, the concurrent stack scan, draining, the re-scan, checkmark;
//! * [`sweep`] — the concurrent sweep;
//! * [`sanitizer`] — per-P sanitizer contexts (seed 004): per-object metadata told of every allocation and free;
//! * [`mmu`] — minimum mutator utilization over per-P GC time;
//! * [`stats`] — what every cycle reports;
//! * [`debug`] — the `GODEBUG`-style knobs and fault injection;
//! * [`nowb`] — `nowritebarrier` regions: where no write barrier may run;
//! * [`trace`] — per-P trace buffers outside the heap, recycled through full and empty queues (seed 001);
//! * [`profile`] — the sampling profiler that never unwinds an inconsistent stack (seed 003);
//! * [`wbshadow`] — the shadow heap that catches stores which bypassed the write barrier;
//! * [`stackshadow`] — the records that catch a frame a re-scan skipped but had to see;
//! * [`engine`] — the deterministic engine;
//! * [`threaded`] — the threaded engine: Ps on OS threads, real stop-the-world, pauses and MMU.

pub mod debug;
pub mod engine;
pub mod error;
pub mod heap;
pub mod interp;
pub mod malloc;
pub mod mark;
pub mod mgc;
pub mod mmu;
pub mod mutator;
pub mod nowb;
pub mod pacer;
pub mod proc;
pub mod profile;
pub mod runtime;
pub mod sanitizer;
pub mod sched;
pub mod stackshadow;
pub mod stats;
pub mod sweep;
mod sync;
pub mod threaded;
pub mod trace;
pub mod wbarrier;
pub mod wbshadow;
pub mod workbuf;

pub use debug::{DebugKnobs, KnobError};
pub use debug::{Inject, InjectError};
pub use engine::{Deterministic, RunResult};
pub use error::RuntimeError;
pub use heap::{ObjType, TypeId};
pub use mgc::Phase;
pub use mutator::{Behaviour, Ctx, Op, Rng};
pub use profile::{Profile, ProfileConfig, SampleCounts};
pub use runtime::{GcConfig, Runtime, SanitizerOptions, StackScan, Step, WorkloadImage};
pub use stats::{CycleStats, RescanBound, RescanRecord, Totals};
pub use threaded::{Limits, Threaded, WorkerPlan};
pub use trace::{Trace, TraceEvent, TraceSink, TraceStats};
pub use wbarrier::{BarrierDesign, StackPolicy};
