//! Grey-object work buffers: the simulated counterpart of Go's `mgcwork.go` and `lfstack.go`.
//!
//! Invariant: every grey object (marked but not yet scanned) is in exactly one work buffer, and
//! marking is finished only when every buffer is empty. Each mark worker owns a [`GcWork`] that
//! holds one local [`Workbuf`]; `put` and `try_get` touch only that buffer until it is full or
//! empty, so the common path needs no synchronisation. A full buffer is published to the global
//! lock-free stack of full buffers (Go's `work.full`) and replaced by one from the global stack of
//! empty buffers (Go's `work.empty`), or by a freshly allocated one; an exhausted buffer goes back
//! to `work.empty` when the worker takes a full one, so buffers are recycled rather than freed.
//! Both stacks are Treiber stacks ([`LfStack`]). Go never frees a workbuf, which is what makes its
//! `lfstack` safe: a pop that loaded a node as the head may still read that node's `next` after a
//! concurrent pop has unlinked it, and were the node freed (or freed and reused at the same
//! address, the ABA problem) that read would be a use-after-free or the CAS would succeed wrongly.
//! Rust must free its nodes, so they are reclaimed with `crossbeam-epoch`: an unlinked node is
//! destroyed only after every thread that was pinned when it was unlinked has unpinned, so no
//! reader can still hold it and its address cannot be reused under a pending CAS.
//!
//! Ownership: a [`GcWork`] is owned by exactly one worker (`&mut self` everywhere); the
//! [`WorkbufPool`] is shared by all workers (`Sync`, used through `&self`). A worker must
//! [`GcWork::dispose`] its handle before mark termination, or the grey objects in its local
//! buffer are invisible to everyone else and the bytes it marked (Go's `bytesMarked`, counted
//! per handle and added to the pool's count at disposal) are missing from the live heap. Used from one thread, everything here is deterministic:
//! the local buffer and both stacks are LIFO and nothing depends on timing.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::ptr;

use crossbeam_epoch::{self as epoch, Atomic, Owned};
use stacks::Addr;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Capacity of one [`Workbuf`], in objects. Go sizes a workbuf at 2048 bytes with a 24-byte
/// header (`node`, `nobj`), leaving `(2048 - 24) / 8 = 253` pointer slots; we keep that number.
pub const WORKBUF_ENTRIES: usize = 253;

/// A fixed-capacity buffer of grey object addresses.
#[derive(Debug)]
pub struct Workbuf {
    /// Never longer than [`WORKBUF_ENTRIES`]; allocated at that capacity and never regrown.
    objs: Vec<Addr>,
}

impl Workbuf {
    fn new_boxed() -> Box<Workbuf> {
        Box::new(Workbuf {
            objs: Vec::with_capacity(WORKBUF_ENTRIES),
        })
    }

    /// Number of objects in the buffer.
    pub fn len(&self) -> usize {
        self.objs.len()
    }

    /// Whether the buffer holds no objects.
    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }

    /// Whether the buffer holds [`WORKBUF_ENTRIES`] objects.
    pub fn is_full(&self) -> bool {
        self.objs.len() == WORKBUF_ENTRIES
    }

    fn push(&mut self, obj: Addr) {
        debug_assert!(!self.is_full(), "push onto a full workbuf");
        self.objs.push(obj);
    }

    fn pop(&mut self) -> Option<Addr> {
        self.objs.pop()
    }
}

struct Node<T> {
    /// Moved out (with `ptr::read`) by the one `pop` whose CAS unlinks the node; never dropped by
    /// the node itself, so freeing the node afterwards does not drop it a second time.
    value: ManuallyDrop<T>,
    next: Atomic<Node<T>>,
}

/// A Treiber stack with epoch-based reclamation: Go's `lfstack`.
pub struct LfStack<T> {
    head: Atomic<Node<T>>,
    _owns: PhantomData<T>,
}

// SAFETY: the stack owns its `T`s and only moves them in (`push`) or out (`pop`, `Drop`); it
// never hands out `&T`. Sending the stack sends the `T`s, which `T: Send` allows.
unsafe impl<T: Send> Send for LfStack<T> {}
// SAFETY: through `&LfStack` threads only push owned `T`s and pop owned `T`s; a value is moved out
// only by the single pop whose CAS unlinked its node, and other threads read only the node's
// `next`, never the `T`. So sharing the stack only moves `T`s between threads: `T: Send` suffices.
unsafe impl<T: Send> Sync for LfStack<T> {}

