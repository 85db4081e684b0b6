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
use std::sync::atomic::Ordering;

use stacks::Addr;

use crate::debug::{DroppedBarrier, seeded_fraction};
use crate::error::RuntimeError;
use crate::heap::ObjRef;
use crate::runtime::Runtime;
use crate::sched::{GState, P};

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

/// Where a barriered store writes: Go's `writebarrierptr` destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot<'h> {
    /// Pointer word `1` of heap object `0`.
    Field(ObjRef<'h>, usize),
    /// A global.
    Global(usize),
    /// A slot of an outer frame of the storing goroutine's own stack.
    Stack(Addr),
}

impl Slot<'_> {
    /// The slot's address.
    pub(crate) fn addr(self, rt: &Runtime) -> u64 {
        match self {
            Slot::Field(o, w) => o.base.add(w * stacks::WORD).0,
            Slot::Global(i) => rt.globals.addr(i).0,
            Slot::Stack(a) => a.0,
        }
    }
}

impl Runtime {
    /// Every pointer store into a heap object, a global or an outer frame (Go's
    /// `writebarrierptr`): the injected fault, if this store is one of the dropped fraction; the
    /// wbshadow check and update of heap and global words; the design's barrier; the store.
    #[inline]
    pub(crate) fn writebarrierptr(
        &self,
        p: &mut P,
        st: &mut GState,
        slot: Slot<'_>,
        new: u64,
    ) -> Result<(), RuntimeError> {
        if self.checked_stores && !matches!(slot, Slot::Stack(_)) {
            let store = self.fault_log.next_store();
            let wb_drop = self.config.inject.wb_drop;
            if seeded_fraction(self.config.seed, DROP_STREAM, store, wb_drop) {
                self.fault_log.note_dropped(DroppedBarrier {
                    store,
                    addr: slot.addr(self),
                    new,
                    goid: st.gs.goid(),
                });
                return self.write_slot(st, slot, new);
            }
            if let Some(shadow) = self.shadow_of(slot) {
                let _stripe = self.shadow_lock(slot.addr(self));
                let old = self.read_slot(st, slot)?;
                self.check_shadow(slot, shadow, old, Some(new), store, Some(&st.gs))?;
                shadow.store(new, Ordering::Relaxed);
                self.write_barrier(p, old, new)?;
                return self.write_slot(st, slot, new);
            }
        }
        // While the barrier is off a store is only the store, as in Go's `writebarrierptr`
        // (`if !writeBarrier.enabled { *dst = src; return }`): no old value is read and the
        // barrier is not called. The flag changes only with the world stopped.
        if !self.wb_on.load(Ordering::Relaxed) {
            no_write_barrier_region()?;
            return self.write_slot(st, slot, new);
        }
        let old = self.read_slot(st, slot)?;
        self.write_barrier(p, old, new)?;
        self.write_slot(st, slot, new)
    }

    #[inline]
    fn read_slot(&self, st: &GState, slot: Slot<'_>) -> Result<u64, RuntimeError> {
        Ok(match slot {
            Slot::Field(o, w) => self.heap.read_word(o, w),
            Slot::Global(i) => self.globals.read(i),
            Slot::Stack(a) => st.gs.read(a)?,
        })
    }

    #[inline]
    fn write_slot(&self, st: &mut GState, slot: Slot<'_>, v: u64) -> Result<(), RuntimeError> {
        match slot {
            Slot::Field(o, w) => self.heap.write_word(o, w, v),
            Slot::Global(i) => self.globals.write(i, v),
            Slot::Stack(a) => st.gs.write(a, v)?,
        }
        Ok(())
    }

    /// An atomic swap of pointer field `w` of `o` (Go's `atomic.SwapPointer`): the word is
    /// exchanged in one step, the design's barrier runs on the old and new values, the word's
    /// wbshadow copy becomes `noShadow` (a word written atomically cannot have its shadow kept in
    /// step: two racing swaps may update word and shadow in opposite orders), and the sanitizer
    /// records a synchronization object at the word. Returns the old value.
    pub(crate) fn atomic_swap(
        &self,
        p: &mut P,
        o: ObjRef<'_>,
        w: usize,
        new: u64,
    ) -> Result<u64, RuntimeError> {
        if self.checked_stores {
            self.fault_log.next_store();
        }
        let old = self.heap.swap_word(o, w, new);
        if let Some(shadow) = self.heap.shadow_word(o, w) {
            shadow.store(crate::wbshadow::NO_SHADOW, Ordering::Relaxed);
        }
        if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.as_mut()) {
            san.sync(ctx, Slot::Field(o, w).addr(self));
        }
        self.write_barrier(p, old, new)?;
        Ok(old)
    }

    /// The write barrier: every store into a heap object, a global or an outer frame comes here
    /// first with the slot's old value and the value being stored.
    #[inline]
    pub fn write_barrier(&self, p: &mut P, old: u64, new: u64) -> Result<(), RuntimeError> {
        no_write_barrier_region()?;
        if !self.wb_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        p.counters.wb_calls += 1;
        if self.shade_old {
            self.shade(old, &mut p.gcw, "a slot's old value in the write barrier")?;
        }
        if self.shade_new {
            self.shade(new, &mut p.gcw, "a stored value in the write barrier")?;
        }
        Ok(())
    }
}

/// An error if this thread is in a `nowritebarrier` region (`crate::nowb`), where no barriered
/// store may happen, the barrier on or off.
#[inline]
fn no_write_barrier_region() -> Result<(), RuntimeError> {
    match crate::nowb::current_region() {
        Some(region) => Err(RuntimeError::WriteBarrierInNoWriteBarrier { region }),
        None => Ok(()),
    }
}

/// The `seeded_fraction` stream `--inject wb-drop` draws from.
const DROP_STREAM: u64 = 0xd0;
