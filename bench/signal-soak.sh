#!/usr/bin/env bash
# Soak of ringlet-signal: room churn (join, relay, leave, drop and
# reconnect with the same peerId) for MINUTES (default 30), RSS sampled
# throughout; passes when RSS grows < 5 % after the warm-up, nothing failed,
# and /metrics reads zero sockets, rooms, away peers and held messages once
# everyone has left. See bench/signal-soak.mjs for the knobs.
#
#   bench/signal-soak.sh [MINUTES]
#
# RINGLET_SIGNAL_BIN=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ -z "${RINGLET_SIGNAL_BIN:-}" ]; then
  cargo build --release --locked -p ringlet-signal --bin ringlet-signal >&2
  export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
fi
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >&2)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/signal-soak.mjs "${1:-30}"
