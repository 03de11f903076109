#!/usr/bin/env bash
# 10,000 concurrent clients (5,000 rooms of two) relaying at a paced
# 2,000 msg/s, against the seed's Node.js server and ringlet-signal (release)
# in one run, the same load generator for both (bench/signal-load.mjs:
# official socket.io-client over WebSocket, spread over several Node
# processes). Prints one JSON line per server.
#
#   bench/signal-load.sh [ROOMS=5000] [RATE=2000] [SECONDS=30] [WORKERS=4]
#
# SEED_SERVER_DIR (default ../shared/bench/seed-server) is copied to
# SEED_BENCH_DIR (default $TMPDIR/seed-bench) and its packages installed
# there, as compare.sh does. RINGLET_SIGNAL_BIN=path skips the build.
# ONLY=seed|ringlet runs one server. SEED_PORT/CAND_PORT pick the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/signal-bin.sh
rooms=${1:-5000}; rate=${2:-2000}; secs=${3:-30}; workers=${4:-4}
seed_bench
# 10,000 sockets in the server plus a share in each client process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((2 * rooms + 1000))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "ulimit -n is $(ulimit -n); $need file descriptors are needed (raise the hard limit)" >&2; exit 1
fi
echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n), ports $(cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' -)" >&2

run_one() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  PORT=$port QUIET=1 RINGLET_LOG=warn "$@" >"$work/load-$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$name {\"error\":\"the server exited; see $work/load-$name.log\"}"; return 0
  fi
  SERVER_PID=$pid node bench/signal-load.mjs "http://127.0.0.1:$port" "$rooms" "$rate" "$secs" "$workers" | sed "s/^/$name /"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  # Let the closed client sockets leave TIME_WAIT pressure behind before
  # the next server's 10,000 connections.
  sleep 5
}
case "${ONLY:-both}" in both|seed) run_one seed "${SEED_PORT:-3211}" node "$work/server.js" ;; esac
case "${ONLY:-both}" in both|ringlet) run_one ringlet "${CAND_PORT:-3212}" "$RINGLET_SIGNAL_BIN" --listen "127.0.0.1:${CAND_PORT:-3212}" --max-conns-per-ip 0 ;; esac
