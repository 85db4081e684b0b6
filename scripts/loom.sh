#!/usr/bin/env bash
# Runs the gc crate's loom models (gc/tests/loom.rs): the work-buffer lists (LfStack, and the
# WorkbufPool's full/empty lists through GcWork) and the goroutine status-word handshake between a
# marker and a running goroutine. crossbeam-epoch is built with --cfg crossbeam_loom so its atomics
# are loom's too; the separate target dir keeps the normal build cache intact. Extra arguments go
# to `cargo test` (e.g. a test-name filter, or `-- --nocapture`).
set -euo pipefail

cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=3 \
    cargo test -p gc --features loom --test loom --release --target-dir target/loom "$@"
