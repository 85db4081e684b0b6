//! Minimum mutator utilization (MMU): for a window length w, the worst fraction of processor time
//! left to the mutator over any w-long stretch of the run — the figure GC papers compare collectors
//! by, and the one Go's `internal/trace` computes (`MutatorUtilization`, `MMUCurve`).
//!
//! Invariant: a run has `procs` Ps. At an instant t a P is either doing GC work (a mark worker, a
//! GC assist: an interval it recorded in its [`GcTimeline`]) or not; idle time counts as mutator
//! time, as in Go's trace tooling. During a stop-the-world pause every P counts as doing GC, and a
//! P whose own GC interval overlaps the pause counts once. The mutator utilization is then
//! `u(t) = 1 - gc_ps(t)/procs`, and `MMU(w)` is the least mean of `u` over every window
//! `[t, t+w]` that lies inside the run's span. Windows longer than the span have no value and are
//! left out of the curve.
//!
//! Three curves come from one run ([`mmu_curves`]), differing only in which intervals count as GC:
//! `mmu` counts everything (workers, assists, idle workers, pauses); `mmu_excl_idle` counts an idle
//! P's marking (Go's idle worker, which runs only when the P has nothing else to run) as the idle
//! time it replaced, so it measures what the collector took from a mutator that wanted the P; and
//! `mmu_pause_only` counts the stop-the-world pauses alone, the reference a pause-time figure
//! implies. Every interval counted by a later curve is counted by an earlier one, so
//! `mmu ≤ mmu_excl_idle ≤ mmu_pause_only` at every window.
//!
//! Algorithm: one pass over the start and end events of every P's intervals and of the pauses,
//! clipped to the span and sorted by time, turns `gc_ps` into a piecewise-constant function —
//! breakpoints `bp[0] = span.0 < … < bp[B] = span.1` with a count per segment — and prefix sums
//! give the GC time (ns × Ps) from the span's start to each breakpoint. The GC time inside a
//! sliding window is piecewise linear in its start t, with kinks only where the window's start or
//! its end crosses a breakpoint; its maximum (the MMU's minimum) is therefore attained with the
//! window's start or its end on a breakpoint, and those 2(B+1) positions, which include both ends
//! of the range of starts, are the only ones tried. Taken in breakpoint order, the window's other
//! end only moves forward, so a cursor walking the breakpoints finds its segment without a search:
//! O(B) per window after O(n log n) to sort the n intervals' events. All integrals are exact
//! integers (u128 ns × Ps); only the final ratio is a float.

use serde::Serialize;

/// One P's GC intervals, recorded as they happen.
///
/// The intervals are half-open `[start_ns, end_ns)` in nanoseconds since the run's origin, kept
/// sorted and disjoint: an interval that touches or overlaps the previous one is merged into it.
#[derive(Clone, Debug, Default)]
pub struct GcTimeline {
    intervals: Vec<(u64, u64)>,
    /// Start of the last non-empty interval pushed, to check the arrival order in debug builds.
    last_start_ns: u64,
}

impl GcTimeline {
    /// An empty timeline: the P has done no GC work yet.
    pub fn new() -> GcTimeline {
        GcTimeline::default()
    }

    /// Records GC work on this P over `[start_ns, end_ns)`; ignores empty intervals; merges with
    /// the previous interval when they touch or overlap (intervals arrive in non-decreasing start
    /// order per P; asserted in debug builds).
    pub fn push(&mut self, start_ns: u64, end_ns: u64) {
        if end_ns <= start_ns {
            return;
        }
        debug_assert!(
            self.intervals.is_empty() || start_ns >= self.last_start_ns,
            "GC interval [{start_ns}, {end_ns}) starts before the previous one at {}",
            self.last_start_ns
        );
        self.last_start_ns = start_ns;
        match self.intervals.last_mut() {
            Some(last) if start_ns <= last.1 => last.1 = last.1.max(end_ns),
            _ => self.intervals.push((start_ns, end_ns)),
        }
    }

    /// The intervals, sorted and disjoint.
    pub fn intervals(&self) -> &[(u64, u64)] {
        &self.intervals
    }

    /// Total GC nanoseconds.
    pub fn gc_ns(&self) -> u64 {
        self.intervals.iter().map(|&(start, end)| end - start).sum()
    }
}

