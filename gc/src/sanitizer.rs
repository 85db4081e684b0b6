//! Per-P sanitizer contexts (seed 004, Go's "runtime: per-P contexts for race detector"): a model of
//! the race runtime's (ThreadSanitizer's) per-object metadata, told of every allocation and free.
//!
//! Invariant: every SyncVar slot ever carved is in exactly one place — the table (a live SyncVar), a
//! live context's cache, or the global pool — so `slots_carved == sync_vars + slots_cached +
//! slots_pooled`; and `contexts_created - contexts_destroyed == contexts_live`. A context's cache
//! never holds more than [`CTX_CACHE_MAX`] slots between calls. [`Sanitizer::check_accounting`]
//! verifies all of it against the list of live contexts.
//!
//! The metadata. tsan keeps an MBlock for every live heap block ([`Sanitizer::malloc`], Go's
//! `racemalloc`) and a SyncVar for every address a synchronization operation (an atomic op) touched
//! ([`Sanitizer::sync`]). SyncVar slots come from a slab: a context's cache (tsan's
//! `DenseSlabAllocCache`) hands them out and is refilled in batches of [`CTX_REFILL`] from the global
//! pool; only when the pool is empty are new slots carved, and carved slab memory never goes back to
//! the OS. Freeing a block ([`Sanitizer::free`], Go's `racefree`, called by sweep for every object it
//! frees) drops the block and every SyncVar inside its range into the freeing context's cache; a cache
//! that grows past [`CTX_CACHE_MAX`] drains down to half of it into the pool.
//!
//! Why per P. Before seed 004 the caches were per goroutine and the GC freed memory with no context to
//! hand the slots to, so the runtime was never told: a new object at a recycled address replaces the
//! stale block record, but SyncVars the dead object left behind stay in the table. They are reused only
//! if a later atomic op hits the very same address ("it does not always help"), so `slots_carved`
//! grows round after round (`BenchmarkSyncLeak`'s runaway memory). With one context per P — created
//! with the P in `procresize` ([`Sanitizer::proc_create`], `raceproccreate`) and destroyed when the P
//! goes away ([`Sanitizer::proc_destroy`], `raceprocdestroy`, its cached slots going to the pool) —
//! sweep always has a context to free into, and memory is flat after warm-up.
//!
//! Synchronization. [`Sanitizer`] is shared by every P; a [`ProcCtx`] is owned by its P and passed as
//! `&mut`, so its cache needs no lock. The table is sharded by heap page (`addr >> 13`) over
//! [`SHARDS`] mutexes; an entry lives in the shard of its own address, so a free of a large range locks
//! each shard its pages map to, one at a time. The lock order is shard, then pool. Counters are
//! atomics updated beside the structures they count: [`Sanitizer::stats`] is exact when quiescent and
//! approximate while Ps run.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::heap::{PAGE_SIZE, lock};

/// Bytes of metadata per live heap block the sanitizer tracks (tsan's MBlock).
pub const BLOCK_META_BYTES: u64 = 16;
/// Bytes per SyncVar slot (tsan's SyncVar, rounded to a cache line pair).
pub const SYNC_VAR_BYTES: u64 = 128;
/// Fixed bytes of one per-P context: tsan's `Processor` with its three `DenseSlabAllocCache`s
/// (128 four-byte indices and a cursor each, about 1.5 KiB) and headers, rounded up to a page. The
/// allocator caches a real `Processor` also holds are the mcache's job here.
pub const PROC_CTX_BYTES: u64 = 4096;
/// SyncVar slots a context's cache holds at most before draining to half into the global pool (tsan's
/// `DenseSlabAllocCache::kSize`).
pub const CTX_CACHE_MAX: usize = 128;
/// Slots an empty cache takes from the pool (or carves) at once: half the cache, as tsan refills.
pub const CTX_REFILL: usize = CTX_CACHE_MAX / 2;
/// Shards of the metadata table.
pub const SHARDS: usize = 64;

const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();

/// A SyncVar: the sanitizer's state for one address an atomic op touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncVar {
    /// The address it describes.
    pub addr: u64,
    /// The id of the context whose [`Sanitizer::sync`] created it.
    pub creator: u64,
}

/// One shard of the table: blocks and SyncVars whose address falls on a page mapped here.
#[derive(Debug, Default)]
struct Shard {
    /// Block base → size.
    blocks: BTreeMap<u64, u64>,
    sync_vars: BTreeMap<u64, SyncVar>,
}

