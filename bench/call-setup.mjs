#!/usr/bin/env node
// Call-setup time on loopback, in one run:
//
// 1. ringlet-peer <-> ringlet-peer through ringlet-signal, with
//    --ice-check-ms 20 (the default) and --ice-check-ms 200 (the library's
//    default interval, i.e. "before"): join -> ICE connected, join -> peer
//    connection connected (DTLS up) and join -> first remote frame, from
//    each ringlet-peer's --json events (their t_ms fields). "join" is, for
//    each peer, the moment both are in the room: its own `joined` event when
//    the other was already there, else its `peer_joined` event. A call's
//    figure is the later of its two peers'.
// 2. The anchor: two Chromium tabs running the seed tutorial's client
//    (tests/browser/static/index.html) through the seed's own Node.js server
//    (../shared/bench/seed-server/server.js): in the calling tab, offer sent
//    -> connectionState connected, and offer sent -> first data-channel
//    message from the other tab.
//
// 3. With a browser (bench/browser-setup.mjs, issue 6's three pairings, all
//    with camera and microphone): two Chromium tabs running Ringlet's web
//    client served by ringlet-signal; two Chromium tabs running the seed's
//    client (with its fake camera and microphone added) through the seed's
//    Node.js server; Chromium's web client with ringlet-peer through
//    ringlet-signal, in both join orders. From "both in the room" to the
//    newcomer's peer connection connected, and to a first video frame shown
//    on both sides.
//
// Usage (from the repository root):
//   RINGLET_SIGNAL_BIN=$HOME/.cache/ringlet-target/debug/ringlet-signal \
//   RINGLET_PEER_BIN=$HOME/.cache/ringlet-target/debug/ringlet-peer \
//   node bench/call-setup.mjs [CALLS=20]
//
// Prints one JSON line per configuration (p50/p95 in ms, nearest rank) on
// stdout; progress goes to stderr. One unmeasured warm-up call precedes each
// configuration. Calls run one at a time; each gets a fresh room, fresh
// processes (ringlet-peer) or fresh tabs (Chromium).
//
// Environment: SEED_SERVER_DIR (default ../shared/bench/seed-server, read
// only: it is copied to SEED_BENCH_DIR, default $TMPDIR/seed-bench, and its
// npm dependencies installed there, as compare.sh does); CHROMIUM_BIN
// (default /usr/bin/chromium); CALLS (default 20); ONLY=peer|chromium|web to
// run one part. tests/browser's npm packages (playwright-core, socket.io-client)
// are installed with `npm ci` if missing.

import { loadHarness, log, seedServerDir, summarize } from './common.mjs';

const CALLS = Number(process.argv[2] ?? process.env.CALLS ?? 20);
const ONLY = process.env.ONLY ?? '';
const h = await loadHarness();

// ------------------------------------------------ ringlet-peer <-> ringlet-peer

/** One call between two ringlet-peers; per-peer figures relative to its join. */
async function peerCall(peerBin, server, iceCheckMs, room) {
  const a = h.startPeer(peerBin, { server, room, peerId: 'a', iceCheckMs });
  let b = null;
  try {
    await h.until('peer a to join', () => a.find('joined') || a.exit(), 10_000);
    if (!a.find('joined')) throw new Error(`peer a did not join\n${a.describe()}`);
    b = h.startPeer(peerBin, { server, room, peerId: 'b', iceCheckMs });
    await h.until(
      'a first remote frame on both peers',
      () => (a.find('first_remote_frame') && b.find('first_remote_frame')) || a.exit() || b.exit(),
      15_000,
    );
  } finally {
    await Promise.all([a.stop(), b?.stop()]);
  }
  const side = (p) => {
    const join = h.joinTime(p);
    const at = (name, pred) => {
      const e = p.find(name, pred);
      return e && join !== null ? e.t_ms - join : null;
    };
    return {
      ice: at('ice_state', (e) => e.state === 'connected'),
      pc: at('connection_state', (e) => e.state === 'connected'),
      frame: at('first_remote_frame'),
    };
  };
  const A = side(a); // answerer: joined first, hears peer_joined
  const B = side(b); // offerer: joined second
  if ([A.ice, A.frame, B.ice, B.frame].some((x) => x === null)) {
    throw new Error(`call incomplete\n${a.describe()}\n${b.describe()}`);
  }
  return { answerer: A, offerer: B, call: { ice: Math.max(A.ice, B.ice), pc: Math.max(A.pc, B.pc), frame: Math.max(A.frame, B.frame) } };
}

