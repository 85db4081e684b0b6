//! Write-barrier designs: what a barriered store shades, and how stacks are treated.
//!
//! Invariant (the tri-colour invariant each design keeps, in its own way): at mark termination no
//! black object, and no stack the design treats as black, points to a white object that nobody
//! will shade. A design is a [`BarrierDesign`]: which of the old and new pointer a store shades, and
//! its [`StackPolicy`] — the part of the design that stacks, which carry no write barrier, force.
//! Every heap, global and up-pointer store goes through one entry point,
//! [`crate::Runtime::write_barrier`], which asks the design and shades.
//!
//! * `dijkstra` (Go 1.5–1.7): insertion barrier, shade the new pointer. Stacks are scanned
//!   concurrently but stack writes are unbarriered, so every stack that ran since its scan must be
//!   re-scanned at mark termination — in full, or, with stack barriers, up to the lowest barrier
//!   not hit.
//! * `hybrid` (Go 1.8, proposal 17503): shade the old pointer, and the new one (Go 1.8 shades both
//!   unconditionally rather than track whether the current stack is grey). Stacks are scanned
//!   concurrently, once, and never re-scanned: a black stack can only gain pointers to objects
//!   that were shaded when they were deleted from the heap, or were allocated black.
//! * `yuasa`: deletion barrier, shade the old pointer (snapshot at the beginning). Stacks are
//!   scanned with the world stopped at the start of the cycle, and never again.
//!
//! Adding a design is one impl and one line in [`DESIGNS`]. What a barriered store costs each
//! design is measured by [`cost`].

pub mod cost;

use std::fmt;

/// How a design treats goroutine stacks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StackPolicy {
    /// Concurrent scan (installing stack barriers), re-scan at mark termination.
    ConcurrentScanRescan,
    /// Concurrent scan, no re-scan.
    ConcurrentScanOnce,
    /// Scan every stack with the world stopped at the start of the cycle.
    StwScanAtStart,
}

/// A write-barrier design.
pub trait BarrierDesign: Sync + fmt::Debug {
    /// Its `--barrier` name.
    fn name(&self) -> &'static str;
    /// Whether a barriered store shades the old value of the slot.
    fn shades_old(&self) -> bool;
    /// Whether a barriered store shades the new value.
    fn shades_new(&self) -> bool;
    /// How stacks are scanned.
    fn stack_policy(&self) -> StackPolicy;
}

/// Go 1.5–1.7's insertion barrier.
#[derive(Debug)]
pub struct Dijkstra;
/// Go 1.8's hybrid barrier.
#[derive(Debug)]
pub struct Hybrid;
/// Yuasa's deletion barrier.
#[derive(Debug)]
pub struct Yuasa;

impl BarrierDesign for Dijkstra {
    fn name(&self) -> &'static str {
        "dijkstra"
    }
    fn shades_old(&self) -> bool {
        false
    }
    fn shades_new(&self) -> bool {
        true
    }
    fn stack_policy(&self) -> StackPolicy {
        StackPolicy::ConcurrentScanRescan
    }
}

impl BarrierDesign for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }
    fn shades_old(&self) -> bool {
        true
    }
    fn shades_new(&self) -> bool {
        true
    }
    fn stack_policy(&self) -> StackPolicy {
        StackPolicy::ConcurrentScanOnce
    }
}

impl BarrierDesign for Yuasa {
    fn name(&self) -> &'static str {
        "yuasa"
    }
    fn shades_old(&self) -> bool {
        true
    }
    fn shades_new(&self) -> bool {
        false
    }
    fn stack_policy(&self) -> StackPolicy {
        StackPolicy::StwScanAtStart
    }
}

/// Every design, by name.
pub static DESIGNS: &[&dyn BarrierDesign] = &[&Dijkstra, &Hybrid, &Yuasa];

/// The design called `name`.
pub fn design(name: &str) -> Option<&'static dyn BarrierDesign> {
    DESIGNS.iter().copied().find(|d| d.name() == name)
}

/// The design names, comma-separated, for messages.
pub fn design_names() -> String {
    DESIGNS
        .iter()
        .map(|d| d.name())
        .collect::<Vec<_>>()
        .join(", ")
}
