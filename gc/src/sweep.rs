//! Concurrent sweep (Go's `mgcsweep.go`): after mark termination, spans are swept one per step
//! until none is left, then the cycle is over.
//!
//! Invariant: a span is swept exactly once per cycle, by whoever wins its `sweepgen` CAS — this
//! background sweeper or an allocation that needs the span first (see `heap`) — and only the
//! sweep of the last span turns the phase off, so a new cycle never starts on a half-swept heap.

use crate::mgc::Phase;
use crate::runtime::Runtime;

impl Runtime {
    /// One unit of concurrent sweep; false when the heap is swept (the phase is then off).
    pub fn sweep_step(&self) -> bool {
        if self.gc.phase() != Phase::Sweep {
            return false;
        }
        if self.heap.sweep_one(|_, _| {}).is_some() {
            return true;
        }
        self.gc.set_phase(Phase::Off);
        false
    }
}
