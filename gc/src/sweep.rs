//! Concurrent sweep (Go's `mgcsweep.go`): after mark termination, spans are swept one per step
//! until none is left, then the cycle is over. The sweep runs on a P (Go's `bgsweep` goroutine),
//! whose sanitizer context is told of every object it frees (seed 004's `racefree`).
//!
//! Invariant: a span is swept exactly once per cycle, by whoever wins its `sweepgen` CAS — this
//! background sweeper or an allocation that needs the span first (see `heap`) — and only the
//! sweep of the last span turns the phase off, so a new cycle never starts on a half-swept heap.

use crate::mgc::Phase;
use crate::runtime::Runtime;
use crate::sched::P;
use crate::trace::{PHASE_SWEEP, TraceEv, Track};

impl Runtime {
    /// One unit of concurrent sweep, on `p`; false when the heap is swept (the phase is then
    /// off).
    pub fn sweep_step(&self, p: &mut P) -> bool {
        if self.gc.phase() != Phase::Sweep {
            return false;
        }
        let P { id, racectx, .. } = p;
        if self
            .heap
            .sweep_one(|a, size| self.note_free(*id, racectx, a, size))
            .is_some()
        {
            return true;
        }
        if self.gc.cas_phase(Phase::Sweep, Phase::Off) {
            self.trace_phase_end(PHASE_SWEEP, None);
        }
        false
    }

    /// Up to `max` units of sweep on `p`, traced as one slice on its track; returns how many
    /// spans it swept.
    pub fn sweep_batch(&self, p: &mut P, max: usize) -> usize {
        let t0 = self.trace_now();
        let mut n = 0;
        while n < max && self.sweep_step(p) {
            n += 1;
        }
        if n > 0 {
            let track = Track::P(p.id as u16);
            self.trace_slice_p(p, track, TraceEv::Sweep, t0, [n as u64, 0]);
        }
        n
    }
}
