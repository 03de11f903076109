// The app opens a real window: title, the lobby, a screenshot.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchApp, screenshot, state, until } from './harness.mjs';

let app;
before(async () => {
  app = await launchApp({ name: 'smoke' });
});
after(async () => {
  await app?.close();
});

test('the window opens on the lobby', async () => {
  const { session } = app;
  const title = await until('a window title', () => session.title(), 10_000);
  assert.match(title, /Ringlet/, `window title: ${JSON.stringify(title)}`);
  const s = await until('the lobby screen', async () => {
    const st = await state(session);
    return st?.screen === 'lobby' && st;
  }, 15_000).catch(async (e) => {
    throw new Error(`${e.message}; state: ${JSON.stringify(await state(session).catch((x) => String(x)))}`);
  });
  assert.equal(s.mode, 'desktop', 'the page knows it runs in the Tauri window');
  const lobby = await session.find('#lobby');
  assert.equal(await lobby.displayed(), true, '#lobby is shown');
  assert.equal(await (await session.find('#product')).text(), 'Ringlet');
  // The embedded server answers on the port the test chose.
  const status = await until('the signaling status line', async () => {
    const t = await (await session.find('#signal-status')).text();
    return /server/.test(t) && t;
  }, 15_000);
  assert.match(status, new RegExp(`:${app.signalPort}\\b`), `the lobby names the embedded server on port ${app.signalPort}: ${status}`);
  await screenshot(session, 'smoke-lobby');
});
