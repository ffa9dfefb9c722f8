/**
 * Fault test: consumer-group progress under SIGKILL. Consumers pull and ack over HTTP while the
 * Baton process is killed with SIGKILL mid-consumption (at about 20%, 45% and 70% of the events
 * acked, nudged randomly) and restarted on the same data dir.
 *
 * - no event whose ack was answered 200 is ever delivered again;
 * - in the end every published event has been acked (nothing unacked is lost); an event whose
 *   ack was cut off by a kill (sent, never answered) may count as acked or come back, both allowed;
 * - attempt numbers never go backwards for an event across the restarts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

const EVENTS = 3000;
const CONSUMERS = 4;
/** Kill points, as shares of the events acked so far (plus a random nudge). */
const KILL_AT = [0.2, 0.45, 0.7] as const;

let baton: BatonProcess;
let admin: string;

before(async () => {
  baton = await startBaton();
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
});
after(() => baton.destroy());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("acked events never come back and unacked ones are never lost across SIGKILLs", { timeout: 180_000 }, async () => {
  assert.equal((await api(baton.url, admin, "POST", "/v1/groups", { name: "k9", topic: "k9.jobs", ackWait: "1500ms", backoff: { initial: "0ms", max: "50ms" }, maxAttempts: 1000 })).status, 201);
  for (let i = 0; i < EVENTS; i += 500) {
    const r = await api(baton.url, admin, "POST", "/v1/topics/k9.jobs/events", { events: Array.from({ length: 500 }, (_, j) => ({ data: { n: i + j } })) });
    assert.equal(r.status, 201);
  }
  const acked = new Set<number>();
  /** Events whose ack was sent but not answered (the server died): acked or not, both are fine. */
  const uncertain = new Set<number>();
  const violations: string[] = [];
  const lastAttempt = new Map<number, number>();
  let url = baton.url;
  let running = true;

  const consumer = async (name: string): Promise<void> => {
    while (running) {
      let deliveries: { token: string; attempt: number; event: { data: { n: number } } }[];
      try {
        const r = await api(url, admin, "POST", "/v1/groups/k9/pull", { consumer: name, max: 16, wait: "300ms" });
        if (r.status !== 200) throw new Error(String(r.status));
        deliveries = r.body.deliveries;
      } catch {
        await sleep(50);
        continue;
      }
      for (const d of deliveries) {
        const n = d.event.data.n;
        if (acked.has(n)) violations.push(`event ${n} delivered again (attempt ${d.attempt}) after its ack was confirmed`);
        if (d.attempt < (lastAttempt.get(n) ?? 0)) violations.push(`event ${n}: attempt went back from ${lastAttempt.get(n)} to ${d.attempt}`);
        lastAttempt.set(n, d.attempt);
      }
      try {
        const r = await api(url, admin, "POST", "/v1/groups/k9/ack", { tokens: deliveries.map((d) => d.token) });
        if (r.status === 200) {
          r.body.results.forEach((x: { ok: boolean }, i: number) => {
            if (x.ok) acked.add(deliveries[i]!.event.data.n);
          });
        }
      } catch {
        // The server died mid-ack: those events may come back, which is allowed.
        for (const d of deliveries) uncertain.add(d.event.data.n);
      }
    }
  };

  const consumers = Array.from({ length: CONSUMERS }, (_, i) => consumer(`c${i}`));
  const ackedAtKill: number[] = [];
  for (const share of KILL_AT) {
    const target = Math.floor(EVENTS * (share + Math.random() * 0.1));
    while (acked.size < target) await sleep(1);
    ackedAtKill.push(acked.size);
    await baton.kill9();
    baton = await baton.restart(); // same port, data dir and (on NATS) prefix
    url = baton.url;
  }
  const deadline = Date.now() + 120_000;
  const settled = (): boolean => Array.from({ length: EVENTS }, (_, n) => n).every((n) => acked.has(n) || uncertain.has(n));
  const group = async (): Promise<{ pending: number; inFlight: number; lag: number }> => (await api(baton.url, admin, "GET", "/v1/groups/k9")).body;
  while (Date.now() < deadline && violations.length === 0) {
    if (settled() && (await group()).pending === 0) break;
    await sleep(100);
  }
  running = false;
  await Promise.all(consumers);

  assert.ok(ackedAtKill.every((n) => n < EVENTS), `kills must land mid-consumption (acked at each kill: ${ackedAtKill.join(", ")})`);
  assert.deepEqual(violations.slice(0, 10), []);
  const missing = Array.from({ length: EVENTS }, (_, n) => n).filter((n) => !acked.has(n) && !uncertain.has(n));
  const d = await group();
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} events were never acked; group: ${JSON.stringify(d)}`);
  assert.deepEqual([d.pending, d.inFlight, d.lag], [0, 0, 0], "the group holds nothing open");
});
