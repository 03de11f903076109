import * as h from '/work/main/tests/browser/harness.mjs';
import { setTimeout as sleep } from 'node:timers/promises';
const B = process.env.HOME + '/.cache/ringlet-target/debug/';
const mode = process.argv[2] || 'answer';
const ps = await h.startPageServer();
const sig = await h.startSignal(B + 'ringlet-signal', [ps.origin]);
const br = await h.launchBrowser();
const page = await br.newPage();
let peer;
if (mode === 'answer') {
  await page.goto(ps.url({ signal: sig.url, room: 'r1', mode }));
  await h.until('joined', async () => (await h.results(page)).joined, 10000);
  peer = h.startPeer(B + 'ringlet-peer', { server: sig.url, room: 'r1', peerId: 'rp' });
} else {
  peer = h.startPeer(B + 'ringlet-peer', { server: sig.url, room: 'r1', peerId: 'rp' });
  await h.until('peer joined', () => peer.find('joined'), 10000);
  await page.goto(ps.url({ signal: sig.url, room: 'r1', mode }));
}
try { await h.until('frames', async () => (await h.results(page)).framesReceived >= 10 && peer.framesReceived() >= 10, 15000); } catch (e) { console.log(String(e)); }
await peer.stop();
const R = await h.results(page);
console.log(JSON.stringify({ ...R, events: undefined }, null, 1));
console.log(R.events.join('\n'));
console.log(page.consoleLines.join('\n'));
console.log(peer.describe()); (await import("node:fs")).writeFileSync("/tmp/peer.err", peer.stderr());
await br.close(); await sig.stop(); await ps.close();
console.log(sig.output().slice(-3000));
