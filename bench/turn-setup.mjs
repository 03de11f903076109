#!/usr/bin/env node
// A call through TURN against a direct one, on loopback: two ringlet-peers
// (audio only: the tone as Opus, and the data channel) through
// ringlet-signal, first with host candidates (no TURN), then relay-only
// (--ice-policy relay) through a real coturn with credentials minted by
// ringlet-signal (--turn-url/--turn-secret). Per call, from each peer's
// --json events: join -> ICE connected, join -> connected (DTLS up),
// join -> data channel open (a call's figure is the later peer's), and the
// selected pair's RTT from the summary. "join" as in call-setup.mjs.
//
// Usage (from the repository root):
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... node bench/turn-setup.mjs [CALLS=10]
// Prints one JSON line per configuration on stdout; progress on stderr.

import { loadHarness, log, summarize } from './common.mjs';

const CALLS = Number(process.argv[2] ?? process.env.CALLS ?? 10);
const SECS = 3;
const h = await loadHarness();

async function call(server, room, extra) {
  const opts = (peerId) => ({ server, room, peerId, duration: SECS, extra: ['--video', 'none', ...extra] });
  const a = h.startPeer(process.env.RINGLET_PEER_BIN, opts('a'));
  await h.until('peer a to join', () => a.find('joined') || a.exit(), 10_000);
  const b = h.startPeer(process.env.RINGLET_PEER_BIN, opts('b'));
  await h.until('both summaries', () => (a.find('summary') && b.find('summary')) || null, (SECS + 10) * 1000);
  const side = (p) => {
    const join = h.joinTime(p);
    const at = (name, pred) => (p.find(name, pred) && join !== null ? p.find(name, pred).t_ms - join : null);
    return {
      ice: at('ice_state', (e) => e.state === 'connected'),
      pc: at('connection_state', (e) => e.state === 'connected'),
      data: at('data_open'),
      rtt: p.find('summary').rtt_ms,
      pair: p.find('summary').selected_pair,
    };
  };
  const [A, B] = [side(a), side(b)];
  if ([A.ice, A.pc, A.data, B.ice, B.pc, B.data].some((x) => x === null)) throw new Error(`call incomplete\n${a.describe()}\n${b.describe()}`);
  const max = (k) => Math.max(A[k], B[k]);
  return { ice: max('ice'), pc: max('pc'), data: max('data'), rtt: [A.rtt, B.rtt].filter((x) => x !== null), pair: B.pair };
}

async function bench(config, server, extra) {
  const got = [];
  let failed = 0;
  for (let i = -1; i < CALLS; i++) {
    try {
      const r = await call(server, `turn-bench-${i < 0 ? 'warmup' : i}-${process.pid}-${got.length}${extra.length}`, extra);
      if (i >= 0) got.push(r);
      log(`  ${config} #${i < 0 ? 'warm-up' : i}: ice ${r.ice} ms, connected ${r.pc} ms, data ${r.data} ms, rtt ${r.rtt.map((x) => x.toFixed(1))} ms, pair ${JSON.stringify(r.pair)}`);
    } catch (e) {
      if (i >= 0) failed++;
      log(`  ${config} #${i}: FAILED ${e.message}`);
    }
  }
  const pick = (k) => summarize(got.map((r) => r[k]));
  return {
    config, calls: CALLS, failed,
    join_to_ice_connected_ms: pick('ice'), join_to_connected_ms: pick('pc'), join_to_data_open_ms: pick('data'),
    rtt_ms: summarize(got.flatMap((r) => r.rtt)),
    pairs: [...new Set(got.map((r) => JSON.stringify(r.pair)))],
  };
}

const SECRET = 'bench-secret';
const coturn = await h.startCoturn(SECRET);
const plain = await h.startSignal(h.binFromEnv('RINGLET_SIGNAL_BIN'));
const turn = await h.startSignal(h.binFromEnv('RINGLET_SIGNAL_BIN'), [], { extra: ['--turn-url', coturn.url, '--turn-secret', SECRET] });
try {
  console.log(JSON.stringify(await bench('direct (host candidates)', plain.url, [])));
  console.log(JSON.stringify(await bench('relay-only through coturn', turn.url, ['--ice-policy', 'relay'])));
} finally {
  await plain.stop();
  await turn.stop();
  await coturn.stop();
}
