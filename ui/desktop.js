// The desktop backend: the same surface as media.js (LocalMedia) and
// web-call.js (WebCall), over the app's Tauri commands. The engine in Rust
// (crates/session) captures, encodes, calls and plays; this page only
// shows: frames arrive over the loopback frame socket (frame-view.js),
// events over Tauri's event bus, and every action is a command whose
// failure comes back as a sentence to show.

import { Emitter } from './emitter.js';
import { randomId } from './links.js';

const CALL_EVENT = 'ringlet://call';
export const LINK_EVENT = 'ringlet://link';
const PREFS_KEY = 'ringlet.desktop.devices';
const MAX_CHAT_CHARS = 4000;

export const invoke = (cmd, args) => window.__TAURI__.core.invoke(cmd, args);
export const listen = (name, fn) => window.__TAURI__.event.listen(name, fn);

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY)) || {};
  } catch {
    return {};
  }
}

function savePrefs(p) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(p));
  } catch {
    /* not remembered */
  }
}

const message = (e) => (typeof e === 'string' ? e : e?.message ?? String(e));

export class DesktopMedia extends Emitter {
  /** @param {{camera?: string, microphone?: string, speaker?: string}} defaults from Settings */
  constructor(defaults = {}) {
    super();
    this.defaults = defaults;
    /** Truthy (the device id) while a source runs: the UI's "has a track". */
    this.tracks = { audio: null, video: null };
    this.muted = false;
    this.cameraOff = false;
    this.errors = { audio: null, video: null };
    this.prefs = loadPrefs();
    this.speakerSupported = true;
    this.started = false;
    this.stopped = false;
    this.current = { audio: null, video: null };
    this.levelValue = 0;
    this.meter = { peak: 0, level: () => this.levelValue };
    this.levelTimer = null;
    this.list = null;
  }

  get audioMuted() {
    return this.muted || !this.tracks.audio;
  }

  get videoMuted() {
    return this.cameraOff || !this.tracks.video;
  }

  async devices() {
    const d = await invoke('devices');
    this.list = d;
    return { cameras: d.cameras, mics: d.microphones, speakers: d.speakers, problems: d.problems };
  }

  /**
   * The saved choice if it is still there, else the first real device,
   * else the test source. ALSA's "null" device is not a real one (it
   * captures silence): never a default.
   */
  #pick(list, saved, test) {
    if (saved && list.some((x) => x.id === saved)) return saved;
    return list.find((x) => x.id !== test && x.id !== 'mic:null')?.id ?? test;
  }

  async start() {
    try {
      const d = await this.devices();
      const camera = this.cameraOff ? 'off' : this.#pick(d.cameras, this.prefs.cameraId || this.defaults.camera, 'test-pattern');
      const mic = this.#pick(d.mics, this.prefs.micId || this.defaults.microphone, 'test-tone');
      this.prefs.speakerId ??= this.defaults.speaker || undefined;
      // The camera first, alone: then each failure is said for its device.
      try {
        await invoke('media_start', { camera, microphone: 'off' });
        this.current.video = camera === 'off' ? this.current.video : camera;
        this.tracks.video = camera === 'off' ? null : camera;
        this.errors.video = null;
      } catch (e) {
        this.errors.video = `${message(e)} You can pick the test pattern instead.`;
        this.tracks.video = null;
        await invoke('media_start', { camera: 'off', microphone: 'off' });
      }
      await this.#useAudio(mic);
      await invoke('media_set', { change: { micOn: !this.muted } });
      this.#pollLevel();
    } catch (e) {
      this.errors.video ??= message(e);
    } finally {
      this.started = true;
      this.emit('change');
      this.emit('track', { kind: 'video', track: this.tracks.video });
    }
  }

  async #useAudio(id) {
    try {
      await invoke('media_use', { kind: 'audio', id });
      this.current.audio = id;
      this.tracks.audio = id;
      this.errors.audio = null;
    } catch (e) {
      this.errors.audio = `${message(e)} You can pick the test tone instead.`;
      this.tracks.audio = null;
    }
  }

  #pollLevel() {
    clearInterval(this.levelTimer);
    this.levelTimer = setInterval(async () => {
      if (this.stopped) return;
      try {
        const s = await invoke('media_state_now');
        this.levelValue = this.muted ? 0 : s.level;
        this.meter.peak = Math.max(this.meter.peak, this.levelValue);
      } catch {
        /* stopped meanwhile */
      }
    }, 100);
  }

  async retry() {
    await this.start();
  }

  setMuted(muted) {
    this.muted = muted;
    invoke('media_set', { change: { micOn: !muted } }).catch((e) => { this.errors.audio = message(e); });
    this.emit('change');
  }

  async setCameraOff(off) {
    if (!off && !this.tracks.video && !this.current.video) {
      this.cameraOff = false;
      await this.start();
      return;
    }
    try {
      await invoke('media_set', { change: { cameraOn: !off } });
      this.cameraOff = off;
      this.tracks.video = off ? null : this.current.video;
      this.errors.video = null;
    } catch (e) {
      this.errors.video = message(e);
    }
    this.emit('change');
    this.emit('track', { kind: 'video', track: this.tracks.video });
  }

  async useDevice(kind, id) {
    if (kind === 'audio') {
      await this.#useAudio(id);
      if (this.errors.audio) throw new Error(this.errors.audio);
      this.prefs.micId = id;
    } else {
      await invoke('media_use', { kind: 'video', id });
      this.current.video = id;
      this.prefs.cameraId = id;
      if (!this.cameraOff) {
        await invoke('media_set', { change: { cameraOn: true } });
        this.tracks.video = id;
        this.errors.video = null;
      }
      this.emit('track', { kind: 'video', track: this.tracks.video });
    }
    savePrefs(this.prefs);
    this.emit('change');
  }

  setSpeaker(id) {
    this.prefs.speakerId = id;
    savePrefs(this.prefs);
    invoke('media_use', { kind: 'speaker', id }).catch(() => {});
    this.emit('speaker', id);
  }

  currentDevice(kind) {
    return this.current[kind];
  }

  stop() {
    this.stopped = true;
    clearInterval(this.levelTimer);
    invoke('media_stop').catch(() => {});
  }
}

