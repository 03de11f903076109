// The desktop app's frame path, measured in its real window (WebKitGTK
// under Xvfb, driven by tauri-driver): a 720p30 call from ringlet-peer
// (the stamped test pattern), with the app's own test pattern as preview.
// For each remote path — VP8 passed through to WebCodecs (the default) and
// JPEG decoded in the app (the fallback) — it reports frames shown per
// second (remote and preview), the CPU of the whole app process tree
// (the app, WebKit's web and network processes) in cores, the latency the
// page adds (frame leaves the app's pipeline → drawn) and glass-to-glass
// latency (ringlet-peer's capture stamp, read back from the canvas).
//
//   bench/frame-path.sh            (builds release binaries, runs Xvfb + D-Bus)
//   RINGLET_APP_BIN=... RINGLET_PEER_BIN=... node bench/frame-path.mjs [--seconds 20] [--warmup 6]

import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { launchApp, startPeer, state, until } from '../tests/e2e/harness.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 20);
const WARMUP = arg('warmup', 6);
const TICK = 100; // clock ticks per second (Linux USER_HZ)

/** Every pid whose executable is `exe`, and all their descendants. */
function tree(exe) {
  const parent = new Map();
  const roots = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(d), ppid);
      if (readlinkSync(`/proc/${d}/exe`) === exe) roots.push(Number(d));
    } catch {
      /* gone */
    }
  }
  const all = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, pp] of parent) if (!all.has(pid) && all.has(pp)) { all.add(pid); grew = true; }
  }
  return [...all];
}

/** utime+stime (ticks) of the process tree of `exe`, threads included: total and per process name. */
function cpuTicks(exe) {
  let t = 0;
  const by = {};
  for (const pid of tree(exe)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      t += ticks;
      by[name] = (by[name] ?? 0) + ticks;
    } catch {
      /* gone */
    }
  }
  return { t, by };
}

async function measure(mode) {
  const appExe = process.env.RINGLET_APP_BIN;
  const app = await launchApp({ name: `bench-${mode}`, env: { RINGLET_FRAME_PATH: mode, RINGLET_LOG: 'warn' } });
  const s = app.session;
  let peer;
  try {
    await until('the lobby', async () => (await state(s))?.screen === 'lobby', 20_000);
    await (await s.find('#new-call')).click();
    const pre = await until('the preview', async () => {
      const st = await state(s);
      return st?.screen === 'prejoin' && st.frames?.preview > 0 && st;
    }, 20_000);
    await (await s.find('#join-button')).click();
    peer = startPeer({ server: `http://127.0.0.1:${app.signalPort}`, room: pre.room, peerId: 'bench-peer', extra: ['--video', 'synthetic', '--audio', 'synthetic'] });
    await until('remote frames', async () => (await state(s))?.frames?.remote > 30, 30_000);
    await sleep(WARMUP * 1000);
    const real = realpathSync(appExe);
    const a = { st: await state(s), cpu: cpuTicks(real), t: Date.now() };
    await sleep(SECONDS * 1000);
    const b = { st: await state(s), cpu: cpuTicks(real), t: Date.now() };
    const secs = (b.t - a.t) / 1000;
    const f = b.st.frames;
    return {
      mode: f.mode,
      remote_fps: +((f.remote - a.st.frames.remote) / secs).toFixed(1),
      preview_fps: +((f.preview - a.st.frames.preview) / secs).toFixed(1),
      remote_size: `${f.remoteWidth}x${f.remoteHeight}`,
      app_cores: +((b.cpu.t - a.cpu.t) / TICK / secs).toFixed(2),
      by_process: Object.fromEntries(Object.keys(b.cpu.by).map((k) => [k, +(((b.cpu.by[k] - (a.cpu.by[k] ?? 0)) / TICK / secs).toFixed(2))])),
      processes: tree(real).length,
      added_ms: { p50: f.addedMsP50, p95: f.addedMsP95 },
      glass_to_glass_ms: { p50: f.endToEndMsP50, p95: f.endToEndMsP95 },
      decode_errors: f.decodeErrors,
    };
  } finally {
    await peer?.stop();
    await app.close();
  }
}

const results = [];
for (const mode of ['vp8', 'jpeg']) {
  const r = await measure(mode);
  results.push(r);
  console.log(JSON.stringify(r));
}
console.log('\npath | remote fps | preview fps | app cores | page adds p50/p95 ms | glass-to-glass p50/p95 ms');
for (const r of results) {
  console.log(`${r.mode} | ${r.remote_fps} | ${r.preview_fps} | ${r.app_cores} | ${r.added_ms.p50}/${r.added_ms.p95} | ${r.glass_to_glass_ms.p50}/${r.glass_to_glass_ms.p95}`);
}
