#!/usr/bin/env bash
# Runs the experiment suite: builds release, runs every experiment binary into results/, renders
# the figures, refreshes paper.md's generated tables, and prints the headline figures.
#
#   scripts/run-all.sh [--quick|--full] [any other experiment flag, e.g. --seed 7 --procs 4]
#
# --quick (the README's main job) took 162 s on 2 cores from a fresh clone, 76 s with the build
# done; --full (the default) is the paper's sweep. Every results file is written atomically, so an interrupted run leaves the
# previous results whole.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=--full
extra=()
for arg in "$@"; do
    case "$arg" in
        --quick | --full) mode=$arg ;;
        -h | --help)
            sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) extra+=("$arg") ;;
    esac
done

start=$(date +%s)
cargo build --release --quiet -p experiments --bins
bin=target/release
built=$(date +%s)

for experiment in rescan_offsets depth_sweep goroutine_sweep barrier_designs scan_stall sanitizer_leak \
    wbshadow_faults soundness profiler_switch trace_overhead; do
    "$bin/$experiment" "$mode" --out results "${extra[@]}"
done
"$bin/plot" --results results --out results
echo
"$bin/paper_tables" --results results --paper paper.md
end=$(date +%s)
echo "run-all ${mode#--}: $((end - start)) s in all ($((built - start)) s building, $((end - built)) s running)"
