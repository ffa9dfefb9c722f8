/**
 * @module engine/nats/nats-event-log
 * The durable log on JetStream, shared by any number of stateless nodes.
 *
 * One stream per tenant; a topic is a subject of it. Each append is one message holding the
 * whole batch (all or nothing), whose headers carry the topic sequence of its first event
 * (see codec.ts). The sequence is assigned here and made safe by JetStream's conditional
 * publish: `Nats-Expected-Last-Subject-Sequence` = the stream sequence of the topic's last
 * message as this node knows it. If another node appended in between, the publish is refused;
 * this node then reads the messages it missed (learning their idempotency keys too), and
 * retries. So sequences stay gap-free and unique with no node owning a topic, and a refused
 * publish stores nothing.
 *
 * Per topic, a node publishes one message at a time and coalesces the appends that queue up
 * meanwhile into the next message (group commit), so a hot topic costs one round trip per
 * group, not per append. An append resolves once JetStream acked its message (see
 * docs/scaling.md for what an ack means on a single 2.9 server vs. R3).
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { BatonError } from "../../errors/baton-error.ts";
import type { Appended, NewEvent, ReadPage, Retention, StoredEvent, TopicInfo, TopicRef } from "../../streams/event.ts";
import { newEpoch, newEventId } from "../../streams/ids.ts";
import type { AppendListener, AppendOptions, EventLog, ListTopicsOptions } from "../engine.ts";
import { AppendFanout } from "./append-fanout.ts";
import { decodeBatch, encodeBatch, headHeaders, type BatchEvent, type BatchHead } from "./codec.ts";
import { DedupIndex, type KeyScope } from "./dedup-index.ts";
import { MessageIndex } from "./message-index.ts";
import { RECENT_EVENTS, RecentEvents } from "../recent-events.ts";
import type { NatsNames } from "./names.ts";
import { SubjectReader, isStreamNotFound, type TopicMessage } from "./subject-reader.ts";
import type { TenantStreams } from "./tenant-streams.ts";
import type { StoredTopicRecord, TopicRecord, TopicRecords } from "./topic-records.ts";
import type { NatsConnection } from "@nats-io/transport-node";

export interface NatsLogOptions {
  readonly dedupWindowMs: number;
  readonly defaultRetention: Retention;
  /** Events queued on this node and not yet acked before appends are refused OVERLOADED. */
  readonly maxPendingEvents: number;
  /** Largest message body; a batch that encodes larger is refused PAYLOAD_TOO_LARGE. */
  readonly maxPayload: number;
  /** A topic's cached record is re-read after this long, ms (bounds how long a delete elsewhere goes unseen). */
  readonly recordCacheMs: number;
  readonly now: () => number;
}

/** What an earlier retention visit of the same record revision learnt (see sweepTopic). */
export interface SweepHint {
  /** No visible event is older than this, nor is any appended later (ms); undefined = unknown. */
  readonly oldest?: number;
  /** The topic's first stored message is at or after this stream sequence (1 = unknown). */
  readonly firstStreamSeq: number;
}

/** The result of a retention visit: what was reclaimed and what the next visit may skip. */
export interface SweepOutcome extends SweepHint {
  readonly reclaimed: number;
  /** Messages were purged (the subject's message count changed). */
  readonly purged: boolean;
  /** The record's revision after the visit (its trim, or the one visited). */
  readonly revision: number;
  readonly oldest: number;
}

interface Position {
  /** Stream sequence of the subject's last message (of any epoch); 0 if none. */
  streamSeq: number;
  seq: number;
  time: number;
  bytes: number;
}

interface QueuedAppend {
  readonly events: readonly NewEvent[];
  readonly resolve: (results: Appended[]) => void;
  readonly reject: (err: unknown) => void;
}

interface TopicState {
  readonly ref: TopicRef;
  readonly stream: string;
  readonly subject: string;
  record: TopicRecord;
  recordAt: number;
  last: Position;
  readonly index: MessageIndex;
  /** Idempotency keys this node has seen stored in the current epoch (bounded). */
  readonly keys: Map<string, { appended: Appended; exp: number }>;
  readonly queue: QueuedAppend[];
  running: boolean;
}

const MAX_ROUND_EVENTS = 1000;
const MAX_ATTEMPTS = 100;
const INDEX_ENTRIES = 4096;
const KEYS_PER_TOPIC = 10_000;
const MAX_CACHED_TOPICS = 10_000;

