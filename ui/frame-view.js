// Frames from the desktop app's engine, drawn on canvases. The app sends
// them over its loopback WebSocket (crates/session/src/frames.rs):
//   [kind u8][flags u8][timestamp_us u64 BE][payload]
// kind 1: the other person's VP8, untouched (flags bit 0: keyframe), for
//         WebCodecs' VideoDecoder: no decoding in the app at all;
// kind 2: our own preview as JPEG;
// kind 3: the other person's picture as JPEG, when this webview's
//         WebCodecs cannot decode VP8.
// The socket URL carries a per-run secret; the app also checks our origin.

const KIND_VP8 = 1;
const KIND_PREVIEW = 2;
const KIND_REMOTE_JPEG = 3;
const HEADER = 10;

function timestampUs(view) {
  return Number(view.getBigUint64(2));
}

const CELL = 16;
const STAMP_BITS = 96;

/**
 * The capture time (ms since the epoch) a test-pattern frame carries in
 * its top rows (crates/media/src/synthetic.rs: 16-pixel cells, white 1,
 * black 0: a 32-bit frame number, then 64 bits of microseconds), or null.
 * With the sender's pattern this gives glass-to-glass latency through
 * the whole app.
 */
export function readStamp(ctx, width) {
  const perRow = Math.floor(width / CELL);
  if (!perRow) return null;
  const rows = Math.ceil(STAMP_BITS / perRow);
  const img = ctx.getImageData(0, 0, perRow * CELL, rows * CELL).data;
  const stride = perRow * CELL * 4;
  let us = 0n;
  for (let i = 0; i < STAMP_BITS; i++) {
    const cx = i % perRow;
    const cy = Math.floor(i / perRow);
    let sum = 0;
    let n = 0;
    for (let y = cy * CELL + 4; y < (cy + 1) * CELL - 4; y += 2) {
      for (let x = cx * CELL + 4; x < (cx + 1) * CELL - 4; x += 2) {
        const o = y * stride + x * 4;
        sum += 0.299 * img[o] + 0.587 * img[o + 1] + 0.114 * img[o + 2];
        n++;
      }
    }
    const mean = sum / n;
    if (mean > 90 && mean < 161) return null; // too grey: not a stamp
    if (i >= 32) us = (us << 1n) | (mean >= 161 ? 1n : 0n);
  }
  const ms = Number(us) / 1000;
  // A plausible clock reading (within a day of ours), or not a stamp.
  return Math.abs(ms - Date.now()) < 86_400_000 ? ms : null;
}

const pct = (a, p) => {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};

export class FrameView {
  /**
   * @param {string} url ws://127.0.0.1:PORT/frames?secret=...
   * @param {{remote: HTMLCanvasElement[], preview: HTMLCanvasElement[]}} canvases
   */
  constructor(url, canvases) {
    this.url = url;
    this.canvases = canvases;
    this.mode = null; // 'vp8' | 'jpeg'
    this.stats = { remote: 0, preview: 0, remoteWidth: 0, remoteHeight: 0, mode: null, decodeErrors: 0, addedLatencyMs: [], endToEndMs: [] };
    this.forcedMode = null;
    this.decoder = null;
    this.needKey = true;
    this.previewBusy = false;
    this.remoteBusy = false;
    this.closed = false;
    this.wantPreview = true;
    this.onRemoteFrame = null;
  }

  /** Counters and latency percentiles for the test hook and the benchmark. */
  summary() {
    const s = this.stats;
    return {
      remote: s.remote, preview: s.preview, remoteWidth: s.remoteWidth, remoteHeight: s.remoteHeight,
      mode: s.mode, decodeErrors: s.decodeErrors,
      addedMsP50: pct(s.addedLatencyMs, 0.5), addedMsP95: pct(s.addedLatencyMs, 0.95),
      endToEndMsP50: pct(s.endToEndMs, 0.5), endToEndMsP95: pct(s.endToEndMs, 0.95),
    };
  }

  /** Forgets the latency samples (a benchmark's warm-up). */
  resetLatency() {
    this.stats.addedLatencyMs = [];
    this.stats.endToEndMs = [];
  }

