//! Debug knobs and fault injection: one parser for `--debug "gctrace=1,gccheckmark=1"` and the
//! `STKBAR_DEBUG` environment variable, with Go's `GODEBUG` names, and one for `--inject
//! "wb-drop=0.01,rescan-skip=0.1"`, the deliberate bugs the checkers must catch.
//!
//! Invariant: a knob or inject string either parses completely into [`DebugKnobs`] / [`Inject`] or
//! is rejected with a one-line error naming the bad item and listing what is valid; nothing is
//! half-applied. Items are `name=value`, comma-separated, spaces around either ignored; an empty
//! string means the defaults; an empty item (`a=1,,b=1`, a trailing comma) is an error. A later
//! item overrides an earlier one of the same name, as in Go's `parsedebugvars`.
//!
//! The knobs, as in Go: `gctrace=1|2`, `gccheckmark=1`, `wbshadow=1|2` (seed 000: a shadow copy
//! of every heap and global pointer word, checked at every barriered store; `2` also checks every
//! word the checkmark walk scans, so it runs that walk each cycle), `stackshadow=1` (ours: every
//! frame a re-scan skips must be unchanged since the concurrent scan), `gcstackbarrieroff=1`,
//! `gcstackbarrierall=1`, `allocfreetrace=1` (a line per allocation and free) and `invalidptr`
//! (on by default: a pointer slot holding a first-page or poison value is fatal). Their lines go
//! to stderr through [`debug_line`], which never fails the run: as Go's runtime `print`, it drops
//! what a closed or full stderr cannot take.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes one debug line (`gctrace`, `allocfreetrace`) to stderr. An error writing it (a closed
/// pipe, a full disk) is dropped, as Go's runtime `print` drops it: the run and its results go on.
pub fn debug_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The knobs, with Go's meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DebugKnobs {
    /// `gctrace=1`: one line per cycle on stderr, in Go's shape, plus the re-scan figures.
    pub gctrace: u32,
    /// `gccheckmark=1`: after mark termination, mark again from every root with the world stopped
    /// and fail on any reachable object the real mark missed.
    pub gccheckmark: bool,
    /// `wbshadow=1`: keep a shadow copy of every heap and global pointer word and check it at each
    /// barriered store (a store that bypassed the barrier shows as a word that differs from its
    /// shadow); `wbshadow=2` also checks every word the checkmark walk scans.
    pub wbshadow: u32,
    /// `stackshadow=1` (ours): record what each concurrent stack scan saw and, at mark
    /// termination, fail on any frame the re-scan skipped that changed since (see `stackshadow`).
    pub stackshadow: bool,
    /// `gcstackbarrieroff=1`: install no stack barriers.
    pub gcstackbarrieroff: bool,
    /// `gcstackbarrierall=1`: a stack barrier on every frame.
    pub gcstackbarrierall: bool,
    /// `allocfreetrace=1`: one line on stderr per allocation (with a short traceback of the
    /// allocating goroutine) and per free found by sweep.
    pub allocfreetrace: bool,
    /// `invalidptr=1` (default): a pointer slot holding a value in the first page, or a heap
    /// address outside every allocated object, is a fatal error. Poison values are fatal always.
    pub invalidptr: bool,
}

impl Default for DebugKnobs {
    fn default() -> Self {
        DebugKnobs {
            gctrace: 0,
            gccheckmark: false,
            wbshadow: 0,
            stackshadow: false,
            gcstackbarrieroff: false,
            gcstackbarrierall: false,
            allocfreetrace: false,
            invalidptr: true,
        }
    }
}

/// The knob names, for messages.
pub const KNOBS: &str = "gctrace=0|1|2, gccheckmark=0|1, wbshadow=0|1|2, stackshadow=0|1, \
                         gcstackbarrieroff=0|1, gcstackbarrierall=0|1, allocfreetrace=0|1, \
                         invalidptr=0|1";

