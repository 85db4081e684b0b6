//! The GC heap: typed objects in spans of one size class, alloc and mark bits per span, an mcache
//! per P, and the globals (the data segment) that are the heap's roots.
//!
//! Invariant: every heap address the mutator holds is the base (or an interior word) of an object
//! whose alloc bit is set in its span; an object's mark bit is set exactly when the current (or, before
//! its span is swept, the last) cycle found it reachable; and a span is swept at most once per cycle
//! before anything is allocated from it, so an object allocated after mark termination can never be
//! freed by the sweep of that cycle.
//!
//! Layout (Go's `mheap`, much simplified). The heap is a range of 8 KiB pages from [`HEAP_BASE`]. A
//! span is a run of pages holding objects of one size class (Go's class table, 8 B to 32 KiB); a
//! larger object gets a span of its own. `spans` maps every page to its span, so finding the object
//! under an address (`find_object`, Go's `findObject`) is a shift, a table load and a multiply by
//! the span's `div_mul` (Go's reciprocal trick, not a division). Each object slot has a type id
//! beside it (Go keeps a heap bitmap instead); the type's pointer map says which of its words are
//! pointer fields. Object words, alloc bits, mark bits and checkmark bits are
//! all atomics, so mutators, mark workers and the sweeper may touch them from different threads with
//! no lock (relaxed word accesses compile to plain loads and stores).
//!
//! Allocation. Each P owns an [`MCache`]: one current span per size class and a cursor into its alloc
//! bits. When the span is full the mcache refills from the class's central list (a mutex), which hands
//! out a swept span with free slots, sweeping an unswept one first if it must (Go's `mcentral`), or
//! carves a new span. Objects are zeroed on allocation. During mark they are allocated *black* (mark
//! bit set), as in Go.
//!
//! Sweep (Go's `sweepgen` protocol). Mark termination flushes every mcache, bumps `sweepgen` by 2 and
//! puts every span on its class's unswept list: a span whose `sweepgen` is `heap.sweepgen - 2` needs
//! sweeping, one at `sweepgen - 1` is being swept, one at `sweepgen` is swept. Sweeping a span frees
//! every allocated, unmarked object (alloc bits := mark bits), clears the mark bits and reports every
//! freed object to the caller (the sanitizer context of the P doing the sweep). Background sweeping and
//! allocation both claim spans with a CAS on `sweepgen`, so each span is swept exactly once.
//!
//! Accounting. `heap_live` is Go's: set to the marked bytes at mark termination (what the markers'
//! `GcWork`s counted, plus what was allocated black), then increased by every allocation; the GOGC
//! trigger compares it with the goal.

use std::fmt;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use bitvec::prelude::*;
use stacks::{Addr, WORD};

/// Base of the simulated heap.
pub const HEAP_BASE: Addr = Addr(0xc0_0000_0000);
/// Bytes in a heap page.
pub const PAGE_SIZE: usize = 8192;
/// Largest object that gets a size class; larger ones get a span of their own.
pub const MAX_SMALL_SIZE: usize = 32 << 10;
/// Base of the simulated data segment (globals).
pub const DATA_BASE: Addr = Addr(0x0060_0000);
pub use stacks::MIN_VALID_POINTER;