/// A consistent snapshot of the sanitizer's counters (exact when no P is inside a call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SanitizerStats {
    /// Contexts created and not yet destroyed.
    pub contexts_live: u64,
    /// Contexts ever created.
    pub contexts_created: u64,
    /// Contexts ever destroyed.
    pub contexts_destroyed: u64,
    /// Live blocks recorded by malloc and not yet freed or replaced.
    pub blocks: u64,
    /// SyncVars in the table.
    pub sync_vars: u64,
    /// SyncVar slots ever carved (slab memory never returns to the OS, as in tsan).
    pub slots_carved: u64,
    /// Free slots in contexts' caches.
    pub slots_cached: u64,
    /// Free slots in the global pool.
    pub slots_pooled: u64,
    /// Calls to [`Sanitizer::malloc`].
    pub mallocs: u64,
    /// Calls to [`Sanitizer::free`].
    pub frees: u64,
    /// Calls to [`Sanitizer::sync`].
    pub syncs: u64,
    /// Sanitizer memory: `slots_carved * SYNC_VAR_BYTES + blocks * BLOCK_META_BYTES +
    /// contexts_live * PROC_CTX_BYTES`.
    pub bytes: u64,
}

/// A per-P sanitizer context (tsan's `Processor`): its SyncVar slot cache. Owned by its P; hand it
/// back with [`Sanitizer::proc_destroy`] (dropping it instead loses its slots from the accounting).
#[derive(Debug)]
pub struct ProcCtx {
    id: u64,
    cache: usize,
}

impl ProcCtx {
    /// The context's id, unique within its [`Sanitizer`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Free SyncVar slots in this context's cache.
    pub fn cached_slots(&self) -> usize {
        self.cache
    }
}

/// The sanitizer runtime shared by every P: the metadata table and the global pool of free slots.
pub struct Sanitizer {
    shards: Box<[Mutex<Shard>]>,
    /// Free slots in the global pool (slots are indistinguishable, so a count).
    pool: Mutex<u64>,
    c: Counters,
}

/// The counters behind [`SanitizerStats`] (the pool's is the pool itself).
#[derive(Debug, Default)]
struct Counters {
    contexts_live: AtomicU64,
    contexts_created: AtomicU64,
    contexts_destroyed: AtomicU64,
    blocks: AtomicU64,
    sync_vars: AtomicU64,
    slots_carved: AtomicU64,
    slots_cached: AtomicU64,
    mallocs: AtomicU64,
    frees: AtomicU64,
    syncs: AtomicU64,
}

impl fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sanitizer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Sanitizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sanitizer {
    /// An empty sanitizer: no contexts, no metadata, nothing carved.
    pub fn new() -> Sanitizer {
        Sanitizer {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pool: Mutex::new(0),
            c: Counters::default(),
        }
    }

    fn shard(&self, addr: u64) -> &Mutex<Shard> {
        &self.shards[((addr >> PAGE_SHIFT) % SHARDS as u64) as usize]
    }

    /// Go's `raceproccreate`: a new context with an empty cache, counted live.
    #[must_use]
    pub fn proc_create(&self) -> ProcCtx {
        let id = self.c.contexts_created.fetch_add(1, Relaxed);
        self.c.contexts_live.fetch_add(1, Relaxed);
        ProcCtx { id, cache: 0 }
    }

    /// Go's `raceprocdestroy`: the context's cached slots go back to the global pool.
    pub fn proc_destroy(&self, ctx: ProcCtx) {
        *lock(&self.pool) += ctx.cache as u64;
        self.c.slots_cached.fetch_sub(ctx.cache as u64, Relaxed);
        self.c.contexts_destroyed.fetch_add(1, Relaxed);
        self.c.contexts_live.fetch_sub(1, Relaxed);
    }

    /// Go's `racemalloc`: records the block `[addr, addr + size)`. A stale record at `addr` (a block
    /// whose free the runtime was never told of) is replaced, and SyncVars the dead object left in the
    /// range stay: the sanitizer cannot know they are dead.
    pub fn malloc(&self, _ctx: &mut ProcCtx, addr: u64, size: u64) {
        self.c.mallocs.fetch_add(1, Relaxed);
        if lock(self.shard(addr)).blocks.insert(addr, size).is_none() {
            self.c.blocks.fetch_add(1, Relaxed);
        }
    }

