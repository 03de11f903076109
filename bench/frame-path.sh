#!/usr/bin/env bash
# The desktop app's frame path in its real window: VP8→WebCodecs vs JPEG,
# frames shown, CPU of the app's process tree, latency. Release builds.
#   bench/frame-path.sh [--seconds 20] [--warmup 6]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
. scripts/env.sh
cargo build --release --locked -p ringlet --bin ringlet -p ringlet-call --bin ringlet-peer
export RINGLET_APP_BIN="$CARGO_TARGET_DIR/release/ringlet" RINGLET_PEER_BIN="$CARGO_TARGET_DIR/release/ringlet-peer"
export PATH="$HOME/.cache/ringlet-tools/bin:$PATH"
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --root "$HOME/.cache/ringlet-tools"
exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node bench/frame-path.mjs "$@"
