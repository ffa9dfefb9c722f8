/**
 * @module engine/embedded/embedded-event-log
 * The durable log on LMDB. Sequences, idempotency checks and the topic record are read and
 * written inside LMDB write transactions, which lmdb-js runs one after another and batches per
 * event turn: every append that arrives in the same turn shares one commit and one fsync
 * (group commit), and two appends can never see the same `lastSeq`. Nothing is held in memory
 * per topic except listeners, so an idle topic costs only its record on disk.
 */
import type { Database, RootDatabase } from "lmdb";
import { BatonError } from "../../errors/baton-error.ts";
import type {
  Appended,
  NewEvent,
  ReadPage,
  Retention,
  StoredEvent,
  TopicInfo,
  TopicRef,
} from "../../streams/event.ts";
import { newEpoch, newEventId } from "../../streams/ids.ts";
import type { AppendListener, AppendOptions, EventLog, ListTopicsOptions } from "../engine.ts";
import {
  decodeEvent,
  decodeEventTime,
  encodeEvent,
  topicInfo,
  type DedupRecord,
  type TopicRecord,
} from "./records.ts";

export interface EmbeddedLogOptions {
  /** How long an idempotency key is remembered, ms. */
  readonly dedupWindowMs: number;
  /** Retention given to auto-created topics. */
  readonly defaultRetention: Retention;
  /** Events accepted but not yet durable before appends are refused with OVERLOADED. */
  readonly maxPendingEvents: number;
  readonly now?: () => number;
}

export interface EmbeddedDbs {
  readonly root: RootDatabase;
  readonly events: Database<Buffer, [string, string, number]>;
  readonly topics: Database<TopicRecord, [string, string]>;
  readonly dedup: Database<DedupRecord, [string, string, string]>;
  /** Expiry index of `dedup`: [expiresAt, tenant, topic, key] -> 1. */
  readonly dedupExpiry: Database<number, [number, string, string, string]>;
}

const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const HIGH = "\uffff";

export class EmbeddedEventLog implements EventLog {
  private readonly listeners = new Map<string, Set<AppendListener>>();
  private pendingEvents = 0;
  private closed = false;
  private readonly now: () => number;
  private readonly db: EmbeddedDbs;
  private readonly options: EmbeddedLogOptions;

