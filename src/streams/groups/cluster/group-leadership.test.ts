import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../../engine/embedded/embedded-engine.ts";
import { GroupLeadership, leaseKey } from "./group-leadership.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Two nodes contending for one group's lease on one store (the store's CAS is what a cluster shares). */
async function withStore(fn: (engine: EmbeddedEngine, nodes: GroupLeadership[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "baton-lead-"));
  const engine = await EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 60_000, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 } });
  const nodes: GroupLeadership[] = [];
  try {
    await fn(engine, nodes);
  } finally {
    // A failed assertion must not leave a node's timers running (the file would never end).
    await Promise.race([Promise.allSettled(nodes.map((n) => n.close())), sleep(1000)]);
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function node(engine: EmbeddedEngine, nodes: GroupLeadership[], nodeId: string, ttlMs: number, events: string[], hung = { writes: false }, deferFree?: () => boolean): GroupLeadership {
  const state = engine.state;
  const n = new GroupLeadership({
    // A hung node: its writes never complete (a stalled disk or a partition from the store).
    state: {
      get: (k) => state.get(k),
      put: (k, v, o) => (hung.writes ? new Promise<number>(() => undefined) : state.put(k, v, o)),
      delete: (k, o) => (hung.writes ? new Promise<boolean>(() => undefined) : state.delete(k, o)),
      scan: (p, o) => state.scan(p, o),
    },
    nodeId,
    ttlMs,
    onGain: async (id) => void events.push(`${nodeId} gains ${id}`),
    onLose: (id) => void events.push(`${nodeId} loses ${id}`),
    onError: () => undefined,
    ...(deferFree === undefined ? {} : { deferFree }),
  });
  nodes.push(n);
  return n;
}

/** Safety: nobody gains the group while another node still holds it (it must have lost it first). */
function assertOneAtATime(events: readonly string[]): void {
  let holder: string | undefined;
  for (const e of events) {
    const [node, what] = e.split(" ") as [string, string];
    if (what === "gains") {
      assert.equal(holder, undefined, `${node} gained while ${holder} still led: ${events.join(", ")}`);
      holder = node;
    } else if (what === "loses") {
      assert.equal(holder, node, `${node} lost what it did not hold: ${events.join(", ")}`);
      holder = undefined;
    }
  }
}

test("one leader at a time: a follower takes over only after the leader stopped renewing and stepped down", async () => {
  await withStore(async (engine, nodes) => {
    const events: string[] = [];
    const hung = { writes: false };
    const a = node(engine, nodes, "a", 400, events, hung);
    const b = node(engine, nodes, "b", 400, events);
    await a.claim("acme/g", async () => undefined);
    b.track("acme/g");
    a.start();
    b.start();
    await sleep(1200); // three ttls: a renews (on a loaded machine it may lose a renewal; then b may lead)
    assertOneAtATime(events);
    // a can no longer renew; its lease record stays as it was.
    hung.writes = true;
    for (let i = 0; i < 100 && !b.isLeader("acme/g"); i++) await sleep(50);
    assert.equal(b.isLeader("acme/g"), true, `b leads in the end: ${events.join(", ")}`);
    assert.equal(a.isLeader("acme/g"), false);
    assertOneAtATime(events);
    assert.equal(events[0], "a gains acme/g");
    await b.close();
    assert.equal(await engine.state.get(leaseKey("acme/g")), undefined, "a clean close gives the lease back");
  });
});

test("a leader that cannot renew steps down before anyone else can take the lease", async () => {
  await withStore(async (engine, nodes) => {
    const events: string[] = [];
    const a = node(engine, nodes, "a", 400, events);
    await a.claim("acme/g", async () => undefined);
    a.start();
    // Someone overwrites the lease (as after a partition): a's next renewal conflicts and it steps down.
    const current = await engine.state.get(leaseKey("acme/g"));
    await engine.state.put(leaseKey("acme/g"), { node: "z", ttlMs: 400 }, { expectRevision: current!.revision });
    for (let i = 0; i < 200 && a.isLeader("acme/g"); i++) await sleep(25);
    assert.deepEqual(events, ["a gains acme/g", "a loses acme/g"]);
    // The record now names z; a waits a whole ttl of it unchanged before taking it back.
    for (let i = 0; i < 200 && !a.isLeader("acme/g"); i++) await sleep(25);
    assert.deepEqual(events, ["a gains acme/g", "a loses acme/g", "a gains acme/g"]);
    await a.close();
  });
});

test("claim refuses a lease someone holds, and gives it back when preparing fails", async () => {
  await withStore(async (engine, nodes) => {
    const events: string[] = [];
    const a = node(engine, nodes, "a", 5000, events);
    const b = node(engine, nodes, "b", 5000, events);
    await a.claim("acme/g", async () => undefined);
    await assert.rejects(b.claim("acme/g", async () => undefined), (e: { code?: string }) => e.code === "CONFLICT");
    await assert.rejects(b.claim("acme/h", async () => Promise.reject(new Error("no"))), /no/);
    assert.equal(await engine.state.get(leaseKey("acme/h")), undefined, "the failed claim left no lease behind");
    assert.deepEqual(events, ["a gains acme/g"]);
    await Promise.all([a.close(), b.close()]);
  });
});

test("giveUp hands the lease to a node that does not defer; a deferring node takes a free lease only after a ttl", async () => {
  await withStore(async (engine, nodes) => {
    const events: string[] = [];
    const defer = { a: true };
    const a = node(engine, nodes, "a", 600, events, undefined, () => defer.a);
    const b = node(engine, nodes, "b", 600, events);
    await a.claim("acme/g", async () => undefined);
    b.track("acme/g");
    a.start();
    b.start();
    await a.giveUp("acme/g");
    assert.equal(a.isLeader("acme/g"), false);
    for (let i = 0; i < 100 && !b.isLeader("acme/g"); i++) await sleep(20);
    assert.deepEqual(events, ["a gains acme/g", "a loses acme/g", "b gains acme/g"], "b took it over, a did not take it back");
    assert.deepEqual([...a.tracked()], ["acme/g"], "a still contends for it");

    // b goes away; the free lease is left to others by a for a ttl, then a takes it anyway.
    await b.close();
    // Half a ttl after the lease became free, a (which defers) has not taken it yet.
    await sleep(300);
    assert.equal(a.isLeader("acme/g"), false, "a left the free lease to the others for a ttl");
    for (let i = 0; i < 200 && !a.isLeader("acme/g"); i++) await sleep(20);
    assert.equal(a.isLeader("acme/g"), true, "a group is never left without a leader");
    assertOneAtATime(events);
  });
});
