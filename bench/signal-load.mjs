// Load: many concurrent clients relaying at a paced rate, measured from
// the server's /proc (CPU, RSS) and the clients (latency, loss).
//
//   SERVER_PID=... node bench/signal-load.mjs URL [ROOMS=5000] [RATE=2000] [SECONDS=30] [WORKERS=4]
//
// The seed's protocol, so the seed's Node.js server and ringlet-signal take
// the same load (as ../shared/bench/seed-server/loadgen.mjs does): rooms of
// two official socket.io-client sockets (WebSocket transport), `join` with
// the bare room string, then the first of each pair relays `ice-candidate`
// events (~300 bytes, with a send timestamp) to the room and the second
// receives them. Unlike loadgen.mjs, the clients are spread over WORKERS
// Node processes (one process holding 10,000 sockets is itself the
// bottleneck on 2 cores), and sending is paced evenly (RATE/WORKERS per
// second from each worker, in 5 ms steps) instead of one burst per room
// round. Sender and receiver of a room live in the same worker, so the
// latency is measured on one clock.
//
// Prints one JSON line: clients, lost, p50/p99/max ms, server CPU ms per
// 1,000 relays (the repeatable figure on a shared machine), server RSS
// (idle, all connected, peak) and per client, and the workers' own CPU.

import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const SELF = fileURLToPath(import.meta.url);
const now = () => performance.now();

// ------------------------------------------------------------------ worker

async function worker() {
  // tests/node's socket.io-client (4.8.4, as the seed's), via its module.
  const { io } = await import('../tests/node/stress.mjs');
  const send = (m) => process.send(m);
  const cmd = await new Promise((r) => process.once('message', r));
  const { url, first, count, rate, seconds, payload, tag } = cmd;
  const pad = 'x'.repeat(Math.max(0, payload - 120));
  const connect = () =>
    new Promise((resolve, reject) => {
      const s = io(`${url}/signaling`, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000 });
      s.once('connect', () => resolve(s));
      s.once('connect_error', (e) => {
        s.close();
        reject(e);
      });
    });
  const pairs = [];
  let connectFailures = 0;
  const lat = [];
  let received = 0;
  // 50 connections in flight at a time per worker: a storm of 10,000 at
  // once measures the accept queue, not the server.
  let next = 0;
  const openOne = async () => {
    while (next < count) {
      const r = first + next++;
      const roomId = `load-${tag}-${r}`;
      let a;
      let b;
      for (let attempt = 0; ; attempt++) {
        try {
          a ??= await connect();
          b ??= await connect();
          break;
        } catch (e) {
          connectFailures++;
          if (attempt > 5) throw e;
          await sleep(200);
        }
      }
      b.on('ice-candidate', (d) => {
        received++;
        if (typeof d?.t === 'number') lat.push(now() - d.t);
      });
      a.emit('join', roomId);
      b.emit('join', roomId);
      pairs.push({ a, roomId });
    }
  };
  await Promise.all(Array.from({ length: 50 }, openOne));
  send({ type: 'ready', sockets: pairs.length * 2, connectFailures });
  await new Promise((r) => process.once('message', r)); // go
  const cpu0 = process.cpuUsage();
  const t0 = now();
  let sent = 0;
  const total = Math.round(rate * seconds);
  let i = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - t0) / 1000) * rate));
    while (sent < due) {
      const { a, roomId } = pairs[i++ % pairs.length];
      a.emit('ice-candidate', {
        roomId,
        t: now(),
        candidate: { candidate: `candidate:1 1 udp 2122260223 192.0.2.1 ${10000 + (sent % 50000)} typ host ${pad}`, sdpMid: '0', sdpMLineIndex: 0 },
      });
      sent++;
    }
    await sleep(5);
  }
  const sendMs = now() - t0;
  // Drain: until everything arrived, or 15 s without progress.
  let last = -1;
  let still = now();
  while (received < sent && now() - still < 15_000) {
    if (received !== last) {
      last = received;
      still = now();
    }
    await sleep(50);
  }
  const cpu = process.cpuUsage(cpu0);
  send({ type: 'done', sent, received, sendMs, lat, cpuMs: (cpu.user + cpu.system) / 1000 });
  await new Promise((r) => process.once('message', r)); // close
  for (const { a } of pairs) a.close();
  process.exit(0);
}

