//! What every cycle reports (ARCHITECTURE.md §4), and the per-goroutine re-scan records tests check the
//! re-scan bound with.
//!
//! Invariant: every counter of a [`CycleStats`] except the `_ns` timings is a function of the
//! configuration and the seed under the deterministic engine. Re-scan figures obey, per cycle,
//! `oracle_rescan_bytes ≤ rescan_bytes ≤ full_rescan_bytes` whenever the re-scan bound is sound.
//! Every barrier installed ends once — hit by a return, passed by an unwind (which Go's
//! `gcUnwindBarriers` counts as a hit), or removed — and is counted in the cycle whose books take
//! its goroutine's barrier counters: its concurrent scan, its removal (inside the pause, or by the
//! after-restart walk, which adds to the cycle just ended), or its exit. So over a run `installed =
//! hit + removed + (barriers still on stacks at the end)`; with `--barrier-removal in-pause` every
//! cycle balances on its own, and after the restart a barrier a running goroutine kept is counted
//! in the next cycle, when its scan removes it as stale.

use serde::Serialize;

/// The scan stalls of `cycles`, a contiguous slice of a run's history, from `log`, the run's
/// `(cycle, ns)` stall log ([`crate::RunResult::scan_stalls`]): what [`Totals::of`] takes.
pub fn scan_stalls_of<'a>(
    log: &'a [(u32, u64)],
    cycles: &[CycleStats],
) -> impl Iterator<Item = u64> + 'a {
    let span = match (cycles.first(), cycles.last()) {
        (Some(a), Some(b)) => a.cycle..=b.cycle,
        _ => std::ops::RangeInclusive::new(1, 0),
    };
    log.iter()
        .filter(move |(c, _)| span.contains(c))
        .map(|&(_, ns)| ns)
}

impl CycleStats {
    /// Sets `mark_term_other_ns` to what the pause holds beyond its other parts.
    pub(crate) fn set_mark_term_other(&mut self) {
        self.mark_term_other_ns = self
            .mark_term_ns
            .saturating_sub(self.stw_stop_ns + self.mark_term_rescan_ns + self.mark_term_drain_ns);
    }
}

