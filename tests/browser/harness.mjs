// Shared by the browser tests and bench/call-setup.mjs: a static server for
// the seed-client page, Debian Chromium through playwright-core, the
// Ringlet binaries (ringlet-signal, ringlet-peer) as child processes, and
// helpers for the web client that ringlet-signal serves at /r/<room>.

import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer } from 'node:net';
import { existsSync, accessSync, mkdtempSync, readFileSync, rmSync, constants as fsConstants } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { until } from '../common/until.mjs';

export const HERE = dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Fake devices and no permission prompts. Three cameras: Chromium's second
  // fake camera is a depth camera (Y16, which no video encoder takes), so a
  // device switch needs the third.
  '--use-fake-device-for-media-stream=device-count=3', '--use-fake-ui-for-media-stream',
];

/** The binary named by env `name`, checked. */
export function binFromEnv(name) {
  const bin = process.env[name];
  if (!bin) throw new Error(`${name} is not set: point it at the binary, e.g. ${name}=$HOME/.cache/ringlet-target/debug/${name === 'RINGLET_PEER_BIN' ? 'ringlet-peer' : 'ringlet-signal'}`);
  if (!existsSync(bin)) throw new Error(`${name}=${bin}: no such file`);
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch {
    throw new Error(`${name}=${bin}: not executable`);
  }
  return bin;
}

/** Resolves null after `ms` without keeping the process alive (for races). */
const nullAfter = (ms) => new Promise((resolve) => setTimeout(() => resolve(null), ms).unref());

export { until };

// ------------------------------------------------------------ page server

/** Serves static/index.html at / and socket.io.min.js from node_modules on 127.0.0.1:0. */
export async function startPageServer() {
  const files = {
    '/': ['text/html; charset=utf-8', readFileSync(join(HERE, 'static', 'index.html'))],
    '/socket.io.min.js': ['text/javascript; charset=utf-8', readFileSync(join(HERE, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js'))],
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const f = files[path === '/index.html' ? '/' : path];
    if (!f || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' }).end(f[1]);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    url: (params) => `${origin}/?${new URLSearchParams(params)}`,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

// ---------------------------------------------------------------- browser

/** Launches Chromium with a fresh profile; returns the persistent context. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'ringlet-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false, // '--headless=new' is in the args
    args: [...CHROMIUM_ARGS, ...(process.env.CHROMIUM_EXTRA_ARGS || '').split(' ').filter(Boolean)],
    timeout: 30_000,
  });
  return {
    context,
    /**
     * A new tab. `page.consoleLines` keeps its console; `page.problems`
     * collects console errors, uncaught exceptions and Content Security
     * Policy violations (from `securitypolicyviolation` events, recorded by
     * an init script before any page script runs).
     */
    async newPage() {
      const page = await context.newPage();
      const console_ = [];
      const problems = [];
      page.on('console', (m) => {
        console_.push(`[${m.type()}] ${m.text()}`);
        if (console_.length > 500) console_.shift();
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      page.on('pageerror', (e) => {
        console_.push(`[pageerror] ${e}`);
        problems.push(`uncaught: ${e}`);
      });
      await page.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
          window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
        });
      });
      page.consoleLines = console_;
      page.problems = problems;
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The page's results object. */
export const results = (page) => page.evaluate(() => window.results);

// ---------------------------------------------------------------- servers

const running = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function track(proc) {
  running.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(proc));
  return exited;
}

/** Starts a server that prints its port; resolves when it listens. */
async function startListening(cmd, args, env, lineRe, what) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const exited = track(proc);
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', keep);
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${what}: not listening within 10 s\n${output}`));
    }, 10_000);
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      keep(`${line}\n`);
      const m = lineRe.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${what}: ${e.message}`)); });
    exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`${what} exited (code ${code}, signal ${signal}) before listening\n${output}`)); });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    output: () => output,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    /** SIGKILL: no goodbye to anyone, as a crash or a power cut. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        if (!(await Promise.race([exited, nullAfter(5000)]))) {
          proc.kill('SIGKILL');
          await exited;
        }
      }
    },
  };
}

/**
 * ringlet-signal on 127.0.0.1 (`port`, default any free one), allowing
 * `corsOrigins`. It serves the web client compiled into it, or the
 * directory in env RINGLET_WEB_ROOT (it reads that variable itself) when
 * working on ui/ without rebuilding.
 */
export async function startSignal(bin, corsOrigins = [], { port = 0, host = '127.0.0.1', extra = [] } = {}) {
  const args = ['--listen', `${host}:${port}`, ...corsOrigins.flatMap((o) => ['--cors-origin', o]), ...extra];
  const re = new RegExp(`^listening on ${host.replace(/\./g, '\\.')}:(\\d+)\\s*$`);
  const server = await startListening(bin, args, { RINGLET_LOG: process.env.RINGLET_LOG ?? 'info' }, re, 'ringlet-signal');
  server.url = `http://${host}:${server.port}`;
  return server;
}

