// Interop tests: the seed's Node.js socket.io-client (4.8.4) against the Rust
// `ringlet-signal` binary.
//
//   RINGLET_SIGNAL_BIN=/path/to/ringlet-signal ./run.sh
//
// Each group (`describe`) starts its own server on an ephemeral port with the
// flags it needs and stops it (SIGTERM) afterwards, checking it did not die on
// the way. Every wait is bounded; nothing asserts on timing, only on what
// arrives. Where "nothing arrived" is asserted, a barrier makes it
// deterministic: a later message on the same connection (Socket.IO delivers
// in order per connection), or an ack, which the server sends only after it
// has queued the relay for every recipient.
//
// Environment: RINGLET_SIGNAL_BIN (required) the server binary;
// RINGLET_LOG the server's log filter (default info);
// RINGLET_TEST_SERVER_LOG=path appends every server's output to that file.

import { until as untilCommon } from '../common/until.mjs';
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, accessSync, appendFileSync, constants as fsConstants } from 'node:fs';
import net from 'node:net';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';

const NS = '/signaling';
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const WAIT = 5000; // default bound for one expected event or ack

// ------------------------------------------------------------------ server

function serverBin() {
  const bin = process.env.RINGLET_SIGNAL_BIN;
  if (!bin) {
    throw new Error(
      'RINGLET_SIGNAL_BIN is not set: point it at the ringlet-signal binary, e.g.\n' +
        '  RINGLET_SIGNAL_BIN=$HOME/.cache/ringlet-target/debug/ringlet-signal ./run.sh',
    );
  }
  if (!existsSync(bin)) throw new Error(`RINGLET_SIGNAL_BIN=${bin}: no such file`);
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch {
    throw new Error(`RINGLET_SIGNAL_BIN=${bin}: not executable`);
  }
  return bin;
}

const running = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Starts ringlet-signal on 127.0.0.1:0 and learns the port from stdout. */
async function startServer(flags = []) {
  const bin = serverBin();
  const args = ['--listen', '127.0.0.1:0', ...flags];
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RINGLET_LOG: process.env.RINGLET_LOG ?? 'info' },
  });
  running.add(proc);
  // The server's output (its logs go to stdout and/or stderr), for diagnostics.
  // RINGLET_TEST_SERVER_LOG=path: also append every server's output there.
  const logPath = process.env.RINGLET_TEST_SERVER_LOG;
  if (logPath) appendFileSync(logPath, `\n===== ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  let output = '';
  const keep = (d) => {
    if (logPath) appendFileSync(logPath, d);
    output += d;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(proc));

  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')}: no "listening on" line within 10 s\n${output}`));
    }, 10_000);
    const rl = readline.createInterface({ input: proc.stdout });
    rl.on('line', (line) => {
      keep(`${line}\n`);
      const m = /^listening on 127\.0\.0\.1:(\d+)\s*$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${bin} ${args.join(' ')} exited (code ${code}, signal ${signal}) before listening\n${output}`));
    });
  });

  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    proc,
    output: () => output,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    /** Fails if the server died during the group, then stops it. */
    async stop() {
      const wasAlive = proc.exitCode === null && proc.signalCode === null;
      if (wasAlive) {
        proc.kill('SIGTERM');
        const done = await Promise.race([exited, sleep(5000).then(() => null)]);
        if (!done) {
          proc.kill('SIGKILL');
          await exited;
        }
      }
      assert.ok(
        wasAlive,
        `the server died during the tests (code ${proc.exitCode}, signal ${proc.signalCode}):\n${output.slice(-4000)}`,
      );
    },
  };
}

/** One server per `describe`, plus every client the group opened. */
function serverGroup(flags) {
  const g = { server: null, clients: new Set() };
  before(async () => {
    g.server = await startServer(flags);
  });
  afterEach(() => {
    for (const c of g.clients) c.close();
    g.clients.clear();
  });
  after(async () => {
    for (const c of g.clients) c.close();
    g.clients.clear();
    if (g.server) await g.server.stop();
  });
  g.connect = async (opts = {}) => {
    const c = await connect(opts.url ?? g.server.url, opts);
    g.clients.add(c);
    return c;
  };
  return g;
}

async function metric(server, name) {
  const res = await fetch(`${server.url}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  const m = new RegExp(`^${name} (-?\\d+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} not found in /metrics`);
  return Number(m[1]);
}

const until = (what, check, ms = WAIT, every = 20) => untilCommon(what, check, ms, every);

// ------------------------------------------------------------------ clients

/** Records every event a socket receives, so nothing is missed between awaits. */
class Inbox {
  constructor(socket) {
    this.log = [];
    this.counts = new Map();
    this.waiters = new Set();
    socket.onAny((event, ...args) => {
      const e = { event, data: args[0], args, taken: false };
      this.log.push(e);
      this.counts.set(event, (this.counts.get(event) ?? 0) + 1);
      for (const w of [...this.waiters]) w(e);
    });
  }

  all(event) {
    return this.log.filter((e) => e.event === event).map((e) => e.data);
  }

  count(event) {
    return this.counts.get(event) ?? 0;
  }

  summary() {
    const parts = [...this.counts].map(([k, v]) => `${k}×${v}`);
    return parts.length ? parts.join(', ') : 'nothing';
  }

  /** The first not yet taken `event` whose data satisfies `pred`. */
  take(event, pred = () => true, ms = WAIT) {
    const found = this.log.find((e) => !e.taken && e.event === event && pred(e.data));
    if (found) {
      found.taken = true;
      return Promise.resolve(found.data);
    }
    return new Promise((resolve, reject) => {
      const w = (e) => {
        if (!e.taken && e.event === event && pred(e.data)) {
          e.taken = true;
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(e.data);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`timed out after ${ms} ms waiting for '${event}'; received so far: ${this.summary()}`));
      }, ms);
      this.waiters.add(w);
    });
  }

  /** Resolves once `event` has been received `n` times. */
  waitCount(event, n, ms) {
    if (this.count(event) >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = (e) => {
        if (e.event === event && this.count(event) >= n) {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`timed out after ${ms} ms: ${this.count(event)} of ${n} '${event}' received`));
      }, ms);
      this.waiters.add(w);
    });
  }
}