/// One GC cycle's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CycleStats {
    /// Cycle number, from 1.
    pub cycle: u32,
    /// Heap bytes marked live by this cycle.
    pub heap_live_bytes: u64,
    /// Bytes of goroutine stack in use at the end of the cycle, summed by the walk over every
    /// goroutine that follows mark termination once the world restarts (a goroutine already
    /// running again counts what it used when it last left its P).
    pub stack_bytes_used: u64,
    /// Stacks scanned concurrently (or, for `yuasa`, at the start).
    pub stacks_scanned: u64,
    /// Bytes those scans covered.
    pub scan_bytes: u64,
    /// Goroutine stacks whose scan stopped the goroutine (every concurrent scan's stop, and
    /// `yuasa`'s scans at the start of the cycle): the samples of `scan_stall_ns_*`.
    pub scan_stalls: u64,
    /// How long a goroutine was kept from running by the scan of its own stack, per scan: from
    /// the moment its scanner holds its stack (a marker with the `SCAN` bit, or the goroutine
    /// itself at a safe point) to the moment it may run again — the whole stack for an eager
    /// scan, the first frames for a lazy one. The median over the cycle's scans (over the run's
    /// in `totals`).
    pub scan_stall_ns_p50: u64,
    /// The 99th percentile of the same.
    pub scan_stall_ns_p99: u64,
    /// The longest of the same.
    pub scan_stall_ns_max: u64,
    /// Returns and unwinds through a lazy scan's watermark that scanned the frame returned into.
    pub watermark_hits: u64,
    /// Frames goroutines scanned themselves at their watermark (what the mutator pays for a
    /// lazy scan).
    pub mutator_scanned_frames: u64,
    /// Their bytes (included in `scan_bytes`).
    pub mutator_scanned_bytes: u64,
    /// Frames the markers scanned above watermarks, concurrently with their goroutines.
    pub marker_lazy_frames: u64,
    /// Their bytes (included in `scan_bytes`).
    pub marker_lazy_bytes: u64,
    /// Goroutines on the re-scan list at mark termination (Go 1.7's `work.rescan`): the ones
    /// that ran since their scan or were created during the mark.
    pub rescan_goroutines: u64,
    /// Bytes of stack re-scanned at mark termination.
    pub rescan_bytes: u64,
    /// Frames re-scanned at mark termination.
    pub rescan_frames: u64,
    /// What re-scanning every stack that needed it in full would have cost.
    pub full_rescan_bytes: u64,
    /// The least any re-scan could have cost (the mutator's watermark).
    pub oracle_rescan_bytes: u64,
    /// Stack barriers installed.
    pub barriers_installed: u64,
    /// Stack barriers hit by a return or passed by an unwind.
    pub barriers_hit: u64,
    /// Stack barriers removed un-hit at mark termination.
    pub barriers_removed: u64,
    /// Bytes of stack allocations carved for stkbar arrays, at mark termination.
    pub stkbar_reserved_bytes: u64,
    /// Stack moves (growth and shrink) during the cycle.
    pub copystacks: u64,
    /// Write barriers executed.
    pub wb_calls: u64,
    /// Heap bytes scanned by GC assists (allocating goroutines paying for their allocation).
    pub assist_scan_bytes: u64,
    /// Sweep-termination pause.
    pub sweep_term_ns: u64,
    /// Concurrent mark, wall time.
    pub mark_ns: u64,
    /// Mark-termination pause, from the request to stop the world to its restart (checkmark's
    /// time left out): `stw_stop_ns + mark_term_rescan_ns + mark_term_drain_ns +
    /// mark_term_other_ns`.
    pub mark_term_ns: u64,
    /// Of the mark-termination pause: from the request to every P stopped.
    pub stw_stop_ns: u64,
    /// Of the mark-termination pause: from the start of the parallel work to the end of the
    /// last re-scan.
    pub mark_term_rescan_ns: u64,
    /// Of the mark-termination pause: from the end of the last re-scan to the end of the drain.
    pub mark_term_drain_ns: u64,
    /// Of the mark-termination pause: the rest (flushing the Ps, the in-pause barrier removal
    /// when that is the mode, ending the mark, restarting the world).
    pub mark_term_other_ns: u64,
    /// Time spent removing stack barriers: after the restart, outside the pause, on a P whose
    /// MMU counts it as GC time (`--barrier-removal after-restart`, Go 1.7); or inside the
    /// pause, where it is part of `mark_term_other_ns` (`in-pause`, Go 1.5/1.6).
    pub barrier_removal_ns: u64,
    /// Goroutines the after-restart removal could not take because they were running: they
    /// keep their barriers until their next scan removes them as stale.
    pub removal_skipped: u64,
    /// Reachable objects the mark missed (checkmark).
    pub checkmark_failures: u64,
    /// Missed write barriers found by wbshadow (a run stops at the first, so a completed cycle
    /// reports 0, as it does checkmark failures).
    pub wbshadow_violations: u64,
    /// Ps during the cycle (GOMAXPROCS, which a procs schedule may change at its start).
    pub procs: u64,
    /// Barriers `--inject wb-drop` skipped since the previous cycle's mark termination.
    pub wb_dropped: u64,
    /// Re-scan frames `--inject rescan-skip` left unshaded at this mark termination.
    pub rescan_frames_skipped: u64,
    /// Re-scans at this mark termination that a bound fault (`--inject bound-short`, or the lag
    /// `hit-lost` and `unwind-skip` leave) made cover fewer frames than the true bound.
    pub rescans_shortened: u64,
    /// Barrier hits `--inject hit-lost` kept from the collector since the previous cycle's mark
    /// termination.
    pub hits_lost: u64,
    /// Bulk writes and multi-frame unwinds whose barrier pass `--inject unwind-skip` skipped or
    /// hid since the previous cycle's mark termination.
    pub unwinds_skipped: u64,
    /// Frames stackshadow compared with the concurrent scan's record: at this mark termination,
    /// those the re-scans skipped; with lazy scans, every frame scanned above a watermark in the
    /// cycle (0 with stackshadow off).
    pub stackshadow_frames_verified: u64,
    /// Their bytes.
    pub stackshadow_bytes_verified: u64,
    /// Of those, frames that changed since the scan: the re-scan skipped what it had to see.
    /// Counted whenever the records are kept (stackshadow on, or a re-scan fault injected); with
    /// stackshadow on the first one fails the cycle, so a completed cycle reports 0.
    pub skipped_frames_changed: u64,
    /// Bytes of stackshadow's records at mark termination.
    pub stackshadow_bytes: u64,
    /// The content oracle: for each re-scanned goroutine, the bytes from its SP to the top of
    /// the highest frame that is new or differs from what the concurrent scan saw (whole, if not
    /// scanned in the cycle) — the least a re-scan must cover. Measured when the records are kept
    /// (stackshadow on, or a re-scan fault injected; 0 otherwise).
    pub content_rescan_bytes: u64,
    /// Bytes of wbshadow's shadow copy at mark termination (0 with wbshadow off).
    pub shadow_bytes: u64,
    /// Allocated heap objects at the cycle's start, once the last cycle's sweep has finished
    /// (counted only with the sanitizer on: it is a walk over every span).
    pub live_objects: u64,
    /// The sanitizer's metadata memory at the cycle's start (see `sanitizer`); 0 when off.
    pub sanitizer_bytes: u64,
    /// The sanitizer's synchronization objects (SyncVars) at the cycle's start.
    pub sanitizer_sync_vars: u64,
    /// Heap blocks the sanitizer tracks at the cycle's start.
    pub sanitizer_blocks: u64,
    /// Sanitizer contexts alive at the cycle's start (one per live P).
    pub sanitizer_contexts: u64,
}

