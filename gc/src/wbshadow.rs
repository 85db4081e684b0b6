//! wbshadow (seed 000, Go's `GODEBUG=wbshadow`): a shadow copy of every heap and global pointer
//! word, kept by the write barrier, that exposes a store which bypassed it.
//!
//! Invariant: with `wbshadow` on, every heap and global pointer word equals its shadow, or its
//! shadow is [`NO_SHADOW`], or the word holds no heap pointer — unless a store bypassed the write
//! barrier. Allocation zeroes an object and its shadow together (`clearshadow`); every barriered
//! store checks the word's old value against the shadow and then writes both (Go's
//! `writebarrierptr`); an atomic store marks the shadow `NO_SHADOW`, which matches anything
//! until the next barriered store re-arms it. Stacks have no shadow: their writes are never
//! barriered.
//!
//! Checks. `wbshadow=1`: a barriered store that finds `word != shadow`, the shadow not
//! `NO_SHADOW`, and the word holding a heap address (Go's `istrackedptr`) reports a missed write
//! barrier — the address, the object, its type, the field, and the storing goroutine's traceback
//! — and the run stops (exit 3). A bypassed store is found at the next barriered store to the
//! same word, so the report says clearly what kind of word it was. `wbshadow=2` also checks every
//! word the checkmark walk scans (the globals and every reachable object's pointer fields) at
//! each mark termination: it finds bypassed stores to words that are never stored to again, at
//! the cost of a report with no writer to name.
//!
//! Concurrency. The simulated programs store racily (several goroutines store to one global),
//! which Go's wbshadow would report as a crash. Here a word's check, shadow update and store run
//! under one of [`SHADOW_LOCKS`] mutexes striped by address, so racing barriered stores keep word
//! and shadow in step; with wbshadow off nothing of this runs.

use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};

use stacks::GStack;

use crate::error::{RuntimeError, TRACEBACK_FRAMES, WbShadowCheck, traceback};
use crate::heap::{Lookup, ObjRef, lock};
use crate::runtime::Runtime;
use crate::wbarrier::Slot;

/// Stored as a shadow to say "no shadow recorded": the word was written atomically. It matches
/// any word (Go's `noShadow`; 1 is never a pointer).
pub const NO_SHADOW: u64 = 1;

/// Mutexes a word's check-and-store is striped over.
pub const SHADOW_LOCKS: usize = 256;

impl Runtime {
    /// The shadow of a heap or global slot (Go's `shadowptr`); `None` for a stack slot or with
    /// wbshadow off.
    #[inline]
    pub(crate) fn shadow_of<'a>(&'a self, slot: Slot<'a>) -> Option<&'a AtomicU64> {
        match slot {
            Slot::Field(o, w) => self.heap.shadow_word(o, w),
            Slot::Global(i) => self.globals.shadow_word(i),
            Slot::Stack(_) => None,
        }
    }

    /// The stripe that serialises stores to the word at `addr`.
    #[inline]
    pub(crate) fn shadow_lock(&self, addr: u64) -> MutexGuard<'_, ()> {
        lock(&self.shadow_locks[(addr as usize / stacks::WORD) % SHADOW_LOCKS])
    }

    /// Go's `checkwbshadow`: fails if `holds`, the word's value, differs from its shadow, the
    /// shadow is not [`NO_SHADOW`], and `holds` is a heap address. `new` and `writer` are the store
    /// being made, when the check is a store's; `store` is the store clock's reading.
    pub(crate) fn check_shadow(
        &self,
        slot: Slot<'_>,
        shadow: &AtomicU64,
        holds: u64,
        new: Option<u64>,
        store: u64,
        writer: Option<&GStack>,
    ) -> Result<(), RuntimeError> {
        let sh = shadow.load(Ordering::Relaxed);
        if sh == holds || sh == NO_SHADOW || !self.is_tracked_ptr(holds) {
            return Ok(());
        }
        Err(RuntimeError::MissedWriteBarrier {
            addr: slot.addr(self),
            holds,
            shadow: sh,
            new,
            place: self.describe_slot(slot),
            found: if writer.is_some() {
                WbShadowCheck::Store
            } else {
                WbShadowCheck::Checkmark
            },
            at_store: store,
            traceback: writer.map_or(String::new(), |gs| {
                traceback(&self.prog, gs, TRACEBACK_FRAMES)
            }),
        })
    }

    /// The shadow check of every pointer field of `o` and its current values, for the checkmark
    /// walk under `wbshadow=2`.
    pub(crate) fn check_object_shadow(&self, o: ObjRef<'_>) -> Result<(), RuntimeError> {
        let t = self.heap.type_of(self.heap.object_type(o));
        let store = self.fault_log.stores();
        for &w in t.ptr_fields.iter() {
            let w = w as usize;
            if let Some(shadow) = self.heap.shadow_word(o, w) {
                let holds = self.heap.read_word(o, w);
                self.check_shadow(Slot::Field(o, w), shadow, holds, None, store, None)?;
            }
        }
        Ok(())
    }

    /// The shadow check of global `i`, for the checkmark walk under `wbshadow=2`.
    pub(crate) fn check_global_shadow(&self, i: usize) -> Result<(), RuntimeError> {
        match self.globals.shadow_word(i) {
            Some(shadow) => self.check_shadow(
                Slot::Global(i),
                shadow,
                self.globals.read(i),
                None,
                self.fault_log.stores(),
                None,
            ),
            None => Ok(()),
        }
    }

    /// Whether `v` needs a write barrier when stored into the heap: a heap address (Go's
    /// `istrackedptr`, which is `inheap`).
    fn is_tracked_ptr(&self, v: u64) -> bool {
        !matches!(self.heap.find_object(v), Lookup::NotHeap)
    }

    /// Names a slot for a report: the object, its type and the field, or the global.
    pub(crate) fn describe_slot(&self, slot: Slot<'_>) -> String {
        match slot {
            Slot::Field(o, w) => {
                let t = self.heap.type_of(self.heap.object_type(o));
                let field = t.ptr_fields.iter().position(|&f| f as usize == w);
                format!(
                    "word {w} (pointer field {}) of {} object {} ({} bytes) at {:#x}",
                    field.map_or("?".into(), |f| f.to_string()),
                    t.name,
                    o.base,
                    t.size,
                    slot.addr(self)
                )
            }
            Slot::Global(i) => format!("global {i} at {:#x}", slot.addr(self)),
            Slot::Stack(a) => format!("stack slot {a}"),
        }
    }

    /// Bytes of shadow memory, heap and globals (wbshadow's memory overhead).
    pub fn shadow_bytes(&self) -> u64 {
        self.heap.shadow_bytes() + self.globals.shadow_bytes()
    }
}
