// Soak: room churn against a real ringlet-signal for a fixed time, its RSS
// sampled throughout; afterwards /metrics must read zero sockets, rooms,
// away peers and held messages.
//
//   RINGLET_SIGNAL_BIN=... node bench/signal-soak.mjs [MINUTES=30]
//
// Environment: SOAK_PAIRS (50) pairs churning at once, SOAK_RELAYS (20)
// candidates per cycle, SOAK_PAUSE_MS (1000) mean pause between a pair's
// cycles, SOAK_GRACE (2s) the server's --grace, SOAK_SAMPLE_S (5).
// Prints one JSON line of figures on stdout, a per-minute trace on stderr.

import { setTimeout as sleep } from 'node:timers/promises';
import { backToZero, churn, cpuTicks, healthz, metrics, rssKb, startSignal } from '../tests/node/stress.mjs';

const minutes = Number(process.argv[2] ?? 30);
const env = (k, d) => Number(process.env[k] ?? d);
const pairs = env('SOAK_PAIRS', 50);
const relays = env('SOAK_RELAYS', 20);
const pauseMs = env('SOAK_PAUSE_MS', 1000);
const sampleS = env('SOAK_SAMPLE_S', 5);
const grace = process.env.SOAK_GRACE ?? '2s';
const bin = process.env.RINGLET_SIGNAL_BIN;
if (!bin) throw new Error('set RINGLET_SIGNAL_BIN');
const log = (s) => process.stderr.write(`${s}\n`);

// Every client is 127.0.0.1: no per-address connection limit.
const server = await startSignal(bin, ['--grace', grace, '--max-conns-per-ip', '0']);
const rss0 = rssKb(server.pid);
const cpu0 = cpuTicks(server.pid);
const t0 = Date.now();
// Warm-up: allocator arenas, hash tables and buffers reach their working
// size, set by the peak concurrency the random churn has seen, not by the
// number of cycles; growth is measured after it. A third of the run by
// default (SOAK_WARMUP_S): the first 30-minute run stepped up once at ~10
// minutes and stayed flat for the 20 after (BENCHMARKS.md). The slope of
// RSS against cycles after the warm-up is the leak detector that does not
// depend on that choice.
const warmS = env('SOAK_WARMUP_S', Math.max(5, minutes * 20));
const samples = [];
let stats = null;
let sampling = true;
const sampler = (async () => {
  let lastMinute = -1;
  while (sampling) {
    const t = (Date.now() - t0) / 1000;
    const m = await metrics(server.url).catch(() => ({}));
    const s = { t, rss: rssKb(server.pid), sockets: m.ringlet_connected_sockets, rooms: m.ringlet_rooms, held: m.ringlet_held_messages, cycles: stats?.cycles ?? 0 };
    samples.push(s);
    const minute = Math.floor(t / 60);
    if (minute !== lastMinute) {
      lastMinute = minute;
      log(`# t=${Math.round(t)}s rss=${s.rss} KiB sockets=${s.sockets} rooms=${s.rooms} held=${s.held} cycles=${s.cycles} failures=${stats?.failures ?? 0}`);
    }
    await sleep(sampleS * 1000);
  }
})();

stats = await churn(server.url, {
  pairs,
  seconds: minutes * 60,
  relays,
  pauseMs,
  label: 'soak',
  onTick: (s) => {
    stats = s;
  },
});
sampling = false;
await sampler;
const churnS = (Date.now() - t0) / 1000;
const cpuS = (cpuTicks(server.pid) - cpu0) / 100;
const zero = await backToZero(server.url, 30_000);
const healthy = await healthz(server.url).catch(() => false);
const rssEnd = rssKb(server.pid);

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
};
const windowS = Math.min(60, (churnS - warmS) / 4);
const afterWarm = median(samples.filter((s) => s.t >= warmS && s.t < warmS + windowS).map((s) => s.rss));
const last = median(samples.filter((s) => s.t >= churnS - windowS).map((s) => s.rss));
const max = Math.max(...samples.filter((s) => s.t >= warmS).map((s) => s.rss));
// Least squares of RSS (KiB) on cycles after the warm-up: KiB per 10k cycles.
const pts = samples.filter((s) => s.t >= warmS && Number.isFinite(s.rss));
const slope = (() => {
  const n = pts.length;
  if (n < 3) return null;
  const mx = pts.reduce((a, p) => a + p.cycles, 0) / n;
  const my = pts.reduce((a, p) => a + p.rss, 0) / n;
  const sxx = pts.reduce((a, p) => a + (p.cycles - mx) ** 2, 0);
  const sxy = pts.reduce((a, p) => a + (p.cycles - mx) * (p.rss - my), 0);
  return sxx ? +((sxy / sxx) * 10_000).toFixed(2) : null;
})();
const alive = await server.stop();
const out = {
  minutes,
  pairs,
  relays,
  cycles: stats.cycles,
  by_mode: stats.byMode,
  relayed: stats.relayed,
  held_sent: stats.heldSent,
  held_received: stats.heldReceived,
  resumed: stats.resumed,
  failures: stats.failures,
  errors: stats.errors,
  rss_start_kb: rss0,
  warmup_s: warmS,
  rss_after_warmup_kb: afterWarm,
  rss_last_kb: last,
  rss_max_after_warmup_kb: max,
  rss_growth_pct: afterWarm ? +(((last - afterWarm) / afterWarm) * 100).toFixed(2) : null,
  rss_kb_per_10k_cycles_after_warmup: slope,
  rss_trace_kb: samples.filter((_, i) => i % Math.max(1, Math.round(60 / sampleS)) === 0).map((s) => [Math.round(s.t), s.rss, s.cycles]),
  rss_after_everyone_left_kb: rssEnd,
  server_cpu_s: cpuS,
  server_cpu_ms_per_cycle: +((cpuS * 1000) / Math.max(1, stats.cycles)).toFixed(2),
  metrics_after: Object.fromEntries(Object.entries(zero).filter(([k]) => /^ringlet_(connected_sockets|rooms|away_peers|held_messages|held_dropped_total|held_delivered_total|resumed_total|replaced_sockets_total)$/.test(k))),
  healthz: healthy,
  alive,
};
console.log(JSON.stringify(out));
const ok = alive && healthy && stats.failures === 0 && ['ringlet_connected_sockets', 'ringlet_rooms', 'ringlet_away_peers', 'ringlet_held_messages'].every((g) => zero[g] === 0) && (out.rss_growth_pct ?? 0) < 5;
log(ok ? '# soak: OK' : '# soak: FAILED');
process.exit(ok ? 0 : 1);
