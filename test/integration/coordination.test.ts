/**
 * Reservations (compute slots) and idempotent effects over HTTP, against a real Baton process,
 * including reserve -> ack -> run -> finalize and the hand-back of work whose holder died.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, startBaton, TEST_SECRET, token, type BatonProcess } from "../support/start-baton.ts";

let baton: BatonProcess;
let t: string;
before(async () => {
  baton = await startBaton();
  t = await token({ tenant: "acme", sub: "agent", admin: true });
});
after(() => baton.destroy());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const post = (path: string, body: unknown): Promise<{ status: number; headers: Headers; body: any }> => api(baton.url, t, "POST", path, body);

describe("slots", () => {
  test("at most `limit` holders, also when many race for the last slots", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => post("/v1/slots/model-a/reserve", { limit: 3, lease: "30s" })));
    assert.equal(results.filter((r) => r.status === 200).length, 3);
    const refused = results.filter((r) => r.status !== 200);
    assert.ok(refused.every((r) => r.status === 409 && r.body.error.code === "SLOT_UNAVAILABLE"));
    const held = await api(baton.url, t, "GET", "/v1/slots/model-a");
    assert.deepEqual(held.body.held.map((h: { slot: number }) => h.slot).sort(), [0, 1, 2]);
    const first = results.find((r) => r.status === 200)!.body;
    assert.equal((await post("/v1/slots/model-a/release", { token: first.token })).status, 200);
    assert.equal((await post("/v1/slots/model-a/release", { token: first.token })).body.error.code, "RESERVATION_NOT_HELD");
    assert.equal((await post("/v1/slots/model-a/reserve", { limit: 3 })).status, 200);
  });

  test("a waiting reserve gets the slot as soon as it is released", async () => {
    const a = await post("/v1/slots/model-b/reserve", { limit: 1 });
    const waiting = post("/v1/slots/model-b/reserve", { limit: 1, wait: "5s" });
    await sleep(200);
    await post("/v1/slots/model-b/release", { token: a.body.token });
    const b = await waiting;
    assert.equal(b.status, 200);
    assert.notEqual(b.body.token, a.body.token);
  });

  test("a lease ends unless extended, and the slot is free again", async () => {
    const a = await post("/v1/slots/model-c/reserve", { limit: 1, lease: "400ms" });
    for (let i = 0; i < 3; i++) {
      await sleep(250);
      assert.equal((await post("/v1/slots/model-c/extend", { token: a.body.token, lease: "400ms" })).status, 200);
    }
    assert.equal((await post("/v1/slots/model-c/reserve", { limit: 1 })).body.error.code, "SLOT_UNAVAILABLE");
    await sleep(600);
    assert.equal((await post("/v1/slots/model-c/extend", { token: a.body.token })).body.error.code, "RESERVATION_NOT_HELD");
    assert.equal((await post("/v1/slots/model-c/reserve", { limit: 1 })).status, 200);
  });

  test("bad requests change nothing", async () => {
    for (const [path, body, code] of [
      ["/v1/slots/model-d/reserve", {}, "VALIDATION_FAILED"],
      ["/v1/slots/model-d/reserve", { limit: 0 }, "VALIDATION_FAILED"],
      ["/v1/slots/model-d/reserve", { limit: 1, lease: "forever" }, "VALIDATION_FAILED"],
      ["/v1/slots/bad%20name/reserve", { limit: 1 }, "VALIDATION_FAILED"],
      ["/v1/slots/model-d/release", { token: "s.0.0123456789abcdef.model-d" }, "RESERVATION_NOT_HELD"],
      ["/v1/slots/model-d/finalize", { token: "s.0.0123456789abcdef.model-d", topic: "out", event: { data: 1 } }, "RESERVATION_NOT_HELD"],
    ] as const) {
      const r = await post(path, body);
      assert.equal(r.body.error?.code, code, `${path} ${JSON.stringify(body)}`);
    }
    assert.equal((await api(baton.url, t, "GET", "/v1/slots/model-d")).body.held.length, 0);
  });
});

describe("reserve -> ack -> run -> finalize", () => {
  test("finalize publishes the result caused by the triggering event and frees the slot; once per work", async () => {
    assert.equal((await post("/v1/groups", { name: "g-fin", topic: "prompts.fin" })).status, 201);
    await post("/v1/topics/prompts.fin/events", { data: { prompt: "hi" } });
    const [d] = (await post("/v1/groups/g-fin/pull", { consumer: "w", wait: "1s" })).body.deliveries;
    const slot = (await post("/v1/slots/model-e/reserve", { limit: 1 })).body;
    assert.equal((await post("/v1/groups/g-fin/ack", { token: d.token, slot: slot.token })).status, 200);
    assert.equal((await api(baton.url, t, "GET", "/v1/slots/model-e")).body.held[0].work.origin.id, d.event.id);
    const fin = await post("/v1/slots/model-e/finalize", { token: slot.token, topic: "results.fin", event: { data: { answer: 42 } } });
    assert.equal(fin.status, 200, JSON.stringify(fin.body));
    const read = await api(baton.url, t, "GET", "/v1/topics/results.fin/events?from=1");
    assert.deepEqual(read.body.events.map((e: { causalId: string; data: unknown }) => [e.causalId, e.data]), [[d.event.id, { answer: 42 }]]);
    assert.equal((await api(baton.url, t, "GET", "/v1/slots/model-e")).body.held.length, 0);
    assert.equal((await post("/v1/slots/model-e/finalize", { token: slot.token, topic: "results.fin", event: { data: {} } })).body.error.code, "RESERVATION_NOT_HELD");
  });

  test("the work of a slot whose holder died goes back to the group, with its origin", async () => {
    assert.equal((await post("/v1/groups", { name: "g-died", topic: "prompts.died" })).status, 201);
    await post("/v1/topics/prompts.died/events", { data: { prompt: "again" } });
    const [d] = (await post("/v1/groups/g-died/pull", { consumer: "w", wait: "1s" })).body.deliveries;
    const slot = (await post("/v1/slots/model-f/reserve", { limit: 1, lease: "300ms" })).body;
    await post("/v1/groups/g-died/ack", { token: d.token, slot: slot.token });
    // The holder dies here: no extend, no finalize. (A generous wait: on a loaded CI machine the
    // sweep, the hand-back's idempotent append and the group's read can take seconds on NATS.)
    const back = (await post("/v1/groups/g-died/pull", { consumer: "w2", wait: "20s" })).body.deliveries;
    assert.equal(back.length, 1);
    assert.deepEqual(back[0].origin, { topic: "prompts.died", seq: 1, id: d.event.id });
    assert.deepEqual(back[0].event.data, { prompt: "again" });
    assert.equal((await post("/v1/slots/model-f/reserve", { limit: 1 })).status, 200, "the slot is free again");
  });

  test("releasing a slot that holds an event hands the event back to the group instead of dropping it", async () => {
    assert.equal((await post("/v1/groups", { name: "g-released", topic: "prompts.released" })).status, 201);
    await post("/v1/topics/prompts.released/events", { data: { prompt: "keep me" } });
    const [d] = (await post("/v1/groups/g-released/pull", { consumer: "w", wait: "1s" })).body.deliveries;
    const slot = (await post("/v1/slots/model-r/reserve", { limit: 1, lease: "30s" })).body;
    assert.equal((await post("/v1/groups/g-released/ack", { token: d.token, slot: slot.token })).status, 200);
    assert.equal((await post("/v1/slots/model-r/release", { token: slot.token })).status, 200);
    const back = (await post("/v1/groups/g-released/pull", { consumer: "w2", wait: "20s" })).body.deliveries;
    assert.equal(back.length, 1);
    assert.deepEqual(back[0].origin, { topic: "prompts.released", seq: 1, id: d.event.id });
    assert.deepEqual(back[0].event.data, { prompt: "keep me" });
  });

  test("an event whose reservations keep expiring is dead-lettered after maxAttempts hand-backs", async () => {
    assert.equal((await post("/v1/groups", { name: "g-poison", topic: "prompts.poison", maxAttempts: 2 })).status, 201);
    await post("/v1/topics/prompts.poison/events", { data: { prompt: "kills workers" } });
    for (let round = 0; round < 2; round++) {
      const [d] = (await post("/v1/groups/g-poison/pull", { consumer: "w", wait: "20s" })).body.deliveries;
      assert.ok(d !== undefined, `round ${round}: delivered`);
      const slot = (await post("/v1/slots/model-p/reserve", { limit: 1, lease: "200ms", wait: "5s" })).body;
      assert.equal((await post("/v1/groups/g-poison/ack", { token: d.token, slot: slot.token })).status, 200);
      // The holder "dies": the slot's lease runs out and the event is handed back.
    }
    let letters: any[] = [];
    for (let i = 0; i < 100 && letters.length === 0; i++) {
      letters = (await api(baton.url, t, "GET", "/v1/groups/g-poison/dead-letters")).body.deadLetters;
      if (letters.length === 0) await sleep(100);
    }
    assert.equal(letters.length, 1);
    assert.match(letters[0].failures.at(-1).reason, /handed back by 2 expired reservations/);
    assert.equal(letters[0].origin.topic, "prompts.poison");
    assert.equal((await post("/v1/groups/g-poison/pull", { consumer: "w", wait: "500ms" })).body.deliveries.length, 0);
  });

  test("ack with a slot that is not held changes nothing", async () => {
    assert.equal((await post("/v1/groups", { name: "g-noslot", topic: "prompts.noslot" })).status, 201);
    await post("/v1/topics/prompts.noslot/events", { data: 1 });
    const [d] = (await post("/v1/groups/g-noslot/pull", { consumer: "w", wait: "1s" })).body.deliveries;
    const r = await post("/v1/groups/g-noslot/ack", { token: d.token, slot: "s.0.0123456789abcdef.model-x" });
    assert.equal(r.body.error.code, "RESERVATION_NOT_HELD");
    assert.equal((await post("/v1/groups/g-noslot/ack", { token: d.token })).status, 200, "still in flight, so a plain ack works");
  });
});

describe("effects", () => {
  test("claim, in progress elsewhere, complete, then the stored outcome", async () => {
    const key = encodeURIComponent("summarize:evt_1/v2");
    const a = await post(`/v1/effects/${key}/begin`, { lease: "10s" });
    assert.equal(a.body.state, "claimed");
    const b = await post(`/v1/effects/${key}/begin`, {});
    assert.deepEqual([b.status, b.body.error.code], [409, "EFFECT_IN_PROGRESS"]);
    assert.ok(Number(b.headers.get("retry-after")) >= 1);
    assert.equal((await post(`/v1/effects/${key}/complete`, { token: "nope", outcome: 1 })).body.error.code, "RESERVATION_NOT_HELD");
    assert.equal((await post(`/v1/effects/${key}/complete`, { token: a.body.token, outcome: { summary: "short" } })).status, 200);
    const c = await post(`/v1/effects/${key}/begin`, {});
    assert.deepEqual([c.body.state, c.body.outcome], ["done", { summary: "short" }]);
    assert.equal((await api(baton.url, t, "GET", `/v1/effects/${key}`)).body.state, "done");
    assert.equal((await post(`/v1/effects/${key}/abandon`, { token: a.body.token })).body.error.code, "RESERVATION_NOT_HELD");
  });

  test("an abandoned or expired claim can be claimed again", async () => {
    const a = await post("/v1/effects/e2/begin", { lease: "300ms" });
    await post("/v1/effects/e2/abandon", { token: a.body.token });
    const b = await post("/v1/effects/e2/begin", { lease: "300ms" });
    assert.equal(b.body.state, "claimed");
    await sleep(400);
    const c = await post("/v1/effects/e2/begin", {});
    assert.equal(c.body.state, "claimed");
    assert.equal((await post("/v1/effects/e2/complete", { token: b.body.token, outcome: 1 })).body.error.code, "RESERVATION_NOT_HELD", "the stale holder is fenced off");
    assert.equal((await api(baton.url, t, "GET", "/v1/effects/never")).body.error.code, "EFFECT_NOT_FOUND");
  });
});

describe("who may use slots and effects", () => {
  test("only tokens whose `coordinate` claim matches the resource or key (or admins); others get FORBIDDEN and change nothing", async () => {
    const browser = await token({ tenant: "acme", sub: "user-7", publish: ["room.>"], subscribe: ["room.>"] });
    const worker = await token({ tenant: "acme", sub: "worker", coordinate: ["gpu.*", "summarize.>"] });
    const as = (jwt: string, method: string, path: string, body?: unknown) => api(baton.url, jwt, method, path, body);

    // A token without the claim: no slots, no effects, and no reading an effect's stored outcome.
    const done = await post("/v1/effects/summarize.evt_9/begin", {});
    await post("/v1/effects/summarize.evt_9/complete", { token: done.body.token, outcome: { secret: "model output" } });
    for (const [method, path, body] of [
      ["POST", "/v1/slots/gpu.a100/reserve", { limit: 1 }],
      ["GET", "/v1/slots/gpu.a100", undefined],
      ["POST", "/v1/effects/summarize.evt_10/begin", {}],
      ["GET", "/v1/effects/summarize.evt_9", undefined],
    ] as const) {
      const r = await as(browser, method, path, body);
      assert.deepEqual([r.status, r.body.error?.code], [403, "FORBIDDEN"], `${method} ${path}`);
    }
    assert.deepEqual((await api(baton.url, t, "GET", "/v1/slots/gpu.a100")).body.held, [], "the refused reserve holds nothing");
    assert.equal((await api(baton.url, t, "GET", "/v1/effects/summarize.evt_10")).body.error.code, "EFFECT_NOT_FOUND", "the refused begin claimed nothing");

    // A scoped token: what its patterns match, and nothing else.
    const slot = await as(worker, "POST", "/v1/slots/gpu.a100/reserve", { limit: 1 });
    assert.equal(slot.status, 200);
    assert.equal((await as(worker, "POST", "/v1/slots/gpu.a100/release", { token: slot.body.token })).status, 200);
    assert.equal((await as(worker, "POST", "/v1/slots/gpu.a100.x/reserve", { limit: 1 })).body.error.code, "FORBIDDEN", "* is one token");
    assert.equal((await as(worker, "POST", "/v1/slots/model-a/reserve", { limit: 1 })).body.error.code, "FORBIDDEN");
    assert.deepEqual((await as(worker, "GET", "/v1/effects/summarize.evt_9")).body.outcome, { secret: "model output" });
    assert.equal((await as(worker, "POST", "/v1/effects/translate.evt_9/begin", {})).body.error.code, "FORBIDDEN");
  });

  test("a token whose `coordinate` claim is not a list of patterns is rejected", async () => {
    const { SignJWT } = await import("jose");
    for (const coordinate of ["gpu.*", ["a.>.b"], [""], [7]]) {
      const jwt = await new SignJWT({ tenant: "acme", coordinate }).setProtectedHeader({ alg: "HS256" }).setSubject("w").sign(new TextEncoder().encode(TEST_SECRET));
      const r = await api(baton.url, jwt, "GET", "/v1/slots/gpu.a100");
      assert.deepEqual([r.status, r.body.error.code], [401, "TOKEN_INVALID"], JSON.stringify(coordinate));
    }
  });
});
