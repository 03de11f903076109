// Stress engines shared by tests/node/stress.test.mjs (short runs in the
// default test command) and bench/signal-{fuzz,soak}.mjs (long runs):
//
// - `churn`: pairs of peers that join, relay, leave, drop and reconnect
//   with the same peerId, over and over, checking every delivery;
// - `fuzz`: clients that send random events with payloads of random JSON
//   types and sizes (up to and past the 2 MiB message limit), binary
//   attachments, acks or not, and disconnect at random;
// - `pairCall`: the normal two-peer exchange that must keep working beside
//   them.
//
// Plus a real `ringlet-signal` process (`startSignal`) and readings of its
// /metrics and /proc. Every wait is bounded; nothing here asserts on time.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';

export { io };

export const NS = '/signaling';
export const WAIT = 10_000;
/** The server's Socket.IO message limit (ringlet_signal::MAX_MESSAGE). */
export const MAX_MESSAGE = 2 * 1024 * 1024;

// ------------------------------------------------------------------ server

/**
 * Starts `bin --listen 127.0.0.1:0 ...flags` and learns its port from the
 * "listening on" line. `stop()` sends SIGTERM and reports whether it was
 * still alive (a crash during the run is the first thing a stress test
 * checks).
 */
export async function startSignal(bin, flags = []) {
  const args = ['--listen', '127.0.0.1:0', ...flags];
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RINGLET_LOG: process.env.RINGLET_LOG ?? 'warn' },
  });
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${bin}: no "listening on" line within 10 s\n${output}`));
    }, 10_000);
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      keep(`${line}\n`);
      const m = /^listening on 127\.0\.0\.1:(\d+)\s*$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (code ${code}, signal ${signal}) before listening\n${output}`));
    });
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid,
    alive,
    output: () => output,
    /** SIGTERM, then SIGKILL after 5 s; returns whether it was alive. */
    async stop() {
      const was = alive();
      if (was) {
        proc.kill('SIGTERM');
        if (!(await Promise.race([exited, sleep(5000).then(() => null)]))) {
          proc.kill('SIGKILL');
          await exited;
        }
      }
      return was;
    },
  };
}

/** Every unlabelled sample of /metrics, as numbers by name. */
export async function metrics(url) {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(WAIT) });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const out = {};
  for (const m of (await res.text()).matchAll(/^([a-z_]+(?:\{[^}]*\})?) (-?[0-9.e+]+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

export async function healthz(url) {
  const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(WAIT) });
  return res.status === 200 && (await res.text()).trim() === 'ok';
}

/** The gauges that must return to zero once everyone has left. */
export const ZERO_GAUGES = ['ringlet_connected_sockets', 'ringlet_rooms', 'ringlet_away_peers', 'ringlet_held_messages'];

/** Polls /metrics until every gauge of ZERO_GAUGES reads 0; returns the last reading either way. */
export async function backToZero(url, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await metrics(url);
    if (ZERO_GAUGES.every((g) => m[g] === 0) || Date.now() > deadline) return m;
    await sleep(100);
  }
}

/** VmRSS of a process, in KiB (null once it is gone). */
export function rssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return null;
  }
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). */
export function cpuTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ clients

/** A socket.io-client socket with an inbox that misses nothing between awaits. */
export class Peer {
  constructor(socket) {
    this.socket = socket;
    this.log = [];
    this.waiters = new Set();
    socket.onAny((event, ...args) => {
      const e = { event, data: args[0] };
      this.log.push(e);
      for (const w of [...this.waiters]) w();
    });
  }

