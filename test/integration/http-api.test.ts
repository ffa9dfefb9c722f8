/**
 * Black-box tests of the HTTP API against a real Baton process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { SignJWT } from "jose";
import { api, startBaton, testEngine, token, type BatonProcess } from "../support/start-baton.ts";

let baton: BatonProcess;
let acme: string;
let globex: string;
let admin: string;

before(async () => {
  baton = await startBaton();
  acme = await token({ tenant: "acme", sub: "alice" });
  globex = await token({ tenant: "globex", sub: "bob" });
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
});
after(() => baton.destroy());

const events = (topic: string): string => `/v1/topics/${encodeURIComponent(topic)}/events`;

async function lastSeq(topic: string, jwt = acme): Promise<number> {
  const r = await api(baton.url, jwt, "GET", `/v1/topics/${encodeURIComponent(topic)}`, undefined);
  return r.status === 404 ? 0 : (r.body.lastSeq as number);
}

describe("publish", () => {
  test("a single event is acknowledged with id and seq and reads back unchanged", async () => {
    const r = await api(baton.url, acme, "POST", events("p.single"), { data: { text: "hi" }, key: "u1", type: "chat.message", schemaVersion: 2, causalId: "evt_x", headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } });
    assert.equal(r.status, 201);
    assert.match(r.body.id, /^evt_[0-9a-z]{26}$/);
    assert.equal(r.body.seq, 1);
    const read = await api(baton.url, acme, "GET", `${events("p.single")}?from=1`);
    assert.equal(read.status, 200);
    const [e] = read.body.events;
    assert.equal(e.id, r.body.id);
    assert.deepEqual([e.seq, e.key, e.type, e.schemaVersion, e.causalId, e.data], [1, "u1", "chat.message", 2, "evt_x", { text: "hi" }]);
    assert.equal(e.headers.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert.ok(!Number.isNaN(Date.parse(e.time)));
    assert.deepEqual([read.body.next, read.body.firstSeq, read.body.lastSeq], [2, 1, 1]);
    assert.match(read.body.epoch, /^[0-9a-z]{8}$/);
  });

  test("the Idempotency-Key header returns the first result and stores nothing new", async () => {
    const first = await api(baton.url, acme, "POST", events("p.idem"), { data: 1 }, { "idempotency-key": "order-42" });
    const again = await api(baton.url, acme, "POST", events("p.idem"), { data: 1 }, { "idempotency-key": "order-42" });
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { id: first.body.id, seq: first.body.seq, duplicate: true });
    assert.equal(await lastSeq("p.idem"), 1);
  });

  test("two Idempotency-Key headers are refused, not joined into a third key", async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${baton.url}${events("p.idem2")}`, { method: "POST", headers: { authorization: `Bearer ${acme}`, "content-type": "application/json" } }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.setHeader("idempotency-key", ["a", "b"]);
      req.on("error", reject);
      req.end(JSON.stringify({ data: 1 }));
    });
    assert.equal(status, 400);
    assert.equal(JSON.parse(body).error.code, "VALIDATION_FAILED");
    assert.equal(await lastSeq("p.idem2"), 0);
  });

  test("a batch is acknowledged per event, in order", async () => {
    const r = await api(baton.url, acme, "POST", events("p.batch"), { events: [{ data: 1 }, { data: 2, idempotencyKey: "b2" }, { data: 3 }] });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body.events.map((e: { seq: number }) => e.seq), [1, 2, 3]);
    const again = await api(baton.url, acme, "POST", events("p.batch"), { events: [{ data: 2, idempotencyKey: "b2" }, { data: 4 }] });
    assert.deepEqual(again.body.events.map((e: { seq: number; duplicate?: boolean }) => [e.seq, e.duplicate ?? false]), [[2, true], [4, false]]);
  });

  test("a batch with one invalid event is refused whole and stores nothing", async () => {
    await api(baton.url, acme, "POST", events("p.atomic"), { data: 0 });
    const r = await api(baton.url, acme, "POST", events("p.atomic"), { events: [{ data: 1 }, { data: 2, ttlMs: -5 }, { data: 3 }] });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, "VALIDATION_FAILED");
    assert.match(r.body.error.message, /events\[1\]\.ttlMs/);
    assert.equal(await lastSeq("p.atomic"), 1);
  });

  test("per-topic sequences stay gap-free under concurrent publishers", async () => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => api(baton.url, acme, "POST", events("p.concurrent"), { data: i })));
    const seqs = results.map((r) => r.body.seq as number).sort((a, b) => a - b);
    assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => i + 1));
  });
});

describe("bad input gets a typed error and changes nothing", () => {
  const cases: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
    ["malformed JSON", () => api(baton.url, acme, "POST", events("bad.x"), '{"data": 1'), 400, "INVALID_JSON"],
    ["an empty body", () => api(baton.url, acme, "POST", events("bad.x"), undefined, { "content-type": "application/json" }), 400, "INVALID_JSON"],
    ["a missing data field", () => api(baton.url, acme, "POST", events("bad.x"), { key: "k" }), 400, "VALIDATION_FAILED"],
    ["an unknown field", () => api(baton.url, acme, "POST", events("bad.x"), { data: 1, colour: "red" }), 400, "VALIDATION_FAILED"],
    ["a wrong-typed field", () => api(baton.url, acme, "POST", events("bad.x"), { data: 1, key: 7 }), 400, "VALIDATION_FAILED"],
    ["a non-object body", () => api(baton.url, acme, "POST", events("bad.x"), "[1,2]"), 400, "VALIDATION_FAILED"],
    ["an empty batch", () => api(baton.url, acme, "POST", events("bad.x"), { events: [] }), 400, "VALIDATION_FAILED"],
    ["an invalid topic name", () => api(baton.url, acme, "POST", events("bad..name"), { data: 1 }), 400, "INVALID_TOPIC_NAME"],
    ["a wildcard topic name", () => api(baton.url, acme, "POST", events("bad.*"), { data: 1 }), 400, "INVALID_TOPIC_NAME"],
    ["a form-encoded body", () => api(baton.url, acme, "POST", events("bad.x"), "data=1", { "content-type": "application/x-www-form-urlencoded" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["an unknown route", () => api(baton.url, acme, "GET", "/v1/nothing"), 404, "NOT_FOUND"],
    ["a wrong method", () => api(baton.url, acme, "PUT", events("bad.x"), { data: 1 }), 405, "METHOD_NOT_ALLOWED"],
    ["a negative from", () => api(baton.url, acme, "GET", `${events("p.single")}?from=-1`), 400, "INVALID_POSITION"],
    ["from and since together", () => api(baton.url, acme, "GET", `${events("p.single")}?from=1&since=2020-01-01T00:00:00Z`), 400, "INVALID_POSITION"],
    ["a bad since", () => api(baton.url, acme, "GET", `${events("p.single")}?since=yesterday`), 400, "INVALID_POSITION"],
    ["a limit of zero", () => api(baton.url, acme, "GET", `${events("p.single")}?limit=0`), 400, "INVALID_POSITION"],
    ["reading an unknown topic", () => api(baton.url, acme, "GET", `${events("never.published")}?from=1`), 404, "TOPIC_NOT_FOUND"],
  ];
  for (const [name, call, status, code] of cases) {
    test(`${name} -> ${status} ${code}`, async () => {
      const r = await call();
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error.code, code);
      assert.ok(r.body.error.message.length > 10, "the message says what to fix");
    });
  }

  test("nothing was stored by any of the bad requests", async () => {
    assert.equal(await lastSeq("bad.x"), 0);
    const list = await api(baton.url, admin, "GET", "/v1/topics?prefix=bad");
    assert.deepEqual(list.body.topics, []);
  });

  test("an oversized body is refused with 413 from its Content-Length, before it is read", async () => {
    const big = JSON.stringify({ data: "x".repeat(1024 * 1024 + 10) });
    const r = await api(baton.url, acme, "POST", events("bad.big"), big);
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, "PAYLOAD_TOO_LARGE");
    assert.equal(await lastSeq("bad.big"), 0);
  });

  test("an oversized chunked body is refused with 413 and never buffered whole", async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${baton.url}${events("bad.big")}`, { method: "POST", headers: { authorization: `Bearer ${acme}`, "content-type": "application/json" } }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      const chunk = Buffer.alloc(64 * 1024, "a");
      let sent = 0;
      const pump = (): void => {
        // Keep sending well past the limit; the server answers once the limit is passed.
        while (sent < 4 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        req.end();
      };
      req.write('{"data":"');
      pump();
    });
    assert.equal(status, 413);
    assert.equal(JSON.parse(body).error.code, "PAYLOAD_TOO_LARGE");
  });

  test("a streamed body is answered 413 as soon as it passes the limit, while the client is still uploading", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${baton.url}${events("bad.big")}`, { method: "POST", headers: { authorization: `Bearer ${acme}`, "content-type": "application/json" } }, (res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", (err) => (req.destroyed ? undefined : reject(err)));
      req.write('{"data":"');
      // 1.5 MiB, then the upload stays open: the answer must not wait for its end.
      for (let i = 0; i < 24; i++) req.write(Buffer.alloc(64 * 1024, "a"));
    });
    assert.equal(status, 413);
  });

  test("a client that goes away mid-upload is counted as REQUEST_ABORTED, not as a server error", async () => {
    const count = async (code: string): Promise<number> => {
      const text = await (await fetch(`${baton.url}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(new RegExp(`^baton_http_errors_total\\{[^}]*code="${code}"[^}]*\\} (\\d+)`, "gm"))) n += Number(m[1]);
      return n;
    };
    const internal = await count("INTERNAL");
    const req = request(`${baton.url}${events("bad.aborted")}`, { method: "POST", headers: { authorization: `Bearer ${acme}`, "content-type": "application/json", "content-length": "1000" } });
    req.on("error", () => undefined);
    req.write('{"data":"half');
    await new Promise((r) => setTimeout(r, 100));
    req.destroy();
    for (let i = 0; i < 50 && (await count("REQUEST_ABORTED")) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await count("REQUEST_ABORTED"), 1);
    assert.equal(await count("INTERNAL"), internal);
    assert.equal(await lastSeq("bad.aborted"), 0);
  });

  test("validation errors name the field in details.field, as docs/errors.md says", async () => {
    const r = await api(baton.url, admin, "POST", "/v1/topics", { name: "bad.retention", retention: { maxEvents: -1 } });
    assert.deepEqual([r.status, r.body.error.code, r.body.error.details?.field], [400, "VALIDATION_FAILED", "retention.maxEvents"]);
    const list = await api(baton.url, admin, "GET", "/v1/topics?limit=0");
    assert.equal(list.body.error.details?.field, "limit");
  });

  test("a plain GET of the WebSocket endpoint says what it is", async () => {
    const r = await api(baton.url, undefined, "GET", "/connection/websocket");
    assert.equal(r.status, 404);
    assert.match(r.body.error.message, /WebSocket endpoint: connect with a WebSocket client/);
  });

  test("the server still serves after all of the above", async () => {
    const r = await api(baton.url, acme, "POST", events("bad.after"), { data: "fine" });
    assert.equal(r.status, 201);
  });
});

describe("authentication and tenant isolation", () => {
  test("no token -> 401 UNAUTHENTICATED", async () => {
    const r = await api(baton.url, undefined, "POST", events("a.x"), { data: 1 });
    assert.deepEqual([r.status, r.body.error.code], [401, "UNAUTHENTICATED"]);
  });

  test("a token signed with another secret -> 401 TOKEN_INVALID", async () => {
    const forged = await new SignJWT({ tenant: "acme", publish: [">"] }).setProtectedHeader({ alg: "HS256" }).setSubject("eve").sign(new TextEncoder().encode("not-the-secret"));
    const r = await api(baton.url, forged, "POST", events("a.x"), { data: 1 });
    assert.deepEqual([r.status, r.body.error.code], [401, "TOKEN_INVALID"]);
  });

  test("garbage and alg=none tokens -> 401 TOKEN_INVALID", async () => {
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"tenant":"acme","sub":"x","publish":[">"]}').toString("base64url")}.`;
    for (const bad of ["garbage", "a.b.c", none]) {
      const r = await api(baton.url, bad, "POST", events("a.x"), { data: 1 });
      assert.deepEqual([r.status, r.body.error.code], [401, "TOKEN_INVALID"], bad);
    }
  });

  test("an expired token -> 401 TOKEN_EXPIRED", async () => {
    const expired = await token({ tenant: "acme", sub: "late" }, 1);
    await new Promise((r) => setTimeout(r, 1100));
    const r = await api(baton.url, expired, "POST", events("a.x"), { data: 1 });
    assert.deepEqual([r.status, r.body.error.code], [401, "TOKEN_EXPIRED"]);
  });

  test("a token without the topic in scope -> 403 FORBIDDEN, for publish and read", async () => {
    const narrow = await token({ tenant: "acme", sub: "carol", publish: ["room.*"], subscribe: ["room.1"] });
    assert.equal((await api(baton.url, narrow, "POST", events("room.1"), { data: 1 })).status, 201);
    const pub = await api(baton.url, narrow, "POST", events("billing"), { data: 1 });
    assert.deepEqual([pub.status, pub.body.error.code], [403, "FORBIDDEN"]);
    const read = await api(baton.url, narrow, "GET", `${events("room.2")}?from=1`);
    assert.deepEqual([read.status, read.body.error.code], [403, "FORBIDDEN"]);
    const create = await api(baton.url, narrow, "POST", "/v1/topics", { name: "room.9" });
    assert.deepEqual([create.status, create.body.error.code], [403, "FORBIDDEN"]);
  });

  test("two tenants both have a topic `orders` and each sees only its own", async () => {
    await api(baton.url, acme, "POST", events("orders"), { data: "acme-1" });
    await api(baton.url, globex, "POST", events("orders"), { data: "globex-1" });
    await api(baton.url, globex, "POST", events("orders"), { data: "globex-2" });
    const a = await api(baton.url, acme, "GET", `${events("orders")}?from=1`);
    const g = await api(baton.url, globex, "GET", `${events("orders")}?from=1`);
    assert.deepEqual(a.body.events.map((e: { data: string }) => e.data), ["acme-1"]);
    assert.deepEqual(g.body.events.map((e: { data: string }) => e.data), ["globex-1", "globex-2"]);
    const gTopics = await api(baton.url, await token({ tenant: "globex", sub: "ops", admin: true }), "GET", "/v1/topics");
    assert.deepEqual(gTopics.body.topics.map((t: { name: string }) => t.name), ["orders"]);
  });
});

describe("reads", () => {
  test("from, limit and next page through a topic; since starts at a time", async () => {
    const batch = Array.from({ length: 25 }, (_, i) => ({ data: i + 1 }));
    await api(baton.url, acme, "POST", events("r.page"), { events: batch });
    const p1 = await api(baton.url, acme, "GET", `${events("r.page")}?from=1&limit=10`);
    const p2 = await api(baton.url, acme, "GET", `${events("r.page")}?from=${p1.body.next}&limit=10`);
    const p3 = await api(baton.url, acme, "GET", `${events("r.page")}?from=${p2.body.next}&limit=10`);
    const seqs = [...p1.body.events, ...p2.body.events, ...p3.body.events].map((e: { seq: number }) => e.seq);
    assert.deepEqual(seqs, Array.from({ length: 25 }, (_, i) => i + 1));
    assert.equal(p3.body.next, 26);
    const mark = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    await api(baton.url, acme, "POST", events("r.page"), { data: "after-mark" });
    const since = await api(baton.url, acme, "GET", `${events("r.page")}?since=${encodeURIComponent(mark)}`);
    assert.deepEqual(since.body.events.map((e: { data: unknown }) => e.data), ["after-mark"]);
  });

  test("a long-poll read returns as soon as an event is published", async () => {
    await api(baton.url, acme, "POST", events("r.wait"), { data: 0 });
    const waiting = api(baton.url, acme, "GET", `${events("r.wait")}?from=2&wait=20000`);
    await new Promise((r) => setTimeout(r, 100));
    await api(baton.url, acme, "POST", events("r.wait"), { data: "woke" });
    const r = await waiting;
    assert.deepEqual(r.body.events.map((e: { data: unknown }) => e.data), ["woke"]);
  });

  test("a long-poll with nothing new returns an empty page when the wait ends", async () => {
    const r = await api(baton.url, acme, "GET", `${events("r.wait")}?from=100&wait=200`);
    assert.deepEqual([r.status, r.body.events.length], [200, 0]);
  });

  test("expired events are not returned", async () => {
    await api(baton.url, acme, "POST", events("r.ttl"), { events: [{ data: "gone", ttlMs: 1 }, { data: "kept" }] });
    await new Promise((r) => setTimeout(r, 10));
    const r = await api(baton.url, acme, "GET", `${events("r.ttl")}?from=1`);
    assert.deepEqual(r.body.events.map((e: { data: unknown }) => e.data), ["kept"]);
  });
});

describe("topic admin", () => {
  test("create with retention, describe, list, conflict, delete", async () => {
    const created = await api(baton.url, admin, "POST", "/v1/topics", { name: "t.admin", retention: { maxAge: "1h", maxEvents: 100, maxBytes: "1MiB" } });
    assert.equal(created.status, 201);
    assert.deepEqual(created.body.retention, { maxAgeMs: 3_600_000, maxEvents: 100, maxBytes: 1_048_576 });
    assert.deepEqual([created.body.firstSeq, created.body.lastSeq], [1, 0]);
    const dup = await api(baton.url, admin, "POST", "/v1/topics", { name: "t.admin" });
    assert.deepEqual([dup.status, dup.body.error.code], [409, "TOPIC_EXISTS"]);
    const bad = await api(baton.url, admin, "POST", "/v1/topics", { name: "t.x", retention: { maxAge: "soon" } });
    assert.deepEqual([bad.status, bad.body.error.code], [400, "VALIDATION_FAILED"]);
    await api(baton.url, acme, "POST", events("t.admin"), { data: 1 });
    const described = await api(baton.url, acme, "GET", "/v1/topics/t.admin");
    assert.deepEqual([described.body.lastSeq, described.body.events], [1, 1]);
    assert.ok(described.body.bytes > 0);
    const list = await api(baton.url, admin, "GET", "/v1/topics?prefix=t.");
    assert.deepEqual(list.body.topics.map((t: { name: string }) => t.name), ["t.admin"]);
    const del = await api(baton.url, admin, "DELETE", "/v1/topics/t.admin");
    assert.equal(del.status, 204);
    const gone = await api(baton.url, admin, "GET", "/v1/topics/t.admin");
    assert.deepEqual([gone.status, gone.body.error.code], [404, "TOPIC_NOT_FOUND"]);
  });
});

describe("operations", () => {
  test("healthz, readyz and metrics answer without a token", async () => {
    assert.deepEqual((await api(baton.url, undefined, "GET", "/healthz")).body, { status: "ok" });
    const { node, ...ready } = (await api(baton.url, undefined, "GET", "/readyz")).body;
    assert.deepEqual(ready, { status: "ready", engine: testEngine() });
    // A node of a NATS fleet names itself; the embedded engine is one node.
    assert.equal(typeof node, testEngine() === "nats" ? "string" : "undefined");
    const metrics = await fetch(`${baton.url}/metrics`);
    const text = await metrics.text();
    assert.match(text, /baton_streams_appended_events_total \d+/);
    assert.match(text, /baton_http_requests_total\{route="\/v1\/topics\/:topic\/events",status="201"\}/);
  });

  test("error answers are counted per tenant once the token is verified, and under an empty tenant before", async () => {
    const reader = await token({ tenant: "metrics-t", publish: [] });
    assert.equal((await api(baton.url, reader, "POST", "/v1/topics/m.1/events", { data: 1 })).status, 403);
    assert.equal((await api(baton.url, "not-a-jwt", "POST", "/v1/topics/m.1/events", { data: 1 })).status, 401);
    const text = await (await fetch(`${baton.url}/metrics`)).text();
    assert.match(text, /baton_http_errors_total\{tenant="metrics-t",code="FORBIDDEN"\} 1/);
    assert.match(text, /baton_http_errors_total\{tenant="",code="TOKEN_INVALID"\} [1-9]/);
  });
});
