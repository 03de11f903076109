#!/usr/bin/env node
// Memory of a long call: two `ringlet-peer --video synthetic --audio
// synthetic` (1280x720 test pattern at 30 fps, VP8 and Opus both ways)
// through ringlet-signal on loopback for SOAK_SECONDS (600), VmRSS of each
// peer (and of the server) read from /proc/<pid>/status every
// SAMPLE_SECONDS (10), counted from the moment both peers decode video.
//
// Baseline: the median of the samples in the minute after WARMUP_SECONDS
// (60), i.e. 60-120 s; end: the median of the samples in the last minute.
// Growth = (end - baseline) / baseline. Medians over a minute rather than
// single samples because a peer's RSS saws up and down by ~1.3 MiB, about
// one 1280x720 I420 frame (1.38 MB; presumably frame-sized buffers the
// allocator gives back to the kernel and takes again): two single samples
// can differ by 5 % with no growth at all. The single samples (at
// WARMUP_SECONDS and the last), the peak and the slope of a least-squares
// line through the post-warm-up samples (KiB per minute, to tell a steady
// leak from a step) are reported too.
//
// Fails (exit 1) when either peer grows by more than GROWTH_LIMIT_PCT (5) %,
// or when a peer decoded fewer than 95 % of the frames the other sent (a call
// that carried no media would pass a memory test for nothing).
//
// Usage (from the repository root; bench/call-soak.sh builds and sets the binaries):
//   RINGLET_SIGNAL_BIN=... RINGLET_PEER_BIN=... node bench/call-soak.mjs
// Output: a progress line per sample on stderr; one JSON line per sample
// (`sample`) and a `summary` line on stdout.

import { setTimeout as sleep } from 'node:timers/promises';
import { loadHarness, log, machine, machineCpu, rssKb } from './common.mjs';

