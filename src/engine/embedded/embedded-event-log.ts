/**
 * @module engine/embedded/embedded-event-log
 * The durable log on LMDB.
 *
 * This process is the only writer of its data dir (the engine holds a lock file), so each
 * topic's position (lastSeq, counters, epoch) lives in memory once the topic is touched, and an
 * append is a handful of plain `put`s issued synchronously. The topic record is written with a
 * topic's first events and then at most once per sweep interval (`flushPositions`): the events
 * themselves are the truth for the position, and loading a topic recounts the events stored
 * after its record's `lastSeq`, so a record that lags after a crash is corrected exactly. lmdb-js commits every write issued
 * in one event turn as one transaction on its write thread, so concurrent appends share one
 * commit and one fsync (group commit), and a batch's writes can never be split. Sequences are
 * assigned synchronously in call order, so they are gap-free and never handed out twice. An
 * append resolves only once its transaction is flushed to disk.
 *
 * Readers only ever see durable events: reads stop at `durableSeq`, the highest sequence whose
 * transaction has been flushed.
 *
 * A failed commit (e.g. disk full) could leave a hole behind later commits, so the first one
 * puts the log in a failed state: every later write is refused with UNAVAILABLE until the
 * process restarts and reloads positions from disk.
 */
import type { Database, RootDatabase } from "lmdb";
import { BatonError } from "../../errors/baton-error.ts";
import type { Appended, NewEvent, ReadPage, Retention, StoredEvent, TopicInfo, TopicRef } from "../../streams/event.ts";
import { newEpoch, newEventId } from "../../streams/ids.ts";
import type { AppendListener, AppendOptions, EventLog, ListTopicsOptions } from "../engine.ts";
import { ListenerSets } from "../listener-sets.ts";
import { decodeEvent, decodeEventTime, encodeEvent, topicInfo, type DedupRecord, type TopicRecord } from "./records.ts";
import { RECENT_EVENTS, RecentEvents } from "../recent-events.ts";

export interface EmbeddedLogOptions {
  /** How long an idempotency key is remembered, ms. */
  readonly dedupWindowMs: number;
  /** Retention given to auto-created topics. */
  readonly defaultRetention: Retention;
  /** Events accepted but not yet durable before appends are refused with OVERLOADED. */
  readonly maxPendingEvents: number;
  /** Encoded bytes accepted but not yet durable before appends are refused with OVERLOADED. */
  readonly maxPendingBytes: number;
  readonly now?: () => number;
  /** Called once when a write fails and the log stops accepting writes. */
  readonly onFailure?: (err: unknown) => void;
}

export interface EmbeddedDbs {
  readonly root: RootDatabase;
  readonly events: Database<Buffer, [string, string, number]>;
  readonly topics: Database<TopicRecord, [string, string]>;
  readonly dedup: Database<DedupRecord, [string, string, string]>;
  /** Expiry index of `dedup`: [expiresAt, tenant, topic, key] -> 1. */
  readonly dedupExpiry: Database<number, [number, string, string, string]>;
}

/** A topic's live position. Mutated only synchronously, right before the writes it describes. */
interface TopicState {
  readonly tenant: string;
  readonly topic: string;
  record: TopicRecord;
  /** Highest sequence whose write is flushed; reads stop here. */
  durableSeq: number;
  /** Writes for this topic issued and not yet durable. */
  inflight: number;
  /** Settles when the latest write issued for this topic is durable. */
  lastWrite: Promise<void>;
  /** Last user access, epoch ms; 0 when only the sweeper touched it. */
  touchedAt: number;
  /** The record exists on disk (it must be written with the topic's first events). */
  persisted: boolean;
  /** The in-memory record is ahead of the one on disk. */
  dirty: boolean;
}

interface PendingKey {
  readonly appended: Appended;
  readonly durable: Promise<void>;
}