/**
 * Opens a client on the signaling namespace and waits for CONNECT.
 * `transports` undefined = socket.io-client's default (polling, then upgrade).
 */
async function connect(url, { transports, timeout = WAIT } = {}) {
  const socket = io(`${url}${NS}`, {
    forceNew: true,
    reconnection: false,
    timeout,
    ...(transports ? { transports } : {}),
  });
  const inbox = new Inbox(socket);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no connect to ${url}${NS} within ${timeout} ms`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (e) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`connect_error: ${e.message}`));
    });
  });
  const client = {
    socket,
    inbox,
    emit: (ev, ...args) => socket.emit(ev, ...args),
    /** emit with an ack; rejects if none within `ms`. */
    ack: (ev, args, ms = WAIT) => withAck(socket, inbox, ev, args, ms),
    request: (ev, payload, ms = WAIT) => withAck(socket, inbox, ev, [payload], ms),
    take: (...a) => inbox.take(...a),
    close: () => socket.close(),
  };
  return client;
}

function withAck(socket, inbox, ev, args, ms) {
  return socket
    .timeout(ms)
    .emitWithAck(ev, ...args)
    .catch((e) => {
      const arg = args.length ? JSON.stringify(args[0])?.slice(0, 200) : '(no argument)';
      throw new Error(
        `no ack for '${ev}' ${arg} within ${ms} ms (${e.message}); socket ${socket.id} ` +
          `${socket.connected ? 'still connected' : 'disconnected'}; received so far: ${inbox.summary()}`,
      );
    });
}

/** Waits until the engine runs on WebSocket (polling upgraded). */
async function upgraded(client, ms = 10_000) {
  const engine = client.socket.io.engine;
  if (engine.transport.name !== 'websocket') {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`transport still '${engine.transport.name}' after ${ms} ms: no upgrade`)),
        ms,
      );
      engine.once('upgrade', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  assert.equal(client.socket.io.engine.transport.name, 'websocket');
}

function assertAckOk(ack, what) {
  assert.ok(ack && typeof ack === 'object', `${what}: ack is not an object: ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, true, `${what}: expected ok:true, got ${JSON.stringify(ack)}`);
}

function assertAckErr(ack, what, code) {
  assert.ok(ack && typeof ack === 'object', `${what}: ack is not an object: ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, false, `${what}: expected ok:false, got ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.ok(ack.error && typeof ack.error === 'object', `${what}: no error object: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.code, 'string', `${what}: error.code is not a string`);
  assert.equal(typeof ack.error.message, 'string', `${what}: error.message is not a string`);
  if (code) assert.equal(ack.error.code, code, `${what}: ${JSON.stringify(ack.error)}`);
}

async function joinOk(client, params, what = `join ${JSON.stringify(params)}`) {
  const ack = await client.request('join', params);
  assertAckOk(ack, what);
  return ack;
}

const offer = (roomId, extra = {}) => ({
  roomId,
  sdp: { type: 'offer', sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' },
  ...extra,
});
const answer = (roomId, extra = {}) => ({
  roomId,
  sdp: { type: 'answer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' },
  ...extra,
});
const candidate = (roomId, n = 1, extra = {}) => ({
  roomId,
  candidate: {
    candidate: `candidate:${n} 1 udp 2122260223 192.0.2.${n % 250} ${50000 + (n % 10000)} typ host`,
    sdpMid: '0',
    sdpMLineIndex: 0,
  },
  ...extra,
});

// ============================================================ a. seed flow

for (const [label, transports] of [
  ['default transports (polling upgraded to websocket)', undefined],
  ["transports: ['websocket']", ['websocket']],
]) {
  describe(`a. the seed client's flow, ${label}`, () => {
    const g = serverGroup([]);

    it('join with a bare string, then offer, answer and candidates both ways, no echo', { timeout: 30_000 }, async () => {
      const room = 'room-1';
      const a = await g.connect({ transports });
      const b = await g.connect({ transports });

      // Exactly the seed: `socket.emit('join', 'room-1')`, no ack.
      a.emit('join', room);
      b.emit('join', room);
      // Both are in once either hears about the other (whoever joined first
      // is told when the second joins).
      const first = await Promise.any([
        a.take('peer-joined').then((p) => ({ who: 'a', p })),
        b.take('peer-joined').then((p) => ({ who: 'b', p })),
      ]);
      assert.equal(first.p.roomId, room);
      assert.match(first.p.peerId, ID_RE);

      // A → B: sdp-offer (as the seed sends it: {roomId, sdp: RTCSessionDescriptionInit}).
      const o = offer(room);
      a.emit('sdp-offer', o);
      const gotOffer = await b.take('sdp-offer');
      assert.match(gotOffer.from, ID_RE, 'relayed offer carries `from`');
      const aId = gotOffer.from;
      assert.deepEqual(gotOffer, { ...o, from: aId });

      // B → A: sdp-answer.
      const an = answer(room);
      b.emit('sdp-answer', an);
      const gotAnswer = await a.take('sdp-answer');
      assert.match(gotAnswer.from, ID_RE);
      const bId = gotAnswer.from;
      assert.notEqual(aId, bId);
      assert.deepEqual(gotAnswer, { ...an, from: bId });
      // The first joiner's peer-joined named the other one.
      assert.equal(first.p.peerId, first.who === 'a' ? bId : aId);

      // Candidates both ways, in the seed's shape.
      const ca = candidate(room, 1);
      a.emit('ice-candidate', ca);
      assert.deepEqual(await b.take('ice-candidate'), { ...ca, from: aId });
      const cb = candidate(room, 2);
      b.emit('ice-candidate', cb);
      assert.deepEqual(await a.take('ice-candidate'), { ...cb, from: bId });
      // A's end-of-candidates marker; when B has it, any echo of B's own
      // candidate would already have reached B.
      const end = { roomId: room, candidate: { candidate: '', sdpMid: '0', sdpMLineIndex: 0 } };
      a.emit('ice-candidate', end);
      assert.deepEqual(await b.take('ice-candidate'), { ...end, from: aId });
      // Barrier for A: an ack is queued behind anything relayed to A before it.
      assertAckOk(await a.request('heartbeat', {}), 'heartbeat');

      // No echo: nobody got back what it sent.
      assert.equal(a.inbox.count('sdp-offer'), 0, 'A must not get its own offer back');
      assert.equal(b.inbox.count('sdp-answer'), 0, 'B must not get its own answer back');
      assert.equal(a.inbox.count('ice-candidate'), 1, `A got only B's candidate: ${JSON.stringify(a.inbox.all('ice-candidate'))}`);
      assert.equal(b.inbox.count('ice-candidate'), 2, `B got only A's two candidates: ${JSON.stringify(b.inbox.all('ice-candidate'))}`);
      for (const c of [a, b]) assert.equal(c.inbox.count('error'), 0, `no error: ${JSON.stringify(c.inbox.all('error'))}`);

      // The transport in use is the one asked for (default: upgraded to websocket).
      await upgraded(a);
      await upgraded(b);
    });
  });
}

