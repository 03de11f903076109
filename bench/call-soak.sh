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
. scripts/env.sh
if [ -z "${RINGLET_PEER_BIN:-}" ] || [ -z "${RINGLET_SIGNAL_BIN:-}" ]; then
  if [ "${NO_BUILD:-}" != 1 ]; then
    # Both --bin flags: `-p ringlet-call --bin ringlet-peer -p ringlet-signal`
    # would build only ringlet-signal's library, not its binary.
    cargo build --release --locked -p ringlet-call -p ringlet-signal --bin ringlet-peer --bin ringlet-signal >&2
  fi
  export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
  export RINGLET_PEER_BIN="$CARGO_TARGET_DIR/release/ringlet-peer"
fi
exec node bench/call-soak.mjs "$@"