/** Decides whether the head event of a topic must be reclaimed (see RetentionSweeper). */
export type ReclaimPolicy = (retention: Retention, eventsLeft: number, bytesLeft: number, event: Buffer, now: number) => boolean;

type WritePromise = Promise<unknown> & { flushed?: Promise<unknown> };

const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const HIGH = "\uffff";
const DELETE_CHUNK = 5_000;

export class EmbeddedEventLog implements EventLog {
  private readonly listeners = new ListenerSets<Parameters<AppendListener>>();
  private readonly recent = new RecentEvents(RECENT_EVENTS);
  private readonly states = new Map<string, TopicState>();
  private readonly pendingKeys = new Map<string, PendingKey>();
  private readonly deletesRunning = new Set<string>();
  private pendingEvents = 0;
  private pendingBytes = 0;
  /** Per tenant: [events, bytes] not yet durable. One tenant may hold at most half of either budget. */
  private readonly pendingByTenant = new Map<string, [number, number]>();
  private closed = false;
  private failure: unknown = undefined;
  private readonly now: () => number;
  private readonly db: EmbeddedDbs;
  private readonly options: EmbeddedLogOptions;

  constructor(db: EmbeddedDbs, options: EmbeddedLogOptions) {
    this.db = db;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  async append(ref: TopicRef, events: readonly NewEvent[], options: AppendOptions): Promise<Appended[]> {
    this.assertWritable();
    if (events.length === 0) return [];
    this.assertBudget(ref.tenant, events.length, 0);
    const now = this.now();
    const state = this.writableState(ref, options.autoCreate, now);
    const { tenant, topic } = ref;
    try {
      return await this.appendTo(state, ref, events, now);
    } catch (err) {
      // A topic auto-created by an append that failed before writing anything does not exist.
      if (!state.persisted && state.inflight === 0) this.states.delete(stateKey(tenant, topic));
      throw err;
    }
  }

  private async appendTo(state: TopicState, ref: TopicRef, events: readonly NewEvent[], now: number): Promise<Appended[]> {
    const { tenant, topic } = ref;

    // Phase 1 may throw (encoding) and so changes nothing.
    const results: Appended[] = [];
    const stored: StoredEvent[] = [];
    const encoded: Buffer[] = [];
    const newKeys: [string, Appended][] = [];
    const waitFor: Promise<void>[] = [];
    let seq = state.record.lastSeq;
    const time = Math.max(now, state.record.lastTime);
    let bytes = 0;
    for (const event of events) {
      const idem = event.idempotencyKey;
      if (idem !== undefined) {
        const earlier = this.findKey(state, idem, now, newKeys);
        if (earlier !== undefined) {
          results.push({ id: earlier.appended.id, seq: earlier.appended.seq, duplicate: true });
          if (earlier.durable !== undefined) waitFor.push(earlier.durable);
          continue;
        }
      }
      seq += 1;
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
      bytes += buf.length;
      const appended: Appended = { id: storedEvent.id, seq, duplicate: false };
      if (idem !== undefined) newKeys.push([idem, appended]);
      results.push(appended);
      stored.push(storedEvent);
      encoded.push(buf);
    }

    if (stored.length > 0) {
      this.assertBudget(tenant, stored.length, bytes);
      // Phase 2: update the position and issue every write in this same turn (one transaction).
      const record = state.record;
      record.lastSeq = seq;
      record.lastTime = time;
      record.events += stored.length;
      record.bytes += bytes;
      let last: WritePromise | undefined;
      for (let i = 0; i < stored.length; i++) last = this.db.events.put([tenant, topic, stored[i]!.seq], encoded[i]!);
      const expiresAt = now + this.options.dedupWindowMs;
      for (const [idem, appended] of newKeys) {
        void this.db.dedup.put([tenant, topic, idem], { id: appended.id, seq: appended.seq, expiresAt });
        last = this.db.dedupExpiry.put([expiresAt, tenant, topic, idem], 1);
      }
      if (!state.persisted) {
        last = this.db.topics.put([tenant, topic], { ...record });
        state.persisted = true;
      } else {
        state.dirty = true;
      }
      const durable = this.track(state, last!);
      const keyNames = newKeys.map(([idem, appended]) => {
        const name = pendingKeyName(tenant, topic, idem);
        this.pendingKeys.set(name, { appended, durable });
        return name;
      });
      this.charge(tenant, stored.length, bytes);
      try {
        await durable;
      } finally {
        this.charge(tenant, -stored.length, -bytes);
        for (const name of keyNames) this.pendingKeys.delete(name);
      }
      if (seq > state.durableSeq) state.durableSeq = seq;
      this.notify(ref, stored, state.record.epoch);
    }
    // A duplicate of a publish that is not yet durable is acknowledged only once it is.
    if (waitFor.length > 0) await Promise.all(waitFor);
    return results;
  }

  async read(ref: TopicRef, fromSeq: number, limit: number): Promise<ReadPage> {
    const state = this.liveState(ref);
    const record = state.record;
    const start = Math.max(fromSeq, record.firstSeq);
    const now = this.now();
    const events: StoredEvent[] = [];
    let next = start;
    if (start <= state.durableSeq) {
      const recent = this.recent.topic(record.epoch, ref.tenant, ref.topic);
      // Keys only: a value is copied out of LMDB and decoded only when not already held decoded.
      for (const key of this.db.events.getKeys({
        start: [ref.tenant, ref.topic, start],
        end: [ref.tenant, ref.topic, state.durableSeq + 1],
        limit,
      })) {
        const seq = key[2];
        next = seq + 1;
        let event = recent?.get(seq);
        if (event === undefined) {
          const value = this.db.events.get(key);
          if (value === undefined) continue;
          event = decodeEvent(ref.tenant, ref.topic, seq, value);
          this.recent.add(record.epoch, event);
        }
        if (event.expiresAt !== undefined && event.expiresAt <= now) continue;
        events.push(event);
      }
    }
    return { events, next, firstSeq: record.firstSeq, lastSeq: state.durableSeq, epoch: record.epoch };
  }

  async seqAtTime(ref: TopicRef, time: number): Promise<number> {
    const state = this.liveState(ref);
    // Publish times never decrease within a topic and the stored range is contiguous, so a
    // binary search over sequences finds the first event at or after `time`.
    let lo = state.record.firstSeq;
    let hi = state.durableSeq + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const buf = this.db.events.get([ref.tenant, ref.topic, mid]);
      if (buf === undefined || decodeEventTime(buf).time < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async createTopic(ref: TopicRef, retention: Retention): Promise<TopicInfo> {
    this.assertWritable();
    const existing = this.loadState(ref, true);
    if (existing !== undefined) {
      if (existing.record.deleting) throw new BatonError("UNAVAILABLE", `topic ${ref.topic} is being deleted; retry shortly`, { retryAfterMs: 500 });
      throw new BatonError("TOPIC_EXISTS", `topic ${ref.topic} already exists`);
    }
    const state = this.newState(ref, retention, this.now());
    state.persisted = true;
    await this.track(state, this.db.topics.put([ref.tenant, ref.topic], { ...state.record }));
    return this.info(state);
  }

  async describeTopic(ref: TopicRef): Promise<TopicInfo | undefined> {
    const state = this.loadState(ref, true);
    return state === undefined || state.record.deleting ? undefined : this.info(state);
  }

  async listTopics(tenant: string, options: ListTopicsOptions): Promise<TopicInfo[]> {
    const prefix = options.prefix ?? "";
    const after = options.after;
    const start = after !== undefined && after >= prefix ? `${after}\u0000` : prefix;
    const out: TopicInfo[] = [];
    for (const key of this.db.topics.getKeys({ start: [tenant, start], end: [tenant, `${prefix}${HIGH}`] })) {
      const state = this.loadState({ tenant, topic: key[1] }, false);
      if (state === undefined || state.record.deleting) continue;
      out.push(this.info(state));
      if (out.length >= options.limit) break;
    }
    return out;
  }

  async deleteTopic(ref: TopicRef): Promise<boolean> {
    this.assertWritable();
    const state = this.loadState(ref, true);
    if (state === undefined || state.record.deleting) return false;
    state.record.deleting = true;
    await this.track(state, this.db.topics.put([ref.tenant, ref.topic], { ...state.record }));
    await this.removeHistory(state);
    return true;
  }

  /**
   * Finishes deletes that a crash interrupted (records still marked `deleting` with no delete
   * running in this process). Called by the sweeper.
   */
  async resumeDeletes(): Promise<void> {
    if (this.closed || this.failure !== undefined) return;
    for (const { key, value } of this.db.topics.getRange({})) {
      if (!value.deleting || this.deletesRunning.has(stateKey(key[0], key[1]))) continue;
      const state = this.loadState({ tenant: key[0], topic: key[1] }, false);
      if (state !== undefined) await this.removeHistory(state);
    }
  }

  /** Removes a topic's events, idempotency keys and record, in bounded chunks. */
  private async removeHistory(state: TopicState): Promise<void> {
    const { tenant, topic } = state;
    const name = stateKey(tenant, topic);
    if (this.deletesRunning.has(name)) return;
    this.deletesRunning.add(name);
    try {
      // Bounded chunks, so a huge topic never holds the writer (and publishes) for long.
      for (;;) {
        let last: WritePromise | undefined;
        for (const k of this.db.events.getKeys({ start: [tenant, topic, 0], end: [tenant, topic, MAX_SEQ], limit: DELETE_CHUNK })) {
          last = this.db.events.remove(k);
        }
        // No upper bound on the key: an idempotency key may sort after any fixed string.
        let n = 0;
        for (const { key: k, value } of this.db.dedup.getRange({ start: [tenant, topic, ""] })) {
          if (k[0] !== tenant || k[1] !== topic || n++ >= DELETE_CHUNK) break;
          last = this.db.dedup.remove(k);
          void this.db.dedupExpiry.remove([value.expiresAt, ...k]);
        }
        if (last === undefined) break;
        await this.track(state, last);
      }
      await this.track(state, this.db.topics.remove([tenant, topic]));
      this.states.delete(name);
    } finally {
      this.deletesRunning.delete(name);
    }
  }

  onAppend(ref: TopicRef, listener: AppendListener): () => void {
    return this.listeners.add(stateKey(ref.tenant, ref.topic), listener);
  }

  /**
   * Removes events from the head of a topic while `policy` says so, at most `limit` in one
   * transaction. Only durable events are considered. Returns how many were removed.
   */
  async reclaimHead(tenant: string, topic: string, policy: ReclaimPolicy, limit: number): Promise<number> {
    if (this.closed || this.failure !== undefined) return 0;
    const state = this.loadState({ tenant, topic }, false);
    if (state === undefined || state.record.deleting) return 0;
    const record = state.record;
    const now = this.now();
    let seq = record.firstSeq;
    let events = record.events;
    let bytes = record.bytes;
    while (seq - record.firstSeq < limit && seq <= state.durableSeq) {
      const buf = this.db.events.get([tenant, topic, seq]);
      if (buf !== undefined) {
        if (!policy(record.retention, events, bytes, buf, now)) break;
        void this.db.events.remove([tenant, topic, seq]);
        events -= 1;
        bytes -= buf.length;
      }
      seq += 1;
    }
    const removed = seq - record.firstSeq;
    if (removed === 0) return 0;
    record.firstSeq = seq;
    record.events = events;
    record.bytes = bytes;
    state.dirty = false;
    await this.track(state, this.db.topics.put([tenant, topic], { ...record }));
    return removed;
  }

  /** Removes idempotency keys whose window has passed, at most `limit`. */
  async reclaimKeys(limit: number): Promise<number> {
    if (this.closed || this.failure !== undefined) return 0;
    let n = 0;
    let last: WritePromise | undefined;
    for (const key of this.db.dedupExpiry.getKeys({ end: [this.now(), "", "", ""], limit })) {
      const [expiresAt, tenant, topic, idem] = key;
      if (this.db.dedup.get([tenant, topic, idem])?.expiresAt === expiresAt) void this.db.dedup.remove([tenant, topic, idem]);
      last = this.db.dedupExpiry.remove(key);
      n++;
    }
    if (last !== undefined) await this.durable(last);
    return n;
  }

  /** Writes the records of topics whose position moved since their record was last written. */
  async flushPositions(): Promise<void> {
    // After a failed write, a position may be ahead of what is stored: writing it would leave a
    // hole after restart. Positions are recounted from the events on the next start instead.
    if (this.failure !== undefined) return;
    let last: WritePromise | undefined;
    for (const state of this.states.values()) {
      if (!state.dirty || state.record.deleting) continue;
      last = this.db.topics.put([state.tenant, state.topic], { ...state.record });
      state.dirty = false;
    }
    if (last !== undefined) await this.durable(last);
  }

  /** Forgets positions of topics not used since `before` (they reload from disk on demand). */
  evictIdle(before: number): void {
    for (const [key, state] of this.states) {
      if (state.inflight === 0 && !state.dirty && !state.record.deleting && state.touchedAt < before) this.states.delete(key);
    }
  }

  /** Topics whose position is held in memory. */
  get cachedTopics(): number {
    return this.states.size;
  }

  /** Stops accepting writes; the engine closes the store after in-flight appends settle. */
  stopWrites(): void {
    this.closed = true;
  }

  /** False after a failed write: the log refuses writes until the process restarts. */
  get healthy(): boolean {
    return this.failure === undefined;
  }

  /** Events accepted but not yet durable. */
  get pending(): number {
    return this.pendingEvents;
  }

  /** Waits until every write issued so far is durable (or failed). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.states.values()].map((s) => s.lastWrite));
  }

  /**
   * Bounded write queue: OVERLOADED when the node's pending events or bytes would pass their
   * budget, or when this tenant would hold more than half of either, so one hot tenant can
   * slow only itself.
   */
  private assertBudget(tenant: string, events: number, bytes: number): void {
    const [tenantEvents, tenantBytes] = this.pendingByTenant.get(tenant) ?? [0, 0];
    const { maxPendingEvents, maxPendingBytes } = this.options;
    if (
      this.pendingEvents + events > maxPendingEvents ||
      this.pendingBytes + bytes > maxPendingBytes ||
      tenantEvents + events > maxPendingEvents / 2 ||
      tenantBytes + bytes > maxPendingBytes / 2
    ) {
      throw new BatonError("OVERLOADED", "too many writes waiting for the disk; retry shortly", { retryAfterMs: 100 });
    }
  }

  private charge(tenant: string, events: number, bytes: number): void {
    this.pendingEvents += events;
    this.pendingBytes += bytes;
    const t = this.pendingByTenant.get(tenant) ?? [0, 0];
    t[0] += events;
    t[1] += bytes;
    if (t[0] === 0) this.pendingByTenant.delete(tenant);
    else this.pendingByTenant.set(tenant, t);
  }

  private assertWritable(): void {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down", { retryAfterMs: 1000 });
    if (this.failure !== undefined) throw new BatonError("UNAVAILABLE", "a storage write failed; this node accepts no writes until it is restarted", { cause: this.failure });
  }

  /** Resolves when `write`'s transaction is flushed; a failure stops all further writes. */
  private durable(write: WritePromise): Promise<void> {
    return (async () => {
      try {
        await write;
        await write.flushed;
      } catch (err) {
        if (this.failure === undefined) {
          this.failure = err;
          this.options.onFailure?.(err);
        }
        throw new BatonError("INTERNAL", "the storage write failed", { cause: err });
      }
    })();
  }

  private track(state: TopicState, write: WritePromise): Promise<void> {
    const durable = this.durable(write);
    state.inflight += 1;
    state.lastWrite = durable.then(
      () => undefined,
      () => undefined,
    );
    void state.lastWrite.then(() => (state.inflight -= 1));
    return durable;
  }

  private findKey(state: TopicState, idem: string, now: number, batch: readonly [string, Appended][]): { appended: Appended; durable?: Promise<void> } | undefined {
    for (const [k, appended] of batch) if (k === idem) return { appended };
    const pending = this.pendingKeys.get(pendingKeyName(state.tenant, state.topic, idem));
    if (pending !== undefined) return pending;
    const seen = this.db.dedup.get([state.tenant, state.topic, idem]);
    if (seen !== undefined && seen.expiresAt > now) return { appended: { id: seen.id, seq: seen.seq, duplicate: false } };
    return undefined;
  }

  private loadState(ref: TopicRef, touch: boolean): TopicState | undefined {
    const key = stateKey(ref.tenant, ref.topic);
    let state = this.states.get(key);
    if (state === undefined) {
      const stored = this.db.topics.get([ref.tenant, ref.topic]);
      if (stored === undefined) return undefined;
      const record = { ...stored };
      // Events after the record's lastSeq were written after its last flush: count them in.
      let dirty = false;
      for (const { key: k, value } of this.db.events.getRange({ start: [ref.tenant, ref.topic, record.lastSeq + 1], end: [ref.tenant, ref.topic, MAX_SEQ] })) {
        record.lastSeq = k[2];
        record.events += 1;
        record.bytes += value.length;
        record.lastTime = Math.max(record.lastTime, decodeEventTime(value).time);
        dirty = true;
      }
      state = { tenant: ref.tenant, topic: ref.topic, record, durableSeq: record.lastSeq, inflight: 0, lastWrite: Promise.resolve(), touchedAt: 0, persisted: true, dirty };
      this.states.set(key, state);
    }
    if (touch) state.touchedAt = this.now();
    return state;
  }

  private liveState(ref: TopicRef): TopicState {
    const state = this.loadState(ref, true);
    if (state === undefined || state.record.deleting) throw new BatonError("TOPIC_NOT_FOUND", `topic ${ref.topic} does not exist`);
    return state;
  }

  private writableState(ref: TopicRef, autoCreate: boolean, now: number): TopicState {
    const state = this.loadState(ref, true);
    if (state?.record.deleting) throw new BatonError("UNAVAILABLE", `topic ${ref.topic} is being deleted; retry shortly`, { retryAfterMs: 500 });
    if (state !== undefined) return state;
    if (!autoCreate) throw new BatonError("TOPIC_NOT_FOUND", `topic ${ref.topic} does not exist`);
    return this.newState(ref, this.options.defaultRetention, now);
  }

  private newState(ref: TopicRef, retention: Retention, now: number): TopicState {
    const state: TopicState = {
      tenant: ref.tenant,
      topic: ref.topic,
      record: { epoch: newEpoch(), firstSeq: 1, lastSeq: 0, events: 0, bytes: 0, createdAt: now, lastTime: 0, retention },
      durableSeq: 0,
      inflight: 0,
      lastWrite: Promise.resolve(),
      touchedAt: now,
      persisted: false,
      dirty: false,
    };
    this.states.set(stateKey(ref.tenant, ref.topic), state);
    return state;
  }

  private info(state: TopicState): TopicInfo {
    return topicInfo(state.tenant, state.topic, state.record, state.durableSeq);
  }

  private notify(ref: TopicRef, events: readonly StoredEvent[], epoch: string): void {
    this.listeners.emit(stateKey(ref.tenant, ref.topic), events, epoch);
  }
}

function stateKey(tenant: string, topic: string): string {
  return `${tenant}\u0000${topic}`;
}

function pendingKeyName(tenant: string, topic: string, idem: string): string {
  return `${tenant}\u0000${topic}\u0000${idem}`;
}
