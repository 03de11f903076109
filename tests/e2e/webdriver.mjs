// A minimal W3C WebDriver client over fetch(): just what the end-to-end
// tests use (sessions, elements, clicks, keys, scripts, screenshots).
// tauri-driver forwards these to WebKitWebDriver, which drives the real
// Ringlet window (WebKitGTK).

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export class WebDriverError extends Error {
  constructor(what, status, value) {
    super(`WebDriver ${what}: ${value?.error ?? `HTTP ${status}`}: ${value?.message ?? JSON.stringify(value)}`);
    this.code = value?.error;
  }
}

/** One HTTP exchange with the remote end, bounded by `ms`. */
async function call(base, method, path, body, ms = 30_000) {
  const what = `${method} ${path}`;
  let res;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ms),
    });
  } catch (e) {
    throw new Error(`WebDriver ${what}: no answer from ${base} within ${ms} ms (${e.cause?.code ?? e.name}: ${e.message})`);
  }
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`WebDriver ${what}: HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  if (!res.ok || (json.value && json.value.error)) throw new WebDriverError(what, res.status, json.value);
  return json.value;
}

/** Resolves when the remote end answers GET /status (ready or not), else throws after `ms`. */
export async function waitForDriver(base, ms, alive = () => true) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`the WebDriver server at ${base} exited before answering`);
    try {
      return await call(base, 'GET', '/status', undefined, 1000);
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the WebDriver server at ${base} did not answer /status within ${ms} ms: ${last?.message}`);
}

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  /** Creates a session: for tauri-driver, `capabilities` carries `tauri:options`. */
  static async create(base, capabilities, ms = 60_000) {
    const v = await call(base, 'POST', '/session', { capabilities: { alwaysMatch: capabilities } }, ms);
    return new Session(base, v.sessionId);
  }

  cmd(method, path, body, ms) {
    return call(this.base, method, `/session/${this.id}${path}`, body, ms);
  }

  title() {
    return this.cmd('GET', '/title');
  }

  /** Runs `script` (a function body: use `arguments[i]` and `return`) in the page. */
  execute(script, ...args) {
    return this.cmd('POST', '/execute/sync', { script, args: args.map(wrapElement) });
  }

  /** Like execute, but the script ends by calling `arguments[arguments.length - 1](value)`. */
  executeAsync(script, ...args) {
    return this.cmd('POST', '/execute/async', { script, args: args.map(wrapElement) });
  }

  /** The first element matching a CSS selector; throws `no such element`. */
  async find(css) {
    const v = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return new Element(this, v[ELEMENT]);
  }

  async findAll(css) {
    const v = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
    return v.map((e) => new Element(this, e[ELEMENT]));
  }

  async click(css) {
    const el = await this.find(css);
    await el.click();
    return el;
  }

  /** The window as a PNG (Buffer). */
  async screenshot() {
    return Buffer.from(await this.cmd('GET', '/screenshot', undefined, 30_000), 'base64');
  }

  /** Keys to whatever has focus (W3C actions), e.g. Ctrl+D: keys(['\uE009', 'd']). */
  async keyChord(keys) {
    const down = keys.map((value) => ({ type: 'keyDown', value }));
    const up = [...keys].reverse().map((value) => ({ type: 'keyUp', value }));
    await this.cmd('POST', '/actions', { actions: [{ type: 'key', id: 'keyboard', actions: [...down, ...up] }] });
    await this.cmd('DELETE', '/actions');
  }

  async delete() {
    await this.cmd('DELETE', '', undefined, 20_000);
  }
}

export class Element {
  constructor(session, id) {
    this.session = session;
    this.id = id;
  }

  cmd(method, path, body) {
    return this.session.cmd(method, `/element/${this.id}${path}`, body);
  }

  click() {
    return this.cmd('POST', '/click', {});
  }

  /** Types `text` into the element (focuses it first). */
  sendKeys(text) {
    return this.cmd('POST', '/value', { text });
  }

  clear() {
    return this.cmd('POST', '/clear', {});
  }

  text() {
    return this.cmd('GET', '/text');
  }

  property(name) {
    return this.cmd('GET', `/property/${encodeURIComponent(name)}`);
  }

  displayed() {
    return this.cmd('GET', '/displayed');
  }
}

function wrapElement(a) {
  return a instanceof Element ? { [ELEMENT]: a.id } : a;
}

/** WebDriver key codes. */
export const Key = { CONTROL: '\uE009', ENTER: '\uE007' };
