//! `nowritebarrier` regions (Go's `//go:nowritebarrier` and `//go:nowritebarrierrec`).
//!
//! Invariant: in a debug build, no write barrier runs on a thread while it is inside a region
//! entered with [`nowritebarrier`]; one that does is a fatal runtime error
//! ([`crate::RuntimeError::WriteBarrierInNoWriteBarrier`]) naming the region. Release builds
//! compile the regions and the check away, as Go's check is a compile-time one.
//!
//! Why. Some runtime code runs where a write barrier would be wrong: with the world stopped, in
//! the scheduler, in the trace buffer code that both call (seed 001: "the tracing code is called
//! from contexts such as sysmon and the scheduler where write barriers are not allowed"), and in
//! the profiling signal handler. Such code keeps its pointers outside the GC heap — trace buffers
//! are plain Rust allocations the simulated collector never sees, moved between a P and the
//! queues by value, Go's untraced `traceBufPtr` — and so never needs a barrier. The region makes
//! that a checked promise: a later change that stores a heap pointer from there is caught.
//!
//! Regions nest; each guard restores the region it replaced, so the error names the innermost.

#[cfg(debug_assertions)]
use std::cell::Cell;

#[cfg(debug_assertions)]
thread_local! {
    static REGION: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Inside a `nowritebarrier` region until dropped.
#[derive(Debug)]
#[must_use = "the region ends when the guard is dropped"]
pub struct NoWriteBarrier {
    #[cfg(debug_assertions)]
    outer: Option<&'static str>,
}

/// Enters the region `name` (the function Go would annotate) on this thread.
#[inline]
pub fn nowritebarrier(name: &'static str) -> NoWriteBarrier {
    #[cfg(debug_assertions)]
    {
        NoWriteBarrier {
            outer: REGION.with(|r| r.replace(Some(name))),
        }
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        NoWriteBarrier {}
    }
}

impl Drop for NoWriteBarrier {
    #[inline]
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        REGION.with(|r| r.set(self.outer));
    }
}

/// The innermost `nowritebarrier` region this thread is in; always `None` in release builds.
#[inline]
pub fn current_region() -> Option<&'static str> {
    #[cfg(debug_assertions)]
    {
        REGION.with(Cell::get)
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn regions_nest_and_restore() {
        assert_eq!(current_region(), None);
        {
            let _a = nowritebarrier("stopTheWorld");
            assert_eq!(current_region(), Some("stopTheWorld"));
            {
                let _b = nowritebarrier("traceFlush");
                assert_eq!(current_region(), Some("traceFlush"));
            }
            assert_eq!(current_region(), Some("stopTheWorld"));
        }
        assert_eq!(current_region(), None);
        // Another thread is not in this thread's region.
        let _c = nowritebarrier("schedule");
        let other = std::thread::spawn(current_region).join().unwrap();
        assert_eq!(other, None);
    }
}
