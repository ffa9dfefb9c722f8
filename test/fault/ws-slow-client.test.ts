/**
 * Fault test: slow WebSocket readers against a real Baton process with a small outbound buffer
 * (BATON_WS_BUFFER_BYTES=64KiB).
 *
 * A "slow reader" is a `ws` client that sends connect + subscribe, reads the replies and then
 * stops reading (`ws.pause()`), so TCP backpressure builds up to the server's socket buffer.
 *
 * Durable traffic (one server, BATON_WS_SLOW_TIMEOUT=30s so the stall can never be cut short by
 * the slow timeout on a loaded machine):
 *  (a) a fast client (the real `centrifuge` client) on the same topic receives every event in
 *      order while the slow readers are stalled;
 *  (b) the server's RSS does not grow with what the stalled readers have not read;
 *  (c) once the slow readers read again, each receives every event in order, no gap, no
 *      duplicate: they were paused and resumed from the store, not dropped.
 * Ephemeral traffic (another server, BATON_WS_SLOW_TIMEOUT=3s):
 *  (d) ephemeral publications to a stalled reader are dropped and counted in
 *      `baton_ws_dropped_ephemeral_total`, a fast reader on the same topic still gets all of them,
 *      and the stalled reader, still stalled past the slow timeout, is closed 3008.
 *
 * Sizes: on Linux loopback the kernel accepts about 4 MB per connection (send buffer autotuned
 * up to tcp_wmem max, plus the receive window) before the server's `ws.bufferedAmount` grows at
 * all, so 3,000 x 1 KB events would all sit in kernel buffers and never exercise the pause. The
 * durable case therefore publishes 3,000 x 8 KB (24 MB) to 8 stalled readers: an unbounded
 * server would have to hold about 8 x 20 MB = 160 MB for them; a bounded one holds 64 KiB plus
 * one frame per socket. Publishes go in small HTTP batches (~100 KB bodies) so the server's own
 * publishing garbage stays in V8's young generation and the RSS signal is not drowned by it.
 * No assertion is on speed; the only waits are generous upper bounds.
 */
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import WsClient from "ws";
import type { Centrifuge } from "centrifuge";
import { WsPeer } from "../support/ws-peer.ts";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { client, once, until } from "../support/centrifuge-client.ts";

const BUFFER = "64KiB";
const EVENTS = 3000;
const EVENT_BYTES = 8000;
const BATCH = 12;
const SLOW_READERS = 8;
/**
 * Allowed VmRSS growth of the server while the readers are stalled. What the design lets the
 * server queue is 9 sockets x (64 KiB + one 8 KB frame) < 1 MB; the rest of the allowance is V8
 * heap headroom and not-yet-collected garbage from decoding 24 MB of publishes and fanning them
 * out (measured +34-44 MB here, about the same as with no slow reader at all). A server that
 * held what the stalled readers have not read would need at least 8 x ~19 MB = 150 MB more
 * (with the backpressure check disabled, growth measured +247 MB), so 80 MB separates the two
 * with a wide margin either side.
 */
const RSS_GROWTH_LIMIT_MB = 80;
const PROC = existsSync("/proc/self/status") && existsSync("/proc/net/tcp");

interface Pub {
  readonly offset: number | undefined;
  readonly n: number;
}

/** A `ws` client speaking raw frames; records publications as {offset, n} (not the payload). */
class WsReader extends WsPeer {
  readonly pubs: Pub[] = [];
  readonly replies = new Map<number, any>();

  constructor(httpUrl: string) {
    super(httpUrl);
    this.ws.on("message", (data: Buffer) => {
      for (const line of data.toString().split("\n")) {
        if (line.trim() === "") continue;
        const m = JSON.parse(line);
        if (typeof m.id === "number" && m.id > 0) this.replies.set(m.id, m);
        else if (m.push?.pub !== undefined) this.pubs.push({ offset: m.push.pub.offset, n: m.push.pub.data?.n });
      }
    });
  }

