//! Workloads and experiment plumbing for the stkbar testbed.
//!
//! * [`workload`] — the seeded workloads, one file each, one registry;
//! * [`testbed`] — one configuration end to end: flags, validation, the run, the JSON report;
//! * [`suite`] — the experiment binaries' machinery: shared flags, plans of testbed runs, rows;
//! * [`sweeps`] — the experiments themselves (which runs each one makes);
//! * [`debug_modes`] — the debug-mode experiments: sanitizer contexts and wbshadow against faults;
//! * [`cli`] — one-line errors with exit code 2, atomic result files.

pub mod cli;
pub mod debug_modes;
pub mod paper;
pub mod plot;
pub mod suite;
pub mod sweeps;
pub mod testbed;
pub mod workload;
