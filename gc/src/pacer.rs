//! The GC controller (Go 1.5's pacer, `gcControllerState` in mgc.go): when a cycle starts, the
//! heap size it must end by, and how much mark work an allocating goroutine owes on the way.
//!
//! Invariant: during concurrent mark, the scan work still expected and the heap bytes left before
//! the goal are kept in proportion: an allocating goroutine whose allocation runs ahead of the
//! marking (its assist credit below zero) pays for it by scanning heap objects itself, at
//! `assist_work_per_byte = scan work left / heap bytes left to the goal`, so that marking is
//! done, as nearly as the estimate allows, when the heap reaches the goal. Background mark work
//! earns credit (`bg_scan_credit`) that assists steal before scanning themselves.
//!
//! Trigger and goal. After a cycle that marked `heap_marked` bytes, the goal of the next is
//! `heap_marked·(1 + GOGC/100)` and the cycle starts when the live heap reaches
//! `heap_marked·(1 + trigger_ratio)`, with Go 1.5's initial `trigger_ratio` of 7/8 of
//! GOGC/100; neither drops below the heap minimum (4 MiB, scaled the same way), and at the start
//! of a cycle the goal is at least 1 MiB above the live heap (Go 1.5's `startCycle`). Go 1.5
//! also tunes `trigger_ratio` each cycle from the utilisation it measured; that feedback loop
//! needs a clock, which the deterministic engine does not have, so here the ratio stays at its
//! initial value and assists alone keep the heap to its goal.
//!
//! Assists (Go 1.6's `gcAssistAlloc`). Each allocation during mark debits the goroutine's
//! `gc_assist_bytes` by the object's size. When it goes negative, the goroutine owes
//! `debt·assist_work_per_byte` bytes of scan work, rounded up to [`GC_OVER_ASSIST_WORK`] so
//! assists are not tiny and frequent: it steals what it can from `bg_scan_credit`, scans the
//! rest from the grey work buffers, and is credited `work·assist_bytes_per_work`. If no grey
//! object is to be had, the debt stays and the next allocation tries again. Scan work is heap
//! bytes scanned, as in Go 1.5–1.7 (stacks and globals are not counted).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::runtime::GcConfig;

/// The least scan work one assist performs (Go 1.6's `gcOverAssistWork`, 64 KiB).
pub const GC_OVER_ASSIST_WORK: i64 = 64 << 10;

/// Go 1.5's initial trigger ratio, as a fraction of GOGC/100.
pub const TRIGGER_FRACTION: f64 = 7.0 / 8.0;

/// The controller's state, shared by every P.
#[derive(Debug, Default)]
pub struct Pacer {
    /// The live heap that starts the next cycle.
    trigger: AtomicU64,
    /// The heap goal of the cycle in progress (or the next).
    goal: AtomicU64,
    /// Scan work expected this cycle (the live heap at its start: every object a cycle may
    /// scan was allocated before it began; later ones are allocated black).
    scan_work_expected: AtomicU64,
    /// Heap bytes scanned this cycle, by background workers and assists.
    scan_work: AtomicU64,
    /// Background scan work not yet stolen by an assist.
    bg_scan_credit: AtomicI64,
    /// Heap bytes scanned by assists this cycle.
    assist_work: AtomicU64,
}

impl Pacer {
    /// A controller whose first cycle starts at the heap minimum scaled by the trigger ratio.
    pub(crate) fn new(config: &GcConfig) -> Pacer {
        let p = Pacer::default();
        p.set_after_cycle(0, config);
        p
    }

    /// The live heap that starts the next cycle.
    pub fn trigger(&self) -> u64 {
        self.trigger.load(Ordering::Relaxed)
    }

    /// The heap goal.
    pub fn goal(&self) -> u64 {
        self.goal.load(Ordering::Relaxed)
    }

    /// Heap bytes scanned by assists in the cycle in progress (or the last).
    pub fn assist_work(&self) -> u64 {
        self.assist_work.load(Ordering::Relaxed)
    }

    /// Sets the trigger and goal of the next cycle from the bytes the last one marked.
    pub(crate) fn set_after_cycle(&self, heap_marked: u64, config: &GcConfig) {
        let Some(gogc) = config.gogc else {
            self.trigger.store(u64::MAX, Ordering::Relaxed);
            self.goal.store(u64::MAX, Ordering::Relaxed);
            return;
        };
        let growth = f64::from(gogc) / 100.0;
        let trigger_ratio = TRIGGER_FRACTION * growth;
        let goal = ((heap_marked as f64 * (1.0 + growth)) as u64).max(config.heap_minimum);
        let min_trigger =
            (config.heap_minimum as f64 * (1.0 + trigger_ratio) / (1.0 + growth)) as u64;
        let trigger = ((heap_marked as f64 * (1.0 + trigger_ratio)) as u64).max(min_trigger);
        self.trigger.store(trigger, Ordering::Relaxed);
        self.goal.store(goal, Ordering::Relaxed);
    }