/// A knob string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad debug knob {item:?}: {why} (valid knobs: {KNOBS})")]
pub struct KnobError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Splits `s` into `(item, name, value)` triples; an empty or malformed item is an error `why`.
fn items(s: &str) -> impl Iterator<Item = Result<(&str, &str, &str), (&str, &'static str)>> {
    let empty = s.trim().is_empty();
    s.split(',').filter(move |_| !empty).map(|item| {
        if item.trim().is_empty() {
            return Err((item, "empty item (a stray comma?)"));
        }
        let (name, value) = item.split_once('=').ok_or((item, "expected name=value"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err((item, "empty name"));
        }
        if value.is_empty() {
            return Err((item, "empty value"));
        }
        Ok((item, name, value))
    })
}

impl DebugKnobs {
    /// Parses a knob string on top of the defaults.
    pub fn parse(s: &str) -> Result<DebugKnobs, KnobError> {
        let mut k = DebugKnobs::default();
        for item in items(s) {
            let (item, name, value) = item.map_err(|(item, why)| KnobError {
                item: item.to_owned(),
                why,
            })?;
            let err = |why| KnobError {
                item: item.to_owned(),
                why,
            };
            let value: u32 = value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.parse().ok())
                .flatten()
                .ok_or_else(|| err("the value must be a non-negative integer"))?;
            let flag = |v: u32| match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(err("the value must be 0 or 1")),
            };
            let level = |v: u32| match v {
                0..=2 => Ok(v),
                _ => Err(err("the value must be 0, 1 or 2")),
            };
            match name {
                "gctrace" => k.gctrace = level(value)?,
                "gccheckmark" => k.gccheckmark = flag(value)?,
                "wbshadow" => k.wbshadow = level(value)?,
                "stackshadow" => k.stackshadow = flag(value)?,
                "gcstackbarrieroff" => k.gcstackbarrieroff = flag(value)?,
                "gcstackbarrierall" => k.gcstackbarrierall = flag(value)?,
                "allocfreetrace" => k.allocfreetrace = flag(value)?,
                "invalidptr" => k.invalidptr = flag(value)?,
                _ => return Err(err("unknown knob")),
            }
        }
        if k.gcstackbarrieroff && k.gcstackbarrierall {
            return Err(KnobError {
                item: s.to_owned(),
                why: "gcstackbarrieroff and gcstackbarrierall contradict each other",
            });
        }
        Ok(k)
    }

    /// The knobs from `flag` if given, else from `STKBAR_DEBUG`, else the defaults. A
    /// `STKBAR_DEBUG` that is not UTF-8 is an error, not the defaults: no knob string is ignored.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<DebugKnobs, KnobError> {
        match flag {
            Some(s) => DebugKnobs::parse(s),
            None => match std::env::var("STKBAR_DEBUG") {
                Ok(s) => DebugKnobs::parse(&s),
                Err(std::env::VarError::NotPresent) => Ok(DebugKnobs::default()),
                Err(std::env::VarError::NotUnicode(s)) => Err(KnobError {
                    item: s.to_string_lossy().into_owned(),
                    why: "STKBAR_DEBUG is not UTF-8",
                }),
            },
        }
    }

    /// Whether mark termination runs the checkmark walk: `gccheckmark=1`, or `wbshadow=2`, which
    /// checks the shadow of every word that walk scans.
    pub fn checkmark_walk(&self) -> bool {
        self.gccheckmark || self.wbshadow >= 2
    }
}

impl fmt::Display for DebugKnobs {
    /// The knob string that parses back to these knobs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gctrace={},gccheckmark={},wbshadow={},stackshadow={},gcstackbarrieroff={},\
             gcstackbarrierall={},allocfreetrace={},invalidptr={}",
            self.gctrace,
            u8::from(self.gccheckmark),
            self.wbshadow,
            u8::from(self.stackshadow),
            u8::from(self.gcstackbarrieroff),
            u8::from(self.gcstackbarrierall),
            u8::from(self.allocfreetrace),
            u8::from(self.invalidptr)
        )
    }
}

