/**
 * The `baton` CLI against a real server: token minting with the server's generated secret,
 * publish, tail, topics, and typed errors on stderr.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, TEST_SECRET, api, startBaton, type BatonProcess } from "../support/start-baton.ts";

const run = promisify(execFile);
const BIN = join(ROOT, "bin/baton.js");
let baton: BatonProcess;

before(async () => {
  baton = await startBaton();
});
after(() => baton.destroy());

function cli(args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { env: { ...process.env, BATON_URL: baton.url, BATON_JWT_SECRET: TEST_SECRET, BATON_TENANT: "acme", ...env } });
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
});
