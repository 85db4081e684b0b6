//! Stack memory: the simulated stack segment, the stack pool, and the stack fields of a goroutine.
//!
//! Invariant: a stack is an allocation of `2^k` bytes (at least [`FIXED_STACK`]) at a real simulated
//! address `lo`, backed by real words. As seed 002 does (`stackalloc` returning `(stack, []stkbar)`),
//! the stkbar array is *stolen from the top* of the allocation: with `m = max_stack_barriers(n,
//! first_offset)` the usable stack is `[lo, hi)` with `hi = lo + n - m·16`, and the `m` stkbar
//! entries (`saved_lr_ptr`, `saved_lr_val`: two words each) live in `[hi, lo + n)`. Carving the array
//! out of the stack allocation means installing barriers never allocates — Go could not call
//! `mallocgc` there, since it may itself grow the stack — and its size is logarithmic in `n`, so it
//! costs little stack.
//!
//! Frames live in `[sp, hi)`: the goroutine's outermost frame ends exactly at `hi`, its return-PC slot
//! (`hi - 8`) holding `goexit + 1`. Every word of `[lo, lo + n)` is readable and writable in O(1) by
//! index arithmetic on the word array; the live part `[sp, hi)` is what scans and copies see.
//!
//! The pool (`stackalloc`/`stackfree`) keeps one free list per order (size `FIXED_STACK << order`),
//! reuses freed stacks of the same order, and carves new ones from a bump pointer in the stack
//! segment, each aligned to its size. How many stkbar entries to reserve is a property of the pool
//! (its [`StackBarrierMode`]): every stack it hands out carries the same, size-determined array.
//! Mode `Off` reserves what Go's default offset does, since Go's `gcstackbarrieroff` leaves
//! `firstStackBarrierOffset`, and so `gcMaxStackBarriers`, alone.
//!
//! Stack guard (Go's linux/amd64 constants). A goroutine's `stackguard0` is [`STACK_GUARD`] bytes
//! above `lo`, the lowest address of the allocation (not of the usable stack's top: the stkbar
//! array is carved from the other end). A call proceeds only if the callee's prologue check
//! against it passes ([`Stack::prologue_check`]), so a frame never ends within [`STACK_LIMIT`]
//! bytes of `lo`: Go keeps that room for chains of `NOSPLIT` functions, and `shrinkstack` counts
//! it as in use.
//!
//! Ownership (the concurrency contract). A [`GStack`] is plain data with no interior mutability
//! except its stack-barrier lock and its stack words. The runtime built on this crate must give
//! exactly one party `&mut` access at a time: the running goroutine, or the marker that holds the
//! goroutine's `Scan` status bit ("the status is the lock on the stack"). The only things another
//! thread may touch are the stack-barrier lock, through the shared handle
//! [`GStack::stack_barrier_lock`] (a profiler tries it before tracing a stack), and, while a lazy
//! scan is in progress, the frames above its watermark, which the marker reads (and the two
//! return-PC slots and the stkbar entry it moves the watermark between, which it writes) through
//! the handle the lock keeps, only while holding the lock (see `watermark`). The words are relaxed
//! atomics so those reads are defined behaviour. One `unsafe` block: a scan by the owner reads a
//! frame's locals as plain words ([`Stack::owned_locals`]; its `SAFETY` comment says why no
//! other thread writes them meanwhile).
//!
//! Freeing or reusing a goroutine's stack resets its barriers (seed 002's `gfput` change): a stack
//! returns to the pool with its stkbar array logically empty, and [`GStack::reset`] empties it for a
//! goroutine that keeps its stack.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;

use crate::addr::{Addr, Pc, WORD};
use crate::barrier::{StackBarrierMode, StkbarCounters};
use crate::code::Program;
use crate::error::{StackError, StackId};
use crate::watermark::LazyState;

