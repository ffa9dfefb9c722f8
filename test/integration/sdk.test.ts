/**
 * Baton's client SDK (packages/sdk) against a real server: typed events, publish with id and
 * sequence, user events and session messages, resume after the server restarts, and resuming
 * from a saved position.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { BatonClient, BatonClientError, type BatonEvent, type SubscribedInfo } from "../../packages/sdk/src/index.ts";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
let backend: string;
before(async () => {
  baton = await startBaton();
  backend = await token({ tenant: "acme", sub: "backend" });
});
after(() => baton.destroy());

async function sdk(sub: string): Promise<BatonClient> {
  const c = new BatonClient(baton.url, { token: await token({ tenant: "acme", sub, publish: ["sdk.*"], subscribe: ["sdk.*"] }), minReconnectDelayMs: 50, maxReconnectDelayMs: 500 });
  return c;
}

test("topic events arrive typed, with sequence, id and metadata", async () => {
  const c = await sdk("a");
  try {
    const events: BatonEvent<{ n: number }>[] = [];
    const t = c.topic<{ n: number }>("sdk.typed");
    t.on("event", (e) => events.push(e));
    const subscribed = new Promise<SubscribedInfo>((r) => t.on("subscribed", r));
    c.connect();
    t.subscribe();
    assert.equal((await subscribed).recovered, false);
    const r = await api(baton.url, backend, "POST", "/v1/topics/sdk.typed/events", { data: { n: 1 }, type: "counter", key: "k", causalId: "evt_c", headers: { traceparent: "00-aa-bb-01" } });
    await until(() => events.length === 1);
    assert.deepEqual(events[0], { topic: "sdk.typed", seq: 1, id: r.body.id, type: "counter", key: "k", causalId: "evt_c", time: events[0]!.time, headers: { traceparent: "00-aa-bb-01" }, ephemeral: false, data: { n: 1 } });
    assert.deepEqual(t.position?.seq, 1);
  } finally {
    c.disconnect();
  }
});

test("publish resolves with id and sequence once durable; an idempotency key stores once", async () => {
  const c = await sdk("p");
  try {
    c.connect();
    const first = await c.publish("sdk.pub", { a: 1 }, { idempotencyKey: "x1" });
    const again = await c.publish("sdk.pub", { a: 1 }, { idempotencyKey: "x1" });
    assert.equal(first.seq, 1);
    assert.deepEqual(again, { ...first, duplicate: true });
    const eph = await c.publish("sdk.pub", { typing: true }, { ephemeral: true });
    assert.equal(eph.seq, undefined);
    await assert.rejects(c.publish("elsewhere", 1), (err: unknown) => err instanceof BatonClientError && err.code === 103 && /permission denied/.test(err.message));
    const h = await c.history("sdk.pub");
    assert.deepEqual(h.events.map((e) => e.data), [{ a: 1 }]);
    assert.equal(h.position.seq, 1);
  } finally {
    c.disconnect();
  }
});

test("user events and session messages reach the right client", async () => {
  const c = await sdk("ulla");
  try {
    const userEvents: BatonEvent[] = [];
    const messages: unknown[] = [];
    c.on("userEvent", (e) => userEvents.push(e));
    c.on("message", (m) => messages.push(m));
    const connected = new Promise<{ clientId: string }>((r) => c.on("connected", r));
    c.connect();
    const { clientId } = await connected;
    await api(baton.url, backend, "POST", "/v1/users/ulla/events", { data: "hi ulla" });
    await api(baton.url, backend, "POST", `/v1/sessions/${clientId}/messages`, { data: "just you" });
    await until(() => userEvents.length === 1 && messages.length === 1);
    assert.equal(userEvents[0]!.topic, "#ulla");
    assert.equal(userEvents[0]!.data, "hi ulla");
    assert.equal(messages[0], "just you");
  } finally {
    c.disconnect();
  }
});

test("after the server restarts, the client reconnects by itself and resumes with no gap", async () => {
  const c = await sdk("r");
  const events: BatonEvent[] = [];
  const subscribed: SubscribedInfo[] = [];
  const t = c.topic("sdk.restart");
  t.on("event", (e) => events.push(e));
  t.on("subscribed", (s) => subscribed.push(s));
  try {
    c.connect();
    t.subscribe();
    await until(() => subscribed.length === 1);
    await api(baton.url, backend, "POST", "/v1/topics/sdk.restart/events", { data: 1 });
    await until(() => events.length === 1);
    baton = await baton.restart();
    await api(baton.url, backend, "POST", "/v1/topics/sdk.restart/events", { events: [{ data: 2 }, { data: 3 }] });
    await until(() => subscribed.length === 2, 15_000, "resubscribe after restart");
    assert.deepEqual([subscribed[1]!.wasRecovering, subscribed[1]!.recovered], [true, true]);
    await api(baton.url, backend, "POST", "/v1/topics/sdk.restart/events", { data: 4 });
    await until(() => events.length === 4);
    assert.deepEqual(events.map((e) => [e.seq, e.data]), [[1, 1], [2, 2], [3, 3], [4, 4]]);
  } finally {
    c.disconnect();
  }
});

test("a new client resumes from a saved position", async () => {
  for (let i = 1; i <= 3; i++) await api(baton.url, backend, "POST", "/v1/topics/sdk.saved/events", { data: i });
  const info = await api(baton.url, backend, "GET", "/v1/topics/sdk.saved");
  const c = await sdk("s");
  try {
    const events: BatonEvent[] = [];
    const t = c.topic("sdk.saved", { since: { seq: 1, epoch: info.body.epoch } });
    const subscribed = new Promise<SubscribedInfo>((r) => t.on("subscribed", r));
    t.on("event", (e) => events.push(e));
    c.connect();
    t.subscribe();
    assert.equal((await subscribed).recovered, true);
    await until(() => events.length === 2);
    assert.deepEqual(events.map((e) => e.data), [2, 3]);
  } finally {
    c.disconnect();
  }
});
