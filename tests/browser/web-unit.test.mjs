// The web client's pure modules, imported from ui/ as the browser loads
// them: room links (ui/links.js) and the negotiation bookkeeping that
// mirrors the Rust engine's Negotiator (ui/negotiation.js). No browser.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appLink, isValidId, joinTarget, newRoomId, parseJoinInput, roomFromPath, tokenFromSearch, webLink } from '../../ui/links.js';
import { MAX_QUEUED_CANDIDATES, RemoteCandidates, iceUfrag, sameDescription } from '../../ui/negotiation.js';

describe('room links (ui/links.js)', () => {
  it('new room ids carry 128 random bits in the allowed alphabet', () => {
    const ids = new Set();
    for (let i = 0; i < 1000; i++) {
      const id = newRoomId();
      assert.match(id, /^[A-Za-z0-9_-]{22}$/, id);
      assert.ok(isValidId(id));
      ids.add(id);
    }
    assert.equal(ids.size, 1000, 'no repeats in 1000');
    // 22 base64url characters hold 132 bits; 16 bytes went in.
    const bits = new Set();
    for (let i = 0; i < 200; i++) bits.add(newRoomId().charAt(21));
    assert.ok([...bits].every((c) => 'AQgw'.includes(c)), 'the last character carries 2 bits (16 bytes, no padding)');
  });

  it('reads the room from a /r/<room> path and refuses anything else', () => {
    assert.equal(roomFromPath('/r/abc-_9'), 'abc-_9');
    assert.equal(roomFromPath('/r/abc/'), 'abc');
    for (const bad of ['/', '/r/', '/r/a.b', '/r/a/b', '/r/%2e%2e', `/r/${'x'.repeat(65)}`, '/x/abc', '/r/%E0%A4%A']) {
      assert.equal(roomFromPath(bad), null, bad);
    }
  });

  it('accepts web links, ringlet:// links and bare codes', () => {
    assert.deepEqual(parseJoinInput('  room-1 '), { ok: true, room: 'room-1' });
    assert.deepEqual(parseJoinInput('http://192.168.1.5:3000/r/abc'), { ok: true, room: 'abc', host: '192.168.1.5:3000', protocol: 'http:' });
    assert.deepEqual(parseJoinInput('https://calls.example.org/r/Zx_9-/'), { ok: true, room: 'Zx_9-', host: 'calls.example.org', protocol: 'https:' });
    assert.deepEqual(parseJoinInput('ringlet://join/192.168.1.5:3000/abc'), { ok: true, room: 'abc', host: '192.168.1.5:3000' });
    assert.deepEqual(parseJoinInput('ringlet://join/[::1]:3000/abc'), { ok: true, room: 'abc', host: '[::1]:3000' });
    assert.deepEqual(parseJoinInput('RINGLET://join/Host.Example/abc'), { ok: true, room: 'abc', host: 'host.example' });
  });

  it('explains what is wrong with a malformed link', () => {
    const cases = {
      '': /Enter a room link/,
      'https://example.org/': /does not point at a room/,
      'https://example.org/r/bad.room': /room in that link is not valid/,
      'ringlet://join/host-only': /incomplete/,
      'ringlet://join/ho st/abc': /not a server address/,
      'ringlet://join/host/bad%20room': /room in that link is not valid/,
      'ftp://example.org/r/abc': /not ftp:/,
      'javascript:alert(1)': /not javascript:/,
      'not a link at all': /not a Ringlet link or room code/,
      [`${'x'.repeat(65)}`]: /not a Ringlet link or room code/,
    };
    for (const [input, re] of Object.entries(cases)) {
      const r = parseJoinInput(input);
      assert.equal(r.ok, false, input);
      assert.match(r.message, re, input);
    }
  });

  it('sends a link for this server to its path, and another server\'s to its URL', () => {
    const here = { host: '127.0.0.1:3000', protocol: 'http:' };
    assert.equal(joinTarget(parseJoinInput('abc'), here), '/r/abc');
    assert.equal(joinTarget(parseJoinInput('http://127.0.0.1:3000/r/abc'), here), '/r/abc');
    assert.equal(joinTarget(parseJoinInput('ringlet://join/127.0.0.1:3000/abc'), here), '/r/abc');
    assert.equal(joinTarget(parseJoinInput('https://calls.example.org/r/abc'), here), 'https://calls.example.org/r/abc');
    assert.equal(joinTarget(parseJoinInput('ringlet://join/10.0.0.2:3000/abc'), here), 'http://10.0.0.2:3000/r/abc');
    assert.equal(webLink('http://h:1', 'abc'), 'http://h:1/r/abc');
    assert.equal(appLink('h:1', 'abc'), 'ringlet://join/h:1/abc');
  });

  it('carries an invite token through every link form', () => {
    const token = '1800000060.AbC-_9';
    assert.equal(webLink('http://h:1', 'abc', token), `http://h:1/r/abc?t=${token}`);
    assert.equal(appLink('h:1', 'abc', token), `ringlet://join/h:1/abc?t=${token}`);
    assert.deepEqual(parseJoinInput(`https://calls.example.org/r/abc?t=${token}`), { ok: true, room: 'abc', host: 'calls.example.org', protocol: 'https:', token });
    assert.deepEqual(parseJoinInput(`ringlet://join/10.0.0.2:3000/abc?t=${token}`), { ok: true, room: 'abc', host: '10.0.0.2:3000', token });
    assert.deepEqual(parseJoinInput(`ringlet://join/10.0.0.2:3000/abc/?t=${token}`), { ok: true, room: 'abc', host: '10.0.0.2:3000', token });
    // Other query parameters are not an invite.
    assert.deepEqual(parseJoinInput('https://h/r/abc?utm=x'), { ok: true, room: 'abc', host: 'h', protocol: 'https:' });
    const here = { host: '127.0.0.1:3000', protocol: 'http:' };
    assert.equal(joinTarget(parseJoinInput(`http://127.0.0.1:3000/r/abc?t=${token}`), here), `/r/abc?t=${token}`);
    assert.equal(joinTarget(parseJoinInput(`ringlet://join/10.0.0.2:3000/abc?t=${token}`), here), `http://10.0.0.2:3000/r/abc?t=${token}`);
    assert.equal(tokenFromSearch(`?t=${token}`), token);
    assert.equal(tokenFromSearch('?t=<script>'), null);
    assert.equal(tokenFromSearch(''), null);
    for (const bad of ['https://h/r/abc?t=a%20b', 'ringlet://join/h/abc?t=', 'ringlet://join/h/abc?t=x"y']) {
      const r = parseJoinInput(bad);
      assert.equal(r.ok, false, bad);
      assert.match(r.message, /invite in that link is damaged/, bad);
    }
  });
});

