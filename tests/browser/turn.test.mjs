// The web client through TURN: a real coturn (Debian `turnserver`, on
// loopback, `use-auth-secret`) and ringlet-signal minting four-second
// credentials into the join ack. ringlet-peer is relay-only, so the call
// exists only through coturn; the page refreshes its credential before it
// expires (a join again on the same socket) and restarts ICE with it
// (`setConfiguration` + `restartIce`), and the call goes on.
//
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... ./run.sh

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as h from './harness.mjs';

const SECRET = 'north-sea';
const JOIN_WAIT = 15_000;
const MEDIA_WAIT = 45_000;

const state = (page) => page.evaluate(() => window.ringlet.state);
const call = async (page) => (await state(page)).call;
const audioIn = (c) => c?.stats?.audio?.packetsReceived ?? 0;
const peerAudio = (peer) => (peer.find('summary') ?? peer.last('stats'))?.audio_frames_received ?? 0;

/** The usernames coturn allocated for. */
const allocations = (log) => [...log.matchAll(/user <([^>]+)>: incoming packet ALLOCATE processed, success/g)].map((m) => m[1]);

describe('the web client through TURN with short-lived credentials', () => {
  const env = {};

  before(async () => {
    env.signalBin = h.binFromEnv('RINGLET_SIGNAL_BIN');
    env.peerBin = h.binFromEnv('RINGLET_PEER_BIN');
    if (!existsSync(h.CHROMIUM)) throw new Error(`no Chromium at ${h.CHROMIUM} (apt-get install chromium, or set CHROMIUM_BIN)`);
    env.coturn = await h.startCoturn(SECRET);
    // The secret through the environment, as a deployment would pass it.
    process.env.RINGLET_TURN_SECRET = SECRET;
    env.signal = await h.startSignal(env.signalBin, [], { extra: ['--turn-url', env.coturn.url, '--turn-ttl', '4s'] });
    delete process.env.RINGLET_TURN_SECRET;
    env.browser = await h.launchBrowser();
  });

  after(async () => {
    await env.browser?.close();
    await env.signal?.stop();
    await env.coturn?.stop();
  });

  it('Chromium ↔ relay-only ringlet-peer through coturn; the page refreshes its credential with an ICE restart and the call goes on', { timeout: 120_000 }, async () => {
    const room = 'through-turn';
    const page = await env.browser.newPage();
    const peer = h.startPeer(env.peerBin, { server: env.signal.url, room, peerId: 'rp-relay', extra: ['--ice-policy', 'relay', '--video', 'none'] });
    try {
      await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
      await page.goto(`${env.signal.url}/r/${room}`);
      await page.waitForSelector('#join-button:enabled', { timeout: JOIN_WAIT });
      await page.fill('#display-name', 'Relayed');
      await page.click('#join-button');
      await h.until('the call to connect with audio both ways', async () => {
        const c = await call(page);
        return (c?.status === 'connected' && audioIn(c) > 0 && peerAudio(peer) > 0) || peer.exit();
      }, MEDIA_WAIT);
      const first = await call(page);
      assert.match(first.iceUsernames[0] ?? '', /^\d+:web-/, 'the page got a TURN credential in its join ack');
      // Each credential lives 4 s: the page refreshes after ~3.2 s, twice
      // within ~7 s, each time with a new username and an ICE restart.
      await h.until('two refreshes, each with a newer credential and an ICE restart answered', async () => {
        const c = await call(page);
        return c.counters.iceRefreshes >= 2 && c.iceUsernames[0] !== first.iceUsernames[0] && c.signalingState === 'stable';
      }, 30_000);
      const after = await call(page);
      const peerAfter = peerAudio(peer);
      await h.until('audio to keep flowing both ways after the refreshes', async () => {
        const c = await call(page);
        return c.status === 'connected' && audioIn(c) > audioIn(after) + 50 && peerAudio(peer) > peerAfter + 50;
      }, MEDIA_WAIT);
      const users = allocations(env.coturn.log());
      assert.ok(users.some((u) => u.endsWith(':rp-relay')), `coturn allocated for ringlet-peer: ${users}`);
      const pageUsers = new Set(users.filter((u) => u.endsWith(`:${first.peerId}`)));
      assert.ok(pageUsers.size >= 2, `coturn allocated for the page with refreshed credentials: ${[...pageUsers]}`);
      assert.ok(!env.coturn.log().includes('error 441'), 'no live allocation was re-signed under another username');
    } catch (e) {
      const c = await call(page).catch(() => null);
      e.message += `\n--- page: ${JSON.stringify(c, null, 1)?.slice(0, 4000)}\n${peer.describe()}\n--- coturn:\n${env.coturn.log().slice(-4000)}`;
      throw e;
    } finally {
      await peer.stop();
      await page.close();
    }
  });
});
