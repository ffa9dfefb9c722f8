import { test } from "node:test";
import assert from "node:assert/strict";
import { newEpoch, newEventId } from "./ids.ts";

test("event ids are 26 base32 characters after evt_, unique, and ordered by their time prefix", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) ids.add(newEventId(1_700_000_000_000 + i));
  assert.equal(ids.size, 10_000);
  for (const id of ids) assert.match(id, /^evt_[0-9a-hjkmnp-tv-z]{26}$/);
  assert.ok(newEventId(1_700_000_000_000) < newEventId(1_700_000_000_001));
  assert.equal(newEventId(0).slice(4, 14), "0000000000");
});

test("epochs are 8 random base32 characters", () => {
  const epochs = new Set(Array.from({ length: 1000 }, () => newEpoch()));
  assert.ok(epochs.size > 990);
  for (const e of epochs) assert.match(e, /^[0-9a-hjkmnp-tv-z]{8}$/);
});
