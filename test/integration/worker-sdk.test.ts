/**
 * The worker SDK (packages/sdk/src/worker.ts) against a real server: ack on return, nack on
 * throw, terminate and retry-after, in-flight limits, lease extension during long handlers,
 * graceful stop, socket RPC errors, and carrying on across a server restart.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { BatonCallError, BatonWorker, RetryAfter, Terminate, type Delivery } from "../../packages/sdk/src/index.ts";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
let admin: string;
const workers: BatonWorker[] = [];

before(async () => {
  baton = await startBaton();
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
});
after(async () => {
  for (const w of workers) await w.close().catch(() => undefined);
  await baton.destroy();
});

async function worker(): Promise<BatonWorker> {
  const w = new BatonWorker(baton.url, { token: await token({ tenant: "acme", sub: "agent", publish: [], subscribe: ["w.>"] }), minReconnectDelayMs: 50, maxReconnectDelayMs: 500 });
  workers.push(w);
  return w;
}

async function group(name: string, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await api(baton.url, admin, "POST", "/v1/groups", { name, topic: `w.${name}`, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function publish(topic: string, n: number): Promise<void> {
  const r = await api(baton.url, admin, "POST", `/v1/topics/${topic}/events`, { events: Array.from({ length: n }, (_, i) => ({ data: { n: i } })) });
  assert.equal(r.status, 201);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("handlers run at most maxInFlight at once; return acks; every event is handled once", async () => {
  await group("limit");
  await publish("w.limit", 40);
  const w = await worker();
  let running = 0;
  let peak = 0;
  const done: number[] = [];
  const c = w.consume<{ n: number }>("limit", async (d) => {
    running += 1;
    peak = Math.max(peak, running);
    await sleep(10);
    running -= 1;
    done.push(d.event.data.n);
  }, { maxInFlight: 3 });
  await until(() => done.length === 40, 15_000);
  await c.stop();
  assert.equal(peak, 3);
  assert.deepEqual([...done].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  const d = (await api(baton.url, admin, "GET", "/v1/groups/limit")).body;
  assert.deepEqual([d.counters.acked, d.pending], [40, 0]);
});

test("throw retries with the failure recorded; Terminate dead-letters; RetryAfter sets the delay", async () => {
  await group("fail", { backoff: { initial: "50ms", max: "50ms" }, maxAttempts: 3 });
  await publish("w.fail", 3);
  const w = await worker();
  const seen: Delivery<{ n: number }>[] = [];
  const arrivedAt = new Map<Delivery, number>();
  const c = w.consume<{ n: number }>("fail", (d) => {
    seen.push(d);
    arrivedAt.set(d, Date.now());
    if (d.event.data.n === 0 && d.attempt === 1) throw new Error("flaky model");
    if (d.event.data.n === 1) throw new Terminate("unsupported input");
    if (d.event.data.n === 2 && d.attempt === 1) throw new RetryAfter(300, "rate limited");
  });
  await until(() => seen.filter((d) => d.attempt === 2).length === 2, 10_000);
  const retried = seen.filter((d) => d.attempt === 2);
  assert.deepEqual(retried.map((d) => d.event.data.n).sort(), [0, 2]);
  assert.equal(retried.find((d) => d.event.data.n === 0)!.failures[0]!.reason, "Error: flaky model");
  assert.equal(retried.find((d) => d.event.data.n === 2)!.failures[0]!.reason, "rate limited");
  const r2 = retried.find((d) => d.event.data.n === 2)!;
  const waited = arrivedAt.get(r2)! - Date.parse(r2.failures[0]!.at);
  assert.ok(waited >= 250, `RetryAfter(300) came back after ${waited} ms`);
  let letters: { failures: { reason: string }[] }[] = [];
  for (let i = 0; i < 100 && letters.length === 0; i++) {
    letters = (await api(baton.url, admin, "GET", "/v1/groups/fail/dead-letters")).body.deadLetters;
    if (letters.length === 0) await sleep(50);
  }
  assert.equal(letters[0]!.failures[0]!.reason, "unsupported input");
  assert.equal(seen.filter((d) => d.event.data.n === 1).length, 1, "a terminated event is not retried");
  await c.stop();
});

test("a handler running longer than the lease keeps it by heartbeats: no second delivery", async () => {
  await group("long", { ackWait: "600ms" });
  await publish("w.long", 1);
  const w = await worker();
  const attempts: number[] = [];
  const c = w.consume("long", async (d) => {
    attempts.push(d.attempt);
    await sleep(2000);
  });
  await until(() => attempts.length === 1);
  await sleep(2600);
  assert.deepEqual(attempts, [1]);
  const d = (await api(baton.url, admin, "GET", "/v1/groups/long")).body;
  assert.deepEqual([d.counters.acked, d.counters.leaseExpired], [1, 0]);
  await c.stop();
});

test("stop finishes the running handlers and settles them; nothing is handed out again", async () => {
  await group("stop");
  await publish("w.stop", 4);
  const w = await worker();
  const started: number[] = [];
  const finished: number[] = [];
  const c = w.consume<{ n: number }>("stop", async (d) => {
    started.push(d.event.data.n);
    await sleep(500);
    finished.push(d.event.data.n);
  }, { maxInFlight: 2 });
  await until(() => started.length === 2);
  await c.stop();
  assert.deepEqual(finished.sort(), started.sort());
  assert.equal(started.length, 2, "no new deliveries after stop");
  const d = (await api(baton.url, admin, "GET", "/v1/groups/stop")).body;
  assert.deepEqual([d.counters.acked, d.inFlight], [2, 0]);
});

test("socket RPC errors carry Baton's code", async () => {
  const w = await worker();
  await assert.rejects(w.call("baton.group.ack", { group: "nope", token: "1:1:w.x" }), (err: unknown) => err instanceof BatonCallError && err.batonCode === "GROUP_NOT_FOUND" && err.code === 1404);
  await group("errs");
  await assert.rejects(w.call("baton.group.ack", { group: "errs", token: "1:1:w.errs" }), (err: unknown) => err instanceof BatonCallError && err.batonCode === "DELIVERY_NOT_HELD" && err.code === 1409);
  await assert.rejects(w.call("baton.group.ack", { group: "errs" }), (err: unknown) => err instanceof BatonCallError && err.code === 107);
  await assert.rejects(w.call("baton.group.explode", { group: "errs" }), (err: unknown) => err instanceof BatonCallError && err.code === 104);
  const outsider = new BatonWorker(baton.url, { token: await token({ tenant: "acme", sub: "x", subscribe: ["other.*"] }) });
  workers.push(outsider);
  await assert.rejects(outsider.call("baton.group.consume", { group: "errs" }), (err: unknown) => err instanceof BatonCallError && err.code === 103);
});

test("a worker carries on after the server restarts", async () => {
  await group("restart");
  const w = await worker();
  const done = new Set<number>();
  const c = w.consume<{ n: number }>("restart", (d) => {
    done.add(d.event.data.n);
  });
  await publish("w.restart", 5);
  await until(() => done.size === 5);
  baton = await baton.restart();
  await publish("w.restart", 10);
  await until(() => done.size === 10, 15_000);
  await c.stop();
});