/// Go's size classes (`sizeclasses.go`, Go 1.7's table up to 32 KiB).
const CLASS_SIZES: [usize; 66] = [
    8, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352,
    384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
    2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// Index of an object type in the [`Heap`]'s type table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct TypeId(pub u32);

/// An object type: its size and which of its words are pointer fields.
#[derive(Clone, Debug)]
pub struct ObjType {
    /// Name, as reports print it.
    pub name: Box<str>,
    /// Size in bytes, a multiple of the word size.
    pub size: usize,
    /// One bit per word: set for a pointer field.
    pub ptr_map: BitVec<u64, Lsb0>,
    /// Word indices of the pointer fields, in order (derived from `ptr_map`).
    pub ptr_fields: Box<[u32]>,
    /// The word each field operand `k` (0–255) names: pointer field `k mod n`, resolved once
    /// here so the interpreter's operand is one load (empty when the type has no pointer field).
    pub operand_fields: Box<[u32]>,
}

impl ObjType {
    /// A type of `words` words whose pointer fields are `pointer_words`.
    pub fn new(name: &str, words: usize, pointer_words: &[usize]) -> ObjType {
        let words = words.max(1);
        let mut ptr_map = bitvec![u64, Lsb0; 0; words];
        for &w in pointer_words.iter().filter(|&&w| w < words) {
            ptr_map.set(w, true);
        }
        let ptr_fields: Box<[u32]> = ptr_map.iter_ones().map(|w| w as u32).collect();
        ObjType {
            name: name.into(),
            size: words * WORD,
            ptr_map,
            operand_fields: if ptr_fields.is_empty() {
                Box::default()
            } else {
                (0..256).map(|k| ptr_fields[k % ptr_fields.len()]).collect()
            },
            ptr_fields,
        }
    }
}

/// An atomic bitmap over a span's object slots: plain words, so that a test or a set is one
/// load or one atomic instruction; `bitvec` views them for the searches and counts. A set
/// releases what the setter wrote before it and a test acquires it: a marker that sees an alloc
/// bit sees the zeroed, typed object behind it.
#[derive(Debug)]
struct Bits {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl Bits {
    fn new(len: usize) -> Bits {
        Bits {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            len,
        }
    }
    /// The word holding bit `i`, and the bit's mask in it.
    #[inline]
    fn word(&self, i: usize) -> (&AtomicU64, u64) {
        (&self.words[i / 64], 1 << (i % 64))
    }
    #[inline]
    fn get(&self, i: usize) -> bool {
        let (word, bit) = self.word(i);
        word.load(Ordering::Acquire) & bit != 0
    }
    #[inline]
    fn set(&self, i: usize, v: bool) {
        let (word, bit) = self.word(i);
        if v {
            word.fetch_or(bit, Ordering::Release);
        } else {
            word.fetch_and(!bit, Ordering::Release);
        }
    }
    /// Sets bit `i`; true if it was clear (this caller marked it).
    #[inline]
    fn test_and_set(&self, i: usize) -> bool {
        let (word, bit) = self.word(i);
        // Most shades find the object already marked: a plain load avoids the locked RMW then.
        word.load(Ordering::Relaxed) & bit == 0 && word.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }
    fn clear_all(&self) {
        for w in &self.words {
            w.store(0, Ordering::Relaxed);
        }
    }
    /// The first clear bit at or after `from` (Go's `nextFreeIndex`), a word at a time.
    #[inline]
    fn first_zero_from(&self, from: usize) -> Option<usize> {
        let mut i = from / 64;
        // Bits below `from` in its word count as set.
        let mut below = (1u64 << (from % 64)) - 1;
        while i < self.words.len() {
            let free = !(self.words[i].load(Ordering::Relaxed) | below);
            if free != 0 {
                let bit = i * 64 + free.trailing_zeros() as usize;
                return (bit < self.len).then_some(bit);
            }
            below = 0;
            i += 1;
        }
        None
    }
    /// The bits, for searching and counting.
    fn view(&self) -> &BitSlice<AtomicU64, Lsb0> {
        &BitSlice::from_slice(&self.words)[..self.len]
    }
    fn count_ones(&self) -> usize {
        self.view().count_ones()
    }
}

/// A run of pages holding objects of one size.
#[derive(Debug)]
pub struct Span {
    index: u32,
    base: Addr,
    npages: usize,
    /// Size class index; `None` for a large-object span.
    class: Option<u8>,
    elem_size: usize,
    /// Go's `divMul`, `⌊(2^32 − 1) / elem_size⌋ + 1`: the index of the object at byte offset `off`
    /// is `off · div_mul >> 32`, a multiply instead of a division, exact for every offset of a
    /// small-class span (a test checks them all); 0 in a large span, whose one object covers it.
    div_mul: u32,
    nelems: usize,
    words: Box<[AtomicU64]>,
    types: Box<[AtomicU32]>,
    alloc: Bits,
    mark: Bits,
    checkmark: Bits,
    sweepgen: AtomicU32,
    /// The wbshadow copy of `words` (seed 000's shadow heap); empty unless `wbshadow` is on.
    shadow: Box<[AtomicU64]>,
}

impl Span {
    /// First address of the span.
    pub fn base(&self) -> Addr {
        self.base
    }
    /// Bytes per object.
    pub fn elem_size(&self) -> usize {
        self.elem_size
    }
    /// Object slots.
    pub fn nelems(&self) -> usize {
        self.nelems
    }
    /// The index of the object slot holding byte offset `off` of the span.
    #[inline]
    fn object_index(&self, off: u64) -> usize {
        ((off * u64::from(self.div_mul)) >> 32) as usize
    }
    fn slot_addr(&self, i: usize) -> Addr {
        self.base.add(i * self.elem_size)
    }
    fn bytes(&self) -> usize {
        self.npages * PAGE_SIZE
    }
}

/// Asks the CPU to start loading the cache line holding `r`: a hint that never faults and
/// changes nothing the program can observe; nothing where the target has no prefetch instruction.
#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has. A prefetch reads nothing
    // the program sees and cannot fault, and `r` is a live reference in any case.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Go's `divMul` for objects of `elem_size` bytes (a size class's, at most 32 KiB).
const fn div_mul(elem_size: usize) -> u32 {
    u32::MAX / elem_size as u32 + 1
}

/// An object found under an address: its base, its span (borrowed from the heap, so every
/// operation on the object reaches the span's bits and words without looking it up again) and
/// its slot. Two references are equal when they name the same object.
#[derive(Clone, Copy)]
pub struct ObjRef<'h> {
    /// The object's base address.
    pub base: Addr,
    /// Its span.
    span: &'h Span,
    /// Its slot in the span.
    pub slot: u32,
}

impl ObjRef<'_> {
    /// The object's size: its span's element size.
    #[inline]
    pub fn size(&self) -> u64 {
        self.span.elem_size as u64
    }
}

impl PartialEq for ObjRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Eq for ObjRef<'_> {}

impl fmt::Debug for ObjRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjRef")
            .field("base", &self.base)
            .field("span", &self.span.index)
            .field("slot", &self.slot)
            .finish()
    }
}

