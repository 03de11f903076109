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
. bench/signal-bin.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/signal-fuzz.mjs "${1:-5}"