/// Base of the simulated stack segment.
pub const STACK_BASE: Addr = Addr(0xc8_0000_0000);
/// End of the simulated stack segment (64 GiB of address space).
pub const STACK_END: Addr = Addr(0xd8_0000_0000);
/// Smallest stack allocation (Go's `_FixedStack` on linux/amd64).
pub const FIXED_STACK: usize = 2048;
/// Go's `_StackGuard` on linux/amd64: a goroutine's `stackguard0` is this many bytes above the
/// stack's lowest address, and a function's prologue calls `morestack` when its frame would take
/// the SP too close to it (see [`GStack::call`]).
pub const STACK_GUARD: usize = 720;
/// Go's `_StackSmall`: after the prologue's check the SP may sit this many bytes below
/// `stackguard0`, so a function whose frame (return PC excluded) is at most this big compares the
/// SP itself against the guard, one instruction less.
pub const STACK_SMALL: usize = 128;
/// Go's `_StackLimit = _StackGuard - _StackSmall`: the stack that a chain of `NOSPLIT` functions may
/// still use below a successful check. `shrinkstack` counts it as in use.
pub const STACK_LIMIT: usize = STACK_GUARD - STACK_SMALL;
/// Go's `_StackBig`: frames (return PC excluded) bigger than this use a third, wrap-safe form of
/// the prologue's check, which tests the same inequality.
pub const STACK_BIG: usize = 4096;
/// Default largest stack allocation (Go's `maxstacksize` on 64-bit systems).
pub const DEFAULT_MAX_STACK_SIZE: usize = 1 << 30;
/// Bytes in one stkbar entry: two words.
pub const STKBAR_SIZE: usize = 2 * WORD;

/// One stack barrier: where it was installed and the return PC it replaced (Go's `stkbar`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stkbar {
    /// The return-PC slot overwritten by the barrier PC.
    pub saved_lr_ptr: Addr,
    /// The return PC that was there.
    pub saved_lr_val: Pc,
}

/// The number of stack barriers a stack of `stack_size` bytes can hold when the first barrier goes
/// `first_offset` bytes above the SP and each next one at twice the offset (Go's
/// `gcMaxStackBarriers`). Offset 0 means a barrier at every frame; the array then takes half the
/// stack (frames of at least two words, so at most one return PC per 16 bytes; Go's own comment
/// notes that a stack of nothing but return PCs would need two thirds, which does not happen).
pub fn max_stack_barriers(stack_size: usize, first_offset: usize) -> usize {
    if first_offset == 0 {
        return stack_size / 2 / STKBAR_SIZE;
    }
    let mut n = 0;
    let mut offset = first_offset;
    while offset < stack_size {
        n += 1;
        offset = offset.saturating_mul(2);
    }
    n + 1
}

/// One stack allocation: the usable stack `[lo, hi)` and the stkbar array `[hi, lo + size)`.
///
/// The words are atomics (relaxed loads and stores, plain moves on x86-64) behind an `Arc`, so
/// that a marker scanning the frames above a lazy scan's watermark can read them while the
/// goroutine runs below it (see `watermark`); everything else reaches them through the one
/// owner of the [`GStack`].
#[derive(Debug)]
pub struct Stack {
    lo: Addr,
    hi: Addr,
    words: Arc<[AtomicU64]>,
}

impl Stack {
    /// Lowest address.
    #[inline]
    pub fn lo(&self) -> Addr {
        self.lo
    }

    /// Top of the usable stack; the stkbar array starts here.
    #[inline]
    pub fn hi(&self) -> Addr {
        self.hi
    }

    /// Bytes allocated, stkbar array included (a power of two).
    #[inline]
    pub fn alloc_size(&self) -> usize {
        self.words.len() * WORD
    }

    /// Usable bytes, `hi - lo`.
    #[inline]
    pub fn usable(&self) -> usize {
        self.hi.offset_from(self.lo)
    }

    /// Go's `stackguard0` (without a preemption request): [`STACK_GUARD`] bytes above `lo`.
    #[inline]
    pub fn stackguard0(&self) -> Addr {
        self.lo.add(STACK_GUARD)
    }

    /// Whether a call made with the SP at `sp` to a function whose frame is `frame_size` bytes
    /// (return PC included) passes the callee's prologue check, i.e. does not call `morestack`.
    ///
    /// Go on amd64: the CALL pushes the return PC (`SP' = sp - 8`), then the prologue compares
    /// against `stackguard0`, with `fs = frame_size - 8` the frame without the return PC. For
    /// `fs <= _StackSmall` it calls `morestack` when `SP' <= stackguard0`; for bigger frames when
    /// `SP' - (fs - _StackSmall) <= stackguard0` (unsigned; the form for `fs > _StackBig` is the
    /// same inequality, arranged so it cannot wrap). A frame that passes ends above
    /// `lo + _StackLimit`, so it always fits.
    #[inline]
    pub fn prologue_check(&self, sp: Addr, frame_size: usize) -> bool {
        let fs = frame_size.saturating_sub(WORD);
        let below_guard = (WORD + fs.saturating_sub(STACK_SMALL)) as u64;
        sp.0.checked_sub(below_guard)
            .is_some_and(|lowest| lowest > self.stackguard0().0)
    }