// ------------------------------------------------------------------ coordinator

const procStat = (pid) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // ms, USER_HZ = 100
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function coordinator() {
  const [url, roomsArg = '5000', rateArg = '2000', secondsArg = '30', workersArg = '4'] = process.argv.slice(2);
  const ROOMS = Number(roomsArg);
  const RATE = Number(rateArg);
  const SECONDS = Number(secondsArg);
  const W = Math.max(1, Math.min(Number(workersArg), ROOMS));
  const PID = Number(process.env.SERVER_PID);
  if (!url || !PID) throw new Error('usage: SERVER_PID=pid node signal-load.mjs URL [ROOMS] [RATE] [SECONDS] [WORKERS]');
  const rss0 = rssKb(PID);
  const tag = Math.random().toString(36).slice(2, 8);
  const kids = [];
  const t0 = now();
  for (let w = 0; w < W; w++) {
    const first = Math.floor((w * ROOMS) / W);
    const count = Math.floor(((w + 1) * ROOMS) / W) - first;
    const k = fork(SELF, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    k.send({ url, first, count, rate: RATE / W, seconds: SECONDS, payload: 300, tag: `${tag}${w}` });
    kids.push(k);
  }
  const ask = (type) => Promise.all(kids.map((k) => new Promise((r) => k.on('message', (m) => m.type === type && r(m)))));
  const ready = await ask('ready');
  const connectMs = now() - t0;
  await sleep(2000); // the last joins settle (the seed's server has no join ack)
  const rssConnected = rssKb(PID);
  const sockets = ready.reduce((s, m) => s + m.sockets, 0);
  const done = ask('done');
  const cpu1 = procStat(PID);
  let rssPeak = rssConnected;
  const peak = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssKb(PID));
  }, 500);
  for (const k of kids) k.send('go');
  const results = await done;
  const cpu = procStat(PID) - cpu1;
  clearInterval(peak);
  const rssAfter = rssKb(PID);
  const lat = results.flatMap((m) => m.lat).sort((a, b) => a - b);
  const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : null);
  const sent = results.reduce((s, m) => s + m.sent, 0);
  const received = results.reduce((s, m) => s + m.received, 0);
  const sendS = Math.max(...results.map((m) => m.sendMs)) / 1000;
  for (const k of kids) k.send('close');
  await Promise.all(kids.map((k) => new Promise((r) => k.once('exit', r))));
  console.log(
    JSON.stringify({
      clients: sockets,
      rooms: ROOMS,
      workers: W,
      rate: RATE,
      seconds: SECONDS,
      connect_failures: ready.reduce((s, m) => s + m.connectFailures, 0),
      connect_s: +(connectMs / 1000).toFixed(1),
      sent,
      received,
      lost: sent - received,
      relay_per_s: Math.round(sent / sendS),
      p50_ms: q(0.5),
      p99_ms: q(0.99),
      max_ms: q(1),
      server_cpu_ms_per_1k: +(cpu / (received / 1000)).toFixed(2),
      server_cpu_pct: +((cpu / 10 / sendS)).toFixed(1),
      server_rss_idle_mb: +(rss0 / 1024).toFixed(1),
      server_rss_connected_mb: +(rssConnected / 1024).toFixed(1),
      server_rss_peak_mb: +(rssPeak / 1024).toFixed(1),
      server_rss_after_mb: +(rssAfter / 1024).toFixed(1),
      server_rss_kb_per_client: +((rssConnected - rss0) / sockets).toFixed(1),
      loadgen_cpu_ms_per_1k: +(results.reduce((s, m) => s + m.cpuMs, 0) / (received / 1000)).toFixed(1),
    }),
  );
  process.exit(0);
}

if (process.argv[2] === '--worker') await worker();
else await coordinator();
