/**
 * The `baton` CLI against a real server: token minting with the server's generated secret,
 * publish, tail, topics, consumer groups and their dead letters, slots and effects, and typed
 * errors on stderr.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, TEST_SECRET, api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

const run = promisify(execFile);
const BIN = join(ROOT, "bin/baton.js");
let baton: BatonProcess;
let admin: string;

before(async () => {
  baton = await startBaton();
  admin = await token({ tenant: "acme", admin: true });
});
after(() => baton.destroy());

function cli(args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { env: { ...process.env, BATON_URL: baton.url, BATON_JWT_SECRET: TEST_SECRET, BATON_TENANT: "acme", ...env } });
}

/** The CLI's stdout as JSON lines. */
async function cliJson(args: string[]): Promise<any[]> {
  const { stdout } = await cli(args);
  return stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** Runs the CLI and expects it to fail with this exit code and stderr. */
async function cliFails(args: string[], exitCode: number, stderr: RegExp): Promise<void> {
  await assert.rejects(cli(args), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, exitCode, `${args.join(" ")}: ${err.stderr}`);
    assert.match(err.stderr, stderr);
    return true;
  });
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("token create prints a JWT that the server accepts, scoped as asked", async () => {
  const { stdout } = await cli(["token", "create", "--tenant", "acme", "--sub", "dana", "--publish", "cli.*", "--subscribe", "cli.>", "--ttl", "10m"]);
  const jwt = stdout.trim();
  assert.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const claims = JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString());
  assert.deepEqual([claims.tenant, claims.sub, claims.publish, claims.subscribe], ["acme", "dana", ["cli.*"], ["cli.>"]]);
  assert.ok(claims.exp - claims.iat === 600);
  assert.equal((await api(baton.url, jwt, "POST", "/v1/topics/cli.a/events", { data: 1 })).status, 201);
  assert.equal((await api(baton.url, jwt, "POST", "/v1/topics/other/events", { data: 1 })).status, 403);
});

test("publish, topics and tail work end to end", async () => {
  const pub = await cli(["publish", "cli.t", '{"n":1}', "--key", "k1", "--type", "demo", "--idempotency-key", "once"]);
  assert.equal(JSON.parse(pub.stdout).seq, 1);
  const dup = await cli(["publish", "cli.t", '{"n":1}', "--idempotency-key", "once"]);
  assert.equal(JSON.parse(dup.stdout).duplicate, true);
  await cli(["publish", "cli.t", '{"n":2}']);
  const tail = await cli(["tail", "cli.t", "--from", "1", "--no-follow"]);
  const lines = tail.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => [e.seq, e.data.n]), [[1, 1], [2, 2]]);
  assert.equal(lines[0].key, "k1");
  const created = await cli(["topics", "create", "cli.made", "--max-age", "1h", "--max-events", "5"]);
  assert.equal(JSON.parse(created.stdout).retention.maxEvents, 5);
  const listed = await cli(["topics", "list", "--prefix", "cli."]);
  assert.deepEqual(listed.stdout.trim().split("\n").map((l) => JSON.parse(l).name), ["cli.a", "cli.made", "cli.t"]);
  const described = await cli(["topics", "describe", "cli.t"]);
  assert.equal(JSON.parse(described.stdout).lastSeq, 2);
  await cli(["topics", "delete", "cli.made"]);
  await assert.rejects(cli(["topics", "describe", "cli.made"]), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /^error TOPIC_NOT_FOUND: /);
    return true;
  });
});

test("tail follows new events as they are published", async () => {
  await cli(["publish", "cli.follow", '"first"']);
  const child = spawn(process.execPath, [BIN, "tail", "cli.follow"], { env: { ...process.env, BATON_URL: baton.url, BATON_JWT_SECRET: TEST_SECRET, BATON_TENANT: "acme" } });
  let out = "";
  const gotLine = new Promise<void>((resolve) => child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.includes("\n")) resolve();
  }));
  try {
    // The tail starts after the current end, so it must print only what comes next.
    await new Promise((r) => setTimeout(r, 500));
    await cli(["publish", "cli.follow", '"second"']);
    await gotLine;
    assert.equal(JSON.parse(out.split("\n")[0]!).data, "second");
  } finally {
    child.kill();
  }
});

test("errors are typed on stderr with exit code 1; usage errors exit 2", async () => {
  await assert.rejects(cli(["publish", "cli.t", "{not json"]), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /^error INVALID_JSON: /);
    return true;
  });
  await assert.rejects(cli(["publish", "x", "1"], { BATON_URL: "http://127.0.0.1:1" }), (err: { stderr: string; code: number }) => {
    assert.match(err.stderr, /^error UNAVAILABLE: cannot reach/);
    return true;
  });
  await assert.rejects(cli(["token", "create", "--tenant", "acme"]), (err: { code: number }) => err.code === 2);
  // A flag that would make an invalid claim is a usage error naming the flag and the value.
  await cliFails(["token", "create", "--tenant", "acme", "--sub", "s", "--publish", "bad pattern!"], 2, /^error VALIDATION_FAILED: --publish: "bad pattern!" is not a topic pattern/);
  await cliFails(["token", "create", "--tenant", "acme", "--sub", "s", "--channel", "room.>"], 2, /^error VALIDATION_FAILED: --channel: "room\.>" is not a topic name/);
});

