/**
 * Fault test: thousands of malformed and mutated requests against the consumer-group, dead-letter,
 * slot and effect APIs, over HTTP and as socket RPCs, on a live Baton. Every answer must be a
 * typed error or a success (never 5xx, never INTERNAL, never a reply code outside the
 * documented set), the process must stay up, and a well-behaved worker must afterwards still
 * get every event of a group exactly once.
 *
 * Random choices come from a seeded generator: the seed is in every failure message; replay
 * with BATON_FUZZ_SEED=<seed>.
 */
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { ErrorCodes } from "../../src/errors/registry.ts";
import { BatonWorker } from "../../packages/sdk/src/index.ts";
import { RawSocket } from "../support/centrifuge-client.ts";
import { Rng } from "../support/rng.ts";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

const SEED = process.env["BATON_FUZZ_SEED"] === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env["BATON_FUZZ_SEED"]);
const HTTP_REQUESTS = 2500;
const RPCS = 1500;
const CONCURRENCY = 16;

let baton: BatonProcess;
let jwt: string;

before(async () => {
  baton = await startBaton();
  jwt = await token({ tenant: "fuzz", sub: "fuzzer", admin: true });
});
after(() => baton.destroy());

const rng = new Rng(SEED);

const GARBAGE: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, 2 ** 53, -(2 ** 60), "", " ", "x".repeat(5000), "1s", "-5s", "99999h", "forever",
  "\u0000", "é🎉", [], [1, "a"], {}, { a: { b: { c: [] } } }, "1:1:aaaaaaaaaa:jobs", "s.0.0123456789abcdef.gpu", "NaN",
];

/** Valid-looking bodies per operation, then mutated. */
const TEMPLATES: Record<string, () => Record<string, unknown>> = {
  create: () => ({ name: `g${rng.int(0, 4)}`, topic: rng.pick(["jobs", "jobs.*", "jobs.>", "a.b"]), ackWait: "2s", maxAttempts: 3, backoff: { initial: "10ms", max: "100ms" }, orderedByKey: rng.next() < 0.5 }),
  pull: () => ({ consumer: `c${rng.int(0, 2)}`, max: 1 + rng.int(0, 4), wait: "0ms" }),
  ack: () => (rng.next() < 0.5 ? { token: "1:1:abcdefghij:jobs" } : { tokens: ["1:1:abcdefghij:jobs", "x"] }),
  nack: () => ({ token: "1:1:abcdefghij:jobs", delay: "10ms", reason: "r" }),
  term: () => ({ token: "1:1:abcdefghij:jobs", reason: "r" }),
  extend: () => ({ token: "1:1:abcdefghij:jobs", lease: "1s" }),
  reset: () => ({ start: rng.pick(["beginning", "now", { seq: 1 }, { time: "2026-01-01T00:00:00Z" }]) }),
  redrive: () => ({ from: 1, limit: 5 }),
  reserve: () => ({ limit: 1 + rng.int(0, 2), lease: "500ms", wait: "0ms" }),
  release: () => ({ token: "s.0.0123456789abcdef.gpu" }),
  finalize: () => ({ token: "s.0.0123456789abcdef.gpu", topic: "out", event: { data: { ok: true } } }),
  begin: () => ({ lease: "500ms" }),
  complete: () => ({ token: "0123456789abcdef01234567", outcome: { v: 1 } }),
  abandon: () => ({ token: "0123456789abcdef01234567" }),
};

function mutate(body: Record<string, unknown>): unknown {
  const roll = rng.int(0, 9);
  if (roll === 0) return rng.pick(GARBAGE);
  const out: Record<string, unknown> = { ...body };
  const keys = Object.keys(out);
  for (let i = 0, n = 1 + rng.int(0, 2); i < n; i++) {
    const what = rng.int(0, 3);
    const key = keys.length > 0 ? rng.pick(keys) : "x";
    if (what === 0) delete out[key];
    else if (what === 1) out[key] = rng.pick(GARBAGE);
    else if (what === 2) out[rng.pick(["extra", "__proto__", "constructor", "group", "token"])] = rng.pick(GARBAGE);
  }
  return out;
}

