// The browser backend of a call: signaling through the official
// socket.io-client (window.io, served from /vendor), media through the
// browser's RTCPeerConnection. It speaks exactly what the Rust engine
// (crates/call) speaks, so a browser and the desktop app call each other:
//
// - join `{roomId, peerId, name}` with an ack; `polite` comes from the ack
//   (and we become impolite when someone joins after us); the newcomer (the
//   one whose ack lists peers already there) makes the first offer;
// - perfect negotiation with rollback for later offers (ICE restarts), the
//   remote-candidate queue and its session rules (negotiation.js);
// - a data channel "ringlet", created by the offerer, carrying JSON
//   `{t:"chat",text}`, `{t:"media",audio_muted,video_muted}` (on open and on
//   every change), `{t:"hangup"}`, and ringlet-peer's `{t:"frame"}` test
//   frames (counted, otherwise ignored);
// - reconnection resume: the peer connection stays up while signaling is
//   down; outgoing messages wait in our own ordered, bounded queue; on
//   reconnect we rejoin with the same peerId and re-send our last
//   description if it may have been missed; an app-level heartbeat notices
//   a frozen server in seconds;
// - an ICE restart after 3 s `disconnected`, or at once on `failed`;
// - the ack's `iceServers` (STUN, and TURN with a short-lived credential)
//   merged with our own; well before the credential expires we join again
//   on the same socket (the server mints a fresh one) and restart ICE with
//   it (`setConfiguration` + `restartIce`), see ice-servers.js.
//
// The UI (app.js) sees only this object's state, events and methods; the
// desktop backend will offer the same surface over Tauri commands.

import { Emitter } from './emitter.js';
import { RemoteCandidates, iceUfrag, sameDescription } from './negotiation.js';
import { randomId } from './links.js';
import { mergeIceServers, refreshDelayMs, turnExpiry } from './ice-servers.js';

/** Outgoing signaling messages kept while disconnected (the oldest go first). */
const MAX_QUEUED_OUT = 4096;
const JOIN_TIMEOUT_MS = 5000;
const HEARTBEAT_EVERY_MS = 2000;
const HEARTBEAT_TIMEOUT_MS = 4000;
const ICE_RESTART_AFTER_MS = 3000;
const MAX_CHAT_CHARS = 4000;
/** How long after an unanswered credential refresh to ask again. */
const REFRESH_RETRY_MS = 10_000;

/** A peer id for this tab and room, kept across reloads of the tab (sessionStorage). */
function stablePeerId(room) {
  const key = `ringlet.peer.${room}`;
  try {
    const known = sessionStorage.getItem(key);
    if (known && /^[A-Za-z0-9_-]{1,64}$/.test(known)) return { id: known, reused: true };
    const id = `web-${randomId(12)}`;
    sessionStorage.setItem(key, id);
    return { id, reused: false };
  } catch {
    return { id: `web-${randomId(12)}`, reused: false };
  }
}

/** Puts VP8 first among a video transceiver's codecs (the desktop engine sends and decodes VP8). */
function preferVp8(transceiver) {
  if (!transceiver?.setCodecPreferences || !globalThis.RTCRtpReceiver?.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps) return;
  const vp8 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/vp8');
  const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== 'video/vp8');
  try {
    transceiver.setCodecPreferences([...vp8, ...rest]);
  } catch {
    /* an engine that refuses the list keeps its own order */
  }
}

