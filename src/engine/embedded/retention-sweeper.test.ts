import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "./embedded-engine.ts";
import type { Retention } from "../../streams/event.ts";

async function withEngine(fn: (engine: EmbeddedEngine, clock: { now: number }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "baton-sweep-"));
  const clock = { now: 1_700_000_000_000 };
  const engine = EmbeddedEngine.open({
    dataDir: dir,
    dedupWindowMs: 1000,
    defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 },
    sweepIntervalMs: 3_600_000,
    now: () => clock.now,
  });
  try {
    await fn(engine, clock);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ref = (topic: string) => ({ tenant: "t", topic });

async function topicWith(engine: EmbeddedEngine, topic: string, retention: Retention, n: number): Promise<void> {
  await engine.log.createTopic(ref(topic), retention);
  await engine.log.append(ref(topic), Array.from({ length: n }, (_, i) => ({ data: { i, pad: "x".repeat(50) } })), { autoCreate: false });
}

test("retention by count keeps the newest events and advances firstSeq", async () => {
  await withEngine(async (engine) => {
    await topicWith(engine, "count", { maxAgeMs: 0, maxEvents: 3, maxBytes: 0 }, 10);
    await engine.sweeper.pass();
    const info = (await engine.log.describeTopic(ref("count")))!;
    assert.deepEqual([info.firstSeq, info.lastSeq, info.events], [8, 10, 3]);
    const page = await engine.log.read(ref("count"), 1, 100);
    assert.deepEqual(page.events.map((e) => e.seq), [8, 9, 10], "a read from before firstSeq starts at firstSeq");
  });
});

test("retention by age and by bytes reclaim from the head only", async () => {
  await withEngine(async (engine, clock) => {
    await topicWith(engine, "age", { maxAgeMs: 1000, maxEvents: 0, maxBytes: 0 }, 4);
    clock.now += 500;
    await engine.log.append(ref("age"), [{ data: "young" }], { autoCreate: false });
    clock.now += 600;
    await engine.sweeper.pass();
    assert.deepEqual((await engine.log.read(ref("age"), 1, 10)).events.map((e) => e.data), ["young"]);

    await topicWith(engine, "bytes", { maxAgeMs: 0, maxEvents: 0, maxBytes: 1 }, 5);
    await engine.sweeper.pass();
    const info = (await engine.log.describeTopic(ref("bytes")))!;
    assert.deepEqual([info.events, info.bytes, info.firstSeq], [0, 0, 6]);
    const [next] = await engine.log.append(ref("bytes"), [{ data: 1 }], { autoCreate: false });
    assert.equal(next!.seq, 6, "sequences are never reused after reclaiming");
  });
});

test("expired events at the head are reclaimed; the stored range stays contiguous", async () => {
  await withEngine(async (engine, clock) => {
    await engine.log.append(ref("ttl"), [{ data: 1, ttlMs: 10 }, { data: 2, ttlMs: 100_000 }, { data: 3, ttlMs: 10 }], { autoCreate: true });
    clock.now += 11;
    await engine.sweeper.pass();
    const info = (await engine.log.describeTopic(ref("ttl")))!;
    assert.deepEqual([info.firstSeq, info.events], [2, 2]);
    assert.deepEqual((await engine.log.read(ref("ttl"), 1, 10)).events.map((e) => e.data), [2]);
  });
});

test("expired idempotency keys are removed from disk", async () => {
  await withEngine(async (engine, clock) => {
    await engine.log.append(ref("d"), [{ data: 1, idempotencyKey: "a" }, { data: 2, idempotencyKey: "b" }], { autoCreate: true });
    clock.now += 2000;
    const deleted = await engine.sweeper.pass();
    assert.equal(deleted, 2);
    assert.equal(await engine.sweeper.pass(), 0);
  });
});

test("a large backlog is reclaimed across several bounded transactions", async () => {
  await withEngine(async (engine) => {
    await engine.log.createTopic(ref("big"), { maxAgeMs: 0, maxEvents: 1, maxBytes: 0 });
    for (let i = 0; i < 5; i++) {
      await engine.log.append(ref("big"), Array.from({ length: 1000 }, (_, j) => ({ data: i * 1000 + j })), { autoCreate: false });
    }
    assert.equal(await engine.sweeper.pass(), 4999);
    const info = (await engine.log.describeTopic(ref("big")))!;
    assert.deepEqual([info.firstSeq, info.lastSeq, info.events], [5000, 5000, 1]);
  });
});
