/**
 * Group leadership spreads over the nodes of a NATS cluster: six groups created on one node end
 * up led two per node, while consumers pull and ack through every node, and the hand-overs lose
 * nothing and complete nothing twice (a leader hands a group over only after saving its
 * in-flight deliveries, so their acks still count at the next leader).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, token } from "../support/start-baton.ts";
import { Cluster, requireNats } from "../support/cluster.ts";

type Pulled = { token: string; seq: number; attempt: number; event: { data: { g: number; n: number } } };

const GROUPS = 6;
const PER_GROUP = 120;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

if (await requireNats("consumer group leadership balance on a three-node NATS cluster")) {
  describe("consumer group leadership balance on a three-node NATS cluster", () => {
    let cluster: Cluster;
    let admin: string;
    const url = (i: number): string => cluster.nodes[i % 3]!.url;

    before(async () => {
      cluster = await Cluster.start(3, { BATON_GROUP_LEADER_TTL: "2s", BATON_GROUP_REBALANCE: "1s" });
      admin = await token({ tenant: "acme", sub: "ops", admin: true });
    });
    after(() => cluster.destroy());

    async function leaders(): Promise<Map<string, number>> {
      const count = new Map<string, number>();
      for (let g = 0; g < GROUPS; g++) {
        const d = await api(url(g), admin, "GET", `/v1/groups/b${g}`);
        assert.equal(d.status, 200, JSON.stringify(d.body));
        count.set(d.body.leader, (count.get(d.body.leader) ?? 0) + 1);
      }
      return count;
    }

    test("six groups created on one node end up two per node, with every event completed once meanwhile", async () => {
      for (let g = 0; g < GROUPS; g++) {
        const r = await api(url(0), admin, "POST", "/v1/groups", { name: `b${g}`, topic: `bal.${g}` });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      const ids = await Promise.all([0, 1, 2].map(async (i) => (await api(url(i), undefined, "GET", "/readyz")).body.node as string));

      // Publishing in waves while the groups move, so hand-overs happen with deliveries out.
      const publishing = (async () => {
        for (let wave = 0; wave < 6; wave++) {
          for (let g = 0; g < GROUPS; g++) {
            const events = Array.from({ length: PER_GROUP / 6 }, (_, i) => ({ data: { g, n: wave * (PER_GROUP / 6) + i } }));
            const r = await api(url(wave + g), admin, "POST", `/v1/topics/bal.${g}/events`, { events });
            assert.equal(r.status, 201, JSON.stringify(r.body));
          }
          await sleep(700);
        }
      })();

      const completed = new Map<string, number>();
      let redelivered = 0;
      const consumer = async (node: number): Promise<void> => {
        for (let round = 0; completed.size < GROUPS * PER_GROUP; round++) {
          const g = (round + node) % GROUPS;
          const r = await api(url(node), admin, "POST", `/v1/groups/b${g}/pull`, { consumer: `c${node}`, max: 10, wait: "100ms" });
          // During a hand-over a request may wait for the next leader; it must not fail.
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const ds = r.body.deliveries as Pulled[];
          if (ds.length === 0) continue;
          const ack = await api(url(node + round), admin, "POST", `/v1/groups/b${g}/ack`, { tokens: ds.map((d) => d.token) });
          assert.equal(ack.status, 200, JSON.stringify(ack.body));
          ds.forEach((d, i) => {
            if (d.attempt > 1) redelivered += 1;
            if (!ack.body.results[i].ok) return; // lease lost: it comes back and is completed then
            const k = `${d.event.data.g}:${d.event.data.n}`;
            completed.set(k, (completed.get(k) ?? 0) + 1);
          });
        }
      };
      await Promise.all([publishing, ...[0, 1, 2].map(consumer)]);

      const twice = [...completed].filter(([, n]) => n > 1).map(([k]) => k);
      assert.deepEqual(twice, [], "no event completed twice");
      assert.equal(completed.size, GROUPS * PER_GROUP, "every event completed");

      let spread = await leaders();
      for (let i = 0; i < 60 && [...spread.values()].some((n) => n !== 2); i++) {
        await sleep(500);
        spread = await leaders();
      }
      assert.deepEqual(ids.map((id) => spread.get(id) ?? 0), [2, 2, 2], `leaders per node: ${JSON.stringify([...spread])}`);
      for (let g = 0; g < GROUPS; g++) {
        const d = await api(url(g + 1), admin, "GET", `/v1/groups/b${g}`);
        // (counters start again on each leader; the open counts are the group's own)
        assert.deepEqual([d.body.pending, d.body.inFlight, d.body.lag], [0, 0, 0], `group b${g}`);
      }
      // Reported, not asserted: deliveries handed out again after a hand-over.
      console.log(`# hand-overs redelivered ${redelivered} of ${GROUPS * PER_GROUP} events`);
    });
  });
}
