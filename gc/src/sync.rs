//! The atomics under the goroutine status word and the work-buffer pool, switchable for `loom`.
//!
//! Invariant: the modules that build a concurrency protocol from atomics and want it model-checked
//! (`sched`'s status word, the lock on a stack; `workbuf`'s counters beside its `LfStack`s) take
//! their atomic types from here, never from `std` directly. Under the `loom` feature these names
//! are `loom`'s model-checked types, so `loom::model` explores every interleaving and every value
//! the memory model lets each load see (`tests/loom.rs`, run by `scripts/loom.sh`, which also sets
//! `--cfg crossbeam_loom` so `crossbeam-epoch` swaps its atomics too). Without the feature they
//! are `std`'s own types, re-exported, so the normal build is unchanged in behaviour and speed.
//! `Ordering` is `std`'s in both cases (loom re-exports it), so code that names
//! `std::sync::atomic::Ordering` works with either.
//!
//! Loom's atomics are not `const`-constructible and work only inside `loom::model`; with the
//! feature on, a type built from them can be created and used only in a model.
//!
//! `TrackedAccess` exists only under the feature: it stands for memory that a protocol, not a
//! Rust borrow, makes exclusive (a goroutine's stack, guarded by its status word), so that loom
//! reports two accesses the protocol fails to order.

#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A stand-in, for loom, for memory guarded by a protocol: each [`touch`](Self::touch) is a write
/// that loom checks against every other, and loom panics with "Causality violation" when two of
/// them are not ordered by happens-before.
#[cfg(feature = "loom")]
#[derive(Debug, Default)]
pub(crate) struct TrackedAccess(loom::cell::UnsafeCell<()>);

#[cfg(feature = "loom")]
impl TrackedAccess {
    /// Records a write access by the current thread.
    pub(crate) fn touch(&self) {
        self.0.with_mut(|_| ());
    }
}