export class NatsEventLog implements EventLog {
  private readonly states = new Map<string, TopicState>();
  /** Events this node decoded from reads, for readers of the same recent range (see RecentEvents). */
  private readonly recent = new RecentEvents(RECENT_EVENTS);
  private readonly fanout: AppendFanout;
  private readonly reader: SubjectReader;
  private pendingEvents = 0;

  /** Events accepted on this node and not yet acknowledged by JetStream (bounded). */
  get pending(): number {
    return this.pendingEvents;
  }
  private readonly inflight = new Set<Promise<unknown>>();
  /** Per topic with an append still finding its state: the last such append's admission. */
  private readonly admitting = new Map<string, Promise<void>>();
  private closed = false;
  private readonly js: JetStreamClient;
  private readonly streams: TenantStreams;
  private readonly records: TopicRecords;
  private readonly dedup: DedupIndex;
  private readonly names: NatsNames;
  private readonly options: NatsLogOptions;

  constructor(
    parts: { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; directJsm?: JetStreamManager; streams: TenantStreams; records: TopicRecords; dedup: DedupIndex; names: NatsNames },
    options: NatsLogOptions,
  ) {
    this.js = parts.js;
    this.streams = parts.streams;
    this.records = parts.records;
    this.dedup = parts.dedup;
    this.names = parts.names;
    this.options = options;
    this.reader = new SubjectReader(parts.directJsm ?? parts.jsm);
    this.fanout = new AppendFanout(parts.nc, parts.names, async (ref, from, limit) => {
      const page = await this.read(ref, from, limit);
      return { events: page.events, epoch: page.epoch };
    });
  }

  // ---- append ------------------------------------------------------------------------------

  async append(ref: TopicRef, events: readonly NewEvent[], options: AppendOptions): Promise<Appended[]> {
    this.assertWritable();
    if (events.length === 0) return [];
    if (this.pendingEvents + events.length > this.options.maxPendingEvents) {
      throw new BatonError("OVERLOADED", "too many appends waiting for JetStream; retry shortly", { retryAfterMs: 100 });
    }
    this.pendingEvents += events.length;
    const done = this.enqueue(ref, { events, autoCreate: options.autoCreate });
    this.inflight.add(done);
    try {
      return await done;
    } finally {
      this.inflight.delete(done);
      this.pendingEvents -= events.length;
    }
  }

  /**
   * Puts an append in its topic's queue in call order, so appends issued one after another take
   * sequences in that order (what keeps one socket's publishes in order). Finding the topic's
   * state may take round trips (a cold topic, a stale record); while one append waits for that,
   * later appends to the topic wait behind it instead of overtaking it through the cache.
   */
  private enqueue(ref: TopicRef, append: { events: readonly NewEvent[]; autoCreate: boolean }): Promise<Appended[]> {
    return new Promise<Appended[]>((resolve, reject) => {
      const key = stateKey(ref);
      const queued: QueuedAppend = { events: append.events, resolve, reject };
      const ahead = this.admitting.get(key);
      const cached = ahead === undefined ? this.freshState(key) : undefined;
      if (cached !== undefined) {
        this.push(cached, queued);
        return;
      }
      const admitted = (ahead ?? Promise.resolve())
        .then(() => this.writableState(ref, append.autoCreate))
        .then((state) => this.push(state, queued), reject);
      this.admitting.set(key, admitted);
      void admitted.then(() => {
        if (this.admitting.get(key) === admitted) this.admitting.delete(key);
      });
    });
  }

  private push(state: TopicState, append: QueuedAppend): void {
    state.queue.push(append);
    if (!state.running) {
      state.running = true;
      // Next turn, so appends issued together share one message.
      setImmediate(() => void this.drain(state));
    }
  }

  private async drain(state: TopicState): Promise<void> {
    let single = false;
    while (state.queue.length > 0) {
      let n = 0;
      let take = 0;
      while (take < state.queue.length && (take === 0 || (!single && n + state.queue[take]!.events.length <= MAX_ROUND_EVENTS))) n += state.queue[take++]!.events.length;
      single = false;
      const round = state.queue.splice(0, take);
      try {
        const results = await this.commitRound(state, round);
        round.forEach((a, i) => a.resolve(results[i]!));
      } catch (err) {
        if (err instanceof RoundTooLarge && round.length > 1) {
          // Too big together: the first append alone next, the rest back at the head of the queue.
          state.queue.unshift(...round);
          single = true;
          continue;
        }
        const e = err instanceof RoundTooLarge ? new BatonError("PAYLOAD_TOO_LARGE", `the batch encodes to more than ${this.options.maxPayload} bytes`) : err;
        for (const a of round) a.reject(e);
      }
    }
    state.running = false;
  }

