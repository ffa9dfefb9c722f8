/**
 * @module engine/listener-sets
 * Listeners keyed by a string (a topic, a session), shared by the engines' local fan-out.
 * A listener that throws does not stop the others: delivery to listeners is at-most-once.
 *
 * Most keys have exactly one listener (a user's personal channel, a session's messages), so a
 * key's only listener is stored as it is; a Set is made when a second one arrives. A one-element
 * Set costs about 160 bytes of heap, and an idle socket holds three such keys.
 */
type Listener<T extends unknown[]> = (...args: T) => void;

export class ListenerSets<T extends unknown[]> {
  private readonly byKey = new Map<string, Listener<T> | Set<Listener<T>>>();

  /** Keys with at least one listener. */
  get size(): number {
    return this.byKey.size;
  }

  /** Adds a listener; returns the function that removes it (and the key once empty). */
  add(key: string, listener: Listener<T>): () => void {
    const current = this.byKey.get(key);
    if (current === undefined) this.byKey.set(key, listener);
    else if (typeof current === "function") {
      if (current !== listener) this.byKey.set(key, new Set([current, listener]));
    } else current.add(listener);
    return () => this.remove(key, listener);
  }

  remove(key: string, listener: Listener<T>): void {
    const current = this.byKey.get(key);
    if (current === undefined) return;
    if (typeof current === "function") {
      if (current === listener) this.byKey.delete(key);
    } else if (current.delete(listener) && current.size === 0) {
      this.byKey.delete(key);
    }
  }

  emit(key: string, ...args: T): void {
    const current = this.byKey.get(key);
    if (current === undefined) return;
    if (typeof current === "function") {
      try {
        current(...args);
      } catch {
        // one listener's failure is its own
      }
      return;
    }
    for (const listener of current) {
      try {
        listener(...args);
      } catch {
        // one listener's failure is its own
      }
    }
  }
}