    /// Entries in the stkbar array.
    #[inline]
    pub fn stkbar_cap(&self) -> usize {
        (self.alloc_size() - self.usable()) / STKBAR_SIZE
    }

    /// Whether `addr` lies in the usable stack.
    #[inline]
    pub fn contains(&self, addr: Addr) -> bool {
        self.lo <= addr && addr < self.hi
    }

    /// The word at `addr`, if `addr` is an aligned address of the usable stack.
    #[inline]
    pub fn read(&self, addr: Addr) -> Option<u64> {
        self.word_at(addr).map(|w| w.load(Ordering::Relaxed))
    }

    /// Writes the word at `addr`; `false` (and no write) if `addr` is not an aligned address of the
    /// usable stack.
    #[inline]
    pub fn write(&mut self, addr: Addr, value: u64) -> bool {
        self.word_at(addr)
            .map(|w| w.store(value, Ordering::Relaxed))
            .is_some()
    }

    /// [`Stack::write`] with release ordering: a lazy scan's marker giving a return-PC slot its
    /// PC back after guarding the next one (see `watermark`); a return reads the slot with
    /// [`Stack::read_acquire`], so it sees the guard too.
    #[inline]
    pub(crate) fn write_release(&mut self, addr: Addr, value: u64) -> bool {
        self.word_at(addr)
            .map(|w| w.store(value, Ordering::Release))
            .is_some()
    }

    /// [`Stack::read`] with acquire ordering (a return reading its return-PC slot).
    #[inline]
    pub(crate) fn read_acquire(&self, addr: Addr) -> Option<u64> {
        self.word_at(addr).map(|w| w.load(Ordering::Acquire))
    }

    /// The word at `addr`, if `addr` is an aligned address of the usable stack.
    #[inline]
    fn word_at(&self, addr: Addr) -> Option<&AtomicU64> {
        if addr >= self.hi {
            return None;
        }
        self.words.get(addr.word_index_from(self.lo)?)
    }

    /// The words of `[from, to)`, if that is an aligned range of the usable stack (read them with
    /// relaxed loads; only the stack's owner stores).
    #[inline]
    pub fn words(&self, from: Addr, to: Addr) -> Option<&[AtomicU64]> {
        let (a, b) = self.word_range(from, to)?;
        Some(&self.words[a..b])
    }

    /// Words `range` of the allocation, by index from `lo` (for a caller that has resolved a
    /// frame's place before; an index past the allocation is a bug and panics).
    #[inline]
    pub fn word_slice(&self, range: std::ops::Range<usize>) -> &[AtomicU64] {
        &self.words[range]
    }

    /// The locals of the `frame_size`-byte frame at `sp`, `[sp, sp + frame_size - WORD)` (every
    /// word below its return-PC slot); `None` unless the frame lies within `[lo, hi)`. The
    /// interpreter's hot path: one subtraction and one comparison, as `sp` is word-aligned by
    /// construction (every frame size is a multiple of the word).
    #[inline]
    pub fn frame_locals(&self, sp: Addr, frame_size: usize) -> Option<&[AtomicU64]> {
        debug_assert!(sp.is_word_aligned() && frame_size.is_multiple_of(WORD) && frame_size > 0);
        let first = sp.0.checked_sub(self.lo.0)? as usize / WORD;
        let end = sp.0.checked_add(frame_size as u64)?;
        (end <= self.hi.0).then(|| &self.words[first..first + frame_size / WORD - 1])
    }

