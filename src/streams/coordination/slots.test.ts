import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../engine/embedded/embedded-engine.ts";
import type { StateStore } from "../../engine/engine.ts";
import { Slots } from "./slots.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Slots over a real embedded StateStore whose scans are counted. */
async function withSlots(fn: (slots: Slots, scans: () => number, records: () => Promise<string[]>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "baton-slots-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 1000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 3_600_000 });
  let scans = 0;
  const state = new Proxy(engine.state, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === "scan") return (...args: Parameters<StateStore["scan"]>) => (scans++, target.scan(...args));
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  // A full sweep only once a minute: anything sooner comes from the lease deadlines.
  const slots = new Slots(state, engine.log, { sweepIntervalMs: 50, fullSweepIntervalMs: 60_000 });
  slots.start();
  try {
    // Holders of the slot records still stored (list() hides expired ones; this does not).
    const records = async (): Promise<string[]> => (await engine.state.scan("slot/", { limit: 100 })).map((e) => (e.value as { holder: string }).holder);
    await fn(slots, () => scans, records);
  } finally {
    slots.stop();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("held slots with long leases are not rescanned on every interval", async () => {
  await withSlots(async (slots, scans) => {
    await slots.reserve("t", "gpu", "w", 2, 30_000, 0);
    await slots.reserve("t", "gpu", "w", 2, 30_000, 0);
    await sleep(100);
    const before = scans();
    await sleep(600);
    // Sweeping every 50 ms would have scanned about 12 times.
    assert.equal(scans() - before, 0);
  });
});

test("a slot whose lease ends is swept at its deadline, without waiting for a full sweep", async () => {
  await withSlots(async (slots, _scans, records) => {
    await slots.reserve("t", "gpu", "long", 2, 30_000, 0);
    await slots.reserve("t", "gpu", "short", 2, 150, 0);
    assert.deepEqual(await records(), ["long", "short"]);
    for (let i = 0; i < 40 && (await records()).length > 1; i++) await sleep(50);
    assert.deepEqual(await records(), ["long"], "the expired record was swept");
    // The freed slot can be taken again at once.
    const g = await slots.reserve("t", "gpu", "next", 2, 150, 0);
    const extended = await slots.extend("t", g.token, 300);
    assert.ok(extended > g.expiresAt);
    for (let i = 0; i < 40 && (await records()).length > 1; i++) await sleep(50);
    assert.deepEqual(await records(), ["long"], "the extended lease ended and was swept too");
  });
});

test("a sweep stuck on a store call that never settles is reported, and the next sweep frees the expired slot", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-slots-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 1000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 3_600_000 });
  let hang = true;
  const state = new Proxy(engine.state, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      // The first scan after `hang` is set never answers, as a store call lost on the wire.
      if (prop === "scan") return (...args: Parameters<StateStore["scan"]>) => (hang ? ((hang = false), new Promise<never>(() => undefined)) : target.scan(...args));
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const errors: string[] = [];
  const slots = new Slots(state, engine.log, { sweepIntervalMs: 50, fullSweepIntervalMs: 60_000, sweepTimeoutMs: 300, onError: (err) => errors.push((err as Error).message) });
  try {
    slots.start();
    await slots.reserve("t", "gpu", "dies", 1, 150, 0);
    const records = async (): Promise<number> => (await engine.state.scan("slot/", { limit: 10 })).length;
    for (let i = 0; i < 60 && (await records()) > 0; i++) await sleep(50);
    assert.equal(await records(), 0, "the expired slot was freed by a later sweep");
    assert.ok(errors.some((m) => /has not finished after 300 ms/.test(m)), JSON.stringify(errors));
    assert.ok((await slots.reserve("t", "gpu", "next", 1, 1000, 0)).token, "the slot can be taken again");
  } finally {
    slots.stop();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