  /** Stores one group of appends as one message; returns each append's results. */
  private async commitRound(state: TopicState, round: QueuedAppend[]): Promise<Appended[][]> {
    const scope = (): KeyScope => ({ tenant: state.ref.tenant, topic: state.ref.topic, epoch: state.record.epoch });
    let reservations = new Map<string, number>();
    const releaseAll = async (): Promise<void> => {
      const s = scope();
      await Promise.all([...reservations].map(([idem, r]) => this.dedup.release(s, idem, r)));
      reservations = new Map();
    };
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        this.assertWritable();
        const now = this.options.now();
        const epoch = state.record.epoch;
        // 1. Idempotency keys this node cannot answer from memory: reserve or find them (KV).
        const earlier = new Map<string, Appended>();
        const unknown = new Set<string>();
        for (const a of round) {
          for (const e of a.events) {
            const idem = e.idempotencyKey;
            if (idem === undefined) continue;
            const seen = state.keys.get(idem);
            if (seen !== undefined && seen.exp > now) earlier.set(idem, seen.appended);
            else if (!reservations.has(idem)) unknown.add(idem);
          }
        }
        const after = state.last.streamSeq;
        await Promise.all(
          [...unknown].map(async (idem) => {
            const claim = await this.dedup.claim(scope(), idem, after, now, (k, from) => this.findKey(state, epoch, k, from));
            if ("reservation" in claim) reservations.set(idem, claim.reservation);
            else earlier.set(idem, claim.duplicate);
          }),
        );
        if (state.record.epoch !== epoch) {
          await releaseAll();
          continue;
        }
        // 2. Sequences, ids and the message body.
        const time = Math.max(now, state.last.time);
        let seq = state.last.seq;
        const firstSeq = seq + 1;
        const inRound = new Map<string, Appended>();
        const stored: BatchEvent[] = [];
        const results: Appended[][] = round.map((a) =>
          a.events.map((e): Appended => {
            const idem = e.idempotencyKey;
            if (idem !== undefined) {
              const prior = inRound.get(idem) ?? earlier.get(idem);
              if (prior !== undefined) return { id: prior.id, seq: prior.seq, duplicate: true };
            }
            seq += 1;
            const event = toStored(e, newEventId(time), time);
            stored.push({ event, idem });
            const appended: Appended = { id: event.id, seq, duplicate: false };
            if (idem !== undefined) inRound.set(idem, appended);
            return appended;
          }),
        );
        // Reservations for keys that turned out to be duplicates after a catch-up go back.
        for (const [idem, r] of reservations) {
          if (!inRound.has(idem)) {
            void this.dedup.release(scope(), idem, r);
            reservations.delete(idem);
          }
        }
        if (stored.length === 0) return results;
        const body = encodeBatch(stored);
        if (body.length > this.options.maxPayload) throw new RoundTooLarge();
        const head: BatchHead = { epoch, seq: firstSeq, count: stored.length, time, bytes: state.last.bytes + body.length };
        // 3. The conditional publish.
        const streamSeq = await this.publish(state, head, body);
        if (streamSeq === undefined) {
          await this.catchUp(state);
          continue;
        }
        // 4. Acked: advance, remember keys, tell listeners.
        state.last = { streamSeq, seq, time, bytes: head.bytes };
        state.index.add(firstSeq, stored.length, streamSeq);
        const exp = now + this.options.dedupWindowMs;
        const s = scope();
        await Promise.all(
          [...inRound].map(([idem, appended]) => {
            this.rememberKey(state, idem, appended, exp);
            const r = reservations.get(idem);
            return r === undefined ? undefined : this.dedup.commit(s, idem, r, appended, exp);
          }),
        );
        reservations = new Map();
        const events = stored.map(({ event }, i) => ({ ...event, tenant: state.ref.tenant, topic: state.ref.topic, seq: firstSeq + i }));
        this.fanout.published(state.ref, head, streamSeq, body, events);
        return results;
      }
      throw new BatonError("UNAVAILABLE", "too many concurrent appends to this topic from other nodes; retry shortly", { retryAfterMs: 200 });
    } catch (err) {
      await releaseAll();
      throw err;
    }
  }

  /** Publishes conditionally on the subject's last stream sequence; undefined if that moved. */
  private async publish(state: TopicState, head: BatchHead, body: Uint8Array): Promise<number | undefined> {
    await this.streams.ensure(state.ref.tenant);
    const msgID = `${head.epoch}:${head.seq}:${state.last.streamSeq}:${newEventId(head.time)}`;
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await this.js.publish(state.subject, body, {
          headers: headHeaders(head),
          expect: { lastSubjectSequence: state.last.streamSeq },
          // A retry after a lost ack is answered with the first ack instead of a second copy.
          msgID,
          timeout: 5000,
        });
        return ack.seq;
      } catch (err) {
        if (isWrongLastSequence(err)) return undefined;
        if (attempt < 2 && isTimeout(err)) continue;
        if (isStreamNotFound(err)) {
          this.streams.forget(state.ref.tenant);
          if (attempt < 2) {
            await this.streams.ensure(state.ref.tenant);
            continue;
          }
        }
        throw new BatonError("UNAVAILABLE", "JetStream did not acknowledge the append", { cause: err, retryAfterMs: 1000 });
      }
    }
  }

  /** After a refused publish: read the messages this node missed, then retry on top of them. */
  private async catchUp(state: TopicState): Promise<void> {
    const stored = await this.records.get(state.ref.tenant, state.ref.topic);
    if (stored === undefined || stored.record.deleting === true || stored.record.epoch !== state.record.epoch) {
      // Deleted (and maybe recreated) elsewhere: this history is gone.
      this.states.delete(stateKey(state.ref));
      throw new BatonError("UNAVAILABLE", `topic ${state.ref.topic} was deleted or recreated meanwhile; retry`, { retryAfterMs: 100 });
    }
    state.record = stored.record;
    state.recordAt = Date.now();
    let from = state.last.streamSeq + 1;
    for (;;) {
      const m = await this.reader.next(state.stream, state.subject, from);
      if (m === undefined) break;
      this.learn(state, m);
      from = m.streamSeq + 1;
    }
  }

  /** Takes in a message of the topic seen in the stream: position, index, keys. */
  private learn(state: TopicState, m: TopicMessage): void {
    if (m.streamSeq > state.last.streamSeq) {
      state.last.streamSeq = m.streamSeq;
      if (m.head.epoch === state.record.epoch) {
        state.last.seq = m.head.seq + m.head.count - 1;
        state.last.time = m.head.time;
        state.last.bytes = m.head.bytes;
      }
    }
    if (m.head.epoch !== state.record.epoch) return;
    state.index.add(m.head.seq, m.head.count, m.streamSeq);
    const exp = this.options.now() + this.options.dedupWindowMs;
    for (const { event, idem } of decodeBatch(state.ref.tenant, state.ref.topic, m.head, m.body)) {
      if (idem !== undefined) this.rememberKey(state, idem, { id: event.id, seq: event.seq, duplicate: false }, Math.min(exp, m.head.time + this.options.dedupWindowMs));
    }
  }

  /** Scans the topic after `afterStreamSeq` for an event with idempotency key `idem`. */
  private async findKey(state: TopicState, epoch: string, idem: string, afterStreamSeq: number): Promise<Appended | undefined> {
    let from = afterStreamSeq + 1;
    for (;;) {
      const m = await this.reader.next(state.stream, state.subject, from);
      if (m === undefined) return undefined;
      from = m.streamSeq + 1;
      if (m.head.epoch !== epoch) continue;
      for (const { event, idem: k } of decodeBatch(state.ref.tenant, state.ref.topic, m.head, m.body)) {
        if (k === idem) return { id: event.id, seq: event.seq, duplicate: true };
      }
    }
  }

  private rememberKey(state: TopicState, idem: string, appended: Appended, exp: number): void {
    state.keys.delete(idem);
    state.keys.set(idem, { appended: { id: appended.id, seq: appended.seq, duplicate: false }, exp });
    if (state.keys.size > KEYS_PER_TOPIC) state.keys.delete(state.keys.keys().next().value!);
  }

  // ---- reads -------------------------------------------------------------------------------

  async read(ref: TopicRef, fromSeq: number, limit: number): Promise<ReadPage> {
    const state = await this.liveState(ref);
    const epoch = state.record.epoch;
    const start = Math.max(fromSeq, state.record.firstSeq, 1);
    const now = this.options.now();
    const events: StoredEvent[] = [];
    let next = start;
    let scanned = 0;
    // Events this node already decoded are served without a round trip to NATS (about 100 µs
    // per event otherwise): a storm of sockets recovering the same range reads it once.
    const recent = this.recent.topic(epoch, ref.tenant, ref.topic);
    for (let e = recent?.get(next); e !== undefined && scanned < limit; e = recent?.get(next)) {
      scanned += 1;
      next = e.seq + 1;
      if (e.expiresAt === undefined || e.expiresAt > now) events.push(e);
    }
    if (scanned >= limit) return this.page(state, events, next);
    const take = (m: TopicMessage): boolean => {
      if (m.head.epoch !== epoch) return true;
      this.learn(state, m);
      const end = m.head.seq + m.head.count - 1;
      if (end < next) return true;
      for (const { event } of decodeBatch(ref.tenant, ref.topic, m.head, m.body)) {
        if (event.seq < next) continue;
        this.recent.add(epoch, event);
        if (scanned >= limit) return false;
        scanned += 1;
        next = event.seq + 1;
        if (event.expiresAt !== undefined && event.expiresAt <= now) continue;
        events.push(event);
      }
      return scanned < limit;
    };
    if (limit > 0) {
      let cursor = 0;
      // Known messages: fetched in parallel.
      const known = state.index.run(next, limit - scanned);
      if (known.length > 0) {
        const msgs = await Promise.all(known.map((s) => this.reader.at(state.stream, state.subject, s)));
        let more = true;
        for (const m of msgs) {
          if (m === undefined) break;
          cursor = m.streamSeq + 1;
          if (!(more = take(m))) break;
        }
        if (!more) return this.page(state, events, next);
      } else if (next <= state.last.seq) {
        const from = next;
        const first = await this.reader.search(state.stream, state.subject, state.last.streamSeq, (m) => m.head.epoch === epoch && m.head.seq + m.head.count - 1 >= from);
        cursor = first?.streamSeq ?? state.last.streamSeq + 1;
      } else {
        cursor = state.last.streamSeq + 1;
      }
      // Then one message after the other, also past what this node knew of (other nodes' appends).
      for (;;) {
        const m = await this.reader.next(state.stream, state.subject, cursor);
        if (m === undefined) break;
        cursor = m.streamSeq + 1;
        if (!take(m)) break;
      }
    }
    return this.page(state, events, next);
  }

  private page(state: TopicState, events: StoredEvent[], next: number): ReadPage {
    return { events, next, firstSeq: this.firstSeq(state), lastSeq: state.last.seq, epoch: state.record.epoch };
  }

  async seqAtTime(ref: TopicRef, time: number): Promise<number> {
    const state = await this.liveState(ref);
    await this.refreshPosition(state);
    const epoch = state.record.epoch;
    const m = await this.reader.search(state.stream, state.subject, state.last.streamSeq, (x) => x.head.epoch === epoch && x.head.time >= time);
    if (m === undefined) return state.last.seq + 1;
    return Math.max(m.head.seq, this.firstSeq(state));
  }

  // ---- topics ------------------------------------------------------------------------------

  async createTopic(ref: TopicRef, retention: Retention): Promise<TopicInfo> {
    this.assertWritable();
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await this.records.get(ref.tenant, ref.topic);
      if (existing !== undefined) {
        if (existing.record.deleting !== true) throw new BatonError("TOPIC_EXISTS", `topic ${ref.topic} already exists`);
        await this.finishDelete(ref, existing.revision);
        continue;
      }
      const record: TopicRecord = { epoch: newEpoch(), createdAt: this.options.now(), retention, firstSeq: 1, bytesBefore: 0 };
      if ((await this.records.create(ref.tenant, ref.topic, record)) === undefined) continue;
      await this.streams.ensure(ref.tenant);
      const state = await this.loadState(ref, record);
      return this.info(state);
    }
    throw new BatonError("UNAVAILABLE", `topic ${ref.topic} is changing concurrently; retry`, { retryAfterMs: 200 });
  }

  async describeTopic(ref: TopicRef): Promise<TopicInfo | undefined> {
    const stored = await this.records.get(ref.tenant, ref.topic);
    if (stored === undefined || stored.record.deleting === true) {
      this.states.delete(stateKey(ref));
      return undefined;
    }
    const state = await this.stateFor(ref, stored.record);
    await this.refreshPosition(state);
    return this.info(state);
  }

  async listTopics(tenant: string, options: ListTopicsOptions): Promise<TopicInfo[]> {
    const prefix = options.prefix ?? "";
    const names = (await this.records.names(tenant))
      .filter((n) => n.startsWith(prefix) && (options.after === undefined || n > options.after))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: TopicInfo[] = [];
    for (let i = 0; i < names.length && out.length < options.limit; i += options.limit) {
      const infos = await Promise.all(names.slice(i, i + options.limit).map((topic) => this.describeTopic({ tenant, topic })));
      for (const info of infos) if (info !== undefined && out.length < options.limit) out.push(info);
    }
    return out;
  }

  async deleteTopic(ref: TopicRef): Promise<boolean> {
    this.assertWritable();
    const stored = await this.records.get(ref.tenant, ref.topic);
    if (stored === undefined || stored.record.deleting === true) return false;
    const revision = await this.records.update(ref.tenant, ref.topic, { ...stored.record, deleting: true }, stored.revision);
    if (revision === undefined) return this.deleteTopic(ref);
    await this.finishDelete(ref, revision);
    return true;
  }

  /** Purges a topic marked deleting, then removes its record (a crash in between is finished by the next create). */
  private async finishDelete(ref: TopicRef, revision: number): Promise<void> {
    this.states.delete(stateKey(ref));
    try {
      await this.streams.purgeSubject(ref.tenant, this.names.topicSubject(ref.tenant, ref.topic));
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    await this.records.remove(ref.tenant, ref.topic, revision);
    this.states.delete(stateKey(ref));
  }

  onAppend(ref: TopicRef, listener: AppendListener): () => void {
    return this.fanout.add(ref, listener);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  stopWrites(): void {
    this.closed = true;
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    this.fanout.close();
  }

  // ---- retention (see RetentionSweeper) ----------------------------------------------------

  /**
   * Visits one topic for its retention (age, count, bytes) and reclaims its head if a limit is
   * passed. The record's `firstSeq` moves first (compare-and-set on `stored.revision`, so a
   * concurrent delete or trim wins cleanly and this visit does nothing), then the subject's
   * messages wholly below it are purged. The subject's last message is never purged: it carries
   * the topic's position, which must survive a topic whose every event aged out.
   *
   * What it costs: one direct get (the last message) for a topic with a count or byte limit, one
   * (the first stored message) when an age limit may have passed, and the last message and the
   * binary search for the trim point only when something is to be reclaimed. `hint` is what an earlier visit of the
   * same record revision returned. Resolves undefined when the record changed meanwhile or the
   * log is closing.
   */
  async sweepTopic(ref: TopicRef, stored: StoredTopicRecord, hint: SweepHint): Promise<SweepOutcome | undefined> {
    const { record, revision } = stored;
    if (this.closed || record.deleting === true) return undefined;
    const { maxAgeMs, maxEvents, maxBytes } = record.retention;
    const stream = this.names.tenantStream(ref.tenant);
    const subject = this.names.topicSubject(ref.tenant, ref.topic);
    const epoch = record.epoch;
    const now = this.options.now();
    // Nothing of this epoch stored: anything to come is appended from now on.
    const empty = (m: TopicMessage | undefined): SweepOutcome => ({ reclaimed: 0, purged: false, revision, oldest: now, firstStreamSeq: m === undefined ? hint.firstStreamSeq : m.streamSeq + 1 });
    let last: TopicMessage | undefined;
    let sizeOver = false;
    if (maxEvents > 0 || maxBytes > 0) {
      last = await this.reader.last(stream, subject);
      if (last === undefined || last.head.epoch !== epoch) return empty(last);
      const lastSeq = last.head.seq + last.head.count - 1;
      sizeOver = (maxEvents > 0 && lastSeq - Math.max(record.firstSeq, 1) + 1 > maxEvents) || (maxBytes > 0 && last.head.bytes - record.bytesBefore > maxBytes);
    }
    let first: TopicMessage | undefined;
    let oldest = hint.oldest;
    let ageOver = false;
    if (maxAgeMs > 0 && (oldest === undefined || oldest + maxAgeMs <= now)) {
      // The first stored message is the oldest: times never decrease along a topic.
      first = await this.reader.next(stream, subject, hint.firstStreamSeq);
      if (first === undefined) return empty(undefined);
      ageOver = first.head.epoch !== epoch || first.head.time + maxAgeMs <= now;
      oldest = first.head.epoch === epoch ? first.head.time : undefined;
    }
    const firstStored = first?.streamSeq ?? hint.firstStreamSeq;
    if (!sizeOver && !ageOver) return { reclaimed: 0, purged: false, revision, oldest: oldest ?? now, firstStreamSeq: firstStored };
    last ??= await this.reader.last(stream, subject);
    if (last === undefined || last.head.epoch !== epoch) return empty(last);
    const top = last;
    const lastSeq = top.head.seq + top.head.count - 1;
    // Each condition holds from some message on, so the first message meeting all is found by search.
    const keep = (m: TopicMessage): boolean =>
      m.head.epoch === epoch &&
      (maxEvents <= 0 || m.head.seq + m.head.count - 1 > lastSeq - maxEvents) &&
      (maxBytes <= 0 || top.head.bytes - (m.head.bytes - m.body.length) <= maxBytes) &&
      (maxAgeMs <= 0 || m.head.time + maxAgeMs > now);
    const kept = await this.reader.search(stream, subject, top.streamSeq, keep, firstStored);
    let firstSeq = kept === undefined ? lastSeq + 1 : kept.head.seq;
    if (maxEvents > 0) firstSeq = Math.max(firstSeq, lastSeq - maxEvents + 1);
    const bytesBefore = kept === undefined ? top.head.bytes : kept.head.bytes - kept.body.length;
    const purgeBelow = kept === undefined ? top.streamSeq : kept.streamSeq;
    // Events kept are no older than the message holding the first of them; events appended later are newer.
    const keptSince = kept === undefined ? now : kept.head.time;
    if (firstSeq <= record.firstSeq) {
      // Nothing more to hide. Messages wholly below the trim point can remain from a purge that failed.
      const leftovers = first !== undefined && first.streamSeq < purgeBelow;
      if (leftovers) await this.streams.purgeBefore(ref.tenant, subject, purgeBelow);
      return { reclaimed: 0, purged: leftovers, revision, oldest: keptSince, firstStreamSeq: purgeBelow };
    }
    const next: TopicRecord = { ...record, firstSeq, bytesBefore, keptSince };
    const written = await this.records.update(ref.tenant, ref.topic, next, revision);
    if (written === undefined) return undefined;
    // Reads on this node stop returning the events at once; other nodes within recordCacheMs.
    const cached = this.states.get(stateKey(ref));
    if (cached !== undefined && cached.record.epoch === epoch) {
      cached.record = next;
      cached.recordAt = Date.now();
    }
    await this.streams.purgeBefore(ref.tenant, subject, purgeBelow);
    return { reclaimed: firstSeq - record.firstSeq, purged: true, revision: written, oldest: keptSince, firstStreamSeq: purgeBelow };
  }

  /** Messages stored per topic subject of a tenant (see TenantStreams.subjectCounts). */
  subjectCounts(tenant: string): Promise<ReadonlyMap<string, number>> {
    return this.streams.subjectCounts(tenant);
  }

  // ---- topic state -------------------------------------------------------------------------

  private assertWritable(): void {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down", { retryAfterMs: 1000 });
  }

  /** The topic's cached state while its record is fresh enough to trust. */
  private freshState(key: string): TopicState | undefined {
    const cached = this.states.get(key);
    return cached !== undefined && Date.now() - cached.recordAt < this.options.recordCacheMs ? cached : undefined;
  }

  private async writableState(ref: TopicRef, autoCreate: boolean): Promise<TopicState> {
    const cached = this.freshState(stateKey(ref));
    if (cached !== undefined) return cached;
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.records.get(ref.tenant, ref.topic);
      if (stored !== undefined && stored.record.deleting !== true) return this.stateFor(ref, stored.record);
      if (stored !== undefined) {
        await this.finishDelete(ref, stored.revision);
        continue;
      }
      if (!autoCreate) throw new BatonError("TOPIC_NOT_FOUND", `topic ${ref.topic} does not exist`);
      const record: TopicRecord = { epoch: newEpoch(), createdAt: this.options.now(), retention: this.options.defaultRetention, firstSeq: 1, bytesBefore: 0 };
      if ((await this.records.create(ref.tenant, ref.topic, record)) !== undefined) {
        await this.streams.ensure(ref.tenant);
        return this.loadState(ref, record);
      }
    }
    throw new BatonError("UNAVAILABLE", `topic ${ref.topic} is changing concurrently; retry`, { retryAfterMs: 200 });
  }

  private async liveState(ref: TopicRef): Promise<TopicState> {
    const cached = this.states.get(stateKey(ref));
    if (cached !== undefined && Date.now() - cached.recordAt < this.options.recordCacheMs) return cached;
    const stored = await this.records.get(ref.tenant, ref.topic);
    if (stored === undefined || stored.record.deleting === true) {
      this.states.delete(stateKey(ref));
      throw new BatonError("TOPIC_NOT_FOUND", `topic ${ref.topic} does not exist`);
    }
    return this.stateFor(ref, stored.record);
  }

  /** The cached state if it is of this epoch (record refreshed), else a freshly loaded one. */
  private async stateFor(ref: TopicRef, record: TopicRecord): Promise<TopicState> {
    const cached = this.states.get(stateKey(ref));
    if (cached !== undefined && cached.record.epoch === record.epoch) {
      cached.record = record;
      cached.recordAt = Date.now();
      return cached;
    }
    return this.loadState(ref, record);
  }

  /** Position from the subject's last message. */
  private async loadState(ref: TopicRef, record: TopicRecord): Promise<TopicState> {
    const stream = this.names.tenantStream(ref.tenant);
    const subject = this.names.topicSubject(ref.tenant, ref.topic);
    const state: TopicState = {
      ref,
      stream,
      subject,
      record,
      recordAt: Date.now(),
      last: { streamSeq: 0, seq: 0, time: 0, bytes: 0 },
      index: new MessageIndex(INDEX_ENTRIES),
      keys: new Map(),
      queue: [],
      running: false,
    };
    await this.refreshPosition(state);
    const key = stateKey(ref);
    const raced = this.states.get(key);
    if (raced !== undefined && raced.record.epoch === record.epoch) return raced;
    this.states.set(key, state);
    if (this.states.size > MAX_CACHED_TOPICS) this.evictIdle();
    return state;
  }

  private async refreshPosition(state: TopicState): Promise<void> {
    const m = await this.reader.last(state.stream, state.subject);
    if (m !== undefined) this.learn(state, m);
  }

  private evictIdle(): void {
    for (const [key, s] of this.states) {
      if (this.states.size <= MAX_CACHED_TOPICS / 2) break;
      if (!s.running && s.queue.length === 0) this.states.delete(key);
    }
  }

  private firstSeq(state: TopicState): number {
    return Math.min(Math.max(state.record.firstSeq, 1), state.last.seq + 1);
  }

  private info(state: TopicState): TopicInfo {
    const firstSeq = this.firstSeq(state);
    return {
      tenant: state.ref.tenant,
      name: state.ref.topic,
      epoch: state.record.epoch,
      firstSeq,
      lastSeq: state.last.seq,
      events: state.last.seq - firstSeq + 1,
      bytes: Math.max(0, state.last.bytes - state.record.bytesBefore),
      createdAt: state.record.createdAt,
      retention: state.record.retention,
    };
  }
}

class RoundTooLarge extends Error {}

function toStored(e: NewEvent, id: string, time: number): Omit<StoredEvent, "tenant" | "topic" | "seq"> {
  return {
    id,
    data: e.data,
    time,
    ...(e.key === undefined ? {} : { key: e.key }),
    ...(e.type === undefined ? {} : { type: e.type }),
    ...(e.schemaVersion === undefined ? {} : { schemaVersion: e.schemaVersion }),
    ...(e.causalId === undefined ? {} : { causalId: e.causalId }),
    ...(e.headers === undefined ? {} : { headers: e.headers }),
    ...(e.ttlMs === undefined ? {} : { expiresAt: time + e.ttlMs }),
  };
}

function stateKey(ref: TopicRef): string {
  return `${ref.tenant}\u0000${ref.topic}`;
}

function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return e?.code === 10071 || (typeof e?.message === "string" && /wrong last sequence/i.test(e.message));
}

function isTimeout(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | undefined;
  return e?.name === "TimeoutError" || (typeof e?.message === "string" && /timeout/i.test(e.message));
}
