// Shared by the Node test suites: wait for a condition, with a deadline.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` until it returns something truthy, or throws after `ms`. */
export async function until(what, check, ms, every = 25) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}
