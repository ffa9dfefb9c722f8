import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, hasAttemptsLeft, type RetryPolicy } from "./retry-policy.ts";

const policy: RetryPolicy = { maxAttempts: 4, initialBackoffMs: 1000, maxBackoffMs: 5000, multiplier: 2 };

test("the bound doubles per failure and stops at the cap", () => {
  const top = (n: number): number => backoffDelay(policy, n, () => 0.999999);
  assert.deepEqual([1, 2, 3, 4, 10].map(top), [999, 1999, 3999, 4999, 4999]);
  assert.equal(backoffDelay(policy, 3, () => 0), 0);
});

test("full jitter spreads retries over the whole window", () => {
  const delays = Array.from({ length: 2000 }, () => backoffDelay(policy, 2));
  const max = Math.max(...delays);
  const min = Math.min(...delays);
  assert.ok(max < 2000 && max > 1800, `max ${max}`);
  assert.ok(min >= 0 && min < 200, `min ${min}`);
  const below = delays.filter((d) => d < 1000).length;
  assert.ok(below > 800 && below < 1200, `half should fall below the midpoint, got ${below}`);
});

test("attempts are counted with the first delivery included", () => {
  assert.equal(hasAttemptsLeft(policy, 3), true);
  assert.equal(hasAttemptsLeft(policy, 4), false);
});