async function benchPeers(peerBin, server, iceCheckMs) {
  const config = `ringlet-peer<->ringlet-peer via ringlet-signal, --ice-check-ms ${iceCheckMs}`;
  const got = [];
  let failed = 0;
  for (let i = -1; i < CALLS; i++) {
    try {
      const r = await peerCall(peerBin, server, iceCheckMs, `bench-${iceCheckMs}-${i < 0 ? 'warmup' : i}-${process.pid}`);
      if (i >= 0) got.push(r);
      log(`  ${config} #${i < 0 ? 'warm-up' : i}: ice ${r.call.ice} ms, connected ${r.call.pc} ms, first frame ${r.call.frame} ms`);
    } catch (e) {
      if (i >= 0) failed++;
      log(`  ${config} #${i}: FAILED ${e.message}`);
    }
  }
  const pick = (who, k) => summarize(got.map((r) => r[who][k]));
  return {
    config,
    calls: CALLS,
    failed,
    join_to_ice_connected_ms: pick('call', 'ice'),
    join_to_connected_ms: pick('call', 'pc'),
    join_to_first_remote_frame_ms: pick('call', 'frame'),
    offerer: { join_to_ice_connected_ms: pick('offerer', 'ice'), join_to_first_remote_frame_ms: pick('offerer', 'frame') },
    answerer: { join_to_ice_connected_ms: pick('answerer', 'ice'), join_to_first_remote_frame_ms: pick('answerer', 'frame') },
  };
}

// ------------------------------------------------ the anchor: Chromium tabs

async function chromiumCall(browser, pages, seedUrl, room) {
  const callee = await browser.newPage();
  const caller = await browser.newPage();
  try {
    // The seed server acks nothing: barrier=none makes the page count itself
    // joined 200 ms after it connects (before anything is measured).
    await callee.goto(pages.url({ signal: seedUrl, room, mode: 'answer', barrier: 'none' }));
    await h.until('the answering tab to join', async () => (await h.results(callee)).joined, 10_000);
    await caller.goto(pages.url({ signal: seedUrl, room, mode: 'offer', barrier: 'none' }));
    const R = await h.until(
      'connected and a first data-channel message in the calling tab',
      async () => {
        const r = await h.results(caller);
        return r.tConnected !== null && r.tFirstFrame !== null ? r : null;
      },
      15_000,
    ).catch(async (e) => {
      const [r1, r2] = [await h.results(caller), await h.results(callee)];
      throw new Error(`${e.message}\ncaller: ${r1.events.join('\n  ')}\ncallee: ${r2.events.join('\n  ')}`);
    });
    return { connected: R.tConnected - R.tOfferSent, firstMessage: R.tFirstFrame - R.tOfferSent };
  } finally {
    await caller.close().catch(() => {});
    await callee.close().catch(() => {});
  }
}

async function benchChromium() {
  const config = "anchor: 2 Chromium tabs, the seed's client via the seed's Node server";
  const seed = await h.startSeedServer(seedServerDir());
  const pages = await h.startPageServer();
  const browser = await h.launchBrowser();
  const got = [];
  let failed = 0;
  try {
    for (let i = -1; i < CALLS; i++) {
      try {
        const r = await chromiumCall(browser, pages, seed.url, `anchor-${i < 0 ? 'warmup' : i}`);
        if (i >= 0) got.push(r);
        log(`  ${config} #${i < 0 ? 'warm-up' : i}: connected ${r.connected.toFixed(1)} ms, first message ${r.firstMessage.toFixed(1)} ms`);
      } catch (e) {
        if (i >= 0) failed++;
        log(`  ${config} #${i}: FAILED ${e.message}`);
      }
    }
  } finally {
    await browser.close();
    await pages.close();
    await seed.stop();
  }
  return {
    config,
    calls: CALLS,
    failed,
    offer_sent_to_connected_ms: summarize(got.map((r) => r.connected)),
    offer_sent_to_first_dc_message_ms: summarize(got.map((r) => r.firstMessage)),
  };
}

// ------------------------------------------------------------------ main

const t0 = Date.now();
if (!ONLY || ONLY === 'peer') {
  const signalBin = h.binFromEnv('RINGLET_SIGNAL_BIN');
  const peerBin = h.binFromEnv('RINGLET_PEER_BIN');
  const signal = await h.startSignal(signalBin);
  try {
    for (const iceMs of [20, 200]) {
      log(`# ringlet-peer pairs, --ice-check-ms ${iceMs}`);
      console.log(JSON.stringify(await benchPeers(peerBin, signal.url, iceMs)));
    }
  } finally {
    await signal.stop();
  }
}
if (!ONLY || ONLY === 'chromium') {
  log('# Chromium tabs through the seed server');
  console.log(JSON.stringify(await benchChromium()));
}
if (!ONLY || ONLY === 'web') {
  const { benchBrowserPairings } = await import('./browser-setup.mjs');
  const rows = await benchBrowserPairings(h, {
    signalBin: h.binFromEnv('RINGLET_SIGNAL_BIN'),
    peerBin: h.binFromEnv('RINGLET_PEER_BIN'),
    seedDir: seedServerDir(),
    calls: CALLS,
    log,
    summarize,
  });
  for (const row of rows) console.log(JSON.stringify(row));
}
log(`# done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
