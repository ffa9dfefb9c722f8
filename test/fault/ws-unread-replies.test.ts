/**
 * A client that sends commands but never reads the replies cannot make the server queue them
 * without bound: the next command waits until the socket's buffer drains, and a socket that
 * stays stuck is closed 3008. Also: a server-side subscription that loses its position closes
 * the connection 3010 so the client's reconnect recovers it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import WsClient from "ws";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { RawSocket, until, wsUrl } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
before(async () => {
  baton = await startBaton({ env: { BATON_WS_BUFFER_BYTES: "64KiB", BATON_WS_SLOW_TIMEOUT: "2s", BATON_RETENTION_MAX_EVENTS: "5" } });
});
after(() => baton.destroy());

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

test("history requests from a socket that never reads do not pile up replies in memory", { skip: !existsSync("/proc/self/status") && "needs /proc" }, async () => {
  const admin = await token({ tenant: "acme", sub: "ops", admin: true });
  await api(baton.url, admin, "POST", "/v1/topics", { name: "unread.big", retention: { maxEvents: 0 } });
  for (let b = 0; b < 6; b++) {
    await api(baton.url, admin, "POST", "/v1/topics/unread.big/events", { events: Array.from({ length: 50 }, (_, i) => ({ data: { i, pad: "x".repeat(8000) } })) });
  }
  const before = rssBytes(baton.child.pid!);
  const ws = new WsClient(wsUrl(baton.url));
  await new Promise((r) => ws.once("open", r));
  let closeCode: number | undefined;
  ws.once("close", (code) => (closeCode = code));
  ws.on("error", () => undefined);
  const replies: number[] = [];
  ws.on("message", (data: Buffer) => {
    for (const line of data.toString().split("\n")) if (line.trim() !== "") replies.push((JSON.parse(line) as { id?: number }).id ?? 0);
  });
  ws.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "reader" }) } }));
  await until(() => replies.includes(1), 5000, "connect reply");
  // Stop reading, then ask for 150 full history pages (2.4 MB each if pages were not capped).
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  ws.send(Array.from({ length: 150 }, (_, i) => JSON.stringify({ id: i + 2, history: { channel: "unread.big", limit: -1 } })).join("\n"));
  await new Promise((r) => setTimeout(r, 1500));
  const growth = rssBytes(baton.child.pid!) - before;
  // Uncapped and ungated, the server would hold ~360 MB of replies; the bound leaves GC slack.
  assert.ok(growth < 48 * 1024 * 1024, `server RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
  socket.resume();
  // Either every reply arrives, in order (the socket caught up in time), or it was closed as slow.
  await until(() => replies.length >= 151 || closeCode !== undefined, 15_000, "replies or a close");
  if (closeCode === undefined) assert.deepEqual(replies.filter((id) => id > 1), Array.from({ length: 150 }, (_, i) => i + 2));
  else assert.equal(closeCode, 3008);
  ws.close();
  assert.equal((await fetch(`${baton.url}/healthz`)).status, 200);
});

test("a server-side subscription (token channels) whose history is replaced closes the connection 3010", async () => {
  const admin = await token({ tenant: "acme", sub: "ops", admin: true });
  await api(baton.url, admin, "POST", "/v1/topics/srv.lossy/events", { data: 1 });
  const s = new RawSocket(baton.url);
  await s.opened;
  s.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "lossy", channels: ["srv.lossy"] }) } }));
  const r = await s.reply(1);
  assert.ok(r.connect.subs["srv.lossy"], JSON.stringify(r));
  assert.equal((await api(baton.url, admin, "DELETE", "/v1/topics/srv.lossy")).status, 204);
  await api(baton.url, admin, "POST", "/v1/topics/srv.lossy/events", { data: "new history" });
  await s.closed;
  assert.equal(s.closeCode, 3010);
  assert.equal(s.closeReason, "insufficient state");
});