/// One window of the three MMU curves (see the module comment for what each counts as GC).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MmuPoint {
    /// The window length, in nanoseconds.
    pub window_ns: u64,
    /// The least mutator utilization over any window of that length, in `[0, 1]`, with every GC
    /// interval counted: workers (idle ones included), assists and pauses.
    pub mmu: f64,
    /// The same with idle workers' marking counted as the idle time it filled.
    pub mmu_excl_idle: f64,
    /// The same with only the stop-the-world pauses counted.
    pub mmu_pause_only: f64,
}

/// The windows `testbed --json` reports: 100 µs to 1 s in 1-2-5 steps (100µs, 200µs, 500µs, 1ms,
/// 2ms, 5ms, 10ms, 20ms, 50ms, 100ms, 200ms, 500ms, 1s).
pub const MMU_WINDOWS_NS: [u64; 13] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
];

/// The three MMU curves of a run, for each window in `windows_ns` (in order, omitting windows
/// longer than the span, and windows of 0 ns).
///
/// `work[p]` holds P p's GC intervals other than idle marking, `idle_mark[p]` its idle workers'
/// (the two slices have one entry per P; `procs` is their length, and with no Ps the curves are
/// empty), `stw` the stop-the-world pauses, sorted and disjoint, and `span` the run's
/// `[start, end]`, all in nanoseconds since the run's origin.
pub fn mmu_curves(
    work: &[&[(u64, u64)]],
    idle_mark: &[&[(u64, u64)]],
    stw: &[(u64, u64)],
    span: (u64, u64),
    windows_ns: &[u64],
) -> Vec<MmuPoint> {
    assert_eq!(work.len(), idle_mark.len(), "one idle timeline per P");
    let every: Vec<Vec<(u64, u64)>> = work
        .iter()
        .zip(idle_mark)
        .map(|(w, i)| w.iter().chain(i.iter()).copied().collect())
        .collect();
    let every: Vec<&[(u64, u64)]> = every.iter().map(Vec::as_slice).collect();
    let none: Vec<&[(u64, u64)]> = vec![&[]; work.len()];
    let all = utilization(&every, stw, span, windows_ns);
    let excl_idle = utilization(work, stw, span, windows_ns);
    let pause_only = utilization(&none, stw, span, windows_ns);
    all.iter()
        .zip(&excl_idle)
        .zip(&pause_only)
        .map(
            |((&(window_ns, mmu), &(_, mmu_excl_idle)), &(_, mmu_pause_only))| MmuPoint {
                window_ns,
                mmu,
                mmu_excl_idle,
                mmu_pause_only,
            },
        )
        .collect()
}

/// One MMU curve: `(window, MMU)` for each window in `windows_ns` (in order, omitting windows
/// longer than the span, and windows of 0 ns).
///
/// `per_p` holds each P's GC intervals (`procs` is `per_p.len()`; with no Ps the curve is empty;
/// a P's intervals may overlap or touch: it is counted once), `stw` the stop-the-world pauses,
/// sorted and disjoint, and `span` the run's `[start, end]`, all in nanoseconds since the run's
/// origin. Intervals reaching outside the span are clipped to it.
pub fn utilization(
    per_p: &[&[(u64, u64)]],
    stw: &[(u64, u64)],
    span: (u64, u64),
    windows_ns: &[u64],
) -> Vec<(u64, f64)> {
    if per_p.is_empty() || span.1 <= span.0 {
        return Vec::new();
    }
    let profile = GcProfile::build(per_p, stw, span);
    let procs = per_p.len() as u128;
    windows_ns
        .iter()
        .filter(|&&w| w > 0 && w <= span.1 - span.0)
        .map(|&w| {
            let capacity = u128::from(w) * procs;
            let mutator = capacity - profile.max_gc_in_window(w);
            (w, mutator as f64 / capacity as f64)
        })
        .collect()
}

/// `gc_ps` over the span as a piecewise-constant function, with its running integral.
struct GcProfile {
    /// Breakpoints `bp[0] = span.0 < … < bp[B] = span.1`.
    bp: Vec<u64>,
    /// `gc_ps[i]`: the number of Ps doing GC on `[bp[i], bp[i+1])`; neighbours differ.
    gc_ps: Vec<u32>,
    /// `gc_time[i]`: GC time (ns × Ps) over `[bp[0], bp[i])`.
    gc_time: Vec<u128>,
}

