/**
 * The behavioural contract of `StateStore`, run against every engine (registered beside the
 * EventLog suite in embedded.test.ts).
 */
import { describe, test, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { Engine } from "../../../src/engine/engine.ts";
import { isBatonError } from "../../../src/errors/baton-error.ts";
import type { EngineFactory, EngineHandle } from "./event-log.suite.ts";

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => isBatonError(err) && err.code === code);
}

export function describeStateStore(name: string, factory: EngineFactory): void {
  describe(`StateStore conformance: ${name}`, () => {
    let handle: EngineHandle | undefined;
    const open = async (): Promise<Engine> => {
      handle = await factory({ now: Date.now, dedupWindowMs: 60_000 });
      return handle.engine;
    };
    afterEach(async () => {
      await handle?.destroy();
      handle = undefined;
    });

    test("put, get and delete with increasing revisions", async () => {
      const { state } = await open();
      assert.equal(await state.get("a"), undefined);
      assert.equal(await state.put("a", { n: 1 }), 1);
      assert.equal(await state.put("a", { n: 2 }), 2);
      assert.deepEqual(await state.get("a"), { key: "a", value: { n: 2 }, revision: 2 });
      assert.equal(await state.delete("a"), true);
      assert.equal(await state.delete("a"), false);
      assert.equal(await state.get("a"), undefined);
    });

    test("compare-and-set: only the writer holding the current revision wins, the loser changes nothing", async () => {
      const { state } = await open();
      await state.put("slot", "free");
      // Two racing writers issued in the same turn, both read revision 1.
      const results = await Promise.allSettled([
        state.put("slot", "alice", { expectRevision: 1 }),
        state.put("slot", "bob", { expectRevision: 1 }),
      ]);
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      const lost = results.find((r) => r.status === "rejected");
      assert.ok(lost !== undefined && isBatonError(lost.reason) && lost.reason.code === "CONFLICT");
      assert.deepEqual(await state.get("slot"), { key: "slot", value: "alice", revision: 2 });
      await rejectsWith(state.put("new", 1, { expectRevision: 3 }), "CONFLICT");
      assert.equal(await state.get("new"), undefined);
      assert.equal(await state.put("new", 1, { expectRevision: 0 }), 1);
      await rejectsWith(state.put("new", 2, { expectRevision: 0 }), "CONFLICT");
      await rejectsWith(state.delete("new", { expectRevision: 5 }), "CONFLICT");
      assert.equal(await state.delete("new", { expectRevision: 1 }), true);
    });

    test("scan returns one prefix in key order, pages with after, and sees writes in flight", async () => {
      const { state } = await open();
      await Promise.all(["p/3", "p/1", "q/1", "p/2", "o/9"].map((k) => state.put(k, k)));
      const inflight = state.put("p/0", "p/0");
      const all = await state.scan("p/", { limit: 10 });
      assert.deepEqual(all.map((e) => e.key), ["p/0", "p/1", "p/2", "p/3"]);
      await inflight;
      const page = await state.scan("p/", { after: "p/1", limit: 1 });
      assert.deepEqual(page.map((e) => e.key), ["p/2"]);
    });

    test("acknowledged writes survive a restart", async () => {
      let engine = await open();
      await engine.state.put("k", { deep: [1, "x", null] });
      await engine.state.put("gone", 1);
      await engine.state.delete("gone");
      handle = await handle!.reopen();
      engine = handle.engine;
      assert.deepEqual(await engine.state.get("k"), { key: "k", value: { deep: [1, "x", null] }, revision: 1 });
      assert.equal(await engine.state.get("gone"), undefined);
    });
  });
}