  static async connect(url, { transports = ['websocket'], timeout = WAIT } = {}) {
    const socket = io(`${url}${NS}`, { forceNew: true, reconnection: false, transports, timeout });
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connect timeout')), timeout + 1000);
      socket.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      socket.once('connect_error', (e) => {
        clearTimeout(t);
        socket.close();
        reject(e);
      });
    });
    return new Peer(socket);
  }

  emit(event, ...args) {
    this.socket.emit(event, ...args);
  }

  ack(event, data, ms = WAIT) {
    return this.socket.timeout(ms).emitWithAck(event, data);
  }

  async join(roomId, peerId) {
    const ack = await this.ack('join', { roomId, peerId });
    if (!ack?.ok) throw new Error(`join ${roomId} as ${peerId}: ${JSON.stringify(ack)}`);
    return ack;
  }

  /** Removes and returns the first `n` events named in `names`, waiting up to `ms`. */
  async take(names, n, ms = WAIT) {
    const pick = () => {
      const idx = [];
      for (let i = 0; i < this.log.length && idx.length < n; i++) if (names.includes(this.log[i].event)) idx.push(i);
      return idx;
    };
    let idx = pick();
    if (idx.length < n) {
      await new Promise((resolve, reject) => {
        const w = () => {
          idx = pick();
          if (idx.length >= n) done(resolve);
        };
        const done = (f, e) => {
          clearTimeout(t);
          this.waiters.delete(w);
          f(e);
        };
        const t = setTimeout(() => done(reject, new Error(`got ${idx.length} of ${n} ${names.join('/')} within ${ms} ms`)), ms);
        this.waiters.add(w);
      });
    }
    const out = idx.map((i) => this.log[i]);
    for (const i of idx.reverse()) this.log.splice(i, 1);
    return out;
  }

  /** Drops the transport without a Socket.IO DISCONNECT, as a network cut does. */
  drop() {
    this.socket.io.engine.close();
  }

  close() {
    this.socket.close();
  }
}

const candidate = (roomId, seq, extra = {}) => ({
  roomId,
  seq,
  candidate: { candidate: `candidate:${seq} 1 udp 2122260223 192.0.2.1 ${10000 + (seq % 50000)} typ host`, sdpMid: '0', sdpMLineIndex: 0 },
  ...extra,
});
const offer = (roomId, seq) => ({ roomId, seq, sdp: { type: 'offer', sdp: `v=0\r\no=- ${seq} 2 IN IP4 127.0.0.1\r\ns=-\r\n` } });
const answer = (roomId, seq) => ({ roomId, seq, sdp: { type: 'answer', sdp: `v=0\r\no=- ${seq} 2 IN IP4 127.0.0.1\r\ns=-\r\n` } });

/** Checks relayed events: all from `from`, `seq` strictly increasing from `first`. */
function inOrder(events, from, first, what) {
  let want = first;
  for (const { event, data } of events) {
    if (data?.from !== from) throw new Error(`${what}: ${event} from ${data?.from}, expected ${from}`);
    if (data.seq !== want) throw new Error(`${what}: ${event} seq ${data.seq}, expected ${want}`);
    want++;
  }
}

/**
 * A normal call's signaling between two fresh peers in `roomId`: join, an
 * offer and `candidates` candidates one way, an answer and candidates back,
 * each side checking it got everything, from the other, in order. Throws on
 * anything else.
 */
export async function pairCall(url, roomId, { candidates = 10, tag = roomId } = {}) {
  const a = await Peer.connect(url);
  const b = await Peer.connect(url).catch((e) => {
    a.close();
    throw e;
  });
  try {
    const pa = `${tag}-a`.slice(-64);
    const pb = `${tag}-b`.slice(-64);
    await a.join(roomId, pa);
    const jb = await b.join(roomId, pb);
    if (!jb.peers.some((p) => p.peerId === pa)) throw new Error(`${roomId}: B's join ack does not list A`);
    await a.take(['peer-joined'], 1);
    a.emit('sdp-offer', offer(roomId, 0));
    for (let i = 1; i <= candidates; i++) a.emit('ice-candidate', candidate(roomId, i));
    inOrder(await b.take(['sdp-offer', 'ice-candidate'], candidates + 1), pa, 0, `${roomId} A→B`);
    b.emit('sdp-answer', answer(roomId, 0));
    for (let i = 1; i <= candidates; i++) b.emit('ice-candidate', candidate(roomId, i));
    inOrder(await a.take(['sdp-answer', 'ice-candidate'], candidates + 1), pb, 0, `${roomId} B→A`);
    const left = await a.ack('leave', { roomId });
    if (!left?.ok) throw new Error(`${roomId}: leave refused ${JSON.stringify(left)}`);
    const [pl] = await b.take(['peer-left'], 1);
    if (pl.data.peerId !== pa || pl.data.reason !== 'left') throw new Error(`${roomId}: peer-left ${JSON.stringify(pl.data)}`);
    return 2 * candidates + 2;
  } finally {
    a.close();
    b.close();
  }
}

