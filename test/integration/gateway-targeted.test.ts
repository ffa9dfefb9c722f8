/**
 * Targeted delivery and the fast path, with the unmodified `centrifuge` client: every session
 * of one user, one session, token-listed channels, and ephemeral publications.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Centrifuge, ServerPublicationContext, ServerSubscribedContext } from "centrifuge";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { client, collect, once, until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
let backend: string;
before(async () => {
  baton = await startBaton();
  backend = await token({ tenant: "acme", sub: "backend", publish: [">"], subscribe: [">"] });
});
after(() => baton.destroy());

function serverPublications(c: Centrifuge): ServerPublicationContext[] {
  const seen: ServerPublicationContext[] = [];
  c.on("publication", (ctx) => seen.push(ctx));
  return seen;
}

async function connect(sub: string, extra: Record<string, unknown> = {}, tenant = "acme"): Promise<{ c: Centrifuge; id: string; pubs: ServerPublicationContext[] }> {
  const c = client(baton.url, await token({ tenant, sub, publish: [], subscribe: ["room.*"], ...extra }));
  const pubs = serverPublications(c);
  c.connect();
  const connected = await once<{ client: string }>(c, "connected");
  return { c, id: connected.client, pubs };
}

test("an event for a user reaches every session of that user, and no one else", async () => {
  const a1 = await connect("alice");
  const a2 = await connect("alice");
  const bob = await connect("bob");
  const otherTenant = await connect("alice", {}, "globex");
  try {
    const r = await api(baton.url, backend, "POST", "/v1/users/alice/events", { data: { note: "for alice" } });
    assert.equal(r.status, 201);
    await until(() => a1.pubs.length === 1 && a2.pubs.length === 1, 5000, "both of alice's sessions");
    assert.equal(a1.pubs[0]!.channel, "#alice");
    assert.deepEqual(a1.pubs[0]!.data, { note: "for alice" });
    assert.equal(a1.pubs[0]!.offset, 1);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(bob.pubs.length, 0);
    assert.equal(otherTenant.pubs.length, 0, "another tenant's alice is another user");
  } finally {
    for (const x of [a1, a2, bob, otherTenant]) x.c.disconnect();
  }
});

test("a user's session resumes its personal channel after a reconnect", async () => {
  const carol = await connect("carol");
  const subscribed: ServerSubscribedContext[] = [];
  carol.c.on("subscribed", (ctx) => subscribed.push(ctx));
  try {
    await api(baton.url, backend, "POST", "/v1/users/carol/events", { data: 1 });
    await until(() => carol.pubs.length === 1);
    carol.c.disconnect();
    await api(baton.url, backend, "POST", "/v1/users/carol/events", { data: 2 });
    await api(baton.url, backend, "POST", "/v1/users/carol/events", { data: 3 });
    carol.c.connect();
    await until(() => carol.pubs.length === 3, 5000, "missed personal events");
    assert.deepEqual(carol.pubs.map((p) => p.data), [1, 2, 3]);
    assert.ok(subscribed.some((s) => s.channel === "#carol" && s.recovered === true));
  } finally {
    carol.c.disconnect();
  }
});

test("a message for one session reaches only that session", async () => {
  const d1 = await connect("dave");
  const d2 = await connect("dave");
  const messages: unknown[][] = [[], []];
  d1.c.on("message", (ctx) => messages[0]!.push(ctx.data));
  d2.c.on("message", (ctx) => messages[1]!.push(ctx.data));
  try {
    const r = await api(baton.url, backend, "POST", `/v1/sessions/${d2.id}/messages`, { data: { only: "d2" } });
    assert.equal(r.status, 202);
    await until(() => messages[1]!.length === 1, 5000, "session message");
    await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(messages, [[], [{ only: "d2" }]]);
    const other = await api(baton.url, await token({ tenant: "globex", sub: "x" }), "POST", `/v1/sessions/${d2.id}/messages`, { data: "cross-tenant" });
    assert.equal(other.status, 202);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(messages[1]!.length, 1, "another tenant cannot reach this session");
  } finally {
    d1.c.disconnect();
    d2.c.disconnect();
  }
});

test("targeting needs the right to publish to users", async () => {
  const narrow = await token({ tenant: "acme", sub: "n", publish: ["room.*"] });
  const r = await api(baton.url, narrow, "POST", "/v1/users/alice/events", { data: 1 });
  assert.deepEqual([r.status, r.body.error.code], [403, "FORBIDDEN"]);
  const m = await api(baton.url, narrow, "POST", "/v1/sessions/00000000-0000-0000-0000-000000000000/messages", { data: 1 });
  assert.deepEqual([m.status, m.body.error.code], [403, "FORBIDDEN"]);
});

test("channels listed in the token are subscribed at connect", async () => {
  const eve = await connect("eve", { channels: ["news.global"] });
  try {
    await api(baton.url, backend, "POST", "/v1/topics/news.global/events", { data: "headline" });
    await until(() => eve.pubs.some((p) => p.channel === "news.global"), 5000, "token channel publication");
    assert.equal(eve.pubs.find((p) => p.channel === "news.global")!.data, "headline");
  } finally {
    eve.c.disconnect();
  }
});

test("ephemeral publications reach subscribers without an offset and are never stored", async () => {
  const c = client(baton.url, await token({ tenant: "acme", sub: "f", subscribe: ["typing.*"], publish: [] }));
  try {
    c.connect();
    const sub = c.newSubscription("typing.room1");
    const got = collect(sub);
    sub.subscribe();
    await once(sub, "subscribed");
    const r = await api(baton.url, backend, "POST", "/v1/topics/typing.room1/events", { data: { typing: true }, ephemeral: true });
    assert.equal(r.status, 202);
    assert.match(r.body.id, /^evt_/);
    assert.equal(r.body.seq, undefined);
    await until(() => got.length === 1, 5000, "ephemeral publication");
    assert.equal(got[0]!.offset, 0, "no offset: the client's position does not move");
    assert.equal(got[0]!.tags?.["ephemeral"], "true");
    const stored = await api(baton.url, backend, "GET", "/v1/topics/typing.room1/events?from=1");
    assert.deepEqual(stored.body.events, []);
    const bad = await api(baton.url, backend, "POST", "/v1/topics/typing.room1/events", { data: 1, ephemeral: true, idempotencyKey: "x" });
    assert.deepEqual([bad.status, bad.body.error.code], [400, "VALIDATION_FAILED"]);
  } finally {
    c.disconnect();
  }
});
