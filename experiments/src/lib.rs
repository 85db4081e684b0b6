//! Workloads and experiment plumbing for the stkbar testbed.
//!
//! * [`workload`] — the seeded workloads, one file each, one registry;
//! * [`testbed`] — one configuration end to end: flags, validation, the run, the JSON report.

pub mod testbed;
pub mod workload;