// `--workers 2`: the race below needs the connection's writer and its
// connect handler on different runtime threads (one worker is the default).
for (const flags of [[], ['--workers', '2']]) describe(`a. the seed's join, emitted before the connection is up, is never lost${flags.length ? ` (${flags.join(' ')})` : ''}`, () => {
  // The seed calls `io('/signaling')` and `emit('join', ...)` at once;
  // socket.io-client buffers the emit and flushes it the moment the
  // namespace CONNECT arrives. The server must already be listening for
  // events by then. Many clients at once make a lost first event likely to
  // show; every join here must be answered.
  const g = serverGroup(flags);
  const ROUNDS = 20;
  const PER_ROUND = 50;

  it(`${ROUNDS * PER_ROUND} clients, join emitted before connect, all acked`, { timeout: 120_000 }, async () => {
    const lost = [];
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(
        Array.from({ length: PER_ROUND }, async (_, i) => {
          const room = `race-${round}-${i}`;
          const socket = io(`${g.server.url}${NS}`, { forceNew: true, reconnection: false, transports: ['websocket'] });
          try {
            const ack = await socket.timeout(10_000).emitWithAck('join', room);
            assertAckOk(ack, `join ${room}`);
            assert.equal(ack.roomId, room);
          } catch (e) {
            lost.push(`${room} (socket ${socket.id ?? 'never connected'}, ${socket.connected ? 'connected' : 'not connected'}): ${e.message}`);
          } finally {
            socket.close();
          }
        }),
      );
    }
    assert.deepEqual(lost, [], `${lost.length} of ${ROUNDS * PER_ROUND} joins got no answer`);
  });
});

// ============================================================ b. join with ack

describe('b. extended join with ack, presence and room-full (--max-peers 2)', () => {
  const g = serverGroup(['--max-peers', '2']);

  it('peers, polite flags, peer-joined, room-full, leave → peer-left', { timeout: 30_000 }, async () => {
    const room = 'room-b';
    const a = await g.connect({ transports: ['websocket'] });
    const b = await g.connect({ transports: ['websocket'] });
    const c = await g.connect({ transports: ['websocket'] });

    const ackA = await joinOk(a, { roomId: room, peerId: 'alice', name: 'Alice' });
    assert.equal(ackA.roomId, room);
    assert.equal(ackA.peerId, 'alice');
    assert.deepEqual(ackA.peers, []);
    assert.equal(ackA.polite, false, 'the first joiner is impolite');
    assert.ok(Array.isArray(ackA.iceServers), 'iceServers is an array');
    assert.equal(ackA.resumed, false);

    const ackB = await joinOk(b, { roomId: room, peerId: 'bob' });
    assert.equal(ackB.peerId, 'bob');
    assert.deepEqual(ackB.peers, [{ peerId: 'alice', name: 'Alice' }]);
    assert.equal(ackB.polite, true, 'the second joiner is polite');
    assert.equal(ackB.resumed, false);

    assert.deepEqual(await a.take('peer-joined'), { roomId: room, peerId: 'bob' });

    // The same socket joining again is answered the same (a retry).
    const again = await joinOk(b, { roomId: room, peerId: 'bob' });
    assert.equal(again.peerId, 'bob');
    assert.equal(again.polite, true);

    // A third peer: room-full, by ack and, without ack, by an error event.
    assertAckErr(await c.request('join', { roomId: room, peerId: 'carol' }), 'third join', 'room-full');
    c.emit('join', { roomId: room, peerId: 'carol' });
    const err = await c.take('error');
    assert.equal(err.code, 'room-full');
    assert.equal(typeof err.message, 'string');
    assert.equal(err.event, 'join');
    assert.equal(err.roomId, room);
    c.emit('join', room); // the seed form is refused the same way
    assert.equal((await c.take('error')).code, 'room-full');

    // Nobody heard about carol.
    assertAckOk(await a.request('heartbeat', {}), 'heartbeat');
    assert.equal(a.inbox.count('peer-joined'), 1);

    // B leaves: A hears peer-left; B can no longer relay into the room.
    assertAckOk(await b.request('leave', { roomId: room }), 'leave');
    assert.deepEqual(await a.take('peer-left'), { roomId: room, peerId: 'bob', reason: 'left' });
    assertAckErr(await b.request('sdp-offer', offer(room)), 'offer after leave', 'not-in-room');
    assertAckErr(await b.request('leave', { roomId: room }), 'second leave', 'not-in-room');

    // The freed place goes to carol, who joins without a peerId: one is assigned.
    const ackC = await joinOk(c, { roomId: room });
    assert.match(ackC.peerId, ID_RE);
    assert.deepEqual(ackC.peers, [{ peerId: 'alice', name: 'Alice' }]);
    assert.equal(ackC.polite, true);
    assert.deepEqual(await a.take('peer-joined'), { roomId: room, peerId: ackC.peerId });

    // A deliberate disconnect is a leave at once (no grace).
    c.close();
    assert.deepEqual(await a.take('peer-left'), { roomId: room, peerId: ackC.peerId, reason: 'left' });
  });

  it('seed-form join acks with a server-assigned peerId', { timeout: 15_000 }, async () => {
    const a = await g.connect({ transports: ['websocket'] });
    const ack = await joinOk(a, 'room-b2');
    assert.equal(ack.roomId, 'room-b2');
    assert.match(ack.peerId, ID_RE);
    assert.deepEqual(ack.peers, []);
    assert.equal(ack.polite, false);
  });
});