/// Faults injected on purpose so a run can show that its checkers catch them (ARCHITECTURE.md §7's
/// `--inject`). Each is a seeded fraction: the same configuration and seed drop the same
/// barriers, whatever checkers are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Inject {
    /// `wb-drop=F`: skip the write barrier — the shading and the wbshadow update — at a fraction
    /// F of heap and global pointer stores (the store itself still happens).
    pub wb_drop: f64,
    /// `rescan-skip=F`: skip a fraction F of the frames a mark-termination re-scan should visit.
    pub rescan_skip: f64,
    /// `bound-short=N`: every mark-termination re-scan stops N frames below its bound.
    pub bound_short: u32,
    /// `hit-lost=F`: a fraction F of stack-barrier hits never reach the collector's view of
    /// `stkbar_pos` (the goroutine's own returns are unaffected), so the re-scan bound lags.
    pub hit_lost: f64,
    /// `unwind-skip=F`: a fraction F of bulk writes into the goroutine's own stack skip
    /// `gcUnwindBarriers`, and a fraction F of multi-frame unwinds pass their barriers without the
    /// collector's view of `stkbar_pos` following.
    pub unwind_skip: f64,
}

/// The inject names, for messages.
pub const INJECTS: &str = "wb-drop=F, rescan-skip=F, hit-lost=F, unwind-skip=F (F a fraction in \
                           [0, 1]), bound-short=N (N frames, 0 to 1000)";

/// An inject string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad --inject item {item:?}: {why} (valid: {INJECTS})")]
pub struct InjectError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Inject {
    /// Parses an inject string (empty: nothing injected).
    pub fn parse(s: &str) -> Result<Inject, InjectError> {
        let mut inject = Inject::default();
        for item in items(s) {
            let (item, name, value) = item.map_err(|(item, why)| InjectError {
                item: item.to_owned(),
                why,
            })?;
            let err = |why| InjectError {
                item: item.to_owned(),
                why,
            };
            if name == "bound-short" {
                inject.bound_short = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| err("the value must be a number of frames, 0 to 1000"))?;
                continue;
            }
            let f: f64 = value
                .parse()
                .map_err(|_| err("the value must be a number"))?;
            if !(0.0..=1.0).contains(&f) {
                return Err(err("the fraction must lie in [0, 1]"));
            }
            match name {
                "wb-drop" => inject.wb_drop = f,
                "rescan-skip" => inject.rescan_skip = f,
                "hit-lost" => inject.hit_lost = f,
                "unwind-skip" => inject.unwind_skip = f,
                _ => return Err(err("unknown fault")),
            }
        }
        Ok(inject)
    }

    /// Whether a fault that changes what mark termination's re-scans shade is injected: the
    /// runtime then keeps stackshadow's records even with the checker off, to count the skipped
    /// frames that changed (the faults that took effect where it matters).
    pub fn rescan_faults(&self) -> bool {
        self.rescan_skip > 0.0
            || self.bound_short > 0
            || self.hit_lost > 0.0
            || self.unwind_skip > 0.0
    }

    /// Whether anything is injected.
    pub fn any(&self) -> bool {
        self.wb_drop > 0.0
            || self.rescan_skip > 0.0
            || self.bound_short > 0
            || self.hit_lost > 0.0
            || self.unwind_skip > 0.0
    }
}

impl fmt::Display for Inject {
    /// The inject string that parses back to this.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wb-drop={},rescan-skip={},bound-short={},hit-lost={},unwind-skip={}",
            self.wb_drop, self.rescan_skip, self.bound_short, self.hit_lost, self.unwind_skip
        )
    }
}

/// A barrier `--inject wb-drop` skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DroppedBarrier {
    /// The store's index among the run's heap and global pointer stores.
    pub store: u64,
    /// The word stored to.
    pub addr: u64,
    /// The value stored, unshaded and unshadowed.
    pub new: u64,
    /// The storing goroutine.
    pub goid: u64,
}

/// What the injected faults did since a point: each fault's count of the times it took effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Barriers `wb-drop` skipped.
    pub wb_dropped: u64,
    /// Re-scan frames `rescan-skip` left unshaded.
    pub rescan_frames_skipped: u64,
    /// Re-scans a bound fault (`bound-short`, or the lag `hit-lost` and `unwind-skip` leave)
    /// made cover fewer frames than the true bound.
    pub rescans_shortened: u64,
    /// Barrier hits `hit-lost` kept from the collector.
    pub hits_lost: u64,
    /// Bulk writes and multi-frame unwinds whose barrier pass `unwind-skip` skipped or hid
    /// (counted only when there were barriers to pass).
    pub unwinds_skipped: u64,
}