const num = (env, dflt) => {
  const n = Number(process.env[env] ?? dflt);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${env}: not a positive number: ${process.env[env]}`);
  return n;
};
const SOAK = num('SOAK_SECONDS', 600);
const EVERY = num('SAMPLE_SECONDS', 10);
const WARMUP = num('WARMUP_SECONDS', 60);
const LIMIT = num('GROWTH_LIMIT_PCT', 5);
if (WARMUP >= SOAK) throw new Error(`WARMUP_SECONDS (${WARMUP}) must be shorter than SOAK_SECONDS (${SOAK})`);
const h = await loadHarness();

const r1 = (x) => Math.round(x * 10) / 10;

function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** Least-squares slope of y over x. */
function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num_ = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num_ += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num_ / den : null;
}

const t0 = Date.now();
log(`# machine: ${JSON.stringify(machine())}; soak ${SOAK} s, sample every ${EVERY} s, warm-up ${WARMUP} s, limit +${LIMIT} %`);
const signal = await h.startSignal(h.binFromEnv('RINGLET_SIGNAL_BIN'));
const peerBin = h.binFromEnv('RINGLET_PEER_BIN');
const room = `soak-${process.pid}`;
const extra = ['--video', 'synthetic', '--audio', 'synthetic'];
const a = h.startPeer(peerBin, { server: signal.url, room, peerId: 'a', extra });
let b = null;
let ok = true;
const samples = [];
try {
  await h.until('peer a to join', () => a.find('joined') || a.exit(), 10_000);
  if (!a.find('joined')) throw new Error(`peer a did not join\n${a.describe()}`);
  b = h.startPeer(peerBin, { server: signal.url, room, peerId: 'b', extra });
  await h.until('a first decoded frame on both peers', () => (a.find('first_remote_frame') && b.find('first_remote_frame')) || a.exit() || b.exit(), 20_000);
  if (!(a.find('first_remote_frame') && b.find('first_remote_frame'))) throw new Error(`call failed\n${a.describe()}\n${b.describe()}`);
  const start = performance.now();
  const m0 = machineCpu();
  for (let i = 0; ; i++) {
    const t = (performance.now() - start) / 1000;
    const s = {
      event: 'sample',
      t_s: r1(t),
      a_rss_kb: rssKb(a.proc.pid),
      b_rss_kb: rssKb(b.proc.pid),
      signal_rss_kb: rssKb(signal.proc.pid),
      a_frames_received: a.last('stats')?.video_frames_received ?? 0,
      b_frames_received: b.last('stats')?.video_frames_received ?? 0,
    };
    if (s.a_rss_kb === null || s.b_rss_kb === null) throw new Error(`a peer exited during the soak\n${a.describe()}\n${b.describe()}`);
    samples.push(s);
    console.log(JSON.stringify(s));
    log(`  ${String(Math.round(t)).padStart(4)} s  a ${(s.a_rss_kb / 1024).toFixed(1)} MiB  b ${(s.b_rss_kb / 1024).toFixed(1)} MiB  signal ${(s.signal_rss_kb / 1024).toFixed(1)} MiB  frames a ${s.a_frames_received} b ${s.b_frames_received}`);
    if (t >= SOAK - 0.5) break;
    const next = Math.min((i + 1) * EVERY, SOAK);
    await sleep(Math.max(0, next * 1000 - (performance.now() - start)));
  }
  const m1 = machineCpu();
  await Promise.all([a.stop(), b.stop()]);
  const after = samples.filter((s) => s.t_s >= WARMUP - 0.5);
  const base = after[0];
  const end = samples.at(-1);
  const baseMinute = after.filter((s) => s.t_s <= WARMUP + 60.5);
  const endMinute = samples.filter((s) => s.t_s >= end.t_s - 60.5);
  const peer = (k, p, other) => {
    const key = `${k}_rss_kb`;
    const b0 = median(baseMinute.map((s) => s[key]));
    const e0 = median(endMinute.map((s) => s[key]));
    const growth = ((e0 - b0) / b0) * 100;
    const sl = slope(after.map((s) => s.t_s / 60), after.map((s) => s[key]));
    const sum = p.find('summary') ?? {};
    const otherSum = other.find('summary') ?? {};
    const delivered = otherSum.video_frames_sent ? sum.video_frames_received / otherSum.video_frames_sent : null;
    return {
      rss_kb_after_warmup: b0,
      rss_kb_end: e0,
      growth_pct: Math.round(growth * 100) / 100,
      rss_kb_sample_at_warmup: base[key],
      rss_kb_sample_at_end: end[key],
      growth_pct_single_samples: Math.round(((end[key] - base[key]) / base[key]) * 10000) / 100,
      rss_kb_peak: Math.max(...samples.map((s) => s[key])),
      rss_kb_first: samples[0][key],
      slope_kb_per_min: sl === null ? null : r1(sl),
      video_frames_received: sum.video_frames_received ?? null,
      video_frames_sent_by_other: otherSum.video_frames_sent ?? null,
      delivered_pct: delivered === null ? null : Math.round(delivered * 10000) / 100,
      video_decode_errors: sum.video_decode_errors ?? null,
      audio_frames_received: sum.audio_frames_received ?? null,
      audio_frames_sent_by_other: otherSum.audio_frames_sent ?? null,
      audio_frames_concealed: sum.audio_frames_concealed ?? null,
      audio_jitter: sum.audio_jitter ?? null,
      latency_ms: sum.latency_ms ?? null,
      reconnects: sum.reconnects ?? null,
      memory_ok: growth <= LIMIT,
      delivery_ok: delivered !== null && delivered >= 0.95,
    };
  };
  const summary = {
    event: 'summary',
    soak_s: SOAK,
    warmup_s: WARMUP,
    baseline_s: [baseMinute[0].t_s, baseMinute.at(-1).t_s],
    end_s: [endMinute[0].t_s, end.t_s],
    growth_limit_pct: LIMIT,
    a: peer('a', a, b),
    b: peer('b', b, a),
    signal_rss_kb: { after_warmup: base.signal_rss_kb, end: end.signal_rss_kb },
    machine: machine(),
    machine_busy_cores: Math.round(((m1.busy - m0.busy) / ((performance.now() - start) / 1000)) * 100) / 100,
  };
  ok = ['a', 'b'].every((k) => summary[k].memory_ok && summary[k].delivery_ok);
  summary.pass = ok;
  console.log(JSON.stringify(summary));
  for (const k of ['a', 'b']) {
    const p = summary[k];
    log(`# peer ${k}: RSS (median of a minute) ${(p.rss_kb_after_warmup / 1024).toFixed(1)} MiB at ${summary.baseline_s.join('-')} s -> ${(p.rss_kb_end / 1024).toFixed(1)} MiB at ${summary.end_s.join('-')} s: ${p.growth_pct >= 0 ? '+' : ''}${p.growth_pct} % (limit +${LIMIT} %; single samples ${p.growth_pct_single_samples} %), slope ${p.slope_kb_per_min} KiB/min, peak ${(p.rss_kb_peak / 1024).toFixed(1)} MiB; video ${p.video_frames_received}/${p.video_frames_sent_by_other} frames (${p.delivered_pct} %), audio ${p.audio_frames_received}/${p.audio_frames_sent_by_other}`);
  }
  log(`# ${ok ? 'PASS' : 'FAIL'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
} catch (e) {
  ok = false;
  log(`# FAIL: ${e.message}`);
} finally {
  await Promise.all([a.stop(), b?.stop()]);
  await signal.stop();
}
process.exit(ok ? 0 : 1);