// ------------------------------------------------------------------ churn

/**
 * `pairs` pairs of peers churning for `seconds`: each cycle opens two new
 * connections, joins a new room with the pair's stable peerIds, relays an
 * offer, `relays` candidates and an answer, then ends one of three ways in
 * turn:
 * - `leave`: both say `leave` and close;
 * - `drop`: B's transport drops; A relays while B is away; B reconnects
 *   with the same peerId (`resumed`, or replacing the stale socket if the
 *   server had not noticed yet); everything A sent after B's rejoin arrives,
 *   and whatever arrives of what A sent in between (held) is in order;
 *   then both leave;
 * - `vanish`: both transports drop with no leave: the room empties only
 *   when the grace period ends.
 * `pauseMs` between a pair's cycles sets the pace. Returns the tallies;
 * `failures` holds the first few errors (every cycle's checks throw into it).
 */
export async function churn(url, { pairs = 20, seconds = 10, relays = 10, pauseMs = 200, label = 'churn', onTick } = {}) {
  const stats = { cycles: 0, byMode: { leave: 0, drop: 0, vanish: 0 }, relayed: 0, heldSent: 0, heldReceived: 0, resumed: 0, failures: 0, errors: [] };
  const deadline = Date.now() + seconds * 1000;
  const modes = ['leave', 'drop', 'vanish'];
  const one = async (p, c) => {
    const mode = modes[(p + c) % 3];
    const roomId = `${label}-${p}-${c}`;
    const pa = `${label}-a${p}`;
    const pb = `${label}-b${p}`;
    const open = [];
    const peer = async () => {
      const x = await Peer.connect(url);
      open.push(x);
      return x;
    };
    try {
      const a = await peer();
      const b = await peer();
      await a.join(roomId, pa);
      await b.join(roomId, pb);
      a.emit('sdp-offer', offer(roomId, 0));
      for (let i = 1; i <= relays; i++) a.emit('ice-candidate', candidate(roomId, i));
      inOrder(await b.take(['sdp-offer', 'ice-candidate'], relays + 1), pa, 0, `${roomId} A→B`);
      b.emit('sdp-answer', answer(roomId, 0));
      inOrder(await a.take(['sdp-answer'], 1), pb, 0, `${roomId} B→A`);
      stats.relayed += relays + 2;
      if (mode === 'leave') {
        for (const x of [a, b]) {
          const ack = await x.ack('leave', { roomId });
          if (!ack?.ok) throw new Error(`${roomId}: leave refused ${JSON.stringify(ack)}`);
        }
      } else if (mode === 'drop') {
        b.drop();
        // Sent while B is away (or not yet known to be): held, or lost on
        // the dying transport; what arrives must be in order.
        const between = Math.max(1, relays >> 1);
        for (let i = 1; i <= between; i++) a.emit('ice-candidate', candidate(roomId, 100 + i));
        stats.heldSent += between;
        // A relay's ack comes after it was queued or held: a barrier.
        await a.ack('ice-candidate', candidate(roomId, 100 + between + 1));
        const b2 = await peer();
        const jb = await b2.join(roomId, pb);
        if (jb.resumed) stats.resumed++;
        for (let i = 1; i <= relays; i++) a.emit('ice-candidate', candidate(roomId, 200 + i));
        const got = await b2.take(['ice-candidate'], relays);
        // Everything before the 200s came from the held queue.
        const held = got.filter((e) => e.data.seq < 200);
        const fresh = [...got, ...(await b2.take(['ice-candidate'], held.length))].filter((e) => e.data.seq > 200);
        let last = 100;
        for (const e of held) {
          if (e.data.from !== pa || e.data.seq <= last) throw new Error(`${roomId}: held ${e.data.seq} after ${last}`);
          last = e.data.seq;
        }
        stats.heldReceived += held.length;
        inOrder(fresh, pa, 201, `${roomId} A→B after rejoin`);
        stats.relayed += relays;
        for (const x of [a, b2]) {
          const ack = await x.ack('leave', { roomId });
          if (!ack?.ok) throw new Error(`${roomId}: leave refused ${JSON.stringify(ack)}`);
        }
      } else {
        a.drop();
        b.drop();
      }
      stats.byMode[mode]++;
      stats.cycles++;
    } catch (e) {
      stats.failures++;
      if (stats.errors.length < 10) stats.errors.push(`${mode} ${roomId}: ${e.message}`);
    } finally {
      for (const x of open) x.close();
    }
  };
  const loop = async (p) => {
    for (let c = 0; Date.now() < deadline; c++) {
      await one(p, c);
      onTick?.(stats);
      await sleep(pauseMs * (0.5 + Math.random()));
    }
  };
  await Promise.all(Array.from({ length: pairs }, (_, p) => sleep(Math.random() * pauseMs).then(() => loop(p))));
  return stats;
}

