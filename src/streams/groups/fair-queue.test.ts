import { test } from "node:test";
import assert from "node:assert/strict";
import { FairQueue } from "./fair-queue.ts";

test("a hot key and a cold key are served alternately, each in its own order", () => {
  const q = new FairQueue<string>();
  for (let i = 0; i < 1000; i++) q.push("hot", `h${i}`);
  q.push("cold", "c0");
  q.push("cold", "c1");
  assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ["h0", "c0", "h1", "c1", "h2"]);
  assert.equal(q.size, 997);
});

test("a lane that empties leaves the rotation and rejoins at the back", () => {
  const q = new FairQueue<number>();
  q.push("a", 1);
  q.push("b", 2);
  assert.equal(q.shift(), 1);
  q.push("a", 3);
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [2, 3, undefined]);
  assert.equal(q.size, 0);
});

test("pushFront keeps a retried item ahead of its lane; removeWhere drops items", () => {
  const q = new FairQueue<number>();
  q.push("a", 2);
  q.push("a", 3);
  q.pushFront("a", 1);
  q.removeWhere((n) => n === 2);
  assert.equal(q.size, 2);
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [1, 3, undefined]);
});

test("long single-lane use stays correct across compaction", () => {
  const q = new FairQueue<number>();
  let next = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) q.push("x", round * 100 + i);
    for (let i = 0; i < 100; i++) assert.equal(q.shift(), next++);
  }
});