    /// The locals of a frame, `[sp, lr_slot)`, as plain words, for a scan by the stack's owner
    /// (the hot loop of every scan: relaxed atomic loads there cost a stack scan two thirds of
    /// its speed, since they keep the compiler from optimising the loop).
    #[inline]
    pub(crate) fn owned_locals(&self, sp: Addr, lr_slot: Addr) -> Option<&[u64]> {
        let words = self.words(sp, lr_slot)?;
        // SAFETY: `AtomicU64` has the size and alignment of `u64`, so the pointer and length
        // describe `words.len()` valid, initialised `u64`s. The slice is only ever handed to the
        // owner of the `GStack` (its scans take `&GStack`), and while it lives no thread writes
        // these words: a frame's locals are written by its goroutine alone (the owner, on this
        // thread, which cannot write while it holds this shared borrow of the stack); a lazy
        // scan's marker, the one other thread that touches the stack, writes only return-PC
        // slots and stkbar entries, which `[sp, lr_slot)` excludes, and only reads locals.
        Some(unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u64>(), words.len()) })
    }

    /// Copies the words of `[from, to)` out, if that is an aligned range of the usable stack.
    pub fn copy_words(&self, from: Addr, to: Addr) -> Option<Vec<u64>> {
        let words = self.words(from, to)?;
        Some(words.iter().map(|w| w.load(Ordering::Relaxed)).collect())
    }

    /// A second handle on the same memory, for the marker of a lazy scan (`watermark`): it reads
    /// the frames above the watermark, and writes return-PC slots and stkbar entry 0, only while
    /// it holds the goroutine's stack-barrier lock.
    pub(crate) fn share(&self) -> Stack {
        Stack {
            lo: self.lo,
            hi: self.hi,
            words: Arc::clone(&self.words),
        }
    }

    fn word_range(&self, from: Addr, to: Addr) -> Option<(usize, usize)> {
        if from > to || to > self.hi {
            return None;
        }
        Some((from.word_index_from(self.lo)?, to.word_index_from(self.lo)?))
    }

    /// The word at `addr`, which the caller has checked is an aligned address of the usable stack
    /// (the unwinder's hot path; an address outside the allocation is a bug and panics).
    #[inline]
    pub(crate) fn word(&self, addr: Addr) -> u64 {
        debug_assert!(self.contains(addr) && addr.is_word_aligned());
        self.words[addr.offset_from(self.lo) / WORD].load(Ordering::Relaxed)
    }

    /// Stkbar entry `i`, read from the array at the top of the allocation.
    #[inline]
    pub(crate) fn stkbar(&self, i: usize) -> Stkbar {
        let w = self.stkbar_word(i);
        Stkbar {
            saved_lr_ptr: Addr(self.words[w].load(Ordering::Relaxed)),
            saved_lr_val: Pc(self.words[w + 1].load(Ordering::Relaxed)),
        }
    }

    /// Writes stkbar entry `i`; `i` must be below [`Stack::stkbar_cap`].
    #[inline]
    pub(crate) fn set_stkbar(&mut self, i: usize, s: Stkbar) {
        let w = self.stkbar_word(i);
        self.words[w].store(s.saved_lr_ptr.0, Ordering::Relaxed);
        self.words[w + 1].store(s.saved_lr_val.0, Ordering::Relaxed);
    }

    #[inline]
    fn stkbar_word(&self, i: usize) -> usize {
        assert!(
            i < self.stkbar_cap(),
            "stkbar index {i} past the array's capacity {}",
            self.stkbar_cap()
        );
        (self.usable() + i * STKBAR_SIZE) / WORD
    }
}

/// Occupancy of a [`StackPool`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PoolStats {
    /// Bytes of stacks handed out and not yet freed.
    pub in_use_bytes: usize,
    /// Of those, bytes carved for stkbar arrays.
    pub stkbar_reserved_bytes: usize,
    /// Bytes of freed stacks waiting on the free lists.
    pub free_bytes: usize,
    /// Stacks handed out and not yet freed.
    pub stacks_in_use: usize,
}

/// The stack allocator: per-order free lists over the simulated stack segment.
#[derive(Debug)]
pub struct StackPool {
    mode: StackBarrierMode,
    max_stack_size: usize,
    free: Vec<Vec<Stack>>,
    next_base: Addr,
    stats: PoolStats,
    invalidptr: bool,
}

impl StackPool {
    /// A pool whose stacks reserve stkbar arrays for `mode`, with Go's 1 GiB maximum stack size.
    pub fn new(mode: StackBarrierMode) -> Self {
        Self::with_max_stack_size(mode, DEFAULT_MAX_STACK_SIZE)
    }

    /// A pool with a different maximum stack size (rounded down to a power of two, at least
    /// [`FIXED_STACK`]).
    pub fn with_max_stack_size(mode: StackBarrierMode, max_stack_size: usize) -> Self {
        let max = if max_stack_size.is_power_of_two() {
            max_stack_size
        } else {
            max_stack_size
                .checked_next_power_of_two()
                .map_or(1 << 62, |p| p / 2)
        }
        .max(FIXED_STACK);
        let orders = (max / FIXED_STACK).trailing_zeros() as usize + 1;
        StackPool {
            mode,
            max_stack_size: max,
            free: (0..orders).map(|_| Vec::new()).collect(),
            next_base: STACK_BASE,
            stats: PoolStats::default(),
            invalidptr: true,
        }
    }

