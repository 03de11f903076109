#!/usr/bin/env bash
# A call through TURN (relay-only, a real coturn on loopback) against a
# direct one: setup and RTT. Release builds. Figures: BENCHMARKS.md.
#   bench/turn-setup.sh [CALLS]      (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/release-bins.sh
exec node bench/turn-setup.mjs "${1:-10}"