export class WebCall extends Emitter {
  /**
   * @param {object} o
   * @param {string} o.room
   * @param {string} [o.name] display name
   * @param {import('./media.js').LocalMedia} o.media
   * @param {string} [o.server] signaling base URL ('' = this page's origin)
   * @param {RTCIceServer[]} [o.iceServers] our own STUN/TURN servers, besides the join ack's
   * @param {string|null} [o.token] invite token from the link
   */
  constructor({ room, name = '', media, server = '', iceServers = [], token = null }) {
    super();
    this.room = room;
    this.token = token;
    this.name = name.slice(0, 64);
    this.media = media;
    this.server = server;
    const { id, reused } = stablePeerId(room);
    this.peerId = id;
    /** A reused id may still hold a seat from this tab's previous page. */
    this.peerIdReused = reused;
    this.polite = false;
    this.configuredIceServers = iceServers;
    /** What the peer connection uses: ours, then the join ack's. */
    this.iceServers = mergeIceServers(iceServers, []);
    this.refreshTimer = null;
    this.socket = null;
    this.joined = false;
    this.joinedOnce = false;
    this.signaling = 'idle'; // idle | connecting | joined | reconnecting | refused | closed
    this.connectErrors = 0;
    this.out = [];
    this.session = null;
    /** The other person in the room: {peerId, name, present}. */
    this.remote = null;
    /** Why the other person is gone: 'hangup' | 'left' | 'timeout', or null. */
    this.peerGone = null;
    this.remoteMedia = { audioMuted: false, videoMuted: false, known: false };
    this.ended = false;
    this.error = null;
    this.connectedAt = null;
    this.chat = [];
    this.stats = null;
    this.counters = {
      rejoins: 0, iceRestarts: 0, offersSent: 0, answersSent: 0, rollbacks: 0, collisionsIgnored: 0,
      repeatsIgnored: 0, candidatesSent: 0, candidatesReceived: 0, candidatesApplied: 0, candidateErrors: 0,
      dataFramesReceived: 0, sessions: 0, warnings: 0, staleSeatsReleased: 0, iceRefreshes: 0,
    };
    /** performance.timeOrigin-based ms of milestones, for the benchmark. */
    this.marks = { joinAck: null, bothInRoom: null, offerSent: null, remoteDescription: null, answerSent: null, connected: null, dataOpen: null };
    this.chain = Promise.resolve();
    this.heartbeatTimer = null;
    this.statsTimer = null;
    this.unsubscribe = [
      media.on('track', ({ kind, track }) => this.#localTrack(kind, track)),
      media.on('change', () => this.#sendMediaState()),
    ];
  }

  // ------------------------------------------------------------ public

  /** Connects to the server and joins the room. */
  join() {
    if (this.socket) return;
    const io = globalThis.io;
    if (typeof io !== 'function') {
      this.#fail({ code: 'no-client', message: 'The signaling client did not load (vendor/socket.io.min.js). Reload the page.' });
      return;
    }
    this.signaling = 'connecting';
    const socket = io(`${this.server}/signaling`, {
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      reconnectionDelay: 250,
      reconnectionDelayMax: 3000,
      timeout: 5000,
    });
    this.socket = socket;
    socket.on('connect', () => this.#join());
    socket.on('disconnect', (reason) => this.#lost(reason));
    socket.on('connect_error', () => {
      this.connectErrors++;
      this.#changed();
    });
    const guard = (fn) => (msg) => {
      // Nothing counts before our join is acked (or while we reset a stale seat).
      if (this.joined && !this.ended) fn(msg);
    };
    socket.on('peer-joined', guard((m) => this.#peerJoined(m)));
    socket.on('peer-left', guard((m) => this.#peerLeft(m)));
    socket.on('sdp-offer', guard((m) => this.#enqueue(() => this.#description(m))));
    socket.on('sdp-answer', guard((m) => this.#enqueue(() => this.#description(m))));
    socket.on('ice-candidate', guard((m) => this.#enqueue(() => this.#candidate(m))));
    socket.on('error', (e) => this.#warn(`server: ${e?.code}: ${e?.message}`));
    this.onPageHide = () => this.#leaveNow();
    addEventListener('pagehide', this.onPageHide);
    this.#changed();
  }

  /** Sends a chat line; false if the data channel is not open. */
  sendChat(text) {
    const t = String(text ?? '').trim().slice(0, MAX_CHAT_CHARS);
    const dc = this.session?.dc;
    if (!t || dc?.readyState !== 'open') return false;
    dc.send(JSON.stringify({ t: 'chat', text: t }));
    this.#addChat({ from: 'me', name: this.name || 'You', text: t });
    return true;
  }

  get chatReady() {
    return this.session?.dc?.readyState === 'open';
  }

  /** Restarts ICE now (the connection panel's "Restart connection"). */
  restartIce(reason = 'asked') {
    const s = this.session;
    if (!s || !s.negotiated || s.pc.signalingState === 'closed') return false;
    this.counters.iceRestarts++;
    s.iceRestartReason = reason;
    s.pc.restartIce(); // negotiationneeded follows: an offer with new ICE credentials
    this.#changed();
    return true;
  }

  /** Leaves: tells the other side (data channel, then signaling), closes everything. */
  async hangup() {
    if (this.ended) return;
    this.ended = true;
    const dc = this.session?.dc;
    if (dc?.readyState === 'open') {
      try {
        dc.send(JSON.stringify({ t: 'hangup' }));
        const deadline = performance.now() + 500;
        while (dc.bufferedAmount > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      } catch {
        /* closing anyway */
      }
    }
    if (this.socket?.connected && this.joined) {
      await new Promise((resolve) => this.socket.timeout(1000).emit('leave', { roomId: this.room }, resolve));
    }
    this.#shutdown();
  }

  /** A read-only picture of the call, for the UI and the test hook. */
  snapshot() {
    const s = this.session;
    return {
      status: this.status,
      room: this.room,
      peerId: this.peerId,
      polite: this.polite,
      /** The type of the first description we sent: who made the first offer. */
      firstSent: this.firstSent ?? null,
      signaling: this.signaling,
      connection: s?.pc.connectionState ?? null,
      ice: s?.pc.iceConnectionState ?? null,
      signalingState: s?.pc.signalingState ?? null,
      localUfrag: iceUfrag(s?.lastLocal?.sdp),
      remoteUfrag: iceUfrag(s?.lastRemote?.sdp),
      /** The TURN usernames in use (`<expiry>:<peerId>`; never the credentials). */
      iceUsernames: this.iceServers.map((x) => x.username).filter(Boolean),
      /** The labels of the tracks our senders carry now (device switches replace them). */
      sending: {
        audio: s?.transceivers.audio?.sender.track?.label ?? null,
        video: s?.transceivers.video?.sender.track?.label ?? null,
      },
      remote: this.remote ? { ...this.remote } : null,
      remoteMedia: { ...this.remoteMedia },
      peerGone: this.peerGone,
      chatReady: this.chatReady,
      chat: this.chat.map((m) => ({ ...m })),
      connectedAt: this.connectedAt,
      error: this.error,
      counters: { ...this.counters, candidatesQueued: s?.candidates.queued ?? 0, candidatesDropped: s?.candidates.dropped ?? 0 },
      marks: { ...this.marks },
      stats: this.stats,
    };
  }

  /**
   * What to tell the person: connecting | unreachable | waiting | connected
   * | reconnecting | peer-left | ended | error.
   */
  get status() {
    if (this.error) return 'error';
    if (this.ended) return 'ended';
    if (!this.joinedOnce) return this.connectErrors > 0 ? 'unreachable' : 'connecting';
    const s = this.session;
    if (s) {
      if (s.pc.connectionState === 'connected') return 'connected';
      return s.connectedOnce ? 'reconnecting' : 'connecting';
    }
    if (!this.joined) return 'reconnecting';
    if (this.peerGone) return 'peer-left';
    if (this.remote?.present) return 'connecting';
    return 'waiting';
  }

  // ------------------------------------------------------------ signaling

  #changed() {
    this.emit('state', this.snapshot());
  }

  #warn(message) {
    this.counters.warnings++;
    console.info(`[ringlet] ${message}`);
  }

  #fail(error) {
    this.error = error;
    this.signaling = 'refused';
    this.#shutdown();
  }

  /** Runs signaling input one message at a time, in arrival order (like the engine's actor). */
  #enqueue(fn) {
    this.chain = this.chain.then(fn).catch((e) => this.#warn(`negotiation: ${e?.message ?? e}`));
  }

  #send(event, payload) {
    if (this.ended) return;
    if (this.joined && this.socket?.connected) {
      this.socket.emit(event, payload);
      return;
    }
    this.out.push([event, payload]);
    if (this.out.length > MAX_QUEUED_OUT) this.out.shift();
  }

  #joinParams() {
    const params = { roomId: this.room, peerId: this.peerId };
    if (this.name) params.name = this.name;
    if (this.token) params.token = this.token;
    return params;
  }

  #join() {
    if (this.ended) return;
    const params = this.#joinParams();
    this.socket.timeout(JOIN_TIMEOUT_MS).emit('join', params, (err, ack) => {
      if (this.ended) return;
      if (err) {
        // No answer: treat the server as gone and reconnect.
        this.#warn('join: no ack; reconnecting');
        this.socket.io.engine?.close();
        return;
      }
      this.#joined(ack);
    });
  }

  #joined(ack) {
    if (!ack || ack.ok !== true) {
      const e = ack?.error ?? { code: 'internal', message: 'unreadable join answer' };
      this.#fail({ code: e.code, message: e.message });
      return;
    }
    // A fresh invite for rejoins: the link's may expire during a long call.
    if (typeof ack.token === 'string') this.token = ack.token;
    if (!this.joinedOnce && ack.resumed && this.peerIdReused && !this.staleReset) {
      // Our id still held a seat from this tab's previous page (a reload):
      // the other side's session with it is dead. Leave and join afresh,
      // so they hear peer-left then peer-joined and we offer anew. What the
      // server held for the old page is ignored (joined stays false).
      this.staleReset = true;
      this.counters.staleSeatsReleased++;
      this.socket.timeout(JOIN_TIMEOUT_MS).emit('leave', { roomId: this.room }, () => this.#join());
      return;
    }
    const rejoin = this.joinedOnce;
    this.joined = true;
    this.joinedOnce = true;
    this.signaling = 'joined';
    this.polite = !!ack.polite;
    // A rejoin's servers reach a live connection at its next gathering.
    this.#useAckedServers(ack.iceServers, false);
    const now = performance.timeOrigin + performance.now();
    if (!rejoin) this.marks.joinAck = now;
    if (rejoin) {
      this.counters.rejoins++;
      this.emit('notice', { kind: 'rejoined' });
    }
    const others = Array.isArray(ack.peers) ? ack.peers : [];
    if (others.length && !this.remote?.present) {
      this.remote = { peerId: others[0].peerId, name: others[0].name ?? '', present: true };
      this.peerGone = null;
      if (this.marks.bothInRoom === null) this.marks.bothInRoom = now;
    }
    const s = this.session;
    if (s) {
      // Resume: the peer connection lived on. Re-send our last word in case
      // the other side missed it (it ignores a repeat).
      if (s.lastLocal && (s.pc.signalingState === 'have-local-offer' || s.pc.signalingState === 'stable')) {
        this.#sendDescription(s, s.lastLocal);
      }
    } else if (others.length) {
      // Someone was waiting: the newcomer makes the offer.
      this.#openSession(this.remote, true);
    }
    const queued = this.out;
    this.out = [];
    for (const [ev, payload] of queued) this.socket.emit(ev, payload);
    this.#startHeartbeat();
    this.#changed();
  }

  /**
   * Takes a join ack's ICE servers: schedules the refresh of their
   * credential and hands them to the live peer connection (with `restart`,
   * an ICE restart gathers with them at once: new TURN allocations need an
   * unexpired credential).
   */
  #useAckedServers(acked, restart) {
    const next = mergeIceServers(this.configuredIceServers, Array.isArray(acked) ? acked : []);
    const changed = JSON.stringify(next) !== JSON.stringify(this.iceServers);
    this.iceServers = next;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const expiry = turnExpiry(next);
    if (expiry !== null) {
      const delay = refreshDelayMs(expiry, Date.now());
      if (delay === null) this.#warn('the server\'s TURN credential has already expired by our clock (clock skew?)');
      else this.refreshTimer = setTimeout(() => this.#refreshIceServers(), delay);
    }
    const s = this.session;
    if (!changed || !s || s.pc.signalingState === 'closed') return;
    try {
      s.pc.setConfiguration({ ...s.pc.getConfiguration(), iceServers: next });
    } catch (e) {
      this.#warn(`new ICE servers not applied: ${e?.message ?? e}`);
      return;
    }
    if (restart) {
      this.counters.iceRefreshes++;
      this.restartIce('fresh TURN credentials');
    }
  }

  /** Joins again on the same socket: the server answers with the same place and a fresh credential. */
  #refreshIceServers() {
    this.refreshTimer = null;
    // While disconnected the rejoin brings fresh servers anyway.
    if (this.ended || !this.joined || !this.socket?.connected) return;
    this.socket.timeout(JOIN_TIMEOUT_MS).emit('join', this.#joinParams(), (err, ack) => {
      if (this.ended) return;
      if (err || ack?.ok !== true) {
        // The credential in hand works until it expires: ask again later
        // (a rejoin, if it comes first, brings another anyway).
        this.#warn(`credential refresh: ${err ? 'no ack' : ack?.error?.message ?? 'refused'}`);
        if (!this.refreshTimer) this.refreshTimer = setTimeout(() => this.#refreshIceServers(), REFRESH_RETRY_MS);
        return;
      }
      if (typeof ack.token === 'string') this.token = ack.token;
      this.#useAckedServers(ack.iceServers, true);
      this.#changed();
    });
  }

  #lost(reason) {
    this.joined = false;
    this.#stopHeartbeat();
    if (this.ended || reason === 'io client disconnect') return;
    this.signaling = 'reconnecting';
    this.emit('notice', { kind: 'signaling-lost', reason });
    if (reason === 'io server disconnect') {
      // A kick: socket.io-client does not retry those by itself.
      setTimeout(() => !this.ended && this.socket.connect(), 500);
    }
    this.#changed();
  }

  #startHeartbeat() {
    this.#stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      const socket = this.socket;
      if (!socket?.connected || !this.joined) return;
      socket.timeout(HEARTBEAT_TIMEOUT_MS).emit('heartbeat', {}, (err) => {
        if (err && socket.connected && !this.ended) {
          // The server stopped answering without closing the connection:
          // drop the transport; socket.io-client reconnects, we rejoin.
          this.#warn('heartbeat: no ack; reconnecting');
          socket.io.engine?.close();
        }
      });
    }, HEARTBEAT_EVERY_MS);
  }

  #stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  #peerJoined(m) {
    if (!m?.peerId) return;
    const s = this.session;
    if (s && s.remote.peerId && s.remote.peerId !== m.peerId) {
      // Someone else: the old session is over.
      this.#closeSession();
    } else if (s && s.lastLocal && (s.pc.signalingState === 'have-local-offer' || s.pc.signalingState === 'stable')) {
      // The same peer back on a server that forgot it (restarted): what we
      // said while it was gone went nowhere. Say it again; a repeat is ignored.
      this.#sendDescription(s, s.lastLocal);
    }
    // The newcomer offers; we answer (and yield no more in a collision).
    this.polite = false;
    this.remote = { peerId: m.peerId, name: m.name ?? '', present: true };
    this.peerGone = null;
    if (this.marks.bothInRoom === null) this.marks.bothInRoom = performance.timeOrigin + performance.now();
    this.emit('notice', { kind: 'peer-joined', name: this.remote.name });
    this.#changed();
  }

  #peerLeft(m) {
    const s = this.session;
    if (s && (!s.remote.peerId || s.remote.peerId === m?.peerId)) this.#closeSession();
    if (this.remote && this.remote.peerId === m?.peerId) {
      this.remote.present = false;
      if (!this.peerGone) this.peerGone = m.reason === 'timeout' ? 'timeout' : 'left';
    }
    this.#changed();
  }

  // ------------------------------------------------------------ peer connection

  #openSession(remote, offerer) {
    this.#closeSession();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    const s = {
      pc,
      remote: remote ?? { peerId: null, name: '', present: true },
      offerer,
      /** Offers are ours to make only once the first exchange is done (the newcomer makes that one). */
      negotiated: offerer,
      makingOffer: false,
      settingAnswer: false,
      candidates: new RemoteCandidates(),
      lastLocal: null,
      lastRemote: null,
      configured: false,
      transceivers: { audio: null, video: null },
      dc: null,
      remoteStream: new MediaStream(),
      connectedOnce: false,
      disconnectedTimer: null,
      prevStats: null,
    };
    this.session = s;
    this.counters.sessions++;
    this.remoteMedia = { audioMuted: false, videoMuted: false, known: false };
    const live = (fn) => (...a) => {
      if (this.session === s) fn(...a);
    };
    pc.onnegotiationneeded = live(() => this.#negotiate(s));
    pc.onicecandidate = live(({ candidate }) => {
      if (!candidate || !candidate.candidate) return; // end of candidates: nothing to say
      this.counters.candidatesSent++;
      const msg = { roomId: this.room, candidate: candidate.toJSON() };
      if (s.remote.peerId) msg.to = s.remote.peerId;
      this.#send('ice-candidate', msg);
    });
    pc.oniceconnectionstatechange = live(() => this.#iceState(s));
    pc.onconnectionstatechange = live(() => {
      if (pc.connectionState === 'connected') {
        s.connectedOnce = true;
        const now = performance.timeOrigin + performance.now();
        if (this.marks.connected === null) this.marks.connected = now;
        if (this.connectedAt === null) this.connectedAt = Date.now();
      }
      this.#changed();
    });
    pc.ontrack = live((e) => {
      const track = e.track;
      s.remoteStream.addTrack(track);
      track.onunmute = live(() => this.#changed());
      track.onmute = live(() => this.#changed());
      this.emit('remote-stream', s.remoteStream);
      this.#changed();
    });
    pc.ondatachannel = live((e) => {
      if (e.channel.label === 'ringlet') this.#useChannel(s, e.channel);
    });
    if (offerer) {
      for (const kind of ['audio', 'video']) {
        const track = this.media.tracks[kind];
        s.transceivers[kind] = pc.addTransceiver(track ?? kind, { direction: 'sendrecv', streams: [this.media.stream] });
      }
      preferVp8(s.transceivers.video);
      this.#useChannel(s, pc.createDataChannel('ringlet'));
      s.configured = true;
      // Offer now rather than at negotiationneeded, a task later (measured
      // 6-17 ms of a ~45 ms join-to-offer); the event then finds the offer
      // under way and does nothing.
      this.#negotiate(s);
    }
    this.#startStats(s);
    this.#changed();
    return s;
  }

  /** The answerer takes the offer's audio and video m-lines for its own tracks. */
  async #configureAnswerer(s) {
    const swaps = [];
    for (const t of s.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      if (s.transceivers[kind] || t.mid === null || t.currentDirection === 'stopped') continue;
      s.transceivers[kind] = t;
      t.direction = 'sendrecv';
      swaps.push(t.sender.replaceTrack(this.media.tracks[kind] ?? null));
      t.sender.setStreams?.(this.media.stream);
      if (kind === 'video') preferVp8(t);
    }
    await Promise.all(swaps);
    for (const kind of ['audio', 'video']) {
      if (!s.transceivers[kind]) {
        // The offer had none: add ours; negotiationneeded offers it after this exchange.
        s.transceivers[kind] = s.pc.addTransceiver(this.media.tracks[kind] ?? kind, { direction: 'sendrecv', streams: [this.media.stream] });
      }
    }
    s.configured = true;
  }

  async #negotiate(s) {
    // Chromium fires negotiationneeded only when stable, but an offer may
    // have arrived since; it fires again once stable if still needed.
    if (!s.negotiated || this.ended || s.makingOffer || s.pc.signalingState !== 'stable') return;
    try {
      s.makingOffer = true;
      await s.pc.setLocalDescription();
      if (this.session !== s || s.pc.signalingState !== 'have-local-offer') return;
      const d = { type: s.pc.localDescription.type, sdp: s.pc.localDescription.sdp };
      s.lastLocal = d;
      this.#sendDescription(s, d);
      this.counters.offersSent++;
      if (this.marks.offerSent === null) this.marks.offerSent = performance.timeOrigin + performance.now();
    } catch (e) {
      this.#warn(`offer: ${e?.message ?? e}`);
    } finally {
      s.makingOffer = false;
      this.#changed();
    }
  }

  #sendDescription(s, d) {
    if (!this.firstSent) this.firstSent = d.type;
    const msg = { roomId: this.room, sdp: d };
    if (s.remote.peerId) msg.to = s.remote.peerId;
    this.#send(d.type === 'offer' ? 'sdp-offer' : 'sdp-answer', msg);
  }

  async #description(m) {
    const desc = m?.sdp;
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer') || typeof desc.sdp !== 'string') return;
    let s = this.session;
    if (!s) {
      if (desc.type !== 'offer') {
        this.#warn('an answer arrived with no call in progress');
        return;
      }
      s = this.#openSession(this.#remoteFor(m.from), false);
    }
    if (!s.remote.peerId && m.from) s.remote.peerId = m.from;
    const d = { type: desc.type, sdp: desc.sdp };
    if (sameDescription(s.lastRemote, d)) {
      this.counters.repeatsIgnored++;
      return;
    }
    const pc = s.pc;
    const readyForOffer = !s.makingOffer && (pc.signalingState === 'stable' || s.settingAnswer);
    const collision = d.type === 'offer' && !readyForOffer;
    if (collision && !this.polite) {
      s.candidates.offerIgnored(d.sdp);
      this.counters.collisionsIgnored++;
      return;
    }
    if (d.type === 'answer' && pc.signalingState !== 'have-local-offer') {
      this.#warn(`an answer in state ${pc.signalingState} ignored`);
      return;
    }
    if (collision) this.counters.rollbacks++;
    s.settingAnswer = d.type === 'answer';
    try {
      await pc.setRemoteDescription(d); // a polite collision rolls ours back implicitly
    } finally {
      s.settingAnswer = false;
    }
    if (this.session !== s) return;
    if (this.marks.remoteDescription === null) this.marks.remoteDescription = performance.timeOrigin + performance.now();
    s.lastRemote = d;
    s.negotiated = true;
    for (const c of s.candidates.remoteDescriptionSet(d.sdp)) await this.#addCandidate(s, c);
    if (d.type === 'offer') {
      if (!s.configured) await this.#configureAnswerer(s);
      await pc.setLocalDescription();
      if (this.session !== s) return;
      const a = { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
      s.lastLocal = a;
      this.#sendDescription(s, a);
      this.counters.answersSent++;
      if (this.marks.answerSent === null) this.marks.answerSent = performance.timeOrigin + performance.now();
    }
    this.#changed();
  }

  #remoteFor(peerId) {
    if (this.remote?.peerId === peerId || !peerId) return this.remote ?? { peerId: peerId ?? null, name: '', present: true };
    this.remote = { peerId, name: '', present: true };
    return this.remote;
  }

  async #candidate(m) {
    const c = m?.candidate;
    if (!c || typeof c.candidate !== 'string') return;
    let s = this.session;
    if (!s) {
      // A candidate before its offer: keep it for the offer.
      s = this.#openSession(this.#remoteFor(m.from), false);
    }
    this.counters.candidatesReceived++;
    if (!c.candidate) return; // end of candidates
    if (s.candidates.onCandidate(c, s.pc.signalingState) === 'apply') await this.#addCandidate(s, c);
  }

