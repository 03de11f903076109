#!/usr/bin/env node
// CPU of a two-way 720p30 call, per peer, against Chromium's, in one run:
//
// 1. ringlet: two `ringlet-peer --video synthetic --audio synthetic` through
//    ringlet-signal on loopback (1280x720 test pattern at 30 fps, VP8 and
//    Opus both ways, each peer decoding what it receives).
// 2. Chromium: two headless Chromiums, one browser instance per peer, with
//    fake devices (--use-fake-device-for-media-stream, getUserMedia video
//    1280x720 at 30 fps plus audio), running the seed tutorial's client
//    (tests/browser/static/index.html) through the seed's own Node server.
//    The page is unchanged; an init script adds the camera and microphone
//    tracks to its RTCPeerConnection before it makes its offer or answer
//    (the page's own media=1 always shows the remote video in a <video>
//    element, and ringlet-peer displays nothing: here the remote video is
//    decoded, not shown, unless CHROMIUM_RENDER=1).
//
// Per peer, over MEASURE seconds after WARMUP seconds of a running call
// (first frame decoded on both sides): CPU = the increase of utime+stime
// (/proc/<pid>/stat) summed over the peer's whole process tree (the
// process and every descendant, found through /proc/<pid>/task/*/children:
// for Chromium the browser, zygotes, renderer, GPU and utility processes),
// sampled every second, divided by the window's wall time: cores. Delivered
// frame rate: frames decoded in the window / its length (ringlet-peer: the
// `video_frames_received` of its per-second `stats` lines; Chromium: the
// inbound-rtp video `framesDecoded` of getStats). The signaling servers and
// this Node process are measured too but not charged to a peer; the rest of
// the machine's busy time (/proc/stat) is reported as `other_cores` so a
// disturbed run shows. ringlet-peer does not report its bitrate, so the
// loopback interface's traffic over the window (/proc/net/dev: both
// directions of the call, plus whatever else uses loopback at the time) is
// reported as `loopback_kbps`; Chromium's own inbound bitrate is exact.
//
// The configurations run one after the other (never together: two calls at
// once would share the 2 cores); with ROUNDS > 1 the order alternates.
//
// Usage (from the repository root; bench/call-cpu.sh builds and sets the binaries):
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... node bench/call-cpu.mjs \
//     [--warmup S] [--measure S] [--rounds N] [--hd]
// Environment: WARMUP (10), MEASURE (30), ROUNDS (1), ONLY=peer|chromium,
// HD=1 (= --hd: first wait, up to HD_TIMEOUT=120 s, until Chromium's
// bandwidth estimate has let it reach 1280x720 both ways; it starts near
// 300 kbit/s at 480x270 and needed ~25 s on loopback here),
// CHROMIUM_RENDER=1 (also play the remote stream in a <video> element:
// ringlet-peer only decodes, so the default is decode-only on both sides),
// CHROMIUM_FAKE_FPS (30; Chromium's own default is 20), CHROMIUM_BIN,
// CHROMIUM_EXTRA_ARGS, SEED_SERVER_DIR / SEED_BENCH_DIR (see common.mjs).
// Output: one JSON line per configuration and round on stdout, then one
// `summary` line (means over rounds, ours/Chromium ratios); a table on stderr.

import { setTimeout as sleep } from 'node:timers/promises';
import { TreeCpu, childrenOf, loadHarness, log, loopbackBytes, machine, machineCpu, procStat, seedServerDir } from './common.mjs';

