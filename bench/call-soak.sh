#!/usr/bin/env bash
# Memory of a 10-minute two-way ringlet-peer call (synthetic 1280x720 at 30
# fps + Opus both ways through ringlet-signal on loopback): VmRSS of both peers
# every 10 s; fails (exit 1) if either peer's RSS grows by more than 5 % from
# the end of the first minute (warm-up) to the end, or if a peer decoded fewer
# than 95 % of the frames the other sent. Release builds. Figures: BENCHMARKS.md.
#
#   bench/call-soak.sh
#   SOAK_SECONDS=600 SAMPLE_SECONDS=10 WARMUP_SECONDS=60 GROWTH_LIMIT_PCT=5 bench/call-soak.sh
#
# Builds ringlet-peer and ringlet-signal in release mode first, unless
# RINGLET_PEER_BIN and RINGLET_SIGNAL_BIN are both set (then they are used as
# given) or NO_BUILD=1 (then the existing release binaries are used).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/release-bins.sh
exec node bench/call-soak.mjs "$@"
