// A whole call in the real app window against ringlet-peer (synthetic VP8
// and Opus): lobby → New call → pre-join (local preview drawn) → Join →
// remote video drawn and changing → mute and camera off (buttons), back on
// (Ctrl+D, Ctrl+E) → chat both ways → hang up. Screenshots of the lobby, pre-join and in-call screens.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Key, launchApp, screenshot, startPeer, state, until } from './harness.mjs';

const PEER_CHAT = 'hello from the peer';
const APP_CHAT = 'hello from the app window';

let app;
let peer;
let session;

before(async () => {
  app = await launchApp({ name: 'call' });
  session = app.session;
});
after(async () => {
  await peer?.stop();
  await app?.close();
});

/** Waits for `check(state)`; on timeout the message carries the page state (and the peer's events). */
async function waitState(what, check, ms) {
  let last = null;
  try {
    return await until(what, async () => {
      last = await state(session);
      return last && check(last) ? last : null;
    }, ms, 100);
  } catch (e) {
    const { frames, call, screen, room, statusText } = last ?? {};
    const brief = call ? { status: call.status, signaling: call.signaling, connection: call.connection, remoteMedia: call.remoteMedia, peerGone: call.peerGone, chat: call.chat, error: call.error } : null;
    throw new Error(`${e.message}\n  page: ${JSON.stringify({ screen, room, statusText, frames, call: brief })}${peer ? `\n  ${peer.describe()}` : ''}`);
  }
}

async function waitPeer(what, name, pred, ms) {
  try {
    return await until(what, () => peer.find(name, pred), ms, 100);
  } catch (e) {
    throw new Error(`${e.message}\n  ${peer.describe()}`);
  }
}

/** A small fingerprint of what a canvas shows right now (a sample of its pixels). */
const canvasFingerprint = (id) => session.execute(`
  const c = document.getElementById(arguments[0]);
  if (!c || !c.width || !c.height) return null;
  const w = Math.min(c.width, 160), h = Math.min(c.height, 90);
  const d = c.getContext('2d').getImageData(0, 0, w, h).data;
  let sum = 0, hash = 0, lit = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i] + d[i + 1] + d[i + 2];
    sum += v;
    if (v > 30) lit++;
    hash = (hash * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) >>> 0;
  }
  return { width: c.width, height: c.height, hash, lit, mean: Math.round(sum / (d.length / 4)) };
`, id);