// ------------------------------------------------------------------ fuzz

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
  return r;
}

const KNOWN = ['join', 'leave', 'sdp-offer', 'sdp-answer', 'ice-candidate', 'heartbeat'];
const OTHER = ['error', 'peer-joined', 'peer-left', 'message', 'ping', 'join ', 'JOIN', '', 'é', '\u0000', 'x'.repeat(300)];

/** Random strings: ids, near-ids, unicode, escapes, and sizes up to past the message limit. */
function fuzzString(r, big) {
  switch (r.int(9)) {
    case 0:
      return '';
    case 1:
      return `fz-${r.int(8)}`; // rooms the fuzzers share, so relays happen
    case 2:
      return 'a'.repeat(r.pick([63, 64, 65, 2048, 2049, 4096, 4097]));
    case 3:
      return '\u0000\ud800\udfff"\\/\b\f\n\r\t\u2028é😀'.slice(r.int(8));
    case 4:
      return big && r.chance(0.2) ? 'x'.repeat(r.pick([64 * 1024, 64 * 1024 + 1, MAX_MESSAGE - 64, MAX_MESSAGE + 1024, 2.5 * 1024 * 1024])) : 'y'.repeat(r.int(3000));
    case 5:
      return `candidate:${r.int(9)} 1 udp ${r.int(1e9)} 192.0.2.${r.int(255)} ${r.int(65536)} typ host`;
    case 6:
      return 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n'.repeat(1 + r.int(40));
    default:
      return Math.random().toString(36).slice(2, 2 + r.int(12));
  }
}

