/**
 * A group reads a topic again when an append's wake-up arrives while it is busy reading (a
 * wake-up is only a mark then). These tests put an append exactly into the two windows where a
 * mark used to be dropped; the embedded engine has no periodic re-read, so a dropped wake-up
 * left the event undelivered until the topic's next append.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../engine/embedded/embedded-engine.ts";
import type { EventLog, StateStore } from "../../engine/engine.ts";
import { ConsumerGroups } from "./consumer-groups.ts";
import { parseGroupConfig } from "./group-config.ts";
import { positionKey } from "./group-state.ts";

/** `target` with the named methods replaced (the rest bound to `target`). */
function patched<T extends object>(target: T, methods: Partial<T>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.hasOwn(methods, prop)) return (methods as Record<PropertyKey, unknown>)[prop];
      const v: unknown = Reflect.get(t, prop, t);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

async function withEngine(run: (engine: EmbeddedEngine) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "baton-wakeups-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 1000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 3_600_000 });
  try {
    await run(engine);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("an append that creates the topic while the group's read of it fails as not found is delivered", async () => {
  await withEngine(async (engine) => {
    const ref = { tenant: "t", topic: "jobs" };
    let raced = false;
    const log = patched<EventLog>(engine.log, {
      read: async (r, from, limit) => {
        try {
          return await engine.log.read(r, from, limit);
        } catch (err) {
          // The read has failed; the append lands (and wakes the group) before it reports so.
          if (!raced && r.topic === ref.topic) {
            raced = true;
            await engine.log.append(ref, [{ data: "first" }], { autoCreate: true });
          }
          throw err;
        }
      },
    });
    const groups = new ConsumerGroups({ log, state: engine.state });
    await groups.start();
    try {
      await groups.create(parseGroupConfig("t", { name: "g", topic: "jobs" }, Date.now()));
      const group = await groups.handle("t", "g");
      const got = await group.pull("w", 10, 10, 3000);
      assert.ok(raced, "the append raced the read");
      assert.deepEqual(got.map((d) => d.event.data), ["first"]);
    } finally {
      await groups.close();
    }
  });
});

test("an append that lands while the group writes its floor after catching up is delivered", async () => {
  await withEngine(async (engine) => {
    const ref = { tenant: "t", topic: "jobs" };
    // An expired event moves the read past it with nothing open: the floor follows at catch-up.
    await engine.log.append(ref, [{ data: "expired", ttlMs: 1 }], { autoCreate: true });
    await new Promise((r) => setTimeout(r, 5));
    let raced = false;
    const state = patched<StateStore>(engine.state, {
      put: async (key, value, options) => {
        const floor = (value as { floor?: unknown } | null)?.floor;
        if (!raced && key === positionKey("t", "g", ref.topic) && typeof floor === "number" && floor >= 2) {
          raced = true;
          await engine.log.append(ref, [{ data: "second" }], { autoCreate: true });
        }
        return engine.state.put(key, value, options);
      },
    });
    const groups = new ConsumerGroups({ log: engine.log, state });
    await groups.start();
    try {
      await groups.create(parseGroupConfig("t", { name: "g", topic: "jobs" }, Date.now()));
      const group = await groups.handle("t", "g");
      const got = await group.pull("w", 10, 10, 3000);
      assert.ok(raced, "the append raced the floor write");
      assert.deepEqual(got.map((d) => d.event.data), ["second"]);
    } finally {
      await groups.close();
    }
  });
});