/// What [`Heap::find_object`] found at a heap address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lookup<'h> {
    /// Not a heap address: a stack, a global, a scalar, nil.
    NotHeap,
    /// An allocated object.
    Object(ObjRef<'h>),
    /// A heap address that is not inside an allocated object (a dangling pointer).
    Free(Addr),
}

/// A P's allocation cache (Go's `mcache`): one current span per size class.
#[derive(Debug, Default)]
pub struct MCache {
    /// Per class: current span and the next slot to try.
    current: Vec<Option<(u32, usize)>>,
    /// Bytes allocated through this cache since it was created.
    pub allocated_bytes: u64,
    /// Objects allocated through this cache since it was created.
    pub allocated_objects: u64,
}

impl MCache {
    /// An empty cache.
    pub fn new() -> MCache {
        MCache {
            current: vec![None; CLASS_SIZES.len()],
            ..Default::default()
        }
    }
}

/// Bytes allocated black this cycle, as a sum of counters each on its own cache line: a span adds
/// to the one its index selects, so Ps allocating in parallel rarely write the same line. (The
/// bytes markers mark are counted in their `GcWork`s, as Go's `gcWork.bytesMarked` are, and
/// reach [`Heap::finish_mark`] as its argument.)
#[derive(Debug, Default)]
struct BlackBytes([PaddedCounter; BLACK_BYTES_STRIPES]);

const BLACK_BYTES_STRIPES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