test("start: a bad setting names the flag or variable it came from; an unreachable NATS is named, not INTERNAL", async () => {
  // Every case fails before the data dir is used.
  const dataDir = join(tmpdir(), "baton-cli-start-unused");
  await cliFails(["start", "--port", "99999", "--data-dir", dataDir], 1, /^error VALIDATION_FAILED: invalid --port: /);
  await assert.rejects(cli(["start", "--data-dir", dataDir], { BATON_WS_PONG_TIMEOUT: "soon" }), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /^error VALIDATION_FAILED: invalid BATON_WS_PONG_TIMEOUT: /m);
    return true;
  });
  await assert.rejects(cli(["start", "--port", "0", "--data-dir", dataDir, "--engine", "nats://127.0.0.1:1"], { BATON_JWT_SECRET: TEST_SECRET }), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /^error UNAVAILABLE: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: /m);
    return true;
  });
});

test("groups: create, describe (summary and --json), list, pull --ack, reset, delete", async () => {
  const published = await api(baton.url, admin, "POST", "/v1/topics/cli.jobs.a/events", { events: [{ data: { n: 1 }, key: "k1" }, { data: { n: 2 }, key: "k2" }] });
  assert.equal(published.status, 201, JSON.stringify(published.body));
  const [created] = await cliJson(["groups", "create", "cg-a", "--topic", "cli.jobs.*", "--ack-wait", "45s", "--max-attempts", "3", "--backoff-initial", "200ms", "--backoff-max", "2s", "--backoff-multiplier", "1.5", "--ordered-by-key", "--max-pending", "500"]);
  assert.deepEqual(
    [created.name, created.topic, created.start, created.ackWaitMs, created.maxAttempts, created.backoff, created.orderedByKey, created.maxPending],
    ["cg-a", "cli.jobs.*", "beginning", 45_000, 3, { initialMs: 200, maxMs: 2000, multiplier: 1.5 }, true, 500],
  );
  const [summary, [raw]] = await Promise.all([cli(["groups", "describe", "cg-a"]), cliJson(["groups", "describe", "cg-a", "--json"])]);
  assert.match(summary.stdout, /^Group: +cg-a$/m);
  assert.match(summary.stdout, /^Ack wait: +45s$/m);
  assert.match(summary.stdout, /^Pending: +2 \(ready 2, in flight 0, delayed 0/m);
  assert.match(summary.stdout, /^Stalled: +NO_MEMBERS: 2 events are ready and no member is consuming$/m);
  assert.match(summary.stdout, /^ +cli\.jobs\.a +1 +3 +2 +0 +0$/m, summary.stdout);
  assert.deepEqual([raw.pending, raw.ready, raw.lag, raw.stalled.map((r: { code: string }) => r.code)], [2, 2, 0, ["NO_MEMBERS"]]);

  const pulled = await cliJson(["groups", "pull", "cg-a", "--consumer", "cli-w", "--max", "5", "--ack"]);
  assert.deepEqual(pulled.map((d) => [d.topic, d.seq, d.attempt, d.event.data.n]), [["cli.jobs.a", 1, 1, 1], ["cli.jobs.a", 2, 1, 2]]);
  const [[after], listed] = await Promise.all([cliJson(["groups", "describe", "cg-a", "--json"]), cliJson(["groups", "list"])]);
  assert.deepEqual([after.counters.delivered, after.counters.acked, after.pending, after.inFlight], [2, 2, 0, 0]);
  assert.ok(listed.some((g) => g.name === "cg-a" && g.topic === "cli.jobs.*"), JSON.stringify(listed));

  // Back to seq 2: the second event is pending again.
  const [reset] = await cliJson(["groups", "reset", "cg-a", "--start", "seq:2"]);
  assert.deepEqual([reset.start, reset.pending], [{ seq: 2 }, 1]);
  const deleted = await cli(["groups", "delete", "cg-a"]);
  assert.match(deleted.stderr, /deleted group cg-a/);
  assert.equal((await api(baton.url, admin, "GET", "/v1/groups/cg-a")).status, 404);
  await cliFails(["groups", "describe", "cg-a"], 1, /^error GROUP_NOT_FOUND: no consumer group cg-a\n$/);
});

test("groups: bad flags are usage errors that change nothing; the server's validation errors print its code", async () => {
  await Promise.all([
    cliFails(["groups", "create", "cg-bad", "--topic", "cli.bad", "--max-attempts", "three"], 2, /option '--max-attempts <n>' argument 'three' is invalid/),
    cliFails(["groups", "create", "cg-bad", "--topic", "cli.bad", "--start", "seq:0"], 2, /--start <position>.*use beginning, now, seq:<n>/),
    cliFails(["groups", "create", "cg-bad", "--topic", "cli.bad", "--ack-wait", "forever"], 2, /invalid duration "forever"/),
    cliFails(["groups", "create", "cg-bad"], 2, /required option '--topic <topic>' not specified/),
    cliFails(["groups", "create", "cg-bad", "--topic", "cli.bad", "--max-attempts", "0"], 1, /^error VALIDATION_FAILED: maxAttempts: must be an integer in \[1, 1000\]\n$/),
    cliFails(["groups", "pull", "nope", "--consumer", "w"], 1, /^error GROUP_NOT_FOUND: no consumer group nope\n$/),
    cliFails(["groups", "dlq", "purge", "nope"], 2, /add --yes to confirm/),
  ]);
  assert.equal((await api(baton.url, admin, "GET", "/v1/groups/cg-bad")).body.error.code, "GROUP_NOT_FOUND");
});

test("groups dlq: list, show, redrive (then pull --ack the redriven event), purge", async () => {
  assert.equal((await api(baton.url, admin, "POST", "/v1/groups", { name: "cg-dlq", topic: "cli.dlq", maxAttempts: 1 })).status, 201);
  await api(baton.url, admin, "POST", "/v1/topics/cli.dlq/events", { events: [{ data: { n: 1 }, type: "a" }, { data: { n: 2 }, type: "b" }] });
  // Events become deliverable asynchronously after the publish: pull until both are here.
  const deliveries: { token: string; event: { data: { n: number } } }[] = [];
  for (let i = 0; i < 20 && deliveries.length < 2; i++) {
    deliveries.push(...(await api(baton.url, admin, "POST", "/v1/groups/cg-dlq/pull", { consumer: "w", max: 2 - deliveries.length, wait: "500ms" })).body.deliveries);
  }
  assert.equal(deliveries.length, 2);
  for (const d of deliveries) await api(baton.url, admin, "POST", "/v1/groups/cg-dlq/nack", { token: d.token, reason: `failed ${d.event.data.n}` });
  await eventually("two dead letters", async () => {
    const r = await api(baton.url, admin, "GET", "/v1/groups/cg-dlq/dead-letters");
    return r.body.deadLetters.length === 2 ? true : undefined;
  });

  const [letters, page] = await Promise.all([
    cliJson(["groups", "dlq", "list", "cg-dlq"]),
    cliJson(["groups", "dlq", "list", "cg-dlq", "--from", "2", "--limit", "1"]),
    cliFails(["groups", "dlq", "show", "cg-dlq", "99"], 1, /^error DEAD_LETTER_NOT_FOUND: group cg-dlq has no dead letter 99\n$/),
  ]);
  assert.deepEqual(letters.map((l) => [l.seq, l.origin.topic, l.attempts, l.failures[0].reason, l.event.data.n]), [[1, "cli.dlq", 1, "failed 1", 1], [2, "cli.dlq", 1, "failed 2", 2]]);
  assert.deepEqual(page.map((l) => l.seq), [2]);
  const [shown] = await cliJson(["groups", "dlq", "show", "cg-dlq", "1"]);
  assert.equal(shown.id, letters[0].id);

  const [redriven] = await cliJson(["groups", "dlq", "redrive", "cg-dlq", "--type", "a"]);
  assert.deepEqual([redriven.redriven, redriven.alreadyRedriven], [1, 0]);
  const back = await cliJson(["groups", "pull", "cg-dlq", "--consumer", "w", "--wait", "5s", "--ack"]);
  assert.deepEqual(back.map((d) => [d.event.data.n, d.origin.topic, d.attempt]), [[1, "cli.dlq", 1]]);
  const desc = (await api(baton.url, admin, "GET", "/v1/groups/cg-dlq")).body;
  assert.equal(desc.counters.acked, 1);

  const [purged] = await cliJson(["groups", "dlq", "purge", "cg-dlq", "--yes"]);
  assert.equal(purged.purged, 2);
  assert.deepEqual(await cliJson(["groups", "dlq", "list", "cg-dlq"]), []);
});

test("slots list and effects get", async () => {
  const reserved = await api(baton.url, admin, "POST", "/v1/slots/cli-gpu/reserve", { limit: 2, lease: "1m" });
  assert.equal(reserved.status, 200, JSON.stringify(reserved.body));
  const begun = await api(baton.url, admin, "POST", "/v1/effects/cli-charge-1/begin", {});
  await api(baton.url, admin, "POST", "/v1/effects/cli-charge-1/complete", { token: begun.body.token, outcome: { charged: 42 } });
  const [held, [effect]] = await Promise.all([cliJson(["slots", "list", "cli-gpu"]), cliJson(["effects", "get", "cli-charge-1"]), cliFails(["effects", "get", "cli-never"], 1, /^error EFFECT_NOT_FOUND: no effect cli-never/)]);
  assert.deepEqual(held.map((h) => [h.slot, h.holder]), [[reserved.body.slot, "tester"]]);
  assert.deepEqual([effect.state, effect.outcome], ["done", { charged: 42 }]);
});
