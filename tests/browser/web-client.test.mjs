// The web client as ringlet-signal serves it (ui/ at /r/<room>), in Debian
// Chromium with fake camera and microphone, driven like a person would:
// clicks, typing, keyboard shortcuts. It calls ringlet-peer (the Rust engine
// with real VP8 and Opus) in both join orders, another Chromium tab, and
// survives a killed and restarted server.
//
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... ./run.sh
//
// What each test reads comes from the page's read-only hook
// (window.ringlet.state: the call's state, counters and getStats figures),
// the DOM (what a person sees), and ringlet-peer's JSON events and
// summary. Every wait is bounded; nothing asserts on timing. Every page must
// run under the server's Content Security Policy with no violation, and
// (except where the test kills the server on purpose) no console error.
//
// ringlet-signal serves the ui/ compiled into it; with env RINGLET_WEB_ROOT
// set it serves that directory instead (for working on ui/).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as h from './harness.mjs';

const MIN_FRAMES = 30; // decoded video frames, each side
const JOIN_WAIT = 15_000;
const MEDIA_WAIT = 45_000; // the debug ringlet-peer on 2 busy cores sends a few frames a second

const state = (page) => page.evaluate(() => window.ringlet.state);
const call = async (page) => (await state(page)).call;
const decoded = (c) => c?.stats?.video?.framesDecoded ?? 0;
const audioIn = (c) => c?.stats?.audio?.packetsReceived ?? 0;
const peerVideo = (peer) => (peer.find('summary') ?? peer.last('stats'))?.video_frames_received ?? 0;

