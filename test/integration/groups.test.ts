/**
 * Consumer groups over HTTP, black-box against a real Baton process: delivery to one member,
 * in-flight limits, acks and their errors, retries with backoff, leases, dead letters and
 * redrive, per-key ordering and fairness, stall reasons, and progress across a restart.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

let baton: BatonProcess;
let admin: string;
let worker: string;

before(async () => {
  baton = await startBaton();
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
  worker = await token({ tenant: "acme", sub: "worker-1", publish: [], subscribe: ["jobs.>"] });
});
after(() => baton.destroy());

interface DeliveryJson {
  token: string;
  topic: string;
  seq: number;
  attempt: number;
  failures: { attempt: number; reason: string; at: string }[];
  origin: { topic: string; seq: number; id: string };
  event: { id: string; seq: number; key?: string; data: { n: number } };
}

async function createGroup(body: Record<string, unknown>): Promise<void> {
  const r = await api(baton.url, admin, "POST", "/v1/groups", body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function publish(topic: string, events: { data: unknown; key?: string; ttlMs?: number }[]): Promise<void> {
  const r = await api(baton.url, admin, "POST", `/v1/topics/${topic}/events`, { events });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function pull(group: string, body: Record<string, unknown>, jwt = admin): Promise<DeliveryJson[]> {
  const r = await api(baton.url, jwt, "POST", `/v1/groups/${group}/pull`, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.deliveries as DeliveryJson[];
}

/** Pulls until `n` deliveries arrived (events become ready asynchronously after a publish). */
async function pullN(group: string, n: number, body: Record<string, unknown>, jwt = admin): Promise<DeliveryJson[]> {
  const out: DeliveryJson[] = [];
  const deadline = Date.now() + 10_000;
  while (out.length < n && Date.now() < deadline) out.push(...(await pull(group, { ...body, max: Math.min(1000, n - out.length), wait: "500ms" }, jwt)));
  return out;
}

async function op(group: string, what: string, body: Record<string, unknown>, jwt = admin): Promise<{ status: number; body: any }> {
  return api(baton.url, jwt, "POST", `/v1/groups/${group}/${what}`, body);
}