  get port(): number {
    return (this.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
  }

  send(lines: unknown[]): void {
    this.ws.send(lines.map((l) => JSON.stringify(l)).join("\n"));
  }

  async reply(id: number, timeoutMs = 10_000): Promise<any> {
    await until(() => this.replies.has(id) || this.closeCode !== undefined, timeoutMs, `reply ${id}`);
    assert.ok(this.replies.has(id), `socket closed ${this.closeCode} ${this.closeReason} before reply ${id}`);
    return this.replies.get(id);
  }

  /** Connects and subscribes in one frame; resolves once the subscribe reply is read. */
  async subscribe(jwt: string, channel: string): Promise<void> {
    await this.opened;
    this.send([{ id: 1, connect: { token: jwt } }, { id: 2, subscribe: { channel } }]);
    const r = await this.reply(2);
    assert.ok(r.subscribe, JSON.stringify(r));
  }

  stop(): void {
    if (this.ws.readyState !== WsClient.CLOSED) this.ws.terminate();
  }
}

function statusMb(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

/** Bytes the kernel holds for each client port: server's send queue plus client's receive queue. */
function kernelQueued(serverPort: number, clientPorts: readonly number[]): Map<number, number> {
  const out = new Map<number, number>(clientPorts.map((p) => [p, 0]));
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const local = parseInt(f[1]!.split(":")[1]!, 16);
    const remote = parseInt(f[2]!.split(":")[1]!, 16);
    const [tx, rx] = f[4]!.split(":").map((x) => parseInt(x, 16)) as [number, number];
    if (local === serverPort && out.has(remote)) out.set(remote, out.get(remote)! + tx);
    if (remote === serverPort && out.has(local)) out.set(local, out.get(local)! + rx);
  }
  return out;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `metric ${name} not found`);
  return Number(m[1]);
}

function assertInOrder(pubs: readonly Pub[], what: string): void {
  for (let i = 0; i < pubs.length; i++) {
    const p = pubs[i]!;
    if (p.offset !== i + 1 || p.n !== i + 1) assert.fail(`${what}: position ${i} has offset ${p.offset} n ${p.n}, expected ${i + 1} (gap, duplicate or reorder)`);
  }
  assert.equal(pubs.length, EVENTS, `${what}: ${pubs.length} of ${EVENTS} events`);
}