test('a call in the app window with ringlet-peer', async (t) => {
  // ---------------------------------------------------------------- lobby
  await waitState('the lobby', (s) => s.screen === 'lobby', 15_000);
  assert.match(await session.title(), /Ringlet/);
  assert.equal(await (await session.find('#product')).text(), 'Ringlet');
  // New call needs the embedded server's address; wait until the lobby has it.
  await until('the lobby to name the embedded server', async () => /:\d+/.test(await (await session.find('#signal-status')).text()), 15_000);
  await screenshot(session, 'call-1-lobby');

  // ------------------------------------------------------------- pre-join
  await session.click('#new-call');
  const pre = await waitState('the pre-join screen with the preview drawn', (s) => s.screen === 'prejoin' && s.frames?.preview > 0, 20_000);
  const room = pre.room;
  assert.match(room, /^[A-Za-z0-9_-]{16,64}$/, `a random room id: ${room}`);
  assert.equal(await (await session.find('#room-code')).text(), room, '#room-code shows the room');
  const shareLink = await (await session.find('#share-link')).property('value');
  const m = /^http:\/\/([^/]+):(\d+)\/r\/([A-Za-z0-9_-]+)$/.exec(shareLink);
  assert.ok(m, `#share-link is http://HOST:PORT/r/ROOM: ${shareLink}`);
  assert.equal(m[3], room, 'the link names the room');
  assert.equal(Number(m[2]), app.signalPort, 'the link names the embedded server chosen by RINGLET_SIGNAL_LISTEN');
  assert.equal(await (await session.find('#preview-canvas')).displayed(), true, 'the preview canvas is shown');
  await screenshot(session, 'call-2-prejoin');

  // ---------------------------------------------------------------- join
  // No --duration: with one, ringlet-peer ignores SIGINT's clean stop (no summary).
  peer = startPeer({ server: `http://127.0.0.1:${app.signalPort}`, room, chat: [PEER_CHAT] });
  await waitPeer('ringlet-peer to join the room', 'joined', () => true, 15_000);
  await until('#join-button to be enabled (camera and microphone started)', async () => (await (await session.find('#join-button')).property('disabled')) === false, 10_000);
  await session.click('#join-button');
  await waitState('the call screen', (s) => s.screen === 'call', 10_000);
  const connected = await waitState('call status "connected" and remote frames drawn', (s) => s.call?.status === 'connected' && s.frames?.remote > 0, 30_000);
  await waitPeer('ringlet-peer to see the connection', 'connected', () => true, 15_000);
  assert.equal(await (await session.find('#remote-canvas')).displayed(), true, 'the remote canvas is shown');

  // The remote video is moving: more frames drawn, and different pixels.
  const first = { frames: connected.frames.remote, at: Date.now(), pixels: await canvasFingerprint('remote-canvas') };
  assert.ok(first.pixels, 'the remote canvas has a size');
  const moved = await waitState('more remote frames', (s) => s.frames.remote >= first.frames + 10, 15_000);
  let second;
  await until('the remote canvas pixels to change', async () => {
    second = await canvasFingerprint('remote-canvas');
    return second && second.hash !== first.pixels.hash;
  }, 10_000, 200).catch((e) => {
    throw new Error(`${e.message}: first ${JSON.stringify(first.pixels)}, last ${JSON.stringify(second)}`);
  });
  assert.ok(second.lit > 0, `the remote picture is not black: ${JSON.stringify(second)}`);
  const rate = ((moved.frames.remote - first.frames) * 1000) / Math.max(1, Date.now() - first.at);
  t.diagnostic(`remote: ${moved.frames.remoteWidth}x${moved.frames.remoteHeight} via ${moved.frames.mode}, ${moved.frames.remote} frames drawn (about ${rate.toFixed(1)}/s while the test watched; not asserted)`);
  assert.ok(moved.frames.remoteWidth > 0 && moved.frames.remoteHeight > 0, 'the remote frame size is known');
  await screenshot(session, 'call-3-in-call');

  // ------------------------------------------------- accessible controls
  const unnamed = await session.execute(`
    const bad = [];
    for (const el of document.querySelectorAll('#call button, #call input, #call select, #call textarea')) {
      if (el.type === 'hidden') continue;
      const label = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') && document.getElementById(el.getAttribute('aria-labelledby'))?.textContent
        || (el.labels && [...el.labels].map((l) => l.textContent).join(' ')) || (el.tagName === 'BUTTON' && el.textContent) || el.getAttribute('title');
      if (!label || !label.trim()) bad.push(el.id || el.outerHTML.slice(0, 80));
    }
    return bad;
  `);
  assert.deepEqual(unnamed, [], `controls in the call screen without an accessible name: ${unnamed.join(', ')}`);

  // ------------------------------------------------------ mute and camera
  await session.click('#mic-toggle');
  await waitPeer('ringlet-peer to hear that the app muted', 'remote_media', (e) => e.audio_muted === true, 10_000);
  await session.click('#cam-toggle');
  await waitPeer('ringlet-peer to hear that the app turned its camera off', 'remote_media', (e) => e.video_muted === true, 10_000);
  // And back on from the keyboard: Ctrl+D, Ctrl+E.
  const mediaEvents = peer.events.filter((e) => e.event === 'remote_media').length;
  const laterMedia = (pred) => () => peer.events.filter((e) => e.event === 'remote_media').slice(mediaEvents).find(pred);
  await session.keyChord([Key.CONTROL, 'd']);
  await until('ringlet-peer to hear the microphone back on after Ctrl+D', laterMedia((e) => e.audio_muted === false && e.video_muted === true), 10_000, 100)
    .catch((e) => { throw new Error(`${e.message}\n  ${peer.describe()}`); });
  await session.keyChord([Key.CONTROL, 'e']);
  await until('ringlet-peer to hear the camera back on after Ctrl+E', laterMedia((e) => e.audio_muted === false && e.video_muted === false), 10_000, 100)
    .catch((e) => { throw new Error(`${e.message}\n  ${peer.describe()}`); });

  // ---------------------------------------------------------------- chat
  await waitState('the peer\'s chat line in the call state', (s) => s.call.chat.some((c) => c.from === 'peer' && c.text === PEER_CHAT), 10_000);
  await session.click('#chat-toggle');
  await waitState('the chat panel open', (s) => s.chatOpen, 5000);
  const log = await until('the peer\'s line in #chat-log', async () => {
    const text = await (await session.find('#chat-log')).text();
    return text.includes(PEER_CHAT) && text;
  }, 5000);
  const input = await session.find('#chat-input');
  await input.sendKeys(APP_CHAT);
  await session.execute("document.getElementById('chat-form').requestSubmit()");
  await waitPeer('ringlet-peer to receive the app\'s chat line', 'chat', (e) => e.text === APP_CHAT, 10_000);
  assert.ok(log.includes(PEER_CHAT));
  await until('the app\'s own line in #chat-log', async () => (await (await session.find('#chat-log')).text()).includes(APP_CHAT), 5000);
  assert.equal(await input.property('value'), '', 'the chat input is cleared after sending');

  // -------------------------------------------------------------- hang up
  await session.click('#hangup');
  await waitState('the ended screen', (s) => s.screen === 'ended', 10_000);
  await waitPeer('ringlet-peer to see the hang-up', 'remote_hangup', () => true, 10_000).catch(() => waitPeer('ringlet-peer to see the app leave', 'peer_left', () => true, 5000));
  await peer.stop();
  const summary = peer.find('summary');
  assert.ok(summary, `ringlet-peer printed a summary\n${peer.describe()}`);
  t.diagnostic(`ringlet-peer summary: ${JSON.stringify(summary)}`);
  assert.ok(summary.video_frames_received > 0, `ringlet-peer received video from the app\n${peer.describe()}`);
  assert.ok(summary.audio_frames_received > 0, `ringlet-peer received audio from the app\n${peer.describe()}`);
  assert.ok(summary.chats_received >= 1, `ringlet-peer counted the chat line\n${peer.describe()}`);
});