impl<T: Send> LfStack<T> {
    /// An empty stack.
    pub fn new() -> Self {
        LfStack {
            head: Atomic::null(),
            _owns: PhantomData,
        }
    }

    /// Pushes `value` on top.
    pub fn push(&self, value: T) {
        let guard = epoch::pin();
        let mut node = Owned::new(Node {
            value: ManuallyDrop::new(value),
            next: Atomic::null(),
        });
        let mut head = self.head.load(Ordering::Relaxed, &guard);
        loop {
            node.next.store(head, Ordering::Relaxed);
            // Release publishes the node's contents to the pop that Acquire-loads it as head.
            match self.head.compare_exchange(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
                &guard,
            ) {
                Ok(_) => return,
                Err(e) => {
                    head = e.current;
                    node = e.new;
                }
            }
        }
    }

    /// Pops the top value, or `None` when the stack is empty.
    pub fn pop(&self) -> Option<T> {
        let guard = epoch::pin();
        loop {
            let head = self.head.load(Ordering::Acquire, &guard);
            // SAFETY: `head` was loaded while pinned; nodes are freed only by `defer_destroy`
            // after being unlinked, which waits for this guard, so it is valid or null.
            let node = unsafe { head.as_ref() }?;
            let next = node.next.load(Ordering::Relaxed, &guard);
            if self
                .head
                .compare_exchange(head, next, Ordering::Acquire, Ordering::Relaxed, &guard)
                .is_ok()
            {
                // SAFETY: our CAS unlinked `node`, so we are the only pop that will ever read its
                // value, and the node's own drop never drops it: the value is moved out once.
                let value = unsafe { ptr::read(&node.value) };
                // SAFETY: `head` is unlinked, so no new reference to it can be made; threads that
                // loaded it earlier are pinned, and the epoch defers the free until they unpin.
                unsafe { guard.defer_destroy(head) };
                return Some(ManuallyDrop::into_inner(value));
            }
        }
    }

    /// Whether the stack was empty at the moment of the check.
    pub fn is_empty(&self) -> bool {
        let guard = epoch::pin();
        self.head.load(Ordering::Acquire, &guard).is_null()
    }
}

impl<T: Send> Default for LfStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for LfStack<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can access the stack, so no guard is needed.
        let guard = unsafe { epoch::unprotected() };
        let mut cur = self.head.load(Ordering::Relaxed, guard);
        while !cur.is_null() {
            // SAFETY: `cur` is non-null and still linked, so we exclusively own it: popped nodes
            // are unlinked before being deferred, and we are the only accessor now.
            let mut node = unsafe { cur.into_owned() };
            cur = node.next.load(Ordering::Relaxed, guard);
            // SAFETY: a linked node's value was never moved out, and the node is freed right
            // after without touching it, so it is dropped exactly once.
            unsafe { ManuallyDrop::drop(&mut node.value) };
        }
    }
}

impl<T> fmt::Debug for LfStack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LfStack").finish_non_exhaustive()
    }
}

/// The global lists of full and empty buffers (Go's `work.full` / `work.empty`) and counters.
#[derive(Debug, Default)]
pub struct WorkbufPool {
    full: LfStack<Box<Workbuf>>,
    empty: LfStack<Box<Workbuf>>,
    /// Buffers on `full`; incremented before the push, decremented after the pop, so never
    /// negative (but only approximate while workers run).
    nfull: AtomicUsize,
    /// Workbufs ever allocated.
    nalloc: AtomicUsize,
    /// Bytes of the objects the disposed handles marked this cycle (Go's `work.bytesMarked`).
    bytes_marked: AtomicU64,
}