    /// Whether `copystack` treats a first-page value in a pointer slot as fatal (Go's
    /// `debug.invalidptr`, on by default); poison values are fatal either way.
    pub fn set_invalidptr(&mut self, on: bool) {
        self.invalidptr = on;
    }

    /// See [`StackPool::set_invalidptr`].
    pub fn invalidptr(&self) -> bool {
        self.invalidptr
    }

    /// The barrier mode the stkbar arrays are sized for.
    pub fn mode(&self) -> StackBarrierMode {
        self.mode
    }

    /// The largest stack this pool hands out.
    pub fn max_stack_size(&self) -> usize {
        self.max_stack_size
    }

    /// Current occupancy.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Stkbar entries reserved in a stack of `n` bytes.
    pub fn stkbar_cap(&self, n: usize) -> usize {
        self.mode.max_stack_barriers(n)
    }

    /// Usable bytes of a stack of `n` bytes.
    pub fn usable_size(&self, n: usize) -> usize {
        n - self.stkbar_cap(n) * STKBAR_SIZE
    }

    /// Allocates a stack of `n` bytes, `n` a power of two in `FIXED_STACK..=max_stack_size` (Go's
    /// `stackalloc`), with its stkbar array carved from the top.
    pub fn stackalloc(&mut self, n: usize) -> Result<Stack, StackError> {
        let order = self.order(n)?;
        let mut stack = match self.free[order].pop() {
            Some(s) => {
                self.stats.free_bytes -= n;
                s
            }
            None => {
                let lo = Addr(self.next_base.0.next_multiple_of(n as u64));
                let end = lo.0.checked_add(n as u64).filter(|&e| e <= STACK_END.0);
                let Some(end) = end else {
                    return Err(StackError::OutOfStackSpace { size: n });
                };
                self.next_base = Addr(end);
                Stack {
                    lo,
                    hi: lo.add(n),
                    words: (0..n / WORD).map(|_| AtomicU64::new(0)).collect(),
                }
            }
        };
        stack.hi = stack.lo.add(self.usable_size(n));
        self.stats.in_use_bytes += n;
        self.stats.stkbar_reserved_bytes += n - stack.usable();
        self.stats.stacks_in_use += 1;
        Ok(stack)
    }

    /// Returns a stack to its free list (Go's `stackfree`).
    pub fn stackfree(&mut self, stack: Stack) {
        let n = stack.alloc_size();
        let order = self
            .order(n)
            .expect("a stack from this pool has a valid size");
        self.stats.in_use_bytes -= n;
        self.stats.stkbar_reserved_bytes -= n - stack.usable();
        self.stats.stacks_in_use -= 1;
        self.stats.free_bytes += n;
        self.free[order].push(stack);
    }

    fn order(&self, n: usize) -> Result<usize, StackError> {
        if !n.is_power_of_two() || n < FIXED_STACK || n > self.max_stack_size {
            return Err(StackError::BadStackSize {
                size: n,
                min: FIXED_STACK,
                max: self.max_stack_size,
            });
        }
        Ok((n / FIXED_STACK).trailing_zeros() as usize)
    }
}

/// Saved execution context of a goroutine (the part of Go's `gobuf` stacks care about).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Gobuf {
    /// The PC: inside the running frame's function, or `goexit + 1` when the stack is empty.
    pub pc: Pc,
    /// The SP: the running frame's lowest address, or `hi` when the stack is empty.
    pub sp: Addr,
}

/// The per-goroutine stack-barrier lock (Go's `g.stackLock`, `gcLockStackBarriers`).
///
/// Installing and removing barriers and `gcUnwindBarriers` hold it; a profiler only *tries* it and
/// records a `System` sample when it fails, so it never walks a stack whose stkbar array disagrees
/// with the return-PC slots. The barrier hit handler does not take it (it is on the return path);
/// the unwinder instead repairs a traceback that starts inside `stackBarrier`.
#[derive(Debug, Default)]
pub struct StackBarrierLock {
    locked: AtomicBool,
    /// A lazy scan's shared state (see `watermark`); only touched while `locked` is held, so its
    /// mutex is never contended.
    pub(crate) lazy: Mutex<LazyState>,
}

impl StackBarrierLock {
    /// Blocks until the lock is free, then takes it.
    pub fn lock(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    /// Blocks until the lock is free, then takes it; the guard releases it.
    pub fn lock_guard(&self) -> StackBarrierGuard<'_> {
        self.lock();
        StackBarrierGuard { lock: self }
    }

