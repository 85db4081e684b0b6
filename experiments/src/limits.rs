//! The bounds on what a command line may ask for, each with its reason, in one place.
//!
//! Invariant: every flag that sizes work or memory is checked against these bounds before any
//! work starts, and a value out of bounds is bad input (exit code 2) whose one-line message
//! gives the bound and its reason. Memory is estimated, not bounded by a constant: each run's
//! peak comes from its resolved configuration (`testbed::estimate_peak_bytes`: stacks, heap,
//! bookkeeping), and [`check_memory`] refuses a run, or a run list whose runs would be held at
//! once (`--jobs` of them), that needs more than the machine's physical memory. The estimate is
//! an upper one, so a refused sweep would not have fitted; the bound on `--scale` is the one at
//! which every experiment's `--full` sweep fits a 24 GiB machine at two jobs (a test checks it).

use std::fmt::Display;

/// `--procs`: Go 1.7's `_MaxGomaxprocs`, the most Ps its runtime allows.
pub const MAX_PROCS: usize = 256;

/// `--seeds`: a suite plans every run before the first starts and keeps every row until it
/// writes its files; at 1000 seeds (the size of soundness's own `--full` campaign) its largest
/// list, 126 runs a seed, holds 126,000 runs. More seeds: run ranges of `--seed` apart, or
/// `--shard` the sweep across machines.
pub const MAX_SEEDS: u64 = 1000;

/// `--reps` (trace_overhead): medians of more are no steadier; at 1000 reps a `--full` sweep
/// runs 16,000 runs one at a time, hours.
pub const MAX_REPS: usize = 1000;

/// `--scale`: every experiment's `--full` sweep at this scale fits in 24 GiB with two jobs,
/// by [`check_memory`]'s estimate (the test `the_scale_range_fits_24_gib` checks it); at 8,
/// depth_sweep's deepest point (512 goroutines of 80,000 frames) would need 24 GiB.
pub const MAX_SCALE: f64 = 5.0;

/// `--jobs`, per CPU: a job is a thread running one deterministic run; more jobs than CPUs only
/// hold more runs in memory at once, and beyond four per CPU nothing waits on I/O to fill.
pub const MAX_JOBS_PER_CPU: usize = 4;

/// `--heap-minimum`: half the heap's 1 GiB limit per run (`GcConfig::heap_max`): a cycle
/// starting at a larger goal leaves no room for what the mutator allocates while it marks.
pub const MAX_HEAP_MINIMUM: u64 = 512 << 20;

/// `--gc-share`, lowest: below it the collector's turns are so rare that the heap outgrows its
/// limit before a mark ends (mixed, 64 goroutines of depth 100: 1e-4 peaks at 850 MB in 18 s,
/// 1e-5 fails).
pub const MIN_GC_SHARE: f64 = 1e-3;

/// The most `--jobs` this machine takes.
pub fn max_jobs() -> usize {
    cpus() * MAX_JOBS_PER_CPU
}

/// The CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A number as a flag's value is shown in a message: as given when it reads well, in
/// scientific notation when it would take more than a dozen digits (`1e300`, `1e-300`).
pub fn shown(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 12 {
        plain
    } else {
        format!("{x:e}")
    }
}

/// Checks `value` of `flag` lies in `[low, high]`; the error gives the range and `why`.
pub fn check_range<T: PartialOrd + Display>(
    flag: &str,
    value: T,
    low: T,
    high: T,
    why: &str,
) -> Result<(), String> {
    if value < low || value > high {
        return Err(format!(
            "{flag} {value} must lie between {low} and {high} ({why})"
        ));
    }
    Ok(())
}

/// The machine's physical memory, bytes (`MemTotal` of `/proc/meminfo`); `None` where it cannot
/// be read, and then no memory check refuses anything.
pub fn physical_memory() -> Option<u64> {
    static MEMORY: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// Refuses `needed` bytes (what `what` would hold at once) if they exceed `physical` memory;
/// the message ends with `remedy`.
pub fn check_memory(
    needed: u64,
    physical: Option<u64>,
    what: impl Display,
    remedy: &str,
) -> Result<(), String> {
    match physical {
        Some(have) if needed > have => Err(format!(
            "{what} would need about {} at once (an upper estimate), over this machine's {}: {remedy}",
            gib(needed),
            gib(have)
        )),
        _ => Ok(()),
    }
}

/// `bytes` in GiB, one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(shown(0.25), "0.25");
        assert_eq!(shown(300.0), "300");
        assert_eq!(shown(1e300), "1e300");
        assert_eq!(shown(1e-300), "1e-300");
        assert!(shown(f64::MAX).len() < 30);
    }

    #[test]
    fn ranges_and_memory_refuse_with_their_reason() {
        assert!(check_range("--seeds", 5u64, 1, MAX_SEEDS, "why").is_ok());
        let e = check_range("--seeds", 1_000_000u64, 1, MAX_SEEDS, "the reason").unwrap_err();
        assert_eq!(
            e,
            "--seeds 1000000 must lie between 1 and 1000 (the reason)"
        );
        assert!(check_memory(1 << 30, Some(2 << 30), "a run", "x").is_ok());
        let unknown = check_memory(3 << 30, None, "a run", "x");
        assert!(unknown.is_ok(), "unknown memory refuses nothing");
        let e = check_memory(3 << 30, Some(2 << 30), "the run", "lower it").unwrap_err();
        assert_eq!(
            e,
            "the run would need about 3.0 GiB at once (an upper estimate), over this machine's 2.0 GiB: lower it"
        );
    }
}
