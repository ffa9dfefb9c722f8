/**
 * The behavioural contract of `EventLog`, run against every engine (see embedded.test.ts; the
 * NATS engine registers the same suite). A case an engine cannot run must be skipped by name
 * with a reason, never silently.
 */
import { describe, test, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { Engine } from "../../../src/engine/engine.ts";
import { isBatonError } from "../../../src/errors/baton-error.ts";
import type { Appended, NewEvent, Retention, TopicRef } from "../../../src/streams/event.ts";

export interface EngineHandle {
  readonly engine: Engine;
  /** Closes the engine and opens a new one on the same durable state (a restart). */
  reopen(): Promise<EngineHandle>;
  /** Closes and removes all state. */
  destroy(): Promise<void>;
}

export interface EngineFactoryOptions {
  readonly now: () => number;
  readonly dedupWindowMs: number;
}

export type EngineFactory = (options: EngineFactoryOptions) => Promise<EngineHandle>;

const RETENTION: Retention = { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 };
const A: TopicRef = { tenant: "acme", topic: "orders" };
const AUTO = { autoCreate: true };

function ev(data: unknown, extra: Partial<NewEvent> = {}): NewEvent {
  return { data: data as NewEvent["data"], ...extra };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => isBatonError(err) && err.code === code);
}

