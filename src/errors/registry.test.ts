import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ErrorCodes } from "./registry.ts";
import { BatonError, isBatonError } from "./baton-error.ts";

test("docs/errors.md lists exactly the registry's codes, with the same status and retryability", () => {
  const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \| (yes|no) \|/gm)].map((m) => [m[1], Number(m[2]), m[3] === "yes"]);
  const registry = Object.entries(ErrorCodes).map(([code, spec]) => [code, spec.status, spec.retryable]);
  assert.deepEqual(rows.sort(), registry.sort());
});

test("BatonError carries the registry's status and is recognised by brand", () => {
  const e = new BatonError("OVERLOADED", "full", { retryAfterMs: 100 });
  assert.equal(e.status, 503);
  assert.equal(e.retryable, true);
  assert.ok(isBatonError(e));
  assert.ok(!isBatonError(new Error("x")));
  assert.deepEqual(e.toJSON(), { error: { code: "OVERLOADED", message: "full" } });
});
