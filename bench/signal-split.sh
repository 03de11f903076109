#!/usr/bin/env bash
# Where a relay's CPU goes: user and kernel time per relayed message, for
# the seed's Node server, ringlet-signal's lean transport and its
# socketioxide path, under the seed's load generator (200 rooms x 500
# candidates, as fast as the client sends). Reads utime/stime of the
# listening process from /proc, from 1.2 s into the run (after connects).
#
#   bench/signal-split.sh [ROUNDS]
#   RINGLET_SIGNAL_BASE=/path/to/older/ringlet-signal bench/signal-split.sh [ROUNDS]
#     adds that build's lean transport to every round: an A/B of two builds
#     interleaved in one run (build the older one from a worktree).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/signal-bin.sh
seed_bench
port=3310
hz=$(getconf CLK_TCK)
one() { # NAME COMMAND...
  local name=$1; shift
  PORT=$port QUIET=1 "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  local spid; spid=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  SERVER_PID=$spid node "$work/loadgen.mjs" "http://127.0.0.1:$port" 200 500 300 0 >/tmp/split-load.json &
  local lp=$!
  sleep 1.2
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$spid/stat")
  wait $lp
  read -r u2 s2 < <(awk '{print $14, $15}' "/proc/$spid/stat")
  local n; n=$(grep -o '"received":[0-9]*' /tmp/split-load.json | cut -d: -f2)
  awk -v name="$name" -v u=$((u2 - u1)) -v s=$((s2 - s1)) -v n="$n" -v hz="$hz" \
    'BEGIN { printf "%-12s user %5.1f us/relay  kernel %5.1f us/relay  (%d relays)\n", name, u*1e6/hz/n, s*1e6/hz/n, n }'
  kill "$spid" "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
for _ in $(seq "${1:-2}"); do
  one seed node "$work/server.js"
  one lean "$RINGLET_SIGNAL_BIN" --listen 127.0.0.1:$port --max-conns-per-ip 0
  [ -z "${RINGLET_SIGNAL_BASE:-}" ] || one lean-base "$RINGLET_SIGNAL_BASE" --listen 127.0.0.1:$port --max-conns-per-ip 0
  one socketioxide "$RINGLET_SIGNAL_BIN" --listen 127.0.0.1:$port --max-conns-per-ip 0 --websocket socketioxide
done