describe('the web client served by ringlet-signal', () => {
  const env = { pages: [] };

  before(async () => {
    env.signalBin = h.binFromEnv('RINGLET_SIGNAL_BIN');
    env.peerBin = h.binFromEnv('RINGLET_PEER_BIN');
    if (!existsSync(h.CHROMIUM)) throw new Error(`no Chromium at ${h.CHROMIUM} (apt-get install chromium, or set CHROMIUM_BIN)`);
    env.signal = await h.startSignal(env.signalBin);
    env.browser = await h.launchBrowser();
  });

  after(async () => {
    const alive = env.signal?.alive();
    await env.browser?.close();
    await env.signal?.stop();
    if (env.signal) assert.ok(alive, `ringlet-signal died during the tests:\n${env.signal.output().slice(-4000)}`);
  });

  async function newPage() {
    const page = await env.browser.newPage();
    env.pages.push(page);
    return page;
  }

  /** What a failed assertion should show: each page's state and console, each peer's events. */
  async function diag(pages, peers = []) {
    let out = '';
    for (const [name, p] of Object.entries(pages)) {
      const s = await state(p).catch((e) => `(unreadable: ${e.message})`);
      out += `\n--- page ${name} (${p.url()}):\n${JSON.stringify(s, null, 1).slice(0, 6000)}\nconsole:\n  ${p.consoleLines.slice(-60).join('\n  ')}\n`;
    }
    for (const peer of peers) out += `\n${peer.describe()}`;
    return out;
  }

  /** `e` with every page's and peer's state appended (the reporter prints the stack, which froze the message). */
  async function withDiag(e, pages, peers = []) {
    const extra = await diag(pages, peers);
    e.message += extra;
    e.stack = `${e.stack ?? e}${extra}`;
    return e;
  }

  /** No CSP violation ever; no console error unless `consoleErrorsOk`. */
  async function assertClean(page, { consoleErrorsOk = false } = {}) {
    const csp = await page.evaluate(() => window.__cspViolations);
    assert.deepEqual(csp, [], `Content Security Policy violations on ${page.url()}`);
    const problems = consoleErrorsOk ? page.problems.filter((p) => /Content Security Policy|uncaught/i.test(p)) : page.problems;
    assert.deepEqual(problems, [], `console errors on ${page.url()}:\n${page.consoleLines.join('\n')}`);
  }

  /** Opens the room's pre-join page and waits until it has its camera and microphone (or knows it cannot). */
  async function prejoin(page, room, base = env.signal.url) {
    await page.goto(`${base}/r/${room}`);
    await h.until('the pre-join page to start its devices', async () => (await state(page)).media?.started, JOIN_WAIT);
    await page.waitForSelector('#join-button:enabled', { timeout: JOIN_WAIT });
  }

  /**
   * Switches camera, microphone and speaker in the call's settings dialog,
   * to devices other than the current ones; returns what was chosen.
   */
  async function switchDevices(page) {
    const before = await call(page);
    await page.click('#settings-open');
    await page.waitForSelector('#settings[open] #camera-select');
    const pick = async (sel, current) => {
      const options = await page.$$eval(`${sel} option`, (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
      // Not fake_device_1: Chromium's fake depth camera (see harness.mjs).
      const other = options.find((o) => o.label !== current && o.value && o.label !== 'fake_device_1');
      assert.ok(other, `${sel} offers another device than ${current}: ${JSON.stringify(options)}`);
      await page.selectOption(sel, other.value);
      return other;
    };
    const camera = await pick('#camera-select', before.sending.video);
    await h.until(`the call to send the camera "${camera.label}"`, async () => (await call(page)).sending.video === camera.label, 10_000);
    const mic = await pick('#mic-select', before.sending.audio);
    await h.until(`the call to send the microphone "${mic.label}"`, async () => (await call(page)).sending.audio === mic.label, 10_000);
    const speakers = await page.$$eval('#speaker-select option', (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
    const speaker = speakers.find((o) => o.value && o.value !== 'default');
    assert.ok(speaker, `a speaker to pick: ${JSON.stringify(speakers)}`);
    await page.selectOption('#speaker-select', speaker.value);
    await h.until(`the remote audio to play on "${speaker.label}"`, async () => (await state(page)).speaker === speaker.value, 10_000);
    await page.click('#settings-close');
    return { camera, mic, speaker };
  }

  /** Types a name and clicks Join; waits until the call is past `connecting`. */
  async function join(page, name) {
    await page.fill('#display-name', name);
    await page.click('#join-button');
    await h.until('the page to join the room', async () => ['waiting', 'connected', 'connecting'].includes((await call(page))?.status) && (await call(page)).signaling === 'joined', JOIN_WAIT);
  }

  /** Clicks the chat button (if closed), types `text` and presses Enter. */
  async function chat(page, text) {
    if (!(await state(page)).chatOpen) await page.click('#chat-toggle');
    await page.fill('#chat-input', text);
    await page.press('#chat-input', 'Enter');
  }

  /** Both directions of a browser <-> ringlet-peer call, checked. */
  async function checkMediaWithPeer(page, peer, what) {
    await h.until(
      `${what}: the page connected with ${MIN_FRAMES} VP8 frames decoded and audio in; ringlet-peer with ${MIN_FRAMES} decoded`,
      async () => {
        const c = await call(page);
        return (c?.status === 'connected' && decoded(c) >= MIN_FRAMES && audioIn(c) > 0 && peerVideo(peer) >= MIN_FRAMES) || peer.exit();
      },
      MEDIA_WAIT,
    ).catch(async (e) => { throw await withDiag(e, { page }, [peer]); });
    const c1 = await call(page);
    assert.equal(c1.stats.video.codec, 'video/VP8', 'ringlet-peer sends VP8');
    assert.equal(c1.stats.audio.codec, 'audio/opus', 'ringlet-peer sends Opus');
    assert.equal(c1.stats.sent.videoCodec, 'video/VP8', 'the page sends VP8');
    assert.equal(c1.stats.sent.audioCodec, 'audio/opus', 'the page sends Opus');
    assert.ok(c1.stats.video.width > 0 && c1.stats.video.height > 0, 'decoded frames have a size');
    // Audio keeps arriving and is played out (samples, not just packets).
    await h.until('more audio packets and samples at the page', async () => {
      const c2 = await call(page);
      return audioIn(c2) > audioIn(c1) && c2.stats.audio.totalSamplesReceived > c1.stats.audio.totalSamplesReceived;
    }, 10_000);
    // What a person sees: the remote video element shows the peer's frames.
    const s = await state(page);
    assert.ok(s.remoteVideo.width > 0 && s.remoteVideo.firstFrameAt !== null, `the remote <video> shows frames: ${JSON.stringify(s.remoteVideo)}`);
    assert.equal(await page.isVisible('#remote-video'), true, 'the remote video is shown');
    assert.match(await page.textContent('#call-status'), /^Connected/);
    // The quality indicator reads getStats: a grade, a round trip, bitrates.
    await h.until('the quality indicator to show a grade and a round trip', async () =>
      ['Good', 'Fair', 'Poor'].includes(await page.textContent('#quality-text')) && /^\d+ ms$/.test(await page.textContent('#q-rtt')), 15_000);
    assert.match(await page.textContent('#q-in'), /^\d+ kbit\/s$/);
    assert.match(await page.textContent('#q-video'), /^\d+×\d+.*VP8/);
    assert.match(await page.getAttribute('#quality', 'aria-label'), /^Connection quality: (good|fair|poor)\./);
    // The call timer runs from the moment the call connected.
    await h.until('the call timer to run', async () => /^\d+:\d\d$/.test(await page.textContent('#call-timer')) && (await page.textContent('#call-timer')) !== '0:00', 5_000);
  }

  // ------------------------------------------------------------ lobby, pre-join

  it('lobby: "New call" opens a fresh 128-bit room; the join box takes links and codes and explains bad ones', { timeout: 60_000 }, async () => {
    const page = await newPage();
    try {
      await page.goto(`${env.signal.url}/`);
      assert.equal(await page.textContent('#product'), 'Ringlet');
      await page.click('#new-call');
      await page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/, { timeout: JOIN_WAIT });
      const first = new URL(page.url()).pathname;
      await page.waitForSelector('#join-button:enabled', { timeout: JOIN_WAIT });
      assert.equal((await state(page)).screen, 'prejoin');
      await page.goto(`${env.signal.url}/`);
      await page.click('#new-call');
      await page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/, { timeout: JOIN_WAIT });
      assert.notEqual(new URL(page.url()).pathname, first, 'each new call gets its own room');

      const tryJoin = async (text) => {
        await page.goto(`${env.signal.url}/`);
        await page.fill('#join-input', text);
        await page.press('#join-input', 'Enter');
      };
      await tryJoin('this is not a link');
      await page.waitForSelector('#join-error:visible');
      assert.match(await page.textContent('#join-error'), /not a Ringlet link or room code/);
      assert.equal(await page.getAttribute('#join-input', 'aria-invalid'), 'true');
      await tryJoin('https://example.org/r/bad.room');
      await page.waitForSelector('#join-error:visible');
      assert.match(await page.textContent('#join-error'), /room in that link is not valid/);
      assert.equal(new URL(page.url()).pathname, '/', 'a bad link goes nowhere');

      await tryJoin('pasted-code_1');
      await page.waitForURL(/\/r\/pasted-code_1$/, { timeout: JOIN_WAIT });
      await tryJoin(`${env.signal.url}/r/web-link`);
      await page.waitForURL(/\/r\/web-link$/, { timeout: JOIN_WAIT });
      await tryJoin(`ringlet://join/${new URL(env.signal.url).host}/app-link`);
      await page.waitForURL(/\/r\/app-link$/, { timeout: JOIN_WAIT });
      await page.waitForSelector('#join-button:enabled', { timeout: JOIN_WAIT });
      await assertClean(page);
    } finally {
      await page.close();
    }
  });

  it('pre-join: camera preview, microphone level, device pickers, toggles, remembered name, share and app links, labelled controls', { timeout: 60_000 }, async () => {
    const page = await newPage();
    const room = 'prejoin-room';
    const origin = env.signal.url;
    await env.browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
    try {
      await prejoin(page, room);
      let s = await state(page);
      assert.equal(s.screen, 'prejoin');
      assert.ok(s.media.hasVideo && s.media.hasAudio, `camera and microphone up: ${JSON.stringify(s.media)}`);
      await h.until('the preview to show the camera', async () => (await state(page)).media.previewWidth > 0, 10_000);
      await h.until('the microphone level meter to move', async () => (await state(page)).media.micPeak > 0.05, 10_000);
      for (const sel of ['#camera-select', '#mic-select']) {
        const options = await page.$$eval(`${sel} option`, (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
        assert.ok(options.length >= 1 && options.every((o) => o.value && o.label), `${sel}: ${JSON.stringify(options)}`);
      }
      assert.equal(await page.textContent('#room-code'), room);
      assert.equal(await page.inputValue('#share-link'), `${origin}/r/${room}`);
      assert.equal(await page.getAttribute('#open-app', 'href'), `ringlet://join/${new URL(origin).host}/${room}`);
      await page.click('#copy-link');
      await h.until('the copy to be confirmed', async () => (await page.textContent('#copy-status')) === 'Link copied.', 5_000);
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `${origin}/r/${room}`);

      // Camera off releases the device and shows a placeholder; on brings it back.
      await page.click('#pre-cam');
      await h.until('the camera to turn off', async () => !(await state(page)).media.hasVideo, 5_000);
      assert.equal(await page.isVisible('#preview-off'), true);
      assert.equal(await page.getAttribute('#pre-cam', 'aria-label'), 'Turn on camera (Ctrl+E)');
      await page.keyboard.press('Control+e');
      await h.until('the camera to come back (Ctrl+E)', async () => (await state(page)).media.hasVideo, 10_000);
      await page.keyboard.press('Control+d');
      s = await state(page);
      assert.equal(s.media.muted, true, 'Ctrl+D mutes');
      assert.equal(await page.getAttribute('#pre-mic', 'aria-label'), 'Turn on microphone (Ctrl+D)');
      await page.click('#pre-mic');
      assert.equal((await state(page)).media.muted, false, 'the button unmutes');

      // Every control has an accessible name and is reachable with Tab.
      const unnamed = await page.evaluate(() =>
        [...document.querySelectorAll('#prejoin button, #prejoin input, #prejoin select, #prejoin a[href], #prejoin [role=meter]')]
          .filter((el) => el.checkVisibility())
          .filter((el) => !((el.getAttribute('aria-label') || '').trim() || [...(el.labels ?? [])].some((l) => l.textContent.trim()) || el.textContent.trim()))
          .map((el) => el.outerHTML.slice(0, 120)),
      );
      assert.deepEqual(unnamed, [], 'controls without an accessible name');
      const reached = new Set();
      await page.focus('#display-name');
      for (let i = 0; i < 30; i++) {
        await page.keyboard.press('Tab');
        reached.add(await page.evaluate(() => document.activeElement?.id));
      }
      for (const id of ['pre-mic', 'pre-cam', 'camera-select', 'mic-select', 'display-name', 'join-button', 'open-app', 'share-link', 'copy-link']) {
        assert.ok(reached.has(id), `#${id} is not reachable with Tab (reached: ${[...reached].join(', ')})`);
      }

      // The name is remembered for next time.
      await page.fill('#display-name', 'Remembered Name');
      await page.press('#display-name', 'Tab');
      await page.reload();
      await page.waitForSelector('#join-button:enabled', { timeout: JOIN_WAIT });
      assert.equal(await page.inputValue('#display-name'), 'Remembered Name');
      await assertClean(page);
    } finally {
      await page.close();
      await env.browser.context.clearPermissions();
    }
  });

  // ------------------------------------------------------------ with ringlet-peer

  for (const order of ['browser-first', 'peer-first']) {
    const title = order === 'browser-first'
      ? 'Chromium joins first, ringlet-peer second and offers: VP8 and Opus both ways, chat both ways, mute and hang-up seen'
      : 'ringlet-peer joins first, Chromium second and offers: VP8 and Opus both ways, devices switched mid-call without renegotiation, chat both ways, mute and hang-up seen';
    it(title, { timeout: 120_000 }, async () => {
      const room = `with-peer-${order}`;
      const page = await newPage();
      let peer = null;
      const startPeer = () => h.startPeer(env.peerBin, { server: env.signal.url, room, peerId: `rp-${order}`, extra: ['--chat', 'hello from rust'] });
      try {
        if (order === 'peer-first') {
          peer = startPeer();
          await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
          assert.ok(peer.find('joined'), peer.describe());
        }
        await prejoin(page, room);
        await join(page, 'Alice');
        if (order === 'browser-first') {
          assert.equal((await call(page)).status, 'waiting', 'alone in the room: waiting');
          assert.match(await page.textContent('#call-status'), /Waiting for the other person/);
          peer = startPeer();
        }
        await checkMediaWithPeer(page, peer, order);
        const c = await call(page);
        // The newcomer makes the first offer; the one who waited answers it.
        assert.equal(c.firstSent, order === 'peer-first' ? 'offer' : 'answer');
        assert.equal(c.polite, order === 'peer-first', 'the later joiner is polite');
        assert.ok(c.counters.dataFramesReceived > 0, 'ringlet-peer\'s test frames arrive on the data channel');

        if (order === 'peer-first') {
          // Devices switched mid-call go out on the same senders: no new
          // offer or answer on either side, and ringlet-peer keeps decoding.
          const negotiated = () => peer.events.filter((e) => e.event === 'negotiated').length;
          const [before, negBefore, peerBefore] = [await call(page), negotiated(), peerVideo(peer)];
          await switchDevices(page);
          await h.until('ringlet-peer to decode the new camera, and the new microphone to be sent', async () => {
            const now = await call(page);
            return peerVideo(peer) >= peerBefore + MIN_FRAMES && now.stats.sent.audioPacketsSent > before.stats.sent.audioPacketsSent + 50;
          }, MEDIA_WAIT);
          const after = await call(page);
          assert.deepEqual([after.counters.offersSent, after.counters.answersSent, negotiated()], [before.counters.offersSent, before.counters.answersSent, negBefore], 'no renegotiation for a device switch');
          assert.equal(after.stats.sent.videoCodec, 'video/VP8');
        }

        // Chat both ways: ringlet-peer's --chat line shows in the chat panel;
        // a line typed here reaches ringlet-peer.
        await h.until('ringlet-peer\'s chat line in the page', async () => (await call(page)).chat.some((m) => m.from === 'peer' && m.text === 'hello from rust'), 10_000);
        await page.click('#chat-toggle');
        await page.waitForSelector('#chat-log li.theirs >> text=hello from rust');
        await chat(page, 'hi from Chromium');
        await h.until('ringlet-peer to receive the chat line', () => peer.find('chat', (e) => e.text === 'hi from Chromium'), 10_000);
        await page.waitForSelector('#chat-log li.mine >> text=hi from Chromium');

        // Our mute state reaches ringlet-peer over the data channel.
        await h.until('ringlet-peer to hear we are unmuted', () => peer.find('remote_media', (e) => e.audio_muted === false && e.video_muted === false), 10_000);
        await page.keyboard.press('Control+d');
        await h.until('ringlet-peer to hear we muted (Ctrl+D)', () => peer.find('remote_media', (e) => e.audio_muted === true), 10_000);
        assert.equal(await page.isVisible('#self-muted'), true, 'our own tile shows the mute');

        // ringlet-peer hangs up (SIGINT: it says so on the data channel and leaves).
        await peer.stop();
        await h.until('the page to show that the other person left', async () => (await call(page)).status === 'peer-left', 10_000);
        assert.match(await page.textContent('#call-status'), /left the call/);
        const summary = peer.find('summary');
        assert.ok(summary, `ringlet-peer printed no summary${await diag({ page }, [peer])}`);
        assert.equal(summary.connected, true);
        assert.ok(summary.video_frames_received >= MIN_FRAMES, `ringlet-peer decoded ${summary.video_frames_received} frames`);
        assert.equal(summary.video_decode_errors, 0, 'ringlet-peer decoded every frame it assembled');
        assert.ok(summary.audio_frames_received > 0, `ringlet-peer decoded ${summary.audio_frames_received} audio frames`);
        assert.ok(summary.chats_received >= 1);
        assert.equal(peer.exit()?.code, 0, peer.describe());
        await assertClean(page);
      } catch (e) {
        throw await withDiag(e, { page }, peer ? [peer] : []);
      } finally {
        await peer?.stop();
        await page.close();
      }
    });
  }

  it('ICE restart from the page ("Restart connection") with ringlet-peer: new ICE credentials both ways, media keeps flowing', { timeout: 120_000 }, async () => {
    const room = 'ice-restart';
    const page = await newPage();
    const peer = h.startPeer(env.peerBin, { server: env.signal.url, room, peerId: 'rp-restart' });
    try {
      await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
      await prejoin(page, room);
      await join(page, 'Restarter');
      await checkMediaWithPeer(page, peer, 'before the restart');
      const before = await call(page);
      const peerBefore = peerVideo(peer);
      await page.click('#quality');
      await page.waitForSelector('#quality-panel:visible');
      await page.click('#restart-ice');
      await h.until('the restart offer answered with new ICE credentials on both sides', async () => {
        const c = await call(page);
        return c.counters.iceRestarts === 1 && c.signalingState === 'stable' && c.localUfrag !== before.localUfrag && c.remoteUfrag !== before.remoteUfrag && c.remoteUfrag;
      }, 20_000);
      await h.until('media to keep flowing after the restart, both ways', async () => {
        const c = await call(page);
        return c.status === 'connected' && decoded(c) >= decoded(before) + MIN_FRAMES && audioIn(c) > audioIn(before) && peerVideo(peer) >= peerBefore + MIN_FRAMES;
      }, MEDIA_WAIT);
      const c = await call(page);
      assert.equal(c.counters.offersSent, 2, 'the page offered the call and the restart');
      assert.ok(peer.events.filter((e) => e.event === 'negotiated').length >= 2, 'ringlet-peer completed both exchanges');
      await assertClean(page);
    } catch (e) {
      throw await withDiag(e, { page }, [peer]);
    } finally {
      await peer.stop();
      await page.close();
    }
  });

  it('a browser without a camera (permission denied) says so, joins audio-only, and still sees and is heard', { timeout: 120_000 }, async () => {
    const room = 'no-camera';
    const page = await newPage();
    // The browser refuses the camera as it does when a person clicks "Block".
    await page.addInitScript(() => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = async (c) => {
        if (c?.video) throw new DOMException('Permission denied', 'NotAllowedError');
        return real(c);
      };
    });
    const peer = h.startPeer(env.peerBin, { server: env.signal.url, room, peerId: 'rp-nocam' });
    try {
      await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
      await prejoin(page, room);
      const s = await state(page);
      assert.equal(s.media.hasVideo, false);
      assert.equal(s.media.hasAudio, true);
      assert.match(await page.textContent('#device-errors'), /camera: permission was denied/);
      assert.equal(await page.isVisible('#preview-off'), true);
      await join(page, 'No Camera');
      await h.until('receive-only video and audio both ways', async () => {
        const c = await call(page);
        const st = peer.last('stats');
        return (c?.status === 'connected' && decoded(c) >= MIN_FRAMES && audioIn(c) > 0 && st) || peer.exit();
      }, MEDIA_WAIT);
      await h.until('ringlet-peer to hear the camera is off', () => peer.find('remote_media', (e) => e.video_muted === true && e.audio_muted === false), 10_000);
      await peer.stop();
      const summary = peer.find('summary');
      assert.ok(summary?.audio_frames_received > 0, 'ringlet-peer hears the page');
      assert.equal(summary.video_frames_received, 0, 'and receives no video from it');
      // The browser's own refusal is logged by nobody; the page logged nothing.
      await assertClean(page);
    } catch (e) {
      throw await withDiag(e, { page }, [peer]);
    } finally {
      await peer.stop();
      await page.close();
    }
  });

  it('over plain http on a LAN address (not a secure context): no camera or microphone, said so; the page joins and sees and hears ringlet-peer', { timeout: 120_000 }, async (t) => {
    const lan = await h.lanAddress();
    if (!lan) {
      t.skip('this machine has no non-loopback IPv4 address');
      return;
    }
    const server = await h.startSignal(env.signalBin, [], { host: lan });
    const room = 'lan-http';
    const page = await newPage();
    const peer = h.startPeer(env.peerBin, { server: server.url, room, peerId: 'rp-lan', udp: `${lan}:0`, extra: ['--chat', 'hello over the LAN'] });
    try {
      await h.until('ringlet-peer to join', () => peer.find('joined') || peer.exit(), JOIN_WAIT);
      await prejoin(page, room, server.url);
      assert.equal(await page.evaluate(() => window.isSecureContext), false, `${server.url} is not a secure context`);
      const s = await state(page);
      assert.deepEqual([s.media.hasAudio, s.media.hasVideo], [false, false]);
      assert.match(await page.textContent('#device-errors'), /This page is not secure/);
      await join(page, 'Guest on the LAN');
      await h.until('video and audio from ringlet-peer', async () => {
        const c = await call(page);
        return (c?.status === 'connected' && decoded(c) >= MIN_FRAMES && audioIn(c) > 0) || peer.exit();
      }, MEDIA_WAIT);
      await h.until('ringlet-peer\'s chat line', async () => (await call(page)).chat.some((m) => m.text === 'hello over the LAN'), 10_000);
      await chat(page, 'hello from a plain-http page');
      await h.until('ringlet-peer to receive the chat line', () => peer.find('chat', (e) => e.text === 'hello from a plain-http page'), 10_000);
      await h.until('ringlet-peer to hear we send nothing', () => peer.find('remote_media', (e) => e.video_muted && e.audio_muted), 10_000);
      await peer.stop();
      assert.equal(peer.find('summary')?.video_frames_received, 0);
      await assertClean(page);
    } catch (e) {
      throw await withDiag(e, { page }, [peer]);
    } finally {
      await peer.stop();
      await page.close();
      await server.stop();
    }
  });

  // ------------------------------------------------------------ Chromium <-> Chromium

  it('Chromium ↔ Chromium: video both ways, chat both ways, mute and camera-off shown on the other side, reload, a stale seat taken back, room full, hang-up', { timeout: 120_000 }, async () => {
    const room = 'two-browsers';
    const a = await newPage();
    let b = await newPage();
    let b2 = null;
    let c3 = null;
    try {
      await prejoin(a, room);
      await join(a, 'Ada');
      await prejoin(b, room);
      await join(b, 'Bo');
      await h.until('both connected with video decoded both ways', async () => {
        const [ca, cb] = [await call(a), await call(b)];
        return ca.status === 'connected' && cb.status === 'connected' && decoded(ca) >= MIN_FRAMES && decoded(cb) >= MIN_FRAMES && audioIn(ca) > 0 && audioIn(cb) > 0;
      }, MEDIA_WAIT);
      const [ca, cb] = [await call(a), await call(b)];
      assert.equal(ca.remote.name, 'Bo');
      assert.equal(cb.remote.name, 'Ada');
      assert.equal(await b.textContent('#remote-name'), 'Ada');
      assert.ok(cb.counters.offersSent >= 1 && ca.counters.answersSent >= 1, 'the newcomer (Bo) offered');

      // Chat both ways, typed into the chat box.
      await chat(a, 'hello Bo');
      await chat(b, 'hello Ada');
      await b.waitForSelector('#chat-log li.theirs >> text=hello Bo', { timeout: 10_000 });
      await a.waitForSelector('#chat-log li.theirs >> text=hello Ada', { timeout: 10_000 });

      // Ada mutes (button) and turns her camera off (Ctrl+E): Bo sees both.
      await a.click('#mic-toggle');
      await b.waitForSelector('#remote-muted:visible', { timeout: 10_000 });
      assert.equal(await b.getAttribute('#remote-muted', 'aria-label'), 'Ada’s microphone is off');
      await a.keyboard.press('Control+e');
      await h.until('Bo to see Ada\'s camera is off', async () => (await call(b)).remoteMedia.videoMuted, 10_000);
      await b.waitForSelector('#remote-off:visible', { timeout: 10_000 });
      assert.match(await b.textContent('#remote-message'), /Ada’s camera is off/);
      await a.keyboard.press('Control+e');
      await h.until('Bo to see Ada\'s camera again', async () => !(await call(b)).remoteMedia.videoMuted && (await b.isVisible('#remote-video')), 15_000);

      // Every call control is labelled and reachable with Tab.
      const reached = new Set();
      await a.focus('#mic-toggle');
      for (let i = 0; i < 15; i++) {
        reached.add(await a.evaluate(() => document.activeElement?.id));
        await a.keyboard.press('Tab');
      }
      for (const id of ['mic-toggle', 'cam-toggle', 'chat-toggle', 'settings-open', 'hangup', 'quality', 'chat-input']) {
        assert.ok(reached.has(id), `#${id} is not reachable with Tab (reached: ${[...reached].join(', ')})`);
      }

      // Bo reloads the page: Ada sees him leave; he joins again from the
      // pre-join page (same tab, same peer id) and the call comes back.
      await b.reload();
      await h.until('Ada to see Bo leave', async () => (await call(a)).status === 'peer-left', 10_000);
      await h.until('the reloaded page to start its devices', async () => (await state(b)).media?.started, JOIN_WAIT);
      await b.waitForSelector('#join-button:enabled');
      await b.click('#join-button');
      await h.until('the call to come back after the reload', async () => {
        const [ca2, cb2] = [await call(a), await call(b)];
        return ca2.status === 'connected' && cb2?.status === 'connected' && decoded(ca2) > decoded(ca) && decoded(cb2) >= 10;
      }, MEDIA_WAIT);

      // A third person gets a readable "full".
      c3 = await newPage();
      await prejoin(c3, room);
      await c3.fill('#display-name', 'Third');
      await c3.click('#join-button');
      await c3.waitForSelector('#problem:visible', { timeout: JOIN_WAIT });
      assert.equal(await c3.textContent('#problem-title'), 'This call is full');
      await c3.close();

      // A page that took Bo's seat without the old page saying goodbye (a
      // reload whose goodbye was lost, a duplicated tab: same tab storage,
      // same peer id). Its join resumes the held seat, so it leaves and
      // joins afresh: Ada hears Bo leave and come back, and the call is
      // set up again with the new page.
      const boId = (await call(b)).peerId;
      b2 = await newPage();
      await b2.addInitScript(([key, id]) => sessionStorage.setItem(key, id), [`ringlet.peer.${room}`, boId]);
      const sessionsBefore = (await call(a)).counters.sessions;
      await prejoin(b2, room);
      await join(b2, 'Bo again');
      await h.until('the call to be set up again with the new page', async () => {
        const [ca2, cb2] = [await call(a), await call(b2)];
        return cb2.peerId === boId && ca2.counters.sessions > sessionsBefore && ca2.status === 'connected' && cb2.status === 'connected' && decoded(cb2) >= 10;
      }, MEDIA_WAIT);
      assert.equal((await call(a)).remote.name, 'Bo again');
      assert.equal((await call(b2)).counters.staleSeatsReleased, 1, 'the new page released the held seat first');
      await b.close();
      b = b2;

      // Ada hangs up: she sees the goodbye screen, Bo sees she left.
      await a.click('#hangup');
      await a.waitForSelector('#ended:visible', { timeout: 10_000 });
      await h.until('Bo to see Ada left', async () => (await call(b)).status === 'peer-left', 10_000);
      assert.match(await b.textContent('#call-status'), /Ada left the call/);
      await assertClean(a);
      await assertClean(b);
    } catch (e) {
      throw await withDiag(e, { a, b });
    } finally {
      await c3?.close().catch(() => {});
      await b2?.close().catch(() => {});
      await a.close();
      await b.close().catch(() => {});
    }
  });

  // ------------------------------------------------------------ the server goes away

  it('a server that requires invites: "New call" gets a room and token from it, the shared link lets a guest in, a link without the token is turned away readably', { timeout: 120_000 }, async () => {
    const server = await h.startSignal(env.signalBin, [], { extra: ['--require-token', '--token-secret', 'browser test secret, long enough'] });
    const [host, guest, stranger] = [await newPage(), await newPage(), await newPage()];
    try {
      await host.goto(`${server.url}/`);
      await host.click('#new-call');
      await host.waitForURL(/\/r\/[A-Za-z0-9_-]{22}\?t=\d+\.[A-Za-z0-9_-]+$/, { timeout: JOIN_WAIT });
      const url = new URL(host.url());
      const room = url.pathname.slice(3);
      await h.until('the host page to start its devices', async () => (await state(host)).media?.started, JOIN_WAIT);
      const shared = await host.inputValue('#share-link');
      assert.equal(shared, `${server.url}/r/${room}${url.search}`, 'the shared link carries the invite');
      assert.match(await host.getAttribute('#open-app', 'href'), new RegExp(`^ringlet://join/[^/]+/${room}\\?t=`));
      await join(host, 'Host');

      await guest.goto(shared);
      await h.until('the guest page to start its devices', async () => (await state(guest)).media?.started, JOIN_WAIT);
      await join(guest, 'Guest');
      await h.until('host and guest connected with video both ways', async () => {
        const [a, b] = [await call(host), await call(guest)];
        return a.status === 'connected' && b.status === 'connected' && decoded(a) >= MIN_FRAMES && decoded(b) >= MIN_FRAMES;
      }, MEDIA_WAIT).catch(async (e) => { throw await withDiag(e, { host, guest }); });

      // The same room without the invite: a readable refusal, not a hang.
      await stranger.goto(`${server.url}/r/${room}`);
      await h.until('the stranger page to start its devices', async () => (await state(stranger)).media?.started, JOIN_WAIT);
      await stranger.fill('#display-name', 'Stranger');
      await stranger.click('#join-button');
      await stranger.waitForSelector('#problem-title:visible', { timeout: JOIN_WAIT });
      assert.equal(await stranger.textContent('#problem-title'), 'This call needs an invite');
      assert.equal((await call(host)).status, 'connected', 'the call goes on');
      await assertClean(host);
    } finally {
      for (const p of [host, guest, stranger]) await p.close();
      await server.stop();
    }
  });

  it('a server that is down: the page says it cannot reach it, and joins when it is back', { timeout: 60_000 }, async () => {
    const server = await h.startSignal(env.signalBin);
    const page = await newPage();
    try {
      await prejoin(page, 'server-down', server.url);
      await server.kill();
      await page.fill('#display-name', 'Patient');
      await page.click('#join-button');
      await h.until('the page to say the server is unreachable', async () => (await call(page))?.status === 'unreachable', JOIN_WAIT);
      assert.match(await page.textContent('#call-status'), /Cannot reach the Ringlet server/);
      const again = await h.startSignal(env.signalBin, [], { port: server.port });
      try {
        await h.until('the page to join once the server is back', async () => (await call(page))?.status === 'waiting', 20_000);
      } finally {
        await again.stop();
      }
      // The failed connection attempts are the browser's own console errors; no CSP trouble.
      await assertClean(page, { consoleErrorsOk: true });
    } finally {
      await page.close();
      await server.stop();
    }
  });

  it('ringlet-signal killed mid-call (SIGKILL) and restarted on its port: media flows through the outage, both sides rejoin, signaling works again', { timeout: 150_000 }, async () => {
    let server = await h.startSignal(env.signalBin);
    const port = server.port;
    const room = 'server-restart';
    const page = await newPage();
    let peer = null;
    try {
      await prejoin(page, room, server.url);
      await join(page, 'Survivor');
      peer = h.startPeer(env.peerBin, { server: server.url, room, peerId: 'rp-survivor' });
      await checkMediaWithPeer(page, peer, 'before the kill');

      await server.kill();
      const atKill = { page: decoded(await call(page)), audio: audioIn(await call(page)), peer: peerVideo(peer) };
      await h.until('both sides to notice the server is gone', async () => (await call(page)).signaling === 'reconnecting' && peer.find('signaling_lost'), 15_000);
      // The outage lasts a few seconds; the call must carry on through it.
      await sleep(3000);
      await h.until('media to keep flowing while the server is down, both ways', async () => {
        const c = await call(page);
        return decoded(c) > atKill.page && audioIn(c) > atKill.audio && peerVideo(peer) > atKill.peer;
      }, 15_000);
      const down = await call(page);
      assert.equal(down.status, 'connected', 'the call itself stays connected');
      assert.equal(down.signaling, 'reconnecting');
      assert.match(await page.textContent('#banner'), /Your call continues/);

      server = await h.startSignal(env.signalBin, [], { port });
      await h.until('the page and ringlet-peer to rejoin', async () => {
        const c = await call(page);
        return c.signaling === 'joined' && c.counters.rejoins === 1 && peer.find('rejoined');
      }, 30_000);
      await page.waitForSelector('#banner:visible >> text=Reconnected to the server.', { timeout: 5_000 });
      assert.equal((await call(page)).status, 'connected');

      // Signaling works end to end again: an ICE restart's offer and answer
      // go through the new server.
      const before = await call(page);
      const peerBefore = peerVideo(peer);
      await page.click('#quality');
      await page.click('#restart-ice');
      await h.until('an ICE restart through the restarted server', async () => {
        const c = await call(page);
        return c.counters.iceRestarts === 1 && c.signalingState === 'stable' && c.remoteUfrag !== before.remoteUfrag && c.status === 'connected';
      }, 20_000);
      await h.until('media still flowing both ways', async () => {
        const c = await call(page);
        return decoded(c) >= decoded(before) + 10 && peerVideo(peer) >= peerBefore + 10 && audioIn(c) > audioIn(before);
      }, MEDIA_WAIT);
      await peer.stop();
      const summary = peer.find('summary');
      assert.equal(summary?.reconnects, 1, 'ringlet-peer rejoined once');
      assert.ok(summary.video_frames_received > atKill.peer);
      // The killed server's dropped connection shows as console errors
      // from the browser's WebSocket; the page itself logs none.
      await assertClean(page, { consoleErrorsOk: true });
    } catch (e) {
      throw await withDiag(e, { page }, peer ? [peer] : []);
    } finally {
      await peer?.stop();
      await page.close();
      await server.stop();
    }
  });
});
