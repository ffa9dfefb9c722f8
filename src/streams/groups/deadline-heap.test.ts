import { test } from "node:test";
import assert from "node:assert/strict";
import { DeadlineHeap } from "./deadline-heap.ts";

test("pops only due items, earliest first", () => {
  const h = new DeadlineHeap<string>();
  const deadlines = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000);
  for (const d of deadlines) h.push(d, `i${d}`);
  assert.equal(h.peek(), 0);
  assert.equal(h.popDue(-1), undefined);
  const out: number[] = [];
  for (let item = h.popDue(499); item !== undefined; item = h.popDue(499)) out.push(Number(item.slice(1)));
  assert.deepEqual(out, [...deadlines].filter((d) => d <= 499).sort((a, b) => a - b));
  assert.equal(h.size, deadlines.filter((d) => d > 499).length);
});
