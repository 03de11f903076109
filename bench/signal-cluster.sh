#!/usr/bin/env bash
# Cluster mode (two nodes + redis-server) against a single node, in one run:
# relays/s, latency, loss and server CPU. Figures: BENCHMARKS.md.
#   bench/signal-cluster.sh [ROOMS MSGS RATE]     (default 200 50 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release --locked -p ringlet-signal --bin ringlet-signal >&2
export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
exec node bench/signal-cluster.mjs "${1:-200}" "${2:-50}" "${3:-2000}"
