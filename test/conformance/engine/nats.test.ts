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