// ============================================================ c. burst ordering

const BURST = 10_000;

for (const [label, transports, budget] of [
  ["transports: ['websocket']", ['websocket'], 60_000],
  ['default transports (polling, then upgraded to websocket)', undefined, 120_000],
  ["transports: ['polling'] (HTTP long-polling only)", ['polling'], 120_000],
]) {
  describe(`c. ${BURST} back-to-back ice-candidates, ${label}`, () => {
    // Far past the default event rate on purpose: order and loss, not limits.
    const g = serverGroup(['--max-events-per-sec', '0']);

    it('arrive complete and in strictly increasing order', { timeout: budget + 15_000 }, async (t) => {
      const room = 'burst';
      const a = await g.connect({ transports });
      const b = await g.connect({ transports });
      await joinOk(a, { roomId: room, peerId: 'sender' });
      await joinOk(b, { roomId: room, peerId: 'receiver' });

      t.diagnostic(`transports at the start of the burst: A ${a.socket.io.engine.transport.name}, B ${b.socket.io.engine.transport.name}`);
      for (let seq = 0; seq < BURST; seq++) {
        a.emit('ice-candidate', candidate(room, seq, { seq }));
      }
      await b.inbox.waitCount('ice-candidate', BURST, budget);

      const got = b.inbox.all('ice-candidate');
      assert.equal(got.length, BURST);
      let prev = -1;
      for (let i = 0; i < got.length; i++) {
        const m = got[i];
        assert.equal(m.from, 'sender');
        assert.ok(m.seq > prev, `out of order at #${i}: seq ${m.seq} after ${prev}`);
        prev = m.seq;
      }
      assert.deepEqual(
        got.map((m) => m.seq),
        Array.from({ length: BURST }, (_, i) => i),
      );
      assert.deepEqual(got[42], { ...candidate(room, 42, { seq: 42 }), from: 'sender' });
      // Nothing was refused (e.g. peer-backlogged) along the way.
      assertAckOk(await a.request('heartbeat', {}), 'heartbeat');
      assert.equal(a.inbox.count('error'), 0, `sender got errors: ${JSON.stringify(a.inbox.all('error').slice(0, 3))}`);
      assert.equal(a.inbox.count('ice-candidate'), 0, 'no echo');
      t.diagnostic(`transports at the end: A ${a.socket.io.engine.transport.name}, B ${b.socket.io.engine.transport.name}`);
    });
  });
}

// ============================================================ d. bad input

// 200 KB: over every event's own limit, under the server's 2 MiB message
// limit, so it must be refused by the event's validation.
const BIG = 'x'.repeat(200 * 1024);
// 1 MB: Socket.IO's own default maxHttpBufferSize, still under the
// server's 2 MiB message limit: refused readably like any other.
const MB = 'x'.repeat(1024 * 1024);
// 3 MB: over the server's message limit (engine.io maxPayload / WebSocket
// frame cap): the connection is closed, nothing else is affected.
const OVER = 'x'.repeat(3 * 1024 * 1024);

function nested(depth) {
  let v = { roomId: ['bad'], deeper: null };
  for (let i = 0; i < depth; i++) v = { roomId: v, sdp: [v, { type: v }], candidate: { candidate: [v] }, peerId: [v] };
  return v;
}

// [label, payload] — every one must be refused on every event. `undefined`
// means the event is emitted with no argument at all.
const COMMON_BAD = [
  ['no argument', undefined],
  ['null', null],
  ['42', 42],
  ['-1.5e300', -1.5e300],
  ['true', true],
  ['[]', []],
  ['[roomId]', ['room-ok']],
  ['{}', {}],
  ['200 KB string', BIG],
  ['object with a 200 KB roomId', { roomId: BIG }],
  ['200 KB object', { roomId: 'room-ok', junk: BIG }],
  ['nested garbage (depth 4)', nested(4)],
  ['deeply nested arrays (depth 1000)', JSON.parse('['.repeat(1000) + ']'.repeat(1000))],
  ['binary attachment', Buffer.from('not json at all')],
  ['roomId: 42', { roomId: 42 }],
  ['roomId: null', { roomId: null }],
  ['roomId: {}', { roomId: {} }],
  ["roomId: ''", { roomId: '' }],
  ['roomId with a space', { roomId: 'room 1' }],
  ['roomId of 65 chars', { roomId: 'r'.repeat(65) }],
  ['roomId with a lone surrogate', { roomId: 'room-\ud800' }],
  ['roomId: path traversal', { roomId: '../../etc/passwd' }],
];

