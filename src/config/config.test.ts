import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { parseBytes, parseDuration } from "./duration.ts";

test("flags win over environment variables, which win over defaults", () => {
  const c = loadConfig({ port: "9000" }, { BATON_PORT: "8000", BATON_DATA_DIR: "/tmp/x" });
  assert.equal(c.port, 9000);
  assert.equal(c.dataDir, "/tmp/x");
  assert.equal(c.engine, "embedded");
  assert.equal(c.dedupWindowMs, 86_400_000);
  assert.equal(c.maxBodyBytes, 1_048_576);
  assert.equal(c.autoCreateTopics, true);
});

test("bad values name the variable", () => {
  assert.throws(() => loadConfig({}, { BATON_PORT: "http" }), /BATON_PORT/);
  assert.throws(() => loadConfig({}, { BATON_ENGINE: "redis://x" }), /BATON_ENGINE/);
  assert.throws(() => loadConfig({}, { BATON_AUTO_CREATE_TOPICS: "maybe" }), /BATON_AUTO_CREATE_TOPICS/);
  // A bad flag is named as the flag the user typed, with the error model's code.
  assert.throws(() => loadConfig({ port: "99999" }, { BATON_PORT: "7700" }), { code: "VALIDATION_FAILED", message: /^invalid --port: / });
  assert.throws(() => loadConfig({ engine: "redis://x" }, {}), /^BatonError: invalid --engine/);
});

test("durations and sizes", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("42"), 42);
  assert.throws(() => parseDuration("soon"));
  assert.equal(parseBytes("1MiB"), 1_048_576);
  assert.equal(parseBytes("64kib"), 65_536);
  assert.throws(() => parseBytes("1 parsec"));
});
