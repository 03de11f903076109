#!/usr/bin/env bash
# Syscalls ringlet-signal makes per 1,000 relayed messages, under the seed's
# load generator (200 rooms x 500 candidates, as fast as the client sends),
# counted by `perf stat` on syscall tracepoints over the relay phase (from
# 1.2 s into the run, after connects). Needs perf (Debian: linux-perf) and
# access to tracepoints (root, or kernel.perf_event_paranoid <= -1).
#
#   bench/signal-syscalls.sh [ROUNDS]
#   RINGLET_SIGNAL_BIN=/path/to/ringlet-signal bench/signal-syscalls.sh   another build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/signal-bin.sh
seed_bench
port=3311
events=syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_setsockopt,syscalls:sys_enter_futex
for _ in $(seq "${1:-3}"); do
  # (the flag for builds before loopback listeners stopped counting addresses)
  "$RINGLET_SIGNAL_BIN" --listen 127.0.0.1:$port --max-conns-per-ip 0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  SERVER_PID=$pid node "$work/loadgen.mjs" "http://127.0.0.1:$port" 200 500 300 0 >/tmp/syscalls-load.json &
  lp=$!
  sleep 1.2
  perf stat -x, -e "$events" -p $pid -o /tmp/syscalls-stat.txt &
  ps=$!
  wait $lp
  kill -INT $ps; wait $ps || true
  n=$(grep -o '"received":[0-9]*' /tmp/syscalls-load.json | cut -d: -f2)
  awk -F, -v n="$n" '/syscalls:/ { split($3, a, "sys_enter_"); printf "%s %.0f  ", a[2], $1 * 1000 / n }
    END { printf "per 1k relays (%d relays)\n", n }' /tmp/syscalls-stat.txt
  kill $pid; wait $pid 2>/dev/null || true
done