impl GcProfile {
    /// Builds the profile from the start and end events of every clipped interval, in time order.
    /// The pauses are one more source beside the Ps: while one is open the count is `procs`,
    /// whatever the Ps recorded, so a P's interval overlapping a pause is counted once. Each
    /// source keeps a depth, so a P is counted once even if its own intervals overlap.
    fn build(per_p: &[&[(u64, u64)]], stw: &[(u64, u64)], span: (u64, u64)) -> GcProfile {
        let procs = per_p.len();
        let stw_source = procs;
        let clip = |&(start, end): &(u64, u64)| (start.max(span.0), end.min(span.1));

        // (time, source, +1 for a start or -1 for an end)
        let mut events: Vec<(u64, usize, i32)> = Vec::new();
        let sources = per_p
            .iter()
            .enumerate()
            .flat_map(|(p, intervals)| intervals.iter().map(move |iv| (p, iv)))
            .chain(stw.iter().map(|iv| (stw_source, iv)));
        for (source, interval) in sources {
            let (start, end) = clip(interval);
            if start < end {
                events.push((start, source, 1));
                events.push((end, source, -1));
            }
        }
        events.sort_unstable_by_key(|&(t, _, _)| t);

        let mut depth = vec![0u32; procs + 1];
        let mut ps_in_gc = 0u32;
        let mut bp = vec![span.0];
        let mut gc_ps = vec![0u32];
        let mut i = 0;
        while i < events.len() && events[i].0 < span.1 {
            let t = events[i].0;
            while i < events.len() && events[i].0 == t {
                let (_, source, delta) = events[i];
                let was_in_gc = depth[source] > 0;
                depth[source] = depth[source].wrapping_add_signed(delta);
                if source != stw_source && was_in_gc != (depth[source] > 0) {
                    ps_in_gc = ps_in_gc.wrapping_add_signed(delta);
                }
                i += 1;
            }
            let count = if depth[stw_source] > 0 {
                procs as u32
            } else {
                ps_in_gc
            };
            if t == span.0 {
                gc_ps[0] = count;
            } else if gc_ps.last() != Some(&count) {
                bp.push(t);
                gc_ps.push(count);
            }
        }
        bp.push(span.1);

        let mut gc_time = Vec::with_capacity(bp.len());
        gc_time.push(0u128);
        for (seg, &count) in bp.windows(2).zip(&gc_ps) {
            let prev = gc_time[gc_time.len() - 1];
            gc_time.push(prev + u128::from(seg[1] - seg[0]) * u128::from(count));
        }
        GcProfile { bp, gc_ps, gc_time }
    }

    /// The most GC time inside any window of `w` ns lying in the span (`0 < w ≤` the span): the
    /// window is tried with its start on each breakpoint and with its end on each breakpoint. The
    /// window's other end moves forward as the breakpoints do, so a [`GcCursor`] follows it.
    fn max_gc_in_window(&self, w: u64) -> u128 {
        let first_start = self.bp[0];
        let last_start = self.bp[self.bp.len() - 1] - w;
        let mut window_end = GcCursor::new(self);
        let mut window_start = GcCursor::new(self);
        let mut max_gc = 0;
        for (i, &b) in self.bp.iter().enumerate() {
            if b <= last_start {
                max_gc = max_gc.max(window_end.gc_time_until(b + w) - self.gc_time[i]);
            }
            if b >= first_start + w {
                max_gc = max_gc.max(self.gc_time[i] - window_start.gc_time_until(b - w));
            }
        }
        max_gc
    }
}

/// Evaluates the GC time up to instants that never move backwards, walking the breakpoints rather
/// than searching them: O(B) over a whole pass.
struct GcCursor<'a> {
    profile: &'a GcProfile,
    /// The segment the last instant fell in.
    seg: usize,
}