/// What the injected faults did, and the store clock reports are timed by: heap and global
/// pointer stores are counted while a barrier may be dropped or wbshadow is on (otherwise the
/// store path does not pay for the count).
#[derive(Debug, Default)]
pub struct FaultLog {
    stores: AtomicU64,
    dropped: Mutex<Vec<DroppedBarrier>>,
    frames_skipped: AtomicU64,
    rescans_shortened: AtomicU64,
    hits_lost: AtomicU64,
    unwinds_skipped: AtomicU64,
    /// The counts at the last [`FaultLog::since_last_report`].
    reported: Mutex<FaultCounts>,
}

impl FaultLog {
    /// Counts one heap or global pointer store; returns its index.
    #[inline]
    pub fn next_store(&self) -> u64 {
        self.stores.fetch_add(1, Ordering::Relaxed)
    }

    /// Heap and global pointer stores counted so far.
    pub fn stores(&self) -> u64 {
        self.stores.load(Ordering::Relaxed)
    }

    /// Records a dropped barrier.
    pub fn note_dropped(&self, d: DroppedBarrier) {
        crate::heap::lock(&self.dropped).push(d);
    }

    /// Every dropped barrier so far, in the order they were dropped.
    pub fn dropped(&self) -> Vec<DroppedBarrier> {
        crate::heap::lock(&self.dropped).clone()
    }

    /// How many barriers were dropped so far.
    pub fn dropped_count(&self) -> u64 {
        crate::heap::lock(&self.dropped).len() as u64
    }

