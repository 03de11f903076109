// Cluster mode against one node, in one run: relays between two clients of
// a room, with the official socket.io-client. Cluster: client a on node 1,
// client b on node 2, both nodes sharing one redis-server. Single: both
// clients on one node without Redis. Figures: relays/s, latency send →
// receive, loss, and CPU per 1,000 relays of the servers (both nodes plus
// redis-server in cluster mode, and split: node 1 + node 2 + redis).
//
// Usage: node bench/signal-cluster.mjs ROOMS MSGS RATE_PER_S
//   (RINGLET_SIGNAL_BIN: the release binary; bench/signal-cluster.sh sets it)
import { spawn, execSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLK_TCK, log, procStat, seedServerDir } from './common.mjs';

const { io } = createRequire(join(seedServerDir(), 'package.json'))('socket.io-client');
const [ROOMS, MSGS, RATE] = process.argv.slice(2).map(Number);
const BIN = process.env.RINGLET_SIGNAL_BIN;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const freePort = () => Number(execSync(`python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"`).toString());
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

async function startRedis() {
  const port = freePort();
  const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(c);
  for (let i = 0; i < 100; i++) {
    try { execSync(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}'`, { stdio: 'ignore' }); break; } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  return { pid: c.pid, url: `redis://127.0.0.1:${port}` };
}

function startNode(args) {
  const c = spawn(BIN, ['--listen', '127.0.0.1:0', '--no-web', '--max-conns-per-ip', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RINGLET_LOG: 'warn' } });
  children.push(c);
  return new Promise((resolve) => {
    createInterface({ input: c.stdout }).once('line', (l) => resolve({ pid: c.pid, url: `http://${l.replace('listening on ', '')}` }));
  });
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const s = io(url + '/signaling', { transports: ['websocket'], forceNew: true, reconnection: false });
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  });
}

const ticks = (pids) => pids.reduce((t, p) => t + (procStat(p)?.ticks ?? 0), 0);

async function run(name, urlA, urlB, pids) {
  const pairs = [];
  for (let r = 0; r < ROOMS; r++) {
    const [a, b] = await Promise.all([connect(urlA), connect(urlB)]);
    const roomId = `bench-${r}`;
    await a.emitWithAck('join', { roomId, peerId: 'a' });
    await b.emitWithAck('join', { roomId, peerId: 'b' });
    pairs.push({ a, b, roomId });
  }
  const lat = [];
  let received = 0;
  const total = ROOMS * MSGS;
  const done = new Promise((resolve) => {
    for (const { b } of pairs) b.on('ice-candidate', (d) => { lat.push(now() - d.t); if (++received === total) resolve(); });
  });
  const t1 = now();
  const cpu1 = pids.map((p) => ticks([p]));
  for (let i = 0; i < MSGS; i++) {
    if (RATE > 0) { const wait = t1 + ((i * ROOMS) / RATE) * 1000 - now(); if (wait > 1) await new Promise((r) => setTimeout(r, wait)); }
    for (const { a, roomId } of pairs) {
      a.emit('ice-candidate', { roomId, t: now(), candidate: { candidate: `candidate:1 1 udp 2122260223 192.0.2.1 5${i % 9999} typ host ${'x'.repeat(180)}`, sdpMid: '0', sdpMLineIndex: 0 } });
    }
    if (RATE === 0 && i % 20 === 19) await new Promise((r) => setImmediate(r));
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, 60000))]);
  const elapsed = now() - t1;
  const perPid = pids.map((p, i) => (((ticks([p]) - cpu1[i]) * 1000) / CLK_TCK / (received / 1000)).toFixed(1));
  const cpuMs = pids.reduce((t, p, i) => t + ((ticks([p]) - cpu1[i]) * 1000) / CLK_TCK, 0);
  lat.sort((x, y) => x - y);
  const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2) : null);
  console.log(JSON.stringify({ run: name, rooms: ROOMS, msgs: MSGS, rate: RATE, total, lost: total - received,
    relay_per_s: Math.round(received / (elapsed / 1000)), p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1),
    cpu_ms_per_1k: +(cpuMs / (received / 1000)).toFixed(2), cpu_split: perPid.join(' + ') }));
  for (const { a, b } of pairs) { a.close(); b.close(); }
}

const single = await startNode([]);
await run('single node', single.url, single.url, [single.pid]);
const redis = await startRedis();
const n1 = await startNode(['--redis', redis.url]);
const n2 = await startNode(['--redis', redis.url]);
log(`# cluster: ${n1.url} and ${n2.url} on ${redis.url}`);
await run('cluster, a on node 1, b on node 2', n1.url, n2.url, [n1.pid, n2.pid, redis.pid]);
await run('cluster, both on node 1', n1.url, n1.url, [n1.pid, n2.pid, redis.pid]);
process.exit(0);
