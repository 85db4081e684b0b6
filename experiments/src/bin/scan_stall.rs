//! `scan_stall`: How long the scan of a goroutine's own stack keeps it from running — full re-scan, stack barriers, the hybrid barrier, and the hybrid barrier with lazy stack scans behind a watermark — against stack depth and goroutine count, on real threads.
//! Writes `OUT/scan_stall.csv` and `OUT/scan_stall.json` (ARCHITECTURE.md §5); exit codes as ARCHITECTURE.md §7.
//! Its flags are `experiments::registry::ScanStallArgs` (shared with `merge`).

use std::process::ExitCode;

use experiments::registry::ScanStallArgs;
use experiments::suite;

fn main() -> ExitCode {
    suite::main::<ScanStallArgs>()
}