    /// Records `n` re-scan frames skipped.
    pub fn note_frames_skipped(&self, n: u64) {
        self.frames_skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a re-scan a bound fault shortened.
    pub fn note_rescan_shortened(&self) {
        self.rescans_shortened.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a barrier hit kept from the collector.
    pub fn note_hit_lost(&self) {
        self.hits_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a bulk write or unwind whose barrier pass was skipped or hidden.
    pub fn note_unwind_skipped(&self) {
        self.unwinds_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Every count so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            wb_dropped: self.dropped_count(),
            rescan_frames_skipped: self.frames_skipped.load(Ordering::Relaxed),
            rescans_shortened: self.rescans_shortened.load(Ordering::Relaxed),
            hits_lost: self.hits_lost.load(Ordering::Relaxed),
            unwinds_skipped: self.unwinds_skipped.load(Ordering::Relaxed),
        }
    }

    /// The counts since the last call (each mark termination reports them in its cycle's row,
    /// so no fault falls between two rows).
    pub fn since_last_report(&self) -> FaultCounts {
        let now = self.counts();
        let mut last = crate::heap::lock(&self.reported);
        let since = FaultCounts {
            wb_dropped: now.wb_dropped - last.wb_dropped,
            rescan_frames_skipped: now.rescan_frames_skipped - last.rescan_frames_skipped,
            rescans_shortened: now.rescans_shortened - last.rescans_shortened,
            hits_lost: now.hits_lost - last.hits_lost,
            unwinds_skipped: now.unwinds_skipped - last.unwinds_skipped,
        };
        *last = now;
        since
    }
}

/// Whether the `n`-th event of stream `stream` under `seed` is one of a seeded fraction
/// `fraction` of events: a stateless hash (splitmix64), so drawing it perturbs no other random
/// stream and the same events are chosen whatever else the run does.
pub fn seeded_fraction(seed: u64, stream: u64, n: u64, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(n.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64) < fraction * (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_parse_and_print_back() {
        let k = DebugKnobs::parse("gctrace=1, gccheckmark=1,invalidptr=0, wbshadow = 2").unwrap();
        assert_eq!(k.gctrace, 1);
        assert_eq!(k.wbshadow, 2);
        assert!(k.gccheckmark && !k.invalidptr && !k.allocfreetrace);
        assert_eq!(DebugKnobs::parse(&k.to_string()).unwrap(), k);
        assert_eq!(DebugKnobs::parse("").unwrap(), DebugKnobs::default());
        assert_eq!(DebugKnobs::parse("  ").unwrap(), DebugKnobs::default());
        assert!(
            DebugKnobs::default().invalidptr,
            "invalidptr is on by default"
        );
        assert_eq!(
            DebugKnobs::parse("gctrace=1,gctrace=0").unwrap().gctrace,
            0,
            "the last item wins"
        );
        assert!(
            DebugKnobs::parse("allocfreetrace=1")
                .unwrap()
                .allocfreetrace
        );
        let k = DebugKnobs::parse("stackshadow=1").unwrap();
        assert!(k.stackshadow);
        assert_eq!(DebugKnobs::parse(&k.to_string()).unwrap(), k);
    }

    #[test]
    fn wbshadow_2_runs_the_checkmark_walk() {
        assert!(DebugKnobs::parse("wbshadow=2").unwrap().checkmark_walk());
        assert!(!DebugKnobs::parse("wbshadow=1").unwrap().checkmark_walk());
        assert!(DebugKnobs::parse("gccheckmark=1").unwrap().checkmark_walk());
    }

    /// Bad knob strings, each rejected with one line naming every valid knob. The testbed's CLI
    /// test runs the same list through the binary (exit code 2).
    pub(crate) const BAD_KNOBS: &[&str] = &[
        "gctrace",
        "gctrace=",
        "gctrace=x",
        "gctrace=-1",
        "gctrace=3",
        "gctrace=1.5",
        "gctrace=99999999999999999999",
        "nosuch=1",
        "GCTRACE=1",
        "gccheckmark=2",
        "wbshadow=3",
        "wbshadow=yes",
        "allocfreetrace=2",
        "invalidptr=on",
        "=1",
        "gctrace=1,",
        ",gctrace=1",
        "gctrace=1,,gccheckmark=1",
        ",",
        "gcstackbarrieroff=1,gcstackbarrierall=1",
        "gctrace=1;gccheckmark=1",
        "gctrace==1",
        "wbshadow=1 2",
        "gctrace=+1",
    ];

    #[test]
    fn bad_knob_strings_are_one_line_errors() {
        assert!(BAD_KNOBS.len() >= 20);
        for bad in BAD_KNOBS {
            let e = DebugKnobs::parse(bad).unwrap_err().to_string();
            assert!(
                !e.contains('\n') && e.contains("valid knobs") && e.contains("wbshadow"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn inject_specs_parse_and_reject_bad_items() {
        let i = Inject::parse("wb-drop=0.01, rescan-skip=0.5").unwrap();
        assert_eq!((i.wb_drop, i.rescan_skip), (0.01, 0.5));
        assert_eq!(Inject::parse(&i.to_string()).unwrap(), i);
        let i = Inject::parse("bound-short=2,hit-lost=0.25,unwind-skip=1").unwrap();
        assert_eq!((i.bound_short, i.hit_lost, i.unwind_skip), (2, 0.25, 1.0));
        assert_eq!(Inject::parse(&i.to_string()).unwrap(), i);
        assert!(Inject::parse("bound-short=1").unwrap().any());
        assert!(!Inject::parse("").unwrap().any());
        assert!(Inject::parse("wb-drop=1e-3").unwrap().any());
        for bad in [
            "wb-drop",
            "wb-drop=",
            "wb-drop=x",
            "wb-drop=1.5",
            "wb-drop=-0.1",
            "wb-drop=NaN",
            "wb_drop=0.1",
            "rescan-skip=2",
            "hit-lost=1.01",
            "bound-short=0.5",
            "bound-short=-1",
            "bound-short=1001",
            "wb-drop=0.1,",
            "nosuch=0.1",
        ] {
            let e = Inject::parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains("wb-drop=F"), "{bad}: {e}");
        }
    }

    #[test]
    fn seeded_fraction_is_stateless_and_close_to_its_fraction() {
        let hits = (0..100_000)
            .filter(|&n| seeded_fraction(7, 3, n, 0.01))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(
            (0..1000)
                .map(|n| seeded_fraction(7, 3, n, 0.3))
                .collect::<Vec<_>>(),
            (0..1000)
                .map(|n| seeded_fraction(7, 3, n, 0.3))
                .collect::<Vec<_>>()
        );
        assert!((0..1000).all(|n| !seeded_fraction(7, 3, n, 0.0)));
        assert!((0..1000).all(|n| seeded_fraction(7, 3, n, 1.0)));
    }
}
