import { test } from "node:test";
import assert from "node:assert/strict";
import { ListenerSets } from "./listener-sets.ts";

test("one listener, then a second, then removals in any order", () => {
  const sets = new ListenerSets<[number]>();
  const seen: string[] = [];
  const a = (n: number): void => void seen.push(`a${n}`);
  const b = (n: number): void => void seen.push(`b${n}`);
  const offA = sets.add("k", a);
  sets.emit("k", 1);
  const offB = sets.add("k", b);
  sets.emit("k", 2);
  offA();
  sets.emit("k", 3);
  assert.equal(sets.size, 1);
  offB();
  sets.emit("k", 4);
  assert.deepEqual(seen, ["a1", "a2", "b2", "b3"]);
  assert.equal(sets.size, 0, "the key goes with its last listener");
  offB();
  offA();
  assert.equal(sets.size, 0, "removing twice is harmless");
});

test("keys are separate; removing a listener never added changes nothing", () => {
  const sets = new ListenerSets<[]>();
  let x = 0;
  let y = 0;
  sets.add("x", () => x++);
  const offY = sets.add("y", () => y++);
  sets.remove("x", () => undefined);
  sets.emit("x");
  sets.emit("y");
  offY();
  sets.emit("y");
  sets.emit("nobody");
  assert.deepEqual([x, y], [1, 1]);
  assert.equal(sets.size, 1);
});

test("the same listener added twice is called once and removed once", () => {
  const sets = new ListenerSets<[]>();
  let calls = 0;
  const l = (): void => void calls++;
  const off1 = sets.add("k", l);
  sets.add("k", l);
  sets.emit("k");
  assert.equal(calls, 1);
  off1();
  sets.emit("k");
  assert.equal(calls, 1);
  assert.equal(sets.size, 0);
});

test("a throwing listener does not stop the others, alone or in a set", () => {
  const sets = new ListenerSets<[]>();
  const seen: string[] = [];
  sets.add("solo", () => {
    throw new Error("boom");
  });
  assert.doesNotThrow(() => sets.emit("solo"));
  sets.add("k", () => {
    throw new Error("boom");
  });
  sets.add("k", () => void seen.push("second"));
  sets.emit("k");
  assert.deepEqual(seen, ["second"]);
});
