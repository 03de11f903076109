// The browser's own camera and microphone (getUserMedia), for the pre-join
// preview and the call: which devices, on or off, switching, readable
// reasons when a device cannot be had, and the microphone's level.
//
// The call (web-call.js) listens for 'track' events and swaps the track on
// its RTCRtpSender (replaceTrack: no renegotiation).

import { Emitter } from './emitter.js';

const PREFS_KEY = 'ringlet.devices';

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY)) || {};
  } catch {
    return {};
  }
}

const WHAT = { audio: 'microphone', video: 'camera' };

/** A sentence a person can act on, for a getUserMedia failure of `kind`. */
export function describeMediaError(kind, err) {
  const what = WHAT[kind];
  switch (err?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return `Ringlet may not use your ${what}: permission was denied. Allow it from the icon in the address bar, then choose "Try again" — or join without it.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return `No ${what} was found. You can still join; the other person will ${kind === 'video' ? 'not see you' : 'not hear you'}.`;
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return `Your ${what} is busy or not working (another application may be using it). Close that application and choose "Try again", or join without it.`;
    case 'InsecureContext':
      return `This page is not secure (plain http on a network address), so the browser keeps the ${what} from it. You can still join to see and hear the other person; open the link over https (or on localhost) to send your own.`;
    default:
      return `Could not start your ${what}${err?.message ? `: ${err.message}` : ''}.`;
  }
}

export class LocalMedia extends Emitter {
  constructor() {
    super();
    /** The current tracks (null: none, off or unavailable). */
    this.tracks = { audio: null, video: null };
    /** Microphone muted (the track stays, disabled: it sends silence). */
    this.muted = false;
    /** Camera turned off (the device is released). */
    this.cameraOff = false;
    /** Why a kind has no track, readable, or null. */
    this.errors = { audio: null, video: null };
    this.prefs = loadPrefs();
    this.supported = !!globalThis.navigator?.mediaDevices?.getUserMedia;
    this.speakerSupported = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
    /** A stream holding the current tracks, for RTCRtpTransceiver streams (msid). */
    this.stream = new MediaStream();
    this.meter = new LevelMeter();
    this.stopped = false;
    /** The first start() has finished (with or without devices). */
    this.started = false;
  }

  get audioMuted() {
    return this.muted || !this.tracks.audio;
  }

  get videoMuted() {
    return this.cameraOff || !this.tracks.video;
  }

  #constraints(kind, exact) {
    const id = kind === 'audio' ? this.prefs.micId : this.prefs.cameraId;
    const deviceId = id ? (exact ? { exact: id } : { ideal: id }) : undefined;
    if (kind === 'audio') return { deviceId, echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    return { deviceId, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  }

  /** Asks for the camera and microphone (one permission prompt for both). */
  async start() {
    try {
      await this.#start();
    } finally {
      this.started = true;
      this.emit('change');
    }
  }

  async #start() {
    // Only what is missing: a retry keeps the track that works.
    const kinds = ['audio', 'video'].filter((k) => !this.tracks[k] && !(k === 'video' && this.cameraOff));
    if (!kinds.length) return;
    if (!this.supported) {
      for (const k of ['audio', 'video']) this.errors[k] = describeMediaError(k, { name: 'InsecureContext' });
      return;
    }
    const want = Object.fromEntries(kinds.map((k) => [k, this.#constraints(k, false)]));
    try {
      const s = await navigator.mediaDevices.getUserMedia(want);
      for (const t of s.getTracks()) this.#adopt(t.kind, t);
      for (const k of kinds) this.errors[k] = null;
    } catch {
      // One of the two failed: find out which by asking for each alone.
      for (const k of kinds) {
        try {
          const s = await navigator.mediaDevices.getUserMedia({ [k]: this.#constraints(k, false) });
          this.#adopt(k, s.getTracks()[0]);
          this.errors[k] = null;
        } catch (e2) {
          this.errors[k] = describeMediaError(k, e2);
        }
      }
    }
  }

  /** Makes `track` the current `kind` track, stopping the one it replaces. */
  #adopt(kind, track) {
    if (this.stopped) {
      track?.stop();
      return;
    }
    const old = this.tracks[kind];
    if (old === track) return;
    if (old) {
      old.stop();
      this.stream.removeTrack(old);
    }
    this.tracks[kind] = track;
    if (track) {
      if (kind === 'audio') track.enabled = !this.muted;
      this.stream.addTrack(track);
      track.addEventListener('ended', () => {
        // Unplugged, or revoked by the browser.
        if (this.tracks[kind] !== track) return;
        this.tracks[kind] = null;
        this.stream.removeTrack(track);
        this.errors[kind] = `Your ${WHAT[kind]} stopped (unplugged or taken away). Pick another one in the settings, or choose "Try again".`;
        this.emit('track', { kind, track: null });
        this.emit('change');
      });
    }
    if (kind === 'audio') this.meter.use(track);
    this.emit('track', { kind, track });
  }

  /** Tries again for whatever is missing (after a denied or busy device). */
  async retry() {
    await this.start();
  }

  setMuted(muted) {
    this.muted = !!muted;
    if (this.tracks.audio) this.tracks.audio.enabled = !this.muted;
    this.emit('change');
  }

  /** Camera off releases the device (its light goes out); on asks for it again. */
  async setCameraOff(off) {
    this.cameraOff = !!off;
    if (off) {
      this.#adopt('video', null);
      this.errors.video = null;
    } else if (!this.tracks.video && this.supported) {
      try {
        const s = await navigator.mediaDevices.getUserMedia({ video: this.#constraints('video', false) });
        if (this.cameraOff) {
          // Turned off again while we waited.
          for (const t of s.getTracks()) t.stop();
        } else {
          this.#adopt('video', s.getVideoTracks()[0]);
          this.errors.video = null;
        }
      } catch (e) {
        this.cameraOff = true;
        this.errors.video = describeMediaError('video', e);
      }
    }
    this.emit('change');
  }

  /** Switches the camera or microphone to device `id` (and remembers it). */
  async useDevice(kind, id) {
    const key = kind === 'audio' ? 'micId' : 'cameraId';
    const previous = this.prefs[key];
    this.prefs[key] = id;
    this.#savePrefs();
    if (kind === 'video' && this.cameraOff) return;
    try {
      const s = await navigator.mediaDevices.getUserMedia({ [kind]: this.#constraints(kind, true) });
      this.#adopt(kind, s.getTracks()[0]);
      this.errors[kind] = null;
    } catch (e) {
      this.prefs[key] = previous;
      this.#savePrefs();
      this.emit('change');
      throw new Error(describeMediaError(kind, e));
    }
    this.emit('change');
  }

  /** Remembers the speaker; whoever plays sound applies it (setSinkId). */
  setSpeaker(id) {
    this.prefs.speakerId = id;
    this.#savePrefs();
    this.emit('speaker', id);
  }

  #savePrefs() {
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify(this.prefs));
    } catch {
      /* private mode: not remembered */
    }
  }

  /** Cameras, microphones and speakers, `{id, label}` each. */
  async devices() {
    const out = { cameras: [], mics: [], speakers: [] };
    if (!navigator.mediaDevices?.enumerateDevices) return out;
    const all = await navigator.mediaDevices.enumerateDevices();
    const lists = { videoinput: out.cameras, audioinput: out.mics, audiooutput: out.speakers };
    const names = { videoinput: 'Camera', audioinput: 'Microphone', audiooutput: 'Speaker' };
    for (const d of all) {
      const list = lists[d.kind];
      if (!list || !d.deviceId) continue; // no id: no permission yet
      if (list.some((x) => x.id === d.deviceId)) continue;
      list.push({ id: d.deviceId, label: d.label || `${names[d.kind]} ${list.length + 1}` });
    }
    return out;
  }

  /** The device id a track of `kind` runs on now, if any. */
  currentDevice(kind) {
    return this.tracks[kind]?.getSettings?.().deviceId ?? (kind === 'audio' ? this.prefs.micId : this.prefs.cameraId) ?? '';
  }

  stop() {
    this.stopped = true;
    for (const k of ['audio', 'video']) {
      this.tracks[k]?.stop();
      this.tracks[k] = null;
    }
    this.meter.use(null);
  }
}

/**
 * The microphone's level through WebAudio's AnalyserNode, 0..1 (-60..0
 * dBFS). The AudioContext may start suspended (autoplay policy): it is
 * resumed at the first click or key press.
 */
export class LevelMeter {
  constructor() {
    this.ctx = null;
    this.source = null;
    this.analyser = null;
    this.buf = null;
    /** The highest level read so far (for the test hook). */
    this.peak = 0;
  }

  use(track) {
    this.source?.disconnect();
    this.source = null;
    if (!track) return;
    const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!AC) return;
    if (!this.ctx) {
      this.ctx = new AC();
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.buf = new Float32Array(this.analyser.fftSize);
      if (this.ctx.state === 'suspended') {
        const resume = () => this.ctx.resume().catch(() => {});
        document.addEventListener('pointerdown', resume, { once: true, capture: true });
        document.addEventListener('keydown', resume, { once: true, capture: true });
      }
    }
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(this.analyser);
  }

  /** The level now, 0..1. */
  level() {
    if (!this.source || !this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const x of this.buf) sum += x * x;
    const rms = Math.sqrt(sum / this.buf.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.max(0, Math.min(1, (db + 60) / 60));
    if (level > this.peak) this.peak = level;
    return level;
  }
}

/** A short test tone through the speaker `sinkId` (a WAV made here: no asset, no network). */
export async function playTestSound(sinkId) {
  const rate = 48000;
  const n = Math.round(rate * 0.6);
  const data = new DataView(new ArrayBuffer(44 + n * 2));
  const str = (o, s) => [...s].forEach((c, i) => data.setUint8(o + i, c.charCodeAt(0)));
  str(0, 'RIFF');
  data.setUint32(4, 36 + n * 2, true);
  str(8, 'WAVEfmt ');
  data.setUint32(16, 16, true);
  data.setUint16(20, 1, true);
  data.setUint16(22, 1, true);
  data.setUint32(24, rate, true);
  data.setUint32(28, rate * 2, true);
  data.setUint16(32, 2, true);
  data.setUint16(34, 16, true);
  str(36, 'data');
  data.setUint32(40, n * 2, true);
  for (let i = 0; i < n; i++) {
    const env = Math.min(1, i / 2000, (n - i) / 2000);
    const f = i < n / 2 ? 660 : 880;
    data.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * f * i) / rate) * 0.3 * env * 32767), true);
  }
  const url = URL.createObjectURL(new Blob([data.buffer], { type: 'audio/wav' }));
  const audio = new Audio(url);
  try {
    if (sinkId && audio.setSinkId) await audio.setSinkId(sinkId);
    await audio.play();
    await new Promise((r) => audio.addEventListener('ended', r, { once: true }));
  } finally {
    URL.revokeObjectURL(url);
  }
}
