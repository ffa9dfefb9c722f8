import { test } from "node:test";
import assert from "node:assert/strict";
import { Router } from "./router.ts";

test("router matches params, reports 405 with the allowed methods, and 404 otherwise", () => {
  const r = new Router();
  const h = (): void => undefined;
  r.on("GET", "/v1/topics/:topic/events", h).on("POST", "/v1/topics/:topic/events", h);
  const m = r.match("GET", "/v1/topics/room%2E1/events");
  assert.equal(m.kind, "found");
  assert.deepEqual(m.kind === "found" && m.params, { topic: "room.1" });
  const n = r.match("DELETE", "/v1/topics/x/events");
  assert.deepEqual(n.kind === "method-not-allowed" && n.allow, ["GET", "POST"]);
  assert.equal(r.match("GET", "/v1/nope").kind, "not-found");
  assert.equal(r.match("GET", "/v1/topics/%E0%A4%A/events").kind, "not-found");
});