/// A goroutine re-scanned at mark termination, recorded when the configuration asks for it.
/// Depths are bytes below the stack top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RescanRecord {
    /// The cycle.
    pub cycle: u32,
    /// The goroutine.
    pub goid: u64,
    /// Whether it had been scanned concurrently (else it was re-scanned whole as never scanned).
    pub scanned: bool,
    /// Whether the re-scan stopped at a barrier (else it covered the whole stack).
    pub bounded: bool,
    /// Stack in use at mark termination (the full re-scan).
    pub used: usize,
    /// Depth of the SP at the concurrent scan.
    pub sp0_depth: usize,
    /// Size of the frame running at the concurrent scan (frame 0, which never gets a barrier).
    pub sp0_frame_size: usize,
    /// Depth of the highest return-PC slot returned or unwound through since; `usize::MAX` if none.
    pub ret_slot_depth: usize,
    /// Bytes re-scanned.
    pub rescan_bytes: usize,
    /// The oracle's bytes.
    pub oracle_bytes: usize,
    /// Size of the last (outermost) frame the re-scan covered.
    pub last_frame_size: usize,
}

impl RescanRecord {
    /// `x` of ARCHITECTURE.md §4: the height above the scan-time SP of the highest return-PC slot the
    /// goroutine returned or unwound through since its scan (0 if it returned through none).
    pub fn return_height(&self) -> usize {
        if self.ret_slot_depth == usize::MAX {
            0
        } else {
            self.sp0_depth.saturating_sub(self.ret_slot_depth)
        }
    }

    /// ARCHITECTURE.md §4's bound with Go's placement (frame 0 never barriered), as the `stacks` crate
    /// proves it: the re-scan covers at most `(sp0 - sp) + max(2x, first_offset, size(frame 0 at
    /// scan)) + last_frame_size` bytes. `true` for a re-scan that was not bounded by a barrier.
    pub fn within_bound(&self, first_offset: usize) -> bool {
        if !self.bounded {
            return true;
        }
        let below = self.used as i64 - self.sp0_depth as i64;
        let x = self.return_height() as i64;
        let reach = (2 * x)
            .max(first_offset as i64)
            .max(self.sp0_frame_size as i64);
        self.rescan_bytes as i64 <= below + reach + self.last_frame_size as i64
    }
}

/// ARCHITECTURE.md §4's bound over a run: how many barrier-bounded re-scans kept to it and, for those
/// whose goroutine returned past the first barrier's offset and past the frame that was running
/// at the scan (which never gets a barrier), how far up the stack the re-scan reached compared
/// with how far the goroutine returned. Barriers spaced by doubling make the re-scan reach at
/// most twice that height above the scan-time SP, plus the frame holding the barrier:
/// mstkbar.go's "re-scans at most twice as much stack as necessary". (A goroutine that returned
/// less than the running frame's size is re-scanned up to that frame's caller: the bound's
/// `size(frame 0)` term, which the ratio leaves out.) (Frames pushed
/// below the scan-time SP are re-scanned by any design, so the claim is about the part above it;
/// when the goroutine ends shallower than it was scanned, `rescan / oracle` is not bounded by 2.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RescanBound {
    /// Re-scans that stopped at a barrier.
    pub bounded_rescans: u64,
    /// Of those, how many exceeded the bound (0 unless barrier placement is broken).
    pub outside_bound: u64,
    /// Of those, how many had returned through a slot at least `first_offset`, and at least the
    /// size of the frame running at the scan, above the scan-time SP.
    pub past_first_offset: u64,
    /// Largest ratio, among the last, of the re-scan's reach above the scan-time SP (short of
    /// the frame holding the barrier, which it covers whole) to the return height `x`; at most 2.
    /// 0 when there are none.
    pub max_reach_ratio: f64,
}