impl BlackBytes {
    #[inline]
    fn add(&self, span: u32, bytes: u64) {
        self.0[span as usize % BLACK_BYTES_STRIPES]
            .0
            .fetch_add(bytes, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    fn clear(&self) {
        for c in &self.0 {
            c.0.store(0, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct Central {
    /// Spans of this class with free slots, swept this cycle, in no mcache.
    partial: Vec<u32>,
    /// Spans of this class waiting to be swept.
    unswept: Vec<u32>,
    /// Every span of this class, in address order: at mark termination they all become
    /// unswept with one copy, not a walk over the whole heap inside the pause.
    all: Vec<u32>,
}

/// Why an allocation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeapError {
    /// The simulated heap's address range is used up.
    #[error("out of memory: the {max} MiB heap cannot fit a {size}-byte span")]
    OutOfMemory {
        /// Bytes the span would need.
        size: usize,
        /// Heap size limit in MiB.
        max: usize,
    },
    /// An unknown type id.
    #[error("no object type {0:?}")]
    BadType(TypeId),
}

/// What one span sweep freed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Spans swept.
    pub spans: u64,
    /// Objects freed.
    pub objects: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// The heap.
#[derive(Debug)]
pub struct Heap {
    types: Vec<ObjType>,
    spans: boxcar::Vec<Span>,
    /// Page index → its span (Go's `h.spans`, a `*mspan` per page); null: no span. Each entry is
    /// set once, when its span is made, and points into `spans`, which never moves or drops a
    /// span while the heap lives.
    page_span: Box<[AtomicPtr<Span>]>,
    next_page: Mutex<usize>,
    central: Vec<Mutex<Central>>,
    /// Freed large-object spans, by page count, for reuse.
    free_large: Mutex<Vec<u32>>,
    large: Mutex<Central>,
    sweepgen: AtomicU32,
    heap_live: AtomicU64,
    /// Bytes allocated black this cycle.
    black_bytes: BlackBytes,
    checkmark_active: AtomicBool,
    /// Spans carry a shadow copy of their words (`wbshadow`).
    wbshadow: bool,
}

impl Heap {
    /// A heap of at most `max_bytes` (rounded to pages) for objects of `types`.
    pub fn new(types: Vec<ObjType>, max_bytes: usize) -> Heap {
        let pages = max_bytes.div_ceil(PAGE_SIZE).max(1);
        Heap {
            types,
            spans: boxcar::Vec::new(),
            page_span: (0..pages)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            next_page: Mutex::new(0),
            central: (0..CLASS_SIZES.len()).map(|_| Mutex::default()).collect(),
            free_large: Mutex::default(),
            large: Mutex::default(),
            sweepgen: AtomicU32::new(2),
            heap_live: AtomicU64::new(0),
            black_bytes: BlackBytes::default(),
            checkmark_active: AtomicBool::new(false),
            wbshadow: false,
        }
    }

    /// This heap, with a shadow copy of every span's words (`wbshadow`; Go maps the shadow heap
    /// beside the arena as it grows, `wbshadowinit`). Call before the first allocation.
    pub fn with_wbshadow(mut self) -> Heap {
        assert_eq!(self.spans.count(), 0, "the shadow starts with the heap");
        self.wbshadow = true;
        self
    }

    /// The shadow of word `word` of `obj`, if `wbshadow` is on (Go's `shadowptr`).
    #[inline]
    pub fn shadow_word<'h>(&self, obj: ObjRef<'h>, word: usize) -> Option<&'h AtomicU64> {
        let s = self.span(obj);
        s.shadow.get(obj.base.offset_from(s.base) / WORD + word)
    }

    /// Bytes of shadow memory (wbshadow's cost: one word per heap word). Every span carries its
    /// pages' shadow for its life and pages are never unmapped, so this is the pages mapped:
    /// O(1), as mark termination asks it with the world stopped.
    pub fn shadow_bytes(&self) -> u64 {
        if !self.wbshadow {
            return 0;
        }
        (*lock(&self.next_page) * PAGE_SIZE) as u64
    }

    /// The object types.
    pub fn types(&self) -> &[ObjType] {
        &self.types
    }

    /// Type `id`.
    #[inline]
    pub fn type_of(&self, id: TypeId) -> &ObjType {
        &self.types[id.0 as usize]
    }

    /// Bytes of live heap by Go's accounting (marked at the last termination plus allocated since).
    pub fn heap_live(&self) -> u64 {
        self.heap_live.load(Ordering::Relaxed)
    }

    /// Bytes allocated black so far in this cycle.
    pub fn black_bytes(&self) -> u64 {
        self.black_bytes.sum()
    }

    /// Bytes of heap address space in spans.
    pub fn mapped_bytes(&self) -> usize {
        *lock(&self.next_page) * PAGE_SIZE
    }

    /// The size class for an object of `size` bytes.
    fn size_class(size: usize) -> Option<u8> {
        if size > MAX_SMALL_SIZE {
            return None;
        }
        Some(CLASS_SIZES.partition_point(|&c| c < size) as u8)
    }

    /// Pages per span of class `c`: the fewest pages whose tail waste is at most 1/8 (Go's rule).
    fn class_npages(c: u8) -> usize {
        let size = CLASS_SIZES[c as usize];
        let mut npages = 1;
        while (npages * PAGE_SIZE) % size > npages * PAGE_SIZE / 8 {
            npages += 1;
        }
        npages
    }

    /// Allocates a zeroed object of type `ty` through `mcache`; black (marked) if `black`. A span
    /// the allocation sweeps first reports each object it frees to `on_free(addr, size)`.
    pub fn alloc(
        &self,
        mcache: &mut MCache,
        ty: TypeId,
        black: bool,
        on_free: impl FnMut(Addr, usize),
    ) -> Result<Addr, HeapError> {
        let size = self
            .types
            .get(ty.0 as usize)
            .ok_or(HeapError::BadType(ty))?
            .size;
        let (span, slot) = match Self::size_class(size) {
            Some(c) => self.alloc_small(mcache, c, on_free)?,
            None => (self.alloc_large(size, on_free)?, 0),
        };
        let s = &self.spans[span as usize];
        let base = s.slot_addr(slot);
        let first = base.offset_from(s.base) / WORD;
        let words = first..first + s.elem_size / WORD;
        for w in &s.words[words.clone()] {
            w.store(0, Ordering::Relaxed);
        }
        // clearshadow: the new object's words are zero, and so is their shadow.
        for w in s.shadow.get(words).unwrap_or_default() {
            w.store(0, Ordering::Relaxed);
        }
        s.types[slot].store(ty.0, Ordering::Relaxed);
        if black {
            s.mark.set(slot, true);
            self.black_bytes.add(s.index, s.elem_size as u64);
        }
        // Publish last: a marker that sees the alloc bit sees a zeroed object of the right type.
        s.alloc.set(slot, true);
        self.heap_live
            .fetch_add(s.elem_size as u64, Ordering::Relaxed);
        mcache.allocated_bytes += s.elem_size as u64;
        mcache.allocated_objects += 1;
        Ok(base)
    }

    fn alloc_small(
        &self,
        mcache: &mut MCache,
        class: u8,
        mut on_free: impl FnMut(Addr, usize),
    ) -> Result<(u32, usize), HeapError> {
        loop {
            if let Some((span, cursor)) = mcache.current[class as usize] {
                let s = &self.spans[span as usize];
                if let Some(i) = s.alloc.first_zero_from(cursor) {
                    mcache.current[class as usize] = Some((span, i + 1));
                    return Ok((span, i));
                }
            }
            let span = self.refill(class, &mut on_free)?;
            mcache.current[class as usize] = Some((span, 0));
        }
    }

    /// A span of `class` with a free slot, swept, for an mcache (Go's `mcentral.cacheSpan`).
    fn refill(&self, class: u8, mut on_free: impl FnMut(Addr, usize)) -> Result<u32, HeapError> {
        let mut central = lock(&self.central[class as usize]);
        while let Some(span) = central.partial.pop() {
            if self.has_free(span) {
                return Ok(span);
            }
        }
        while let Some(span) = central.unswept.pop() {
            if self.try_sweep_span(span, &mut on_free).is_some() && self.has_free(span) {
                return Ok(span);
            }
        }
        drop(central);
        self.new_span(
            Some(class),
            Self::class_npages(class),
            CLASS_SIZES[class as usize],
        )
    }

    fn has_free(&self, span: u32) -> bool {
        let s = &self.spans[span as usize];
        s.alloc.count_ones() < s.nelems
    }

    fn alloc_large(
        &self,
        size: usize,
        mut on_free: impl FnMut(Addr, usize),
    ) -> Result<u32, HeapError> {
        let npages = size.div_ceil(PAGE_SIZE);
        // Sweep pending large spans first so freed ones can be reused.
        loop {
            let next = lock(&self.large).unswept.pop();
            let Some(span) = next else { break };
            if let Some(st) = self.try_sweep_span(span, &mut on_free)
                && st.objects > 0
            {
                lock(&self.free_large).push(span);
            } else if !self.has_free(span) {
                lock(&self.large).partial.push(span); // still live: back on the all-large list
            } else {
                lock(&self.free_large).push(span);
            }
        }
        let reuse = {
            let mut free = lock(&self.free_large);
            free.iter()
                .position(|&s| self.spans[s as usize].npages == npages)
                .map(|i| free.swap_remove(i))
        };
        let span = match reuse {
            Some(s) => s,
            None => self.new_span(None, npages, npages * PAGE_SIZE)?,
        };
        lock(&self.large).partial.push(span);
        Ok(span)
    }

    fn new_span(
        &self,
        class: Option<u8>,
        npages: usize,
        elem_size: usize,
    ) -> Result<u32, HeapError> {
        let mut next = lock(&self.next_page);
        if *next + npages > self.page_span.len() {
            return Err(HeapError::OutOfMemory {
                size: npages * PAGE_SIZE,
                max: (self.page_span.len() * PAGE_SIZE) >> 20,
            });
        }
        let first_page = *next;
        *next += npages;
        let nelems = npages * PAGE_SIZE / elem_size;
        let index = self.spans.count() as u32;
        let pushed = self.spans.push(Span {
            index,
            base: HEAP_BASE.add(first_page * PAGE_SIZE),
            npages,
            class,
            elem_size,
            div_mul: match class {
                Some(_) => div_mul(elem_size),
                None => 0,
            },
            nelems,
            words: (0..npages * PAGE_SIZE / WORD)
                .map(|_| AtomicU64::new(0))
                .collect(),
            types: (0..nelems).map(|_| AtomicU32::new(0)).collect(),
            alloc: Bits::new(nelems),
            mark: Bits::new(nelems),
            checkmark: Bits::new(nelems),
            sweepgen: AtomicU32::new(self.sweepgen.load(Ordering::Acquire)),
            shadow: if self.wbshadow {
                (0..npages * PAGE_SIZE / WORD)
                    .map(|_| AtomicU64::new(0))
                    .collect()
            } else {
                Box::default()
            },
        });
        debug_assert_eq!(
            pushed as u32, index,
            "spans are created under next_page's lock"
        );
        // Published last: a lookup that finds the pointer sees the span initialised.
        let span = ptr::from_ref(&self.spans[pushed]).cast_mut();
        for p in first_page..first_page + npages {
            self.page_span[p].store(span, Ordering::Release);
        }
        if let Some(c) = class {
            lock(&self.central[c as usize]).all.push(index);
        }
        Ok(index)
    }

    /// The object under `addr`, if `addr` is a heap address (Go's `findObject`).
    #[inline]
    pub fn find_object(&self, addr: u64) -> Lookup<'_> {
        let Some(off) = addr.checked_sub(HEAP_BASE.0) else {
            return Lookup::NotHeap;
        };
        let page = (off / PAGE_SIZE as u64) as usize;
        let Some(entry) = self.page_span.get(page) else {
            return Lookup::NotHeap;
        };
        let span = entry.load(Ordering::Acquire);
        if span.is_null() {
            return Lookup::Free(Addr(addr));
        }
        // SAFETY: a non-null entry was stored by `new_span` from a reference to an element of
        // `self.spans`, after that element was pushed; a `boxcar::Vec` never moves or drops an
        // element while it lives, and `&self` keeps it alive for `'_`, so the pointer is valid
        // for `'_`. Spans are only ever shared (everything in them that changes is atomic), so a
        // shared reference aliases nothing mutable; the acquire load pairs with the release
        // store, so the span's initialisation is visible.
        let s = unsafe { &*span };
        let slot = s.object_index(addr - s.base.0);
        if slot >= s.nelems || !s.alloc.get(slot) {
            return Lookup::Free(Addr(addr));
        }
        Lookup::Object(ObjRef {
            base: s.slot_addr(slot),
            span: s,
            slot: slot as u32,
        })
    }

    /// The span of an object.
    #[inline]
    pub fn span<'h>(&self, obj: ObjRef<'h>) -> &'h Span {
        obj.span
    }

