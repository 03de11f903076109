// Browser interop: the seed tutorial's client code, running in Debian
// Chromium (driven by playwright-core), calls `ringlet-peer` through
// `ringlet-signal`, in both join orders.
//
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... ./run.sh
//
// The page (static/index.html) is the seed's client as written, plus what a
// call needs that the seed lacks: answering an offer, and the data channel
// "ringlet" on which it counts ringlet-peer's 30/s `frame` messages and sends
// its own. It is served by a node:http server on 127.0.0.1 together with
// socket.io-client's browser bundle from node_modules (no CDN), and
// ringlet-signal allows that origin with --cors-origin.
//
// Orders:
// - browser first: the page joins and waits; ringlet-peer joins second and,
//   by the rule "the newcomer offers", sends the offer; the page answers.
// - ringlet-peer first: it joins and waits; the page joins second and calls
//   the seed's startCall() (after creating the data channel, so the offer
//   has something to negotiate); ringlet-peer answers.
//
// Each test passes when the page's connectionState reached `connected`, the
// page received at least 10 frames, and ringlet-peer's summary says
// connected:true with data_frames_received >= 10 (and it exited 0). Every
// wait is bounded; nothing asserts on timing.
//
// Environment: RINGLET_SIGNAL_BIN, RINGLET_PEER_BIN (required);
// CHROMIUM_BIN (default /usr/bin/chromium); RINGLET_LOG (server log filter,
// default info); RINGLET_PEER_LOG (ringlet-peer's, default warn).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as h from './harness.mjs';

const MIN_FRAMES = 10;
const JOIN_WAIT = 15_000; // page or ringlet-peer in the room
const CALL_WAIT = 30_000; // connected and MIN_FRAMES each way

describe('the seed client in Chromium calls ringlet-peer through ringlet-signal', () => {
  const env = {};

  before(async () => {
    env.signalBin = h.binFromEnv('RINGLET_SIGNAL_BIN');
    env.peerBin = h.binFromEnv('RINGLET_PEER_BIN');
    if (!existsSync(h.CHROMIUM)) throw new Error(`no Chromium at ${h.CHROMIUM} (apt-get install chromium, or set CHROMIUM_BIN)`);
    env.pages = await h.startPageServer();
    env.signal = await h.startSignal(env.signalBin, [env.pages.origin]);
    env.browser = await h.launchBrowser();
  });

  after(async () => {
    const signalWasAlive = env.signal?.alive();
    await env.browser?.close();
    await env.signal?.stop();
    await env.pages?.close();
    if (env.signal) assert.ok(signalWasAlive, `ringlet-signal died during the tests:\n${env.signal.output().slice(-4000)}`);
  });

  /** One call in the given order; returns what both sides saw. */
  async function call(order, room) {
    const page = await env.browser.newPage();
    const server = env.signal.url;
    const peerOpts = { server, room, peerId: `rp-${order}` };
    let peer = null;
    let waitError = null;
    let R = null;
    try {
      if (order === 'browser-first') {
        await page.goto(env.pages.url({ signal: server, room, mode: 'answer' }));
        await h.until('the page to join', async () => (await h.results(page)).joined, JOIN_WAIT);
        peer = h.startPeer(env.peerBin, peerOpts);
      } else {
        peer = h.startPeer(env.peerBin, peerOpts);
        await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
        assert.ok(peer.find('joined'), `ringlet-peer did not join\n${peer.describe()}`);
        await page.goto(env.pages.url({ signal: server, room, mode: 'offer' }));
      }
      try {
        await h.until(
          `page connected with ${MIN_FRAMES} frames received, ringlet-peer with ${MIN_FRAMES}`,
          async () => {
            const r = await h.results(page);
            return (r.connectionState === 'connected' && r.framesReceived >= MIN_FRAMES && peer.framesReceived() >= MIN_FRAMES) || peer.exit();
          },
          CALL_WAIT,
        );
      } catch (e) {
        waitError = e; // the assertions below say what was missing
      }
      // The page's view before ringlet-peer hangs up (its state changes then).
      R = await h.results(page);
    } finally {
      if (peer) await peer.stop();
      await page.close().catch(() => {});
    }
    const diag = () =>
      `\n--- ${order}, room ${room}${waitError ? `: ${waitError.message}` : ''}\n` +
      `page: ${JSON.stringify({ ...R, events: undefined })}\n  ${R.events.join('\n  ')}\n` +
      `page console:\n  ${page.consoleLines.join('\n  ')}\n${peer.describe()}`;
    return { R, peer, diag };
  }

  function check({ R, peer, diag }) {
    assert.notEqual(R.tConnected, null, `the page's connectionState never reached connected${diag()}`);
    assert.equal(R.connectionState, 'connected', `the page's connectionState left connected during the call${diag()}`);
    assert.ok(R.framesReceived >= MIN_FRAMES, `the page received ${R.framesReceived} frames, wanted >= ${MIN_FRAMES}${diag()}`);
    assert.deepEqual(R.errors, [], `the page saw errors${diag()}`);
    const summary = peer.find('summary');
    assert.ok(summary, `ringlet-peer printed no summary${diag()}`);
    assert.equal(summary.connected, true, `ringlet-peer's summary says connected:${summary.connected}${diag()}`);
    assert.ok(
      summary.data_frames_received >= MIN_FRAMES,
      `ringlet-peer received ${summary.data_frames_received} data-channel frames, wanted >= ${MIN_FRAMES}${diag()}`,
    );
    assert.equal(peer.exit()?.code, 0, `ringlet-peer exited ${JSON.stringify(peer.exit())}${diag()}`);
  }

  it('browser joins first, ringlet-peer second and offers; the page answers', { timeout: 90_000 }, async () => {
    check(await call('browser-first', 'browser-first'));
  });

  it('ringlet-peer joins first, the browser second and offers (seed startCall); ringlet-peer answers', { timeout: 90_000 }, async () => {
    check(await call('peer-first', 'peer-first'));
  });
});
