/**
 * Draining: on SIGTERM a node stops accepting sockets and sends its clients away with a
 * reconnect code at spread-out moments, then exits cleanly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startBaton, token } from "../support/start-baton.ts";
import { RawSocket, client, once, until } from "../support/centrifuge-client.ts";

test("SIGTERM closes every socket with 4000 (reconnect), refuses new ones, and exits 0", async () => {
  const baton = await startBaton({ env: { BATON_DRAIN_WINDOW: "1s" } });
  const clients = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const c = client(baton.url, await token({ tenant: "acme", sub: `u${i}` }), { minReconnectDelay: 5_000, maxReconnectDelay: 10_000 });
      const codes: number[] = [];
      c.on("connecting", (ctx) => codes.push(ctx.code));
      c.connect();
      await once(c, "connected");
      return { c, codes };
    }),
  );
  try {
    const exit = baton.stop();
    // A socket opened during the drain is refused.
    await new Promise((r) => setTimeout(r, 100));
    const late = new RawSocket(baton.url);
    await assert.rejects(late.opened);
    await until(() => clients.every((x) => x.codes.includes(4000)), 10_000, "every client told to reconnect");
    for (const x of clients) assert.equal(x.c.state, "connecting", "the client reconnects (elsewhere) rather than stopping");
    assert.equal(await exit, 0, baton.output());
  } finally {
    for (const x of clients) x.c.disconnect();
    await baton.destroy();
  }
});

test("POST /admin/drain with the operator token drains the node without stopping it", async () => {
  const baton = await startBaton({ env: { BATON_DRAIN_WINDOW: "300ms", BATON_OPERATOR_TOKEN: "op-secret-123" } });
  try {
    const c = client(baton.url, await token({ tenant: "acme", sub: "u" }), { minReconnectDelay: 5_000, maxReconnectDelay: 10_000 });
    const codes: number[] = [];
    c.on("connecting", (ctx) => codes.push(ctx.code));
    c.connect();
    await once(c, "connected");
    const tenantAdmin = await token({ tenant: "acme", sub: "ops", admin: true });
    const refused = await fetch(`${baton.url}/admin/drain`, { method: "POST", headers: { authorization: `Bearer ${tenantAdmin}` } });
    assert.equal(refused.status, 401, "a tenant token cannot drain a shared node");
    const res = await fetch(`${baton.url}/admin/drain`, { method: "POST", headers: { authorization: "Bearer op-secret-123" } });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { draining: true, connections: 1 });
    await until(() => codes.includes(4000), 5000, "client told to reconnect");
    assert.equal((await fetch(`${baton.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${baton.url}/healthz`)).status, 200, "the process keeps running");
    c.disconnect();
  } finally {
    await baton.destroy();
  }
});

test("without BATON_OPERATOR_TOKEN the drain route is refused", async () => {
  const baton = await startBaton();
  try {
    const res = await fetch(`${baton.url}/admin/drain`, { method: "POST", headers: { authorization: "Bearer anything" } });
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "FORBIDDEN");
  } finally {
    await baton.destroy();
  }
});

test("a draining node refuses socket publishes with a temporary error until the socket is closed", async () => {
  // A long window: the socket is almost surely still open when the publish arrives.
  const baton = await startBaton({ env: { BATON_DRAIN_WINDOW: "60s", BATON_OPERATOR_TOKEN: "op-secret-456" } });
  try {
    const s = new RawSocket(baton.url);
    await s.opened;
    s.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "p", publish: ["d.*"] }) } }));
    await s.reply(1);
    await fetch(`${baton.url}/admin/drain`, { method: "POST", headers: { authorization: "Bearer op-secret-456" } });
    s.send(JSON.stringify({ id: 2, publish: { channel: "d.x", data: 1 } }));
    const r = await s.reply(2);
    assert.deepEqual([r.error.code, r.error.temporary], [100, true]);
    s.close();
  } finally {
    await baton.destroy();
  }
});