describe("durable: stalled readers are paused and resumed from the store", { skip: PROC ? false : "needs Linux /proc" }, () => {
  const TOPIC = "slow.durable";
  let baton: BatonProcess;
  let jwt: string;
  let fast: Centrifuge | undefined;
  const fastPubs: Pub[] = [];
  const slow: WsReader[] = [];
  let before0 = { rss: 0, anon: 0 };
  let peak = { rss: 0, anon: 0 };
  let kernel = new Map<number, number>();
  let published = 0;

  before(async () => {
    baton = await startBaton({ env: { BATON_WS_BUFFER_BYTES: BUFFER, BATON_WS_SLOW_TIMEOUT: "30s" } });
    jwt = await token({ tenant: "acme", sub: "slow" });
    fast = client(baton.url, await token({ tenant: "acme", sub: "fast", subscribe: ["slow.*"], publish: [] }));
    const sub = fast.newSubscription(TOPIC);
    sub.on("publication", (ctx) => fastPubs.push({ offset: ctx.offset, n: ctx.data.n }));
    fast.connect();
    sub.subscribe();
    await once(sub, "subscribed");
    for (let i = 0; i < SLOW_READERS; i++) slow.push(new WsReader(baton.url));
    await Promise.all(slow.map((r) => r.subscribe(jwt, TOPIC)));
    for (const r of slow) r.ws.pause();

    // Publish while sampling the server's memory, until the fast client has everything.
    before0 = statusMb(baton.child.pid!);
    peak = { ...before0 };
    const sampler = setInterval(() => {
      const now = statusMb(baton.child.pid!);
      if (now.rss > peak.rss) peak = now;
    }, 20);
    try {
      const pad = "x".repeat(EVENT_BYTES);
      for (let first = 1; first <= EVENTS; first += BATCH) {
        const events = Array.from({ length: Math.min(BATCH, EVENTS - first + 1) }, (_, i) => ({ data: { n: first + i, pad } }));
        const res = await api(baton.url, jwt, "POST", `/v1/topics/${TOPIC}/events`, { events });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        assert.deepEqual(res.body.events.map((e: { seq: number }) => e.seq), events.map((e) => e.data.n));
        published += events.length;
      }
      await until(() => fastPubs.length >= EVENTS, 30_000, "the fast client to receive every event");
      await new Promise((r) => setTimeout(r, 200));
      kernel = kernelQueued(baton.port, slow.map((r) => r.port));
    } finally {
      clearInterval(sampler);
    }
  });

  after(async () => {
    fast?.disconnect();
    for (const r of slow) r.stop();
    await baton?.destroy();
  });

  test("(a) a fast client receives every event in order while the slow readers are stalled", () => {
    assert.equal(published, EVENTS);
    assertInOrder(fastPubs, "fast client");
    for (const [i, r] of slow.entries()) {
      assert.ok(r.pubs.length < EVENTS / 10, `slow reader ${i} was not stalled: it read ${r.pubs.length} events`);
      assert.equal(r.closeCode, undefined, `slow reader ${i} closed ${r.closeCode} during the stall`);
    }
  });

  test("(b) server memory does not grow with what the stalled readers have not read", (t: TestContext) => {
    const growth = peak.rss - before0.rss;
    const volumeMb = (EVENTS * EVENT_BYTES) / 2 ** 20;
    const inKernelMb = [...kernel.values()].map((b) => b / 2 ** 20);
    t.diagnostic(`VmRSS ${before0.rss.toFixed(0)} -> peak ${peak.rss.toFixed(0)} MB (+${growth.toFixed(1)}), RssAnon +${(peak.anon - before0.anon).toFixed(1)} MB`);
    t.diagnostic(`per stalled reader: ${volumeMb.toFixed(1)} MB published, in kernel buffers ${inKernelMb.map((m) => m.toFixed(1)).join(", ")} MB`);
    // The stall is real: most of what each reader is owed is neither read nor in the kernel, so
    // it is either held by the server (ruled out below) or not produced yet (paused).
    for (const [i, r] of slow.entries()) {
      const notInKernel = volumeMb - inKernelMb[i]! - (r.pubs.length * EVENT_BYTES) / 2 ** 20;
      assert.ok(notInKernel > volumeMb / 3, `slow reader ${i}: only ${notInKernel.toFixed(1)} MB held back; the kernel absorbed the stall, so this test proves nothing here`);
    }
    assert.ok(growth < RSS_GROWTH_LIMIT_MB, `server VmRSS grew ${growth.toFixed(1)} MB (limit ${RSS_GROWTH_LIMIT_MB} MB) while ${SLOW_READERS} readers were stalled`);
  });

  test("(c) once they read again, the slow readers receive every event in order, none lost", async (t: TestContext) => {
    let catchUpPeak = statusMb(baton.child.pid!).rss;
    const sampler = setInterval(() => (catchUpPeak = Math.max(catchUpPeak, statusMb(baton.child.pid!).rss)), 20);
    try {
      for (const r of slow) r.ws.resume();
      // Until every reader has everything (or closed); stop early when none progresses for 5 s
      // (a reader that skipped events never gets to EVENTS), so a gap fails fast and precisely.
      const deadline = Date.now() + 45_000;
      let seen = -1;
      let progressAt = Date.now();
      while (!slow.every((r) => r.pubs.length >= EVENTS || r.closeCode !== undefined) && Date.now() < deadline && Date.now() - progressAt < 5000) {
        await new Promise((r) => setTimeout(r, 20));
        const total = slow.reduce((n, r) => n + r.pubs.length, 0);
        if (total !== seen) [seen, progressAt] = [total, Date.now()];
      }
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`server VmRSS peak during catch-up: ${catchUpPeak.toFixed(0)} MB`);
    for (const [i, r] of slow.entries()) {
      assert.equal(r.closeCode, undefined, `slow reader ${i} was closed ${r.closeCode} ${r.closeReason}`);
      assertInOrder(r.pubs, `slow reader ${i}`);
    }
    // Still live afterwards: one more event reaches every reader.
    const res = await api(baton.url, jwt, "POST", `/v1/topics/${TOPIC}/events`, { data: { n: EVENTS + 1 } });
    assert.equal(res.status, 201);
    await until(() => slow.every((r) => r.pubs.length === EVENTS + 1) && fastPubs.length === EVENTS + 1, 10_000, "one live event after catch-up");
  });
});

