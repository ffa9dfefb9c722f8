import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePublishBody } from "./publish-request.ts";
import { isBatonError } from "../errors/baton-error.ts";

function failsOn(body: unknown, field: RegExp, header?: string): void {
  assert.throws(() => parsePublishBody(body, 10, header), (e: unknown) => isBatonError(e) && e.code === "VALIDATION_FAILED" && field.test(e.message));
}

test("a single event keeps every allowed field and lower-cases header names", () => {
  const { events, batch } = parsePublishBody({ data: null, key: "k", type: "t", schemaVersion: 2, causalId: "c", ttlMs: 5, headers: { TraceParent: "x" } }, 10, "idem");
  assert.equal(batch, false);
  assert.deepEqual(events, [{ data: null, key: "k", type: "t", schemaVersion: 2, causalId: "c", ttlMs: 5, headers: { traceparent: "x" }, idempotencyKey: "idem" }]);
});

test("the body's idempotencyKey wins over the header", () => {
  assert.equal(parsePublishBody({ data: 1, idempotencyKey: "body" }, 10, "header").events[0]!.idempotencyKey, "body");
});

test("invalid events name the offending field", () => {
  failsOn({}, /body\.data/);
  failsOn({ data: 1, extra: 1 }, /body\.extra/);
  failsOn({ data: 1, ttlMs: 0 }, /ttlMs/);
  failsOn({ data: 1, ttlMs: 1.5 }, /ttlMs/);
  failsOn({ data: 1, schemaVersion: 0 }, /schemaVersion/);
  failsOn({ data: 1, key: "" }, /key/);
  failsOn({ data: 1, key: "x".repeat(257) }, /key/);
  failsOn({ data: 1, headers: { "bad name": "v" } }, /headers/);
  failsOn({ data: 1, headers: { a: 1 } }, /headers\.a/);
  failsOn({ data: 1, headers: { Trace: "1", trace: "2" } }, /headers\.trace: repeats a header name/);
  failsOn(null, /body/);
  failsOn("text", /body/);
});

test("batches are bounded, non-empty, and refuse the single-event header", () => {
  assert.equal(parsePublishBody({ events: [{ data: 1 }, { data: 2 }] }, 10).events.length, 2);
  failsOn({ events: [] }, /events/);
  failsOn({ events: Array.from({ length: 11 }, () => ({ data: 1 })) }, /at most 10/);
  failsOn({ events: [{ data: 1 }, { nope: 1 }] }, /events\[1\]/);
  failsOn({ events: [{ data: 1 }] }, /Idempotency-Key/, "h");
  failsOn({ events: [{ data: 1 }], more: 1 }, /batch/);
});

test("data nested deeper than 64 levels is refused (it could not be stored and read back)", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 65; i++) deep = [deep];
  failsOn({ data: deep }, /body\.data: nests/);
  let ok: unknown = 1;
  for (let i = 0; i < 64; i++) ok = { a: ok };
  assert.equal(parsePublishBody({ data: ok }, 10).events.length, 1);
});