function segment(): string {
  return encodeURIComponent(rng.pick(["g0", "g1", "nope", "", "a b", "..", "%", "x".repeat(300), "é", "gpu", "run:1"])).replace(/^$/, "%20");
}

/** One random HTTP request: [method, path, body?]. */
function httpRequest(): [string, string, unknown] {
  const g = rng.next() < 0.8 ? `g${rng.int(0, 4)}` : segment();
  switch (rng.int(0, 8)) {
    case 0:
      return ["POST", "/v1/groups", rng.next() < 0.3 ? TEMPLATES["create"]!() : mutate(TEMPLATES["create"]!())];
    case 1: {
      const op = rng.pick(["pull", "ack", "nack", "term", "extend", "reset"]);
      return ["POST", `/v1/groups/${g}/${op}`, mutate(TEMPLATES[op]!())];
    }
    case 2:
      return ["GET", `/v1/groups/${g}/dead-letters/${rng.pick(["1", "0", "-1", "x", "99999999999999999999", "1.5"])}`, undefined];
    case 3:
      return ["GET", `/v1/groups/${g}/dead-letters?from=${rng.pick(["1", "0", "x", ""])}&limit=${rng.pick(["1", "0", "5000", "x"])}`, undefined];
    case 4:
      return ["POST", `/v1/groups/${g}/dead-letters/redrive`, mutate(TEMPLATES["redrive"]!())];
    case 5: {
      const op = rng.pick(["reserve", "extend", "release", "finalize"]);
      return ["POST", `/v1/slots/${rng.next() < 0.7 ? "gpu" : segment()}/${op}`, mutate(TEMPLATES[op === "extend" ? "release" : op]!())];
    }
    case 6: {
      const op = rng.pick(["begin", "complete", "abandon", "extend"]);
      return ["POST", `/v1/effects/${segment()}/${op}`, mutate(TEMPLATES[op === "extend" ? "abandon" : op]!())];
    }
    case 7:
      return [rng.pick(["GET", "DELETE"]), `/v1/groups/${g}`, undefined];
    default:
      return ["GET", rng.pick(["/v1/groups", "/v1/groups?limit=0", "/v1/groups?limit=x&after=%ff", "/v1/slots/gpu", `/v1/effects/${segment()}`]), undefined];
  }
}

async function pool<T>(items: T[], n: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await each(items[next++]!);
  }));
}

const DOCUMENTED_REPLY_CODES = new Set([100, 103, 104, 107, 111, ...Object.values(ErrorCodes).map((s) => 1000 + s.status)]);

