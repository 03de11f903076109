#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests of the whole workspace,
# the Node.js interop suite against the real ringlet-signal binary, the
# Chromium interop tests (the seed's browser client against ringlet-peer),
# and the desktop app end to end in its real window (tests/e2e).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1
. scripts/env.sh

failed=0
step() { echo; echo "=== $*"; }

step "cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/ringlet-cargo-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

step "node interop tests (official socket.io-client)"
cargo build --locked -p ringlet-signal --bin ringlet-signal -p ringlet-call --bin ringlet-peer || failed=1
export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/debug/ringlet-signal"
export RINGLET_PEER_BIN="$CARGO_TARGET_DIR/debug/ringlet-peer"
tests/node/run.sh 2>&1 | tee /tmp/ringlet-node-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

step "browser interop tests (Chromium running the seed's client)"
tests/browser/run.sh 2>&1 | tee /tmp/ringlet-browser-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

step "desktop end-to-end tests (the app window under Xvfb, tauri-driver, ringlet-peer)"
# tauri-driver lives in a cache that outlives a CI workspace; installed once.
tools="$HOME/.cache/ringlet-tools"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  cargo install tauri-driver --version 2.1.0 --locked --root "$tools" || failed=1
fi
if cargo build --locked -p ringlet --bin ringlet; then
  export RINGLET_APP_BIN="$CARGO_TARGET_DIR/debug/ringlet" TAURI_DRIVER_BIN="$tools/bin/tauri-driver"
  tests/e2e/run.sh 2>&1 | tee /tmp/ringlet-e2e-test.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
else
  failed=1
  echo "e2e: the app did not build; skipped" > /tmp/ringlet-e2e-test.log
fi

# One closing line over every runner.
passed=$(grep -hoE '^test result: [a-z]+\. [0-9]+ passed' /tmp/ringlet-cargo-test.log | awk '{s+=$4} END {print s+0}')
cfailed=$(grep -hoE '[0-9]+ failed;' /tmp/ringlet-cargo-test.log | awk '{s+=$1} END {print s+0}')
npass=$(grep -hoE '^ℹ pass [0-9]+' /tmp/ringlet-node-test.log /tmp/ringlet-browser-test.log /tmp/ringlet-e2e-test.log | awk '{s+=$3} END {print s+0}')
nfail=$(grep -hoE '^ℹ fail [0-9]+' /tmp/ringlet-node-test.log /tmp/ringlet-browser-test.log /tmp/ringlet-e2e-test.log | awk '{s+=$3} END {print s+0}')
echo
echo "$((passed + npass)) passed, $((cfailed + nfail)) failed"
exit $failed