    /// Go's `racefree`: drops the block at `addr` (if recorded) and every SyncVar in
    /// `[addr, addr + size)`, their slots going into `ctx`'s cache.
    pub fn free(&self, ctx: &mut ProcCtx, addr: u64, size: u64) {
        self.c.frees.fetch_add(1, Relaxed);
        if lock(self.shard(addr)).blocks.remove(&addr).is_some() {
            self.c.blocks.fetch_sub(1, Relaxed);
        }
        let end = addr.saturating_add(size);
        if end <= addr {
            return;
        }
        // Every SyncVar in the range lives in the shard of its page; consecutive pages map to distinct
        // shards, so the first SHARDS pages of the range name every shard that can hold one.
        let (first, last) = (addr >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT);
        let mut released = 0;
        for page in first..=last.min(first + SHARDS as u64 - 1) {
            let mut shard = lock(self.shard(page << PAGE_SHIFT));
            let dead: Vec<u64> = shard.sync_vars.range(addr..end).map(|(&a, _)| a).collect();
            for a in &dead {
                shard.sync_vars.remove(a);
            }
            self.c.sync_vars.fetch_sub(dead.len() as u64, Relaxed);
            released += dead.len();
        }
        self.cache_put(ctx, released);
    }

    /// An atomic op at `addr`: the SyncVar for `addr`, created if absent from a slot out of `ctx`'s
    /// cache (refilled from the pool, or newly carved when the pool is empty too). An existing one,
    /// even one a dead object left behind, is reused.
    pub fn sync(&self, ctx: &mut ProcCtx, addr: u64) {
        self.c.syncs.fetch_add(1, Relaxed);
        let mut shard = lock(self.shard(addr));
        if let Entry::Vacant(e) = shard.sync_vars.entry(addr) {
            self.cache_take(ctx);
            e.insert(SyncVar {
                addr,
                creator: ctx.id,
            });
            self.c.sync_vars.fetch_add(1, Relaxed);
        }
    }

    /// The SyncVar for `addr`, if the table holds one.
    pub fn sync_var(&self, addr: u64) -> Option<SyncVar> {
        lock(self.shard(addr)).sync_vars.get(&addr).copied()
    }

    /// Takes one slot from `ctx`'s cache, refilling it first if empty (tsan's `DenseSlabAlloc::Alloc`).
    fn cache_take(&self, ctx: &mut ProcCtx) {
        if ctx.cache == 0 {
            let mut pool = lock(&self.pool);
            let mut n = (*pool).min(CTX_REFILL as u64);
            *pool -= n;
            drop(pool);
            if n == 0 {
                n = CTX_REFILL as u64;
                self.c.slots_carved.fetch_add(n, Relaxed);
            }
            ctx.cache = n as usize;
            self.c.slots_cached.fetch_add(ctx.cache as u64, Relaxed);
        }
        ctx.cache -= 1;
        self.c.slots_cached.fetch_sub(1, Relaxed);
    }