    /// A cycle starts with `heap_live` bytes live (Go 1.5's `startCycle`).
    pub(crate) fn start_cycle(&self, heap_live: u64) {
        let goal = self.goal().max(heap_live.saturating_add(1 << 20));
        self.goal.store(goal, Ordering::Relaxed);
        self.scan_work_expected.store(heap_live, Ordering::Relaxed);
        self.scan_work.store(0, Ordering::Relaxed);
        self.bg_scan_credit.store(0, Ordering::Relaxed);
        self.assist_work.store(0, Ordering::Relaxed);
    }

    /// `(assist_work_per_byte, assist_bytes_per_work)` now, with `heap_live` bytes live (Go
    /// 1.6's `revise`): the scan work left over the heap left to the goal.
    pub(crate) fn assist_ratio(&self, heap_live: u64) -> (f64, f64) {
        let left = self
            .scan_work_expected
            .load(Ordering::Relaxed)
            .saturating_sub(self.scan_work.load(Ordering::Relaxed))
            .max(1000) as f64;
        let distance = self.goal().saturating_sub(heap_live).max(1) as f64;
        (left / distance, distance / left)
    }

    /// Background mark work done: it counts as scan work and as credit for assists.
    pub(crate) fn note_bg_work(&self, bytes: u64) {
        if bytes > 0 {
            self.scan_work.fetch_add(bytes, Ordering::Relaxed);
            self.bg_scan_credit
                .fetch_add(bytes as i64, Ordering::Relaxed);
        }
    }

    /// Assist work done.
    pub(crate) fn note_assist_work(&self, bytes: u64) {
        if bytes > 0 {
            self.scan_work.fetch_add(bytes, Ordering::Relaxed);
            self.assist_work.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Takes up to `want` bytes of background credit; returns what it took.
    pub(crate) fn steal_credit(&self, want: i64) -> i64 {
        let mut have = self.bg_scan_credit.load(Ordering::Relaxed);
        loop {
            let take = have.min(want);
            if take <= 0 {
                return 0;
            }
            match self.bg_scan_credit.compare_exchange_weak(
                have,
                have - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => have = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gogc: Option<u32>) -> GcConfig {
        GcConfig {
            gogc,
            heap_minimum: 4 << 20,
            ..GcConfig::default()
        }
    }

    #[test]
    fn trigger_and_goal_follow_gogc_and_the_heap_minimum() {
        let c = config(Some(100));
        let p = Pacer::new(&c);
        // First cycle: goal is the heap minimum, trigger 7/8 of the way from half of it.
        assert_eq!(p.goal(), 4 << 20);
        assert_eq!(p.trigger(), ((4u64 << 20) as f64 * 1.875 / 2.0) as u64);
        p.set_after_cycle(10 << 20, &c);
        assert_eq!(p.goal(), 20 << 20);
        assert_eq!(p.trigger(), ((10u64 << 20) as f64 * 1.875) as u64);
        let off = Pacer::new(&config(None));
        assert_eq!((off.trigger(), off.goal()), (u64::MAX, u64::MAX));
    }

    #[test]
    fn assist_ratio_is_scan_work_left_over_heap_left() {
        let p = Pacer::new(&config(Some(100)));
        p.set_after_cycle(8 << 20, &config(Some(100)));
        p.start_cycle(15 << 20); // goal 16 MiB
        let (per_byte, per_work) = p.assist_ratio(15 << 20);
        assert!((per_byte - 15.0).abs() < 1e-9, "{per_byte}");
        assert!((per_work * per_byte - 1.0).abs() < 1e-12);
        p.note_bg_work(5 << 20);
        let (per_byte, _) = p.assist_ratio(15 << 20);
        assert!((per_byte - 10.0).abs() < 1e-9, "{per_byte}");
        // Past the goal the distance is one byte: assists owe all the work left.
        let (per_byte, _) = p.assist_ratio(17 << 20);
        assert_eq!(per_byte, (10u64 << 20) as f64);
    }

    #[test]
    fn assists_steal_at_most_the_background_credit() {
        let p = Pacer::new(&config(Some(100)));
        p.start_cycle(1 << 20);
        assert_eq!(p.steal_credit(100), 0);
        p.note_bg_work(150);
        assert_eq!(p.steal_credit(100), 100);
        assert_eq!(p.steal_credit(100), 50);
        assert_eq!(p.steal_credit(100), 0);
        p.note_assist_work(70);
        assert_eq!(p.assist_work(), 70);
    }
}
