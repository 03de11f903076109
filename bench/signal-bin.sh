# Sourced by the signaling benchmarks: a release ringlet-signal in
# RINGLET_SIGNAL_BIN (built first unless already set), and the Node test
# packages their load generators use.
. scripts/env.sh
if [ -z "${RINGLET_SIGNAL_BIN:-}" ]; then
  cargo build --release --locked -p ringlet-signal --bin ringlet-signal >&2
  export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
fi
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >&2)
