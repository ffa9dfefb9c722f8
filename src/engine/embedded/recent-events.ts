/**
 * @module engine/embedded/recent-events
 * Decoded events recently read from the log, by topic incarnation (epoch) and sequence.
 *
 * Many readers of the same recent range are the normal case for a realtime log: after a
 * reconnect storm every socket of a topic recovers the same missed events, and slow sockets catch
 * up over the same pages. Without this, each of them decoded the same records again (at 10,000
 * sockets, the same 100 events decoded 10,000 times was a tenth of the storm's CPU), and each
 * got new objects, so the per-event publication JSON cached by the gateway (keyed by the event
 * object) never hit either. A stored event never changes, and a topic that is deleted and made
 * again has a new epoch, so an entry never goes stale; one removed by retention is simply no
 * longer asked for. Eviction is first in, first out.
 */
import type { StoredEvent } from "../../streams/event.ts";

export class RecentEvents {
  private readonly byKey = new Map<string, StoredEvent>();
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.byKey.size;
  }

  get(epoch: string, tenant: string, topic: string, seq: number): StoredEvent | undefined {
    return this.byKey.get(key(epoch, tenant, topic, seq));
  }

  add(epoch: string, event: StoredEvent): void {
    if (this.capacity <= 0) return;
    this.byKey.set(key(epoch, event.tenant, event.topic, event.seq), event);
    if (this.byKey.size > this.capacity) {
      const oldest = this.byKey.keys().next();
      if (oldest.done !== true) this.byKey.delete(oldest.value);
    }
  }
}

function key(epoch: string, tenant: string, topic: string, seq: number): string {
  return `${epoch}\u0000${tenant}\u0000${topic}\u0000${seq}`;
}
