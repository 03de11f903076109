// Room ids and room links: what a link names, how a new room is named, and
// how whatever a person pastes into the join box becomes a room. Pure
// functions (no DOM), so Node's test runner imports them as they are.

/** The server's rule for room (and peer) ids: ^[A-Za-z0-9_-]{1,64}$. */
export const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export const isValidId = (s) => typeof s === 'string' && ID_RE.test(s);

/** `bytes` random bytes (crypto.getRandomValues) as base64url, no padding. */
export function randomId(bytes = 16) {
  const b = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(b);
  let bin = '';
  for (const x of b) bin += String.fromCharCode(x);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A new room id: 128 random bits, 22 base64url characters. */
export const newRoomId = () => randomId(16);

/** The room named by a path like `/r/<room>` (or `/r/<room>/`), else null. */
export function roomFromPath(pathname) {
  const m = /^\/r\/([^/]+)\/?$/.exec(pathname || '');
  if (!m) return null;
  let room;
  try {
    room = decodeURIComponent(m[1]);
  } catch {
    return null;
  }
  return isValidId(room) ? room : null;
}

/**
 * An invite token as servers sign them (`<expiry>.<mac>`): only URL-safe
 * characters, so it travels in links unescaped.
 */
export const TOKEN_RE = /^[A-Za-z0-9._-]{1,256}$/;

const withToken = (link, token) => (token ? `${link}?t=${token}` : link);

/** The token a link's query carries (`?t=...`), if it is well formed. */
export function tokenFromSearch(search) {
  const t = new URLSearchParams(search || '').get('t');
  return t && TOKEN_RE.test(t) ? t : null;
}

/** The shareable web link of `room` on the server at `origin` (scheme://host[:port]). */
export const webLink = (origin, room, token) => withToken(`${origin}/r/${room}`, token);

/** The desktop app's deep link: ringlet://join/<host[:port]>/<room>[?t=<token>]. */
export const appLink = (host, room, token) => withToken(`ringlet://join/${host}/${room}`, token);

/** A host[:port] as URL authorities write it, with nothing else in it. */
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const BAD = 'That is not a Ringlet link or room code. Paste a link like https://host/r/abc123, ringlet://join/host/abc123, or a code of letters, digits, - and _ (up to 64).';

/**
 * What someone typed or pasted into the join box, as
 * `{ok:true, room, host?, protocol?, token?}` (host is absent for a bare
 * code: this server; token when the link carries an invite) or
 * `{ok:false, message}` with a message a person can act on.
 * Accepted: `http(s)://host/r/<room>[?t=<token>]`,
 * `ringlet://join/<host>/<room>[?t=<token>]`, a bare room code.
 */
export function parseJoinInput(input) {
  const s = String(input ?? '').trim();
  if (!s) return { ok: false, message: 'Enter a room link or code.' };
  if (isValidId(s)) return { ok: true, room: s };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(s)?.[1]?.toLowerCase();
  if (scheme === 'ringlet') {
    // ringlet://join/<host>/<room>: parsed by hand, as URL() treats
    // non-special schemes' authorities inconsistently across engines.
    const m = /^ringlet:\/\/join\/([^/?#]+)\/([^/?#]+)\/?(\?[^#]*)?$/i.exec(s);
    if (!m) return { ok: false, message: 'That ringlet:// link is incomplete: it should look like ringlet://join/host:port/room.' };
    if (!HOST_RE.test(m[1])) return { ok: false, message: `"${m[1]}" is not a server address.` };
    let room;
    try {
      room = decodeURIComponent(m[2]);
    } catch {
      return { ok: false, message: BAD };
    }
    if (!isValidId(room)) return { ok: false, message: 'The room in that link is not valid: room codes are 1-64 letters, digits, - or _.' };
    return withLinkToken({ ok: true, room, host: m[1].toLowerCase() }, m[3]);
  }
  if (scheme === 'http' || scheme === 'https') {
    let url;
    try {
      url = new URL(s);
    } catch {
      return { ok: false, message: BAD };
    }
    if (!url.host) return { ok: false, message: BAD };
    const room = roomFromPath(url.pathname);
    if (!room) {
      return /^\/r\//.test(url.pathname)
        ? { ok: false, message: 'The room in that link is not valid: room codes are 1-64 letters, digits, - or _.' }
        : { ok: false, message: 'That link does not point at a room: a room link ends in /r/<room>.' };
    }
    return withLinkToken({ ok: true, room, host: url.host, protocol: url.protocol }, url.search);
  }
  if (scheme) return { ok: false, message: `Ringlet links start with https://, http:// or ringlet://, not ${scheme}:.` };
  return { ok: false, message: BAD };
}

/** Adds the link's invite token, or says why it is unusable. */
function withLinkToken(parsed, search) {
  if (!search || !new URLSearchParams(search).has('t')) return parsed;
  const token = tokenFromSearch(search);
  if (!token) return { ok: false, message: 'The invite in that link is damaged: copy the whole link again.' };
  return { ...parsed, token };
}

/**
 * Where the browser should go for a parsed join input, seen from a page at
 * `here` (a Location or URL): a path on this server when the link names it
 * (or names no server), else the full URL of the other server.
 */
export function joinTarget(parsed, here) {
  const path = withToken(`/r/${parsed.room}`, parsed.token);
  if (!parsed.host || parsed.host === here.host) return path;
  // A ringlet:// link carries no scheme: use this page's.
  const protocol = parsed.protocol || here.protocol;
  return `${protocol}//${parsed.host}${path}`;
}
