#!/usr/bin/env bash
# Call setup on loopback: ringlet-peer pairs (ICE check interval 20 ms and
# 200 ms) and the anchor, two Chromium tabs through the seed's Node server,
# in one run. Release builds. Figures: BENCHMARKS.md.
#   bench/call-setup.sh [CALLS]      (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release --locked -p ringlet-signal -p ringlet-call --bins >&2
export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
export RINGLET_PEER_BIN="$CARGO_TARGET_DIR/release/ringlet-peer"
exec node bench/call-setup.mjs "${1:-20}"
