import { test } from "node:test";
import assert from "node:assert/strict";
import { isValidCoordinationPattern, isValidPattern, isValidTopicName, isValidTenant, matchesPattern, matchesTokens, personalChannel } from "./names.ts";

test("topic names accept dotted tokens and refuse wildcards, blanks and empty tokens", () => {
  for (const ok of ["orders", "room.42", "user:alice", "a.b-c_d.e@f=g+h"]) assert.ok(isValidTopicName(ok), ok);
  for (const bad of ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "é", "x".repeat(201), "a/b"])
    assert.ok(!isValidTopicName(bad), bad);
});

test("tenant names are short identifiers", () => {
  assert.ok(isValidTenant("acme"));
  assert.ok(isValidTenant("t-1_x"));
  assert.ok(!isValidTenant(""));
  assert.ok(!isValidTenant("-x"));
  assert.ok(!isValidTenant("a.b"));
});

test("* matches one token and trailing > matches one or more", () => {
  assert.ok(matchesPattern("room.*", "room.1"));
  assert.ok(!matchesPattern("room.*", "room.1.x"));
  assert.ok(!matchesPattern("room.*", "room"));
  assert.ok(matchesPattern("room.>", "room.1.x"));
  assert.ok(!matchesPattern("room.>", "room"));
  assert.ok(matchesPattern(">", "anything.at.all"));
  assert.ok(matchesPattern("orders", "orders"));
  assert.ok(!matchesPattern("orders", "orders2"));
  assert.ok(matchesPattern("*.x.>", "a.x.b.c"));
});

test("patterns allow > only as the last token", () => {
  assert.ok(isValidPattern("a.>"));
  assert.ok(!isValidPattern("a.>.b"));
  assert.ok(isValidPattern("*"));
  assert.ok(!isValidPattern("a..b"));
});

test("personal channels are matched only by #*, > or their exact name", () => {
  assert.ok(matchesPattern("#*", "#alice"));
  assert.ok(matchesPattern(">", "#alice"));
  assert.ok(matchesPattern("#alice", "#alice"));
  assert.ok(!matchesPattern("#alice", "#bob"));
  assert.ok(!matchesPattern("*", "#alice"));
  assert.ok(!matchesPattern("#*", "room.1"));
  assert.ok(isValidPattern("#*"));
  assert.ok(isValidPattern("#bob@example.com"));
  assert.equal(personalChannel("bob@example.com"), "#bob@example.com");
  assert.equal(personalChannel("with space"), "#with%20space");
  assert.equal(personalChannel("auth0|5f7c"), "#auth0%7C5f7c");
  assert.equal(personalChannel("x".repeat(300)), undefined);
  assert.ok(!isValidTopicName("#alice"), "a personal channel is not a topic name for the topic API");
});

test("coordination patterns: the topic wildcards over free-form names, no control characters", () => {
  for (const ok of ["gpu.*", "summarize.>", ">", "model:gpt-4o", "run/v2.*"]) assert.equal(isValidCoordinationPattern(ok), true, ok);
  for (const bad of ["", "a.>.b", "a..b", "a\nb", "x".repeat(401)]) assert.equal(isValidCoordinationPattern(bad), false, JSON.stringify(bad));
  assert.equal(matchesTokens("gpu.*", "gpu.a100"), true);
  assert.equal(matchesTokens("gpu.*", "gpu.a100.x"), false);
  assert.equal(matchesTokens("summarize.>", "summarize.evt_1/v2"), true);
  assert.equal(matchesTokens("summarize.>", "summarize"), false);
  assert.equal(matchesTokens(">", "#alice"), true, "no personal-channel rule outside topics");
});