    /// Takes the lock if it is free; the guard releases it.
    pub fn try_lock(&self) -> Option<StackBarrierGuard<'_>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| StackBarrierGuard { lock: self })
    }

    /// Releases a lock taken with [`StackBarrierLock::lock`].
    pub fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Whether someone holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

/// Holds a [`StackBarrierLock`] taken with `try_lock`; releases it on drop.
#[derive(Debug)]
pub struct StackBarrierGuard<'a> {
    lock: &'a StackBarrierLock,
}

impl Drop for StackBarrierGuard<'_> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// The stack fields of a goroutine (Go's `g.stack`, `g.sched`, `g.stkbar`, `g.stkbarPos`,
/// `g.stackLock`), with the operations of this crate as methods.
#[derive(Debug)]
pub struct GStack {
    goid: u64,
    pub(crate) stack: Stack,
    pub(crate) sched: Gobuf,
    /// Barriers recorded in the stkbar array, `stkbar[0..stkbar_len]`, from low to high addresses.
    pub(crate) stkbar_len: usize,
    /// Index of the lowest barrier not yet hit.
    pub(crate) stkbar_pos: usize,
    pub(crate) stack_lock: Arc<StackBarrierLock>,
    /// Barrier events on this stack since the counters were last taken.
    pub(crate) counters: StkbarCounters,
    /// Whether `stkbar[0]` is a lazy scan's watermark (see `watermark`).
    pub(crate) watermark: bool,
    /// Pointer values of frames scanned at the watermark, waiting for the collector to shade.
    pub(crate) watermark_values: SmallVec<[u64; 8]>,
}

impl GStack {
    /// A goroutine stack with no frames: `sp = hi`, `pc = goexit + 1`. Its first call pushes the
    /// outermost frame, whose return PC is `goexit + 1`.
    pub fn new(goid: u64, stack: Stack, prog: &Program) -> Self {
        let sched = Gobuf {
            pc: prog.goexit_return_pc(),
            sp: stack.hi(),
        };
        GStack {
            goid,
            stack,
            sched,
            stkbar_len: 0,
            stkbar_pos: 0,
            stack_lock: Arc::default(),
            counters: StkbarCounters::default(),
            watermark: false,
            watermark_values: SmallVec::new(),
        }
    }

    /// Reuses this stack for a new goroutine: no frames, no barriers (seed 002's `gfput`).
    pub fn reset(&mut self, goid: u64, prog: &Program) {
        self.goid = goid;
        self.sched = Gobuf {
            pc: prog.goexit_return_pc(),
            sp: self.stack.hi(),
        };
        self.stkbar_len = 0;
        self.stkbar_pos = 0;
        self.clear_watermark();
        self.watermark_values.clear();
        self.stack_lock
            .lazy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .violation = None;
    }

    /// Gives the stack memory back, for `stackfree`; the barriers go with the goroutine.
    pub fn into_stack(self) -> Stack {
        self.stack
    }

    /// The goroutine id.
    pub fn goid(&self) -> u64 {
        self.goid
    }

    /// The stack memory.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The saved PC and SP.
    #[inline]
    pub fn sched(&self) -> Gobuf {
        self.sched
    }

    /// The SP.
    #[inline]
    pub fn sp(&self) -> Addr {
        self.sched.sp
    }

    /// The PC.
    #[inline]
    pub fn pc(&self) -> Pc {
        self.sched.pc
    }

    /// Bytes of stack in use, `hi - sp`.
    #[inline]
    pub fn used(&self) -> usize {
        self.stack.hi().offset_from(self.sched.sp)
    }