    /// The type of an object.
    #[inline]
    pub fn object_type(&self, obj: ObjRef<'_>) -> TypeId {
        TypeId(self.span(obj).types[obj.slot as usize].load(Ordering::Relaxed))
    }

    /// Sets the object's mark bit; true if this call marked it (it was white).
    #[inline]
    pub fn try_mark(&self, obj: ObjRef<'_>) -> bool {
        let s = self.span(obj);
        s.mark.test_and_set(obj.slot as usize)
    }

    /// Whether the object is marked.
    #[inline]
    pub fn is_marked(&self, obj: ObjRef<'_>) -> bool {
        self.span(obj).mark.get(obj.slot as usize)
    }

    /// Sets the object's checkmark bit; true if this call set it.
    pub fn try_checkmark(&self, obj: ObjRef<'_>) -> bool {
        self.span(obj).checkmark.test_and_set(obj.slot as usize)
    }

    /// Clears every checkmark bit (before a checkmark pass).
    pub fn clear_checkmarks(&self) {
        for s in self.spans.iter().map(|(_, s)| s) {
            s.checkmark.clear_all();
        }
    }

    /// The word at heap address `addr` (which must lie in a span).
    #[inline]
    pub fn read_word(&self, obj: ObjRef<'_>, word: usize) -> u64 {
        let s = self.span(obj);
        s.words[(obj.base.offset_from(s.base)) / WORD + word].load(Ordering::Relaxed)
    }