function arg(name, env, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : process.env[env];
  const n = Number(v ?? dflt);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} / ${env}: not a number: ${v}`);
  return n;
}
const WARMUP = arg('warmup', 'WARMUP', 10);
const MEASURE = arg('measure', 'MEASURE', 30);
const ROUNDS = arg('rounds', 'ROUNDS', 1);
const ONLY = process.env.ONLY ?? '';
const RENDER = process.env.CHROMIUM_RENDER === '1';
// --hd: before the warm-up, wait (up to HD_TIMEOUT s) until Chromium's
// bandwidth estimate has ramped up to 1280x720 both ways, so both calls are
// measured at the same resolution.
const HD = process.argv.includes('--hd') || process.env.HD === '1';
const HD_TIMEOUT = arg('hd-timeout', 'HD_TIMEOUT', 120);
// Chromium's fake camera runs at 20 fps unless told otherwise, whatever
// getUserMedia asks for: make it a 30 fps camera like ringlet-peer's pattern.
// The harness's own bare --use-fake-device-for-media-stream comes first;
// Chromium keeps the last value of a repeated switch.
const FAKE_FPS = arg('fake-fps', 'CHROMIUM_FAKE_FPS', 30);
process.env.CHROMIUM_EXTRA_ARGS = `${process.env.CHROMIUM_EXTRA_ARGS ?? ''} --use-fake-device-for-media-stream=fps=${FAKE_FPS}`.trim();
const h = await loadHarness();

const r2 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 100) / 100);
const r3 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000);

/**
 * Samples the given process trees every second for MEASURE seconds while
 * `snapshot()` brackets the window; returns cores per tree and the rest.
 */
async function measureWindow(trees, snapshot, during = null) {
  const cpus = Object.fromEntries(Object.entries(trees).map(([k, pid]) => [k, new TreeCpu(pid)]));
  const self = process.cpuUsage();
  const m0 = machineCpu();
  const lo0 = loopbackBytes();
  const s0 = await snapshot();
  const t0 = performance.now();
  for (const c of Object.values(cpus)) c.sample();
  for (let i = 1; performance.now() - t0 < MEASURE * 1000; i++) {
    await sleep(Math.min(1000, MEASURE * 1000 - (performance.now() - t0)));
    for (const c of Object.values(cpus)) c.sample();
    if (during && i % 5 === 0) await during();
  }
  const wall = (performance.now() - t0) / 1000;
  const s1 = await snapshot();
  const m1 = machineCpu();
  const lo1 = loopbackBytes();
  const selfUs = process.cpuUsage(self);
  const cores = Object.fromEntries(Object.entries(cpus).map(([k, c]) => [k, c.seconds() / wall]));
  const harness = (selfUs.user + selfUs.system) / 1e6 / wall;
  const machineBusy = (m1.busy - m0.busy) / wall;
  const measured = Object.values(cores).reduce((a, b) => a + b, 0) + harness;
  return {
    wall,
    s0,
    s1,
    cores,
    byProcess: Object.fromEntries(Object.entries(cpus).map(([k, c]) => [k, Object.fromEntries(c.byProcess().map(([n, s]) => [n, r3(s / wall)]))])),
    byThread: Object.fromEntries(Object.entries(cpus).map(([k, c]) => [k, Object.fromEntries(c.byThread().map(([n, s]) => [n, r3(s / wall)]))])),
    processes: Object.fromEntries(Object.entries(cpus).map(([k, c]) => [k, c.processes()])),
    harness,
    loopbackKbps: ((lo1 - lo0) * 8) / wall / 1000,
    machineBusy,
    other: machineBusy - measured,
  };
}

// ------------------------------------------------------------------ ringlet

async function ringletCall(round) {
  const signal = await h.startSignal(h.binFromEnv('RINGLET_SIGNAL_BIN'));
  const peerBin = h.binFromEnv('RINGLET_PEER_BIN');
  const room = `cpu-${round}-${process.pid}`;
  const extra = ['--video', 'synthetic', '--audio', 'synthetic'];
  let a = null;
  let b = null;
  try {
    a = h.startPeer(peerBin, { server: signal.url, room, peerId: 'a', extra });
    await h.until('peer a to join', () => a.find('joined') || a.exit(), 10_000);
    if (!a.find('joined')) throw new Error(`peer a did not join\n${a.describe()}`);
    b = h.startPeer(peerBin, { server: signal.url, room, peerId: 'b', extra });
    await h.until('a first decoded frame on both peers', () => (a.find('first_remote_frame') && b.find('first_remote_frame')) || a.exit() || b.exit(), 20_000);
    if (!(a.find('first_remote_frame') && b.find('first_remote_frame'))) throw new Error(`call failed\n${a.describe()}\n${b.describe()}`);
    log(`  ringlet: call up, warming up ${WARMUP} s`);
    await sleep(WARMUP * 1000);
    const snap = async () => ({ a: a.last('stats'), b: b.last('stats') });
    log(`  ringlet: measuring ${MEASURE} s`);
    const w = await measureWindow({ a: a.proc.pid, b: b.proc.pid, signal: signal.proc.pid }, snap);
    await Promise.all([a.stop(), b.stop()]);
    const peer = (k, p) => {
      const [x, y] = [w.s0[k], w.s1[k]];
      const dt = (y.t_ms - x.t_ms) / 1000;
      const sum = p.find('summary') ?? {};
      return {
        cores: r3(w.cores[k]),
        fps_delivered: r2((y.video_frames_received - x.video_frames_received) / dt),
        fps_sent: r2((y.video_frames_sent - x.video_frames_sent) / dt),
        resolution: '1280x720',
        video_decode_errors: sum.video_decode_errors ?? null,
        latency_ms: sum.latency_ms ?? null,
        audio_frames_received: sum.audio_frames_received ?? null,
        by_thread: w.byThread[k],
      };
    };
    return {
      config: 'ringlet: 2 x ringlet-peer --video synthetic --audio synthetic via ringlet-signal',
      round,
      window_s: r2(w.wall),
      // a joins first and answers; b offers
      answerer: peer('a', a),
      offerer: peer('b', b),
      signaling_cores: r3(w.cores.signal),
      loopback_kbps: r2(w.loopbackKbps),
      harness_cores: r3(w.harness),
      machine_busy_cores: r3(w.machineBusy),
      other_cores: r3(w.other),
    };
  } catch (e) {
    if (a) log(a.describe());
    if (b) log(b.describe());
    throw e;
  } finally {
    await Promise.all([a?.stop(), b?.stop()]);
    await signal.stop();
  }
}

// ------------------------------------------------------------------ Chromium

/** Runs in the page before its own scripts: camera and microphone into the seed's RTCPeerConnection. */
function initScript({ render }) {
  const B = (window.__bench = { settings: null, gumError: null, remoteTracks: 0 });
  let media = null;
  const getMedia = () =>
    (media ??= navigator.mediaDevices
      .getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: true })
      .then((s) => {
        B.settings = s.getVideoTracks()[0].getSettings();
        return s;
      })
      .catch((e) => {
        B.gumError = String(e);
        throw e;
      }));
  getMedia(); // open the devices at once, as a call page would
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...a) {
      super(...a);
      this.__added = null;
      this.addEventListener('track', (e) => {
        B.remoteTracks++;
        if (render && e.track.kind === 'video') {
          const v = document.createElement('video');
          v.autoplay = true;
          v.muted = true;
          v.playsInline = true;
          v.width = 640;
          v.srcObject = e.streams[0] ?? new MediaStream([e.track]);
          document.body.appendChild(v);
          v.play().catch(() => {});
        }
      });
    }

    addLocal() {
      return (this.__added ??= getMedia().then((s) => {
        for (const t of s.getTracks()) this.addTrack(t, s);
      }));
    }

    async createOffer(...a) {
      await this.addLocal();
      return super.createOffer(...a);
    }

    async createAnswer(...a) {
      await this.addLocal();
      return super.createAnswer(...a);
    }
  };
}

/** The page's video (and audio) RTP figures from getStats. */
function pageStats(page) {
  return page.evaluate(async () => {
    const out = { t: null, inV: null, outV: null, inA: null, codec: null };
    if (!window.pc) return out;
    const rep = await window.pc.getStats();
    for (const s of rep.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.t = s.timestamp;
        out.inV = { framesDecoded: s.framesDecoded, framesReceived: s.framesReceived, framesDropped: s.framesDropped, framesPerSecond: s.framesPerSecond, frameWidth: s.frameWidth, frameHeight: s.frameHeight, bytesReceived: s.bytesReceived, decoderImplementation: s.decoderImplementation };
        const c = s.codecId && rep.get(s.codecId);
        out.codec = c ? c.mimeType : null;
      } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.outV = { framesEncoded: s.framesEncoded, framesSent: s.framesSent, framesPerSecond: s.framesPerSecond, frameWidth: s.frameWidth, frameHeight: s.frameHeight, bytesSent: s.bytesSent, qualityLimitationReason: s.qualityLimitationReason, qualityLimitationDurations: s.qualityLimitationDurations, encoderImplementation: s.encoderImplementation, timestamp: s.timestamp };
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.inA = { packetsReceived: s.packetsReceived, concealedSamples: s.concealedSamples, totalSamplesReceived: s.totalSamplesReceived };
      }
    }
    out.settings = window.__bench?.settings ?? null;
    out.gumError = window.__bench?.gumError ?? null;
    return out;
  });
}

/** Launches one Chromium and finds its browser process among our children. */
async function launchWithPid() {
  const before = new Set(childrenOf(process.pid));
  const browser = await h.launchBrowser();
  const pids = childrenOf(process.pid).filter((p) => !before.has(p) && /chrom/i.test(procStat(p)?.comm ?? ''));
  if (pids.length !== 1) {
    await browser.close();
    throw new Error(`cannot tell the new Chromium's browser process: candidates ${JSON.stringify(pids)}`);
  }
  return { browser, pid: pids[0] };
}

