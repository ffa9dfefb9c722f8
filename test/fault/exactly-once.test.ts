/**
 * Fault test of the slow path's promise: every triggering event gets exactly one completed model
 * run, none is lost, and concurrent runs never exceed the slot limit - while workers are
 * SIGKILLed in the middle of model calls, leases expire, the Baton server is SIGKILLed and
 * restarted, and prompts are published twice.
 *
 * The fake model is an HTTP server in this process. A run "completes" when its answer reaches a
 * live caller; a run whose caller was killed mid-call does not complete (the answer is never
 * received, as with a real provider whose client died). Workers are separate processes
 * (test/support/model-worker.ts) using the worker SDK's documented pattern:
 * reserve -> ack({slot}) -> effect(run model) -> finalize.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { api, freePort, ROOT, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

const PROMPTS = 24;
const DUPLICATES = 8;
const SLOT_LIMIT = 2;
const WORKERS = 3;
const MODEL_MS = 500;
// Longer than a server restart, so leases survive it; shorter than the test.
const LEASE_MS = 4000;
/**
 * From these model calls on (1-based), the next calling worker that is safe to kill is SIGKILLed
 * in the middle of its call. Safe: it has no other call running and every answer it received has
 * its outcome stored (asked from Baton's effect API), so no finished run can be lost between its
 * answer and its stored outcome - the one window no guard can close (docs/groups.md, effects).
 */
const KILL_FROM_CALLS = [2, 5, 8];
/** The Baton server is SIGKILLed once this many runs have completed. */
const RESTART_AFTER_COMPLETED = 10;

let baton: BatonProcess;
let model: Server;
let modelUrl: string;
let workerToken: string;
let admin: string;
const workers = new Set<ChildProcess>();
let workerOutput = "";

const completed = new Map<string, number>();
let calls = 0;
let active = 0;
let peak = 0;
let killed = 0;
let restarting = false;
/** Per worker pid: calls running, and the runs it got answers for whose outcome is not known stored. */
const running = new Map<number, number>();
const unconfirmed = new Map<number, Set<string>>();
let killing = false;

/** Whether every run answered to `pid` has its outcome stored in Baton. */
async function outcomesStored(pid: number): Promise<boolean> {
  const runs = unconfirmed.get(pid) ?? new Set<string>();
  for (const run of [...runs]) {
    const r = await api(baton.url, admin, "GET", `/v1/effects/${encodeURIComponent(`run.${run}`)}`).catch(() => undefined);
    if (r?.status !== 200 || r.body.state !== "done") return false;
    runs.delete(run);
  }
  return true;
}

function startWorker(): void {
  const child = spawn(process.execPath, [join(ROOT, "test/support/model-worker.ts")], {
    env: { ...process.env, BATON_URL: baton.url, BATON_TOKEN: workerToken, MODEL_URL: modelUrl, GROUP: "runs", LEASE_MS: String(LEASE_MS), SLOT_LIMIT: String(SLOT_LIMIT) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (workerOutput += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (workerOutput += d.toString()));
  workers.add(child);
  child.once("exit", () => workers.delete(child));
}

before(async () => {
  baton = await startBaton();
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
  workerToken = await token({ tenant: "acme", sub: "model-worker", publish: ["results"], subscribe: ["prompts"], coordinate: ["model.>", "run.>"] });
  model = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const { run } = JSON.parse(body) as { run: string };
      const pid = Number(req.headers["x-worker-pid"]);
      calls += 1;
      active += 1;
      running.set(pid, (running.get(pid) ?? 0) + 1);
      peak = Math.max(peak, active);
      let open = true;
      const finish = (): void => {
        if (!open) return;
        open = false;
        active -= 1;
        running.set(pid, running.get(pid)! - 1);
      };
      res.on("close", finish);
      const due = killed < KILL_FROM_CALLS.length && calls >= KILL_FROM_CALLS[killed]!;
      if (due && !killing && !restarting && running.get(pid) === 1) {
        killing = true;
        void outcomesStored(pid).then((ok) => {
          killing = false;
          // Still mid-call (the model answers after MODEL_MS) and nothing of it is unstored.
          if (!ok || !open || running.get(pid) !== 1 || restarting) return;
          for (const w of workers) {
            if (w.pid !== pid) continue;
            w.kill("SIGKILL");
            killed += 1;
            startWorker();
          }
        });
      }
      setTimeout(() => {
        if (!open || res.destroyed) return;
        res.end(JSON.stringify({ text: `answer to ${run}` }), () => {
          // Written to a live caller: the run completed.
          completed.set(run, (completed.get(run) ?? 0) + 1);
          let runs = unconfirmed.get(pid);
          if (runs === undefined) unconfirmed.set(pid, (runs = new Set()));
          runs.add(run);
          finish();
        });
      }, MODEL_MS);
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => model.listen(port, "127.0.0.1", r));
  modelUrl = `http://127.0.0.1:${port}/run`;
});

after(async () => {
  for (const w of workers) w.kill("SIGKILL");
  model.close();
  await baton.destroy();
});

async function publishPrompts(from: number, to: number, duplicate = false): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i < to; i++) {
    const r = await api(baton.url, admin, "POST", "/v1/topics/prompts/events", { data: { prompt: `p${i}` }, idempotencyKey: `prompt-${i}` });
    assert.equal(r.status, duplicate ? 200 : 201, JSON.stringify(r.body));
    assert.equal(r.body.duplicate === true, duplicate);
    ids.push(r.body.id as string);
  }
  return ids;
}

