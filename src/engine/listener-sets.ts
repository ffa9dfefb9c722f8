/**
 * @module engine/listener-sets
 * Listener sets keyed by a string (a topic, a session), shared by the engines' local fan-out.
 * A listener that throws does not stop the others: delivery to listeners is at-most-once.
 */
export class ListenerSets<T extends unknown[]> {
  private readonly sets = new Map<string, Set<(...args: T) => void>>();

  /** Adds a listener; returns the function that removes it (and the key once empty). */
  add(key: string, listener: (...args: T) => void): () => void {
    let set = this.sets.get(key);
    if (set === undefined) {
      set = new Set();
      this.sets.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.sets.get(key);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) this.sets.delete(key);
    };
  }

  emit(key: string, ...args: T): void {
    const set = this.sets.get(key);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        listener(...args);
      } catch {
        // one listener's failure is its own
      }
    }
  }
}
