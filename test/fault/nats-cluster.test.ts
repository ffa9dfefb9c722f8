/**
 * Fault test of cluster mode: three Baton processes on one NATS prefix under a steady load of
 * publishes (HTTP, to any live node), a consumer group worked by HTTP pull consumers on every
 * node, and a socket subscriber behind a TCP load balancer. While the load runs, nodes are
 *
 * - SIGKILLed (the one leading the group, then brought back), or
 * - restarted one after the other with SIGTERM (a rolling restart of all three).
 *
 * Checked after each: every publish answered 201 is in the topic and reached the socket
 * subscriber exactly once and in order (no gap across reconnects); no event whose ack was
 * answered is delivered again; every answered publish was acked by the group in the end (an ack
 * cut off by a dying node may count either way); the group holds nothing open.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, token } from "../support/start-baton.ts";
import { client, until } from "../support/centrifuge-client.ts";
import { Balancer, Cluster, requireNats } from "../support/cluster.ts";

type Pulled = { token: string; attempt: number; event: { data: { n: number } } };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

if (await requireNats("cluster mode under SIGKILL and rolling restarts")) {
  describe("cluster mode under SIGKILL and rolling restarts", () => {
    let cluster: Cluster;
    let admin: string;
    const up = new Set<number>([0, 1, 2]);

    before(async () => {
      cluster = await Cluster.start(3, { BATON_GROUP_LEADER_TTL: "2s", BATON_DRAIN_WINDOW: "500ms" });
      admin = await token({ tenant: "acme", sub: "ops", admin: true });
    });
    after(() => cluster.destroy());

    /** A live node's URL, rotating with `i`. */
    const live = (i: number): string => {
      const nodes = [...up];
      return cluster.nodes[nodes[i % nodes.length]!]!.url;
    };

    async function underLoad(name: string, disrupt: () => Promise<void>): Promise<void> {
      const topic = `${name}.jobs`;
      assert.equal((await api(live(0), admin, "POST", "/v1/groups", { name, topic, ackWait: "2s", backoff: { initial: "0ms", max: "50ms" }, maxAttempts: 1000 })).status, 201);

      const balancer = await Balancer.start(() => [...up].map((i) => cluster.nodes[i]!.port));
      const sub = client(balancer.url, await token({ tenant: "acme", sub: "watcher", subscribe: [`${name}.*`] }), { minReconnectDelay: 50, maxReconnectDelay: 300 });
      const offsets: number[] = [];
      const s = sub.newSubscription(topic);
      s.on("publication", (ctx) => offsets.push(Number(ctx.offset)));
      const subscribed = new Promise((r) => s.once("subscribed", r));
      sub.connect();
      s.subscribe();
      try {
        await subscribed;
        await runLoad(name, topic, disrupt, offsets, () => sub.state);
      } finally {
        // Also when an assertion failed: a client still reconnecting through a live balancer
        // would keep this file's process from ever exiting.
        sub.disconnect();
        balancer.close();
      }
    }

    async function runLoad(name: string, topic: string, disrupt: () => Promise<void>, offsets: number[], subState: () => string): Promise<void> {
      let running = true;
      const confirmed = new Set<number>();
      let next = 0;
      const publisher = (async () => {
        for (let i = 0; running; i++) {
          const n = next++;
          try {
            const r = await api(live(i), admin, "POST", `/v1/topics/${topic}/events`, { data: { n } });
            if (r.status === 201) confirmed.add(n);
          } catch {
            // the node died mid-request: stored or not, both are allowed
          }
          await sleep(3);
        }
      })();

      const acked = new Set<number>();
      const uncertain = new Set<number>();
      /** Per event, what happened to it, for the message of a failed wait. */
      const history = new Map<number, string[]>();
      const note = (n: number, what: string): void => void (history.get(n) ?? history.set(n, []).get(n)!).push(what);
      const violations: string[] = [];
      const consumer = async (c: number): Promise<void> => {
        for (let i = c; running; i++) {
          let ds: Pulled[];
          try {
            const r = await api(live(i), admin, "POST", `/v1/groups/${name}/pull`, { consumer: `c${c}`, max: 16, wait: "300ms" });
            if (r.status !== 200) throw new Error(String(r.status));
            ds = r.body.deliveries as Pulled[];
          } catch {
            await sleep(50);
            continue;
          }
          for (const d of ds) {
            note(d.event.data.n, `delivered attempt ${d.attempt} via node ${live(i).split(":").pop()}`);
            if (acked.has(d.event.data.n)) violations.push(`event ${d.event.data.n} delivered again (attempt ${d.attempt}) after its ack was answered`);
          }
          if (ds.length === 0) continue;
          try {
            const r = await api(live(i + 1), admin, "POST", `/v1/groups/${name}/ack`, { tokens: ds.map((d) => d.token) });
            if (r.status !== 200) throw new Error(String(r.status));
            r.body.results.forEach((x: { ok: boolean; error?: { code: string } }, j: number) => {
              if (x.ok) acked.add(ds[j]!.event.data.n);
              else note(ds[j]!.event.data.n, `ack refused: ${x.error?.code}`);
            });
          } catch {
            // Cut off by a dying node: applied or not, both are allowed.
            for (const d of ds) uncertain.add(d.event.data.n);
          }
        }
      };
      const consumers = [0, 1, 2, 3].map(consumer);
      try {
        await until(() => acked.size >= 100, 20_000, "consumption before the disruption");
        await disrupt();
        const atEnd = next;
        await until(() => acked.size >= atEnd + 100 || next >= atEnd + 300, 30_000, "load going on after the disruption");
        running = false;
        await publisher;
        const settled = (): boolean => [...confirmed].every((n) => acked.has(n) || uncertain.has(n));
        running = true; // consumers keep going until the group has everything
        const left = (): number[] => [...confirmed].filter((n) => !acked.has(n) && !uncertain.has(n));
        try {
          await until(settled, 60_000, "every answered publish acked");
        } catch (err) {
          const group = await api(live(0), admin, "GET", `/v1/groups/${name}`).catch(() => undefined);
          const detail = left().slice(0, 5).map((n) => `${n}: ${JSON.stringify(history.get(n) ?? ["never delivered"])}`);
          throw new Error(`${(err as Error).message}: ${left().length} left; ${detail.join("; ")}; group ${JSON.stringify(group?.body)}`, { cause: err });
        }
      } finally {
        running = false;
        await Promise.all(consumers);
      }
      assert.deepEqual(violations.slice(0, 10), []);

      const info = await api(live(0), admin, "GET", `/v1/topics/${topic}`);
      const lastSeq = info.body.lastSeq as number;
      const storedNs = new Set<number>();
      for (let from = 1; from <= lastSeq; ) {
        const page = await api(live(1), admin, "GET", `/v1/topics/${topic}/events?from=${from}&limit=1000`);
        for (const e of page.body.events as { seq: number; data: { n: number } }[]) storedNs.add(e.data.n);
        from = page.body.next as number;
      }
      assert.deepEqual([...confirmed].filter((n) => !storedNs.has(n)), [], "every answered publish is stored");
      await until(() => offsets.length >= lastSeq, 20_000, `the socket subscriber catching up (${offsets.length} of ${lastSeq}, state ${subState()})`);
      assert.deepEqual(offsets, Array.from({ length: lastSeq }, (_, i) => i + 1), "socket: every offset once, in order");
      const group = await api(live(2), admin, "GET", `/v1/groups/${name}`);
      assert.deepEqual([group.body.lag, group.body.inFlight], [0, 0], `the group holds nothing open: ${JSON.stringify(group.body)}`);
    }

    test("SIGKILL the node leading the group under load: the group moves, nothing answered is lost or repeated", { timeout: 180_000 }, async () => {
      await underLoad("kill", async () => {
        // The node that created the group leads it.
        const leader = (await api(live(1), admin, "GET", "/v1/groups/kill")).body.leader;
        assert.equal(leader, (await api(cluster.nodes[0]!.url, undefined, "GET", "/readyz")).body.node, "node 0 leads the group");
        up.delete(0);
        await cluster.kill9(0);
        await sleep(3000);
        await cluster.revive(0);
        up.add(0);
        const moved = (await api(live(1), admin, "GET", "/v1/groups/kill")).body.leader;
        assert.ok(moved !== undefined && moved !== leader, "another node leads the group now");
      });
    });

    test("rolling restart of all three nodes under load: nothing answered is lost or repeated", { timeout: 180_000 }, async () => {
      await underLoad("roll", async () => {
        for (const i of [0, 1, 2]) {
          up.delete(i);
          await cluster.restart(i);
          up.add(i);
          await sleep(500);
        }
      });
    });
  });
}
