/**
 * The Protobuf encoding of the socket protocol, driven by centrifuge-js's own protobuf build
 * (`centrifuge/build/protobuf`, the encoding the Dart, Swift and Java SDKs speak) against a real
 * Baton process, and by hand-made binary frames for what a well-behaved client never sends.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Centrifuge, type PublicationContext, type ServerPublicationContext, type SubscribedContext } from "centrifuge/build/protobuf";
import protobuf from "protobufjs";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { client as jsonClient, collect, once, until, wsUrl } from "../support/centrifuge-client.ts";
import { WsPeer } from "../support/ws-peer.ts";

let baton: BatonProcess;
let pubToken: string;

before(async () => {
  baton = await startBaton({ env: { BATON_WS_PING_INTERVAL: "1s", BATON_WS_PONG_TIMEOUT: "1s" } });
  pubToken = await token({ tenant: "acme", sub: "backend", publish: [">"], subscribe: [">"] });
});
after(() => baton.destroy());

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const json = (data: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(data));

function pbClient(tokenValue: string, url = wsUrl(baton.url)): Centrifuge {
  return new Centrifuge(url, { token: tokenValue, websocket: WebSocket, minReconnectDelay: 50, maxReconnectDelay: 500 });
}

const publish = (topic: string, data: unknown): Promise<{ status: number; body: any }> =>
  api(baton.url, pubToken, "POST", `/v1/topics/${topic}/events`, { data, type: "demo", key: "k1" });

describe("centrifuge-js protobuf client", () => {
  test("connects, subscribes and receives live publications whose data is the event's JSON, with offsets and tags", async () => {
    const c = pbClient(await token({ tenant: "acme", sub: "alice", subscribe: ["room.*"] }));
    try {
      c.connect();
      await once(c, "connected");
      const sub = c.newSubscription("room.live");
      const got: PublicationContext[] = [];
      sub.on("publication", (ctx) => got.push(ctx));
      sub.subscribe();
      const subscribed = await once<SubscribedContext>(sub, "subscribed");
      assert.equal(subscribed.recoverable, true);
      const r1 = await publish("room.live", { n: 1, text: "héllo" });
      await publish("room.live", { n: 2 });
      await until(() => got.length === 2, 5000, "two publications");
      assert.deepEqual(got.map((p) => [p.offset, json(p.data as Uint8Array)]), [[1, { n: 1, text: "héllo" }], [2, { n: 2 }]]);
      assert.equal(got[0]!.tags?.["id"], r1.body.id);
      assert.equal(got[0]!.tags?.["type"], "demo");
      assert.equal(got[0]!.tags?.["key"], "k1");
    } finally {
      c.disconnect();
    }
  });

  test("a protobuf publish is stored as JSON and reaches a JSON subscriber; non-JSON data gets 107 and the socket stays", async () => {
    const writer = pbClient(await token({ tenant: "acme", sub: "w", publish: ["chat.*"], subscribe: ["chat.*"] }));
    const reader = jsonClient(baton.url, await token({ tenant: "acme", sub: "r", subscribe: ["chat.*"] }));
    try {
      reader.connect();
      const rsub = reader.newSubscription("chat.pb");
      const got = collect(rsub);
      rsub.subscribe();
      await once(rsub, "subscribed");
      writer.connect();
      await once(writer, "connected");
      await writer.publish("chat.pb", bytes({ text: "from protobuf" }));
      await until(() => got.length === 1, 5000, "publication");
      assert.deepEqual(got[0]!.data, { text: "from protobuf" });
      await assert.rejects(writer.publish("chat.pb", new Uint8Array([0xff, 0x00, 0x01])), (err: { code: number }) => err.code === 107);
      await assert.rejects(writer.publish("chat.nope.x", bytes(1)), (err: { code: number }) => err.code === 103);
      const r = await writer.rpc("baton.publish", bytes({ channel: "chat.pb", data: { text: "rpc" }, idempotency_key: "pb-1" }));
      const result = json(r.data as Uint8Array) as { event_id: string; offset: number };
      assert.equal(result.offset, 2);
      const again = json((await writer.rpc("baton.publish", bytes({ channel: "chat.pb", data: { text: "rpc" }, idempotency_key: "pb-1" }))).data as Uint8Array) as { event_id: string; duplicate: boolean };
      assert.deepEqual(again, { ...result, duplicate: true });
      const stored = await api(baton.url, pubToken, "GET", "/v1/topics/chat.pb/events?from=1");
      assert.deepEqual(stored.body.events.map((e: { data: unknown }) => e.data), [{ text: "from protobuf" }, { text: "rpc" }]);
      assert.equal(writer.state, "connected");
    } finally {
      writer.disconnect();
      reader.disconnect();
    }
  });

  test("history pages through stored publications", async () => {
    for (let i = 1; i <= 5; i++) await publish("hist.pb", i);
    const c = pbClient(await token({ tenant: "acme", sub: "h", subscribe: ["hist.*"] }));
    try {
      c.connect();
      await once(c, "connected");
      const all = await c.history("hist.pb", { limit: -1 });
      assert.deepEqual(all.publications.map((p) => json(p.data as Uint8Array)), [1, 2, 3, 4, 5]);
      assert.equal(all.offset, 5);
      const since = await c.history("hist.pb", { limit: 2, since: { offset: 2, epoch: all.epoch } });
      assert.deepEqual(since.publications.map((p) => p.offset), [3, 4]);
      const newest = await c.history("hist.pb", { limit: 2, reverse: true });
      assert.deepEqual(newest.publications.map((p) => p.offset), [5, 4]);
      await assert.rejects(c.history("hist.pb", { limit: 1, since: { offset: 1, epoch: "wrong" } }), (err: { code: number }) => err.code === 112);
    } finally {
      c.disconnect();
    }
  });

  test("a client that reconnects recovers the missed events in order, then live, and stays connected across pings", async () => {
    const c = pbClient(await token({ tenant: "acme", sub: "res", subscribe: ["res.*"] }));
    try {
      c.connect();
      const sub = c.newSubscription("res.pb");
      const got: number[] = [];
      sub.on("publication", (ctx) => got.push(json(ctx.data as Uint8Array) as number));
      const subscribed: SubscribedContext[] = [];
      sub.on("subscribed", (ctx) => subscribed.push(ctx));
      sub.subscribe();
      await until(() => subscribed.length === 1);
      await publish("res.pb", 1);
      await publish("res.pb", 2);
      await until(() => got.length === 2);
      c.disconnect();
      for (let i = 3; i <= 6; i++) await publish("res.pb", i);
      c.connect();
      await until(() => subscribed.length === 2);
      assert.equal(subscribed[1]!.wasRecovering, true);
      assert.equal(subscribed[1]!.recovered, true);
      await publish("res.pb", 7);
      await until(() => got.length === 7, 5000, "recovered and live publications");
      assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);
      // The server pings every second and closes a socket that does not answer within another:
      // the protobuf client's pongs keep it open.
      let disconnects = 0;
      c.on("disconnected", () => (disconnects += 1));
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal(disconnects, 0);
      assert.equal(c.state, "connected");
    } finally {
      c.disconnect();
    }
  });

  test("server-side subscriptions: the user's personal channel delivers to the protobuf client", async () => {
    const c = pbClient(await token({ tenant: "acme", sub: "pbuser" }));
    try {
      const got: ServerPublicationContext[] = [];
      c.on("publication", (ctx) => got.push(ctx));
      c.connect();
      await once(c, "connected");
      const r = await api(baton.url, pubToken, "POST", "/v1/users/pbuser/events", { data: { note: "for you" } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await until(() => got.length === 1, 5000, "personal publication");
      assert.equal(got[0]!.channel, "#pbuser");
      assert.deepEqual(json(got[0]!.data as Uint8Array), { note: "for you" });
    } finally {
      c.disconnect();
    }
  });

  test("a consumer-group member over protobuf: deliveries arrive as message pushes of JSON bytes, acked by rpc", async () => {
    const admin = await token({ tenant: "acme", sub: "ops", admin: true });
    const created = await api(baton.url, admin, "POST", "/v1/groups", { name: "pbgroup", topic: "jobs.pb" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const c = pbClient(await token({ tenant: "acme", sub: "agent", subscribe: ["jobs.*"] }));
    try {
      const deliveries: { token: string; seq: number; event: { data: unknown } }[] = [];
      c.on("message", (ctx) => {
        const m = json(ctx.data as Uint8Array) as { baton?: string; deliveries?: typeof deliveries };
        if (m.baton === "deliveries") deliveries.push(...m.deliveries!);
      });
      c.connect();
      await once(c, "connected");
      const member = json((await c.rpc("baton.group.consume", bytes({ group: "pbgroup", maxInFlight: 4 }))).data as Uint8Array) as { member: string };
      assert.match(member.member, /pbgroup/);
      await publish("jobs.pb", { job: 1 });
      await publish("jobs.pb", { job: 2 });
      await until(() => deliveries.length === 2, 5000, "two deliveries");
      assert.deepEqual(deliveries.map((d) => d.event.data), [{ job: 1 }, { job: 2 }]);
      for (const d of deliveries) {
        const acked = json((await c.rpc("baton.group.ack", bytes({ group: "pbgroup", token: d.token }))).data as Uint8Array);
        assert.deepEqual(acked, { acked: true });
      }
      await assert.rejects(c.rpc("baton.group.ack", bytes({ group: "pbgroup", token: deliveries[0]!.token })), (err: { code: number }) => err.code === 1409);
      const described = (await api(baton.url, admin, "GET", "/v1/groups/pbgroup")).body;
      assert.equal(described.inFlight, 0, JSON.stringify(described));
      assert.equal(described.pending, 0, JSON.stringify(described));
    } finally {
      c.disconnect();
    }
  });

  test("format=protobuf in the query selects the encoding for clients that cannot offer a subprotocol", async () => {
    const url = `${wsUrl(baton.url)}?format=protobuf`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const frames: ArrayBuffer[] = [];
    ws.addEventListener("message", (e) => frames.push(e.data as ArrayBuffer));
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", reject);
    });
    ws.send(connectCommand(1, await token({ tenant: "acme", sub: "q" })));
    await until(() => frames.length > 0, 5000, "connect reply");
    const frame = new Uint8Array(frames[0]!);
    const reader = protobuf.Reader.create(frame);
    const length = reader.uint32();
    assert.equal(reader.pos + length, frame.length, "one length-delimited reply");
    const reply = decodeReplyFields(frame.subarray(reader.pos));
    assert.equal(reply.id, 1);
    assert.ok(reply.fields.has(5), "the reply carries a connect result (field 5)");
    ws.close();
  });
});

describe("protobuf frames by hand", () => {
  test("the centrifuge-protobuf subprotocol is selected; an unknown one alone is refused", async () => {
    const pb = new ProtobufPeer();
    await pb.opened;
    assert.equal(pb.ws.protocol, "centrifuge-protobuf");
    pb.ws.close();
    const other = new WsPeer(baton.url, {}, ["mqtt"]);
    await assert.rejects(other.opened);
  });

  for (const [what, frame, code] of [
    ["bytes that are not length-delimited commands", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]), 3501],
    ["a length prefix longer than the frame", Buffer.from([0x20, 0x08, 0x01]), 3501],
    ["a command with a method but no id", Buffer.concat([delimited(Buffer.from([0x3a, 0x00]))]), 3501],
  ] as const) {
    test(`${what} closes ${code}, and the server still serves`, async () => {
      const pb = new ProtobufPeer();
      await pb.opened;
      pb.ws.send(connectCommand(1, await token({ tenant: "acme", sub: "f" })));
      await until(() => pb.replies.length > 0, 5000, "connect reply");
      pb.ws.send(frame);
      await pb.closed;
      assert.equal(pb.closeCode, code);
      const ok = new ProtobufPeer();
      await ok.opened;
      ok.ws.send(connectCommand(1, await token({ tenant: "acme", sub: "f2" })));
      await until(() => ok.replies.length > 0, 5000, "connect reply after the bad frame");
      assert.ok(ok.replies[0]!.fields.has(5));
      ok.ws.close();
    });
  }

  test("a publish with non-JSON data before connect closes 3501, as any command before connect", async () => {
    const pb = new ProtobufPeer();
    await pb.opened;
    const publish = protobuf.Writer.create().uint32((1 << 3) | 2).string("room.live").uint32((2 << 3) | 2).bytes(new Uint8Array([0xff])).finish();
    pb.ws.send(delimited(Buffer.from(protobuf.Writer.create().uint32((1 << 3) | 0).uint32(2).uint32((7 << 3) | 2).bytes(publish).finish())));
    await pb.closed;
    assert.equal(pb.closeCode, 3501);
    assert.equal(pb.replies.length, 0);
  });

  test("a text frame on a protobuf socket closes 3501", async () => {
    const pb = new ProtobufPeer();
    await pb.opened;
    pb.ws.send('{"id":1,"connect":{}}', { binary: false });
    await pb.closed;
    assert.equal(pb.closeCode, 3501);
  });

  test("several commands in one frame are answered in order; an empty command is a pong", async () => {
    const pb = new ProtobufPeer();
    await pb.opened;
    const history = (id: number): Buffer => {
      const w = protobuf.Writer.create();
      w.uint32((1 << 3) | 0).uint32(id);
      const req = protobuf.Writer.create().uint32((1 << 3) | 2).string("room.live").uint32((7 << 3) | 0).int32(-1).finish();
      w.uint32((10 << 3) | 2).bytes(req);
      return delimited(Buffer.from(w.finish()));
    };
    pb.ws.send(Buffer.concat([connectCommand(1, await token({ tenant: "acme", sub: "m", subscribe: ["room.*"] })), delimited(Buffer.alloc(0)), history(2), history(3)]));
    await until(() => pb.replies.length >= 3, 5000, "three replies");
    assert.deepEqual(pb.replies.map((r) => r.id), [1, 2, 3]);
    assert.ok(pb.replies[1]!.fields.has(11), "a history result (field 11)");
    pb.ws.close();
  });

  class ProtobufPeer extends WsPeer {
    readonly replies: { id: number; fields: Set<number> }[] = [];
    constructor() {
      super(baton.url, {}, ["centrifuge-protobuf"]);
      this.ws.on("message", (data: Buffer, isBinary: boolean) => {
        assert.equal(isBinary, true, "a protobuf socket gets binary frames only");
        const reader = protobuf.Reader.create(data);
        while (reader.pos < reader.len) {
          const len = reader.uint32();
          const body = data.subarray(reader.pos, reader.pos + len);
          reader.skip(len);
          this.replies.push(decodeReplyFields(body));
        }
      });
    }
  }
});

/** A varint-length-prefixed message. */
function delimited(body: Buffer): Buffer {
  return Buffer.from(protobuf.Writer.create().bytes(body).finish());
}

/** Command{id, connect: ConnectRequest{token}} as the protocol numbers its fields (id 1, connect 4, token 1). */
function connectCommand(id: number, jwt: string): Buffer {
  const connect = protobuf.Writer.create().uint32((1 << 3) | 2).string(jwt).finish();
  const body = protobuf.Writer.create().uint32((1 << 3) | 0).uint32(id).uint32((4 << 3) | 2).bytes(connect).finish();
  return delimited(Buffer.from(body));
}

/** A Reply's id (field 1) and the numbers of its other fields, read with the bare wire format. */
function decodeReplyFields(body: Uint8Array): { id: number; fields: Set<number> } {
  const reader = protobuf.Reader.create(body);
  let id = 0;
  const fields = new Set<number>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1) id = reader.uint32();
    else {
      fields.add(field);
      reader.skipType(tag & 7);
    }
  }
  return { id, fields };
}