describe('negotiation bookkeeping (ui/negotiation.js), as the engine\'s Negotiator', () => {
  const sdp = (ufrag) => `v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=ice-ufrag:${ufrag}\r\n`;
  const cand = (n, ufrag) => ({ candidate: `candidate:${n} 1 udp 1 127.0.0.1 ${5000 + n} typ host`, sdpMid: '0', sdpMLineIndex: 0, ...(ufrag ? { usernameFragment: ufrag } : {}) });

  it('queues candidates until the remote description, then hands them over in order', () => {
    const q = new RemoteCandidates();
    for (let i = 0; i < 5; i++) assert.equal(q.onCandidate(cand(i), 'stable'), 'queue');
    const ready = q.remoteDescriptionSet(sdp('A'));
    assert.deepEqual(ready.map((c) => c.candidate), [0, 1, 2, 3, 4].map((i) => cand(i).candidate));
    assert.equal(q.onCandidate(cand(9, 'A'), 'have-remote-offer'), 'apply');
    assert.equal(q.onCandidate(cand(10), 'stable'), 'apply');
  });

  it('queues while our offer is out, until the answer says which session they belong to', () => {
    const q = new RemoteCandidates();
    q.remoteDescriptionSet(sdp('OLD'));
    assert.equal(q.onCandidate(cand(1, 'NEW'), 'have-local-offer'), 'queue');
    assert.equal(q.onCandidate(cand(2, 'OLD'), 'have-local-offer'), 'queue');
    const ready = q.remoteDescriptionSet(sdp('NEW'));
    assert.deepEqual(ready.map((c) => c.usernameFragment), ['NEW'], 'the old session\'s candidate is dropped');
    assert.equal(q.dropped, 1);
  });

  it('drops the candidates of an offer ignored in a collision, queued or late', () => {
    const q = new RemoteCandidates();
    assert.equal(q.onCandidate(cand(1, 'THEIRS'), 'have-local-offer'), 'queue');
    q.offerIgnored(sdp('THEIRS'));
    assert.equal(q.queued, 0);
    assert.equal(q.onCandidate(cand(2, 'THEIRS'), 'have-local-offer'), 'drop');
    assert.equal(q.dropped, 2);
    // The polite side answers ours with that same ufrag: its candidates apply.
    q.remoteDescriptionSet(sdp('THEIRS'));
    assert.equal(q.onCandidate(cand(3, 'THEIRS'), 'stable'), 'apply');
  });

  it('drops candidates of an older ICE session after a restart', () => {
    const q = new RemoteCandidates();
    q.remoteDescriptionSet(sdp('OLD'));
    q.remoteDescriptionSet(sdp('NEW'));
    assert.equal(q.onCandidate(cand(1, 'OLD'), 'stable'), 'drop');
    assert.equal(q.onCandidate(cand(2, 'NEW'), 'stable'), 'apply');
    assert.equal(q.onCandidate(cand(3), 'stable'), 'apply', 'no ufrag: cannot tell, apply');
  });

  it('bounds the queue', () => {
    const q = new RemoteCandidates();
    for (let i = 0; i < MAX_QUEUED_CANDIDATES; i++) assert.equal(q.onCandidate(cand(i), 'stable'), 'queue');
    assert.equal(q.onCandidate(cand(9999), 'stable'), 'queue-dropped-oldest');
    assert.equal(q.queued, MAX_QUEUED_CANDIDATES);
    assert.equal(q.remoteDescriptionSet(sdp('A'))[0].candidate, cand(1).candidate);
  });

  it('reads the ufrag and recognises a repeated description', () => {
    assert.equal(iceUfrag('v=0\r\nm=audio 9 UDP 0\r\na=ice-ufrag:xYz1\r\n'), 'xYz1');
    assert.equal(iceUfrag('v=0\r\n'), null);
    assert.equal(iceUfrag(undefined), null);
    const a = { type: 'offer', sdp: sdp('A') };
    assert.ok(sameDescription(a, { ...a }));
    assert.ok(!sameDescription(a, { type: 'answer', sdp: a.sdp }));
    assert.ok(!sameDescription(a, { type: 'offer', sdp: sdp('B') }));
    assert.ok(!sameDescription(null, a));
  });
});

