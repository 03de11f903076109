// The end-to-end harness: the real Ringlet app (its WebKitGTK window)
// driven through tauri-driver → WebKitWebDriver, ringlet-peer as the other
// side of the call, screenshots as artifacts. run.sh provides the X display
// (Xvfb) and the D-Bus session (dbus-run-session); everything started here
// is killed when the test process exits.
//
// Each app gets its own tauri-driver, because the app inherits its
// environment from it (tauri:options has no env): the signaling port
// (RINGLET_SIGNAL_LISTEN) and fresh XDG directories, so settings, web
// storage and the ringlet:// handler registration of one run never leak
// into the next, nor into the developer's own.

import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../common/until.mjs';
import { Session, waitForDriver } from './webdriver.mjs';

export { until } from '../common/until.mjs';
export { Key } from './webdriver.mjs';

export const ARTIFACTS = process.env.E2E_ARTIFACTS || '/tmp/ringlet-e2e-artifacts';

/** The binary named by env `name`, checked. */
export function binFromEnv(name, example) {
  const bin = process.env[name];
  if (!bin) throw new Error(`${name} is not set: point it at the binary, e.g. ${name}=${example}`);
  if (!existsSync(bin)) throw new Error(`${name}=${bin}: no such file`);
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch {
    throw new Error(`${name}=${bin}: not executable`);
  }
  return bin;
}

export const appBin = () => binFromEnv('RINGLET_APP_BIN', '$HOME/.cache/ringlet-target/debug/ringlet');
export const peerBin = () => binFromEnv('RINGLET_PEER_BIN', '$HOME/.cache/ringlet-target/debug/ringlet-peer');

function tauriDriverBin() {
  if (process.env.TAURI_DRIVER_BIN) return binFromEnv('TAURI_DRIVER_BIN');
  return 'tauri-driver'; // from PATH (run.sh puts the cached install there)
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const nullAfter = (ms) => new Promise((resolve) => setTimeout(() => resolve(null), ms).unref());

// ------------------------------------------------------------ processes

const running = new Set();
process.on('exit', () => {
  for (const p of running) {
    try {
      process.kill(-p.pid, 'SIGKILL'); // its group: WebKitWebDriver and the app too
    } catch {
      p.kill('SIGKILL');
    }
  }
});

function track(proc) {
  running.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(proc));
  return exited;
}

/** Pids whose process group is `pgid` (from /proc). */
function groupMembers(pgid) {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

function readTail(path, max) {
  try {
    return readFileSync(path, 'utf8').slice(-max);
  } catch {
    return '';
  }
}

function keepTail(max = 200_000) {
  let text = '';
  return {
    add(d) {
      text += d;
      if (text.length > max) text = text.slice(-max / 2);
    },
    get: () => text,
  };
}

// ------------------------------------------------------------ the app

/**
 * Starts tauri-driver (its own WebDriver and native ports, its own process
 * group) with `env` for the app, then a session that launches the app.
 * Returns { session, signalPort, env (the app's), driverLog(), appLog(), close() }.
 */
export async function launchApp({ name, args = [], env = {} } = {}) {
  const app = appBin();
  const signalPort = await freePort();
  const wdPort = await freePort();
  let nativePort = await freePort();
  while (nativePort === wdPort) nativePort = await freePort();
  const home = mkdtempSync(join(tmpdir(), `ringlet-e2e-${name ?? 'app'}-`));
  const appEnv = {
    ...process.env,
    RINGLET_SIGNAL_LISTEN: `127.0.0.1:${signalPort}`,
    RINGLET_LOG: process.env.RINGLET_LOG ?? 'info',
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_CACHE_HOME: join(home, 'cache'),
    // No accessibility bridge (at-spi) in the app; colourless logs.
    NO_AT_BRIDGE: '1',
    GTK_A11Y: 'none',
    NO_COLOR: '1',
    ...env,
  };
  // The app's own output: WebKitWebDriver does not pass it on, so a
  // wrapper sends it to the artifacts.
  mkdirSync(ARTIFACTS, { recursive: true });
  const appLog = join(ARTIFACTS, `${name ?? 'app'}-app.log`);
  const wrapper = join(home, 'ringlet-app.sh');
  writeFileSync(wrapper, `#!/bin/sh\necho "launched: $0 $*" >>'${appLog}'\nexec '${app}' "$@" >>'${appLog}' 2>&1\n`, { mode: 0o755 });
  writeFileSync(appLog, '');
  const driverArgs = ['--port', String(wdPort), '--native-port', String(nativePort)];
  if (existsSync('/usr/bin/WebKitWebDriver')) driverArgs.push('--native-driver', '/usr/bin/WebKitWebDriver');
  const driver = spawn(tauriDriverBin(), driverArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: appEnv, detached: true });
  const exited = track(driver);
  const log = keepTail();
  driver.stdout.setEncoding('utf8');
  driver.stderr.setEncoding('utf8');
  driver.stdout.on('data', log.add);
  driver.stderr.on('data', log.add);
  const spawnError = new Promise((_, reject) => driver.once('error', (e) => reject(new Error(`cannot start tauri-driver: ${e.message} (install it: cargo install tauri-driver --locked)`))));
  spawnError.catch(() => {});
  const alive = () => driver.exitCode === null && driver.signalCode === null;
  const base = `http://127.0.0.1:${wdPort}`;

  const signalGroup = (sig) => {
    try {
      process.kill(-driver.pid, sig);
    } catch {
      /* the group is gone */
    }
  };
  const close = async () => {
    // WebKitWebDriver and the app it launched share tauri-driver's process
    // group: end them all, and wait until the app is gone, so the next test's
    // app does not find this one holding the single-instance D-Bus name.
    signalGroup('SIGTERM');
    const gone = await until('the app and its drivers to exit', () => groupMembers(driver.pid).length === 0, 5000).catch(() => false);
    if (!gone) {
      signalGroup('SIGKILL');
      await until('the app and its drivers to exit after SIGKILL', () => groupMembers(driver.pid).length === 0, 5000).catch(() => {});
    }
    writeFileSync(join(ARTIFACTS, `${name ?? 'app'}-driver.log`), log.get());
    rmSync(home, { recursive: true, force: true });
  };

  let session;
  try {
    await Promise.race([waitForDriver(base, 15_000, alive), spawnError]);
    session = await Session.create(base, { 'tauri:options': { application: wrapper, args } }, 60_000);
  } catch (e) {
    await close();
    throw new Error(`could not open the app window: ${e.message}\n--- tauri-driver output:\n${log.get().slice(-3000)}\n--- app output:\n${readTail(appLog, 3000)}`);
  }

  return {
    session,
    signalPort,
    env: appEnv,
    driverLog: log.get,
    appLog: () => readTail(appLog, 200_000),
    async close() {
      await Promise.race([session.delete().catch(() => {}), sleep(10_000)]);
      await close();
    },
  };
}

