/**
 * The gateway at the frame level: authentication outcomes, protocol errors and close codes,
 * token refresh and expiry. Raw WebSocket frames, so every byte is the test's own.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { RawSocket, until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
before(async () => {
  baton = await startBaton({ env: { BATON_WS_MAX_MESSAGE_BYTES: "64KiB", BATON_WS_EXPIRY_GRACE: "500ms" } });
});
after(() => baton.destroy());

async function connected(claims: Parameters<typeof token>[0] = { tenant: "acme", sub: "u" }, ttlMs?: number): Promise<RawSocket> {
  const s = new RawSocket(baton.url);
  await s.opened;
  s.send(JSON.stringify({ id: 1, connect: { token: await token(claims, ttlMs) } }));
  const r = await s.reply(1);
  assert.ok(r.connect, JSON.stringify(r));
  return s;
}

test("connect answers client id, ping/pong and token expiry (ttl)", async () => {
  const s = await connected({ tenant: "acme", sub: "u" }, 60_000);
  const r = await s.reply(1);
  assert.match(r.connect.client, /^[0-9a-f-]{36}$/);
  assert.equal(r.connect.pong, true);
  assert.ok(r.connect.ping > 0);
  assert.equal(r.connect.expires, true);
  assert.ok(r.connect.ttl > 50 && r.connect.ttl <= 60);
  assert.equal(r.error, undefined);
  s.close();
});

test("connect and subscribe in one frame are answered in order", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  s.send(`${JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "u" }) } })}\n${JSON.stringify({ id: 2, subscribe: { channel: "frames.a", flag: 1 } })}`);
  await s.reply(2);
  const ids = s.messages().filter((m) => m.id).map((m) => m.id);
  assert.deepEqual(ids, [1, 2]);
  const sub = s.messages().find((m) => m.id === 2).subscribe;
  assert.deepEqual([sub.recoverable, sub.positioned, typeof sub.epoch, sub.offset], [true, true, "string", 0]);
  s.close();
});

const closes: [string, (s: RawSocket) => Promise<void> | void, number][] = [
  ["a forged token closes 3500", (s) => s.send(JSON.stringify({ id: 1, connect: { token: "a.b.c" } })), 3500],
  ["no token closes 3500", (s) => s.send(JSON.stringify({ id: 1, connect: {} })), 3500],
  ["malformed JSON closes 3501", (s) => s.send("{nope"), 3501],
  ["a command before connect closes 3501", (s) => s.send(JSON.stringify({ id: 1, subscribe: { channel: "x" } })), 3501],
  ["an unknown command closes 3501", (s) => s.send(JSON.stringify({ id: 1, teleport: {} })), 3501],
  ["a binary frame closes 3501", (s) => s.send(new Uint8Array([1, 2, 3])), 3501],
  ["a command without id closes 3501", (s) => s.send(JSON.stringify({ connect: {} })), 3501],
  ["an oversized message closes 1009", (s) => s.send("x".repeat(70_000)), 1009],
];
for (const [name, act, code] of closes) {
  test(name, async () => {
    const s = new RawSocket(baton.url);
    await s.opened;
    await act(s);
    await s.closed;
    assert.equal(s.closeCode, code);
    if (code >= 3000) assert.ok((s.closeReason ?? "").length > 0, "terminal codes carry a plain-text reason");
  });
}

test("an expired token at connect is answered with error 109 (the client fetches a new one)", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  const expired = await token({ tenant: "acme", sub: "u" }, 1);
  await new Promise((r) => setTimeout(r, 1100));
  s.send(JSON.stringify({ id: 1, connect: { token: expired } }));
  const r = await s.reply(1);
  assert.equal(r.error.code, 109);
  s.close();
});

test("refresh replaces the token without reconnecting; another user's token closes 3500", async () => {
  const s = await connected({ tenant: "acme", sub: "u" }, 5_000);
  s.send(JSON.stringify({ id: 2, refresh: { token: await token({ tenant: "acme", sub: "u" }, 120_000) } }));
  const r = await s.reply(2);
  assert.equal(r.refresh.expires, true);
  assert.ok(r.refresh.ttl > 100);
  s.send(JSON.stringify({ id: 3, refresh: { token: await token({ tenant: "acme", sub: "someone-else" }) } }));
  await s.closed;
  assert.equal(s.closeCode, 3500);
});

test("unknown methods get error replies and the connection stays", async () => {
  const s = await connected();
  s.send(JSON.stringify({ id: 2, presence: { channel: "x" } }));
  s.send(JSON.stringify({ id: 3, rpc: { method: "x", data: {} } }));
  s.send(JSON.stringify({ id: 4, subscribe: { channel: "bad..name" } }));
  s.send(JSON.stringify({ id: 5, unsubscribe: { channel: "never.subscribed" } }));
  assert.equal((await s.reply(2)).error.code, 108);
  assert.equal((await s.reply(3)).error.code, 104);
  assert.equal((await s.reply(4)).error.code, 102);
  assert.deepEqual((await s.reply(5)).unsubscribe, {});
  s.send(JSON.stringify({ id: 6, subscribe: { channel: "frames.ok" } }));
  s.send(JSON.stringify({ id: 7, subscribe: { channel: "frames.ok" } }));
  assert.ok((await s.reply(6)).subscribe);
  assert.equal((await s.reply(7)).error.code, 105);
  s.close();
});

test("a publish over the socket answers with the event id and offset once durable", async () => {
  const s = await connected({ tenant: "acme", sub: "p", publish: ["frames.*"], subscribe: ["frames.*"] });
  s.send(JSON.stringify({ id: 2, publish: { channel: "frames.pub", data: { a: 1 }, idempotency_key: "once" } }));
  s.send(JSON.stringify({ id: 3, publish: { channel: "frames.pub", data: { a: 1 }, idempotency_key: "once" } }));
  s.send(JSON.stringify({ id: 4, publish: { channel: "elsewhere", data: 1 } }));
  const first = (await s.reply(2)).publish;
  const second = (await s.reply(3)).publish;
  assert.equal(first.offset, 1);
  assert.match(first.event_id, /^evt_/);
  assert.deepEqual(second, { ...first, duplicate: true });
  assert.equal((await s.reply(4)).error.code, 103);
  s.close();
});

test("a connection whose token expires without refresh is closed 3005", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  // exp has one-second resolution: a 1.5 s token expires within 1-2 s, then the grace runs.
  s.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "u" }, 1500) } }));
  await s.reply(1);
  await until(() => s.closeCode !== undefined, 10_000, "close after expiry");
  assert.equal(s.closeCode, 3005);
});

test("rpc baton.publish answers the publish result as rpc data; other methods get 104", async () => {
  const s = await connected({ tenant: "acme", sub: "p", publish: ["frames.*"] });
  s.send(JSON.stringify({ id: 2, rpc: { method: "baton.publish", data: { channel: "frames.rpc", data: { x: 1 } } } }));
  s.send(JSON.stringify({ id: 3, rpc: { method: "baton.publish", data: { channel: "nope", data: 1 } } }));
  s.send(JSON.stringify({ id: 4, rpc: { method: "other", data: {} } }));
  const r = (await s.reply(2)).rpc;
  assert.equal(r.data.offset, 1);
  assert.match(r.data.event_id, /^evt_/);
  assert.equal((await s.reply(3)).error.code, 103);
  assert.equal((await s.reply(4)).error.code, 104);
  s.close();
});

test("a client sending commands faster than its rate is closed 3013", async () => {
  const s = await connected();
  for (let f = 0; f < 4; f++) {
    s.send(Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: f * 500 + i + 10, history: { channel: "frames.none" } })).join("\n"));
  }
  await s.closed;
  assert.equal(s.closeCode, 3013);
});

test("a subscriber of a topic that is deleted and recreated is told to resubscribe (2500), not fed the new history", async () => {
  const s = await connected({ tenant: "acme", sub: "d", subscribe: ["frames.>"] });
  const admin = await token({ tenant: "acme", sub: "ops", admin: true });
  await api(baton.url, admin, "POST", "/v1/topics/frames.recreated/events", { data: 1 });
  s.send(JSON.stringify({ id: 2, subscribe: { channel: "frames.recreated" } }));
  await s.reply(2);
  assert.equal((await api(baton.url, admin, "DELETE", "/v1/topics/frames.recreated")).status, 204);
  await api(baton.url, admin, "POST", "/v1/topics/frames.recreated/events", { data: "new-1" });
  await api(baton.url, admin, "POST", "/v1/topics/frames.recreated/events", { data: "new-2" });
  await until(() => s.messages().some((m) => m.push?.unsubscribe), 5000, "unsubscribe push");
  const push = s.messages().find((m) => m.push?.unsubscribe).push;
  assert.deepEqual([push.channel, push.unsubscribe.code], ["frames.recreated", 2500]);
  assert.ok(!s.messages().some((m) => m.push?.pub), "nothing of the new history arrived on the old position");
  s.close();
});

test("history rejects a non-integer limit and a since older than retention; reverse with since null works", async () => {
  const s = await connected({ tenant: "acme", sub: "h", subscribe: ["frames.>"] });
  const admin = await token({ tenant: "acme", sub: "ops", admin: true });
  await api(baton.url, admin, "POST", "/v1/topics", { name: "frames.hist", retention: { maxEvents: 2 } });
  for (let i = 1; i <= 5; i++) await api(baton.url, admin, "POST", "/v1/topics/frames.hist/events", { data: i });
  const deadline = Date.now() + 10_000;
  while ((await api(baton.url, admin, "GET", "/v1/topics/frames.hist")).body.firstSeq < 4) {
    assert.ok(Date.now() < deadline, "retention did not run");
    await new Promise((r) => setTimeout(r, 100));
  }
  s.send(JSON.stringify({ id: 2, history: { channel: "frames.hist", limit: 1.5 } }));
  s.send(JSON.stringify({ id: 3, history: { channel: "frames.hist", limit: 10, since: { offset: 1 } } }));
  s.send(JSON.stringify({ id: 4, history: { channel: "frames.hist", limit: 10, reverse: true, since: null } }));
  assert.equal((await s.reply(2)).error.code, 107);
  assert.equal((await s.reply(3)).error.code, 112);
  assert.deepEqual((await s.reply(4)).history.publications.map((p: { data: number }) => p.data), [5, 4]);
  s.close();
});

test("a reconnecting client may send connect and a subscribe for each of its subscriptions in one frame", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  const lines = [JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "many" }) } })];
  for (let i = 0; i < 450; i++) lines.push(JSON.stringify({ id: i + 2, subscribe: { channel: `frames.many.${i}` } }));
  s.send(lines.join("\n"));
  await s.reply(451, 30_000);
  assert.equal(s.closeCode, undefined);
  assert.ok(s.messages().filter((m) => m.subscribe).length === 450);
  s.close();
});

test("limits: one subscription past BATON_WS_MAX_SUBSCRIPTIONS gets 106; one socket past BATON_WS_MAX_CONNECTIONS is closed 3504", async () => {
  const small = await startBaton({ env: { BATON_WS_MAX_SUBSCRIPTIONS: "3", BATON_WS_MAX_CONNECTIONS: "2" } });
  try {
    const first = new RawSocket(small.url);
    await first.opened;
    first.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "limits" }) } }));
    await first.reply(1);
    // The personal channel #limits counts: two more fit, the third is refused.
    for (let i = 0; i < 3; i++) first.send(JSON.stringify({ id: i + 2, subscribe: { channel: `lim.${i}` } }));
    assert.ok((await first.reply(2)).subscribe);
    assert.ok((await first.reply(3)).subscribe);
    assert.equal((await first.reply(4)).error.code, 106);
    const second = new RawSocket(small.url);
    await second.opened;
    const third = new RawSocket(small.url);
    await third.closed;
    assert.equal(third.closeCode, 3504);
    first.close();
    second.close();
  } finally {
    await small.destroy();
  }
});

test("history with a wild since offset answers at once (107 for non-integers, an empty page past the top)", async () => {
  const s = await connected({ tenant: "acme", sub: "h2", subscribe: ["frames.>"] });
  await api(baton.url, await token({ tenant: "acme", sub: "b" }), "POST", "/v1/topics/frames.wild/events", { data: 1 });
  s.send(JSON.stringify({ id: 2, history: { channel: "frames.wild", limit: 10, reverse: true, since: { offset: 1e21 } } }));
  s.send(JSON.stringify({ id: 3, history: { channel: "frames.wild", limit: 10, reverse: true, since: { offset: 9007199254740991 } } }));
  s.send(JSON.stringify({ id: 4, history: { channel: "frames.wild", limit: 10, since: { offset: 9007199254740990 } } }));
  assert.equal((await s.reply(2)).error.code, 107);
  assert.deepEqual((await s.reply(3)).history.publications.map((p: { data: number }) => p.data), [1]);
  assert.deepEqual((await s.reply(4)).history.publications, []);
  s.close();
});

test("socket publishes count in the append metrics", async () => {
  const metric = async (): Promise<number> => Number(/^baton_streams_appended_events_total (\d+)/m.exec(await (await fetch(`${baton.url}/metrics`)).text())?.[1] ?? NaN);
  const before = await metric();
  const s = await connected({ tenant: "acme", sub: "m", publish: ["frames.*"] });
  s.send(JSON.stringify({ id: 2, publish: { channel: "frames.metric", data: 1 } }));
  await s.reply(2);
  assert.equal(await metric(), before + 1);
  s.close();
});

test("publishes sent back to back on one socket take sequences in the order they were sent", async () => {
  const s = await connected({ tenant: "acme", sub: "u", publish: ["order.*"] });
  try {
    const n = 40;
    const ids = Array.from({ length: n }, (_, i) => 100 + i);
    // Half as publish commands, half as baton.publish RPCs, all in one frame.
    s.send(ids.map((id, i) => JSON.stringify(i % 2 === 0 ? { id, publish: { channel: "order.burst", data: { i } } } : { id, rpc: { method: "baton.publish", data: { channel: "order.burst", data: { i } } } })).join("\n"));
    const offsets: number[] = [];
    for (const id of ids) {
      const r = await s.reply(id);
      offsets.push((r.publish ?? r.rpc.data).offset as number);
    }
    assert.deepEqual(offsets, Array.from({ length: n }, (_, i) => i + 1));
  } finally {
    s.close();
  }
});
