/**
 * The per-socket command rate limit against a real server with a tiny limit: a worker's acks
 * are paid for by the deliveries it was handed, so a busy worker is not throttled, while a
 * client settling what it was never handed still runs into the limit (close 3013).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { RawSocket, until } from "../support/centrifuge-client.ts";

// One command a second, a burst of max(2, 1 + 16) = 17: without the delivery credit a socket
// could send 17 / (1/8) = 136 settlements before being closed.
const EVENTS = 400;
let baton: BatonProcess;
let admin: string;
before(async () => {
  baton = await startBaton({ env: { BATON_WS_MAX_COMMANDS_PER_SECOND: "1", BATON_WS_MAX_SUBSCRIPTIONS: "1" } });
  admin = await token({ tenant: "acme", sub: "ops", admin: true });
});
after(() => baton.destroy());

/** A socket that answers each delivery with its own ack command (no batching). */
class AckingWorker {
  readonly socket: RawSocket;
  readonly acked = new Set<number>();
  private seen = 0;
  private nextId = 100;
  private readonly group: string;
  constructor(group: string) {
    this.group = group;
    this.socket = new RawSocket(baton.url);
  }

  async start(jwt: string): Promise<void> {
    await this.socket.opened;
    this.socket.send(JSON.stringify({ id: 1, connect: { token: jwt } }));
    await this.socket.reply(1);
    this.socket.send(JSON.stringify({ id: 2, rpc: { method: "baton.group.consume", data: { group: this.group, maxInFlight: 4 } } }));
    await this.socket.reply(2);
  }

  /** Acks every delivery received since the last call, one command per delivery. */
  pump(): void {
    for (; this.seen < this.socket.frames.length; this.seen++) {
      for (const line of this.socket.frames[this.seen]!.split("\n")) {
        const m = line.trim() === "" ? undefined : JSON.parse(line);
        const data = m?.push?.message?.data;
        if (data?.baton !== "deliveries") continue;
        for (const d of data.deliveries as { token: string; seq: number }[]) {
          this.acked.add(d.seq);
          this.socket.send(JSON.stringify({ id: this.nextId++, rpc: { method: "baton.group.ack", data: { group: this.group, token: d.token } } }));
        }
      }
    }
  }
}

test("a worker acking every delivery in its own command is not throttled by the command rate", async () => {
  assert.equal((await api(baton.url, admin, "POST", "/v1/groups", { name: "busy", topic: "jobs.busy" })).status, 201);
  const r = await api(baton.url, admin, "POST", "/v1/topics/jobs.busy/events", { events: Array.from({ length: EVENTS }, (_, i) => ({ data: i })) });
  assert.equal(r.status, 201);
  const w = new AckingWorker("busy");
  await w.start(await token({ tenant: "acme", sub: "worker", subscribe: ["jobs.>"] }));
  await until(() => {
    w.pump();
    return w.acked.size === EVENTS || w.socket.closeCode !== undefined;
  }, 30_000, "all deliveries");
  assert.equal(w.socket.closeCode, undefined, `closed with ${w.socket.closeCode} ${w.socket.closeReason}`);
  let pending = -1;
  for (let i = 0; i < 100 && pending !== 0; i++) {
    pending = (await api(baton.url, admin, "GET", "/v1/groups/busy")).body.pending;
    if (pending !== 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(pending, 0, "every ack applied");
  w.socket.close();
});

test("settlements of deliveries never handed to the socket still count, and a flood is closed with 3013", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  s.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "intruder", subscribe: ["jobs.>"] }) } }));
  await s.reply(1);
  const acks = Array.from({ length: 300 }, (_, i) => JSON.stringify({ id: 10 + i, rpc: { method: "baton.group.ack", data: { group: "busy", token: `1:${i + 1}:ffff:jobs.busy` } } }));
  s.send(acks.join("\n"));
  await s.closed;
  assert.deepEqual([s.closeCode, s.closeReason], [3013, "too many requests"]);
});
