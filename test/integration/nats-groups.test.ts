/**
 * Consumer groups on the NATS engine, black-box: three Baton processes on one NATS prefix.
 * A group runs on one leader node; members on every node receive its events; per-key order,
 * maxInFlight, acks, dead letters, reset and delete hold cluster-wide whichever node a request
 * reaches.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BatonWorker } from "../../packages/sdk/src/index.ts";
import { api, token } from "../support/start-baton.ts";
import { until } from "../support/centrifuge-client.ts";
import { Cluster, requireNats } from "../support/cluster.ts";

type Pulled = { token: string; seq: number; attempt: number; event: { data: { n: number }; key?: string } };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

if (await requireNats("consumer groups on a three-node NATS cluster")) {
  describe("consumer groups on a three-node NATS cluster", () => {
    let cluster: Cluster;
    let admin: string;
    const url = (i: number): string => cluster.nodes[i % 3]!.url;
    const workers: BatonWorker[] = [];

    before(async () => {
      cluster = await Cluster.start(3, { BATON_GROUP_LEADER_TTL: "2s" });
      admin = await token({ tenant: "acme", sub: "ops", admin: true });
    });
    after(async () => {
      for (const w of workers) await w.close().catch(() => undefined);
      await cluster.destroy();
    });

    async function publish(node: number, topic: string, events: { data: unknown; key?: string }[]): Promise<void> {
      for (let i = 0; i < events.length; i += 500) {
        const r = await api(url(node), admin, "POST", `/v1/topics/${topic}/events`, { events: events.slice(i, i + 500) });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
    }

    test("created on one node, pulled on all three: each event reaches one consumer, acks work through any node", async () => {
      const created = await api(url(0), admin, "POST", "/v1/groups", { name: "spread", topic: "spread.jobs" });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const N = 300;
      await publish(1, "spread.jobs", Array.from({ length: N }, (_, n) => ({ data: { n } })));
      const got: number[] = [];
      const consumer = async (node: number): Promise<void> => {
        while (got.length < N) {
          const r = await api(url(node), admin, "POST", "/v1/groups/spread/pull", { consumer: `c${node}`, max: 20, wait: "200ms" });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const ds = r.body.deliveries as Pulled[];
          if (ds.length === 0) continue;
          for (const d of ds) got.push(d.event.data.n);
          const ack = await api(url(node + 1), admin, "POST", "/v1/groups/spread/ack", { tokens: ds.map((d) => d.token) });
          assert.equal(ack.status, 200);
          assert.ok(ack.body.results.every((x: { ok: boolean }) => x.ok), JSON.stringify(ack.body));
        }
      };
      await Promise.all([0, 1, 2].map(consumer));
      assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: N }, (_, n) => n), "every event once");
      for (const node of [0, 1, 2]) {
        const d = await api(url(node), admin, "GET", "/v1/groups/spread");
        assert.deepEqual([d.status, d.body.counters.acked, d.body.pending, d.body.lag], [200, N, 0, 0], `describe on node ${node}`);
      }
      const list = await api(url(2), admin, "GET", "/v1/groups");
      assert.ok(list.body.groups.some((g: { name: string }) => g.name === "spread"));
    });

    test("socket workers on every node: one event of a key in flight cluster-wide, keys in order, maxInFlight kept", async () => {
      assert.equal((await api(url(1), admin, "POST", "/v1/groups", { name: "keys", topic: "keys.jobs", orderedByKey: true })).status, 201);
      const N = 240;
      const KEYS = 8;
      const inFlightByKey = new Map<string, number>();
      const seen = new Map<string, number[]>();
      const violations: string[] = [];
      let handled = 0;
      const perNode = [0, 0, 0];
      for (const node of [0, 1, 2]) {
        const w = new BatonWorker(url(node), { token: await token({ tenant: "acme", sub: `w${node}`, publish: [], subscribe: ["keys.>"] }) });
        workers.push(w);
        let running = 0;
        w.consume<{ n: number }>(
          "keys",
          async (d) => {
            running += 1;
            if (running > 4) violations.push(`worker ${node} runs ${running} handlers (maxInFlight 4)`);
            const key = d.event.key!;
            const now = (inFlightByKey.get(key) ?? 0) + 1;
            inFlightByKey.set(key, now);
            if (now > 1) violations.push(`key ${key}: ${now} events in flight at once`);
            seen.set(key, [...(seen.get(key) ?? []), d.event.data.n]);
            await sleep(1 + (d.event.data.n % 4));
            inFlightByKey.set(key, inFlightByKey.get(key)! - 1);
            running -= 1;
            handled += 1;
            perNode[node]! += 1;
          },
          { maxInFlight: 4 },
        );
      }
      await sleep(500); // members reach the leader by heartbeat or at once
      await publish(2, "keys.jobs", Array.from({ length: N }, (_, n) => ({ data: { n }, key: `k${n % KEYS}` })));
      await until(() => handled >= N, 30_000, `all ${N} handled (have ${handled})`);
      assert.deepEqual(violations.slice(0, 10), []);
      for (const [key, ns] of seen) assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `key ${key} in publish order`);
      assert.equal([...seen.values()].reduce((s, ns) => s + ns.length, 0), N, "no event handled twice");
      assert.ok(perNode.every((n) => n > 0), `workers on every node got events (per node: ${perNode.join(", ")})`);
    });

    test("dead letters, reset and delete through nodes that do not lead the group", async () => {
      assert.equal((await api(url(0), admin, "POST", "/v1/groups", { name: "dl", topic: "dl.jobs", maxAttempts: 1 })).status, 201);
      await publish(0, "dl.jobs", [{ data: { n: 1 } }, { data: { n: 2 } }]);
      const ds: Pulled[] = [];
      while (ds.length < 2) ds.push(...((await api(url(1), admin, "POST", "/v1/groups/dl/pull", { consumer: "x", max: 2, wait: "1s" })).body.deliveries as Pulled[]));
      assert.equal((await api(url(2), admin, "POST", "/v1/groups/dl/nack", { token: ds[0]!.token, reason: "model refused" })).status, 200);
      assert.equal((await api(url(2), admin, "POST", "/v1/groups/dl/term", { token: ds[1]!.token, reason: "bad input" })).status, 200);
      const letters = await api(url(1), admin, "GET", "/v1/groups/dl/dead-letters");
      assert.deepEqual(letters.body.deadLetters.map((l: { failures: { reason: string }[] }) => l.failures[0]!.reason).sort(), ["bad input", "model refused"]);
      // Reset from a follower: the leader rewinds, the events come back.
      const reset = await api(url(2), admin, "POST", "/v1/groups/dl/reset", { start: "beginning" });
      assert.equal(reset.status, 200, JSON.stringify(reset.body));
      const again = await api(url(1), admin, "POST", "/v1/groups/dl/pull", { consumer: "y", max: 5, wait: "2s" });
      assert.ok(again.body.deliveries.length >= 1, "events delivered again after the reset");
      // A stale token of the old run is refused with a typed error, whichever node gets it.
      const stale = await api(url(0), admin, "POST", "/v1/groups/dl/ack", { token: ds[0]!.token });
      assert.equal(stale.body.error.code, "DELIVERY_NOT_HELD");
      assert.equal((await api(url(1), admin, "DELETE", "/v1/groups/dl")).status, 204);
      for (const node of [0, 1, 2]) assert.equal((await api(url(node), admin, "GET", "/v1/groups/dl")).body.error.code, "GROUP_NOT_FOUND", `node ${node}`);
      // The name is free again on every node.
      assert.equal((await api(url(2), admin, "POST", "/v1/groups", { name: "dl", topic: "dl.jobs", start: "now" })).status, 201);
      assert.equal((await api(url(0), admin, "POST", "/v1/groups", { name: "dl", topic: "dl.jobs" })).body.error.code, "GROUP_EXISTS");
    });
  });
}