/** A random JSON-ish value (Buffers included: binary attachments). */
function fuzzValue(r, depth = 0, big = true) {
  const k = r.int(depth > 3 ? 6 : 11);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -0, 1, -1, 2 ** 53, -(2 ** 63), 1e308, 5e-324, 0.1, 65535, 65536, -1.5, r.int(1e6)]);
    case 3:
    case 4:
      return fuzzString(r, big);
    case 5:
      return r.chance(0.3) ? Buffer.alloc(r.int(r.chance(0.1) ? 100_000 : 100), r.int(256)) : undefined;
    case 6: {
      // Deep nesting, past serde_json's recursion limit (128) sometimes.
      const d = r.pick([10, 127, 129, 200, 500]);
      let v = r.chance(0.5) ? 1 : {};
      for (let i = 0; i < d; i++) v = r.chance(0.5) ? [v] : { a: v };
      return v;
    }
    case 7:
      return Array.from({ length: r.int(6) }, () => fuzzValue(r, depth + 1, big));
    default: {
      // Shaped like a real message, each field of a random type.
      const o = {};
      const keys = ['roomId', 'peerId', 'to', 'from', 'sdp', 'candidate', 'token', 'name', 'type', 'sdpMid', 'sdpMLineIndex', 'x'];
      for (let i = r.int(6); i > 0; i--) {
        const key = r.pick(keys);
        o[key] = r.chance(0.4) ? shapedField(r, key) : fuzzValue(r, depth + 1, big);
      }
      return o;
    }
  }
}

function shapedField(r, key) {
  switch (key) {
    case 'roomId':
      return `fz-${r.int(8)}`;
    case 'peerId':
    case 'to':
    case 'from':
      return `p${r.int(6)}`;
    case 'sdp':
      return { type: r.pick(['offer', 'answer', 'pranswer', 'rollback', 'x', 1]), sdp: r.chance(0.8) ? 'v=0\r\n' : fuzzValue(r, 4, false) };
    case 'candidate':
      return { candidate: r.chance(0.8) ? 'candidate:1 1 udp 1 192.0.2.1 9 typ host' : fuzzValue(r, 4, false), sdpMid: r.pick(['0', 0, null]), sdpMLineIndex: r.pick([0, -1, 70000, '0', null]) };
    default:
      return fuzzValue(r, 4, false);
  }
}

/** Raw Socket.IO packets, written under the client's encoder: malformed ones included. */
function rawPacket(r) {
  const ns = '/signaling';
  const v = () => JSON.stringify(fuzzValue(r, 2, false) ?? null);
  const all = [
    () => `2${ns},["${r.pick(KNOWN)}",${r.pick(['1e400', '-1e999', '123456789012345678901234567890', '{"roomId":"fz-1","from":null,"x":1e400,"candidate":{"candidate":"c"}}', '{"roomId":"fz-1","fr\\u006fm":1,"sdp":{"type":"offer","sdp":"v"}}'])}]`,
    () => `2${ns},[${v()}]`,
    () => `2${ns},[]`,
    () => `2${ns},{}`,
    () => `2${ns},"join"`,
    () => `2${ns},["join"`,
    () => `2${ns},["ice-candidate",${v()}`.slice(0, 10 + r.int(40)),
    () => `2${ns},${r.pick(['0', '1', '99999999999999999999', '-1', '1.5'])}["${r.pick(KNOWN)}",${v()}]`,
    () => `3${ns},${r.int(100)}[${v()}]`,
    () => `0${ns},${v()}`,
    () => `${r.pick(['4', '6', '7', '9', 'x', ''])}${ns},[${v()}]`,
    () => `2/other,["join","fz-1"]`,
    () => `5${ns},["join",{"_placeholder":true,"num":${r.pick([0, 1, -1, 99])}}]`,
    () => `51-${ns},["join",{"_placeholder":true,"num":0}]`,
  ];
  const only = process.env.RAW_ONLY;
  return (only ? all[Number(only)] : r.pick(all))();
}

/**
 * `clients` fuzzing clients for `seconds`: each connects (WebSocket, now
 * and then long-polling), sends bursts of random events (known and unknown
 * names, 0-3 random arguments, with an ack or not), now and then a raw,
 * possibly malformed packet, and disconnects at random (closing, or
 * dropping the transport). Every ack of a known event on a connection
 * that is still up must arrive (`acksMissing`).
 */
