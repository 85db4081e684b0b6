//! Allocation (Go's `mallocgc`) and what the runtime does around every allocation and every
//! free that sweep finds: `allocfreetrace`'s lines, the sanitizer's `racemalloc` and `racefree`,
//! GOGC's trigger and the GC assist.
//!
//! Invariant: every object allocated is announced once, by the allocating P, and every object
//! freed by sweep once, by the sweeping P, to that P's own sanitizer context. An object
//! allocated during mark is black (Go 1.7), and its allocator pays for it with assist work
//! before it goes on.

use stacks::Addr;

use crate::error::{RuntimeError, short_traceback};
use crate::heap::TypeId;
use crate::runtime::Runtime;
use crate::sanitizer::ProcCtx;
use crate::sched::{GState, P};

impl Runtime {
    /// Allocates an object of type `ty` from `p`'s mcache, black while marking, and hands its
    /// address to `store` (the destination local) before anything else can run; the mcache's
    /// refill may sweep a span on `p`, whose frees go to `p`'s sanitizer context.
    pub(crate) fn mallocgc(
        &self,
        p: &mut P,
        ty: TypeId,
        store: impl FnOnce(Addr),
    ) -> Result<Addr, RuntimeError> {
        let black = self.gc.allocate_black();
        let P {
            id,
            mcache,
            racectx,
            ..
        } = p;
        let a = self.heap.alloc(mcache, ty, black, |a, size| {
            self.note_free(*id, racectx, a, size)
        })?;
        store(a);
        Ok(a)
    }

    /// What follows an allocation by the goroutine `st` on `p`: the trace line and the
    /// sanitizer, GOGC's trigger, and, while marking, the assist that pays for it.
    pub(crate) fn after_malloc(
        &self,
        p: &mut P,
        st: &mut GState,
        a: Addr,
        ty: TypeId,
    ) -> Result<(), RuntimeError> {
        self.note_malloc(p, st, a, ty);
        self.gc.note_alloc(self);
        if self.gc.allocate_black() {
            self.gc_assist_alloc(st, p, self.heap.type_of(ty).size)?;
        }
        Ok(())
    }

    /// An allocation: `allocfreetrace`'s line, and the sanitizer told (`racemalloc`).
    fn note_malloc(&self, p: &mut P, st: &GState, a: Addr, ty: TypeId) {
        let size = self.heap.type_of(ty).size;
        if self.config.debug.allocfreetrace {
            crate::debug::debug_line(format_args!(
                "tracealloc({a}, {size:#x}, {}) goroutine {} on P{}: {}",
                self.heap.type_of(ty).name,
                st.gs.goid(),
                p.id,
                short_traceback(&self.prog, &st.gs, ALLOCFREETRACE_FRAMES)
            ));
        }
        if let (Some(san), Some(ctx)) = (&self.sanitizer, p.racectx.as_mut()) {
            san.malloc(ctx, a.0, size as u64);
        }
    }

    /// An object freed by a sweep on P `p_id`, whose sanitizer context is `racectx`:
    /// `allocfreetrace`'s line, and the context told (`racefree`) when free notification is on.
    pub(crate) fn note_free(
        &self,
        p_id: usize,
        racectx: &mut Option<ProcCtx>,
        addr: Addr,
        size: usize,
    ) {
        if self.config.debug.allocfreetrace {
            crate::debug::debug_line(format_args!(
                "tracefree({addr}, {size:#x}) swept on P{p_id}"
            ));
        }
        if let (Some(san), Some(ctx), Some(opts)) =
            (&self.sanitizer, racectx.as_mut(), self.config.sanitizer)
            && opts.free_notify
        {
            san.free(ctx, addr.0, size as u64);
        }
    }
}

/// Frames of the allocating goroutine an `allocfreetrace` line names.
const ALLOCFREETRACE_FRAMES: usize = 4;