/** A peer id for this window and room, kept across reloads. */
function stablePeerId(room) {
  const key = `ringlet.desktop.peer.${room}`;
  try {
    const known = sessionStorage.getItem(key);
    if (known && /^[A-Za-z0-9_-]{1,64}$/.test(known)) return known;
    const id = `desk-${randomId(12)}`;
    sessionStorage.setItem(key, id);
    return id;
  } catch {
    return `desk-${randomId(12)}`;
  }
}

function qualityOf(q) {
  if (q.rttMs === null || q.rttMs === undefined) return 'unknown';
  if (q.lossPct < 2 && q.rttMs < 150) return 'good';
  if (q.lossPct < 8 && q.rttMs < 400) return 'fair';
  return 'poor';
}

export class DesktopCall extends Emitter {
  /**
   * @param {object} o
   * @param {string} o.room
   * @param {string} [o.name]
   * @param {DesktopMedia} o.media
   * @param {string} [o.server] signaling base URL ('' = the configured or built-in one)
   * @param {() => object} [o.frames] the frame view's counters
   */
  constructor({ room, name = '', media, server = '', token = null, frames = () => null }) {
    super();
    this.room = room;
    this.token = token;
    this.name = name.slice(0, 64);
    this.media = media;
    this.server = server;
    this.frames = frames;
    this.peerId = stablePeerId(room);
    this.signaling = 'idle';
    this.joined = false;
    this.joinedOnce = false;
    this.connectErrors = 0;
    this.connection = null;
    this.connectedOnce = false;
    this.dataOpen = false;
    this.remote = null;
    this.peerGone = null;
    this.remoteMedia = { audioMuted: false, videoMuted: false, known: false };
    this.ended = false;
    this.error = null;
    this.connectedAt = null;
    this.chat = [];
    this.stats = null;
    this.unlisten = null;
    this.statsTimer = null;
  }

  async join() {
    this.signaling = 'connecting';
    this.unlisten = await listen(CALL_EVENT, (e) => this.#event(e.payload));
    try {
      await invoke('call_join', {
        request: {
          server: this.server,
          room: this.room,
          peerId: this.peerId,
          name: this.name,
          speaker: this.media.prefs.speakerId || '',
          token: this.token || '',
        },
      });
    } catch (e) {
      this.#fail({ code: 'join-failed', message: message(e) });
      return;
    }
    this.statsTimer = setInterval(() => this.#readStats(), 1000);
    this.#changed();
  }

  #event(e) {
    switch (e?.type) {
      case 'joined':
        this.joined = true;
        this.joinedOnce = true;
        this.signaling = 'joined';
        if (e.others?.length) this.remote = { peerId: e.others[0], name: this.remote?.name ?? '', present: true };
        if (e.rejoin) this.emit('notice', { kind: 'rejoined' });
        break;
      case 'refused':
        this.#fail({ code: e.code, message: e.message });
        return;
      case 'peer-joined':
        this.remote = { peerId: e.peerId, name: '', present: true };
        this.peerGone = null;
        this.emit('notice', { kind: 'peer-joined', name: '' });
        break;
      case 'peer-left':
        if (this.remote) this.remote.present = false;
        this.peerGone = this.peerGone === 'hangup' ? 'hangup' : e.reason === 'timeout' ? 'timeout' : 'left';
        this.dataOpen = false;
        this.connection = null;
        break;
      case 'signaling-lost':
        this.joined = false;
        this.signaling = 'reconnecting';
        if (!this.joinedOnce) this.connectErrors++;
        this.emit('notice', { kind: 'signaling-lost', reason: e.reason });
        break;
      case 'connection':
        this.connection = e.state;
        if (e.state === 'connected') this.#connected();
        break;
      case 'connected':
        this.connection = 'connected';
        this.#connected();
        break;
      case 'data-open':
        this.dataOpen = true;
        break;
      case 'chat':
        this.#addChat({ from: 'peer', name: this.remote?.name || 'Guest', text: String(e.text).slice(0, MAX_CHAT_CHARS) });
        return;
      case 'remote-media':
        this.remoteMedia = { audioMuted: !!e.audioMuted, videoMuted: !!e.videoMuted, known: true };
        break;
      case 'remote-hangup':
        this.peerGone = 'hangup';
        if (this.remote) this.remote.present = false;
        this.dataOpen = false;
        this.connection = null;
        break;
      case 'warning':
        console.info(`[ringlet] ${e.message}`);
        this.emit('notice', { kind: 'warning', message: e.message });
        break;
      default:
        break;
    }
    this.#changed();
  }

  #connected() {
    this.connectedOnce = true;
    this.peerGone = null;
    if (this.remote) this.remote.present = true;
    else this.remote = { peerId: '', name: '', present: true };
    this.connectedAt ??= Date.now();
  }

