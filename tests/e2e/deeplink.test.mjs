// A ringlet:// link opened while the app runs: the second process hands it
// to the first over D-Bus (tauri-plugin-single-instance) and exits; the
// first shows the pre-join screen of that room and can join it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { appBin, launchApp, screenshot, state, until } from './harness.mjs';

let app;
let second;
let cores;
before(async () => {
  app = await launchApp({ name: 'deeplink' });
});
after(async () => {
  if (second && second.exitCode === null && second.signalCode === null) second.kill('SIGKILL');
  await app?.close();
  if (cores) rmSync(cores, { recursive: true, force: true });
});

async function waitState(what, check, ms) {
  let last = null;
  try {
    return await until(what, async () => {
      last = await state(app.session);
      return last && check(last) ? last : null;
    }, ms, 100);
  } catch (e) {
    throw new Error(`${e.message}\n  page: ${JSON.stringify({ screen: last?.screen, room: last?.room, statusText: last?.statusText, call: last?.call && { status: last.call.status, error: last.call.error } })}\n  app output (tail):\n${app.appLog().slice(-2000)}`);
  }
}

test('a second instance started with a ringlet:// link opens it in the first', async (t) => {
  const { session } = app;
  await waitState('the lobby', (s) => s.screen === 'lobby', 15_000);
  await until('the embedded server', async () => /:\d+/.test(await (await session.find('#signal-status')).text()), 15_000);

  const room = `deeplink-${process.pid}-${Date.now().toString(36)}`;
  const link = `ringlet://join/127.0.0.1:${app.signalPort}/${room}`;
  // A mark in the page: gone afterwards if opening the link reloaded it.
  await session.execute('window.__e2eBeforeLink = true');
  // Same user, display and D-Bus session as the first instance. Core dumps
  // on (core_pattern permitting, into `cores`), to show where it crashed if it does.
  cores = mkdtempSync(join(tmpdir(), 'ringlet-e2e-cores-'));
  second = spawn('sh', ['-c', 'ulimit -c unlimited 2>/dev/null; exec "$0" "$1"', appBin(), link], { stdio: ['ignore', 'pipe', 'pipe'], env: app.env, cwd: cores });
  let output = '';
  second.stdout.setEncoding('utf8').on('data', (d) => { output += d; });
  second.stderr.setEncoding('utf8').on('data', (d) => { output += d; });
  const exit = await Promise.race([
    new Promise((resolve) => second.once('exit', (code, signal) => resolve({ code, signal }))),
    new Promise((resolve) => setTimeout(() => resolve(null), 20_000).unref()),
  ]);
  assert.ok(exit, `the second instance hands the link over and exits within 20 s (it is still running)\n${output.slice(-3000)}`);

  // Settled on the pre-join screen of that room, its preview drawn (a page
  // that reloads on the way starts over, so this waits out a reload too).
  const s = await waitState(`the first instance to show the pre-join screen of ${room} with its preview`, (st) => st.screen === 'prejoin' && st.room === room && st.frames?.preview > 0, 20_000);
  assert.equal(await (await session.find('#room-code')).text(), room);
  const share = await (await session.find('#share-link')).property('value');
  assert.equal(share, `http://127.0.0.1:${app.signalPort}/r/${room}`, 'the invitation link names the room on the embedded server');
  t.diagnostic(`pre-join for ${s.room}; share link ${share}`);
  const reloaded = !(await session.execute('return window.__e2eBeforeLink === true'));
  const opened = (app.appLog().match(/opening links/g) ?? []).length;
  t.diagnostic(`the app logged "opening links" ${opened} time(s); the page ${reloaded ? 'reloaded' : 'did not reload'} on the way`);
  await screenshot(session, 'deeplink-prejoin');

  // The link got through; the second process must also have ended cleanly.
  if (exit.code !== 0) {
    assert.fail(`the second instance handed the link over but exited with ${JSON.stringify(exit)}\n${crashReport(cores)}\n--- its output:\n${output.slice(-3000)}`);
  }

  // And the room is joinable from there: alone in it, the call waits for the other person.
  await until('#join-button to be enabled', async () => (await (await session.find('#join-button')).property('disabled')) === false, 10_000);
  await session.click('#join-button');
  await waitState('the call screen, joined and waiting for the other person', (st) => st.screen === 'call' && st.call?.status === 'waiting', 20_000);
});

/** A backtrace from a core file the crashed second instance left in `dir` (gdb), or why there is none. */
function crashReport(dir) {
  const core = readdirSync(dir).find((f) => /^core/.test(f));
  if (!core) return '(no core file: core_pattern sends it elsewhere, or the limit forbids it)';
  const gdb = spawnSync('gdb', ['-q', '-batch', '-ex', 'bt 30', '-ex', 'info threads', appBin(), join(dir, core)], { encoding: 'utf8', timeout: 60_000 });
  if (gdb.error) return `(core file ${core}; no gdb to read it: ${gdb.error.message})`;
  return `--- backtrace of the crash (gdb):\n${gdb.stdout.slice(-6000)}`;
}