    /// Whether the goroutine has no frames left.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.sched.sp == self.stack.hi()
    }

    /// What errors call this stack.
    pub fn id(&self) -> StackId {
        StackId {
            goid: self.goid,
            lo: self.stack.lo(),
            hi: self.stack.hi(),
        }
    }

    /// A shared handle to the stack-barrier lock, for profilers on other threads.
    pub fn stack_barrier_lock(&self) -> Arc<StackBarrierLock> {
        Arc::clone(&self.stack_lock)
    }

    /// Runs `f` holding the stack-barrier lock.
    pub(crate) fn with_stack_lock<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.stack_lock.lock();
        let r = f(self);
        self.stack_lock.unlock();
        r
    }

    /// The word at `addr` in the live stack `[sp, hi)`.
    #[inline]
    pub fn read(&self, addr: Addr) -> Result<u64, StackError> {
        if addr < self.sched.sp {
            return Err(self.bad_address(addr));
        }
        self.stack.read(addr).ok_or_else(|| self.bad_address(addr))
    }

    /// Writes the word at `addr` in the live stack `[sp, hi)`. This is a store through an
    /// up-pointer into an outer frame; the runtime must run its write barrier first.
    #[inline]
    pub fn write(&mut self, addr: Addr, value: u64) -> Result<(), StackError> {
        if addr < self.sched.sp || !self.stack.write(addr, value) {
            return Err(self.bad_address(addr));
        }
        Ok(())
    }

    pub(crate) fn bad_address(&self, addr: Addr) -> StackError {
        StackError::BadAddress {
            stack: self.id(),
            addr,
            sp: self.sched.sp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `gcMaxStackBarriers`, written as the closed form its loop computes:
    /// `1 + ceil(log2(size / offset))` for offset > 0, half the stack in entries for offset 0.
    fn table() -> Vec<(usize, usize, usize)> {
        vec![
            // (stack size, first offset, barriers)
            (2048, 0, 64),
            (8192, 0, 256),
            (1 << 20, 0, 32768),
            (2048, 1024, 2),     // 1024 < 2048 → 1, then 2048 stops: 1 + 1
            (4096, 1024, 3),     // 1024, 2048 → 2, + 1
            (8192, 1024, 4),     // 1024, 2048, 4096 → 3, + 1
            (8192, 1000, 5),     // 1000, 2000, 4000, 8000 → 4, + 1
            (2048, 4096, 1),     // offset above the stack: no loop, + 1
            (2048, 2048, 1),     // offset == size: loop condition is strict
            (1 << 30, 1024, 21), // 2^10 .. 2^29 → 20, + 1
            (1 << 20, 256, 13),  // 2^8 .. 2^19 → 12, + 1
            (1 << 20, 8192, 8),  // 2^13 .. 2^19 → 7, + 1
            (3000, 1024, 3),     // 1024, 2048 → 2, + 1 (non-power-of-two sizes too)
        ]
    }

    #[test]
    fn max_stack_barriers_matches_go_formula() {
        for (size, offset, want) in table() {
            assert_eq!(
                max_stack_barriers(size, offset),
                want,
                "size {size} offset {offset}"
            );
        }
        // Against the closed form over a grid.
        for size in (11..=30).map(|k| 1usize << k) {
            for offset in [1usize, 8, 100, 256, 512, 1000, 1024, 4096, 8192, 1 << 20] {
                let closed = if offset >= size {
                    1
                } else {
                    1 + (size as f64 / offset as f64).log2().ceil() as usize
                };
                assert_eq!(
                    max_stack_barriers(size, offset),
                    closed,
                    "size {size} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn stackalloc_carves_the_stkbar_array_from_the_top() {
        let mut pool = StackPool::new(StackBarrierMode::GO);
        let s = pool.stackalloc(8192).unwrap();
        assert_eq!(s.alloc_size(), 8192);
        assert_eq!(s.stkbar_cap(), 4);
        assert_eq!(s.usable(), 8192 - 4 * 16);
        assert_eq!(s.hi(), s.lo().add(8192 - 64));
        assert_eq!(s.lo().0 % 8192, 0, "stacks are aligned to their size");
        assert!(s.lo() >= STACK_BASE);
        assert_eq!(pool.stats().stkbar_reserved_bytes, 64);

        let mut all = StackPool::new(StackBarrierMode::EVERY_FRAME);
        let s = all.stackalloc(4096).unwrap();
        assert_eq!(s.stkbar_cap(), 128);
        assert_eq!(s.usable(), 2048, "offset 0 steals half the stack");

        // Off still carves the array Go's default offset needs (Go's gcstackbarrieroff only stops
        // installing).
        let mut off = StackPool::new(StackBarrierMode::Off);
        let s = off.stackalloc(4096).unwrap();
        assert_eq!((s.stkbar_cap(), s.usable()), (3, 4096 - 48));
    }

    #[test]
    fn stackfree_reuses_by_order_and_accounts_bytes() {
        let mut pool = StackPool::new(StackBarrierMode::GO);
        let a = pool.stackalloc(2048).unwrap();
        let b = pool.stackalloc(4096).unwrap();
        let (a_lo, b_lo) = (a.lo(), b.lo());
        assert_ne!(a_lo, b_lo);
        assert_eq!(pool.stats().in_use_bytes, 6144);
        pool.stackfree(a);
        assert_eq!(pool.stats().free_bytes, 2048);
        let c = pool.stackalloc(4096).unwrap();
        assert_ne!(c.lo(), a_lo, "a 4 KiB request does not take a 2 KiB stack");
        let d = pool.stackalloc(2048).unwrap();
        assert_eq!(d.lo(), a_lo, "the freed 2 KiB stack is reused");
        assert_eq!(pool.stats().free_bytes, 0);
        assert_eq!(pool.stats().stacks_in_use, 3);
        pool.stackfree(b);
        pool.stackfree(c);
        pool.stackfree(d);
        assert_eq!(pool.stats().in_use_bytes, 0);
        assert_eq!(pool.stats().stkbar_reserved_bytes, 0);
    }

    #[test]
    fn stackalloc_rejects_bad_sizes_and_exhaustion() {
        let mut pool = StackPool::with_max_stack_size(StackBarrierMode::GO, 1 << 20);
        for n in [0, 1000, 1024, 3000, 1 << 21] {
            assert!(
                matches!(pool.stackalloc(n), Err(StackError::BadStackSize { .. })),
                "{n}"
            );
        }
        let mut big = StackPool::with_max_stack_size(StackBarrierMode::GO, 1 << 40);
        let segment = STACK_END.offset_from(STACK_BASE);
        // Address space only; nothing is touched, so the zeroed memory is never faulted in.
        assert!(matches!(
            big.stackalloc(segment * 2),
            Err(StackError::OutOfStackSpace { .. })
        ));
    }

    #[test]
    fn stack_words_are_bounds_checked() {
        let mut pool = StackPool::new(StackBarrierMode::GO);
        let mut s = pool.stackalloc(2048).unwrap();
        let (lo, hi) = (s.lo(), s.hi());
        assert!(s.write(lo, 7));
        assert_eq!(s.read(lo), Some(7));
        assert_eq!(
            s.read(hi),
            None,
            "the stkbar array is not part of the usable stack"
        );
        assert_eq!(s.read(lo.sub(8)), None);
        assert_eq!(s.read(lo.add(4)), None, "misaligned");
        assert!(!s.write(hi, 1));
        assert_eq!(s.words(lo, lo.add(16)).map(<[_]>::len), Some(2));
        assert!(s.words(lo, hi.add(8)).is_none());
    }

    #[test]
    fn freeing_or_reusing_a_stack_resets_its_barriers() {
        use crate::scan::{ScanKind, scanstack};
        use crate::testutil::{f, goroutine, program};
        let prog = program();
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = StackPool::new(mode);
        let mid = f(&prog, "main.mid");
        // Reuse (gfput keeping a fixed-size stack): the new goroutine starts with no barriers.
        let mut gs = goroutine(&prog, &mut pool, &[mid; 4]);
        scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
        while gs.ret(&prog).unwrap() != crate::call::Ret::Exited {}
        assert_eq!((gs.stkbar_len(), gs.stkbar_pos()), (3, 3));
        gs.reset(2, &prog);
        assert_eq!(
            (gs.goid(), gs.stkbar_len(), gs.stkbar_pos(), gs.is_empty()),
            (2, 0, 0, true)
        );
        assert_eq!(gs.rescan_limit(), None);
        // The reused stack scans and barriers cleanly again.
        for site in 0..4 {
            assert_eq!(
                gs.call(&prog, mid, site).unwrap(),
                crate::call::Call::Pushed
            );
        }
        assert_eq!(
            scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
                .unwrap()
                .stale_barriers_removed,
            0
        );
        assert_eq!(gs.stkbar_len(), 3);
        // Free (gfput releasing the stack): the memory returns to the pool, the barriers go with
        // the goroutine, and the next goroutine on that memory has none.
        let lo = gs.stack().lo();
        pool.stackfree(gs.into_stack());
        let fresh = GStack::new(3, pool.stackalloc(2048).unwrap(), &prog);
        assert_eq!(fresh.stack().lo(), lo, "same memory");
        assert_eq!((fresh.stkbar_len(), fresh.stkbar_pos()), (0, 0));
        assert_eq!(fresh.frames(&prog).count(), 0);
    }

    #[test]
    fn stack_barrier_lock_try_lock_fails_while_held() {
        let lock = StackBarrierLock::default();
        lock.lock();
        assert!(lock.try_lock().is_none());
        lock.unlock();
        let g = lock.try_lock().expect("free");
        assert!(lock.is_locked());
        drop(g);
        assert!(!lock.is_locked());
    }
}
