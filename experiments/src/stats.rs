//! Summary statistics of pause samples: a median with its 95 % bootstrap interval, and the tail
//! figure the number of samples supports.
//!
//! Invariant: every figure is a function of the samples alone — their order does not matter and
//! the bootstrap draws from a fixed seed — so the same samples give the same figures bit for bit,
//! and regenerated results and paper tables do not move unless the data did. A "p99" is reported
//! only over at least [`P99_MIN_SAMPLES`] samples: below that the 99th percentile is one of the
//! few largest samples, so the tail is reported as what it is, the maximum.
//!
//! Algorithm: quantiles are nearest-rank (the smallest sample with at least a fraction `q` of the
//! samples at or below it), the median the mean of the middle two of an even count. The interval
//! is the percentile bootstrap of the median (Efron and Tibshirani, *An Introduction to the
//! Bootstrap*, 1993, ch. 13): [`BOOTSTRAP_RESAMPLES`] resamples of `n` drawn with replacement,
//! the median of each, and the 2.5th and 97.5th percentiles of those medians. It assumes the
//! samples are exchangeable; cycles of one run are not quite (a run drifts as its heap and
//! stacks settle), which is why a configuration pools cycles from several seeds.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Samples below which the tail is the maximum, not the 99th percentile.
pub const P99_MIN_SAMPLES: usize = 100;

/// Resamples of the median's bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The bootstrap's seed: fixed, so an interval is a function of its samples.
const BOOTSTRAP_SEED: u64 = 0x5eed_b007_57a7_5000;

/// A median and its 95 % bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Median {
    /// The median.
    pub value: f64,
    /// The interval's lower end.
    pub lo: f64,
    /// The interval's upper end.
    pub hi: f64,
}

/// The tail figure of a set of samples: its 99th percentile, or its maximum when there are too
/// few samples for one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tail {
    /// The 99th percentile (at least [`P99_MIN_SAMPLES`] samples).
    P99(f64),
    /// The maximum (fewer samples).
    Max(f64),
}

impl Tail {
    /// Of `samples` (none: `None`).
    pub fn of(samples: &[f64]) -> Option<Tail> {
        let sorted = sorted(samples);
        let max = *sorted.last()?;
        Some(if sorted.len() >= P99_MIN_SAMPLES {
            Tail::P99(quantile(&sorted, 0.99))
        } else {
            Tail::Max(max)
        })
    }

    /// Its value.
    pub fn value(self) -> f64 {
        match self {
            Tail::P99(v) | Tail::Max(v) => v,
        }
    }

    /// `p99` or `max`: what a table's column or a caption calls it.
    pub fn label(self) -> &'static str {
        match self {
            Tail::P99(_) => "p99",
            Tail::Max(_) => "max",
        }
    }
}

impl Median {
    /// The median of `samples` with its 95 % bootstrap interval (none: `None`; one sample: an
    /// interval of width zero).
    pub fn of(samples: &[f64]) -> Option<Median> {
        let sorted = sorted(samples);
        if sorted.is_empty() {
            return None;
        }
        let n = sorted.len();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(BOOTSTRAP_SEED);
        let mut resample = vec![0.0; n];
        let mut medians: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
            .map(|_| {
                for x in &mut resample {
                    *x = sorted[rng.random_range(0..n)];
                }
                resample.sort_unstable_by(f64::total_cmp);
                median_of_sorted(&resample)
            })
            .collect();
        medians.sort_unstable_by(f64::total_cmp);
        Some(Median {
            value: median_of_sorted(&sorted),
            lo: quantile(&medians, 0.025),
            hi: quantile(&medians, 0.975),
        })
    }
}

/// `samples`, sorted (NaN last; none is expected).
fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// The median of sorted, non-empty `xs`: the middle one, or the mean of the middle two.
fn median_of_sorted(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The nearest-rank `q` quantile of sorted, non-empty `xs`.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_and_the_median_averages_the_middle_two() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 1.0), 100.0);
        assert_eq!(median_of_sorted(&[1.0, 2.0, 4.0, 8.0]), 3.0);
        assert_eq!(median_of_sorted(&[1.0, 2.0, 4.0]), 2.0);
    }

    #[test]
    fn the_tail_is_a_p99_only_over_enough_samples() {
        let few: Vec<f64> = (1..=99).map(f64::from).collect();
        assert_eq!(Tail::of(&few), Some(Tail::Max(99.0)));
        assert_eq!(Tail::of(&few).unwrap().label(), "max");
        let enough: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(Tail::of(&enough), Some(Tail::P99(198.0)));
        assert_eq!(Tail::of(&[]), None);
    }

    #[test]
    fn the_interval_brackets_the_median_and_is_reproducible_and_order_free() {
        // A skewed sample, as pauses are: most near 40, a long tail.
        let xs: Vec<f64> = (0..201)
            .map(|i| 40.0 + f64::from(i % 17) + if i % 23 == 0 { 500.0 } else { 0.0 })
            .collect();
        let m = Median::of(&xs).unwrap();
        assert!(m.lo <= m.value && m.value <= m.hi, "{m:?}");
        assert!(m.hi - m.lo < 10.0, "201 samples pin the median: {m:?}");
        let mut reversed = xs.clone();
        reversed.reverse();
        assert_eq!(Median::of(&reversed), Some(m));
        let one = Median::of(&[7.0]).unwrap();
        assert_eq!((one.value, one.lo, one.hi), (7.0, 7.0, 7.0));
        assert_eq!(Median::of(&[]), None);
    }

    #[test]
    fn more_samples_give_a_narrower_interval() {
        let draw = |n: u32| -> Vec<f64> { (0..n).map(|i| f64::from((i * 7919) % 101)).collect() };
        let small = Median::of(&draw(21)).unwrap();
        let large = Median::of(&draw(2001)).unwrap();
        assert!(
            large.hi - large.lo < small.hi - small.lo,
            "{small:?} {large:?}"
        );
    }
}
