#!/usr/bin/env bash
# End-to-end tests of the desktop app in its real window: every *.test.mjs
# here, one file at a time, on a private X display (Xvfb) inside a private
# D-Bus session (dbus-run-session: the single-instance plugin and the second
# instance of the deep-link test meet on it). Each test starts its own
# tauri-driver (→ WebKitWebDriver → the app) and, for a call, ringlet-peer.
#
#   RINGLET_APP_BIN=/path/to/ringlet RINGLET_PEER_BIN=/path/to/ringlet-peer tests/e2e/run.sh [node --test args]
#
# Needs Xvfb, dbus-run-session, WebKitWebDriver, ImageMagick's `import`
# (scripts/deps.sh test) and tauri-driver on PATH or in TAURI_DRIVER_BIN
# (cargo install tauri-driver --locked --root ~/.cache/ringlet-tools).
# Screenshots go to $E2E_ARTIFACTS (default /tmp/ringlet-e2e-artifacts).
set -uo pipefail
: "${RINGLET_APP_BIN:?set RINGLET_APP_BIN to the ringlet app binary}"
: "${RINGLET_PEER_BIN:?set RINGLET_PEER_BIN to the ringlet-peer binary}"
cd "$(dirname "$0")"
export PATH="$HOME/.cache/ringlet-tools/bin:$PATH"
for tool in Xvfb dbus-run-session WebKitWebDriver import; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is missing (scripts/deps.sh test installs it)" >&2; exit 1; }
done
if [ -n "${TAURI_DRIVER_BIN:-}" ]; then
  [ -x "$TAURI_DRIVER_BIN" ] || { echo "e2e: TAURI_DRIVER_BIN=$TAURI_DRIVER_BIN is not an executable" >&2; exit 1; }
elif ! command -v tauri-driver >/dev/null; then
  echo "e2e: tauri-driver is missing: cargo install tauri-driver --locked --root ~/.cache/ringlet-tools" >&2
  exit 1
fi
# No npm packages today (the WebDriver client is fetch()); install any that appear.
if grep -q '"dependencies"' package.json && [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund || exit 1
fi
export E2E_ARTIFACTS="${E2E_ARTIFACTS:-/tmp/ringlet-e2e-artifacts}"
mkdir -p "$E2E_ARTIFACTS"
rm -f "$E2E_ARTIFACTS"/*.png

# Every process this run starts carries this mark in its environment, so
# cleanup finds exactly them (and nothing of anyone else's) by pid.
export RINGLET_E2E_RUN="e2e-$$-$RANDOM$RANDOM"
# Temporary files of this run (the apps' XDG homes, core dumps) go in one
# directory, removed at the end even when a test could not clean up.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringlet-e2e-run.XXXXXX")
export TMPDIR="$run_tmp"
xvfb_pid=""
runner_pid=""
sweep() {
  local sig=$1 pid
  for pid in $(grep -lzs "^RINGLET_E2E_RUN=$RINGLET_E2E_RUN\$" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != "$$" ] && kill "-$sig" "$pid" 2>/dev/null
  done
}
cleanup() {
  [ -n "$runner_pid" ] && kill -TERM "$runner_pid" 2>/dev/null
  sweep TERM
  sleep 0.5
  sweep KILL
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
  rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free display: Xvfb picks it and writes its number to fd 3.
display_file="$run_tmp/display"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp -noreset 3>"$display_file" >"$E2E_ARTIFACTS/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do
  [ -s "$display_file" ] && break
  kill -0 "$xvfb_pid" 2>/dev/null || { echo "e2e: Xvfb exited:" >&2; cat "$E2E_ARTIFACTS/xvfb.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$display_file" ] || { echo "e2e: Xvfb did not report a display within 10 s" >&2; exit 1; }
export DISPLAY=":$(head -n1 "$display_file")"
echo "e2e: Xvfb on $DISPLAY, artifacts in $E2E_ARTIFACTS"

# D-Bus services started on demand (portals, the accessibility bus) chatter
# on stderr; keep that in a log, the test report on stdout.
dbus-run-session -- node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs 2>"$E2E_ARTIFACTS/session.log" &
runner_pid=$!
wait "$runner_pid"
status=$?
runner_pid=""
[ "$status" -eq 0 ] || { echo "e2e: failed; D-Bus session and app output: $E2E_ARTIFACTS/session.log (tail below)" >&2; tail -n 40 "$E2E_ARTIFACTS/session.log" >&2; }
exit "$status"