impl RescanBound {
    /// Counts one re-scan under barriers spaced from `first_offset`.
    pub fn add(&mut self, rec: &RescanRecord, first_offset: usize) {
        if !rec.bounded {
            return;
        }
        self.bounded_rescans += 1;
        if !rec.within_bound(first_offset) {
            self.outside_bound += 1;
        }
        let x = rec.return_height();
        if x > 0 && x >= first_offset.max(rec.sp0_frame_size) {
            self.past_first_offset += 1;
            let below = rec.used as f64 - rec.sp0_depth as f64;
            let reach = rec.rescan_bytes as f64 - below - rec.last_frame_size as f64;
            self.max_reach_ratio = self.max_reach_ratio.max(reach / x as f64);
        }
    }
}

/// Sums and summaries over a run's cycles (the `totals` of `testbed --json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Cycles completed.
    pub cycles: u64,
    /// Summed counters (`cycle` and the `_ns` fields are summed too); the gauges — `procs`,
    /// `shadow_bytes`, `live_objects` and the `sanitizer_` fields — are their largest value.
    #[serde(flatten)]
    pub sum: CycleStats,
    /// Median mark-termination pause.
    pub mark_term_ns_p50: u64,
    /// 99th-percentile mark-termination pause.
    pub mark_term_ns_p99: u64,
    /// Longest mark-termination pause.
    pub mark_term_ns_max: u64,
    /// Median sweep-termination pause.
    pub sweep_term_ns_p50: u64,
    /// 99th-percentile sweep-termination pause.
    pub sweep_term_ns_p99: u64,
    /// Longest sweep-termination pause.
    pub sweep_term_ns_max: u64,
    /// Median re-scan list length.
    pub rescan_goroutines_p50: u64,
    /// Medians of the mark-termination pause's parts, and of the barrier removal's time.
    pub stw_stop_ns_p50: u64,
    /// See `stw_stop_ns_p50`.
    pub mark_term_rescan_ns_p50: u64,
    /// See `stw_stop_ns_p50`.
    pub mark_term_drain_ns_p50: u64,
    /// See `stw_stop_ns_p50`.
    pub mark_term_other_ns_p50: u64,
    /// See `stw_stop_ns_p50`.
    pub barrier_removal_ns_p50: u64,
    /// `1 - rescan_bytes / full_rescan_bytes`, 1 when nothing needed re-scanning.
    pub rescan_avoided: f64,
    /// Mutator operations executed.
    pub mutator_ops: u64,
}

