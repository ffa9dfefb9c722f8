import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentEvents } from "./recent-events.ts";
import type { StoredEvent } from "../streams/event.ts";

const event = (topic: string, seq: number): StoredEvent => ({ id: `e${seq}`, tenant: "t", topic, seq, data: seq, time: 1 });

test("entries are found by epoch, tenant, topic and sequence; the oldest goes first", () => {
  const recent = new RecentEvents(2);
  const a = event("a", 1);
  recent.add("ep1", a);
  assert.equal(recent.get("ep1", "t", "a", 1), a);
  assert.equal(recent.get("ep2", "t", "a", 1), undefined, "another incarnation of the topic");
  assert.equal(recent.get("ep1", "t", "b", 1), undefined);
  assert.equal(recent.get("ep1", "u", "a", 1), undefined);
  recent.add("ep1", event("a", 2));
  recent.add("ep1", event("a", 3));
  assert.equal(recent.size, 2);
  assert.equal(recent.get("ep1", "t", "a", 1), undefined, "evicted");
  assert.equal(recent.get("ep1", "t", "a", 3)?.seq, 3);
  const none = new RecentEvents(0);
  none.add("ep1", a);
  assert.equal(none.size, 0);
});

test("the same entry added again is kept, and eviction never removes the newer copy", () => {
  const recent = new RecentEvents(2);
  recent.add("ep", event("a", 1));
  recent.add("ep", event("a", 2));
  const again = event("a", 1);
  recent.add("ep", again);
  assert.equal(recent.get("ep", "t", "a", 1), again);
  assert.equal(recent.topic("ep", "t", "a")?.get(1), again);
});