  async start(forced = null) {
    this.mode = forced === 'jpeg' || !(await this.#vp8Supported()) ? 'jpeg' : 'vp8';
    this.stats.mode = this.mode;
    this.#connect();
  }

  /** Whether the page shows the preview (the app skips JPEG encoding when not). */
  setPreview(on) {
    this.wantPreview = on;
    this.#send({ preview: on });
  }

  close() {
    this.closed = true;
    this.ws?.close();
    try {
      this.decoder?.close();
    } catch {
      /* already closed */
    }
  }

  async #vp8Supported() {
    if (typeof VideoDecoder === 'undefined') return false;
    try {
      const r = await VideoDecoder.isConfigSupported({ codec: 'vp8' });
      return !!r.supported;
    } catch {
      return false;
    }
  }

  #send(o) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(o));
  }

  #connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.needKey = true;
      this.#send({ remote: this.mode, preview: this.wantPreview });
    };
    ws.onmessage = (e) => this.#frame(e.data);
    ws.onclose = () => {
      if (!this.closed) setTimeout(() => this.#connect(), 500);
    };
  }

  #frame(buf) {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength < HEADER) return;
    const view = new DataView(buf);
    const kind = view.getUint8(0);
    const flags = view.getUint8(1);
    const ts = timestampUs(view);
    const payload = new Uint8Array(buf, HEADER);
    if (kind === KIND_VP8) this.#vp8(payload, (flags & 1) === 1, ts);
    else if (kind === KIND_PREVIEW) this.#jpeg(payload, ts, 'preview');
    else if (kind === KIND_REMOTE_JPEG) this.#jpeg(payload, ts, 'remote');
  }

  #ensureDecoder() {
    if (this.decoder && this.decoder.state !== 'closed') return this.decoder;
    this.decoder = new VideoDecoder({
      output: (frame) => {
        this.#draw('remote', frame, frame.displayWidth, frame.displayHeight, Number(frame.timestamp));
        frame.close();
      },
      error: (err) => {
        // A broken stream: start over at the next keyframe (and ask for one).
        this.stats.decodeErrors++;
        console.info(`[ringlet] VP8 decode: ${err?.message ?? err}`);
        this.decoder = null;
        this.needKey = true;
        this.#send({ keyframe: true });
      },
    });
    this.decoder.configure({ codec: 'vp8', optimizeForLatency: true });
    return this.decoder;
  }

  #vp8(data, key, ts) {
    if (this.needKey && !key) return;
    const dec = this.#ensureDecoder();
    // Falling behind: drop to the next keyframe rather than grow a queue.
    if (dec.decodeQueueSize > 3 && !key) {
      this.needKey = true;
      this.#send({ keyframe: true });
      return;
    }
    this.needKey = false;
    try {
      dec.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: ts, data }));
    } catch {
      this.needKey = true;
      this.#send({ keyframe: true });
    }
  }

  #jpeg(data, ts, which) {
    const busy = which === 'preview' ? 'previewBusy' : 'remoteBusy';
    if (this[busy]) return; // one decode at a time; a newer still will come
    this[busy] = true;
    createImageBitmap(new Blob([data], { type: 'image/jpeg' }))
      .then((bmp) => {
        this.#draw(which, bmp, bmp.width, bmp.height, ts);
        bmp.close();
      })
      .catch(() => {})
      .finally(() => {
        this[busy] = false;
      });
  }

  #draw(which, image, w, h, tsUs) {
    for (const c of this.canvases[which]) {
      if (c.width !== w || c.height !== h) {
        c.width = w;
        c.height = h;
      }
      c.getContext('2d').drawImage(image, 0, 0, w, h);
    }
    if (which === 'remote') {
      this.stats.remote++;
      this.stats.remoteWidth = w;
      this.stats.remoteHeight = h;
      // What the page adds: from leaving the app's pipeline to drawn.
      const added = Date.now() - tsUs / 1000;
      const lat = this.stats.addedLatencyMs;
      lat.push(Math.round(added * 10) / 10);
      if (lat.length > 300) lat.shift();
      // Every third frame: the sender's capture time, if it stamped one.
      if (this.stats.remote % 3 === 0) {
        const c = this.canvases.remote[0];
        const captured = c ? readStamp(c.getContext('2d'), c.width) : null;
        if (captured !== null) {
          const e2e = this.stats.endToEndMs;
          e2e.push(Math.round((Date.now() - captured) * 10) / 10);
          if (e2e.length > 300) e2e.shift();
        }
      }
      this.onRemoteFrame?.();
    } else {
      this.stats.preview++;
    }
  }
}