impl Totals {
    /// Totals over `cycles`, with `mutator_ops` executed and `scan_stalls` the stops of every
    /// scan in those cycles (their p50, p99 and max replace the per-cycle ones in the sum).
    pub fn of(
        cycles: &[CycleStats],
        mutator_ops: u64,
        scan_stalls: impl IntoIterator<Item = u64>,
    ) -> Totals {
        let mut s = CycleStats::default();
        for c in cycles {
            s.heap_live_bytes += c.heap_live_bytes;
            s.stack_bytes_used += c.stack_bytes_used;
            s.stacks_scanned += c.stacks_scanned;
            s.scan_bytes += c.scan_bytes;
            s.scan_stalls += c.scan_stalls;
            s.watermark_hits += c.watermark_hits;
            s.mutator_scanned_frames += c.mutator_scanned_frames;
            s.mutator_scanned_bytes += c.mutator_scanned_bytes;
            s.marker_lazy_frames += c.marker_lazy_frames;
            s.marker_lazy_bytes += c.marker_lazy_bytes;
            s.rescan_goroutines += c.rescan_goroutines;
            s.rescan_bytes += c.rescan_bytes;
            s.rescan_frames += c.rescan_frames;
            s.full_rescan_bytes += c.full_rescan_bytes;
            s.oracle_rescan_bytes += c.oracle_rescan_bytes;
            s.barriers_installed += c.barriers_installed;
            s.barriers_hit += c.barriers_hit;
            s.barriers_removed += c.barriers_removed;
            s.stkbar_reserved_bytes += c.stkbar_reserved_bytes;
            s.copystacks += c.copystacks;
            s.wb_calls += c.wb_calls;
            s.assist_scan_bytes += c.assist_scan_bytes;
            s.sweep_term_ns += c.sweep_term_ns;
            s.mark_ns += c.mark_ns;
            s.mark_term_ns += c.mark_term_ns;
            s.stw_stop_ns += c.stw_stop_ns;
            s.mark_term_rescan_ns += c.mark_term_rescan_ns;
            s.mark_term_drain_ns += c.mark_term_drain_ns;
            s.mark_term_other_ns += c.mark_term_other_ns;
            s.barrier_removal_ns += c.barrier_removal_ns;
            s.removal_skipped += c.removal_skipped;
            s.checkmark_failures += c.checkmark_failures;
            s.wbshadow_violations += c.wbshadow_violations;
            s.wb_dropped += c.wb_dropped;
            s.rescan_frames_skipped += c.rescan_frames_skipped;
            s.rescans_shortened += c.rescans_shortened;
            s.hits_lost += c.hits_lost;
            s.unwinds_skipped += c.unwinds_skipped;
            s.stackshadow_frames_verified += c.stackshadow_frames_verified;
            s.stackshadow_bytes_verified += c.stackshadow_bytes_verified;
            s.skipped_frames_changed += c.skipped_frames_changed;
            s.stackshadow_bytes = s.stackshadow_bytes.max(c.stackshadow_bytes);
            s.content_rescan_bytes += c.content_rescan_bytes;
            s.procs = s.procs.max(c.procs);
            s.shadow_bytes = s.shadow_bytes.max(c.shadow_bytes);
            s.live_objects = s.live_objects.max(c.live_objects);
            s.sanitizer_bytes = s.sanitizer_bytes.max(c.sanitizer_bytes);
            s.sanitizer_sync_vars = s.sanitizer_sync_vars.max(c.sanitizer_sync_vars);
            s.sanitizer_blocks = s.sanitizer_blocks.max(c.sanitizer_blocks);
            s.sanitizer_contexts = s.sanitizer_contexts.max(c.sanitizer_contexts);
        }
        s.cycle = cycles.len() as u32;
        let stalls = PauseSummary::of(scan_stalls);
        (
            s.scan_stall_ns_p50,
            s.scan_stall_ns_p99,
            s.scan_stall_ns_max,
        ) = (stalls.p50, stalls.p99, stalls.max);
        let rescan_avoided = if s.full_rescan_bytes == 0 {
            1.0
        } else {
            1.0 - s.rescan_bytes as f64 / s.full_rescan_bytes as f64
        };
        let mark_term = PauseSummary::of(cycles.iter().map(|c| c.mark_term_ns));
        let sweep_term = PauseSummary::of(cycles.iter().map(|c| c.sweep_term_ns));
        let p50 = |f: fn(&CycleStats) -> u64| PauseSummary::of(cycles.iter().map(f)).p50;
        Totals {
            cycles: cycles.len() as u64,
            mark_term_ns_p50: mark_term.p50,
            mark_term_ns_p99: mark_term.p99,
            mark_term_ns_max: mark_term.max,
            sweep_term_ns_p50: sweep_term.p50,
            sweep_term_ns_p99: sweep_term.p99,
            sweep_term_ns_max: sweep_term.max,
            rescan_goroutines_p50: p50(|c| c.rescan_goroutines),
            stw_stop_ns_p50: p50(|c| c.stw_stop_ns),
            mark_term_rescan_ns_p50: p50(|c| c.mark_term_rescan_ns),
            mark_term_drain_ns_p50: p50(|c| c.mark_term_drain_ns),
            mark_term_other_ns_p50: p50(|c| c.mark_term_other_ns),
            barrier_removal_ns_p50: p50(|c| c.barrier_removal_ns),
            rescan_avoided,
            mutator_ops,
            sum: s,
        }
    }
}

/// p50, p99 and max of a set of pauses, from an HDR histogram (three significant digits, so
/// each quantile is within 0.1 % of a recorded value; the max is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PauseSummary {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Longest.
    pub max: u64,
}

