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
. bench/signal-bin.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/signal-soak.mjs "${1:-30}"
