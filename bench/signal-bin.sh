# Sourced by the signaling benchmarks: a release ringlet-signal in
# RINGLET_SIGNAL_BIN (built first unless already set), the Node test
# packages their load generators use, and `seed_bench` for the seed's side.
. scripts/env.sh
if [ -z "${RINGLET_SIGNAL_BIN:-}" ]; then
  cargo build --release --locked -p ringlet-signal --bin ringlet-signal >&2
  export RINGLET_SIGNAL_BIN="$CARGO_TARGET_DIR/release/ringlet-signal"
fi
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >&2)

# The seed's server and load generator with their npm packages, as
# compare.sh installs them: SEED_SERVER_DIR (default
# ../shared/bench/seed-server, read only) copied to SEED_BENCH_DIR (default
# $TMPDIR/seed-bench), which `work` names.
seed_bench() {
  local src=${SEED_SERVER_DIR:-../shared/bench/seed-server}
  work=${SEED_BENCH_DIR:-${TMPDIR:-/tmp}/seed-bench}
  if [ ! -d "$work/node_modules/socket.io-client" ] || [ ! -f "$work/loadgen.mjs" ]; then
    mkdir -p "$work" && cp "$src"/package.json "$src"/package-lock.json "$src"/*.js "$src"/*.mjs "$work"/
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}