async function chromiumCall(round) {
  const seed = await h.startSeedServer(seedServerDir());
  const pages = await h.startPageServer();
  const browsers = [];
  try {
    const A = await launchWithPid();
    browsers.push(A.browser);
    const B = await launchWithPid();
    browsers.push(B.browser);
    const room = `cpu-${round}-${process.pid}`;
    const callee = await A.browser.newPage();
    const caller = await B.browser.newPage();
    for (const p of [callee, caller]) await p.addInitScript(initScript, { render: RENDER });
    // The seed server acks nothing: barrier=none makes the page count itself
    // joined 200 ms after it connects.
    await callee.goto(pages.url({ signal: seed.url, room, mode: 'answer', barrier: 'none' }));
    await h.until('the answering page to join', async () => (await h.results(callee)).joined, 10_000);
    await caller.goto(pages.url({ signal: seed.url, room, mode: 'offer', barrier: 'none' }));
    await h.until(
      'a first decoded video frame in both pages',
      async () => {
        const [x, y] = [await pageStats(callee), await pageStats(caller)];
        if (x.gumError || y.gumError) throw new Error(`getUserMedia failed: ${x.gumError ?? y.gumError}`);
        return x.inV?.framesDecoded > 0 && y.inV?.framesDecoded > 0;
      },
      30_000,
      250,
    ).catch(async (e) => {
      const [r1, r2_] = [await h.results(caller), await h.results(callee)];
      throw new Error(`${e.message}\ncaller: ${r1.events.join('\n  ')}\n${caller.consoleLines.join('\n')}\ncallee: ${r2_.events.join('\n  ')}\n${callee.consoleLines.join('\n')}`);
    });
    let hdAfter = null;
    if (HD) {
      // Chromium starts low (bandwidth estimate ~300 kbit/s, 480x270) and
      // ramps up: wait for 1280x720 both ways before the warm-up.
      const tHd = performance.now();
      await h.until(
        'Chromium to deliver 1280x720 both ways',
        async () => {
          const [x, y] = [await pageStats(callee), await pageStats(caller)];
          return x.inV?.frameWidth === 1280 && y.inV?.frameWidth === 1280;
        },
        HD_TIMEOUT * 1000,
        500,
      );
      hdAfter = (performance.now() - tHd) / 1000;
      log(`  chromium: 1280x720 both ways after ${hdAfter.toFixed(1)} s`);
    }
    log(`  chromium: call up, warming up ${WARMUP} s`);
    await sleep(WARMUP * 1000);
    log(`  chromium: measuring ${MEASURE} s`);
    const snap = async () => ({ a: await pageStats(callee), b: await pageStats(caller) });
    // Chromium may change resolution inside the window: note what it decodes every 5 s.
    const seen = { a: {}, b: {} };
    const note = async () => {
      for (const [k, p] of [['a', callee], ['b', caller]]) {
        const st = await pageStats(p);
        const res = st.inV ? `${st.inV.frameWidth}x${st.inV.frameHeight}` : '?';
        seen[k][res] = (seen[k][res] ?? 0) + 1;
      }
    };
    await note();
    const w = await measureWindow({ a: A.pid, b: B.pid, seed: seed.proc.pid }, snap, note);
    const peer = (k) => {
      const [x, y] = [w.s0[k], w.s1[k]];
      const dt = (y.t - x.t) / 1000;
      const dtOut = (y.outV.timestamp - x.outV.timestamp) / 1000;
      return {
        cores: r3(w.cores[k]),
        fps_delivered: r2((y.inV.framesDecoded - x.inV.framesDecoded) / dt),
        fps_sent: r2((y.outV.framesSent - x.outV.framesSent) / dtOut),
        resolution: `${y.inV.frameWidth}x${y.inV.frameHeight}`,
        resolutions_seen: seen[k],
        sent_resolution: `${y.outV.frameWidth}x${y.outV.frameHeight}`,
        camera: y.settings ? `${y.settings.width}x${y.settings.height}@${y.settings.frameRate}` : null,
        codec: y.codec,
        kbps_received: r2(((y.inV.bytesReceived - x.inV.bytesReceived) * 8) / dt / 1000),
        frames_dropped: y.inV.framesDropped - x.inV.framesDropped,
        quality_limitation: y.outV.qualityLimitationReason,
        quality_limitation_s: y.outV.qualityLimitationDurations,
        encoder: y.outV.encoderImplementation,
        decoder: y.inV.decoderImplementation,
        audio_packets_received: y.inA ? y.inA.packetsReceived - x.inA.packetsReceived : null,
        processes: w.processes[k],
        by_process: w.byProcess[k],
        by_thread: w.byThread[k],
      };
    };
    return {
      config: `chromium: 2 x headless Chromium (one browser each), fake 1280x720@${FAKE_FPS} camera + mic, the seed's client via the seed's Node server${RENDER ? ', remote video in a <video>' : ''}`,
      round,
      window_s: r2(w.wall),
      waited_for_720p_s: r2(hdAfter),
      answerer: peer('a'),
      offerer: peer('b'),
      signaling_cores: r3(w.cores.seed),
      loopback_kbps: r2(w.loopbackKbps),
      harness_cores: r3(w.harness),
      machine_busy_cores: r3(w.machineBusy),
      other_cores: r3(w.other),
    };
  } finally {
    for (const b of browsers) await b.close();
    await pages.close();
    await seed.stop();
  }
}