async function describeGroup(group: string): Promise<any> {
  const r = await api(baton.url, admin, "GET", `/v1/groups/${group}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe("group definitions", () => {
  test("bad definitions are refused with the field named and create nothing", async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ name: "bad name", topic: "jobs.a" }, "name"],
      [{ name: "g-bad", topic: "jobs..a" }, "topic"],
      [{ name: "g-bad", topic: "jobs.a", ackWait: "soon" }, "ackWait"],
      [{ name: "g-bad", topic: "jobs.a", ackWait: 10 }, "ackWait"],
      [{ name: "g-bad", topic: "jobs.a", maxAttempts: 0 }, "maxAttempts"],
      [{ name: "g-bad", topic: "jobs.a", backoff: { initial: "10s", max: "1s" } }, "backoff.max"],
      [{ name: "g-bad", topic: "jobs.a", start: { seq: -1 } }, "start.seq"],
      [{ name: "g-bad", topic: "jobs.a", colour: "red" }, "colour"],
    ];
    for (const [body, field] of bad) {
      const r = await api(baton.url, admin, "POST", "/v1/groups", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, "VALIDATION_FAILED");
      assert.equal(r.body.error.details.field, field, JSON.stringify(r.body));
    }
    const list = await api(baton.url, admin, "GET", "/v1/groups");
    assert.ok(!list.body.groups.some((g: { name: string }) => g.name === "g-bad"));
    const notAdmin = await api(baton.url, worker, "POST", "/v1/groups", { name: "g-x", topic: "jobs.a" });
    assert.equal(notAdmin.body.error.code, "FORBIDDEN");
  });

  test("create, duplicate, describe, unknown group and delete", async () => {
    await createGroup({ name: "g-life", topic: "jobs.life" });
    const dup = await api(baton.url, admin, "POST", "/v1/groups", { name: "g-life", topic: "jobs.other" });
    assert.deepEqual([dup.status, dup.body.error.code], [409, "GROUP_EXISTS"]);
    const d = await describeGroup("g-life");
    assert.equal(d.topic, "jobs.life");
    assert.equal(d.deadLetterTopic, "~dlq.g-life");
    for (const [method, path] of [["GET", "/v1/groups/nope"], ["POST", "/v1/groups/nope/pull"], ["DELETE", "/v1/groups/nope"]] as const) {
      const r = await api(baton.url, admin, method, path, method === "POST" ? { consumer: "w" } : undefined);
      assert.deepEqual([r.status, r.body.error.code], [404, "GROUP_NOT_FOUND"]);
    }
    assert.equal((await api(baton.url, admin, "DELETE", "/v1/groups/g-life")).status, 204);
    assert.equal((await api(baton.url, admin, "GET", "/v1/groups/g-life")).status, 404);
  });

  test("the list is paged in name order", async () => {
    const t = await token({ tenant: "paging", admin: true });
    for (const name of ["c", "a", "b"]) assert.equal((await api(baton.url, t, "POST", "/v1/groups", { name, topic: "x" })).status, 201);
    const first = await api(baton.url, t, "GET", "/v1/groups?limit=2");
    assert.deepEqual([first.body.groups.map((g: { name: string }) => g.name), first.body.next], [["a", "b"], "b"]);
    const second = await api(baton.url, t, "GET", `/v1/groups?limit=2&after=${first.body.next}`);
    assert.deepEqual([second.body.groups.map((g: { name: string }) => g.name), second.body.next], [["c"], undefined]);
    assert.equal((await api(baton.url, t, "GET", "/v1/groups?limit=0")).body.error.code, "VALIDATION_FAILED");
  });

  test("another tenant cannot see or consume the group", async () => {
    await createGroup({ name: "g-tenant", topic: "jobs.tenant" });
    const other = await token({ tenant: "globex", admin: true });
    assert.equal((await api(baton.url, other, "GET", "/v1/groups/g-tenant")).body.error.code, "GROUP_NOT_FOUND");
    assert.equal((await api(baton.url, other, "POST", "/v1/groups/g-tenant/pull", { consumer: "x" })).body.error.code, "GROUP_NOT_FOUND");
    const stranger = await token({ tenant: "acme", subscribe: ["chat.*"] });
    assert.equal((await api(baton.url, stranger, "POST", "/v1/groups/g-tenant/pull", { consumer: "x" })).body.error.code, "FORBIDDEN");
  });
});

describe("delivery", () => {
  test("each event goes to one member of a group, and every group sees every event", async () => {
    await createGroup({ name: "g-one-a", topic: "jobs.split" });
    await createGroup({ name: "g-one-b", topic: "jobs.split" });
    await publish("jobs.split", Array.from({ length: 60 }, (_, n) => ({ data: { n } })));
    const seen = new Map<string, number[]>();
    await Promise.all(
      ["w1", "w2", "w3"].map(async (consumer) => {
        for (;;) {
          const ds = await pull("g-one-a", { consumer, max: 7, wait: "200ms" }, worker);
          if (ds.length === 0) return;
          seen.set(consumer, [...(seen.get(consumer) ?? []), ...ds.map((d) => d.event.data.n)]);
          const r = await op("g-one-a", "ack", { tokens: ds.map((d) => d.token) }, worker);
          assert.ok(r.body.results.every((x: { ok: boolean }) => x.ok));
        }
      }),
    );
    const all = [...seen.values()].flat().sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 60 }, (_, n) => n), "every event exactly once across members");
    assert.ok(seen.size >= 2, "more than one member got work");
    const b = await pullN("g-one-b", 60, { consumer: "solo" });
    assert.equal(b.length, 60);
  });

  test("a member never holds more than its maxInFlight", async () => {
    await createGroup({ name: "g-limit", topic: "jobs.limit" });
    await publish("jobs.limit", Array.from({ length: 20 }, (_, n) => ({ data: { n } })));
    const first = await pullN("g-limit", 3, { consumer: "w", maxInFlight: 3 });
    assert.equal(first.length, 3);
    assert.equal((await pull("g-limit", { consumer: "w", max: 10, maxInFlight: 3, wait: "100ms" })).length, 0);
    const d = await describeGroup("g-limit");
    assert.ok(d.stalled.some((s: { code: string }) => s.code === "MEMBERS_AT_LIMIT"), JSON.stringify(d.stalled));
    await op("g-limit", "ack", { token: first[0]!.token });
    const next = await pull("g-limit", { consumer: "w", max: 10, maxInFlight: 3, wait: "1s" });
    assert.equal(next.length, 1);
    assert.equal(next[0]!.event.data.n, 3);
  });

  test("a pull waits for the next event", async () => {
    await createGroup({ name: "g-wait", topic: "jobs.wait" });
    const pending = pull("g-wait", { consumer: "w", wait: "5s" });
    await sleep(200);
    await publish("jobs.wait", [{ data: { n: 1 } }]);
    const ds = await pending;
    assert.equal(ds.length, 1);
    assert.equal(ds[0]!.event.data.n, 1);
  });

  test("start positions: now, seq and a pattern of topics", async () => {
    await publish("jobs.pos", [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }]);
    await createGroup({ name: "g-now", topic: "jobs.pos", start: "now" });
    await createGroup({ name: "g-seq", topic: "jobs.pos", start: { seq: 2 } });
    await publish("jobs.pos", [{ data: { n: 4 } }]);
    assert.deepEqual((await pull("g-now", { consumer: "w", max: 10, wait: "1s" })).map((d) => d.event.data.n), [4]);
    assert.deepEqual((await pullN("g-seq", 3, { consumer: "w" })).map((d) => d.event.data.n), [2, 3, 4]);
    await createGroup({ name: "g-pattern", topic: "jobs.pat.*" });
    await publish("jobs.pat.a", [{ data: { n: 1 } }]);
    await publish("jobs.pat.b", [{ data: { n: 2 } }]);
    await publish("jobs.patx", [{ data: { n: 3 } }]);
    const got: number[] = [];
    await eventually("both pattern topics", async () => {
      got.push(...(await pull("g-pattern", { consumer: "w", max: 10, wait: "500ms" })).map((d) => d.event.data.n));
      return got.length >= 2 ? true : undefined;
    });
    assert.deepEqual(got.sort(), [1, 2]);
  });
});

describe("acks, retries and leases", () => {
  test("ack errors: double ack, unknown token, wrong group; nothing changes", async () => {
    await createGroup({ name: "g-ackerr", topic: "jobs.ackerr" });
    await publish("jobs.ackerr", [{ data: { n: 1 } }]);
    const [d] = await pullN("g-ackerr", 1, { consumer: "w" });
    // A token guessed from the attempt, sequence and topic alone is refused while the real one is live.
    const forged = d!.token.replace(/:[0-9a-z]{10}:/, ":0000000000:");
    assert.notEqual(forged, d!.token);
    assert.equal((await op("g-ackerr", "ack", { token: forged })).body.error.code, "DELIVERY_NOT_HELD");
    assert.equal((await op("g-ackerr", "ack", { token: d!.token })).status, 200);
    for (const [body, code] of [
      [{ token: d!.token }, "DELIVERY_NOT_HELD"],
      [{ token: "9:9:jobs.ackerr" }, "DELIVERY_NOT_HELD"],
      [{ token: "garbage" }, "DELIVERY_NOT_HELD"],
      [{}, "VALIDATION_FAILED"],
      [{ token: 5 }, "VALIDATION_FAILED"],
      [{ token: d!.token, extra: 1 }, "VALIDATION_FAILED"],
    ] as const) {
      const r = await op("g-ackerr", "ack", body);
      assert.equal(r.body.error?.code, code, JSON.stringify(body));
    }
    for (const what of ["nack", "term", "extend"]) {
      const r = await op("g-ackerr", what, { token: d!.token });
      assert.equal(r.body.error.code, "DELIVERY_NOT_HELD", what);
    }
    const bad = await op("g-ackerr", "nack", { token: d!.token, delay: "forever" });
    assert.equal(bad.body.error.code, "VALIDATION_FAILED");
    const desc = await describeGroup("g-ackerr");
    assert.deepEqual([desc.counters.acked, desc.pending], [1, 0]);
  });

  test("a nack without delay follows the jittered backoff; failures travel; the last attempt dead-letters", async () => {
    await createGroup({ name: "g-retry", topic: "jobs.retry", maxAttempts: 3, backoff: { initial: "300ms", max: "300ms" } });
    await publish("jobs.retry", [{ data: { n: 7 }, key: "k" }]);
    const attempts: DeliveryJson[] = [];
    for (let i = 1; i <= 3; i++) {
      const [d] = await eventually(`attempt ${i}`, async () => {
        const ds = await pull("g-retry", { consumer: "w", wait: "1s" });
        return ds.length > 0 ? ds : undefined;
      });
      attempts.push(d!);
      assert.equal(d!.attempt, i);
      assert.deepEqual(d!.failures.map((f) => [f.attempt, f.reason]), attempts.slice(0, i - 1).map((_, j) => [j + 1, `boom ${j + 1}`]));
      assert.equal((await op("g-retry", "nack", { token: d!.token, reason: `boom ${i}` })).status, 200);
    }
    const letters = await eventually("a dead letter", async () => {
      const r = await api(baton.url, admin, "GET", "/v1/groups/g-retry/dead-letters");
      return r.body.deadLetters.length > 0 ? r.body.deadLetters : undefined;
    });
    assert.equal(letters.length, 1);
    const [letter] = letters;
    assert.deepEqual(letter.origin, { topic: "jobs.retry", seq: 1, id: attempts[0]!.event.id });
    assert.equal(letter.attempts, 3);
    assert.deepEqual(letter.failures.map((f: { reason: string }) => f.reason), ["boom 1", "boom 2", "boom 3"]);
    assert.deepEqual(letter.event.data, { n: 7 });
    const shown = await api(baton.url, admin, "GET", `/v1/groups/g-retry/dead-letters/${letter.seq}`);
    assert.equal(shown.body.id, letter.id);
    assert.equal((await api(baton.url, admin, "GET", "/v1/groups/g-retry/dead-letters/99")).body.error.code, "DEAD_LETTER_NOT_FOUND");
    // The dead-letter topic is a real topic of the tenant.
    const topics = await api(baton.url, admin, "GET", `/v1/topics?prefix=${encodeURIComponent("~dlq.")}`);
    const dlq = topics.body.topics.find((t: { name: string }) => t.name === "~dlq.g-retry");
    assert.equal(dlq?.lastSeq, 1, JSON.stringify(topics.body));
  });

  test("terminate goes straight to dead letters; redrive is idempotent and delivers the original again", async () => {
    await createGroup({ name: "g-term", topic: "jobs.term", maxAttempts: 5 });
    await publish("jobs.term", [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }]);
    const ds = await pullN("g-term", 3, { consumer: "w" });
    await op("g-term", "ack", { token: ds[0]!.token });
    await op("g-term", "term", { token: ds[1]!.token, reason: "schema v1 unsupported" });
    await op("g-term", "term", { token: ds[2]!.token, reason: "bad input" });
    const letters = (await api(baton.url, admin, "GET", "/v1/groups/g-term/dead-letters")).body.deadLetters;
    assert.deepEqual(letters.map((l: { failures: { reason: string }[] }) => l.failures[0]!.reason), ["schema v1 unsupported", "bad input"]);
    assert.equal((await op("g-term", "dead-letters/redrive", {}, worker)).body.error.code, "FORBIDDEN");
    const first = await op("g-term", "dead-letters/redrive", { from: 1, limit: 1 });
    assert.deepEqual([first.body.redriven, first.body.alreadyRedriven], [1, 0]);
    const again = await op("g-term", "dead-letters/redrive", {});
    assert.deepEqual([again.body.redriven, again.body.alreadyRedriven], [1, 1]);
    const back = await eventually("redriven deliveries", async () => {
      const got = await pull("g-term", { consumer: "w", max: 10, wait: "500ms" });
      return got.length > 0 ? got : undefined;
    });
    const more = await pull("g-term", { consumer: "w", max: 10, wait: "300ms" });
    const all = [...back, ...more];
    assert.deepEqual(all.map((d) => d.event.data.n).sort(), [2, 3]);
    assert.deepEqual(all.map((d) => d.origin.topic), ["jobs.term", "jobs.term"]);
    assert.deepEqual(all.map((d) => d.origin.id).sort(), [ds[1]!.event.id, ds[2]!.event.id].sort());
    assert.ok(all.every((d) => d.attempt === 1));
    for (const d of all) await op("g-term", "ack", { token: d.token });
    const purge = await api(baton.url, admin, "DELETE", "/v1/groups/g-term/dead-letters");
    assert.equal(purge.body.purged, 2);
    assert.equal((await api(baton.url, admin, "GET", "/v1/groups/g-term/dead-letters")).body.deadLetters.length, 0);
  });

  test("an unacked delivery is handed to another member when its lease ends; extend keeps it", async () => {
    await createGroup({ name: "g-lease", topic: "jobs.lease", ackWait: "600ms", backoff: { initial: "0ms", max: "0ms" } });
    await publish("jobs.lease", [{ data: { n: 1 } }, { data: { n: 2 } }]);
    const [a, b] = await pullN("g-lease", 2, { consumer: "dies" });
    // Keep b alive with heartbeats; let a lapse.
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      assert.equal((await op("g-lease", "extend", { token: b!.token, lease: "700ms" })).status, 200);
    }
    const again = await pull("g-lease", { consumer: "takes-over", wait: "2s" });
    assert.equal(again.length, 1);
    assert.equal(again[0]!.event.data.n, a!.event.data.n);
    assert.equal(again[0]!.attempt, 2);
    assert.equal(again[0]!.failures[0]!.reason, "lease expired");
    // The first holder's late ack is refused: the delivery is someone else's now.
    assert.equal((await op("g-lease", "ack", { token: a!.token })).body.error.code, "DELIVERY_NOT_HELD");
    assert.equal((await op("g-lease", "ack", { token: b!.token })).status, 200);
    const d = await describeGroup("g-lease");
    assert.ok(d.stalled.some((s: { code: string }) => s.code === "LEASES_EXPIRING"));
  });

  test("an expired event is never delivered", async () => {
    await createGroup({ name: "g-ttl", topic: "jobs.ttl" });
    await publish("jobs.ttl", [{ data: { n: 1 }, ttlMs: 50 }, { data: { n: 2 } }]);
    await sleep(150);
    const ds = await pullN("g-ttl", 1, { consumer: "w" });
    ds.push(...(await pull("g-ttl", { consumer: "w", max: 10, wait: "300ms" })));
    assert.deepEqual(ds.map((d) => d.event.data.n), [2]);
  });
});

describe("ordering and fairness", () => {
  test("orderedByKey: one event per key in flight, in order; a failing key blocks only itself and says so", async () => {
    await createGroup({ name: "g-fifo", topic: "jobs.fifo", orderedByKey: true, backoff: { initial: "1s", max: "1s" } });
    await publish("jobs.fifo", [
      { data: { n: 1 }, key: "a" },
      { data: { n: 2 }, key: "a" },
      { data: { n: 3 }, key: "b" },
      { data: { n: 4 }, key: "b" },
      { data: { n: 5 } },
    ]);
    const first: DeliveryJson[] = [];
    for (let i = 0; i < 10 && first.length < 3; i++) first.push(...(await pull("g-fifo", { consumer: "w", max: 10, wait: "300ms" })));
    assert.deepEqual(first.map((d) => d.event.data.n).sort(), [1, 3, 5]);
    const byN = new Map(first.map((d) => [d.event.data.n, d]));
    await op("g-fifo", "nack", { token: byN.get(1)!.token, delay: "1s", reason: "model 429" });
    await op("g-fifo", "ack", { token: byN.get(3)!.token });
    await op("g-fifo", "ack", { token: byN.get(5)!.token });
    const second = await pull("g-fifo", { consumer: "w", max: 10, wait: "300ms" });
    assert.deepEqual(second.map((d) => d.event.data.n), [4], "key b goes on, key a waits for its retry");
    const d = await describeGroup("g-fifo");
    assert.ok(d.stalled.some((s: { code: string; message: string }) => s.code === "KEYS_BLOCKED" && s.message.includes("key a")), JSON.stringify(d.stalled));
    await op("g-fifo", "ack", { token: second[0]!.token });
    const retry = await pull("g-fifo", { consumer: "w", max: 10, wait: "3s" });
    assert.deepEqual(retry.map((x) => [x.event.data.n, x.attempt]), [[1, 2]]);
    await op("g-fifo", "ack", { token: retry[0]!.token });
    const last = await pull("g-fifo", { consumer: "w", max: 10, wait: "1s" });
    assert.deepEqual(last.map((x) => x.event.data.n), [2]);
  });

  test("a hot key does not hide a cold key published after its backlog", async () => {
    for (const ordered of [true, false]) {
      const name = `g-hot-${ordered}`;
      await createGroup({ name, topic: `jobs.hot${ordered}`, orderedByKey: ordered });
      for (let i = 0; i < 6; i++) await publish(`jobs.hot${ordered}`, Array.from({ length: 1000 }, (_, n) => ({ data: { n: i * 1000 + n }, key: "hot" })));
      await publish(`jobs.hot${ordered}`, [{ data: { n: -1 }, key: "cold" }]);
      const seen: number[] = [];
      await eventually("the cold key", async () => {
        const ds = await pull(name, { consumer: "w", max: 20, wait: "200ms" });
        seen.push(...ds.map((d) => d.event.data.n));
        await op(name, "ack", { tokens: ds.map((d) => d.token) });
        return seen.includes(-1) ? true : undefined;
      });
      assert.ok(seen.length < 1000, `ordered=${ordered}: the cold key came after ${seen.length} hot events`);
    }
  });

  test("a hot topic of a pattern group does not starve a quiet one", async () => {
    await createGroup({ name: "g-rooms", topic: "jobs.room.*" });
    for (let i = 0; i < 5; i++) await publish("jobs.room.busy", Array.from({ length: 1000 }, (_, n) => ({ data: { n } })));
    await publish("jobs.room.quiet", [{ data: { n: -1 } }]);
    const seen: number[] = [];
    await eventually("the quiet room", async () => {
      const ds = await pull("g-rooms", { consumer: "w", max: 20, wait: "200ms" });
      seen.push(...ds.map((d) => d.event.data.n));
      if (ds.length > 0) await op("g-rooms", "ack", { tokens: ds.map((d) => d.token) });
      return seen.includes(-1) ? true : undefined;
    });
    assert.ok(seen.length < 1000, `the quiet room came after ${seen.length} busy events`);
  });
});

describe("restart", () => {
  test("progress survives a restart: nothing acked comes back, nothing unacked is lost, attempts count on", async () => {
    await createGroup({ name: "g-restart", topic: "jobs.restart", ackWait: "1s", backoff: { initial: "0ms", max: "0ms" } });
    await publish("jobs.restart", Array.from({ length: 10 }, (_, n) => ({ data: { n } })));
    const ds: DeliveryJson[] = [];
    while (ds.length < 10) ds.push(...(await pull("g-restart", { consumer: "w", max: 10 - ds.length, wait: "1s" })));
    // Ack out of order: 0, 1, 5, 7; nack 2; leave the rest in flight.
    for (const n of [0, 1, 5, 7]) await op("g-restart", "ack", { token: ds[n]!.token });
    await op("g-restart", "nack", { token: ds[2]!.token, reason: "first try" });
    baton = await baton.restart();
    const seen = new Map<number, DeliveryJson>();
    await eventually("every unacked event", async () => {
      const got = await pull("g-restart", { consumer: "w2", max: 10, wait: "500ms" });
      for (const d of got) {
        assert.ok(!seen.has(d.event.data.n), `event ${d.event.data.n} delivered twice after restart`);
        seen.set(d.event.data.n, d);
        await op("g-restart", "ack", { token: d.token });
      }
      return seen.size >= 6 ? true : undefined;
    });
    assert.deepEqual([...seen.keys()].sort(), [2, 3, 4, 6, 8, 9]);
    assert.equal(seen.get(2)!.attempt, 2);
    assert.equal(seen.get(2)!.failures[0]!.reason, "first try");
    assert.equal(seen.get(3)!.failures[0]!.reason, "lease expired");
    assert.equal((await pull("g-restart", { consumer: "w2", max: 10, wait: "300ms" })).length, 0);
  });
});

describe("tenants and metrics", () => {
  test("a hot tenant's backlog does not delay another tenant's group", async () => {
    const hot = await token({ tenant: "hot-co", admin: true });
    const cold = await token({ tenant: "cold-co", admin: true });
    for (const [jwt, name] of [[hot, "g-hot"], [cold, "g-cold"]] as const) {
      assert.equal((await api(baton.url, jwt, "POST", "/v1/groups", { name, topic: "work" })).status, 201);
    }
    for (let i = 0; i < 10; i++) {
      await api(baton.url, hot, "POST", "/v1/topics/work/events", { events: Array.from({ length: 1000 }, (_, n) => ({ data: { n } })) });
    }
    // The hot tenant's workers are busy with their backlog...
    const hotWork = pullN("g-hot", 200, { consumer: "h" }, hot);
    await api(baton.url, cold, "POST", "/v1/topics/work/events", { data: { n: -1 } });
    // ...and the cold tenant's event is handed out at once.
    const got = await pull("g-cold", { consumer: "c", wait: "2s" }, cold);
    assert.deepEqual(got.map((d) => d.event.data.n), [-1]);
    await hotWork;
    const d = (await api(baton.url, hot, "GET", "/v1/groups/g-hot")).body;
    assert.ok(d.pending + d.lag > 5000, `the hot backlog is still there (${d.pending} pending, ${d.lag} lag)`);
  });

  test("group figures are exported as Prometheus metrics", async () => {
    await createGroup({ name: "g-metrics", topic: "jobs.metrics", backoff: { initial: "10s", max: "10s" } });
    await publish("jobs.metrics", [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }]);
    const [a, b] = await pullN("g-metrics", 2, { consumer: "w", maxInFlight: 2 });
    await op("g-metrics", "ack", { token: a!.token });
    await op("g-metrics", "nack", { token: b!.token, reason: "x" });
    const text = await (await fetch(`${baton.url}/metrics`)).text();
    const value = (name: string): number => {
      const m = new RegExp(`^${name}\\{tenant="acme",group="g-metrics"\\} (\\S+)$`, "m").exec(text);
      assert.ok(m !== null, `${name} for g-metrics is exported`);
      return Number(m[1]);
    };
    assert.equal(value("baton_group_pending_events"), 2);
    assert.equal(value("baton_group_delayed_events"), 1);
    assert.equal(value("baton_group_deliveries_total"), 2);
    assert.equal(value("baton_group_acks_total"), 1);
    assert.ok(value("baton_group_oldest_pending_age_seconds") >= 0);
  });
});
