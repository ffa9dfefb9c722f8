import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../engine/embedded/embedded-engine.ts";
import type { EphemeralEvent } from "../../engine/engine.ts";
import type { StoredEvent } from "../../streams/event.ts";
import { TopicFanout, type FanoutMember } from "./topic-fanout.ts";

class Recorder implements FanoutMember {
  readonly live: number[] = [];
  readonly ephemeral: string[] = [];
  throws = false;
  onLive(events: readonly StoredEvent[]): void {
    if (this.throws) throw new Error("member failure");
    for (const e of events) this.live.push(e.seq);
  }
  onEphemeral(event: EphemeralEvent): void {
    this.ephemeral.push(event.id);
  }
}

test("one engine listener per topic; members join and leave; a throwing member does not stop the others", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-fanout-"));
  const engine = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 1000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 3_600_000 });
  try {
    const fanout = new TopicFanout<Recorder>(engine.log, engine.broker);
    const room = { tenant: "t", topic: "room" };
    const [a, b, c] = [new Recorder(), new Recorder(), new Recorder()];
    fanout.join(room, a);
    fanout.join(room, a); // joining twice is one membership
    fanout.join(room, b);
    fanout.join({ tenant: "other", topic: "room" }, c);
    assert.equal(fanout.size, 2);

    b.throws = true;
    await engine.log.append(room, [{ data: 1 }, { data: 2 }], { autoCreate: true });
    engine.broker.publishEphemeral(room, { id: "e1", topic: "room", data: null, time: 0 });
    assert.deepEqual(a.live, [1, 2], "delivered once, in order, despite b throwing");
    assert.deepEqual(a.ephemeral, ["e1"]);
    assert.deepEqual(b.ephemeral, ["e1"]);
    assert.deepEqual(c.live, [], "another tenant's topic of the same name hears nothing");

    fanout.leave(room, b);
    fanout.leave(room, b); // leaving twice changes nothing
    b.throws = false;
    await engine.log.append(room, [{ data: 3 }], { autoCreate: true });
    assert.deepEqual(a.live, [1, 2, 3]);
    assert.deepEqual(b.live, []);

    fanout.leave(room, a);
    assert.equal(fanout.size, 1, "the topic's listeners are gone with its last member");
    await engine.log.append(room, [{ data: 4 }], { autoCreate: true });
    assert.deepEqual(a.live, [1, 2, 3]);

    fanout.join(room, b);
    await engine.log.append(room, [{ data: 5 }], { autoCreate: true });
    assert.deepEqual(b.live, [5], "a topic joined again is listened to again");
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
