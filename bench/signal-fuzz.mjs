// The socket-level fuzzer, long: random events and payloads against a real
// ringlet-signal for MINUTES while normal calls go on in other rooms; RSS
// sampled after a warm-up and at the end; /metrics must return to zero.
//
//   RINGLET_SIGNAL_BIN=... node bench/signal-fuzz.mjs [MINUTES=5]
//
// Environment: FUZZ_CLIENTS (6), FUZZ_SEED (random; printed), FUZZ_GRACE
// (1s, the server's --grace). Prints one JSON line; exits non-zero on a
// crash, a failed call, a missing ack or gauges not back to zero.

import { setTimeout as sleep } from 'node:timers/promises';
import { ZERO_GAUGES, backToZero, callsMeanwhile, cpuTicks, fuzz, healthz, rssKb, startSignal } from '../tests/node/stress.mjs';

const minutes = Number(process.argv[2] ?? 5);
const clients = Number(process.env.FUZZ_CLIENTS ?? 6);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() >>> 0);
const bin = process.env.RINGLET_SIGNAL_BIN;
if (!bin) throw new Error('set RINGLET_SIGNAL_BIN');
const log = (s) => process.stderr.write(`${s}\n`);

// Every client is 127.0.0.1: no per-address connection limit (the
// event-rate limits stay at their defaults).
const server = await startSignal(bin, ['--grace', process.env.FUZZ_GRACE ?? '1s', '--max-conns-per-ip', '0']);
const rssStart = rssKb(server.pid);
const cpu0 = cpuTicks(server.pid);
const t0 = Date.now();
const warmS = Math.min(60, minutes * 12);
let rssWarm = null;
let rssMax = 0;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const t = (Date.now() - t0) / 1000;
    const rss = rssKb(server.pid);
    if (t >= warmS) {
      rssWarm ??= rss;
      rssMax = Math.max(rssMax, rss);
    }
    if (Math.floor(t) % 60 < 5) log(`# t=${Math.round(t)}s rss=${rss} KiB alive=${server.alive()}`);
    await sleep(5000);
  }
})();
let done = false;
const calls = callsMeanwhile(server.url, () => done);
const stats = await fuzz(server.url, { clients, seconds: minutes * 60, seed });
done = true;
const call = await calls;
sampling = false;
await sampler;
const rssEnd = rssKb(server.pid);
const cpuS = (cpuTicks(server.pid) - cpu0) / 100;
const healthy = await healthz(server.url).catch(() => false);
const zero = await backToZero(server.url, 20_000);
const rssIdle = rssKb(server.pid);
const alive = await server.stop();
const out = {
  minutes,
  seed,
  fuzz: { ...stats, missing: stats.missing },
  calls: call,
  server_cpu_s: cpuS,
  rss_start_kb: rssStart,
  rss_after_warmup_kb: rssWarm,
  rss_end_kb: rssEnd,
  rss_max_after_warmup_kb: rssMax,
  rss_after_everyone_left_kb: rssIdle,
  metrics_after: Object.fromEntries(ZERO_GAUGES.map((g) => [g, zero[g]])),
  healthz: healthy,
  alive,
};
console.log(JSON.stringify(out));
const ok = alive && healthy && call.failures === 0 && call.calls > 0 && stats.acksMissing === 0 && ZERO_GAUGES.every((g) => zero[g] === 0);
log(ok ? '# fuzz: OK' : '# fuzz: FAILED');
process.exit(ok ? 0 : 1);
