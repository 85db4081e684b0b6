//! Workloads and experiment plumbing for the stkbar testbed.
//!
//! * [`workload`] — the seeded workloads, one file each, one registry;
//! * [`testbed`] — one configuration end to end: flags, validation, the run, the JSON report;
//! * [`suite`] — the experiment binaries' machinery: shared flags, plans of testbed runs, rows;
//! * [`shard`] — run lists, the chokepoint of every experiment's runs: whole, `--plan`,
//!   `--shard K/N`, and answered from shard files by `merge`;
//! * [`registry`] — every experiment binary by name: its flags and the function it runs;
//! * [`sweeps`] — the experiments themselves (which runs each one makes);
//! * [`go_peer`] — the workloads' Go ports under a real Go runtime, their `gctrace` pauses;
//! * [`debug_modes`] — the debug-mode experiments: sanitizer contexts and wbshadow against faults;
//! * [`profiler_switch`] — the sampling profiler across goroutine switches and barrier operations (seed 003);
//! * [`trace_export`] — the runtime's trace as Chrome trace-event JSON (Perfetto), written atomically;
//! * [`trace_overhead`] — what tracing costs: each workload and engine with tracing off and on;
//! * [`cli`] — the binaries' edges: one-line errors with exit code 2, output checked before the
//!   work, atomic result files, stdout and stderr that never panic;
//! * [`limits`] — the bounds on every flag that sizes work or memory, each with its reason;
//! * [`provenance`] — `OUT/provenance.json`: the command, commit, compiler and machine behind
//!   each experiment's files;
//! * [`stats`] — medians with 95 % bootstrap intervals, and the tail a sample count supports;
//! * [`prose_numbers`] — the numbers `paper.md`'s prose quotes, each checked against the
//!   generated tables.

pub mod cli;
pub mod debug_modes;
pub mod go_peer;
pub mod limits;
pub mod paper;
pub mod plot;
pub mod profiler_switch;
pub mod prose_numbers;
pub mod provenance;
pub mod registry;
pub mod shard;
pub mod soundness;
pub mod stats;
pub mod suite;
pub mod sweeps;
pub mod testbed;
pub mod trace_export;
pub mod trace_overhead;
pub mod workload;