export async function fuzz(url, { clients = 6, seconds = 10, seed = Date.now() >>> 0, onTick, polling = 0.1, raw = 0.08, big = true } = {}) {
  const stats = { seed, connections: 0, connectFailures: 0, events: 0, raw: 0, acksAsked: 0, acksOk: 0, acksRefused: 0, acksLost: 0, acksMissing: 0, closedByServer: 0, errorEvents: 0, missing: [] };
  const deadline = Date.now() + seconds * 1000;
  const one = async (i) => {
    const r = rng(seed + i * 7919);
    while (Date.now() < deadline) {
      let peer;
      try {
        peer = await Peer.connect(url, { transports: r.chance(polling) ? ['polling'] : ['websocket'] });
        stats.connections++;
      } catch {
        stats.connectFailures++;
        await sleep(50);
        continue;
      }
      const sock = peer.socket;
      let serverClosed = false;
      sock.on('disconnect', (reason) => {
        if (reason !== 'io client disconnect' && reason !== 'forced close') serverClosed = true;
      });
      sock.on('error', () => stats.errorEvents++);
      const pending = [];
      if (r.chance(0.7)) pending.push(peer.ack('join', r.chance(0.7) ? { roomId: `fz-${r.int(8)}`, peerId: `p${r.int(6)}` } : fuzzValue(r)).catch(() => null));
      const burst = 1 + r.int(40);
      for (let k = 0; k < burst && Date.now() < deadline && sock.connected; k++) {
        if (r.chance(raw)) {
          try {
            sock.io.engine.write(rawPacket(r));
            stats.raw++;
          } catch {
            // the engine is closing
          }
          continue;
        }
        const ev = r.chance(0.75) ? r.pick(KNOWN) : r.pick(OTHER);
        const args = Array.from({ length: r.int(4) }, () => fuzzValue(r, 0, big)).filter((a) => a !== undefined || r.chance(0.5));
        const wantAck = r.chance(0.5);
        stats.events++;
        try {
          if (!wantAck) {
            sock.emit(ev, ...args);
          } else if (KNOWN.includes(ev)) {
            stats.acksAsked++;
            pending.push(
              sock
                .timeout(WAIT)
                .emitWithAck(ev, ...args)
                .then(
                  (a) => (a?.ok === true ? stats.acksOk++ : stats.acksRefused++),
                  () => {
                    // No ack: fine if the connection went away meanwhile
                    // (closed by the server for an oversized message, or by
                    // us); a live connection must answer.
                    if (sock.connected) {
                      stats.acksMissing++;
                      if (stats.missing.length < 5) stats.missing.push(`${ev} ${JSON.stringify(args).slice(0, 200)}`);
                    } else stats.acksLost++;
                  },
                ),
            );
          } else {
            // Unknown events are ignored: no ack comes; do not wait for one.
            sock.timeout(1000).emit(ev, ...args, () => {});
          }
        } catch {
          // reserved names ('connect', ...) throw in the client
        }
        if (k % 8 === 7) await sleep(r.int(20));
      }
      if (r.chance(0.5)) await Promise.all(pending);
      if (serverClosed) stats.closedByServer++;
      const end = r.int(3);
      if (end === 0) peer.close();
      else if (end === 1) peer.drop();
      else {
        await sleep(r.int(200));
        peer.close();
      }
      await Promise.all(pending);
      onTick?.(stats);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => one(i)));
  return stats;
}

/** Normal calls, one after another in fresh rooms, until `until()` is true: counts, and the first failure. */
export async function callsMeanwhile(url, until, label = 'call') {
  const out = { calls: 0, relayed: 0, failures: 0, errors: [] };
  for (let n = 0; !until(); n++) {
    try {
      out.relayed += await pairCall(url, `${label}-${n}-${Math.random().toString(36).slice(2, 8)}`, { candidates: 20, tag: `${label}${n}` });
      out.calls++;
    } catch (e) {
      out.failures++;
      if (out.errors.length < 5) out.errors.push(e.message);
    }
  }
  return out;
}
