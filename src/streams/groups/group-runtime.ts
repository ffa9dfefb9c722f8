/**
 * @module streams/groups/group-runtime
 * One consumer group at work: reads its topics ahead into a bounded window, hands each event to
 * one member, and follows every delivery through ack, nack, terminate, lease expiry, retries
 * with jittered backoff and dead-lettering. Progress is written to the StateStore as it happens
 * (see group-state.ts), so a restart resumes exactly: nothing acked comes back, nothing unacked
 * is lost.
 *
 * Scheduling. Every event belongs to a lane: its origin topic plus its key (keyless events of a
 * topic share one lane). Ready events are served round-robin across lanes (FairQueue). A lane
 * of a group with `orderedByKey` has at most one event out (ready, in flight or waiting for its
 * retry), as SQS FIFO message groups; any other lane has at most LANE_READY events ready. Later
 * events of a full lane wait behind it (beyond a budget, as bare positions whose bodies are read
 * again in pages when their turn comes) while the reader keeps reading past them, up to
 * `maxPending` events: a hot or failing key never hides the ready keys behind it, and a hot
 * topic of a pattern group never starves the quiet ones.
 * Members declare `maxInFlight`; the runtime never exceeds it.
 *
 * One process runs a group (the embedded engine owns its data dir); all state changes happen
 * synchronously in the event loop, and the writes they imply are issued in the same turn.
 */
import { BatonError } from "../../errors/baton-error.ts";
import type { EventLog, StateStore } from "../../engine/engine.ts";
import type { NewEvent, StoredEvent } from "../event.ts";
import { matchesPattern } from "../names.ts";
import { newNonce } from "../ids.ts";
import { DeadlineHeap } from "./deadline-heap.ts";
import { FairQueue } from "./fair-queue.ts";
import { deadLetterTopic, isSystemTopic, redriveTopic, type GroupConfig } from "./group-config.ts";
import { entryJson, entryKey, loadGroupState, positionKey, type EntryRecord, type PositionRecord } from "./group-state.ts";
import { DLQ_HEADERS, floorOf, isPattern, keepFailures, originOf, parseToken, type Delivery, type Entry, type Lane, type Member, type MemberSink, type Source } from "./group-model.ts";
import { describeGroup, sampleGroup, type GroupCounters, type GroupSample, type GroupStatus, type GroupView } from "./group-status.ts";
import { backoffDelay, hasAttemptsLeft } from "./retry-policy.ts";
import type { GroupHandle } from "./group-handle.ts";

export interface GroupDeps {
  readonly log: EventLog;
  readonly state: StateStore;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Told about background failures (a write or read that failed); they are retried. */
  readonly onError?: (err: unknown, what: string) => void;
  /**
   * Re-read every caught-up topic this often, ms (off when absent). Wake-ups (`onAppend`) are
   * at most once; in one process none is lost, but across nodes one can be (a dropped notice),
   * and a group that trusted them alone would wait for the next append, forever if none comes.
   */
  readonly recheckMs?: number;
}


const READ_PAGE = 256;
/** A delivery not settled within this long is recorded in the StateStore. */
const RECORD_AFTER_MS = 250;
/** Reading pauses while this many events are ready (bounds the bodies held for dispatch). */
const READ_AHEAD = 4096;
/** Ready events of one unordered lane: a hot lane cannot fill the read-ahead window alone. */
const LANE_READY = 256;
/** Bodies kept for events waiting behind their lane; past it they are read again later. */
const WAITING_BODIES = 8192;
const DISCOVERY_INTERVAL_MS = 1000;
const LEASE_WINDOW_MS = 5 * 60_000;

export class GroupRuntime implements GroupHandle {
  readonly config: GroupConfig;
  private readonly deps: GroupDeps;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sources = new Map<string, Source>();
  private readonly ready = new FairQueue<Entry>();
  private readonly lanes = new Map<string, Lane>();
  private readonly delays = new DeadlineHeap<[Entry, number]>();
  private readonly leases = new DeadlineHeap<[Entry, number]>();
  /** Deliveries to record if still out by then. */
  private readonly records = new DeadlineHeap<[Entry, number]>();
  private readonly members = new Map<string, Member>();
  private memberOrder: Member[] = [];
  private memberCursor = 0;
  private pending = 0;
  private pumping = false;
  private pumpQueued = false;
  private waitingBodies = 0;
  private pumpAgain = false;
  /** Sources that stopped reading because the window was full, not because they caught up. */
  private readonly starved = new Set<Source>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private discovery: NodeJS.Timeout | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private redriveTokens: number;
  private redriveRefill: NodeJS.Timeout | undefined;
  private stopped = false;
  private initialPositions: Map<string, PositionRecord> = new Map();
  private restoredEntries: Map<string, Map<number, EntryRecord>> = new Map();
  readonly counters: GroupCounters = { delivered: 0, redelivered: 0, acked: 0, nacked: 0, terminated: 0, deadLettered: 0, expired: 0, leaseExpired: 0 };
  private readonly recentLeaseExpiries: number[] = [];

