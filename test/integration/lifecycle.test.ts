/**
 * Start-up and shutdown: generated secret, configuration precedence, graceful SIGTERM.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, api, startBaton, testEngine, token } from "../support/start-baton.ts";
import { mintToken } from "../../src/edge/auth/tokens.ts";

test("with no secret configured, start generates one in the data dir and tokens signed with it work", async () => {
  const baton = await startBaton({ env: { BATON_JWT_SECRET: "" } });
  try {
    const file = join(baton.dataDir, "jwt-secret");
    assert.ok(existsSync(file));
    assert.match(baton.output(), /generated a development secret/);
    const secret = readFileSync(file, "utf8").trim();
    const jwt = await mintToken(secret, { tenant: "acme", sub: "x", publish: [">"] }, 60_000);
    assert.equal((await api(baton.url, jwt, "POST", "/v1/topics/a/events", { data: 1 })).status, 201);
  } finally {
    await baton.destroy();
  }
});

test("with auto-creation off, publishing to an unknown topic is 404 and creates nothing", async () => {
  const baton = await startBaton({ env: { BATON_AUTO_CREATE_TOPICS: "false" } });
  try {
    const jwt = await token({ tenant: "acme", sub: "x", admin: true });
    const r = await api(baton.url, jwt, "POST", "/v1/topics/nope/events", { data: 1 });
    assert.deepEqual([r.status, r.body.error.code], [404, "TOPIC_NOT_FOUND"]);
    assert.deepEqual((await api(baton.url, jwt, "GET", "/v1/topics")).body.topics, []);
    await api(baton.url, jwt, "POST", "/v1/topics", { name: "yes" });
    assert.equal((await api(baton.url, jwt, "POST", "/v1/topics/yes/events", { data: 1 })).status, 201);
  } finally {
    await baton.destroy();
  }
});

test("SIGTERM finishes in-flight publishes, exits 0, and everything acknowledged is there after restart", async () => {
  let baton = await startBaton();
  try {
    const jwt = await token({ tenant: "acme", sub: "x" });
    await api(baton.url, jwt, "POST", "/v1/topics/drain/events", { data: "before" });
    let acks = 0;
    const inflight = Array.from({ length: 200 }, (_, i) =>
      api(baton.url, jwt, "POST", "/v1/topics/drain/events", { data: i }).then(
        (r) => {
          if (r.status === 201) acks++;
          return r;
        },
        () => undefined,
      ),
    );
    while (acks < 20) await new Promise((r) => setTimeout(r, 1));
    const code = await baton.stop();
    assert.equal(code, 0, baton.output());
    const acked = (await Promise.all(inflight)).filter((r) => r?.status === 201);
    baton = await baton.restart(); // same data dir and port (on NATS, the same prefix)
    const read = await api(baton.url, jwt, "GET", "/v1/topics/drain/events?from=1&limit=1000");
    const stored = new Map(read.body.events.map((e: { seq: number; id: string }) => [e.seq, e.id]));
    for (const r of acked) assert.equal(stored.get(r!.body.seq), r!.body.id);
    assert.deepEqual([...stored.keys()], Array.from({ length: stored.size }, (_, i) => i + 1));
  } finally {
    await baton.destroy();
  }
});

test("a bad setting stops start-up with the setting named", async () => {
  await assert.rejects(startBaton({ env: { BATON_MAX_BODY_BYTES: "lots" } }), /error VALIDATION_FAILED: invalid BATON_MAX_BODY_BYTES/);
});

test("a port in use stops start-up with UNAVAILABLE naming it, and releases what it opened", async () => {
  const first = await startBaton();
  const dataDir = mkdtempSync(join(tmpdir(), "baton-port-taken-"));
  try {
    // Not startBaton(): its readiness check would be answered by the first server.
    const second = spawnSync(process.execPath, [join(ROOT, "bin/baton.js"), "start", "--port", String(first.port), "--host", "127.0.0.1", "--data-dir", dataDir], {
      env: { ...process.env, BATON_JWT_SECRET: "port-taken-test-secret-0123456789", BATON_LOG_LEVEL: "warn", ...(testEngine() === "nats" ? { BATON_ENGINE: "embedded" } : {}) },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`^error UNAVAILABLE: port ${first.port} on 127.0.0.1 is already in use`, "m"));
    assert.equal(existsSync(join(dataDir, "baton.pid")), false, "the data dir's lock is released");
  } finally {
    await first.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

const embeddedOnly = testEngine() === "nats" ? { skip: "embedded engine only: a NATS node with BATON_JWT_SECRET set does not use its data dir" } : {};
test("a data dir that cannot be used stops start-up with UNAVAILABLE naming it", embeddedOnly, async () => {
  await assert.rejects(startBaton({ dataDir: join(ROOT, "package.json", "data") }), /error UNAVAILABLE: cannot use data dir .*package\.json\/data/);
});

const dataDirLock = testEngine() === "nats" ? { skip: "embedded engine only: the data-dir lock guards the LMDB files; a NATS node keeps no events in its data dir" } : {};
test("a second server on the same data dir refuses to start instead of sharing it", dataDirLock, async () => {
  const first = await startBaton();
  try {
    await assert.rejects(startBaton({ dataDir: first.dataDir }), /in use by process/);
    assert.equal((await api(first.url, await token({ tenant: "acme", sub: "x" }), "POST", "/v1/topics/a/events", { data: 1 })).status, 201);
  } finally {
    await first.destroy();
  }
});