  constructor(db: EmbeddedDbs, options: EmbeddedLogOptions) {
    this.db = db;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  async append(ref: TopicRef, events: readonly NewEvent[], options: AppendOptions): Promise<Appended[]> {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down");
    if (events.length === 0) return [];
    if (this.pendingEvents + events.length > this.options.maxPendingEvents) {
      throw new BatonError("OVERLOADED", "too many writes waiting for the disk; retry shortly", {
        retryAfterMs: 100,
      });
    }
    this.pendingEvents += events.length;
    try {
      const committed = await this.db.root.transaction(() => this.appendInTxn(ref, events, options));
      await this.db.root.flushed;
      if (committed.stored.length > 0) this.notify(ref, committed.stored);
      return committed.results;
    } finally {
      this.pendingEvents -= events.length;
    }
  }

  /** Runs inside the write transaction: reads see every earlier append, including this turn's. */
  private appendInTxn(
    ref: TopicRef,
    events: readonly NewEvent[],
    options: AppendOptions,
  ): { results: Appended[]; stored: StoredEvent[] } {
    const { tenant, topic } = ref;
    const topicKey: [string, string] = [tenant, topic];
    const now = this.now();
    let record = this.db.topics.get(topicKey);
    if (record?.deleting) {
      throw new BatonError("UNAVAILABLE", `topic ${topic} is being deleted; retry shortly`, {
        retryAfterMs: 500,
      });
    }
    if (record === undefined) {
      if (!options.autoCreate) throw new BatonError("TOPIC_NOT_FOUND", `topic ${topic} does not exist`);
      record = newTopicRecord(now, this.options.defaultRetention);
    } else {
      record = { ...record };
    }
    // Everything that can throw (validation, encoding) happens before the first put: lmdb-js
    // keeps the puts of a callback that throws, so a late throw would break all-or-nothing.
    const results: Appended[] = [];
    const stored: StoredEvent[] = [];
    const encoded: Buffer[] = [];
    const dedupWrites: [string, DedupRecord][] = [];
    const batchKeys = new Map<string, Appended>();
    for (const event of events) {
      const idem = event.idempotencyKey;
      if (idem !== undefined) {
        const earlier = batchKeys.get(idem) ?? this.liveDedup(tenant, topic, idem, now);
        if (earlier !== undefined) {
          results.push({ id: earlier.id, seq: earlier.seq, duplicate: true });
          continue;
        }
      }
      const seq = record.lastSeq + 1;
      const time = Math.max(now, record.lastTime);
      const storedEvent: StoredEvent = {
        id: newEventId(time),
        tenant,
        topic,
        seq,
        data: event.data,
        time,
        ...(event.key === undefined ? {} : { key: event.key }),
        ...(event.type === undefined ? {} : { type: event.type }),
        ...(event.schemaVersion === undefined ? {} : { schemaVersion: event.schemaVersion }),
        ...(event.causalId === undefined ? {} : { causalId: event.causalId }),
        ...(event.headers === undefined ? {} : { headers: event.headers }),
        ...(event.ttlMs === undefined ? {} : { expiresAt: time + event.ttlMs }),
      };
      const buf = encodeEvent(storedEvent);
      record.lastSeq = seq;
      record.lastTime = time;
      record.events += 1;
      record.bytes += buf.length;
      const appended: Appended = { id: storedEvent.id, seq, duplicate: false };
      if (idem !== undefined) {
        batchKeys.set(idem, appended);
        dedupWrites.push([idem, { id: storedEvent.id, seq, expiresAt: now + this.options.dedupWindowMs }]);
      }
      results.push(appended);
      stored.push(storedEvent);
      encoded.push(buf);
    }
    for (let i = 0; i < stored.length; i++) {
      void this.db.events.put([tenant, topic, stored[i]!.seq], encoded[i]!);
    }
    for (const [idem, dedup] of dedupWrites) {
      void this.db.dedup.put([tenant, topic, idem], dedup);
      void this.db.dedupExpiry.put([dedup.expiresAt, tenant, topic, idem], 1);
    }
    if (stored.length > 0) void this.db.topics.put(topicKey, record);
    return { results, stored };
  }

  async read(ref: TopicRef, fromSeq: number, limit: number): Promise<ReadPage> {
    const record = this.liveRecord(ref);
    const start = Math.max(fromSeq, record.firstSeq);
    const now = this.now();
    const events: StoredEvent[] = [];
    let next = start;
    for (const { key, value } of this.db.events.getRange({
      start: [ref.tenant, ref.topic, start],
      end: [ref.tenant, ref.topic, MAX_SEQ],
      limit,
    })) {
      const seq = key[2];
      next = seq + 1;
      const event = decodeEvent(ref.tenant, ref.topic, seq, value);
      if (event.expiresAt !== undefined && event.expiresAt <= now) continue;
      events.push(event);
    }
    return { events, next, firstSeq: record.firstSeq, lastSeq: record.lastSeq, epoch: record.epoch };
  }

  async seqAtTime(ref: TopicRef, time: number): Promise<number> {
    const record = this.liveRecord(ref);
    // Publish times never decrease within a topic and the stored range is contiguous, so a
    // binary search over sequences finds the first event at or after `time`.
    let lo = record.firstSeq;
    let hi = record.lastSeq + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const buf = this.db.events.get([ref.tenant, ref.topic, mid]);
      if (buf === undefined || decodeEventTime(buf).time < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async createTopic(ref: TopicRef, retention: Retention): Promise<TopicInfo> {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down");
    const key: [string, string] = [ref.tenant, ref.topic];
    const record = await this.db.root.transaction(() => {
      const existing = this.db.topics.get(key);
      if (existing !== undefined) {
        throw new BatonError(
          existing.deleting ? "UNAVAILABLE" : "TOPIC_EXISTS",
          existing.deleting ? `topic ${ref.topic} is being deleted; retry shortly` : `topic ${ref.topic} already exists`,
        );
      }
      const created = newTopicRecord(this.now(), retention);
      void this.db.topics.put(key, created);
      return created;
    });
    await this.db.root.flushed;
    return topicInfo(ref.tenant, ref.topic, record);
  }

  async describeTopic(ref: TopicRef): Promise<TopicInfo | undefined> {
    const record = this.db.topics.get([ref.tenant, ref.topic]);
    if (record === undefined || record.deleting) return undefined;
    return topicInfo(ref.tenant, ref.topic, record);
  }

  async listTopics(tenant: string, options: ListTopicsOptions): Promise<TopicInfo[]> {
    const prefix = options.prefix ?? "";
    const after = options.after;
    const start = after !== undefined && after >= prefix ? `${after}\u0000` : prefix;
    const out: TopicInfo[] = [];
    for (const { key, value } of this.db.topics.getRange({
      start: [tenant, start],
      end: [tenant, `${prefix}${HIGH}`],
    })) {
      if (value.deleting) continue;
      out.push(topicInfo(tenant, key[1], value));
      if (out.length >= options.limit) break;
    }
    return out;
  }

  async deleteTopic(ref: TopicRef): Promise<boolean> {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down");
    const key: [string, string] = [ref.tenant, ref.topic];
    const marked = await this.db.root.transaction(() => {
      const existing = this.db.topics.get(key);
      if (existing === undefined || existing.deleting) return false;
      void this.db.topics.put(key, { ...existing, deleting: true });
      return true;
    });
    if (!marked) return false;
    // History goes in bounded chunks so a huge topic never holds the writer for long.
    const CHUNK = 5_000;
    for (;;) {
      const done = await this.db.root.transaction(() => {
        let n = 0;
        for (const k of this.db.events.getKeys({
          start: [ref.tenant, ref.topic, 0],
          end: [ref.tenant, ref.topic, MAX_SEQ],
          limit: CHUNK,
        })) {
          void this.db.events.remove(k);
          n++;
        }
        for (const { key: k, value } of this.db.dedup.getRange({
          start: [ref.tenant, ref.topic, ""],
          end: [ref.tenant, ref.topic, HIGH],
          limit: CHUNK,
        })) {
          void this.db.dedup.remove(k);
          void this.db.dedupExpiry.remove([value.expiresAt, ...k]);
          n++;
        }
        if (n === 0) void this.db.topics.remove(key);
        return n === 0;
      });
      if (done) break;
    }
    await this.db.root.flushed;
    return true;
  }

  onAppend(ref: TopicRef, listener: AppendListener): () => void {
    const key = listenerKey(ref);
    let set = this.listeners.get(key);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(key);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(key);
    };
  }

  /** Stops accepting writes; the engine closes the store after in-flight appends settle. */
  stopWrites(): void {
    this.closed = true;
  }

  /** Appends accepted but not yet durable. */
  get pending(): number {
    return this.pendingEvents;
  }

  private liveDedup(tenant: string, topic: string, key: string, now: number): DedupRecord | undefined {
    const seen = this.db.dedup.get([tenant, topic, key]);
    return seen !== undefined && seen.expiresAt > now ? seen : undefined;
  }

  private liveRecord(ref: TopicRef): TopicRecord {
    const record = this.db.topics.get([ref.tenant, ref.topic]);
    if (record === undefined || record.deleting) {
      throw new BatonError("TOPIC_NOT_FOUND", `topic ${ref.topic} does not exist`);
    }
    return record;
  }

  private notify(ref: TopicRef, events: readonly StoredEvent[]): void {
    const set = this.listeners.get(listenerKey(ref));
    if (set === undefined) return;
    for (const listener of set) {
      try {
        listener(events);
      } catch {
        // A listener's failure is its own; the append already succeeded.
      }
    }
  }
}

function listenerKey(ref: TopicRef): string {
  return `${ref.tenant}\u0000${ref.topic}`;
}

function newTopicRecord(now: number, retention: Retention): TopicRecord {
  return {
    epoch: newEpoch(),
    firstSeq: 1,
    lastSeq: 0,
    events: 0,
    bytes: 0,
    createdAt: now,
    lastTime: 0,
    retention,
  };
}