    /// Starts loading the object's first words and its type id into the cache (a hint, for a
    /// marker that will scan it soon; see `mark::drain_until`).
    #[inline]
    pub fn prefetch(&self, obj: ObjRef<'_>) {
        let s = obj.span;
        prefetch(&s.words[obj.base.offset_from(s.base) / WORD]);
        prefetch(&s.types[obj.slot as usize]);
    }

    /// Starts loading the word holding the object's mark bit (for a marker that will test and
    /// set it soon; see `mark::drain_until`).
    #[inline]
    pub fn prefetch_mark(&self, obj: ObjRef<'_>) {
        prefetch(obj.span.mark.word(obj.slot as usize).0);
    }

    /// Writes word `word` of `obj`.
    #[inline]
    pub fn write_word(&self, obj: ObjRef<'_>, word: usize, value: u64) {
        let s = self.span(obj);
        s.words[(obj.base.offset_from(s.base)) / WORD + word].store(value, Ordering::Relaxed);
    }

    /// Atomically exchanges word `word` of `obj` for `value`; returns the old value.
    #[inline]
    pub fn swap_word(&self, obj: ObjRef<'_>, word: usize, value: u64) -> u64 {
        let s = self.span(obj);
        s.words[(obj.base.offset_from(s.base)) / WORD + word].swap(value, Ordering::AcqRel)
    }