  constructor(config: GroupConfig, deps: GroupDeps) {
    this.config = config;
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.redriveTokens = config.redriveRatePerS;
  }

  /** Loads the group's progress and starts reading. */
  async start(): Promise<void> {
    const loaded = await loadGroupState(this.deps.state, this.config.tenant, this.config.name);
    this.initialPositions = loaded.positions;
    this.restoredEntries = loaded.entries;
    const topics = new Set(loaded.positions.keys());
    if (!isPattern(this.config.topic)) topics.add(this.config.topic);
    topics.add(redriveTopic(this.config.name));
    for (const topic of topics) this.addSource(topic, 1);
    if (isPattern(this.config.topic)) {
      await this.discover();
      this.scheduleDiscovery();
    }
    if (this.deps.recheckMs !== undefined && !this.stopped) {
      this.recheck = setInterval(() => {
        for (const source of this.sources.values()) {
          // A source waiting for room in the window is read again when room is made.
          if (source.reading || this.starved.has(source)) continue;
          source.caughtUp = false;
          void this.fill(source);
        }
      }, this.deps.recheckMs);
      this.recheck.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.sources.values()) s.unlisten();
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.discovery !== undefined) clearTimeout(this.discovery);
    if (this.recheck !== undefined) clearInterval(this.recheck);
    if (this.redriveRefill !== undefined) clearTimeout(this.redriveRefill);
    for (const m of this.members.values()) this.endWaiter(m);
  }

  /**
   * Records every delivery still out (shutdown): after the restart their holders can still
   * ack them, and their attempts count on.
   */
  async recordInFlight(): Promise<void> {
    const writes: Promise<unknown>[] = [];
    for (const s of this.sources.values()) {
      for (const e of s.entries.values()) if (e.state === "inflight" && !e.recorded) writes.push(this.writeEntry(e));
    }
    await Promise.allSettled(writes);
  }

  // ---- members --------------------------------------------------------------------------

  addMember(sink: MemberSink): void {
    if (this.members.has(sink.id)) throw new BatonError("VALIDATION_FAILED", `member ${sink.id} already consumes group ${this.config.name}`);
    const member: Member = { sink, inFlight: 0, waiter: undefined, lastSeen: this.now() };
    this.members.set(sink.id, member);
    this.memberOrder.push(member);
    this.pump();
  }

  /** Socket members, to carry over to the runtime that replaces this one (reset). */
  pushMembers(): MemberSink[] {
    return [...this.members.values()].filter((m) => m.sink.kind === "push").map((m) => m.sink);
  }

  /** The member stops receiving; what it holds stays leased to it until acked or expired. */
  removeMember(id: string): void {
    const m = this.members.get(id);
    if (m === undefined) return;
    this.endWaiter(m);
    this.members.delete(id);
    this.memberOrder = this.memberOrder.filter((x) => x !== m);
  }

  /**
   * A pull by a named consumer: resolves with up to `max` deliveries as soon as there is at
   * least one, or with none after `waitMs`. The consumer never holds more than `maxInFlight`.
   */
  pull(consumer: string, max: number, maxInFlight: number, waitMs: number): Promise<Delivery[]> {
    const id = `http:${consumer}`;
    let m = this.members.get(id);
    if (m === undefined) {
      this.addMember({ id, kind: "pull", maxInFlight, deliver: () => undefined });
      m = this.members.get(id)!;
    }
    if (m.sink.kind !== "pull") throw new BatonError("VALIDATION_FAILED", `consumer ${consumer} is a socket member`);
    m.sink.maxInFlight = maxInFlight;
    m.lastSeen = this.now();
    const member = m;
    // A newer pull from the same consumer replaces a waiting one (its client gave up on it).
    this.endWaiter(member);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.endWaiter(member), waitMs);
      member.waiter = { max, resolve, timer };
      this.pump();
    });
  }

  private endWaiter(m: Member): void {
    const w = m.waiter;
    if (w === undefined) return;
    m.waiter = undefined;
    clearTimeout(w.timer);
    w.resolve([]);
  }

  // ---- acknowledgements ---------------------------------------------------------------

  async ack(token: string): Promise<void> {
    const entry = this.held(token);
    this.counters.acked += 1;
    await this.finish(entry);
  }

  /** A failed attempt: retried after `delayMs`, or after the backoff schedule when omitted. */
  async nack(token: string, reason: string | undefined, delayMs: number | undefined): Promise<void> {
    const entry = this.held(token);
    this.counters.nacked += 1;
    await this.fail(entry, reason ?? "nacked", delayMs);
  }

  /** No more attempts: straight to the dead-letter topic with `reason`. */
  async term(token: string, reason: string | undefined): Promise<void> {
    const entry = this.held(token);
    this.counters.terminated += 1;
    this.release(entry);
    entry.failures = keepFailures([...entry.failures, { attempt: entry.attempts, reason: reason ?? "terminated", at: this.now() }]);
    await this.deadLetter(entry);
  }

  /** Extends the lease to now + `leaseMs` (default: the group's ackWait); resolves with the new end. */
  async extend(token: string, leaseMs: number | undefined): Promise<number> {
    const entry = this.held(token);
    entry.leaseUntil = this.now() + (leaseMs ?? this.config.ackWaitMs);
    entry.version += 1;
    this.leases.push(entry.leaseUntil, [entry, entry.version]);
    this.arm();
    await this.writeEntry(entry);
    return entry.leaseUntil;
  }

  /** Where the delivery named by `token` lives and what it was first published as; DELIVERY_NOT_HELD if it is not in flight. */
  workOf(token: string): { topic: string; seq: number; origin: { topic: string; seq: number; id: string } } {
    const entry = this.held(token);
    return { topic: entry.source.topic, seq: entry.seq, origin: originOf(entry.source, entry.event!) };
  }

  private held(token: string): Entry {
    const parsed = parseToken(token);
    const source = parsed === undefined ? undefined : this.sources.get(parsed.topic);
    const entry = source?.entries.get(parsed!.seq);
    if (entry === undefined || entry.state !== "inflight" || entry.attempts !== parsed!.attempt || entry.nonce !== parsed!.nonce) {
      throw new BatonError("DELIVERY_NOT_HELD", `delivery ${token.slice(0, 260)} is not in flight in group ${this.config.name} (already acked, expired and redelivered, or never issued)`);
    }
    return entry;
  }

  /** Ends an in-flight delivery's hold on its member. */
  private release(entry: Entry): void {
    if (entry.member !== undefined) {
      entry.member.inFlight -= 1;
      entry.member = undefined;
    }
    entry.version += 1;
  }

  private async fail(entry: Entry, reason: string, delayMs: number | undefined): Promise<void> {
    this.release(entry);
    const now = this.now();
    entry.failures = keepFailures([...entry.failures, { attempt: entry.attempts, reason, at: now }]);
    if (!hasAttemptsLeft(this.config.retry, entry.attempts)) {
      await this.deadLetter(entry);
      return;
    }
    const delay = delayMs ?? backoffDelay(this.config.retry, entry.attempts, this.random);
    entry.state = "delayed";
    entry.notBefore = now + delay;
    this.delays.push(entry.notBefore, [entry, entry.version]);
    this.arm();
    const written = this.writeEntry(entry);
    this.pump();
    await written;
  }

  /** The event is done in this group: drop it, move the floor, let its key go on. */
  private async finish(entry: Entry): Promise<void> {
    this.release(entry);
    const source = entry.source;
    source.entries.delete(entry.seq);
    this.pending -= 1;
    const writes: Promise<unknown>[] = [];
    const floor = floorOf(source);
    const { tenant, name } = this.config;
    if (entry.seq >= floor) {
      source.markers.add(entry.seq);
      entry.recorded = true;
      writes.push(this.deps.state.put(entryKey(tenant, name, source.topic, entry.seq), entryJson({ attempts: entry.attempts, failures: [], done: true })));
    } else if (entry.recorded || source.markers.has(entry.seq)) {
      source.markers.delete(entry.seq);
      writes.push(this.deps.state.delete(entryKey(tenant, name, source.topic, entry.seq)));
    }
    if (floor > source.persistedFloor) writes.push(this.floorSoon(source));
    this.leaveLane(entry);
    this.pump();
    await Promise.all(writes);
  }

  /**
   * Writes the source's floor once for every ack of this turn (a batch of acks moves it once),
   * in the same commit as their other writes; resolves when durable.
   */
  private floorSoon(source: Source): Promise<unknown> {
    source.floorWrite ??= Promise.resolve().then(() => {
      source.floorWrite = undefined;
      const floor = floorOf(source);
      return floor > source.persistedFloor ? Promise.all(this.moveFloor(source, floor)) : undefined;
    });
    return source.floorWrite;
  }

  private moveFloor(source: Source, floor: number): Promise<unknown>[] {
    const { tenant, name } = this.config;
    source.persistedFloor = floor;
    const writes: Promise<unknown>[] = [this.deps.state.put(positionKey(tenant, name, source.topic), { floor, epoch: source.epoch })];
    // Records from before a restart whose events were never read again (reclaimed, expired).
    if (source.restored.size > 0) {
      for (const seq of source.restored.keys()) {
        if (seq >= floor) continue;
        source.restored.delete(seq);
        source.markers.delete(seq);
        writes.push(this.deps.state.delete(entryKey(tenant, name, source.topic, seq)));
      }
    }
    if (source.markers.size > 0) {
      for (const seq of source.markers) {
        if (seq >= floor) continue;
        source.markers.delete(seq);
        writes.push(this.deps.state.delete(entryKey(tenant, name, source.topic, seq)));
      }
    }
    return writes;
  }

  private lane(entry: Entry): Lane {
    let lane = this.lanes.get(entry.scope);
    if (lane === undefined) this.lanes.set(entry.scope, (lane = { ordered: entry.ordered, out: new Set(), ready: 0, waiting: [] }));
    return lane;
  }

  private hasRoom(lane: Lane): boolean {
    return lane.ordered ? lane.out.size === 0 : lane.ready < LANE_READY;
  }

  /** Lets waiting events of `lane` go while it has room. */
  private promote(lane: Lane): void {
    while (lane.waiting.length > 0 && this.hasRoom(lane)) {
      const next = lane.waiting.shift()!;
      if (next.event !== undefined) this.waitingBodies -= 1;
      if (lane.ordered) lane.out.add(next);
      this.activate(next);
    }
  }

  private dropLaneIfIdle(entry: Entry, lane: Lane): void {
    if (lane.out.size === 0 && lane.ready === 0 && lane.waiting.length === 0) this.lanes.delete(entry.scope);
  }

  /** A finished event frees its lane's place for the next waiting one. */
  private leaveLane(entry: Entry): void {
    const lane = this.lanes.get(entry.scope);
    if (lane === undefined) return;
    lane.out.delete(entry);
    this.promote(lane);
    this.dropLaneIfIdle(entry, lane);
  }

  /** A ready event left the ready queue (handed out or expired). */
  private leftReady(entry: Entry): void {
    const lane = this.lanes.get(entry.scope);
    if (lane === undefined) return;
    lane.ready -= 1;
    this.promote(lane);
    this.dropLaneIfIdle(entry, lane);
  }

  /** Makes a restored or promoted entry go: ready, delayed or (after restart) in flight. */
  private activate(entry: Entry): void {
    if (entry.event === undefined) {
      entry.state = "loading";
      // Holds a ready place while its body is read, so one promotion pass cannot start many reads.
      this.lane(entry).ready += 1;
      void this.reload(entry);
      return;
    }
    const now = this.now();
    if (entry.leaseUntil > 0 && entry.state !== "ready") {
      // In flight when the server stopped: the worker may still ack it until the lease ends.
      entry.state = "inflight";
      this.leases.push(entry.leaseUntil, [entry, entry.version]);
      this.arm();
    } else if (entry.notBefore > now) {
      entry.state = "delayed";
      this.delays.push(entry.notBefore, [entry, entry.version]);
      this.arm();
    } else {
      this.makeReady(entry);
    }
  }

  private makeReady(entry: Entry, front = false): void {
    entry.state = "ready";
    entry.version += 1;
    this.lane(entry).ready += 1;
    if (front) this.ready.pushFront(entry.scope, entry);
    else this.ready.push(entry.scope, entry);
  }

  /** Reads a waiting event's body again, and those of the bare events after it, in one page. */
  private async reload(entry: Entry): Promise<void> {
    try {
      const page = await this.deps.log.read(entry.source.ref, entry.seq, READ_PAGE);
      if (this.stopped || entry.source.entries.get(entry.seq) !== entry) return;
      this.lane(entry).ready -= 1;
      let event: StoredEvent | undefined;
      for (const e of page.events) {
        if (e.seq === entry.seq) event = e;
        const other = entry.source.entries.get(e.seq);
        if (other === undefined || other === entry || other.event !== undefined || other.state !== "waiting") continue;
        other.event = e;
        this.waitingBodies += 1;
      }
      if (event === undefined) {
        // Reclaimed by retention or expired while it waited behind its key.
        this.counters.expired += 1;
        await this.finish(entry);
        return;
      }
      entry.event = event;
      entry.state = "waiting";
      this.activate(entry);
      this.pump();
    } catch (err) {
      this.deps.onError?.(err, "reload event");
      setTimeout(() => void this.reload(entry), 1000).unref();
    }
  }

  // ---- dead letters -------------------------------------------------------------------

  private async deadLetter(entry: Entry): Promise<void> {
    entry.dlq = true;
    entry.state = "dead-lettering";
    entry.version += 1;
    const event = entry.event!;
    const origin = originOf(entry.source, event);
    const headers: Record<string, string> = {
      ...(event.headers ?? {}),
      [DLQ_HEADERS.group]: this.config.name,
      [DLQ_HEADERS.topic]: origin.topic,
      [DLQ_HEADERS.seq]: String(origin.seq),
      [DLQ_HEADERS.id]: origin.id,
      [DLQ_HEADERS.attempts]: String(entry.attempts),
      [DLQ_HEADERS.failures]: JSON.stringify(entry.failures),
    };
    const letter: NewEvent = {
      data: event.data,
      headers,
      causalId: origin.id,
      // The same event dead-lettered twice (a crash between append and finish) is stored once.
      idempotencyKey: `dlq:${entry.source.topic}:${entry.source.epoch}:${entry.seq}:${entry.attempts}`,
      ...(event.key === undefined ? {} : { key: event.key }),
      ...(event.type === undefined ? {} : { type: event.type }),
      ...(event.schemaVersion === undefined ? {} : { schemaVersion: event.schemaVersion }),
    };
    try {
      await this.deps.log.append({ tenant: this.config.tenant, topic: deadLetterTopic(this.config.name) }, [letter], { autoCreate: true });
    } catch (err) {
      // Never drop it: try again shortly; the entry keeps its key blocked meanwhile.
      this.deps.onError?.(err, "dead-letter append");
      entry.state = "delayed";
      entry.notBefore = this.now() + 1000;
      this.delays.push(entry.notBefore, [entry, entry.version]);
      this.arm();
      return;
    }
    this.counters.deadLettered += 1;
    await this.finish(entry);
  }

  // ---- reading ------------------------------------------------------------------------

  private addSource(topic: string, startSeq: number): Source {
    const existing = this.sources.get(topic);
    if (existing !== undefined) return existing;
    const pos = this.initialPositions.get(topic);
    const floor = pos?.floor ?? startSeq;
    const ref = { tenant: this.config.tenant, topic };
    const source: Source = {
      topic,
      ref,
      redrive: topic === redriveTopic(this.config.name),
      cursor: floor,
      epoch: pos?.epoch ?? "",
      persistedFloor: pos?.floor ?? 0,
      floorWrite: undefined,
      entries: new Map(),
      restored: this.restoredEntries.get(topic) ?? new Map(),
      markers: new Set(),
      reading: false,
      caughtUp: false,
      appended: false,
      unlisten: () => undefined,
    };
    for (const [seq, r] of source.restored) if (r.done === true) source.markers.add(seq);
    this.sources.set(topic, source);
    source.unlisten = this.deps.log.onAppend(ref, (events, epoch) => {
      // A caught-up source takes the new events as they are announced instead of reading them
      // back from the store; anything else (behind, mid-read, window full) reads.
      const first = events[0];
      if (
        source.caughtUp &&
        !source.reading &&
        !source.redrive &&
        first !== undefined &&
        epoch === source.epoch &&
        first.seq === source.cursor &&
        this.ready.size + events.length <= READ_AHEAD &&
        this.pending + events.length <= this.config.maxPending
      ) {
        for (const event of events) this.admit(source, event);
        source.cursor = events[events.length - 1]!.seq + 1;
        this.pumpSoon();
        return;
      }
      source.caughtUp = false;
      source.appended = true;
      void this.fill(source);
    });
    void this.fill(source);
    return source;
  }

  private async discover(): Promise<void> {
    const pattern = this.config.topic;
    const literal = pattern.split(".").findIndex((t) => t === "*" || t === ">");
    const prefix = pattern.split(".").slice(0, literal).join(".");
    let after: string | undefined;
    for (;;) {
      const page = await this.deps.log.listTopics(this.config.tenant, { limit: 1000, ...(prefix === "" ? {} : { prefix: `${prefix}.` }), ...(after === undefined ? {} : { after }) });
      for (const t of page) {
        if (this.stopped) return;
        if (!this.sources.has(t.name) && !isSystemTopic(t.name) && matchesPattern(pattern, t.name)) this.addSource(t.name, 1);
      }
      if (page.length < 1000) return;
      after = page[page.length - 1]!.name;
    }
  }

  private scheduleDiscovery(): void {
    if (this.stopped) return;
    this.discovery = setTimeout(() => {
      this.discover().then(
        () => this.scheduleDiscovery(),
        (err: unknown) => {
          this.deps.onError?.(err, "topic discovery");
          this.scheduleDiscovery();
        },
      );
    }, DISCOVERY_INTERVAL_MS);
    this.discovery.unref();
  }

  private async fill(source: Source): Promise<void> {
    if (source.reading || source.caughtUp || this.stopped) return;
    source.reading = true;
    try {
      for (;;) {
        if (this.stopped) break;
        if (this.ready.size >= READ_AHEAD || this.pending >= this.config.maxPending) {
          this.starved.add(source);
          break;
        }
        let limit = Math.min(READ_PAGE, this.config.maxPending - this.pending);
        if (source.redrive) {
          limit = Math.min(limit, Math.floor(this.redriveTokens));
          if (limit < 1) {
            this.refillRedrive(source);
            break;
          }
        }
        let page;
        source.appended = false;
        try {
          page = await this.deps.log.read(source.ref, source.cursor, limit);
        } catch (err) {
          if ((err as BatonError).code === "TOPIC_NOT_FOUND") {
            // An append that created the topic while this read ran: read again.
            if (source.appended) continue;
            source.caughtUp = true;
            break;
          }
          throw err;
        }
        if (this.stopped) break;
        if (source.epoch !== page.epoch) {
          const replaced = source.epoch !== "";
          if (replaced) this.historyReplaced(source, page.firstSeq);
          source.epoch = page.epoch;
          // The position is written as soon as the group knows the topic's epoch.
          await Promise.all(this.moveFloor(source, source.cursor));
          // A replaced history is read again from its start.
          if (replaced) continue;
        }
        for (const event of page.events) this.admit(source, event);
        if (source.redrive) this.redriveTokens -= page.events.length;
        source.cursor = Math.max(page.next, source.cursor);
        if (page.events.length === 0 || source.cursor > page.lastSeq) {
          // An append that landed while this page was read is not in it: read again.
          if (source.appended) continue;
          source.caughtUp = true;
          // Everything below the cursor that is not open is done: let the floor follow.
          const floor = floorOf(source);
          if (floor > source.persistedFloor) {
            await Promise.all(this.moveFloor(source, floor));
            // A wake-up that came while the floor was written found this source reading, and
            // only marked it: nothing else will read for it.
            if (source.appended) {
              source.caughtUp = false;
              continue;
            }
          }
          break;
        }
      }
    } catch (err) {
      this.deps.onError?.(err, `read ${source.topic}`);
      setTimeout(() => {
        source.caughtUp = false;
        void this.fill(source);
      }, 1000).unref();
    } finally {
      source.reading = false;
    }
    this.pump();
  }

  private refillRedrive(source: Source): void {
    if (this.redriveRefill !== undefined) return;
    this.redriveRefill = setTimeout(() => {
      this.redriveRefill = undefined;
      this.redriveTokens = this.config.redriveRatePerS;
      void this.fill(source);
    }, 1000);
    this.redriveRefill.unref();
  }

  /** The topic was deleted and recreated: its old events are gone, start over on the new history. */
  private historyReplaced(source: Source, firstSeq: number): void {
    for (const entry of source.entries.values()) {
      this.release(entry);
      this.pending -= 1;
      const lane = this.lanes.get(entry.scope);
      if (lane === undefined) continue;
      if (entry.state === "ready" || entry.state === "loading") lane.ready -= 1;
      lane.out.delete(entry);
      const i = lane.waiting.indexOf(entry);
      if (i >= 0) {
        lane.waiting.splice(i, 1);
        if (entry.event !== undefined) this.waitingBodies -= 1;
      }
      this.dropLaneIfIdle(entry, lane);
    }
    this.ready.removeWhere((e) => e.source === source);
    source.entries.clear();
    source.restored.clear();
    source.cursor = firstSeq;
    source.persistedFloor = 0;
  }

  /** A freshly read event joins the window. */
  private admit(source: Source, event: StoredEvent): void {
    const restored = source.restored.get(event.seq);
    if (restored !== undefined) source.restored.delete(event.seq);
    if (restored?.done === true) return;
    const origin = originOf(source, event);
    const entry: Entry = {
      source,
      seq: event.seq,
      scope: `${origin.topic}\u0000${event.key ?? ""}`,
      ordered: this.config.orderedByKey && event.key !== undefined,
      event,
      attempts: restored?.attempts ?? 0,
      failures: [...(restored?.failures ?? [])],
      state: "waiting",
      notBefore: restored?.notBefore ?? 0,
      leaseUntil: restored?.leaseUntil ?? 0,
      member: undefined,
      version: 0,
      dlq: false,
      nonce: restored?.nonce ?? "",
      recorded: restored !== undefined,
    };
    source.entries.set(event.seq, entry);
    this.pending += 1;
    const handbacks = source.redrive ? Number(event.headers?.[DLQ_HEADERS.handbacks] ?? 0) : 0;
    if (handbacks >= this.config.retry.maxAttempts) {
      // A poison event that kills whoever reserves a slot for it would loop through its
      // reservations forever: after maxAttempts hand-backs it is dead-lettered.
      entry.failures = keepFailures([...entry.failures, { attempt: entry.attempts, reason: `handed back by ${handbacks} expired reservations`, at: this.now() }]);
      void this.deadLetter(entry).catch((err: unknown) => this.deps.onError?.(err, "dead-letter"));
      return;
    }
    const lane = this.lane(entry);
    if (lane.waiting.length > 0 || !this.hasRoom(lane)) {
      // Behind its lane. Past the body budget keep only the position; the body is read again
      // (a page at a time) when its turn comes.
      if (this.waitingBodies < WAITING_BODIES) this.waitingBodies += 1;
      else entry.event = undefined;
      lane.waiting.push(entry);
      return;
    }
    if (lane.ordered) lane.out.add(entry);
    this.activate(entry);
  }

  // ---- dispatch -----------------------------------------------------------------------

  /**
   * One pump after the current burst of work: a commit announces its appends one by one, and
   * pumping after each would hand a member one event per push.
   */
  private pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.stopped) return;
    // finish() and fail() pump again; a nested pass would hand out past a member's room.
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.pumpOnce();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
    if (this.starved.size > 0 && this.ready.size < READ_AHEAD / 2 && this.pending < this.config.maxPending) {
      const sources = [...this.starved];
      this.starved.clear();
      for (const s of sources) void this.fill(s);
    }
  }

  private pumpOnce(): void {
    const now = this.now();
    while (this.ready.size > 0) {
      const member = this.nextMember();
      if (member === undefined) break;
      const room = member.sink.maxInFlight - member.inFlight;
      const max = member.waiter === undefined ? room : Math.min(room, member.waiter.max);
      const batch: Delivery[] = [];
      while (batch.length < max) {
        const entry = this.ready.shift();
        if (entry === undefined) break;
        this.leftReady(entry);
        if (entry.event!.expiresAt !== undefined && entry.event!.expiresAt <= now) {
          this.counters.expired += 1;
          void this.finish(entry).catch((err: unknown) => this.deps.onError?.(err, "expire"));
          continue;
        }
        batch.push(this.handOut(entry, member, now));
      }
      if (batch.length === 0) break;
      if (member.waiter !== undefined) {
        const w = member.waiter;
        member.waiter = undefined;
        clearTimeout(w.timer);
        w.resolve(batch);
      } else {
        member.sink.deliver(batch);
      }
    }
  }

  /** The next member, round-robin, that can take an event now. */
  private nextMember(): Member | undefined {
    const n = this.memberOrder.length;
    for (let i = 0; i < n; i++) {
      const m = this.memberOrder[(this.memberCursor + i) % n]!;
      if (m.inFlight >= m.sink.maxInFlight) continue;
      if (m.sink.kind === "pull" && m.waiter === undefined) continue;
      this.memberCursor = (this.memberCursor + i + 1) % n;
      return m;
    }
    return undefined;
  }

  private handOut(entry: Entry, member: Member, now: number): Delivery {
    entry.attempts += 1;
    entry.nonce = newNonce();
    entry.state = "inflight";
    entry.member = member;
    entry.leaseUntil = now + this.config.ackWaitMs;
    entry.version += 1;
    member.inFlight += 1;
    this.counters.delivered += 1;
    if (entry.attempts > 1) this.counters.redelivered += 1;
    this.leases.push(entry.leaseUntil, [entry, entry.version]);
    this.arm();
    // A delivery still out after RECORD_AFTER_MS is recorded (attempt, lease, token nonce), so a
    // restart keeps counting its attempts and lets its holder still ack it. Most are acked
    // sooner and never cost a write; one lost in a crash before that is delivered again with
    // the same attempt number, which at-least-once allows.
    this.records.push(now + RECORD_AFTER_MS, [entry, entry.version]);
    this.arm();
    const event = entry.event!;
    return {
      token: `${entry.attempts}:${entry.seq}:${entry.nonce}:${entry.source.topic}`,
      topic: entry.source.topic,
      seq: entry.seq,
      attempt: entry.attempts,
      failures: entry.failures,
      leaseUntil: entry.leaseUntil,
      origin: originOf(entry.source, event),
      event,
    };
  }

  private writeEntry(entry: Entry): Promise<unknown> {
    entry.recorded = true;
    const record: EntryRecord = {
      attempts: entry.attempts,
      failures: entry.failures,
      ...(entry.state === "inflight" ? { nonce: entry.nonce } : {}),
      ...(entry.state === "inflight" ? { leaseUntil: entry.leaseUntil } : {}),
      ...(entry.state === "delayed" ? { notBefore: entry.notBefore } : {}),
    };
    return this.deps.state.put(entryKey(this.config.tenant, this.config.name, entry.source.topic, entry.seq), entryJson(record));
  }

  // ---- timers -------------------------------------------------------------------------

  private arm(): void {
    const next = Math.min(this.delays.peek() ?? Infinity, this.leases.peek() ?? Infinity, this.records.peek() ?? Infinity);
    if (next === Infinity || next >= this.timerAt || this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, next - this.now()));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    for (let item = this.records.popDue(now); item !== undefined; item = this.records.popDue(now)) {
      const [entry, version] = item;
      if (entry.version !== version || entry.state !== "inflight") continue;
      this.writeEntry(entry).catch((err: unknown) => this.deps.onError?.(err, "record delivery"));
    }
    for (let item = this.leases.popDue(now); item !== undefined; item = this.leases.popDue(now)) {
      const [entry, version] = item;
      if (entry.version !== version || entry.state !== "inflight") continue;
      this.counters.leaseExpired += 1;
      this.recentLeaseExpiries.push(now);
      void this.fail(entry, "lease expired", undefined).catch((err: unknown) => this.deps.onError?.(err, "lease expiry"));
    }
    for (let item = this.delays.popDue(now); item !== undefined; item = this.delays.popDue(now)) {
      const [entry, version] = item;
      if (entry.version !== version || entry.state !== "delayed") continue;
      if (entry.dlq) {
        void this.deadLetter(entry);
        continue;
      }
      this.makeReady(entry, true);
    }
    this.arm();
    this.pump();
  }

  // ---- description --------------------------------------------------------------------

  /** Figures for metrics: one pass over the open events. */
  sample(): GroupSample {
    return sampleGroup(this.view());
  }

  describe(): GroupStatus {
    const now = this.now();
    while (this.recentLeaseExpiries.length > 0 && this.recentLeaseExpiries[0]! < now - LEASE_WINDOW_MS) this.recentLeaseExpiries.shift();
    return describeGroup(this.view());
  }

  private view(): GroupView {
    return {
      config: this.config,
      now: this.now(),
      sources: this.sources,
      lanes: this.lanes,
      members: this.members,
      ready: this.ready.size,
      pending: this.pending,
      counters: this.counters,
      recentLeaseExpiries: this.recentLeaseExpiries.length,
    };
  }
}