export function describeEventLog(name: string, factory: EngineFactory): void {
  describe(`EventLog conformance: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const now = (): number => clock;
    let handle: EngineHandle | undefined;
    const open = async (dedupWindowMs = 60_000): Promise<Engine> => {
      clock = 1_700_000_000_000;
      handle = await factory({ now, dedupWindowMs });
      return handle.engine;
    };
    afterEach(async () => {
      await handle?.destroy();
      handle = undefined;
    });

    test("append assigns gap-free sequences from 1 in input order", async () => {
      const { log } = await open();
      const one = await log.append(A, [ev(1)], AUTO);
      const batch = await log.append(A, [ev(2), ev(3), ev(4)], AUTO);
      assert.deepEqual([...one, ...batch].map((r) => r.seq), [1, 2, 3, 4]);
      assert.equal(new Set([...one, ...batch].map((r) => r.id)).size, 4);
      const page = await log.read(A, 1, 100);
      assert.deepEqual(page.events.map((e) => e.data), [1, 2, 3, 4]);
      assert.deepEqual(page.events.map((e) => e.id), [...one, ...batch].map((r) => r.id));
      assert.equal(page.next, 5);
      assert.equal(page.lastSeq, 4);
    });

    test("concurrent appends to one topic never share or skip a sequence", async () => {
      const { log } = await open();
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(A, i % 5 === 0 ? [ev(i), ev(i)] : [ev(i)], AUTO)));
      const seqs = results.flat().map((r) => r.seq).sort((a, b) => a - b);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
      for (const r of results) if (r.length === 2) assert.equal(r[1]!.seq, r[0]!.seq + 1, "a batch is contiguous");
    });

    test("appends issued one after another take sequences in call order, also on a cold topic and after a restart", async () => {
      // What keeps one socket's back-to-back publishes in order in the stream (docs/protocol.md).
      // Issued one per event-loop turn, none awaited: some arrive while the first is still
      // loading the topic, some after.
      const issue = async (log: Engine["log"], from: number): Promise<number[]> => {
        const appends: Promise<Appended[]>[] = [];
        for (let i = 0; i < 40; i++) {
          appends.push(log.append(A, [ev(from + i)], AUTO));
          await new Promise((r) => setImmediate(r));
        }
        return (await Promise.all(appends)).map((r) => r[0]!.seq);
      };
      await open();
      assert.deepEqual(await issue(handle!.engine.log, 1), Array.from({ length: 40 }, (_, i) => i + 1), "a topic created by the first of them");
      handle = await handle!.reopen();
      assert.deepEqual(await issue(handle.engine.log, 41), Array.from({ length: 40 }, (_, i) => i + 41), "a topic this process has not loaded yet");
      const page = await handle.engine.log.read(A, 1, 100);
      assert.deepEqual(page.events.map((e) => e.data), Array.from({ length: 80 }, (_, i) => i + 1));
    });

    test("the stored event carries every envelope field", async () => {
      const { log } = await open();
      const fields: NewEvent = {
        data: { nested: [1, "two", null, { three: true }] },
        key: "user-1",
        type: "order.created",
        schemaVersion: 3,
        causalId: "evt_cause",
        ttlMs: 60_000,
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      };
      const [r] = await log.append(A, [fields], AUTO);
      const [e] = (await log.read(A, 1, 1)).events;
      assert.deepEqual(e, {
        id: r!.id,
        tenant: "acme",
        topic: "orders",
        seq: 1,
        data: fields.data,
        key: "user-1",
        type: "order.created",
        schemaVersion: 3,
        causalId: "evt_cause",
        headers: fields.headers,
        time: clock,
        expiresAt: clock + 60_000,
      });
    });

    test("an idempotency key repeated within the window returns the first result and stores nothing", async () => {
      const { log } = await open();
      const [first] = await log.append(A, [ev("a", { idempotencyKey: "k1" })], AUTO);
      const [again] = await log.append(A, [ev("different", { idempotencyKey: "k1" })], AUTO);
      assert.deepEqual(again, { id: first!.id, seq: first!.seq, duplicate: true });
      assert.equal(first!.duplicate, false);
      assert.equal((await log.describeTopic(A))!.lastSeq, 1);
    });

    test("racing publishes with one idempotency key store it once", async () => {
      const { log } = await open();
      const results = await Promise.all(Array.from({ length: 20 }, () => log.append(A, [ev("x", { idempotencyKey: "race" })], AUTO)));
      assert.equal(new Set(results.map((r) => r[0]!.id)).size, 1);
      assert.equal(results.filter((r) => !r[0]!.duplicate).length, 1);
      assert.equal((await log.describeTopic(A))!.events, 1);
    });

    test("a key repeated inside one batch is stored once", async () => {
      const { log } = await open();
      const r = await log.append(A, [ev(1, { idempotencyKey: "d" }), ev(2), ev(3, { idempotencyKey: "d" })], AUTO);
      assert.deepEqual(r.map((x) => [x.seq, x.duplicate]), [[1, false], [2, false], [1, true]]);
    });

    test("idempotency survives a restart", async () => {
      await open();
      const [first] = await handle!.engine.log.append(A, [ev(1, { idempotencyKey: "persist" })], AUTO);
      handle = await handle!.reopen();
      const [again] = await handle.engine.log.append(A, [ev(1, { idempotencyKey: "persist" })], AUTO);
      assert.deepEqual(again, { id: first!.id, seq: first!.seq, duplicate: true });
      const [next] = await handle.engine.log.append(A, [ev(2)], AUTO);
      assert.equal(next!.seq, 2, "the sequence continues after a restart");
    });

    test("a key is accepted again once the dedup window has passed", async () => {
      const { log } = await open(1_000);
      await log.append(A, [ev(1, { idempotencyKey: "w" })], AUTO);
      clock += 1_001;
      const [again] = await log.append(A, [ev(1, { idempotencyKey: "w" })], AUTO);
      assert.equal(again!.duplicate, false);
      assert.equal(again!.seq, 2);
    });

    test("idempotency keys are scoped to the topic and the tenant", async () => {
      const { log } = await open();
      const a = await log.append(A, [ev(1, { idempotencyKey: "same" })], AUTO);
      const b = await log.append({ tenant: "acme", topic: "other" }, [ev(1, { idempotencyKey: "same" })], AUTO);
      const c = await log.append({ tenant: "globex", topic: "orders" }, [ev(1, { idempotencyKey: "same" })], AUTO);
      assert.deepEqual([a[0]!.duplicate, b[0]!.duplicate, c[0]!.duplicate], [false, false, false]);
    });

    test("without auto-creation an unknown topic is refused and nothing is created", async () => {
      const { log } = await open();
      await rejectsWith(log.append(A, [ev(1), ev(2)], { autoCreate: false }), "TOPIC_NOT_FOUND");
      assert.equal(await log.describeTopic(A), undefined);
      await rejectsWith(log.read(A, 1, 10), "TOPIC_NOT_FOUND");
    });

    test("two tenants' topics of the same name are separate streams", async () => {
      const { log } = await open();
      const B: TopicRef = { tenant: "globex", topic: "orders" };
      await log.append(A, [ev("a1"), ev("a2")], AUTO);
      await log.append(B, [ev("b1")], AUTO);
      assert.deepEqual((await log.read(A, 1, 10)).events.map((e) => e.data), ["a1", "a2"]);
      assert.deepEqual((await log.read(B, 1, 10)).events.map((e) => e.data), ["b1"]);
      assert.deepEqual((await log.listTopics("globex", { limit: 10 })).map((t) => t.name), ["orders"]);
    });

    test("reads page by sequence and report where to continue", async () => {
      const { log } = await open();
      await log.append(A, Array.from({ length: 10 }, (_, i) => ev(i + 1)), AUTO);
      const p1 = await log.read(A, 1, 4);
      assert.deepEqual(p1.events.map((e) => e.seq), [1, 2, 3, 4]);
      const p2 = await log.read(A, p1.next, 4);
      assert.deepEqual(p2.events.map((e) => e.seq), [5, 6, 7, 8]);
      const p3 = await log.read(A, 9, 100);
      assert.deepEqual(p3.events.map((e) => e.seq), [9, 10]);
      assert.equal(p3.next, 11);
      const empty = await log.read(A, 11, 10);
      assert.deepEqual([empty.events.length, empty.next], [0, 11]);
      const fromZero = await log.read(A, 0, 2);
      assert.deepEqual(fromZero.events.map((e) => e.seq), [1, 2]);
    });

    test("expired events are never returned, and later events still are", async () => {
      const { log } = await open();
      await log.append(A, [ev("short", { ttlMs: 100 }), ev("long", { ttlMs: 100_000 }), ev("forever")], AUTO);
      clock += 101;
      const page = await log.read(A, 1, 10);
      assert.deepEqual(page.events.map((e) => e.data), ["long", "forever"]);
      assert.equal(page.next, 4);
    });

    test("seqAtTime finds the first event at or after a time", async () => {
      const { log } = await open();
      const t0 = clock;
      await log.append(A, [ev(1)], AUTO);
      clock += 1000;
      await log.append(A, [ev(2), ev(3)], AUTO);
      clock += 1000;
      await log.append(A, [ev(4)], AUTO);
      assert.equal(await log.seqAtTime(A, t0 - 1), 1);
      assert.equal(await log.seqAtTime(A, t0 + 1), 2);
      assert.equal(await log.seqAtTime(A, t0 + 1000), 2);
      assert.equal(await log.seqAtTime(A, t0 + 2000), 4);
      assert.equal(await log.seqAtTime(A, t0 + 5000), 5);
    });

    test("publish times never go backwards within a topic", async () => {
      const { log } = await open();
      await log.append(A, [ev(1)], AUTO);
      clock -= 5_000;
      await log.append(A, [ev(2)], AUTO);
      const [e1, e2] = (await log.read(A, 1, 2)).events;
      assert.ok(e2!.time >= e1!.time);
    });

    test("topics are created, described, listed by prefix with paging, and deleted", async () => {
      const { log } = await open();
      const created = await log.createTopic({ tenant: "acme", topic: "room.1" }, { maxAgeMs: 5000, maxEvents: 10, maxBytes: 0 });
      assert.deepEqual([created.firstSeq, created.lastSeq, created.events], [1, 0, 0]);
      assert.deepEqual(created.retention, { maxAgeMs: 5000, maxEvents: 10, maxBytes: 0 });
      await rejectsWith(log.createTopic({ tenant: "acme", topic: "room.1" }, RETENTION), "TOPIC_EXISTS");
      for (const n of ["room.2", "room.3", "lobby"]) await log.createTopic({ tenant: "acme", topic: n }, RETENTION);
      assert.deepEqual((await log.listTopics("acme", { prefix: "room.", limit: 2 })).map((t) => t.name), ["room.1", "room.2"]);
      assert.deepEqual((await log.listTopics("acme", { prefix: "room.", after: "room.2", limit: 2 })).map((t) => t.name), ["room.3"]);
      assert.deepEqual((await log.listTopics("acme", { limit: 10 })).map((t) => t.name), ["lobby", "room.1", "room.2", "room.3"]);
      assert.equal(await log.deleteTopic({ tenant: "acme", topic: "room.2" }), true);
      assert.equal(await log.deleteTopic({ tenant: "acme", topic: "room.2" }), false);
      assert.equal(await log.describeTopic({ tenant: "acme", topic: "room.2" }), undefined);
    });

    test("a deleted and recreated topic starts a new history with a new epoch", async () => {
      const { log } = await open();
      await log.append(A, [ev(1, { idempotencyKey: "k" }), ev(2)], AUTO);
      const before = (await log.describeTopic(A))!;
      await log.deleteTopic(A);
      const [r] = await log.append(A, [ev(3, { idempotencyKey: "k" })], AUTO);
      const after = (await log.describeTopic(A))!;
      assert.equal(r!.seq, 1);
      assert.equal(r!.duplicate, false, "idempotency keys of the deleted history are gone");
      assert.notEqual(after.epoch, before.epoch);
      assert.deepEqual((await log.read(A, 1, 10)).events.map((e) => e.data), [3]);
    });

    test("the epoch and the events survive a restart", async () => {
      await open();
      await handle!.engine.log.append(A, [ev(1), ev(2)], AUTO);
      const before = (await handle!.engine.log.describeTopic(A))!;
      handle = await handle!.reopen();
      const after = (await handle.engine.log.describeTopic(A))!;
      assert.equal(after.epoch, before.epoch);
      assert.deepEqual((await handle.engine.log.read(A, 1, 10)).events.map((e) => e.data), [1, 2]);
    });

    test("onAppend reports durable batches in order and stops after unsubscribe", async () => {
      const { log } = await open();
      const seen: number[] = [];
      const off = log.onAppend(A, (events) => seen.push(...events.map((e) => e.seq)));
      await log.append(A, [ev(1), ev(2)], AUTO);
      await log.append(A, [ev(3)], AUTO);
      await log.append(A, [ev(3, { idempotencyKey: "x" })], AUTO);
      await log.append(A, [ev(3, { idempotencyKey: "x" })], AUTO);
      off();
      await log.append(A, [ev(5)], AUTO);
      assert.deepEqual(seen, [1, 2, 3, 4]);
    });

    test("onAppend: a listener that throws neither fails the append nor stops later wake-ups", async () => {
      const { log } = await open();
      const seen: number[] = [];
      const thrower: number[] = [];
      log.onAppend(A, (events) => {
        thrower.push(...events.map((e) => e.seq));
        throw new Error("listener bug");
      });
      log.onAppend(A, (events) => seen.push(...events.map((e) => e.seq)));
      for (let i = 1; i <= 3; i++) await log.append(A, [ev(i)], AUTO);
      for (let i = 0; i < 200 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(seen, [1, 2, 3]);
      assert.deepEqual(thrower, [1, 2, 3]);
    });

    test("after close, writes are refused with UNAVAILABLE", async () => {
      const engine = await open();
      await engine.close();
      await rejectsWith(engine.log.append(A, [ev(1)], AUTO), "UNAVAILABLE");
    });
  });
}