async function results(): Promise<{ run: string }[]> {
  const r = await api(baton.url, admin, "GET", "/v1/topics/results/events?from=1&limit=1000");
  return r.status === 404 ? [] : (r.body.events as { data: { run: string } }[]).map((e) => e.data);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("every prompt gets exactly one completed model run, under worker kills, lease expiry, a server SIGKILL and duplicate publishes", { timeout: 180_000 }, async () => {
  assert.equal((await api(baton.url, admin, "POST", "/v1/groups", { name: "runs", topic: "prompts", ackWait: `${LEASE_MS}ms`, backoff: { initial: "200ms", max: "1s" }, maxAttempts: 20 })).status, 201);
  const ids = await publishPrompts(0, PROMPTS);
  for (let i = 0; i < WORKERS; i++) startWorker();

  const deadline = Date.now() + 150_000;
  let restarted = false;
  let duplicated = false;
  for (;;) {
    const done = [...completed.values()].reduce((a, b) => a + b, 0);
    if (!restarted && done >= RESTART_AFTER_COMPLETED) {
      restarted = true;
      restarting = true;
      await baton.kill9();
      baton = await baton.restart(); // same port, data dir and (on NATS) prefix
      // Workers reconnect and store the outcomes of runs that finished meanwhile.
      setTimeout(() => (restarting = false), 3000);
    }
    if (restarted && !duplicated) {
      duplicated = true;
      const again = await publishPrompts(0, DUPLICATES, true);
      assert.deepEqual(again, ids.slice(0, DUPLICATES), "a duplicate publish answers with the first id");
    }
    const res = await results().catch(() => []);
    if (new Set(res.map((r) => r.run)).size >= PROMPTS && completed.size >= PROMPTS) break;
    if (Date.now() > deadline) {
      assert.fail(`not finished: ${completed.size}/${PROMPTS} runs completed, ${res.length} results; worker output:\n${workerOutput.slice(-3000)}`);
    }
    await sleep(200);
  }
  // Anything still in motion (a redelivery, a reclaimed slot) has time to run twice, if it would.
  await sleep(LEASE_MS + 1500);

  assert.equal(killed, KILL_FROM_CALLS.length, "workers were killed mid-call");
  assert.ok(restarted);
  assert.deepEqual([...completed.keys()].sort(), [...ids].sort(), "every prompt, and only those, ran");
  const twice = [...completed].filter(([, n]) => n !== 1);
  assert.deepEqual(twice, [], "no prompt has more than one completed run");
  assert.ok(peak <= SLOT_LIMIT, `concurrent model runs peaked at ${peak}, over the limit ${SLOT_LIMIT}`);
  const res = await results();
  assert.equal(res.length, PROMPTS, "one result per prompt: finalize is stored once per work");
  assert.deepEqual(new Set(res.map((r) => r.run)), new Set(ids));
  const prompts = await api(baton.url, admin, "GET", "/v1/topics/prompts");
  assert.equal(prompts.body.lastSeq, PROMPTS, "duplicate publishes stored nothing");
});
