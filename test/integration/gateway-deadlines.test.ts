/**
 * The socket deadlines, all run by the gateway's shared clock: the connect timeout (3502), pings
 * and the pong timeout (3012), and that a client answering pings stays connected.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { client, once, RawSocket, until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
before(async () => {
  baton = await startBaton({ env: { BATON_WS_PING_INTERVAL: "1s", BATON_WS_PONG_TIMEOUT: "300ms", BATON_WS_CONNECT_TIMEOUT: "500ms" } });
});
after(() => baton.destroy());

const pings = (s: RawSocket): number => s.frames.filter((f) => f === "{}").length;

test("a socket that never sends connect is closed 3502 after the connect timeout", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  const opened = Date.now();
  await until(() => s.closeCode !== undefined, 10_000, "close without connect");
  assert.equal(s.closeCode, 3502);
  assert.ok(Date.now() - opened >= 500, "not before the timeout");
});

test("a connected socket gets pings; one that never answers is closed 3012", async () => {
  const s = new RawSocket(baton.url);
  await s.opened;
  s.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "silent" }) } }));
  await s.reply(1);
  const connected = Date.now();
  await until(() => s.closeCode !== undefined, 10_000, "close without pongs");
  assert.equal(s.closeCode, 3012);
  assert.ok(pings(s) >= 1, "pinged before being closed");
  assert.ok(Date.now() - connected >= 1300, "not before ping interval + pong timeout");
});

test("a socket answering every ping stays open, and so does the centrifuge SDK", async () => {
  const raw = new RawSocket(baton.url);
  await raw.opened;
  raw.send(JSON.stringify({ id: 1, connect: { token: await token({ tenant: "acme", sub: "ponger" }) } }));
  await raw.reply(1);
  let answered = 0;
  const answer = setInterval(() => {
    while (answered < pings(raw)) {
      raw.send("{}");
      answered++;
    }
  }, 20);
  const sdk = client(baton.url, await token({ tenant: "acme", sub: "sdk" }));
  const disconnects: number[] = [];
  sdk.on("disconnected", (ctx) => disconnects.push(ctx.code));
  sdk.connect();
  await once(sdk, "connected");
  try {
    await until(() => pings(raw) >= 4, 15_000, "four pings");
    assert.equal(raw.closeCode, undefined);
    assert.equal(sdk.state, "connected");
    assert.deepEqual(disconnects, []);
  } finally {
    clearInterval(answer);
    sdk.disconnect();
    raw.close();
  }
});
