// Call setup with a browser on one side or both, for bench/call-setup.mjs:
// the three pairings of issue 6, each with camera and microphone (Chromium's
// fake devices, 1280x720; ringlet-peer's synthetic 1280x720 VP8 and Opus):
//
//   web-web   two Chromium tabs running Ringlet's web client, served by
//             ringlet-signal at /r/<room>, driven by clicks like a person;
//   seed-seed two Chromium tabs running the seed tutorial's client
//             (tests/browser/static/index.html with media=1) through the
//             seed's own Node.js server;
//   web-peer  Chromium's web client and ringlet-peer through ringlet-signal,
//             in both join orders.
//
// Every call starts from "both in the room": for Ringlet's clients the
// newcomer's join ack (it offers at once), for the seed's page the moment
// it starts its offer (as soon as it counts itself joined and has its
// camera; the seed's server acks nothing). Media is acquired before that
// moment in every pairing. A call
// is "connected" when the newcomer's peer connection is, and has its
// "first frame" when both sides have a first video frame from the other
// ready in their <video> ('loadeddata' or the first
// requestVideoFrameCallback, whichever comes first; a background tab
// presents late) or, for ringlet-peer, decoded: the later of the two. Browser times are
// performance.timeOrigin + performance.now() of each tab (one machine, one
// clock); ringlet-peer's are its own t_ms, from its `joined` or
// `peer_joined` event.

const ROOM_WAIT = 15_000;
const CALL_WAIT = 30_000;

const state = (page) => page.evaluate(() => window.ringlet.state);

/** Opens Ringlet's pre-join page and waits for its devices; clicks Join. */
async function webJoin(h, page, url, name) {
  await page.goto(url);
  await h.until('the pre-join page to have its devices', async () => (await state(page)).media?.started, ROOM_WAIT);
  await page.fill('#display-name', name);
  await page.click('#join-button');
  await h.until(`${name} to be in the room`, async () => (await state(page)).call?.marks.joinAck, ROOM_WAIT);
}

/** Chromium <-> Chromium, Ringlet's web client through ringlet-signal. */
export async function webWebCall(h, browser, signalUrl, room) {
  const a = await browser.newPage();
  const b = await browser.newPage();
  try {
    await webJoin(h, a, `${signalUrl}/r/${room}`, 'A');
    await webJoin(h, b, `${signalUrl}/r/${room}`, 'B');
    const [sa, sb] = await h.until('both tabs connected, with a first frame each', async () => {
      const [x, y] = [await state(a), await state(b)];
      return x.call.marks.connected && y.call.marks.connected && x.remoteVideo.firstFrameAt && y.remoteVideo.firstFrameAt ? [x, y] : null;
    }, CALL_WAIT);
    const t0 = sb.call.marks.joinAck; // B is the newcomer
    return {
      connected: sb.call.marks.connected - t0,
      frame: Math.max(sa.remoteVideo.firstFrameAt, sb.remoteVideo.firstFrameAt) - t0,
    };
  } finally {
    await b.close().catch(() => {});
    await a.close().catch(() => {});
  }
}

/** Chromium <-> Chromium, the seed's client (with media) through the seed's server. */
export async function seedSeedCall(h, browser, pages, seedUrl, room) {
  const callee = await browser.newPage();
  const caller = await browser.newPage();
  try {
    await callee.goto(pages.url({ signal: seedUrl, room, mode: 'answer', barrier: 'none', media: '1' }));
    await h.until('the answering tab to join', async () => (await h.results(callee)).joined, ROOM_WAIT);
    await caller.goto(pages.url({ signal: seedUrl, room, mode: 'offer', barrier: 'none', media: '1' }));
    const [r1, r2] = await h.until('both tabs connected, with a first frame each', async () => {
      const [x, y] = [await h.results(caller), await h.results(callee)];
      return x.tConnected !== null && x.tFirstVideoFrame !== null && y.tFirstVideoFrame !== null ? [x, y] : null;
    }, CALL_WAIT);
    const abs = (r, t) => r.timeOrigin + t;
    const t0 = abs(r1, r1.tCallStart); // joined, media ready, about to create its offer
    return {
      connected: abs(r1, r1.tConnected) - t0,
      frame: Math.max(abs(r1, r1.tFirstVideoFrame), abs(r2, r2.tFirstVideoFrame)) - t0,
    };
  } finally {
    await caller.close().catch(() => {});
    await callee.close().catch(() => {});
  }
}

