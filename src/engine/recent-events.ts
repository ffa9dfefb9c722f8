/**
 * @module engine/recent-events
 * Decoded events recently read from the log, by topic incarnation (epoch) and sequence. Both
 * engines keep one: the embedded log to skip copying and decoding records again, the NATS log
 * also to skip a round trip to NATS per message (85–93 µs an event, 0.16–0.48 µs from here: bench/recent-reads.ts).
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
import type { StoredEvent } from "../streams/event.ts";

/** What each engine's log keeps (about 2 MB at 500 B an event). */
export const RECENT_EVENTS = 4096;

export class RecentEvents {
  /** Per topic incarnation (epoch, tenant, topic): its cached events by sequence. */
  private readonly topics = new Map<string, Map<number, StoredEvent>>();
  /** What was added, oldest first, as a ring: the topic key and sequence of each entry. */
  private readonly ringTopic: string[] = [];
  private readonly ringSeq: number[] = [];
  private head = 0;
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Entries held. */
  get size(): number {
    let n = 0;
    for (const events of this.topics.values()) n += events.size;
    return n;
  }

  /** The cached events of one topic incarnation, by sequence; look this up once per read. */
  topic(epoch: string, tenant: string, topic: string): ReadonlyMap<number, StoredEvent> | undefined {
    return this.topics.get(topicKey(epoch, tenant, topic));
  }

  get(epoch: string, tenant: string, topic: string, seq: number): StoredEvent | undefined {
    return this.topic(epoch, tenant, topic)?.get(seq);
  }

  add(epoch: string, event: StoredEvent): void {
    if (this.capacity <= 0) return;
    const full = this.ringTopic.length >= this.capacity;
    if (full) {
      // The oldest entry makes room (before the new one goes in, which may be the same one again).
      const oldKey = this.ringTopic[this.head]!;
      const oldEvents = this.topics.get(oldKey);
      if (oldEvents !== undefined && oldEvents.delete(this.ringSeq[this.head]!) && oldEvents.size === 0) this.topics.delete(oldKey);
    }
    const key = topicKey(epoch, event.tenant, event.topic);
    let events = this.topics.get(key);
    if (events === undefined) {
      events = new Map();
      this.topics.set(key, events);
    }
    events.set(event.seq, event);
    if (!full) {
      this.ringTopic.push(key);
      this.ringSeq.push(event.seq);
      return;
    }
    this.ringTopic[this.head] = key;
    this.ringSeq[this.head] = event.seq;
    this.head = (this.head + 1) % this.capacity;
  }
}

function topicKey(epoch: string, tenant: string, topic: string): string {
  return `${epoch}\u0000${tenant}\u0000${topic}`;
}