const BAD = {
  join: [
    ['string that is not a room id', 'not a room!'],
    ['peerId: 42', { roomId: 'room-ok', peerId: 42 }],
    ['peerId with a slash', { roomId: 'room-ok', peerId: 'a/b' }],
    ['name: 42', { roomId: 'room-ok', name: 42 }],
    ['name of 65 chars', { roomId: 'room-ok', name: 'n'.repeat(65) }],
    ['token: []', { roomId: 'room-ok', token: [] }],
  ],
  'sdp-offer': [
    ['string', 'str'],
    ['no sdp', { roomId: 'JOINED' }],
    ['sdp: "v=0"', { roomId: 'JOINED', sdp: 'v=0' }],
    ['sdp: null', { roomId: 'JOINED', sdp: null }],
    ['sdp.sdp: 42', { roomId: 'JOINED', sdp: { type: 'offer', sdp: 42 } }],
    ['sdp.type: "bogus"', { roomId: 'JOINED', sdp: { type: 'bogus', sdp: 'v=0' } }],
    ['sdp.type: "answer" on sdp-offer', { roomId: 'JOINED', sdp: { type: 'answer', sdp: 'v=0' } }],
    ['empty sdp.sdp', { roomId: 'JOINED', sdp: { type: 'offer', sdp: '' } }],
    ['sdp.sdp of 200 KB', { roomId: 'JOINED', sdp: { type: 'offer', sdp: BIG } }],
    ['to: 7', { ...offer('JOINED'), to: 7 }],
    ['to: unknown peer', { ...offer('JOINED'), to: 'nobody' }],
    ['to: itself', { ...offer('JOINED'), to: 'SELF' }],
    ['valid, for a room not joined', offer('not-joined')],
  ],
  'sdp-answer': [
    ['string', 'str'],
    ['no sdp', { roomId: 'JOINED' }],
    ['sdp: []', { roomId: 'JOINED', sdp: [] }],
    ['sdp.type: "offer" on sdp-answer', { roomId: 'JOINED', sdp: { type: 'offer', sdp: 'v=0' } }],
    ['sdp.type: "rollback"', { roomId: 'JOINED', sdp: { type: 'rollback', sdp: 'v=0' } }],
    ['sdp.type: 1', { roomId: 'JOINED', sdp: { type: 1, sdp: 'v=0' } }],
    ['to: {}', { ...answer('JOINED'), to: {} }],
    ['valid, for a room not joined', answer('not-joined')],
  ],
  'ice-candidate': [
    ['string', 'str'],
    ['no candidate', { roomId: 'JOINED' }],
    ['candidate: 42', { roomId: 'JOINED', candidate: 42 }],
    ['candidate: "a=candidate"', { roomId: 'JOINED', candidate: 'candidate:1 1 udp 1 192.0.2.1 9 typ host' }],
    ['candidate.candidate: 5', { roomId: 'JOINED', candidate: { candidate: 5 } }],
    ['sdpMLineIndex: -1', { roomId: 'JOINED', candidate: { candidate: 'c', sdpMid: '0', sdpMLineIndex: -1 } }],
    ['sdpMLineIndex: "0"', { roomId: 'JOINED', candidate: { candidate: 'c', sdpMid: '0', sdpMLineIndex: '0' } }],
    ['sdpMid: 0', { roomId: 'JOINED', candidate: { candidate: 'c', sdpMid: 0, sdpMLineIndex: 0 } }],
    ['candidate of 200 KB', { roomId: 'JOINED', candidate: { candidate: BIG, sdpMid: '0', sdpMLineIndex: 0 } }],
    ['valid, for a room not joined', candidate('not-joined')],
  ],
  leave: [
    ['string', 'str'],
    ['room not joined', { roomId: 'not-joined' }],
  ],
};

/** Replaces the JOINED / SELF placeholders with the case's own room and peer. */
function fill(v, room, self) {
  if (v === 'JOINED') return room;
  if (v === 'SELF') return self;
  if (Array.isArray(v) || v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, room, self)]));
}

