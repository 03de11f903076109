// A minimal event emitter shared by the backends (the web one now, the
// desktop one later) and the UI controller that listens to them.
export class Emitter {
  #handlers = new Map();

  /** Calls `fn(value)` on each `name` event; returns a function that stops it. */
  on(name, fn) {
    if (!this.#handlers.has(name)) this.#handlers.set(name, new Set());
    this.#handlers.get(name).add(fn);
    return () => this.#handlers.get(name)?.delete(fn);
  }

  emit(name, value) {
    for (const fn of this.#handlers.get(name) ?? []) {
      try {
        fn(value);
      } catch (e) {
        // One listener's bug must not stop the others (or the call).
        console.warn(`listener for "${name}" failed:`, e);
      }
    }
  }
}