/** window.ringlet.state, the page's read-only test hook. */
export const state = (session) => session.execute('return window.ringlet ? window.ringlet.state : null');

/**
 * Saves the app window as E2E_ARTIFACTS/<name>.png and prints the path.
 *
 * The picture comes from the X server (ImageMagick's `import`, cropped to
 * the window's rect), not from WebDriver's screenshot command: the app turns
 * WebKit's compositing off (WEBKIT_DISABLE_COMPOSITING_MODE=1, its fast path
 * on software GL), and there WebKitGTK 2.50's snapshot never answers. The X
 * capture is what a person would see on the screen.
 */
export async function screenshot(session, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  const r = await session.cmd('GET', '/window/rect');
  const crop = `${Math.round(r.width)}x${Math.round(r.height)}+${Math.max(0, Math.round(r.x))}+${Math.max(0, Math.round(r.y))}`;
  const proc = spawn('import', ['-silent', '-window', 'root', '-crop', crop, '+repage', `png:${path}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = keepTail(4000);
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', err.add);
  const result = await Promise.race([
    new Promise((resolve) => {
      proc.once('error', (e) => resolve({ error: e.code === 'ENOENT' ? 'ImageMagick `import` is not installed (apt-get install imagemagick)' : e.message }));
      proc.once('exit', (code, signal) => resolve({ code, signal }));
    }),
    nullAfter(15_000),
  ]);
  if (!result) {
    proc.kill('SIGKILL');
    throw new Error(`screenshot ${name}: import did not finish within 15 s`);
  }
  if (result.error || result.code !== 0) throw new Error(`screenshot ${name}: ${result.error ?? `import exited ${result.code ?? result.signal}`} ${err.get()}`);
  const png = readFileSync(path);
  if (png.length < 8 || png.readUInt32BE(0) !== 0x89504e47) throw new Error(`screenshot ${name}: ${path} is not a PNG (${png.length} bytes)`);
  console.log(`screenshot: ${path}`);
  return path;
}

// ------------------------------------------------------------ ringlet-peer

/**
 * ringlet-peer --json in `room` on `server`; records its events. Without
 * `duration` it runs until stop() (SIGINT: it hangs up and prints its summary).
 */
export function startPeer({ server, room, peerId = 'e2e-peer', duration, chat = [], extra = [] }) {
  const args = ['--server', server, '--room', room, '--peer-id', peerId, '--udp', '127.0.0.1:0', '--json'];
  if (duration !== undefined) args.push('--duration', String(duration));
  for (const c of chat) args.push('--chat', c);
  args.push(...extra);
  const proc = spawn(peerBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RINGLET_LOG: process.env.RINGLET_PEER_LOG ?? 'warn' } });
  const exited = track(proc);
  const events = [];
  const lines = [];
  const stderr = keepTail(100_000);
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', stderr.add);
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    try {
      events.push(JSON.parse(line));
    } catch {
      events.push({ event: 'unparsed', line });
    }
  });
  let exit = null;
  const done = exited.then(async (e) => {
    await sleep(20); // let readline deliver the last lines
    exit = e;
    return e;
  });
  return {
    events,
    find: (name, pred = () => true) => events.find((e) => e.event === name && pred(e)),
    exit: () => exit,
    async stop(ms = 8000) {
      if (exit === null && proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        if (!(await Promise.race([done, nullAfter(ms)]))) proc.kill('SIGKILL');
      }
      return done;
    },
    /** For assertion messages. */
    describe() {
      const shown = lines.filter((l) => !/"event":"(stats|warning)"/.test(l));
      return `ringlet-peer ${args.join(' ')}\n  exit: ${JSON.stringify(exit)}\n  events:\n    ${shown.slice(-60).join('\n    ')}\n  stderr (tail):\n${stderr.get().slice(-2000)}`;
    },
  };
}
