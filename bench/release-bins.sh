# Sourced by the benchmark scripts: release ringlet-peer and ringlet-signal
# in RINGLET_PEER_BIN / RINGLET_SIGNAL_BIN. Built first, unless both are set
# (then used as given) or NO_BUILD=1 (then the existing release binaries).
. scripts/env.sh
if [ -z "${RINGLET_PEER_BIN:-}" ] || [ -z "${RINGLET_SIGNAL_BIN:-}" ]; then
  if [ "${NO_BUILD:-}" != 1 ]; then
    # Both --bin flags: `-p ringlet-call --bin ringlet-peer -p ringlet-signal`
    # would build only ringlet-signal's library, not its binary.
    cargo build --release --locked -p ringlet-call -p ringlet-signal --bin ringlet-peer --bin ringlet-signal >&2
  fi
  export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
  export RINGLET_PEER_BIN="$CARGO_TARGET_DIR/release/ringlet-peer"
fi
