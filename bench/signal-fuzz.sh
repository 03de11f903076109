#!/usr/bin/env bash
# The socket-level fuzzer against a release ringlet-signal for MINUTES
# (default 5), normal calls beside it; see bench/signal-fuzz.mjs. The
# 20-second version runs in the default tests (tests/node/stress.test.mjs).
#
#   bench/signal-fuzz.sh [MINUTES]
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
exec node bench/signal-fuzz.mjs "${1:-5}"
