#!/usr/bin/env bash
# Runs the Ringlet desktop app (with its embedded signaling server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh app
. scripts/env.sh
# Software GL (VMs, no GPU): WebKit's compositing mode halves the frame rate.
export WEBKIT_DISABLE_COMPOSITING_MODE="${WEBKIT_DISABLE_COMPOSITING_MODE:-1}"
exec cargo run --release -p ringlet -- "$@"
