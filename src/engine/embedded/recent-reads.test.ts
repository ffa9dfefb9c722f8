import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "./embedded-engine.ts";

test("the log: readers of the same range share decoded events; a recreated topic is never served the old ones", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-recent-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 1000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 3_600_000 });
  const ref = { tenant: "t", topic: "room" };
  try {
    await engine.log.append(ref, [{ data: "one" }, { data: "two" }, { data: "three" }], { autoCreate: true });
    const first = await engine.log.read(ref, 1, 10);
    const second = await engine.log.read(ref, 2, 10);
    assert.deepEqual(first.events.map((e) => e.data), ["one", "two", "three"]);
    assert.equal(second.events[0], first.events[1], "the same object for the same event");

    assert.equal(await engine.log.deleteTopic(ref), true);
    // The delete runs in the background; the name is free once it is done.
    for (let i = 0; i < 100 && (await engine.log.describeTopic(ref)) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
    await engine.log.append(ref, [{ data: "new one" }, { data: "new two" }], { autoCreate: true });
    const again = await engine.log.read(ref, 1, 10);
    assert.notEqual(again.epoch, first.epoch);
    assert.deepEqual(again.events.map((e) => e.data), ["new one", "new two"]);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