impl<'a> GcCursor<'a> {
    fn new(profile: &'a GcProfile) -> GcCursor<'a> {
        GcCursor { profile, seg: 0 }
    }

    /// GC time (ns × Ps) over `[span.0, t)`, for `t` inside the span and no earlier than the last
    /// instant asked for.
    fn gc_time_until(&mut self, t: u64) -> u128 {
        let GcProfile { bp, gc_ps, gc_time } = self.profile;
        debug_assert!(bp[self.seg] <= t && t <= bp[bp.len() - 1]);
        while self.seg < gc_ps.len() && bp[self.seg + 1] <= t {
            self.seg += 1;
        }
        match gc_ps.get(self.seg) {
            Some(&count) => gc_time[self.seg] + u128::from(t - bp[self.seg]) * u128::from(count),
            None => gc_time[self.seg], // t is the span's end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn curve(per_p: &[&[(u64, u64)]], stw: &[(u64, u64)], span: (u64, u64), w: &[u64]) -> Vec<f64> {
        utilization(per_p, stw, span, w)
            .iter()
            .map(|p| p.1)
            .collect()
    }

    #[test]
    fn stw_pause_on_one_p() {
        let got = curve(
            &[&[]],
            &[(3 * MS, 4 * MS)],
            (0, 10 * MS),
            &[MS, 2 * MS, 10 * MS],
        );
        assert_eq!(got, [0.0, 0.5, 0.9]);
    }

    #[test]
    fn one_of_two_ps_in_gc() {
        let got = curve(&[&[(0, 4 * MS)], &[]], &[], (0, 8 * MS), &[4 * MS, 8 * MS]);
        assert_eq!(got, [0.5, 0.75]);
    }

    #[test]
    fn p_interval_overlapping_stw_counts_once() {
        // P0 does GC over [2, 6) ms, a pause covers [4, 5) ms: over the whole 10 ms on two Ps the
        // GC time is 4 ms (P0) + 1 ms (P1 during the pause) = 5 of 20 P·ms.
        let got = curve(
            &[&[(2 * MS, 6 * MS)], &[]],
            &[(4 * MS, 5 * MS)],
            (0, 10 * MS),
            &[MS, 10 * MS],
        );
        assert_eq!(got, [0.0, 0.75]);
    }

    #[test]
    fn windows_longer_than_span_or_empty_are_omitted() {
        let got = utilization(&[&[(0, 5)]], &[], (10, 20), &[0, 5, 10, 11, u64::MAX]);
        let windows: Vec<u64> = got.iter().map(|p| p.0).collect();
        assert_eq!(windows, [5, 10]);
    }

    #[test]
    fn no_ps_or_empty_span_yield_no_curve() {
        assert!(utilization(&[], &[(0, 5)], (0, 10), &[5]).is_empty());
        assert!(utilization(&[&[]], &[], (7, 7), &[0, 1]).is_empty());
        assert!(mmu_curves(&[], &[], &[(0, 5)], (0, 10), &[5]).is_empty());
    }

    #[test]
    fn empty_intervals_are_ignored() {
        let got = curve(&[&[(3, 3), (5, 4)]], &[(6, 6)], (0, 10), &[1, 10]);
        assert_eq!(got, [1.0, 1.0]);
    }

    #[test]
    fn intervals_are_clipped_to_span() {
        // P0's interval covers the span and beyond; the pause lies half outside it.
        let got = curve(&[&[(0, 100)], &[]], &[(15, 25)], (20, 40), &[5, 20]);
        assert_eq!(got, [0.0, 0.375]);
    }

    #[test]
    fn timeline_merges_touching_intervals_and_sums_gc_ns() {
        let mut tl = GcTimeline::new();
        tl.push(10, 20);
        tl.push(20, 30); // touches
        tl.push(25, 28); // inside
        tl.push(28, 35); // overlaps
        tl.push(40, 40); // empty
        tl.push(50, 60);
        assert_eq!(tl.intervals(), [(10, 35), (50, 60)]);
        assert_eq!(tl.gc_ns(), 35);
    }

    #[test]
    fn mmu_windows_are_1_2_5_steps() {
        assert_eq!(MMU_WINDOWS_NS[0], 100_000);
        assert_eq!(MMU_WINDOWS_NS[12], 1_000_000_000);
        for pair in MMU_WINDOWS_NS.windows(2) {
            let ratio = pair[1] as f64 / pair[0] as f64;
            assert!([2.0, 2.5].contains(&ratio), "{pair:?}");
        }
    }

    /// The shadow model: `gc_ps` on every integer cell `[s, s+1)` of the span, straight from the
    /// definition, and every integer window start tried. Breakpoints are integers, so this is
    /// exact.
    fn brute_force(per_p: &[Vec<(u64, u64)>], stw: &[(u64, u64)], span: (u64, u64), w: u64) -> f64 {
        let covers = |&(start, end): &(u64, u64), s: u64| start <= s && s < end;
        let procs = per_p.len() as u64;
        let gc_ps: Vec<u64> = (span.0..span.1)
            .map(|s| {
                if stw.iter().any(|iv| covers(iv, s)) {
                    procs
                } else {
                    per_p
                        .iter()
                        .filter(|ivs| ivs.iter().any(|iv| covers(iv, s)))
                        .count() as u64
                }
            })
            .collect();
        let len = (span.1 - span.0) as usize;
        let w = w as usize;
        let max_gc = (0..=len - w)
            .map(|t| gc_ps[t..t + w].iter().sum::<u64>())
            .max()
            .unwrap();
        let capacity = w as u64 * procs;
        (capacity - max_gc) as f64 / capacity as f64
    }

    /// Pauses sorted and disjoint, built by pairing up sorted distinct cut points.
    fn pauses() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::btree_set(0u64..230, 0..8).prop_map(|cuts| {
            let cuts: Vec<u64> = cuts.into_iter().collect();
            cuts.chunks_exact(2).map(|c| (c[0], c[1])).collect()
        })
    }

    proptest! {
        #[test]
        fn mmu_matches_brute_force_over_integer_starts(
            per_p in prop::collection::vec(
                prop::collection::vec((0u64..230, 0u64..60).prop_map(|(s, l)| (s, s + l)), 0..6),
                1..=4,
            ),
            stw in pauses(),
            start in 0u64..20,
            len in 0u64..=200,
            windows in prop::collection::vec(0u64..=210, 1..6),
        ) {
            let span = (start, start + len);
            let slices: Vec<&[(u64, u64)]> = per_p.iter().map(Vec::as_slice).collect();
            let got = utilization(&slices, &stw, span, &windows);
            let want: Vec<(u64, f64)> = windows
                .iter()
                .filter(|&&w| w > 0 && w <= len)
                .map(|&w| (w, brute_force(&per_p, &stw, span, w)))
                .collect();
            prop_assert_eq!(got.len(), want.len());
            for (point, (w, mmu)) in got.iter().zip(want) {
                prop_assert_eq!(point.0, w);
                prop_assert!((0.0..=1.0).contains(&point.1), "{:?}", point);
                prop_assert!((point.1 - mmu).abs() < 1e-9, "{:?} vs {}", point, mmu);
            }
        }

        /// Each curve is the single curve of the intervals it counts (brute force, as above), and
        /// counting fewer intervals never lowers the utilization.
        #[test]
        fn curves_count_what_they_say_and_are_ordered(
            work in prop::collection::vec(
                prop::collection::vec((0u64..100, 0u64..30).prop_map(|(s, l)| (s, s + l)), 0..4),
                1..=3,
            ),
            idle_cuts in prop::collection::vec(prop::collection::btree_set(0u64..110, 0..6), 3),
            stw in pauses(),
            windows in prop::collection::vec(1u64..=100, 1..5),
        ) {
            // Idle marking only where the P does no other GC work, as on a real P.
            let idle_mark: Vec<Vec<(u64, u64)>> = work
                .iter()
                .zip(&idle_cuts)
                .map(|(ivs, cuts)| {
                    let cuts: Vec<u64> = cuts.iter().copied().collect();
                    cuts.chunks_exact(2)
                        .map(|c| (c[0], c[1]))
                        .filter(|&(s, e)| ivs.iter().all(|&(a, b)| e <= a || b <= s))
                        .collect()
                })
                .collect();
            let span = (0, 110);
            let w: Vec<&[(u64, u64)]> = work.iter().map(Vec::as_slice).collect();
            let i: Vec<&[(u64, u64)]> = idle_mark.iter().map(Vec::as_slice).collect();
            let every: Vec<Vec<(u64, u64)>> =
                work.iter().zip(&idle_mark).map(|(a, b)| [a.as_slice(), b].concat()).collect();
            let none = vec![Vec::new(); work.len()];
            for p in mmu_curves(&w, &i, &stw, span, &windows) {
                let at = |per_p: &[Vec<(u64, u64)>]| brute_force(per_p, &stw, span, p.window_ns);
                prop_assert!((p.mmu - at(&every)).abs() < 1e-9, "{:?}", p);
                prop_assert!((p.mmu_excl_idle - at(&work)).abs() < 1e-9, "{:?}", p);
                prop_assert!((p.mmu_pause_only - at(&none)).abs() < 1e-9, "{:?}", p);
                prop_assert!(p.mmu <= p.mmu_excl_idle && p.mmu_excl_idle <= p.mmu_pause_only);
            }
        }
    }
}
