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

/** The shareable web link of `room` on the server at `origin` (scheme://host[:port]). */
export const webLink = (origin, room) => `${origin}/r/${room}`;

/** The desktop app's deep link: ringlet://join/<host[:port]>/<room>. */
export const appLink = (host, room) => `ringlet://join/${host}/${room}`;

/** A host[:port] as URL authorities write it, with nothing else in it. */
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const BAD = 'That is not a Ringlet link or room code. Paste a link like https://host/r/abc123, ringlet://join/host/abc123, or a code of letters, digits, - and _ (up to 64).';

/**
 * What someone typed or pasted into the join box, as
 * `{ok:true, room, host?, protocol?}` (host is absent for a bare code: this
 * server) or `{ok:false, message}` with a message a person can act on.
 * Accepted: `http(s)://host/r/<room>`, `ringlet://join/<host>/<room>`, a
 * bare room code.
 */
export function parseJoinInput(input) {
  const s = String(input ?? '').trim();
  if (!s) return { ok: false, message: 'Enter a room link or code.' };
  if (isValidId(s)) return { ok: true, room: s };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(s)?.[1]?.toLowerCase();
  if (scheme === 'ringlet') {
    // ringlet://join/<host>/<room>: parsed by hand, as URL() treats
    // non-special schemes' authorities inconsistently across engines.
    const m = /^ringlet:\/\/join\/([^/?#]+)\/([^/?#]+)\/?$/i.exec(s);
    if (!m) return { ok: false, message: 'That ringlet:// link is incomplete: it should look like ringlet://join/host:port/room.' };
    if (!HOST_RE.test(m[1])) return { ok: false, message: `"${m[1]}" is not a server address.` };
    let room;
    try {
      room = decodeURIComponent(m[2]);
    } catch {
      return { ok: false, message: BAD };
    }
    if (!isValidId(room)) return { ok: false, message: 'The room in that link is not valid: room codes are 1-64 letters, digits, - or _.' };
    return { ok: true, room, host: m[1].toLowerCase() };
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
    return { ok: true, room, host: url.host, protocol: url.protocol };
  }
  if (scheme) return { ok: false, message: `Ringlet links start with https://, http:// or ringlet://, not ${scheme}:.` };
  return { ok: false, message: BAD };
}

/**
 * Where the browser should go for a parsed join input, seen from a page at
 * `here` (a Location or URL): a path on this server when the link names it
 * (or names no server), else the full URL of the other server.
 */
export function joinTarget(parsed, here) {
  const path = `/r/${parsed.room}`;
  if (!parsed.host || parsed.host === here.host) return path;
  // A ringlet:// link carries no scheme: use this page's.
  const protocol = parsed.protocol || here.protocol;
  return `${protocol}//${parsed.host}${path}`;
}
