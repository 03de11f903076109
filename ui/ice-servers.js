// Which STUN/TURN servers a browser call uses, and when to refresh their
// credentials. Pure, tested under Node; mirrors the engine's
// crates/call/src/ice_servers.rs.
//
// The join ack carries `iceServers`; a TURN credential in it is short-lived
// (TURN REST scheme: username `<expiry unix seconds>:<peerId>`). Well
// before it expires the page joins again on the same socket (the server
// answers with a freshly minted one) and restarts ICE with it.

/** The page's own servers first, then the ack's, leaving out an acked one whose URLs are already there. */
export function mergeIceServers(configured = [], acked = []) {
  const key = (s) => JSON.stringify([].concat(s?.urls ?? []));
  const have = new Set(configured.map(key));
  return [...configured, ...acked.filter((s) => !have.has(key(s)))];
}

/** The earliest TURN REST expiry (unix seconds) among the servers' usernames, or null. */
export function turnExpiry(servers = []) {
  let min = null;
  for (const s of servers) {
    const m = /^(\d+):/.exec(s?.username ?? '');
    if (m) {
      const t = Number(m[1]);
      if (min === null || t < min) min = t;
    }
  }
  return min;
}

/**
 * Milliseconds from `nowMs` (Date.now()) until a credential expiring at
 * `expirySec` should be refreshed: after four fifths of what is left (a
 * fifth of an hour covers clock skew; seconds-long test credentials scale
 * down), at least 500 ms, never after expiry. null if already expired.
 */
export function refreshDelayMs(expirySec, nowMs) {
  const left = expirySec * 1000 - nowMs;
  if (!(left > 0)) return null;
  return Math.min(left, Math.max(500, Math.floor((left * 4) / 5)));
}
