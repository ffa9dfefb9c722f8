/**
 * The realtime gateway driven by the unmodified `centrifuge` npm client against a real Baton
 * process: connect, subscribe, live publications, client publish, history, and resume.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { PublicationContext, SubscribedContext } from "centrifuge";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { client, collect, once, until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
let pubToken: string;

before(async () => {
  baton = await startBaton({ env: { BATON_WS_PING_INTERVAL: "2s" } });
  pubToken = await token({ tenant: "acme", sub: "backend" });
});
after(() => baton.destroy());

const publish = (topic: string, data: unknown): Promise<{ status: number; body: any }> =>
  api(baton.url, pubToken, "POST", `/v1/topics/${topic}/events`, { data, type: "demo", key: "k1" });

describe("centrifuge client", () => {
  test("connects with a Baton token and receives live publications with offsets and tags", async () => {
    const c = client(baton.url, await token({ tenant: "acme", sub: "alice", subscribe: ["room.*"], publish: [] }));
    try {
      c.connect();
      const connected = await once<{ client: string }>(c, "connected");
      assert.match(connected.client, /^[0-9a-f-]{36}$/);
      const sub = c.newSubscription("room.live");
      const got = collect(sub);
      sub.subscribe();
      const subscribed = await once<SubscribedContext>(sub, "subscribed");
      assert.equal(subscribed.recoverable, true);
      assert.equal(subscribed.streamPosition?.offset, 0);
      const r1 = await publish("room.live", { n: 1 });
      await publish("room.live", { n: 2 });
      await until(() => got.length === 2, 5000, "two publications");
      assert.deepEqual(got.map((p) => [p.offset, p.data.n]), [[1, 1], [2, 2]]);
      assert.equal(got[0]!.tags?.["id"], r1.body.id);
      assert.equal(got[0]!.tags?.["type"], "demo");
      assert.equal(got[0]!.tags?.["key"], "k1");
    } finally {
      c.disconnect();
    }
  });

  test("a client publish is durable and reaches other subscribers", async () => {
    const writer = client(baton.url, await token({ tenant: "acme", sub: "w", publish: ["chat.*"], subscribe: ["chat.*"] }));
    const reader = client(baton.url, await token({ tenant: "acme", sub: "r", subscribe: ["chat.*"], publish: [] }));
    try {
      reader.connect();
      const rsub = reader.newSubscription("chat.1");
      const got = collect(rsub);
      rsub.subscribe();
      await once(rsub, "subscribed");
      writer.connect();
      await once(writer, "connected");
      await writer.publish("chat.1", { text: "hello" });
      await until(() => got.length === 1, 5000, "publication");
      assert.deepEqual(got[0]!.data, { text: "hello" });
      const stored = await api(baton.url, pubToken, "GET", "/v1/topics/chat.1/events?from=1");
      assert.deepEqual(stored.body.events.map((e: { data: unknown }) => e.data), [{ text: "hello" }]);
    } finally {
      writer.disconnect();
      reader.disconnect();
    }
  });

  test("history returns stored publications and the stream position", async () => {
    for (let i = 1; i <= 5; i++) await publish("hist.a", i);
    const c = client(baton.url, await token({ tenant: "acme", sub: "h", subscribe: ["hist.*"], publish: [] }));
    try {
      c.connect();
      await once(c, "connected");
      const all = await c.history("hist.a", { limit: -1 });
      assert.deepEqual(all.publications.map((p) => p.data), [1, 2, 3, 4, 5]);
      assert.equal(all.offset, 5);
      const since = await c.history("hist.a", { limit: 2, since: { offset: 2, epoch: all.epoch } });
      assert.deepEqual(since.publications.map((p) => p.offset), [3, 4]);
      const newest = await c.history("hist.a", { limit: 2, reverse: true });
      assert.deepEqual(newest.publications.map((p) => p.data), [5, 4]);
    } finally {
      c.disconnect();
    }
  });

  test("subscribing outside the token's patterns is refused with 103 and the socket stays", async () => {
    const c = client(baton.url, await token({ tenant: "acme", sub: "n", subscribe: ["room.*"], publish: [] }));
    try {
      c.connect();
      await once(c, "connected");
      const sub = c.newSubscription("secret.plans");
      sub.subscribe();
      const unsub = await once<{ code: number }>(sub, "unsubscribed");
      assert.equal(unsub.code, 103);
      assert.equal(c.state, "connected");
    } finally {
      c.disconnect();
    }
  });

  test("a tenant's socket never sees another tenant's topic of the same name", async () => {
    const other = client(baton.url, await token({ tenant: "globex", sub: "g", subscribe: [">"], publish: [] }));
    try {
      other.connect();
      const sub = other.newSubscription("room.shared");
      const got = collect(sub);
      sub.subscribe();
      await once(sub, "subscribed");
      await publish("room.shared", "acme-only");
      await api(baton.url, await token({ tenant: "globex", sub: "b" }), "POST", "/v1/topics/room.shared/events", { data: "globex" });
      await until(() => got.length >= 1, 5000, "globex publication");
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got.map((p) => p.data), ["globex"]);
    } finally {
      other.disconnect();
    }
  });
});

describe("resume", () => {
  test("a client that reconnects gets the missed events in order, then live, with recovered=true", async () => {
    const c = client(baton.url, await token({ tenant: "acme", sub: "res", subscribe: ["res.*"], publish: [] }));
    try {
      c.connect();
      const sub = c.newSubscription("res.a");
      const got = collect(sub);
      const subscribedEvents: SubscribedContext[] = [];
      sub.on("subscribed", (ctx) => subscribedEvents.push(ctx));
      sub.subscribe();
      await until(() => subscribedEvents.length === 1);
      await publish("res.a", 1);
      await publish("res.a", 2);
      await until(() => got.length === 2);
      c.disconnect();
      for (let i = 3; i <= 6; i++) await publish("res.a", i);
      c.connect();
      await until(() => subscribedEvents.length === 2);
      assert.equal(subscribedEvents[1]!.wasRecovering, true);
      assert.equal(subscribedEvents[1]!.recovered, true);
      await until(() => got.length === 6);
      await publish("res.a", 7);
      await until(() => got.length === 7);
      assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(got.map((p) => p.data), [1, 2, 3, 4, 5, 6, 7]);
    } finally {
      c.disconnect();
    }
  });

  test("when retention no longer covers the position, the client is told recovered=false", async () => {
    const admin = await token({ tenant: "acme", sub: "ops", admin: true });
    await api(baton.url, admin, "POST", "/v1/topics", { name: "res.short", retention: { maxEvents: 2 } });
    const c = client(baton.url, await token({ tenant: "acme", sub: "res2", subscribe: ["res.*"], publish: [] }));
    try {
      c.connect();
      const sub = c.newSubscription("res.short");
      const subscribedEvents: SubscribedContext[] = [];
      sub.on("subscribed", (ctx) => subscribedEvents.push(ctx));
      sub.subscribe();
      await until(() => subscribedEvents.length === 1);
      c.disconnect();
      for (let i = 1; i <= 6; i++) await publish("res.short", i);
      // The sweeper runs every second; wait until it has reclaimed the head.
      const deadline = Date.now() + 10_000;
      while ((await api(baton.url, admin, "GET", "/v1/topics/res.short")).body.firstSeq <= 1) {
        assert.ok(Date.now() < deadline, "retention reclaimed nothing in 10 s");
        await new Promise((r) => setTimeout(r, 100));
      }
      c.connect();
      await until(() => subscribedEvents.length === 2);
      assert.equal(subscribedEvents[1]!.wasRecovering, true);
      assert.equal(subscribedEvents[1]!.recovered, false);
      assert.equal(subscribedEvents[1]!.streamPosition?.offset, 6);
    } finally {
      c.disconnect();
    }
  });

  test("no gap and no duplicate when clients reconnect while events are being published", async () => {
    const N = 400;
    const readers = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const c = client(baton.url, await token({ tenant: "acme", sub: `race-${i}`, subscribe: ["race.*"], publish: [] }));
        const sub = c.newSubscription("race.a");
        const got: PublicationContext[] = [];
        sub.on("publication", (ctx) => got.push(ctx));
        c.connect();
        sub.subscribe();
        await once(sub, "subscribed");
        return { c, got };
      }),
    );
    try {
      let published = 0;
      const writer = (async () => {
        for (let i = 1; i <= N; i++) {
          await publish("race.a", i);
          published = i;
        }
      })();
      // Drop and restore every reader's connection repeatedly during the publishing.
      while (published < N) {
        for (const r of readers) {
          r.c.disconnect();
          r.c.connect();
        }
        await new Promise((r) => setTimeout(r, 30 + Math.random() * 40));
      }
      await writer;
      for (const r of readers) {
        await until(() => r.got.length >= N, 15_000, `reader to catch up (${r.got.length}/${N})`);
        await new Promise((res) => setTimeout(res, 50));
        const offsets = r.got.map((p) => p.offset);
        assert.deepEqual(offsets, Array.from({ length: N }, (_, i) => i + 1), "every offset once, in order");
      }
    } finally {
      for (const r of readers) r.c.disconnect();
    }
  });
});