impl WorkbufPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any full (non-empty) buffer is published.
    pub fn has_full(&self) -> bool {
        !self.full.is_empty()
    }

    /// How many buffers are published on the full list.
    pub fn full_buffers(&self) -> usize {
        self.nfull.load(Ordering::Relaxed)
    }

    /// How many workbufs were ever allocated (the empty list recycles them).
    pub fn buffers_allocated(&self) -> usize {
        self.nalloc.load(Ordering::Relaxed)
    }

    /// The bytes marked by the handles disposed since the last [`WorkbufPool::take_bytes_marked`].
    pub fn bytes_marked(&self) -> u64 {
        self.bytes_marked.load(Ordering::Relaxed)
    }

    /// The bytes marked by every handle disposed since the last call, and zero again (mark
    /// termination's read, after every handle is disposed).
    pub fn take_bytes_marked(&self) -> u64 {
        self.bytes_marked.swap(0, Ordering::Relaxed)
    }

    fn get_empty(&self) -> Box<Workbuf> {
        self.empty.pop().unwrap_or_else(|| {
            self.nalloc.fetch_add(1, Ordering::Relaxed);
            Workbuf::new_boxed()
        })
    }

    fn put_empty(&self, b: Box<Workbuf>) {
        debug_assert!(b.is_empty(), "non-empty workbuf on the empty list");
        self.empty.push(b);
    }

    fn put_full(&self, b: Box<Workbuf>) {
        debug_assert!(!b.is_empty(), "empty workbuf on the full list");
        self.nfull.fetch_add(1, Ordering::Relaxed);
        self.full.push(b);
    }

    fn try_get_full(&self) -> Option<Box<Workbuf>> {
        let b = self.full.pop()?;
        self.nfull.fetch_sub(1, Ordering::Relaxed);
        Some(b)
    }
}

/// A mark worker's handle (Go's `gcWork`): a local buffer in front of the pool.
#[derive(Debug, Default)]
pub struct GcWork {
    /// The local buffer; `None` until the first `put`/`try_get` and after `dispose`.
    wbuf: Option<Box<Workbuf>>,
    puts: u64,
    gets: u64,
    /// Bytes of the objects this handle marked since it was last disposed (Go's
    /// `gcWork.bytesMarked`): counted here, not in a shared counter, so parallel markers do
    /// not contend for one cache line per marked object.
    bytes_marked: u64,
}

impl GcWork {
    /// A handle with no local buffer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a grey object; when the local buffer is full it is published to `pool.full` and an
    /// empty one taken (from `pool.empty`, or freshly allocated).
    pub fn put(&mut self, pool: &WorkbufPool, obj: Addr) {
        let wbuf = self.wbuf.get_or_insert_with(|| pool.get_empty());
        if wbuf.is_full() {
            let full = mem::replace(wbuf, pool.get_empty());
            pool.put_full(full);
        }
        wbuf.push(obj);
        self.puts += 1;
    }

    /// Takes a grey object: from the local buffer (LIFO), else takes a full buffer from the pool
    /// (recycling the exhausted local one to `pool.empty`). `None` when both are empty.
    pub fn try_get(&mut self, pool: &WorkbufPool) -> Option<Addr> {
        let obj = match self.wbuf.as_mut().and_then(|b| b.pop()) {
            Some(obj) => obj,
            None => {
                let mut full = pool.try_get_full()?;
                let obj = full
                    .pop()
                    .expect("only non-empty buffers are published to pool.full");
                if let Some(old) = self.wbuf.replace(full) {
                    pool.put_empty(old);
                }
                obj
            }
        };
        self.gets += 1;
        Some(obj)
    }

    /// The objects in the local buffer, bottom first (for tests).
    #[cfg(test)]
    pub(crate) fn local_objects(&self) -> Vec<Addr> {
        self.wbuf.as_ref().map_or_else(Vec::new, |b| b.objs.clone())
    }

    /// Counts `bytes` of an object this handle marked.
    #[inline]
    pub fn note_marked(&mut self, bytes: u64) {
        self.bytes_marked += bytes;
    }

    /// Bytes marked through this handle since it was last disposed.
    pub fn bytes_marked(&self) -> u64 {
        self.bytes_marked
    }

    /// Publishes the local buffer, if non-empty, to the pool so other workers (or mark
    /// termination) can see it (Go's `gcWork.dispose`); an empty one goes back to `pool.empty`.
    /// The bytes it marked go to the pool's count.
    pub fn dispose(&mut self, pool: &WorkbufPool) {
        if self.bytes_marked != 0 {
            pool.bytes_marked
                .fetch_add(std::mem::take(&mut self.bytes_marked), Ordering::Relaxed);
        }
        if let Some(b) = self.wbuf.take() {
            if b.is_empty() {
                pool.put_empty(b);
            } else {
                pool.put_full(b);
            }
        }
    }

