#!/usr/bin/env bash
# The live Go peer: runs the testbed's workloads, ported to Go (experiments/go/), under the Go
# toolchain on PATH with GODEBUG=gctrace=1, and writes every cycle's pauses (go_peer.csv) and each
# workload's pooled pauses (go_peer_pauses.csv) beside the testbed's results.
#
#   scripts/go-peer.sh [--quick|--full] [--out DIR] [any other go_peer flag]
#
# --full (the default) writes results/; --quick writes the scratch directory target/run-all-quick/
# as run-all.sh --quick does. The toolchain is yours: Debian's golang-go package installs one
# (apt-get install golang-go: Go 1.19 on Debian 12, the hybrid barrier). With a Go 1.5-1.7 of your
# own, point at it for the stack-barrier runtime and its knobs:
#
#   GOROOT=$HOME/go1.7.4 scripts/go-peer.sh --go $HOME/go1.7.4/bin/go --godebug gcstackbarrieroff=1
#
# Nothing here fetches or builds a Go toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=--full
out=
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick | --full) mode=$1 ;;
        --out)
            [ $# -ge 2 ] || { echo "go-peer.sh: --out needs a directory" >&2; exit 2; }
            out=$2
            shift
            ;;
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
cargo build --release --quiet -p experiments --bin go_peer
target/release/go_peer "$mode" --out "$out" "${extra[@]}"