for (const [tlabel, transports] of [
  ["transports: ['websocket']", ['websocket']],
  ["transports: ['polling'] (HTTP long-polling)", ['polling']],
]) describe(`d. bad input is refused with an error, and the server carries on, ${tlabel}`, () => {
  const g = serverGroup(['--max-peers', '2']);
  let n = 0;

  for (const ev of ['join', 'sdp-offer', 'sdp-answer', 'ice-candidate', 'leave']) {
    const cases = [...COMMON_BAD, ...BAD[ev]];
    for (const withAck of [true, false]) {
      describe(`${ev}, ${withAck ? 'with ack' : 'without ack (error event)'}`, () => {
        for (const [label, raw] of cases) {
          it(label, { timeout: 20_000 }, async () => {
            const room = `bad-${++n}`;
            const self = `p${n}`;
            const c = await g.connect({ transports });
            // Relays are checked from inside a room (so validation, not
            // membership, is what refuses them), with a peer to relay to.
            let peer = null;
            if (ev !== 'join') {
              await joinOk(c, { roomId: room, peerId: self });
              peer = await g.connect({ transports });
              await joinOk(peer, { roomId: room, peerId: `${self}-peer` });
            }
            const payload = fill(raw, room, self);
            const args = payload === undefined ? [] : [payload];
            const disconnected = new Promise((r) => c.socket.once('disconnect', (reason) => r(reason)));

            if (withAck) {
              const reply = await Promise.race([
                c.ack(ev, args, 10_000).then((ack) => ({ ack }), (e) => ({ noAck: e.message })),
                disconnected.then((reason) => ({ disconnected: reason })),
              ]);
              assert.ok(!reply.disconnected, `the server dropped the connection (${reply.disconnected}) instead of answering`);
              assert.ok(!reply.noAck, `no ack: ${reply.noAck}`);
              assertAckErr(reply.ack, `${ev} ${label}`);
            } else {
              c.emit(ev, ...args);
              const reply = await Promise.race([
                c.take('error', () => true, 10_000).then((error) => ({ error }), (e) => ({ none: e.message })),
                disconnected.then((reason) => ({ disconnected: reason })),
              ]);
              assert.ok(!reply.disconnected, `the server dropped the connection (${reply.disconnected}) instead of answering`);
              assert.ok(!reply.none, `no error event: ${reply.none}`);
              const err = reply.error;
              assert.equal(typeof err.code, 'string', JSON.stringify(err));
              assert.equal(typeof err.message, 'string', JSON.stringify(err));
              assert.equal(err.event, ev, `error names the refused event: ${JSON.stringify(err)}`);
            }
            // The connection is still usable, and nothing reached the peer.
            assertAckOk(await c.request('heartbeat', {}), 'heartbeat after the refusal');
            if (peer) {
              assertAckOk(await peer.request('heartbeat', {}), 'peer heartbeat');
              for (const e of ['sdp-offer', 'sdp-answer', 'ice-candidate', 'peer-left']) {
                assert.equal(peer.inbox.count(e), 0, `the peer got ${e}: ${JSON.stringify(peer.inbox.all(e)).slice(0, 300)}`);
              }
            }
            c.close();
            if (peer) peer.close();
          });
        }
      });
    }
  }

  // The brief: any JSON, huge strings included, on any event, is answered
  // with an error (ack or `error` event). One test per event, each variant
  // on a fresh connection; the failure lists what happened to each.
  it('over the 2 MiB message limit: that connection closes, others carry on', { timeout: 60_000 }, async () => {
    const room = `over-${++n}`;
    const a = await g.connect({ transports });
    const b = await g.connect({ transports });
    await joinOk(a, { roomId: room, peerId: 'a' });
    await joinOk(b, { roomId: room, peerId: 'b' });
    const bad = await g.connect({ transports });
    const dropped = new Promise((r) => bad.socket.once('disconnect', (reason) => r(reason)));
    bad.emit('ice-candidate', { roomId: room, candidate: { candidate: OVER } });
    const reason = await Promise.race([dropped, new Promise((r) => setTimeout(r, 20_000, 'still connected'))]);
    assert.notEqual(reason, 'still connected');
    // The call next door never noticed.
    a.emit('ice-candidate', { roomId: room, candidate: { candidate: 'candidate:after', sdpMid: '0', sdpMLineIndex: 0 } });
    const got = await b.take('ice-candidate', () => true, 10_000);
    assert.equal(got.candidate.candidate, 'candidate:after');
    bad.close();
  });

  describe('1 MB payloads (under the 2 MiB message limit)', () => {
    const HUGE = {
      join: [['1 MB string', MB], ['1 MB roomId', { roomId: MB }], ['1 MB name', { roomId: 'room-ok', name: MB }]],
      'sdp-offer': [['1 MB string', MB], ['1 MB roomId', { roomId: MB }], ['1 MB sdp.sdp', { roomId: 'JOINED', sdp: { type: 'offer', sdp: MB } }]],
      'sdp-answer': [['1 MB string', MB], ['1 MB roomId', { roomId: MB }], ['1 MB sdp.sdp', { roomId: 'JOINED', sdp: { type: 'answer', sdp: MB } }]],
      'ice-candidate': [['1 MB string', MB], ['1 MB roomId', { roomId: MB }], ['1 MB candidate', { roomId: 'JOINED', candidate: { candidate: MB, sdpMid: '0', sdpMLineIndex: 0 } }]],
      leave: [['1 MB string', MB], ['1 MB roomId', { roomId: MB }], ['1 MB extra field', { roomId: 'JOINED', junk: MB }]],
    };
    for (const ev of Object.keys(HUGE)) {
      it(`${ev}: answered with an error, with and without ack`, { timeout: 60_000 }, async () => {
        const outcomes = [];
        for (const [label, raw] of HUGE[ev]) {
          for (const withAck of [true, false]) {
            const room = `huge-${++n}`;
            const c = await g.connect({ transports });
            if (ev !== 'join') await joinOk(c, { roomId: room, peerId: `p${n}` });
            const payload = fill(raw, room, `p${n}`);
            const disconnected = new Promise((r) => c.socket.once('disconnect', (reason) => r(reason)));
            let outcome;
            if (withAck) {
              outcome = await Promise.race([
                c.ack(ev, [payload], 10_000).then(
                  (ack) => (ack?.ok === false && typeof ack.error?.code === 'string' ? `ok: ${ack.error.code}` : `bad ack ${JSON.stringify(ack)}`),
                  () => 'no ack',
                ),
                disconnected.then((reason) => `connection dropped (${reason})`),
              ]);
            } else {
              c.emit(ev, payload);
              outcome = await Promise.race([
                c.take('error', () => true, 10_000).then(
                  (e) => (typeof e?.code === 'string' ? `ok: ${e.code}` : `bad error event ${JSON.stringify(e)}`),
                  () => 'no error event',
                ),
                disconnected.then((reason) => `connection dropped (${reason})`),
              ]);
            }
            outcomes.push(`${label}, ${withAck ? 'ack' : 'no ack'} → ${outcome}`);
            c.close();
          }
        }
        const bad = outcomes.filter((o) => !o.includes('→ ok: '));
        assert.deepEqual(bad, [], `not answered with an error:\n  ${bad.join('\n  ')}`);
      });
    }
  });

  it('unknown events are ignored', { timeout: 10_000 }, async () => {
    const c = await g.connect({ transports });
    c.emit('no-such-event', { roomId: 'x' });
    c.emit('message', null);
    assertAckOk(await c.request('heartbeat', {}), 'heartbeat');
    assert.equal(c.inbox.count('error'), 0);
  });

  it('afterwards: a normal call in another room works, /healthz answers ok', { timeout: 20_000 }, async () => {
    assert.ok(g.server.alive(), `the server died:\n${g.server.output().slice(-4000)}`);
    const room = 'after-the-storm';
    const a = await g.connect();
    const b = await g.connect();
    await joinOk(a, { roomId: room, peerId: 'alice' });
    await joinOk(b, { roomId: room, peerId: 'bob' });
    assertAckOk(await a.request('sdp-offer', offer(room)), 'offer');
    assert.deepEqual(await b.take('sdp-offer'), { ...offer(room), from: 'alice' });
    assertAckOk(await b.request('sdp-answer', answer(room)), 'answer');
    assert.deepEqual(await a.take('sdp-answer'), { ...answer(room), from: 'bob' });
    assertAckOk(await a.request('ice-candidate', candidate(room)), 'candidate');
    assert.deepEqual(await b.take('ice-candidate'), { ...candidate(room), from: 'alice' });

    const res = await fetch(`${g.server.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal((await res.text()).trim(), 'ok');
  });
});

// ============================================================ e. isolation

describe('e. rooms are isolated; relays keep fields and carry the true sender (--max-peers 3)', () => {
  const g = serverGroup(['--max-peers', '3']);

  it('relays in one room never reach the other', { timeout: 30_000 }, async () => {
    const [x1, x2, y1, y2] = await Promise.all([1, 2, 3, 4].map(() => g.connect({ transports: ['websocket'] })));
    await joinOk(x1, { roomId: 'room-x', peerId: 'p1' });
    await joinOk(x2, { roomId: 'room-x', peerId: 'p2' });
    // Same peer ids in the other room: ids are per room.
    await joinOk(y1, { roomId: 'room-y', peerId: 'p1' });
    await joinOk(y2, { roomId: 'room-y', peerId: 'p2' });

    // Y talks (acked: relayed to every recipient's queue before the ack).
    for (const m of [offer('room-y'), candidate('room-y', 7)]) {
      assertAckOk(await y1.request(m.sdp ? 'sdp-offer' : 'ice-candidate', m), 'y1 relay');
    }
    assertAckOk(await y2.request('sdp-answer', answer('room-y')), 'y2 answer');
    // X1 tries to speak into room-y without being in it.
    assertAckErr(await x1.request('sdp-offer', offer('room-y')), 'x1 → room-y', 'not-in-room');
    x1.emit('ice-candidate', candidate('room-y', 9));
    assert.equal((await x1.take('error')).code, 'not-in-room');
    // X talks; when X's messages arrive, any leak from Y would be ahead of them.
    assertAckOk(await x1.request('sdp-offer', offer('room-x', { marker: 'x' })), 'x1 offer');
    assertAckOk(await x2.request('sdp-answer', answer('room-x', { marker: 'x' })), 'x2 answer');
    assert.deepEqual(await x2.take('sdp-offer'), { ...offer('room-x', { marker: 'x' }), from: 'p1' });
    assert.deepEqual(await x1.take('sdp-answer'), { ...answer('room-x', { marker: 'x' }), from: 'p2' });
    assert.deepEqual(await y2.take('sdp-offer'), { ...offer('room-y'), from: 'p1' });
    assert.deepEqual(await y2.take('ice-candidate'), { ...candidate('room-y', 7), from: 'p1' });
    assert.deepEqual(await y1.take('sdp-answer'), { ...answer('room-y'), from: 'p2' });
    for (const c of [y1, y2]) assertAckOk(await c.request('heartbeat', {}), 'heartbeat');

    for (const [name, c, room] of [['x1', x1, 'room-x'], ['x2', x2, 'room-x'], ['y1', y1, 'room-y'], ['y2', y2, 'room-y']]) {
      for (const e of ['sdp-offer', 'sdp-answer', 'ice-candidate', 'peer-joined', 'peer-left']) {
        for (const m of c.inbox.all(e)) assert.equal(m.roomId, room, `${name} got ${e} from another room: ${JSON.stringify(m)}`);
      }
    }
    assert.equal(x1.inbox.count('ice-candidate') + x2.inbox.count('ice-candidate'), 0, 'no candidate crossed into room-x');
    assert.equal(x2.inbox.count('sdp-offer'), 1);
    assert.equal(x1.inbox.count('sdp-answer'), 1);
    assert.equal(y2.inbox.count('sdp-offer'), 1, 'x1 could not reach room-y');
    assert.equal(y2.inbox.count('ice-candidate'), 1, 'x1 could not reach room-y');
  });

  it('`to` reaches only the addressed peer', { timeout: 20_000 }, async () => {
    const room = 'room-to';
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => g.connect({ transports: ['websocket'] })));
    await joinOk(a, { roomId: room, peerId: 'a' });
    await joinOk(b, { roomId: room, peerId: 'b' });
    await joinOk(c, { roomId: room, peerId: 'c' });
    const m = offer(room, { to: 'c' });
    assertAckOk(await a.request('sdp-offer', m), 'offer to c');
    assert.deepEqual(await c.take('sdp-offer'), { ...m, from: 'a' });
    assertAckOk(await a.request('ice-candidate', candidate(room, 3)), 'candidate to all');
    assert.deepEqual(await b.take('ice-candidate'), { ...candidate(room, 3), from: 'a' });
    assert.deepEqual(await c.take('ice-candidate'), { ...candidate(room, 3), from: 'a' });
    assert.equal(b.inbox.count('sdp-offer'), 0, 'b must not see an offer addressed to c');
  });

  it('`from` is always the sender, whatever the sender wrote; other fields are kept', { timeout: 20_000 }, async () => {
    const room = 'room-from';
    const a = await g.connect({ transports: ['websocket'] });
    const b = await g.connect({ transports: ['websocket'] });
    await joinOk(a, { roomId: room, peerId: 'alice' });
    await joinOk(b, { roomId: room, peerId: 'bob' });
    const spoofs = [
      ['from: "mallory"', 'mallory'],
      ['from: 42', 42],
      ['from: {}', { peerId: 'mallory' }],
      ['from: null', null],
      ['from: ""', ''],
      ['from: false', false],
    ];
    for (const [i, [label, from]] of spoofs.entries()) {
      const m = candidate(room, i, { from, t: 1234.5, meta: { nested: [1, 'two', null] }, seq: i });
      assertAckOk(await a.request('ice-candidate', m), `candidate with ${label}`);
      const got = await b.take('ice-candidate', (x) => x.seq === i);
      assert.equal(got.from, 'alice', `${label}: the relayed \`from\` must be the sender's peerId, got ${JSON.stringify(got.from)}`);
      assert.deepEqual(got, { ...m, from: 'alice' }, `${label}: other fields kept as sent`);
    }
  });
});