    /// Whether the local buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.wbuf.as_ref().is_none_or(|b| b.is_empty())
    }

    /// Objects put since creation.
    pub fn puts(&self) -> u64 {
        self.puts
    }

    /// Objects got since creation.
    pub fn gets(&self) -> u64 {
        self.gets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn put_then_get_returns_every_object_exactly_once() {
        let pool = WorkbufPool::new();
        let mut w = GcWork::new();
        let n = 3 * WORKBUF_ENTRIES as u64 + 17;
        for i in 0..n {
            w.put(&pool, Addr(i));
        }
        assert!(pool.has_full());
        assert_eq!(pool.full_buffers(), 3);
        let mut got = Vec::new();
        while let Some(a) = w.try_get(&pool) {
            got.push(a.0);
        }
        got.sort_unstable();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        assert!(w.is_empty() && !pool.has_full() && pool.full_buffers() == 0);
        assert_eq!((w.puts(), w.gets()), (n, n));
    }

    #[test]
    fn local_buffer_is_lifo() {
        let pool = WorkbufPool::new();
        let mut w = GcWork::new();
        for i in 0..5 {
            w.put(&pool, Addr(i));
        }
        let got: Vec<u64> = std::iter::from_fn(|| w.try_get(&pool))
            .map(|a| a.0)
            .collect();
        assert_eq!(got, vec![4, 3, 2, 1, 0]);
    }

    #[test]
    fn fill_drain_rounds_recycle_buffers() {
        let pool = WorkbufPool::new();
        let mut w = GcWork::new();
        let n = 4 * WORKBUF_ENTRIES as u64;
        for _ in 0..10 {
            for i in 0..n {
                w.put(&pool, Addr(i));
            }
            while w.try_get(&pool).is_some() {}
        }
        // One round needs 4 buffers plus the one being refilled; later rounds reuse them.
        assert!(
            pool.buffers_allocated() <= 6,
            "{}",
            pool.buffers_allocated()
        );
    }

    #[test]
    fn dispose_publishes_partial_buffer_to_another_worker() {
        let pool = WorkbufPool::new();
        let mut a = GcWork::new();
        let mut b = GcWork::new();
        a.put(&pool, Addr(1));
        a.put(&pool, Addr(2));
        assert!(!pool.has_full());
        assert_eq!(b.try_get(&pool), None);
        a.dispose(&pool);
        assert!(a.is_empty() && pool.has_full() && pool.full_buffers() == 1);
        assert_eq!(b.try_get(&pool), Some(Addr(2)));
        assert_eq!(b.try_get(&pool), Some(Addr(1)));
        assert_eq!(b.try_get(&pool), None);
    }

    #[test]
    fn same_calls_give_same_results_single_threaded() {
        let run = || {
            let pool = WorkbufPool::new();
            let mut ws = [GcWork::new(), GcWork::new()];
            let mut out = Vec::new();
            for i in 0..2000u64 {
                let w = &mut ws[usize::from(i % 7 == 0)];
                if i % 3 == 0 {
                    out.push(w.try_get(&pool));
                } else {
                    w.put(&pool, Addr(i));
                }
                if i % 500 == 0 {
                    w.dispose(&pool);
                }
            }
            out
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn lfstack_concurrent_push_pop_neither_loses_nor_duplicates() {
        const THREADS: u64 = 4;
        const OPS: u64 = 20_000;
        let stack = LfStack::new();
        let mut popped: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let stack = &stack;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for i in 0..OPS {
                            stack.push(t * OPS + i);
                            if i % 3 != 0 {
                                mine.extend(stack.pop());
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("stress thread panicked"))
                .collect()
        });
        popped.extend(std::iter::from_fn(|| stack.pop()));
        assert!(stack.is_empty());
        popped.sort_unstable();
        assert_eq!(popped, (0..THREADS * OPS).collect::<Vec<_>>());
    }

    #[test]
    fn lfstack_drop_releases_remaining_items() {
        let item = Arc::new(());
        let stack = LfStack::new();
        for _ in 0..10 {
            stack.push(Arc::clone(&item));
        }
        drop(stack.pop());
        assert_eq!(Arc::strong_count(&item), 10);
        drop(stack);
        assert_eq!(Arc::strong_count(&item), 1);
    }
}