/** Chromium's web client <-> ringlet-peer through ringlet-signal; `peerFirst`: ringlet-peer waits, the browser joins. */
export async function webPeerCall(h, browser, peerBin, signalUrl, room, peerFirst) {
  const page = await browser.newPage();
  let peer = null;
  const start = () => h.startPeer(peerBin, { server: signalUrl, room, peerId: 'bench-peer' });
  try {
    if (peerFirst) {
      peer = start();
      await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), ROOM_WAIT);
      await webJoin(h, page, `${signalUrl}/r/${room}`, 'Browser');
    } else {
      await webJoin(h, page, `${signalUrl}/r/${room}`, 'Browser');
      peer = start();
    }
    const s = await h.until('connected, with a first frame each way', async () => {
      const x = await state(page);
      return x.call.marks.connected && x.remoteVideo.firstFrameAt && peer.find('first_remote_frame') ? x : (peer.exit() ? Promise.reject(new Error(peer.describe())) : null);
    }, CALL_WAIT);
    const peerJoin = h.joinTime(peer);
    const peerFrame = peer.find('first_remote_frame').t_ms - peerJoin;
    if (peerFirst) {
      const t0 = s.call.marks.joinAck;
      return { connected: s.call.marks.connected - t0, frame: Math.max(s.remoteVideo.firstFrameAt - t0, peerFrame) };
    }
    const t0 = s.call.marks.bothInRoom; // the page heard peer-joined
    const connected = peer.find('connection_state', (e) => e.state === 'connected').t_ms - peerJoin;
    return { connected, frame: Math.max(s.remoteVideo.firstFrameAt - t0, peerFrame) };
  } finally {
    await peer?.stop();
    await page.close().catch(() => {});
  }
}

/**
 * Runs `calls` measured calls (after one warm-up) of each pairing; returns
 * one summary object per pairing.
 */
export async function benchBrowserPairings(h, { signalBin, peerBin, seedDir, calls, log, summarize }) {
  const signal = await h.startSignal(signalBin);
  const seed = await h.startSeedServer(seedDir);
  const pages = await h.startPageServer();
  const browser = await h.launchBrowser();
  const configs = [
    ['Chromium <-> Chromium, Ringlet\'s web client via ringlet-signal', (room) => webWebCall(h, browser, signal.url, room)],
    ['Chromium <-> Chromium, the seed\'s client via the seed\'s Node server', (room) => seedSeedCall(h, browser, pages, seed.url, room)],
    ['Chromium (joins second) <-> ringlet-peer via ringlet-signal', (room) => webPeerCall(h, browser, peerBin, signal.url, room, true)],
    ['ringlet-peer (joins second) <-> Chromium via ringlet-signal', (room) => webPeerCall(h, browser, peerBin, signal.url, room, false)],
  ];
  const out = [];
  try {
    for (const [n, [config, run]] of configs.entries()) {
      log(`# ${config}`);
      const got = [];
      let failed = 0;
      for (let i = -1; i < calls; i++) {
        try {
          const r = await run(`bench-web-${n}-${i < 0 ? 'warmup' : i}-${process.pid}`);
          if (i >= 0) got.push(r);
          log(`  #${i < 0 ? 'warm-up' : i}: connected ${r.connected.toFixed(1)} ms, first frame both ways ${r.frame.toFixed(1)} ms`);
        } catch (e) {
          if (i >= 0) failed++;
          log(`  #${i}: FAILED ${e.message.slice(0, 2000)}`);
        }
      }
      out.push({
        config,
        calls,
        failed,
        join_to_connected_ms: summarize(got.map((r) => r.connected)),
        join_to_first_frame_both_ways_ms: summarize(got.map((r) => r.frame)),
      });
    }
  } finally {
    await browser.close();
    await pages.close();
    await seed.stop();
    await signal.stop();
  }
  return out;
}