    /// Calls `f(base, type)` for every allocated object (a stop-the-world walk, for tests and
    /// reports).
    pub fn for_each_object(&self, mut f: impl FnMut(ObjRef<'_>, TypeId)) {
        for (_, s) in self.spans.iter() {
            for slot in s.alloc.view().iter_ones() {
                let obj = ObjRef {
                    base: s.slot_addr(slot),
                    span: s,
                    slot: slot as u32,
                };
                f(obj, TypeId(s.types[slot].load(Ordering::Relaxed)));
            }
        }
    }

    /// Objects allocated now (alloc bits set).
    pub fn allocated_objects(&self) -> usize {
        self.spans.iter().map(|(_, s)| s.alloc.count_ones()).sum()
    }

    /// Returns the mcache's spans to the heap (Go's `mcache.releaseAll`), at mark termination.
    pub fn flush_mcache(&self, mcache: &mut MCache) {
        mcache.current.iter_mut().for_each(|c| *c = None);
    }

    /// Starts a new cycle's marking: clears the count of bytes allocated black. Call with the
    /// world stopped after sweep termination.
    pub fn start_mark(&self) {
        self.black_bytes.clear();
    }

    /// Ends marking: every mcache must have been flushed. Bumps `sweepgen`, makes every span
    /// unswept, and resets `heap_live` to the marked bytes: `by_markers` (what the markers'
    /// `GcWork`s counted) plus the bytes allocated black. Returns the marked bytes.
    pub fn finish_mark(&self, by_markers: u64) -> u64 {
        let marked = by_markers + self.black_bytes();
        self.sweepgen.fetch_add(2, Ordering::AcqRel);
        for c in &self.central {
            let mut c = lock(c);
            let Central {
                partial,
                unswept,
                all,
            } = &mut *c;
            partial.clear();
            unswept.clear();
            // Pop order is LIFO: reversed, spans are swept in address order.
            unswept.extend(all.iter().rev());
        }
        {
            let mut large = lock(&self.large);
            let mut live = std::mem::take(&mut large.partial);
            live.sort_unstable();
            large.unswept.extend(live);
        }
        self.heap_live.store(marked, Ordering::Relaxed);
        marked
    }

    /// Claims and sweeps span `span` if it is unswept; `None` if someone else has or is.
    fn try_sweep_span(
        &self,
        span: u32,
        mut on_free: impl FnMut(Addr, usize),
    ) -> Option<SweepStats> {
        let s = &self.spans[span as usize];
        let sg = self.sweepgen.load(Ordering::Acquire);
        s.sweepgen
            .compare_exchange(sg - 2, sg - 1, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let mut st = SweepStats {
            spans: 1,
            ..Default::default()
        };
        for (word_index, (a, m)) in s.alloc.words.iter().zip(&s.mark.words).enumerate() {
            let (alloc, mark) = (a.load(Ordering::Relaxed), m.load(Ordering::Relaxed));
            let mut freed = alloc & !mark;
            while freed != 0 {
                let slot = word_index * 64 + freed.trailing_zeros() as usize;
                freed &= freed - 1;
                on_free(s.slot_addr(slot), s.elem_size);
                st.objects += 1;
                st.bytes += s.elem_size as u64;
            }
            a.store(alloc & mark, Ordering::Relaxed);
            m.store(0, Ordering::Relaxed);
        }
        s.sweepgen.store(sg, Ordering::Release);
        Some(st)
    }

    /// Sweeps one unswept span (background sweeping, Go's `sweepone`), calling `on_free(addr,
    /// size)` for each freed object. `None` when nothing is left to sweep.
    pub fn sweep_one(&self, mut on_free: impl FnMut(Addr, usize)) -> Option<SweepStats> {
        for c in self.central.iter().chain(std::iter::once(&self.large)) {
            let mut central = lock(c);
            while let Some(span) = central.unswept.pop() {
                let Some(st) = self.try_sweep_span(span, &mut on_free) else {
                    continue;
                };
                let s = &self.spans[span as usize];
                if s.class.is_none() {
                    if s.alloc.count_ones() == 0 {
                        lock(&self.free_large).push(span);
                    } else {
                        central.partial.push(span);
                    }
                } else if self.has_free(span) {
                    central.partial.push(span);
                }
                return Some(st);
            }
        }
        None
    }

    /// Sweeps everything still unswept (Go's `finishsweep_m`, at sweep termination).
    pub fn finish_sweep(&self, mut on_free: impl FnMut(Addr, usize)) -> SweepStats {
        let mut total = SweepStats::default();
        while let Some(st) = self.sweep_one(&mut on_free) {
            total.spans += st.spans;
            total.objects += st.objects;
            total.bytes += st.bytes;
        }
        total
    }

    /// Bytes of address space spans occupy.
    pub fn span_bytes(&self) -> usize {
        self.spans.iter().map(|(_, s)| s.bytes()).sum()
    }

    /// Whether a checkmark pass is running.
    pub fn checkmark_active(&self) -> bool {
        self.checkmark_active.load(Ordering::Relaxed)
    }

    /// Sets whether a checkmark pass is running.
    pub fn set_checkmark_active(&self, on: bool) {
        self.checkmark_active.store(on, Ordering::Relaxed);
    }
}

/// The data segment: global pointer words, the heap's other roots.
#[derive(Debug)]
pub struct Globals {
    words: Box<[AtomicU64]>,
    /// The wbshadow copy of `words` (seed 000's shadow data segment); empty unless on.
    shadow: Box<[AtomicU64]>,
}

impl Globals {
    /// `n` global pointer words, all nil, with a shadow copy if `wbshadow`.
    pub fn new(n: usize, wbshadow: bool) -> Globals {
        let words = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Globals {
            words: words(n),
            shadow: words(if wbshadow { n } else { 0 }),
        }
    }

    /// The shadow of global `i`, if `wbshadow` is on.
    #[inline]
    pub fn shadow_word(&self, i: usize) -> Option<&AtomicU64> {
        self.shadow.get(i)
    }

    /// Bytes of shadow memory for the globals.
    pub fn shadow_bytes(&self) -> u64 {
        (self.shadow.len() * WORD) as u64
    }

    /// Number of globals.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The address of global `i`.
    pub fn addr(&self, i: usize) -> Addr {
        DATA_BASE.add(i * WORD)
    }

    /// Global `i`.
    #[inline]
    pub fn read(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::Relaxed)
    }

    /// Writes global `i` (the caller has run the write barrier).
    #[inline]
    pub fn write(&self, i: usize, v: u64) {
        self.words[i].store(v, Ordering::Relaxed);
    }
}

/// Locks a mutex, ignoring poisoning (a panic elsewhere already failed the run).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap() -> Heap {
        Heap::new(
            vec![
                ObjType::new("node", 4, &[0, 1]),
                ObjType::new("big", 5000, &[0]),
                ObjType::new("leaf", 1, &[]),
            ],
            64 << 20,
        )
    }

    #[test]
    fn size_classes_round_up_and_waste_at_most_an_eighth() {
        assert_eq!(Heap::size_class(8), Some(0));
        assert_eq!(CLASS_SIZES[Heap::size_class(33).unwrap() as usize], 48);
        assert_eq!(Heap::size_class(MAX_SMALL_SIZE + 8), None);
        for c in 0..CLASS_SIZES.len() as u8 {
            let n = Heap::class_npages(c) * PAGE_SIZE;
            assert!(n % CLASS_SIZES[c as usize] <= n / 8);
        }
    }

    #[test]
    fn div_mul_divides_exactly_at_every_offset_of_every_class_span() {
        for (c, &size) in CLASS_SIZES.iter().enumerate() {
            let m = div_mul(size);
            for off in 0..(Heap::class_npages(c as u8) * PAGE_SIZE) as u64 {
                assert_eq!(
                    (off * u64::from(m)) >> 32,
                    off / size as u64,
                    "class {c} ({size} B), offset {off}"
                );
            }
        }
    }

    #[test]
    fn find_object_maps_interior_words_to_the_base_and_rejects_free_slots() {
        let h = heap();
        let mut mc = MCache::new();
        let a = h.alloc(&mut mc, TypeId(0), false, |_, _| {}).unwrap();
        let b = h.alloc(&mut mc, TypeId(0), false, |_, _| {}).unwrap();
        assert_eq!(b.offset_from(a), 32);
        let Lookup::Object(o) = h.find_object(a.0 + 24) else {
            panic!("interior pointer")
        };
        assert_eq!(o.base, a);
        assert_eq!(h.object_type(o), TypeId(0));
        assert_eq!(h.find_object(b.0 + 32), Lookup::Free(b.add(32)));
        assert_eq!(h.find_object(0x1234), Lookup::NotHeap);
        assert_eq!(h.find_object(DATA_BASE.0), Lookup::NotHeap);
        let big = h.alloc(&mut mc, TypeId(1), false, |_, _| {}).unwrap();
        assert!(matches!(h.find_object(big.0 + 39_992), Lookup::Object(o) if o.base == big));
    }

    #[test]
    fn field_operand_k_names_pointer_field_k_mod_n() {
        let t = ObjType::new("t", 8, &[0, 2, 5]);
        assert_eq!(&*t.ptr_fields, &[0, 2, 5]);
        for k in 0..256 {
            assert_eq!(t.operand_fields[k], [0, 2, 5][k % 3], "operand {k}");
        }
        assert!(ObjType::new("scalars", 4, &[]).operand_fields.is_empty());
    }

    #[test]
    fn first_zero_from_agrees_with_a_bit_by_bit_search() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for len in [1, 63, 64, 65, 128, 200, 256] {
            let bits = Bits::new(len);
            for i in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bits.set(i, !x.is_multiple_of(4));
            }
            for from in 0..=len {
                let want = (from..len).find(|&i| !bits.get(i));
                assert_eq!(bits.first_zero_from(from), want, "len {len} from {from}");
            }
        }
    }

    #[test]
    fn sweep_frees_unmarked_objects_and_allocation_reuses_them() {
        let h = heap();
        let mut mc = MCache::new();
        let objs: Vec<Addr> = (0..1000)
            .map(|_| h.alloc(&mut mc, TypeId(0), false, |_, _| {}).unwrap())
            .collect();
        h.start_mark();
        let mut marked = 0;
        for (i, &a) in objs.iter().enumerate() {
            if i % 3 == 0
                && let Lookup::Object(o) = h.find_object(a.0)
            {
                assert!(h.try_mark(o));
                assert!(!h.try_mark(o), "marking twice reports once");
                marked += o.size();
            }
        }
        h.flush_mcache(&mut mc);
        assert_eq!(h.finish_mark(marked), 334 * 32);
        assert_eq!(h.heap_live(), 334 * 32);
        let mut freed = Vec::new();
        let st = h.finish_sweep(|a, sz| freed.push((a, sz)));
        assert_eq!(st.objects, 666);
        assert_eq!(freed.len(), 666);
        assert_eq!(h.allocated_objects(), 334);
        for (i, &a) in objs.iter().enumerate() {
            let live = matches!(h.find_object(a.0), Lookup::Object(_));
            assert_eq!(live, i % 3 == 0);
        }
        let span_bytes = h.span_bytes();
        for _ in 0..666 {
            h.alloc(&mut mc, TypeId(0), false, |_, _| {}).unwrap();
        }
        assert_eq!(h.span_bytes(), span_bytes, "freed slots were reused");
        assert!(h.sweep_one(|_, _| {}).is_none(), "each span swept once");
    }

    #[test]
    fn black_allocation_survives_the_cycle_it_was_made_in() {
        let h = heap();
        let mut mc = MCache::new();
        h.start_mark();
        let a = h.alloc(&mut mc, TypeId(2), true, |_, _| {}).unwrap();
        h.flush_mcache(&mut mc);
        assert_eq!(h.finish_mark(0), 8);
        h.finish_sweep(|_, _| {});
        assert!(matches!(h.find_object(a.0), Lookup::Object(_)));
        // The next cycle it is white again.
        h.start_mark();
        h.finish_mark(0);
        assert_eq!(h.finish_sweep(|_, _| {}).objects, 1);
    }

    #[test]
    fn large_objects_get_their_own_span_and_are_reused_when_freed() {
        let h = heap();
        let mut mc = MCache::new();
        let a = h.alloc(&mut mc, TypeId(1), false, |_, _| {}).unwrap();
        h.start_mark();
        h.flush_mcache(&mut mc);
        h.finish_mark(0);
        assert_eq!(h.finish_sweep(|_, _| {}).bytes, 40_960);
        let b = h.alloc(&mut mc, TypeId(1), false, |_, _| {}).unwrap();
        assert_eq!(a, b, "the freed span is reused");
    }

    #[test]
    fn objects_are_zeroed_and_the_heap_limit_is_an_error() {
        let h = Heap::new(vec![ObjType::new("big", 4096, &[])], 64 << 10);
        let mut mc = MCache::new();
        let a = h.alloc(&mut mc, TypeId(0), false, |_, _| {}).unwrap();
        let Lookup::Object(o) = h.find_object(a.0) else {
            panic!()
        };
        h.write_word(o, 3, 77);
        assert_eq!(h.read_word(o, 3), 77);
        // 64 KiB holds two 32 KiB objects: the third allocation finds no room.
        assert!(h.alloc(&mut mc, TypeId(0), false, |_, _| {}).is_ok());
        assert!(matches!(
            h.alloc(&mut mc, TypeId(0), false, |_, _| {}),
            Err(HeapError::OutOfMemory { .. })
        ));
        assert!(matches!(
            h.alloc(&mut mc, TypeId(9), false, |_, _| {}),
            Err(HeapError::BadType(_))
        ));
    }
}
