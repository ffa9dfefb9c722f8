/**
 * @module engine/nats/append-fanout
 * `EventLog.onAppend` across nodes. Core NATS subscribers of a stream subject also receive
 * publishes that JetStream then refuses (a lost compare-and-set), so the stream subject is no
 * wake-up signal. Instead, the node whose append was acked publishes a notice (the stored
 * message plus its stream sequence) on the topic's notice subject; nodes subscribe to it only
 * while they have listeners. Notices from different nodes can arrive out of order, so each
 * topic keeps the last sequence delivered: older notices are dropped and a gap is filled by
 * reading the log before later events are delivered. Delivery stays in sequence order and at
 * most once.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { StoredEvent, TopicRef } from "../../streams/event.ts";
import type { AppendListener } from "../engine.ts";
import { ListenerSets } from "../listener-sets.ts";
import { decodeBatch, headHeaders, readHead, type BatchHead } from "./codec.ts";
import type { NatsNames } from "./names.ts";

/** Reads events `[from, ...]` of a topic, for filling gaps. */
export type GapReader = (ref: TopicRef, from: number, limit: number) => Promise<{ events: StoredEvent[]; epoch: string }>;

interface Notice {
  readonly head: BatchHead;
  readonly events: () => readonly StoredEvent[];
}

interface Feed {
  readonly ref: TopicRef;
  readonly sub: Subscription;
  epoch: string | undefined;
  delivered: number;
  /** Notices not handled yet, in arrival order; one drain at a time works through them. */
  readonly queue: Notice[];
  draining: boolean;
}

const MAX_GAP = 1000;

export class AppendFanout {
  private readonly listeners = new ListenerSets<Parameters<AppendListener>>();
  private readonly feeds = new Map<string, Feed>();
  private readonly counts = new Map<string, number>();
  private readonly nc: NatsConnection;
  private readonly names: NatsNames;
  private readonly readGap: GapReader;

  constructor(nc: NatsConnection, names: NatsNames, readGap: GapReader) {
    this.nc = nc;
    this.names = names;
    this.readGap = readGap;
  }

  add(ref: TopicRef, listener: AppendListener): () => void {
    const key = feedKey(ref);
    if (!this.feeds.has(key)) {
      const sub = this.nc.subscribe(this.names.noticeSubject(ref.tenant, ref.topic), {
        callback: (err, msg) => {
          if (err !== null) return;
          const head = readHead(msg.headers);
          const streamSeq = Number(msg.headers?.get("Baton-Stream-Seq"));
          if (head === undefined || !Number.isSafeInteger(streamSeq)) return;
          this.deliver(ref, head, () => decodeBatch(ref.tenant, ref.topic, head, msg.data).map((e) => e.event));
        },
      });
      this.feeds.set(key, { ref, sub, epoch: undefined, delivered: 0, queue: [], draining: false });
    }
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const off = this.listeners.add(key, listener);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      off();
      const n = (this.counts.get(key) ?? 1) - 1;
      if (n > 0) {
        this.counts.set(key, n);
        return;
      }
      this.counts.delete(key);
      this.feeds.get(key)?.sub.unsubscribe();
      this.feeds.delete(key);
    };
  }

  /** Tells this node's listeners and the other nodes of a durable append made here. */
  published(ref: TopicRef, head: BatchHead, streamSeq: number, body: Uint8Array, events: readonly StoredEvent[]): void {
    const h = headHeaders(head);
    h.set("Baton-Stream-Seq", String(streamSeq));
    this.nc.publish(this.names.noticeSubject(ref.tenant, ref.topic), body, { headers: h });
    this.deliver(ref, head, () => events);
  }

  close(): void {
    for (const feed of this.feeds.values()) feed.sub.unsubscribe();
    this.feeds.clear();
  }

  private deliver(ref: TopicRef, head: BatchHead, events: () => readonly StoredEvent[]): void {
    const feed = this.feeds.get(feedKey(ref));
    if (feed === undefined) return;
    feed.queue.push({ head, events });
    if (!feed.draining) void this.drain(feed);
  }

  /**
   * Works through the feed's notices one at a time. Without a gap nothing is awaited, so a
   * notice is delivered synchronously; a gap is filled (awaited) before the notices behind it.
   * Nothing here may stop the feed for good: a failure skips that notice (at most once).
   */
  private async drain(feed: Feed): Promise<void> {
    feed.draining = true;
    try {
      for (let notice = feed.queue.shift(); notice !== undefined; notice = feed.queue.shift()) {
        try {
          await this.handle(feed, notice);
        } catch {
          // A listener or a decode failed: listeners re-read from their own position when they next wake.
        }
      }
    } finally {
      feed.draining = false;
    }
  }

  private async handle(feed: Feed, { head, events }: Notice): Promise<void> {
    if (feed.epoch !== head.epoch) {
      // First notice, or the topic was recreated: start from here.
      feed.epoch = head.epoch;
      feed.delivered = head.seq - 1;
    }
    const end = head.seq + head.count - 1;
    if (end <= feed.delivered) return;
    if (head.seq > feed.delivered + 1) {
      const from = feed.delivered + 1;
      await this.fillGap(feed, from, head.seq - from);
      if (feed.epoch !== head.epoch || end <= feed.delivered) return;
    }
    const fresh = events().filter((e) => e.seq > feed.delivered);
    feed.delivered = end;
    if (fresh.length > 0) this.listeners.emit(feedKey(feed.ref), fresh, head.epoch);
  }

  private async fillGap(feed: Feed, from: number, count: number): Promise<void> {
    try {
      const page = await this.readGap(feed.ref, from, Math.min(count, MAX_GAP));
      if (page.epoch !== feed.epoch) return;
      const fresh = page.events.filter((e) => e.seq > feed.delivered && e.seq < from + count);
      if (fresh.length > 0) {
        feed.delivered = fresh[fresh.length - 1]!.seq;
        this.listeners.emit(feedKey(feed.ref), fresh, page.epoch);
      }
    } catch {
      // At most once: listeners re-read from their own position when they next wake.
    }
    // Whatever could not be read is skipped, so delivery continues in order.
    feed.delivered = Math.max(feed.delivered, from + count - 1);
  }
}

function feedKey(ref: TopicRef): string {
  return `${ref.tenant}\u0000${ref.topic}`;
}