// ============================================================ f. reconnection hold

/** A TCP proxy whose connections can be cut abruptly (RST, no close frame). */
async function startProxy(targetPort) {
  const conns = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    conns.add(down);
    conns.add(up);
    down.pipe(up);
    up.pipe(down);
    const drop = () => {
      down.destroy();
      up.destroy();
      conns.delete(down);
      conns.delete(up);
    };
    for (const s of [down, up]) {
      s.on('error', drop);
      s.on('close', drop);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      for (const s of conns) s.resetAndDestroy();
      conns.clear();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

describe('f. reconnection hold (--grace 2s)', () => {
  const GRACE_MS = 2000;
  const g = serverGroup(['--grace', '2s']);
  const proxies = [];
  afterEach(() => {
    for (const p of proxies.splice(0)) p.close();
  });

  /** A and B in `room`, B through a proxy that can be cut. */
  async function pair(room) {
    const proxy = await startProxy(g.server.port);
    proxies.push(proxy);
    const a = await g.connect({ transports: ['websocket'] });
    const b = await g.connect({ url: proxy.url, transports: ['websocket'] });
    await joinOk(a, { roomId: room, peerId: 'alice' });
    const ackB = await joinOk(b, { roomId: room, peerId: 'bob' });
    assert.equal(ackB.polite, true);
    assert.deepEqual(await a.take('peer-joined'), { roomId: room, peerId: 'bob' });
    return { a, b, proxy };
  }

  /** Cuts B's TCP connection and waits until the server counts B away. */
  async function dropB(b, proxy) {
    const away = await metric(g.server, 'ringlet_away_peers');
    const gone = new Promise((r) => b.socket.once('disconnect', r));
    proxy.cut();
    const reason = await gone;
    assert.notEqual(reason, 'io client disconnect');
    await until('the server to mark B away', async () => (await metric(g.server, 'ringlet_away_peers')) === away + 1);
  }

  it('B comes back within the grace: resumed, gets the held offer, A never sees peer-left', { timeout: 30_000 }, async () => {
    const room = 'room-hold';
    const { a, b, proxy } = await pair(room);
    await dropB(b, proxy);

    // A offers while B is away: accepted (held for B).
    const o = offer(room, { note: 'sent while bob was away' });
    assertAckOk(await a.request('sdp-offer', o), 'offer while B is away');
    const c = candidate(room, 5);
    assertAckOk(await a.request('ice-candidate', c), 'candidate while B is away');

    // B comes back: a new client, directly, same peerId.
    const b2 = await g.connect({ transports: ['websocket'] });
    const ack = await joinOk(b2, { roomId: room, peerId: 'bob' });
    assert.equal(ack.resumed, true, `resumed: ${JSON.stringify(ack)}`);
    assert.equal(ack.peerId, 'bob');
    assert.equal(ack.polite, true, 'a rejoin keeps its role');
    assert.deepEqual(ack.peers, [{ peerId: 'alice' }]);
    assert.deepEqual(await b2.take('sdp-offer'), { ...o, from: 'alice' });
    assert.deepEqual(await b2.take('ice-candidate'), { ...c, from: 'alice' });
    assert.equal(b2.inbox.log[0].event, 'sdp-offer', 'held messages come in order');

    // The call goes on both ways.
    assertAckOk(await b2.request('sdp-answer', answer(room)), 'answer after resume');
    assert.deepEqual(await a.take('sdp-answer'), { ...answer(room), from: 'bob' });

    // Outlive the grace timer of that absence: it must not fire on the resumed peer.
    await sleep(GRACE_MS + 1000);
    assertAckOk(await a.request('sdp-offer', offer(room, { n: 2 })), 'offer after the grace');
    assert.deepEqual(await b2.take('sdp-offer', (m) => m.n === 2), { ...offer(room, { n: 2 }), from: 'alice' });
    assert.equal(a.inbox.count('peer-left'), 0, `A saw peer-left: ${JSON.stringify(a.inbox.all('peer-left'))}`);
    assert.equal(b2.inbox.count('peer-left'), 0);
    assert.equal(a.inbox.count('error'), 0);
  });

  it('B stays away past the grace: A gets peer-left with reason timeout', { timeout: 30_000 }, async () => {
    const room = 'room-gone';
    const { a, b, proxy } = await pair(room);
    await dropB(b, proxy);
    assertAckOk(await a.request('sdp-offer', offer(room)), 'offer while B is away');

    const left = await a.take('peer-left', () => true, GRACE_MS + 10_000);
    assert.deepEqual(left, { roomId: room, peerId: 'bob', reason: 'timeout' });

    // Coming back now is a fresh join: no resume, nothing held, A is told.
    const b2 = await g.connect({ transports: ['websocket'] });
    const ack = await joinOk(b2, { roomId: room, peerId: 'bob' });
    assert.equal(ack.resumed, false);
    assert.deepEqual(await a.take('peer-joined'), { roomId: room, peerId: 'bob' });
    assertAckOk(await b2.request('heartbeat', {}), 'heartbeat');
    assert.equal(b2.inbox.count('sdp-offer'), 0, 'the held offer was dropped with the place');
  });
});