impl PauseSummary {
    /// The summary of `pauses` (all zero when there are none).
    pub fn of(pauses: impl IntoIterator<Item = u64>) -> PauseSummary {
        // Up to 2^42 ns (73 minutes), three significant digits; longer pauses saturate there
        // but `max` stays exact.
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 42, 3)
            .expect("valid histogram bounds");
        let mut max = 0;
        for ns in pauses {
            h.saturating_record(ns);
            max = max.max(ns);
        }
        if h.is_empty() {
            return PauseSummary::default();
        }
        PauseSummary {
            p50: h.value_at_quantile(0.5).min(max),
            p99: h.value_at_quantile(0.99).min(max),
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_counters_and_take_percentiles() {
        let c = |n, term, full, re| CycleStats {
            cycle: n,
            mark_term_ns: term,
            full_rescan_bytes: full,
            rescan_bytes: re,
            ..Default::default()
        };
        let t = Totals::of(
            &[c(1, 30, 100, 10), c(2, 10, 100, 0), c(3, 20, 0, 0)],
            7,
            [],
        );
        assert_eq!(
            (
                t.cycles,
                t.mark_term_ns_p50,
                t.mark_term_ns_p99,
                t.mark_term_ns_max
            ),
            (3, 20, 30, 30)
        );
        assert_eq!(t.sum.full_rescan_bytes, 200);
        assert!((t.rescan_avoided - 0.95).abs() < 1e-12);
        assert_eq!(Totals::of(&[], 0, []).rescan_avoided, 1.0);
    }

    #[test]
    fn pause_summary_quantiles_are_within_hdr_precision() {
        let s = PauseSummary::of((1..=1000).map(|i| i * 1_000));
        assert_eq!(s.max, 1_000_000);
        assert!((s.p50 as f64 / 500_000.0 - 1.0).abs() < 1e-3, "{s:?}");
        assert!((s.p99 as f64 / 990_000.0 - 1.0).abs() < 1e-3, "{s:?}");
        assert_eq!(PauseSummary::of([]), PauseSummary::default());
        assert_eq!(
            PauseSummary::of([7]),
            PauseSummary {
                p50: 7,
                p99: 7,
                max: 7
            }
        );
    }

    /// A bounded re-scan scanned 9,000 B deep, that returned through a slot 1,000 B above that
    /// (`x` = 1,000), now 10,000 B deep, whose last frame is 64 B.
    fn record(rescan_bytes: usize) -> RescanRecord {
        RescanRecord {
            cycle: 1,
            goid: 1,
            scanned: true,
            bounded: true,
            used: 10_000,
            sp0_depth: 9_000,
            sp0_frame_size: 48,
            ret_slot_depth: 8_000,
            rescan_bytes,
            oracle_bytes: 2_000,
            last_frame_size: 64,
        }
    }

    #[test]
    fn the_bound_allows_twice_the_return_height_plus_a_frame() {
        let r = record(1_000 + 2_000 + 64);
        assert!(r.within_bound(1024));
        assert!(
            !RescanRecord {
                rescan_bytes: r.rescan_bytes + 8,
                ..r
            }
            .within_bound(1024)
        );
        assert!(
            RescanRecord {
                rescan_bytes: 1_000 + 4_096 + 64,
                ..r
            }
            .within_bound(4096)
        );
    }

    #[test]
    fn a_frame_zero_larger_than_the_offset_widens_the_bound() {
        // Frame 0 never gets a barrier: when it alone reaches past the first offset, the first
        // barrier is on the frame above it, whose top is frame 0's size plus its own above sp0.
        let r = RescanRecord {
            sp0_frame_size: 3_000,
            ..record(1_000 + 3_000 + 64)
        };
        assert!(r.within_bound(1024));
        assert!(
            !RescanRecord {
                sp0_frame_size: 48,
                ..r
            }
            .within_bound(1024),
            "without the frame-0 term the same re-scan is out of bounds"
        );
    }

    #[test]
    fn the_run_summary_counts_bounded_rescans_and_the_reach_past_the_first_offset() {
        // Scanned 9,000 B deep, returned through a slot 1,000 B above that, now 10,000 B deep:
        // the re-scan reaches 1,500 B above the scan-time SP, then the 64-byte barrier frame.
        let r = record(1_000 + 1_500 + 64);
        let mut b = RescanBound::default();
        b.add(&r, 1024); // x = 1,000 is below the first offset
        b.add(&r, 512);
        b.add(
            &RescanRecord {
                bounded: false,
                ..r
            },
            512,
        ); // a whole re-scan: not counted
        b.add(
            &RescanRecord {
                rescan_bytes: 1_000 + 2_500 + 64,
                ..r
            },
            512,
        ); // beyond 2x: outside the bound
        assert_eq!(
            (b.bounded_rescans, b.outside_bound, b.past_first_offset),
            (3, 1, 2)
        );
        assert!((b.max_reach_ratio - 2.5).abs() < 1e-12, "{b:?}");
        let mut one = RescanBound::default();
        one.add(&r, 512);
        assert!((one.max_reach_ratio - 1.5).abs() < 1e-12, "{one:?}");
    }
}