    /// Puts `n` freed slots into `ctx`'s cache; past [`CTX_CACHE_MAX`] it drains to half into the pool.
    fn cache_put(&self, ctx: &mut ProcCtx, n: usize) {
        ctx.cache += n;
        self.c.slots_cached.fetch_add(n as u64, Relaxed);
        if ctx.cache > CTX_CACHE_MAX {
            let drain = ctx.cache - CTX_CACHE_MAX / 2;
            ctx.cache -= drain;
            *lock(&self.pool) += drain as u64;
            self.c.slots_cached.fetch_sub(drain as u64, Relaxed);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SanitizerStats {
        let mut s = SanitizerStats {
            contexts_live: self.c.contexts_live.load(Relaxed),
            contexts_created: self.c.contexts_created.load(Relaxed),
            contexts_destroyed: self.c.contexts_destroyed.load(Relaxed),
            blocks: self.c.blocks.load(Relaxed),
            sync_vars: self.c.sync_vars.load(Relaxed),
            slots_carved: self.c.slots_carved.load(Relaxed),
            slots_cached: self.c.slots_cached.load(Relaxed),
            slots_pooled: *lock(&self.pool),
            mallocs: self.c.mallocs.load(Relaxed),
            frees: self.c.frees.load(Relaxed),
            syncs: self.c.syncs.load(Relaxed),
            bytes: 0,
        };
        s.bytes = s.slots_carved * SYNC_VAR_BYTES
            + s.blocks * BLOCK_META_BYTES
            + s.contexts_live * PROC_CTX_BYTES;
        s
    }

    /// Checks the module invariant, quiescent, against `live`, the contexts the Ps hold now: slot
    /// conservation, the context counts, and that `live` is exactly the live contexts (distinct ids,
    /// the right number, caches within bounds and summing to `slots_cached`). The error is one line.
    pub fn check_accounting(&self, live: &[&ProcCtx]) -> Result<(), String> {
        let s = self.stats();
        let mut ids: Vec<u64> = live.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let given: u64 = live.iter().map(|c| c.cache as u64).sum();
        let checks = [
            (
                s.slots_carved == s.sync_vars + s.slots_cached + s.slots_pooled,
                "slots_carved != sync_vars + slots_cached + slots_pooled",
            ),
            (
                s.contexts_created - s.contexts_destroyed == s.contexts_live,
                "contexts_created - contexts_destroyed != contexts_live",
            ),
            (
                live.len() as u64 == s.contexts_live,
                "contexts given != contexts_live",
            ),
            (ids.len() == live.len(), "a context given twice"),
            (
                live.iter().all(|c| c.cache <= CTX_CACHE_MAX),
                "a cache over CTX_CACHE_MAX",
            ),
            (
                given == s.slots_cached,
                "given contexts' cached slots != slots_cached",
            ),
        ];
        match checks.into_iter().find(|&(ok, _)| !ok) {
            None => Ok(()),
            Some((_, what)) => Err(format!(
                "sanitizer accounting: {what} ({} contexts given, caching {given}; {s:?})",
                live.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::heap::HEAP_BASE;
    use crate::mutator::Rng;

    const BASE: u64 = HEAP_BASE.0;
    const PAGE: u64 = PAGE_SIZE as u64;

    #[test]
    fn free_returns_slots_that_sync_reuses_without_carving() {
        let san = Sanitizer::new();
        let mut p = san.proc_create();
        for i in 0..10 {
            san.malloc(&mut p, BASE + i * 64, 64);
            san.sync(&mut p, BASE + i * 64 + 8);
            san.sync(&mut p, BASE + i * 64 + 8); // the same SyncVar again
        }
        let s = san.stats();
        assert_eq!((s.blocks, s.sync_vars, s.syncs), (10, 10, 20));
        assert_eq!(
            (s.slots_carved, p.cached_slots()),
            (CTX_REFILL as u64, CTX_REFILL - 10)
        );
        for i in 0..10 {
            san.free(&mut p, BASE + i * 64, 64);
        }
        let s = san.stats();
        assert_eq!(
            (s.blocks, s.sync_vars, p.cached_slots()),
            (0, 0, CTX_REFILL)
        );
        let (mut q, addr) = (san.proc_create(), BASE + 4096);
        san.malloc(&mut p, addr, 64);
        san.sync(&mut p, addr);
        san.malloc(&mut q, addr, 64); // the runtime was never told of a free: replace, keep the var
        san.sync(&mut q, addr);
        let s = san.stats();
        assert_eq!(
            (s.blocks, s.sync_vars, s.slots_carved),
            (1, 1, CTX_REFILL as u64)
        );
        let var = SyncVar {
            addr,
            creator: p.id(),
        };
        assert_eq!(san.sync_var(addr), Some(var));
        san.check_accounting(&[&p, &q]).unwrap();
    }

    /// `BenchmarkSyncLeak` in small: objects at recycled addresses, an atomic op on a random word in
    /// each. Returns `stats()` after each round.
    fn sync_leak(notify_free: bool) -> Vec<SanitizerStats> {
        const OBJECTS: u64 = 256;
        const SIZE: u64 = 256;
        let san = Sanitizer::new();
        let mut p = san.proc_create();
        let mut rng = Rng::seed_from_u64(4);
        let mut rounds = Vec::new();
        for _ in 0..8 {
            for i in 0..OBJECTS {
                let obj = BASE + i * SIZE;
                san.malloc(&mut p, obj, SIZE);
                san.sync(&mut p, obj + rng.random_range(0..SIZE / 8) * 8);
            }
            if notify_free {
                for i in 0..OBJECTS {
                    san.free(&mut p, BASE + i * SIZE, SIZE);
                }
            }
            san.check_accounting(&[&p]).unwrap();
            rounds.push(san.stats());
        }
        rounds
    }

    #[test]
    fn sync_leak_is_flat_with_free_and_grows_without() {
        let with = sync_leak(true);
        let flat = |s: &SanitizerStats| s.bytes == with[0].bytes && s.sync_vars == 0;
        assert!(with.iter().all(flat), "{with:?}");
        let without = sync_leak(false);
        for w in without.windows(2) {
            assert!(w[1].slots_carved > w[0].slots_carved, "{without:?}");
            assert_eq!(w[1].blocks, 256);
        }
        assert!(without[7].bytes > 4 * with[7].bytes);
    }

    #[test]
    fn contexts_follow_procresize_and_return_slots_to_the_pool() {
        let san = Sanitizer::new();
        let mut ps: Vec<ProcCtx> = Vec::new();
        let mut next = BASE;
        for (step, n) in [4, 8, 2, 5].into_iter().enumerate() {
            while ps.len() < n {
                ps.push(san.proc_create());
            }
            while ps.len() > n {
                let gone = ps.pop().unwrap();
                let (pooled, cached) = (san.stats().slots_pooled, gone.cached_slots() as u64);
                san.proc_destroy(gone);
                assert_eq!(san.stats().slots_pooled, pooled + cached);
            }
            for (i, p) in ps.iter_mut().enumerate() {
                for _ in 0..(10 + 7 * i + step) {
                    san.malloc(p, next, 64);
                    san.sync(p, next);
                    if i % 2 == 0 {
                        san.free(p, next, 64);
                    }
                    next += 64;
                }
            }
            let refs: Vec<&ProcCtx> = ps.iter().collect();
            san.check_accounting(&refs).unwrap();
            assert_eq!(san.stats().contexts_live, n as u64);
        }
        let s = san.stats();
        assert_eq!((s.contexts_created, s.contexts_destroyed), (11, 6));
    }

    #[test]
    fn free_of_a_large_object_releases_sync_vars_on_every_page() {
        let san = Sanitizer::new();
        let mut p = san.proc_create();
        let (obj, pages) = (BASE + PAGE, 100); // more pages than shards
        san.malloc(&mut p, obj, pages * PAGE);
        for page in 0..pages {
            san.sync(&mut p, obj + page * PAGE + 8 * (page % 7));
        }
        san.sync(&mut p, obj - 8);
        san.sync(&mut p, obj + pages * PAGE);
        assert_eq!(san.stats().sync_vars, pages + 2);
        san.free(&mut p, obj, pages * PAGE);
        let s = san.stats();
        assert_eq!((s.blocks, s.sync_vars), (0, 2));
        assert!(san.sync_var(obj - 8).is_some() && san.sync_var(obj + pages * PAGE).is_some());
        assert_eq!(s.slots_cached + s.slots_pooled, s.slots_carved - 2);
        san.check_accounting(&[&p]).unwrap();
    }

    #[test]
    fn check_accounting_catches_a_wrong_context_list() {
        let san = Sanitizer::new();
        let (mut a, b) = (san.proc_create(), san.proc_create());
        san.sync(&mut a, BASE);
        san.check_accounting(&[&a, &b]).unwrap();
        let missing = san.check_accounting(&[&b]).unwrap_err();
        assert!(
            missing.contains("contexts given != contexts_live"),
            "{missing}"
        );
        let twice = san.check_accounting(&[&a, &a]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        let other = Sanitizer::new().proc_create(); // same id as `a`, empty cache
        let wrong = san.check_accounting(&[&other, &b]).unwrap_err();
        assert!(wrong.contains("cached slots != slots_cached"), "{wrong}");
    }

    #[test]
    fn threads_with_own_contexts_end_with_exact_totals() {
        const OBJECTS: u64 = 2000;
        let san = Sanitizer::new();
        let worker = |t: u64| {
            let mut p = san.proc_create();
            for obj in (0..OBJECTS).map(|i| BASE + (t << 30) + i * 128) {
                san.malloc(&mut p, obj, 128);
                san.sync(&mut p, obj + 8);
                san.sync(&mut p, obj + 16);
                if obj % 512 != 0 {
                    san.free(&mut p, obj, 128); // every fourth object stays live
                }
            }
            p
        };
        let ps: Vec<ProcCtx> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4).map(|t| s.spawn(move || worker(t))).collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let s = san.stats();
        assert_eq!(
            (s.mallocs, s.frees, s.syncs),
            (4 * OBJECTS, 3 * OBJECTS, 8 * OBJECTS)
        );
        assert_eq!((s.blocks, s.sync_vars), (OBJECTS, 2 * OBJECTS));
        let refs: Vec<&ProcCtx> = ps.iter().collect();
        san.check_accounting(&refs).unwrap();
    }
}