// ------------------------------------------------------------------ main

const t0 = Date.now();
log(`# machine: ${JSON.stringify(machine())}; warm-up ${WARMUP} s, window ${MEASURE} s, ${ROUNDS} round(s)`);
const results = { ringlet: [], chromium: [] };
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ['ringlet', 'chromium'] : ['chromium', 'ringlet'];
  for (const which of order) {
    if (ONLY && ONLY !== (which === 'ringlet' ? 'peer' : 'chromium')) continue;
    log(`# round ${round}: ${which}`);
    const r = which === 'ringlet' ? await ringletCall(round) : await chromiumCall(round);
    results[which].push(r);
    console.log(JSON.stringify(r));
    for (const role of ['answerer', 'offerer']) {
      const p = r[role];
      log(`  ${which} ${role}: ${p.cores} cores, ${p.fps_delivered} fps delivered at ${p.resolution}${p.resolutions_seen ? ` (seen every 5 s: ${JSON.stringify(p.resolutions_seen)})` : ''}, sends ${p.fps_sent} fps`);
    }
    log(`  loopback traffic ${r.loopback_kbps} kbit/s (both directions, every process's), signaling ${r.signaling_cores} cores, harness ${r.harness_cores}, machine busy ${r.machine_busy_cores}, other load ${r.other_cores} cores`);
  }
}

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const side = (rs, role, k) => mean(rs.map((r) => r[role][k]).filter((x) => typeof x === 'number'));
const summary = { event: 'summary', rounds: ROUNDS, warmup_s: WARMUP, window_s: MEASURE, machine: machine() };
for (const role of ['answerer', 'offerer']) {
  const o = { ringlet_cores: r3(side(results.ringlet, role, 'cores')), ringlet_fps: r2(side(results.ringlet, role, 'fps_delivered')), chromium_cores: r3(side(results.chromium, role, 'cores')), chromium_fps: r2(side(results.chromium, role, 'fps_delivered')) };
  o.cpu_ratio = o.ringlet_cores !== null && o.chromium_cores ? r2(o.ringlet_cores / o.chromium_cores) : null;
  o.goal_met = o.cpu_ratio !== null ? o.cpu_ratio <= 1 && o.ringlet_fps >= o.chromium_fps : null;
  summary[role] = o;
}
summary.other_cores = { ringlet: r3(mean(results.ringlet.map((r) => r.other_cores))), chromium: r3(mean(results.chromium.map((r) => r.other_cores))) };
console.log(JSON.stringify(summary));
for (const role of ['answerer', 'offerer']) {
  const o = summary[role];
  log(`# ${role}: ringlet ${o.ringlet_cores} cores @ ${o.ringlet_fps} fps, chromium ${o.chromium_cores} cores @ ${o.chromium_fps} fps, ours/chromium ${o.cpu_ratio}, goal ${o.goal_met === null ? 'n/a' : o.goal_met ? 'met' : 'not met'}`);
}
log(`# done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(0);