describe("ephemeral: a stalled reader loses publications, then is closed 3008", { skip: PROC ? false : "needs Linux /proc" }, () => {
  const TOPIC = "slow.ephemeral";
  const SLOW_TIMEOUT_MS = 3000;
  const PUB_BYTES = 8000;
  let baton: BatonProcess;
  const sockets: WsReader[] = [];

  before(async () => {
    // The publisher sends hundreds of commands a second: lift the inbound rate limit, which is
    // not what this case is about.
    baton = await startBaton({
      env: { BATON_WS_BUFFER_BYTES: BUFFER, BATON_WS_SLOW_TIMEOUT: `${SLOW_TIMEOUT_MS}ms`, BATON_WS_MAX_COMMANDS_PER_SECOND: "100000" },
    });
  });

  after(async () => {
    for (const s of sockets) s.stop();
    await baton?.destroy();
  });

  test("(d) drops are counted, a fast reader gets everything, the stalled reader is closed 3008", async (t: TestContext) => {
    const jwt = await token({ tenant: "acme", sub: "eph" });
    const stalled = new WsReader(baton.url);
    const reader = new WsReader(baton.url);
    const publisher = new WsReader(baton.url);
    sockets.push(stalled, reader, publisher);
    await Promise.all([stalled.subscribe(jwt, TOPIC), reader.subscribe(jwt, TOPIC)]);
    stalled.ws.pause();
    await publisher.opened;
    publisher.send([{ id: 1, connect: { token: jwt } }]);
    await publisher.reply(1);
    const droppedBefore = await metric(baton.url, "baton_ws_dropped_ephemeral_total");

    const pad = "y".repeat(PUB_BYTES);
    let n = 0;
    let nextId = 2;
    const publish = (count: number): void => {
      const lines = [];
      for (let i = 0; i < count; i++) lines.push({ id: nextId++, publish: { channel: TOPIC, data: { n: ++n, pad }, ephemeral: true } });
      publisher.send(lines);
    };
    // Fill the kernel buffers (about 4 MB) and the server's 64 KiB, then keep a steady trickle
    // until the stalled reader has been over the mark for the slow timeout plus a margin: the
    // close happens on the first write after the timeout.
    const deadline = Date.now() + 30_000;
    let firstDropAt = 0;
    while (firstDropAt === 0 || Date.now() < firstDropAt + SLOW_TIMEOUT_MS + 2000) {
      assert.ok(Date.now() < deadline, `no drop was counted after ${n} ephemeral publications`);
      publish(6);
      await until(() => publisher.replies.has(nextId - 1), 10_000, "publish replies");
      if (firstDropAt === 0 && n % 60 === 0) {
        if ((await metric(baton.url, "baton_ws_dropped_ephemeral_total")) > droppedBefore) firstDropAt = Date.now();
      }
      if (n > 600) await new Promise((r) => setTimeout(r, 20));
    }
    const published = n;
    await until(() => reader.pubs.length >= published, 10_000, "the fast reader to receive every ephemeral publication");
    const dropped = (await metric(baton.url, "baton_ws_dropped_ephemeral_total")) - droppedBefore;

    stalled.ws.resume();
    await until(() => stalled.closeCode !== undefined, 15_000, "the stalled reader to be closed");
    t.diagnostic(`published ${published}, stalled reader got ${stalled.pubs.length}, dropped (metric) ${dropped}`);

    assert.equal(stalled.closeCode, 3008, `closed ${stalled.closeCode} ${stalled.closeReason}`);
    assert.equal(stalled.closeReason, "slow");
    assert.ok(dropped > 0, "baton_ws_dropped_ephemeral_total did not go up");
    assert.ok(stalled.pubs.length < published, "the stalled reader received every publication");
    // What it did receive is an in-order subsequence; each missing one was dropped (counted) or
    // came after the close.
    for (let i = 1; i < stalled.pubs.length; i++) assert.ok(stalled.pubs[i]!.n > stalled.pubs[i - 1]!.n, "stalled reader: out of order");
    assert.ok(stalled.pubs.length + dropped <= published, `received ${stalled.pubs.length} + dropped ${dropped} > published ${published}`);
    // The fast reader on the same topic was not hurt: all of them, in order, and still open.
    assert.equal(reader.pubs.length, published);
    assert.ok(reader.pubs.every((p, i) => p.n === i + 1 && p.offset === undefined), "fast reader: gap, reorder or offset on an ephemeral publication");
    assert.equal(reader.closeCode, undefined);
    assert.equal(publisher.closeCode, undefined);
  });
});