  #fail(error) {
    this.error = error;
    this.signaling = 'refused';
    this.#stop();
    this.#changed();
  }

  #changed() {
    this.emit('state', this.snapshot());
  }

  #addChat(m) {
    const entry = { ...m, at: Date.now() };
    this.chat.push(entry);
    if (this.chat.length > 500) this.chat.shift();
    this.emit('chat', entry);
    this.#changed();
  }

  sendChat(text) {
    const t = String(text ?? '').trim().slice(0, MAX_CHAT_CHARS);
    if (!t || !this.chatReady) return false;
    invoke('call_chat', { text: t }).catch((e) => this.emit('notice', { kind: 'warning', message: message(e) }));
    this.#addChat({ from: 'me', name: this.name || 'You', text: t });
    return true;
  }

  get chatReady() {
    return this.dataOpen && !this.ended;
  }

  restartIce() {
    if (this.connection !== 'connected' && !this.connectedOnce) return false;
    invoke('call_restart_ice').catch(() => {});
    return true;
  }

  async #readStats() {
    if (this.ended) return;
    try {
      const q = await invoke('call_quality');
      const f = this.frames() ?? {};
      this.stats = {
        quality: this.connection === 'connected' ? qualityOf(q) : 'unknown',
        rttMs: q.rttMs === null ? null : Math.round(q.rttMs),
        lossPct: Math.round(q.lossPct * 10) / 10,
        inKbps: Math.round(q.receiveKbps),
        outKbps: Math.round(q.sendKbps),
        video: f.remoteWidth ? { width: f.remoteWidth, height: f.remoteHeight, fps: f.fps ?? null, codec: 'video/VP8' } : null,
        route: null,
        jitterBufferMs: Math.round(q.jitterBufferMs),
        avOffsetMs: q.avOffsetMs === null ? null : Math.round(q.avOffsetMs),
        audioPlayed: q.audioPlayed,
        audioConcealed: q.audioConcealed,
        targetKbps: q.targetKbps,
      };
      this.emit('stats', this.stats);
    } catch {
      /* the call ended meanwhile */
    }
  }

  #stop() {
    clearInterval(this.statsTimer);
    this.unlisten?.();
    this.unlisten = null;
  }

  async hangup() {
    if (this.ended) return;
    this.ended = true;
    try {
      await invoke('call_hangup');
    } finally {
      this.#stop();
      this.#changed();
    }
  }

  snapshot() {
    return {
      status: this.status,
      room: this.room,
      peerId: this.peerId,
      signaling: this.signaling,
      connection: this.connection,
      remote: this.remote ? { ...this.remote } : null,
      remoteMedia: { ...this.remoteMedia },
      peerGone: this.peerGone,
      chatReady: this.chatReady,
      chat: this.chat.map((m) => ({ ...m })),
      connectedAt: this.connectedAt,
      error: this.error,
      stats: this.stats,
    };
  }

  get status() {
    if (this.error) return 'error';
    if (this.ended) return 'ended';
    if (!this.joinedOnce) return this.connectErrors > 0 ? 'unreachable' : 'connecting';
    if (this.remote?.present) {
      if (this.connection === 'connected') return 'connected';
      return this.connectedOnce ? 'reconnecting' : 'connecting';
    }
    if (!this.joined) return 'reconnecting';
    if (this.peerGone) return 'peer-left';
    return 'waiting';
  }
}
