/**
 * The engine conformance suites against NatsEngine on the NATS server at BATON_TEST_NATS
 * (default nats://127.0.0.1:4222, nats-server 2.9+ with JetStream), plus what only a cluster
 * engine has: several nodes appending to one topic. Every engine handle gets its own prefix
 * (streams, buckets, subjects) and removes it when destroyed.
 *
 * Without a reachable server the file skips with a message, except under CI=true, where an
 * unreachable server fails the run: CI must not go green by not testing this engine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { NatsEngine } from "../../../src/engine/nats/nats-engine.ts";
import { natsUnreachable, removeNatsPrefix } from "../../support/nats.ts";
import { describeStateStore } from "./state-store.suite.ts";
import { describeEventLog, type EngineFactoryOptions, type EngineHandle } from "./event-log.suite.ts";

const SERVERS = process.env.BATON_TEST_NATS ?? "nats://127.0.0.1:4222";
const RETENTION = { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 };



async function openNats(prefix: string, options: EngineFactoryOptions): Promise<EngineHandle> {
  const engine = await NatsEngine.open({ servers: SERVERS, prefix, dedupWindowMs: options.dedupWindowMs, defaultRetention: RETENTION, now: options.now, sweepIntervalMs: 0 });
  return {
    engine,
    async reopen() {
      await engine.close();
      return openNats(prefix, options);
    },
    async destroy() {
      await engine.close();
      await removeNatsPrefix(SERVERS, prefix);
    },
  };
}

const newPrefix = (): string => `bt${randomBytes(5).toString("hex")}`;
const unreachable = await natsUnreachable(SERVERS);

if (unreachable !== undefined) {
  if (process.env.CI === "true") {
    test("NATS engine conformance", () => {
      assert.fail(`${unreachable}; CI=true requires it (start nats-server -js)`);
    });
  } else {
    test("NATS engine conformance", { skip: `${unreachable}; start nats-server -js to run it` }, () => {});
  }
} else {
  describeEventLog("nats", (options) => openNats(newPrefix(), options));
  describeStateStore("nats", (options) => openNats(newPrefix(), options));

  test("nats: a node serves events it decoded before from memory, continues past them from NATS, and never serves a recreated topic the old ones", async () => {
    const prefix = newPrefix();
    const options = { servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 0 };
    const a = await NatsEngine.open({ ...options, name: "node-a" });
    const b = await NatsEngine.open({ ...options, name: "node-b" });
    const ref = { tenant: "acme", topic: "recent" };
    try {
      for (let i = 1; i <= 6; i++) await a.log.append(ref, [{ data: i }], { autoCreate: true });
      const head = await b.log.read(ref, 1, 3);
      assert.deepEqual(head.events.map((e) => e.data), [1, 2, 3]);
      // Three held, the rest from NATS, in order, with no gap and nothing twice.
      const all = await b.log.read(ref, 1, 100);
      assert.deepEqual(all.events.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
      assert.equal(all.events[0], head.events[0], "the held event object is served");
      // Appends by another node after the read are found past what is held.
      await a.log.append(ref, [{ data: 7 }], { autoCreate: false });
      await sleep(100);
      assert.deepEqual((await b.log.read(ref, 5, 100)).events.map((e) => e.data), [5, 6, 7]);

      assert.equal(await a.log.deleteTopic(ref), true);
      for (let i = 0; i < 100 && (await b.log.describeTopic(ref)) !== undefined; i++) await sleep(50);
      await a.log.append(ref, [{ data: "new" }], { autoCreate: true });
      for (let i = 0; i < 100 && (await b.log.describeTopic(ref))?.lastSeq !== 1; i++) await sleep(50);
      const again = await b.log.read(ref, 1, 100);
      assert.notEqual(again.epoch, all.epoch);
      assert.deepEqual(again.events.map((e) => e.data), ["new"]);
    } finally {
      await a.close();
      await b.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });

  test("nats: two nodes appending to one topic share one gap-free sequence, and each hears the other's appends", async () => {
    const prefix = newPrefix();
    const options = { servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 0 };
    const a = await NatsEngine.open({ ...options, name: "node-a" });
    const b = await NatsEngine.open({ ...options, name: "node-b" });
    try {
      const T = { tenant: "acme", topic: "shared" };
      const heardOnB: number[] = [];
      const off = b.log.onAppend(T, (events) => heardOnB.push(...events.map((e) => e.seq)));
      await sleep(100); // the subscription reaches the server
      const appends = Array.from({ length: 60 }, (_, i) => ((i % 2 === 0 ? a : b).log.append(T, i % 7 === 0 ? [{ data: i }, { data: i }] : [{ data: i }], { autoCreate: true })));
      const results = await Promise.all(appends);
      const seqs = results.flat().map((r) => r.seq).sort((x, y) => x - y);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
      for (const r of results) if (r.length === 2) assert.equal(r[1]!.seq, r[0]!.seq + 1, "a batch is contiguous");
      // Same key through both nodes at once: stored once.
      const keyed = await Promise.all([a, b, a, b].map((n) => n.log.append(T, [{ data: "k", idempotencyKey: "once" }], { autoCreate: true })));
      assert.equal(new Set(keyed.map((r) => r[0]!.id)).size, 1);
      assert.equal(keyed.filter((r) => !r[0]!.duplicate).length, 1);
      const total = seqs.length + 1;
      const deadline = Date.now() + 5000;
      while (heardOnB.length < total && Date.now() < deadline) await sleep(20);
      assert.deepEqual(heardOnB, Array.from({ length: total }, (_, i) => i + 1), "B heard every append, A's included, in order");
      const page = await a.log.read(T, 1, 1000);
      assert.deepEqual(page.events.map((e) => e.seq), Array.from({ length: total }, (_, i) => i + 1));
      assert.equal((await b.log.describeTopic(T))!.lastSeq, total);
      off();
    } finally {
      await a.close();
      await b.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });

  test("nats: appends keep call order while every one of them re-reads the topic record", async () => {
    // recordCacheMs 0: each append looks the record up again (as a hot topic does every second),
    // so no append may overtake an earlier one whose look-up is still under way.
    const prefix = newPrefix();
    const engine = await NatsEngine.open({ servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 0, recordCacheMs: 0 });
    try {
      const T = { tenant: "acme", topic: "stale" };
      const appends: Promise<{ seq: number }[]>[] = [];
      for (let i = 0; i < 60; i++) {
        appends.push(engine.log.append(T, [{ data: i }], { autoCreate: true }));
        if (i % 3 === 0) await new Promise((r) => setImmediate(r));
      }
      assert.deepEqual((await Promise.all(appends)).map((r) => r[0]!.seq), Array.from({ length: 60 }, (_, i) => i + 1));
    } finally {
      await engine.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });

  test("nats: a sweep pass visits only topics that may have something to reclaim, and still reclaims them", async () => {
    const prefix = newPrefix();
    let now = Date.now();
    const engine = await NatsEngine.open({ servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 0, now: () => now });
    try {
      const free = { tenant: "acme", topic: "free" };
      const aged = { tenant: "acme", topic: "aged" };
      const capped = { tenant: "acme", topic: "capped" };
      await engine.log.createTopic(free, RETENTION);
      await engine.log.createTopic(aged, { maxAgeMs: 60_000, maxEvents: 0, maxBytes: 0 });
      await engine.log.createTopic(capped, { maxAgeMs: 0, maxEvents: 2, maxBytes: 0 });
      for (const ref of [free, aged, capped]) await engine.log.append(ref, [{ data: 1 }, { data: 2 }, { data: 3 }], { autoCreate: false });
      const first = async (ref: typeof free): Promise<number> => (await engine.log.describeTopic(ref))!.firstSeq;
      const visitsOf = async (): Promise<number> => {
        const before = engine.sweeper.visits;
        await engine.sweeper.pass();
        return engine.sweeper.visits - before;
      };

      // The count limit is passed; the age limit cannot be yet (the topic is younger than it).
      assert.equal(await engine.sweeper.pass(), 1);
      assert.deepEqual([await first(free), await first(aged), await first(capped)], [1, 1, 2]);
      await visitsOf(); // learns the trimmed topic's message count
      assert.equal(await visitsOf(), 0, "nothing changed: no topic is visited");

      // Time passes the age limit: the aged topic is due, and only it.
      now += 61_000;
      assert.equal(await visitsOf(), 1);
      assert.equal(await first(aged), 4);
      assert.deepEqual((await engine.log.read(aged, 1, 10)).events, []);
      // New events are younger than the limit again: not visited until they can be due.
      await engine.log.append(aged, [{ data: 4 }], { autoCreate: false });
      await engine.log.append(capped, [{ data: 4 }, { data: 5 }], { autoCreate: false });
      assert.equal(await visitsOf(), 1, "only the topic whose count changed");
      assert.deepEqual((await engine.log.read(capped, 1, 10)).events.map((e) => e.data), [4, 5]);
      assert.deepEqual((await engine.log.read(aged, 1, 10)).events.map((e) => e.data), [4]);
      now += 61_000;
      assert.equal(await engine.sweeper.pass(), 1);
      assert.deepEqual((await engine.log.read(aged, 1, 10)).events, []);
      assert.deepEqual([await first(free), (await engine.log.describeTopic(free))!.lastSeq], [1, 3], "a topic with no limit is never trimmed");
    } finally {
      await engine.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });

  test("nats: one node of a prefix sweeps at a time; another takes over after a clean close and after the holder stops renewing", async () => {
    const prefix = newPrefix();
    const options = { servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 50, sweepLeaseTtlMs: 1000 };
    const engines: NatsEngine[] = [];
    const open = async (name: string): Promise<NatsEngine> => {
      const e = await NatsEngine.open({ ...options, name });
      engines.push(e);
      return e;
    };
    // Waits (bounded) for `done`, checking on every look that never two engines sweep at once.
    const until = async (what: string, among: readonly NatsEngine[], done: () => boolean | Promise<boolean>): Promise<void> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        assert.ok(among.filter((e) => e.sweeper.active).length <= 1, "two nodes hold the sweeper lease at once");
        if (await done()) return;
        assert.ok(Date.now() < deadline, `gave up waiting until ${what}`);
        await sleep(20);
      }
    };
    const T = { tenant: "acme", topic: "capped" };
    try {
      const a = await open("node-a");
      const b = await open("node-b");
      await a.log.createTopic(T, { maxAgeMs: 0, maxEvents: 2, maxBytes: 0 });
      const appendAndTrim = async (via: NatsEngine, count: number, among: readonly NatsEngine[]): Promise<void> => {
        for (let i = 0; i < count; i++) await via.log.append(T, [{ data: i }], { autoCreate: false });
        const last = (await via.log.describeTopic(T))!.lastSeq;
        await until(`the topic is trimmed to its last 2 events (${last - 1}..${last})`, among, async () => (await via.log.describeTopic(T))!.firstSeq === last - 1);
      };

      await until("one of two nodes sweeps", [a, b], () => a.sweeper.active || b.sweeper.active);
      const holder = a.sweeper.active ? a : b;
      const follower = holder === a ? b : a;
      const followerPasses = follower.sweeper.passes;
      await appendAndTrim(holder, 5, [a, b]);
      const holderPasses = holder.sweeper.passes;
      await until("the holder has swept a few more times", [a, b], () => holder.sweeper.passes >= holderPasses + 3);
      assert.equal(follower.sweeper.passes, followerPasses, "the node without the lease does not sweep");

      // A clean close gives the lease back: the other node takes over and sweeps.
      await holder.close();
      await until("the other node sweeps after a clean close", [follower], () => follower.sweeper.active);
      await appendAndTrim(follower, 3, [follower]);

      // A holder that stops renewing (its NATS connection closed under it) loses the lease to a third node.
      const c = await open("node-c");
      const cPasses = c.sweeper.passes;
      await appendAndTrim(follower, 2, [follower, c]);
      assert.equal(c.sweeper.passes, cPasses, "the new node does not sweep while the lease is held");
      await (follower as unknown as { nc: NatsConnection }).nc.close();
      await until("the third node takes over", [follower, c], () => c.sweeper.active);
      assert.equal(follower.sweeper.active, false);
      await appendAndTrim(c, 3, [follower, c]);
    } finally {
      for (const e of engines) await e.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });

  test("nats: retention trims a topic's head by count and keeps its position", async () => {
    const prefix = newPrefix();
    const engine = await NatsEngine.open({ servers: SERVERS, prefix, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 0 });
    try {
      const T = { tenant: "acme", topic: "capped" };
      await engine.log.createTopic(T, { maxAgeMs: 0, maxEvents: 3, maxBytes: 0 });
      for (let i = 1; i <= 8; i++) await engine.log.append(T, [{ data: i }], { autoCreate: false });
      assert.equal(await engine.sweeper.pass(), 5);
      const info = (await engine.log.describeTopic(T))!;
      assert.deepEqual([info.firstSeq, info.lastSeq, info.events], [6, 8, 3]);
      assert.deepEqual((await engine.log.read(T, 1, 10)).events.map((e) => e.data), [6, 7, 8]);
      const [next] = await engine.log.append(T, [{ data: 9 }], { autoCreate: false });
      assert.equal(next!.seq, 9);
    } finally {
      await engine.close();
      await removeNatsPrefix(SERVERS, prefix);
    }
  });
}
