#!/usr/bin/env bash
# Runs the experiment suite: builds release, runs every experiment binary into one results
# directory, renders the figures, refreshes the paper's generated tables, and prints the headline
# figures with each target and whether it is met.
#
#   scripts/run-all.sh [--quick|--full] [--out DIR] [any other experiment flag, e.g. --seed 7]
#
# --full (the default) is the paper's sweep: it writes results/ and refreshes paper.md in place.
# --quick (the README's main job) writes to the scratch directory target/run-all-quick/ and
# refreshes a copy of the paper there (DIR/paper.md), so the committed results/ and paper.md stay
# as they are and `git status` stays clean; it took 193 s on 2 cores from a fresh clone (102 s of
# build, 91 s running). --out DIR writes anywhere else; --out results (with either mode) replaces the
# committed results and paper.md. Every directory gets provenance.json (the command, commit,
# compiler and machine behind each experiment's files). Every results file is written
# atomically, so an interrupted run leaves the previous results whole.
# STKBAR_BINARIES=DIR runs the binaries already built in DIR instead of building release ones.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=--full
out=
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick | --full) mode=$1 ;;
        --out)
            [ $# -ge 2 ] || { echo "run-all.sh: --out needs a directory" >&2; exit 2; }
            out=$2
            shift
            ;;
        --out=*) out=${1#--out=} ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) extra+=("$1") ;;
    esac
    shift
done
if [ -z "$out" ]; then
    if [ "$mode" = --full ]; then out=results; else out=target/run-all-quick; fi
fi
mkdir -p "$out"
# The committed results go with the committed paper; any other directory gets its own copy.
if [ "$(cd "$out" && pwd -P)" = "$(cd results && pwd -P)" ]; then
    paper=paper.md
else
    paper=$out/paper.md
    cp paper.md "$paper"
fi

start=$(date +%s)
if [ -n "${STKBAR_BINARIES:-}" ]; then
    bin=$STKBAR_BINARIES
else
    cargo build --release --quiet -p experiments --bins
    bin=target/release
fi
built=$(date +%s)

for experiment in rescan_offsets depth_sweep goroutine_sweep barrier_designs scan_stall sensitivity sanitizer_leak \
    wbshadow_faults soundness profiler_switch trace_overhead; do
    "$bin/$experiment" "$mode" --out "$out" "${extra[@]}"
done
"$bin/plot" --results "$out" --out "$out"
echo
"$bin/paper_tables" --results "$out" --paper "$paper"
end=$(date +%s)
echo "run-all ${mode#--}: $((end - start)) s in all ($((built - start)) s building, $((end - built)) s running)"
echo "results in $out/ (provenance.json says what made them); tables refreshed in $paper"
