/**
 * Embedded-engine behaviours that the shared EventLog suite cannot express: crash recovery of
 * deletes, and failure modes of its storage encoding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { EmbeddedEngine } from "../../../src/engine/embedded/embedded-engine.ts";

const RETENTION = { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 };
const A = { tenant: "acme", topic: "orders" };

function openAt(dir: string): EmbeddedEngine {
  return EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 3_600_000 });
}

test("a delete interrupted by a crash is finished after restart, and the topic can be recreated", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-del-"));
  try {
    let engine = openAt(dir);
    await engine.log.append(A, [{ data: 1, idempotencyKey: "k" }, { data: 2 }], { autoCreate: true });
    await engine.close();
    // The state after deleteTopic's first transaction: the record is marked, history still there.
    const root = open({ path: join(dir, "baton.mdb"), maxDbs: 16 });
    const topics = root.openDB<Record<string, unknown>, [string, string]>({ name: "topics" });
    await topics.put(["acme", "orders"], { ...topics.get(["acme", "orders"]), deleting: true });
    await root.close();
    engine = openAt(dir);
    await engine.sweeper.pass();
    assert.equal(await engine.log.describeTopic(A), undefined);
    const [r] = await engine.log.append(A, [{ data: 3, idempotencyKey: "k" }], { autoCreate: true });
    assert.deepEqual([r!.seq, r!.duplicate], [1, false]);
    await engine.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("idempotency keys of any characters are removed with their topic", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-del2-"));
  const engine = openAt(dir);
  try {
    await engine.log.append(A, [{ data: 1, idempotencyKey: "😀order-1" }, { data: 2, idempotencyKey: "\uffffz" }], { autoCreate: true });
    await engine.log.deleteTopic(A);
    const r = await engine.log.append(A, [{ data: 1, idempotencyKey: "😀order-1" }, { data: 2, idempotencyKey: "\uffffz" }], { autoCreate: true });
    assert.deepEqual(r.map((x) => [x.seq, x.duplicate]), [[1, false], [2, false]]);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an object with 70,000 keys is stored and read back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-wide-"));
  const engine = openAt(dir);
  try {
    const data = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i]));
    await engine.log.append(A, [{ data }], { autoCreate: true });
    const [e] = (await engine.log.read(A, 1, 1)).events;
    assert.equal(Object.keys(e!.data as object).length, 70_000);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("one tenant cannot take more than half of the write queue; others still write", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-budget-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 60_000, defaultRetention: RETENTION, sweepIntervalMs: 3_600_000, maxPendingEvents: 100 });
  try {
    const hot = Array.from({ length: 80 }, () => engine.log.append({ tenant: "hot", topic: "t" }, [{ data: 1 }], { autoCreate: true }).then(() => "ok", (e: { code?: string }) => e.code));
    const quiet = await engine.log.append({ tenant: "quiet", topic: "t" }, [{ data: 1 }], { autoCreate: true });
    const outcomes = await Promise.all(hot);
    assert.equal(quiet[0]!.seq, 1, "the quiet tenant is served while the hot one is refused");
    assert.ok(outcomes.filter((o) => o === "OVERLOADED").length >= 30, `hot tenant outcomes: ${outcomes.join(",")}`);
    assert.ok(outcomes.filter((o) => o === "ok").length <= 50);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