test(`malformed group, slot and effect requests get typed errors and change nothing that matters (seed ${SEED})`, { timeout: 180_000 }, async (t: TestContext) => {
  // Groups the fuzzer may hit and a topic with events in it.
  for (let i = 0; i < 5; i++) await api(baton.url, jwt, "POST", "/v1/groups", { name: `g${i}`, topic: i % 2 === 0 ? "jobs" : "jobs.*", ackWait: "2s", backoff: { initial: "10ms", max: "100ms" } });
  await api(baton.url, jwt, "POST", "/v1/topics/jobs/events", { events: Array.from({ length: 50 }, (_, n) => ({ data: { n }, key: `k${n % 3}` })) });

  const failures: string[] = [];
  const answers = new Map<string, number>();
  const requests = Array.from({ length: HTTP_REQUESTS }, () => httpRequest());
  await pool(requests, CONCURRENCY, async ([method, path, body]) => {
    const res = await fetch(`${baton.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${jwt}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) ?? "null" }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    const label = res.status < 400 ? String(res.status) : `${res.status} ${(JSON.parse(text) as { error?: { code?: string } }).error?.code}`;
    answers.set(label, (answers.get(label) ?? 0) + 1);
    if (res.status >= 500) failures.push(`${method} ${path} ${JSON.stringify(body)?.slice(0, 200)} -> ${res.status} ${text.slice(0, 200)}`);
    else if (res.status >= 400) {
      const code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
      if (code === undefined || !(code in ErrorCodes)) failures.push(`${method} ${path} -> ${res.status} without a registered code: ${text.slice(0, 200)}`);
    }
  });
  assert.deepEqual(failures.slice(0, 5), [], `seed ${SEED}: ${failures.length} bad answers`);
  t.diagnostic(`answers: ${[...answers].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} x${n}`).join(", ")}`);
  // The fuzzer reaches past validation: successes and several distinct refusals.
  const successes = [...answers].filter(([k]) => Number(k.slice(0, 3)) < 400).reduce((a, [, n]) => a + n, 0);
  assert.ok(successes > 50, `seed ${SEED}: only ${successes} requests succeeded`);
  assert.ok(answers.size >= 8, `seed ${SEED}: only ${answers.size} kinds of answer`);

  // The same over the socket, as baton.* RPCs with mutated data.
  const socket = new RawSocket(baton.url);
  await socket.opened;
  socket.send(JSON.stringify({ id: 1, connect: { token: jwt } }));
  await socket.reply(1);
  const methods = ["baton.group.consume", "baton.group.stop", "baton.group.ack", "baton.group.nack", "baton.group.term", "baton.group.extend", "baton.group.describe", "baton.slot.reserve", "baton.slot.release", "baton.slot.finalize", "baton.slot.list", "baton.effect.begin", "baton.effect.complete", "baton.effect.get"];
  const rpcFailures: string[] = [];
  for (let i = 0; i < RPCS; i += 50) {
    const frame: string[] = [];
    const ids: number[] = [];
    for (let j = 0; j < 50; j++) {
      const id = 10 + i + j;
      const method = rng.pick(methods);
      const template = TEMPLATES[method.split(".")[2] === "consume" ? "pull" : method.split(".")[2]!] ?? (() => ({}));
      const data = mutate({ ...template(), group: `g${rng.int(0, 4)}`, resource: "gpu", key: segment() });
      frame.push(JSON.stringify({ id, rpc: { method, data } }));
      ids.push(id);
    }
    socket.send(frame.join("\n"));
    for (const id of ids) {
      const r = await socket.reply(id, 10_000);
      if (r.error !== undefined && !DOCUMENTED_REPLY_CODES.has(r.error.code)) rpcFailures.push(`reply ${JSON.stringify(r).slice(0, 200)}`);
      if (r.error?.code === 100 && !String(r.error.message).startsWith("UNAVAILABLE")) rpcFailures.push(`internal: ${JSON.stringify(r).slice(0, 200)}`);
    }
  }
  socket.close();
  assert.deepEqual(rpcFailures.slice(0, 5), [], `seed ${SEED}: ${rpcFailures.length} bad replies`);

  // Still serving, and a fresh group still gets every event exactly once.
  assert.equal((await fetch(`${baton.url}/healthz`)).status, 200);
  assert.equal((await api(baton.url, jwt, "POST", "/v1/groups", { name: "after-fuzz", topic: "clean" })).status, 201);
  await api(baton.url, jwt, "POST", "/v1/topics/clean/events", { events: Array.from({ length: 30 }, (_, n) => ({ data: { n } })) });
  const worker = new BatonWorker(baton.url, { token: jwt });
  const seen: number[] = [];
  const c = worker.consume<{ n: number }>("after-fuzz", (d) => {
    seen.push(d.event.data.n);
  });
  const deadline = Date.now() + 15_000;
  while (seen.length < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await c.stop();
  await worker.close();
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 30 }, (_, n) => n), `seed ${SEED}`);
  const d = await api(baton.url, jwt, "GET", "/v1/groups/after-fuzz");
  assert.deepEqual([d.body.pending, d.body.counters.acked], [0, 30]);
});