describe('ICE servers from the join ack', async () => {
  const { mergeIceServers, turnExpiry, refreshDelayMs } = await import('../../ui/ice-servers.js');
  const server = (urls, username) => (username ? { urls, username, credential: 'pw' } : { urls });

  it('keeps the page\'s servers first and skips an acked repeat', () => {
    const mine = [server(['stun:s.example:3478']), server(['turn:t.example:3478'], 'me')];
    const acked = [server(['turn:t.example:3478'], '1:a'), server(['turn:u.example:3478'], '1:a')];
    assert.deepEqual(mergeIceServers(mine, acked), [...mine, acked[1]]);
    assert.deepEqual(mergeIceServers([], acked), acked);
    assert.deepEqual(mergeIceServers(mine, []), mine);
  });

  it('finds the earliest TURN REST expiry', () => {
    assert.equal(turnExpiry([]), null);
    assert.equal(turnExpiry([server(['stun:s:1']), server(['turn:t:1'], 'static-user')]), null);
    assert.equal(turnExpiry([server(['turn:a:1'], '1700000600:alice'), server(['turn:b:1'], '1700000300:alice')]), 1700000300);
  });

  it('refreshes well before expiry, scaled to what is left', () => {
    assert.equal(refreshDelayMs(3600, 0), 2880_000);
    assert.equal(refreshDelayMs(5, 0), 4000);
    assert.equal(refreshDelayMs(1, 700), 300);
    assert.equal(refreshDelayMs(10, 10_000), null);
    assert.equal(refreshDelayMs(10, 11_000), null);
  });
});