/** This machine's first non-loopback IPv4 address (a LAN address), or null. */
export async function lanAddress() {
  const { networkInterfaces } = await import('node:os');
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** The seed's Node server (server.js in `dir`) on a free port. */
export async function startSeedServer(dir) {
  const { createServer: netServer } = await import('node:net');
  const port = await new Promise((resolve) => {
    const s = netServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  // server.js prints nothing when listening: wrap it so it does.
  const boot = `require(${JSON.stringify(join(dir, 'server.js'))}); setImmediate(() => console.log('listening on 127.0.0.1:' + process.env.PORT));`;
  return startListening(process.execPath, ['-e', boot], { PORT: String(port), QUIET: '1' }, /^listening on 127\.0\.0\.1:(\d+)\s*$/, 'seed server');
}

// ------------------------------------------------------------ ringlet-peer

/**
 * Starts ringlet-peer --json and records its events. Without `duration` it
 * runs until `stop()` (SIGINT), which makes it hang up and print its summary.
 */
export function startPeer(bin, { server, room, peerId, duration, iceCheckMs, udp = '127.0.0.1:0', extra = [] }) {
  const args = ['--server', server, '--room', room, '--peer-id', peerId, '--udp', udp, '--json'];
  if (duration !== undefined) args.push('--duration', String(duration));
  if (iceCheckMs !== undefined) args.push('--ice-check-ms', String(iceCheckMs));
  args.push(...extra);
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RINGLET_LOG: process.env.RINGLET_PEER_LOG ?? 'warn' } });
  const exited = track(proc);
  const events = [];
  const lines = [];
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
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
  const peer = {
    proc,
    events,
    args,
    exit: () => exit,
    done,
    find: (name, pred = () => true) => events.find((e) => e.event === name && pred(e)),
    last: (name) => events.filter((e) => e.event === name).at(-1),
    /** The latest frames-received figure: the summary's, else the last stats line's. */
    framesReceived() {
      const s = peer.find('summary') ?? peer.last('stats');
      return s ? s.data_frames_received : 0;
    },
    /** SIGINT (a clean hang-up), SIGKILL if it does not exit in `ms`. */
    async stop(ms = 8000) {
      if (exit === null && proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        if (!(await Promise.race([done, nullAfter(ms)]))) {
          proc.kill('SIGKILL');
        }
      }
      return done;
    },
    stderr: () => stderr,
    /** For assertion messages. */
    describe() {
      const shown = lines.filter((l) => !/"event":"(stats|warning)"/.test(l));
      const warnings = lines.filter((l) => /"event":"warning"/.test(l));
      return `ringlet-peer ${args.join(' ')}\n  exit: ${JSON.stringify(exit)}\n  events:\n    ${shown.join('\n    ')}\n` +
        `  warnings (${warnings.length}): ${warnings.slice(0, 5).join(' | ')}\n  stderr (tail):\n${stderr.slice(-3000)}`;
    },
  };
  return peer;
}

/** The t_ms at which both peers were in the room, from one peer's events. */
export function joinTime(peer) {
  const joined = peer.find('joined');
  if (joined && joined.others && joined.others.length > 0) return joined.t_ms;
  const pj = peer.find('peer_joined');
  return pj ? pj.t_ms : null;
}

// ------------------------------------------------------------ TURN

/** A port free for both UDP and TCP on loopback. */
async function freePort() {
  for (;;) {
    const udp = createSocket('udp4');
    const port = await new Promise((resolve) => udp.bind(0, '127.0.0.1', () => resolve(udp.address().port)));
    const tcpFree = await new Promise((resolve) => {
      const s = createTcpServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    udp.close();
    if (tcpFree) return port;
  }
}

/** coturn (Debian `turnserver`) on loopback with TURN REST auth; `stop()` kills it and removes its directory. */
export async function startCoturn(secret) {
  const dir = mkdtempSync(join(tmpdir(), 'ringlet-coturn-'));
  const port = await freePort();
  const relay = Math.min(await freePort(), 65_535 - 64);
  const log = join(dir, 'turn.log');
  const proc = spawn('turnserver', [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--simple-log', '--verbose', '--realm=ringlet',
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', '--allow-loopback-peers',
    `--listening-port=${port}`, `--min-port=${relay}`, `--max-port=${relay + 63}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`,
    `--log-file=${log}`, `--pidfile=${join(dir, 'turn.pid')}`, `--userdb=${join(dir, 'turndb')}`,
  ], { stdio: 'ignore' });
  const read = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  await until('coturn to listen', () => read().includes('UDP listener opened on') || proc.exitCode !== null, 10_000);
  if (proc.exitCode !== null) throw new Error(`turnserver exited:\n${read()}`);
  return {
    url: `turn:127.0.0.1:${port}`,
    log: read,
    stop: async () => {
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
