#!/usr/bin/env bash
# ringlet-signal against the seed's Node.js server, side by side in one run,
# under the same official socket.io-client load (../shared/bench/seed-server).
#
#   bench/signal.sh            burst, paced and 10k-client runs
#   bench/signal.sh quick      the burst run only
#
# Figures go to stdout as JSON lines (see compare.sh); BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
seed=${SEED_BENCH:-../shared/bench/seed-server}
[ -x "$seed/compare.sh" ] || [ -f "$seed/compare.sh" ] || { echo "no $seed/compare.sh (the seed bench lives in the shared folder beside the repo)" >&2; exit 1; }
cargo build --release --locked -p ringlet-signal >&2
bin="$CARGO_TARGET_DIR/release/ringlet-signal"
# The command #2 names, as written. Every load client is on 127.0.0.1;
# a server listening on loopback counts no connections per address.
cand="exec $bin --listen 127.0.0.1:\$PORT"

run() { echo "# $*"; bash "$seed/compare.sh" "$cand" "$@"; }

# 400 clients, 20,000 relays as fast as the client can send: CPU per
# relayed message, memory per client, loss.
run 200 100 300 0
[ "${1:-}" = quick ] && exit 0
# 1,000 clients, paced at 2,000 msg/s: latency at a realistic rate.
run 500 20 300 2000
# 10,000 clients (5,000 rooms), paced at 2,000 msg/s.
run 5000 4 300 2000
