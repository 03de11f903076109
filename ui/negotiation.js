// The parts of perfect negotiation that are plain bookkeeping, kept apart
// from the RTCPeerConnection so Node's test runner checks them. They mirror
// the Rust engine's `Negotiator` (crates/call/src/negotiation.rs):
// - remote candidates that arrive before their remote description (or while
//   our own offer is out: the answer carries the session they belong to)
//   are queued, bounded, and applied in order once it is set;
// - candidates of an offer we ignored in a collision, or of an older ICE
//   session (by `usernameFragment` against the description's a=ice-ufrag),
//   are dropped, never applied to the wrong session;
// - a description identical to the last one applied is a repeat (a peer
//   resuming after a signaling reconnect re-sends its last word) and is
//   ignored.

/** Remote candidates held at most before their description. */
export const MAX_QUEUED_CANDIDATES = 256;

/** The session-level or first media-level a=ice-ufrag of an SDP, or null. */
export function iceUfrag(sdp) {
  const m = /^a=ice-ufrag:(\S+)\s*$/m.exec(sdp || '');
  return m ? m[1] : null;
}

/** Whether two descriptions are the same word (type and SDP text). */
export const sameDescription = (a, b) => !!a && !!b && a.type === b.type && a.sdp === b.sdp;

export class RemoteCandidates {
  constructor(max = MAX_QUEUED_CANDIDATES) {
    this.max = max;
    /** The ufrag of the remote description in force: null before any, '' if it had none. */
    this.remoteUfrag = null;
    /** The ufrag of a remote offer we ignored: its candidates go nowhere. */
    this.ignoredUfrag = null;
    this.queue = [];
    this.dropped = 0;
  }

  /**
   * What to do with a remote candidate, given the peer connection's
   * signaling state: 'apply', 'queue', 'drop' (wrong session) or
   * 'queue-dropped-oldest' (queued; the queue was full).
   */
  onCandidate(c, signalingState) {
    const frag = c.usernameFragment || null;
    if (frag && frag === this.ignoredUfrag) {
      this.dropped++;
      return 'drop';
    }
    if (this.remoteUfrag !== null && signalingState !== 'have-local-offer') {
      if (frag && this.remoteUfrag !== '' && frag !== this.remoteUfrag) {
        this.dropped++;
        return 'drop';
      }
      return 'apply';
    }
    this.queue.push(c);
    if (this.queue.length > this.max) {
      this.queue.shift();
      this.dropped++;
      return 'queue-dropped-oldest';
    }
    return 'queue';
  }

  /** We ignored a colliding offer: its candidates, queued or to come, are dropped. */
  offerIgnored(sdp) {
    this.ignoredUfrag = iceUfrag(sdp);
    if (!this.ignoredUfrag) return;
    const before = this.queue.length;
    this.queue = this.queue.filter((c) => c.usernameFragment !== this.ignoredUfrag);
    this.dropped += before - this.queue.length;
  }

  /**
   * A remote description with this SDP is set: returns the queued
   * candidates that belong to it, in arrival order, to apply now.
   */
  remoteDescriptionSet(sdp) {
    const ufrag = iceUfrag(sdp);
    if (ufrag && ufrag === this.ignoredUfrag) this.ignoredUfrag = null;
    this.remoteUfrag = ufrag ?? '';
    const ready = [];
    for (const c of this.queue) {
      if (!c.usernameFragment || !ufrag || c.usernameFragment === ufrag) ready.push(c);
      else this.dropped++;
    }
    this.queue = [];
    return ready;
  }

  get queued() {
    return this.queue.length;
  }
}