  async #addCandidate(s, c) {
    try {
      await s.pc.addIceCandidate(c);
      this.counters.candidatesApplied++;
    } catch (e) {
      this.counters.candidateErrors++;
      this.#warn(`candidate refused: ${e?.message ?? e}`);
    }
  }

  #iceState(s) {
    const st = s.pc.iceConnectionState;
    if (st === 'disconnected') {
      if (!s.disconnectedTimer) {
        s.disconnectedTimer = setTimeout(() => {
          s.disconnectedTimer = null;
          if (this.session === s && s.pc.iceConnectionState === 'disconnected') this.restartIce('disconnected for 3 s');
        }, ICE_RESTART_AFTER_MS);
      }
    } else {
      clearTimeout(s.disconnectedTimer);
      s.disconnectedTimer = null;
      if (st === 'failed') this.restartIce('ICE failed');
    }
    this.#changed();
  }

  #closeSession() {
    const s = this.session;
    if (!s) return;
    this.session = null;
    clearTimeout(s.disconnectedTimer);
    clearInterval(s.statsTimer);
    try {
      s.dc?.close();
    } catch {
      /* closing */
    }
    s.pc.close();
    for (const t of s.remoteStream.getTracks()) t.stop();
    this.stats = null;
    this.remoteMedia = { audioMuted: false, videoMuted: false, known: false };
    this.emit('remote-stream', null);
  }

  // ------------------------------------------------------------ data channel

  #useChannel(s, dc) {
    s.dc = dc;
    dc.onopen = () => {
      if (this.session !== s) return;
      if (this.marks.dataOpen === null) this.marks.dataOpen = performance.timeOrigin + performance.now();
      this.#sendMediaState();
      this.#changed();
    };
    dc.onclose = () => {
      if (this.session === s) this.#changed();
    };
    dc.onmessage = (e) => {
      if (this.session !== s || typeof e.data !== 'string') return;
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return; // not one of ours
      }
      switch (m?.t) {
        case 'chat':
          if (typeof m.text === 'string') this.#addChat({ from: 'peer', name: this.remote?.name || 'Guest', text: m.text.slice(0, MAX_CHAT_CHARS) });
          break;
        case 'media':
          this.remoteMedia = { audioMuted: !!m.audio_muted, videoMuted: !!m.video_muted, known: true };
          this.#changed();
          break;
        case 'hangup':
          this.#closeSession();
          this.peerGone = 'hangup';
          if (this.remote) this.remote.present = false;
          this.#changed();
          break;
        case 'frame':
          this.counters.dataFramesReceived++;
          break;
        default:
          break;
      }
    };
  }

  #addChat(m) {
    const entry = { ...m, at: Date.now() };
    this.chat.push(entry);
    if (this.chat.length > 500) this.chat.shift();
    this.emit('chat', entry);
    this.#changed();
  }

  #sendMediaState() {
    const dc = this.session?.dc;
    if (dc?.readyState !== 'open') return;
    dc.send(JSON.stringify({ t: 'media', audio_muted: this.media.audioMuted, video_muted: this.media.videoMuted }));
  }

  /** A new (or no) local track: swap it on the sender, no renegotiation. */
  async #localTrack(kind, track) {
    const sender = this.session?.transceivers[kind]?.sender;
    if (sender) {
      try {
        await sender.replaceTrack(track ?? null);
      } catch (e) {
        this.#warn(`replaceTrack(${kind}): ${e?.message ?? e}`);
      }
    }
    this.#sendMediaState();
  }

  // ------------------------------------------------------------ stats

  #startStats(s) {
    s.statsTimer = setInterval(async () => {
      if (this.session !== s) return;
      try {
        this.stats = await this.#readStats(s);
        this.emit('stats', this.stats);
      } catch (e) {
        this.#warn(`stats: ${e?.message ?? e}`);
      }
    }, 1000);
  }

  /** RTT, loss, bitrates and the decoding counters from getStats. */
  async #readStats(s) {
    const report = await s.pc.getStats();
    const now = performance.now();
    let pair = null;
    const inbound = { audio: null, video: null };
    const outbound = { audio: null, video: null };
    report.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) ?? pair;
      if (r.type === 'inbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) inbound[r.kind] = r;
      if (r.type === 'outbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) outbound[r.kind] = r;
    });
    if (!pair) report.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    const codec = (r) => (r?.codecId ? report.get(r.codecId)?.mimeType ?? null : null);
    const sum = (k, dir) => (dir.audio?.[k] ?? 0) + (dir.video?.[k] ?? 0);
    const cur = {
      t: now,
      bytesIn: sum('bytesReceived', inbound),
      bytesOut: sum('bytesSent', outbound),
      lost: sum('packetsLost', inbound),
      received: sum('packetsReceived', inbound),
    };
    const prev = s.prevStats;
    s.prevStats = cur;
    const dt = prev ? (cur.t - prev.t) / 1000 : 0;
    const rate = (k) => (prev && dt > 0 ? Math.max(0, Math.round(((cur[k] - prev[k]) * 8) / dt / 1000)) : null);
    let lossPct = null;
    if (prev) {
      const dl = Math.max(0, cur.lost - prev.lost);
      const dr = Math.max(0, cur.received - prev.received);
      lossPct = dl + dr > 0 ? Math.round((dl * 1000) / (dl + dr)) / 10 : 0;
    }
    const rttMs = pair?.currentRoundTripTime != null ? Math.round(pair.currentRoundTripTime * 1000) : null;
    const local = pair ? report.get(pair.localCandidateId) : null;
    const remote = pair ? report.get(pair.remoteCandidateId) : null;
    let quality = 'unknown';
    if (pair && lossPct !== null) {
      quality = (rttMs ?? 0) <= 150 && lossPct <= 2 ? 'good' : (rttMs ?? 0) <= 400 && lossPct <= 8 ? 'fair' : 'poor';
    }
    const v = inbound.video;
    const a = inbound.audio;
    return {
      quality,
      rttMs,
      lossPct,
      inKbps: rate('bytesIn'),
      outKbps: rate('bytesOut'),
      route: local && remote ? `${local.candidateType} ${local.protocol ?? ''} → ${remote.candidateType}`.replace(/\s+/g, ' ') : null,
      video: v && {
        codec: codec(v),
        framesDecoded: v.framesDecoded ?? 0,
        framesReceived: v.framesReceived ?? 0,
        width: v.frameWidth ?? null,
        height: v.frameHeight ?? null,
        fps: v.framesPerSecond ?? null,
        packetsReceived: v.packetsReceived ?? 0,
        packetsLost: v.packetsLost ?? 0,
      },
      audio: a && {
        codec: codec(a),
        packetsReceived: a.packetsReceived ?? 0,
        packetsLost: a.packetsLost ?? 0,
        totalSamplesReceived: a.totalSamplesReceived ?? 0,
        concealedSamples: a.concealedSamples ?? 0,
      },
      sent: {
        videoCodec: codec(outbound.video),
        audioCodec: codec(outbound.audio),
        framesEncoded: outbound.video?.framesEncoded ?? 0,
        audioPacketsSent: outbound.audio?.packetsSent ?? 0,
      },
    };
  }

  // ------------------------------------------------------------ teardown

  #leaveNow() {
    // The tab is going away: say goodbye without waiting for anything.
    if (this.ended) return;
    try {
      const dc = this.session?.dc;
      if (dc?.readyState === 'open') dc.send(JSON.stringify({ t: 'hangup' }));
      if (this.socket?.connected && this.joined) this.socket.emit('leave', { roomId: this.room });
    } catch {
      /* leaving anyway */
    }
    this.ended = true;
    this.#shutdown();
  }

  #shutdown() {
    this.#stopHeartbeat();
    clearTimeout(this.refreshTimer);
    this.#closeSession();
    if (this.signaling !== 'refused') this.signaling = 'closed';
    this.joined = false;
    this.socket?.disconnect();
    removeEventListener('pagehide', this.onPageHide);
    for (const u of this.unsubscribe) u();
    this.#changed();
  }
}
