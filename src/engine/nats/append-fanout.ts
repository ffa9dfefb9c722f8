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

interface Feed {
  readonly ref: TopicRef;
  readonly sub: Subscription;
  epoch: string | undefined;
  delivered: number;
  /** Set while a gap is being filled: later deliveries wait behind it. */
  chain: Promise<void> | undefined;
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
      this.feeds.set(key, { ref, sub, epoch: undefined, delivered: 0, chain: undefined });
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
    if (feed.chain !== undefined) {
      feed.chain = feed.chain.then(() => this.deliverNow(feed, head, events()));
      return;
    }
    this.deliverNow(feed, head, events());
  }

  private deliverNow(feed: Feed, head: BatchHead, events: readonly StoredEvent[]): void {
    if (feed.epoch !== head.epoch) {
      // First notice, or the topic was recreated: start from here.
      feed.epoch = head.epoch;
      feed.delivered = head.seq - 1;
    }
    const end = head.seq + head.count - 1;
    if (end <= feed.delivered) return;
    if (head.seq > feed.delivered + 1) {
      const from = feed.delivered + 1;
      const chain = this.fillGap(feed, from, head.seq - from).then(() => this.deliverNow(feed, head, events));
      feed.chain = chain;
      void chain.finally(() => {
        if (feed.chain === chain) feed.chain = undefined;
      });
      return;
    }
    const fresh = events.filter((e) => e.seq > feed.delivered);
    feed.delivered = end;
    this.listeners.emit(feedKey(feed.ref), fresh, head.epoch);
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
