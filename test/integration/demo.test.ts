/**
 * The example page and the SDK it loads are served by Baton itself. The served SDK is
 * imported from what the server sent and used against the same server, so the page's code
 * path is exercised without a browser.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";
import { until } from "../support/centrifuge-client.ts";

let baton: BatonProcess;
let dir: string;
before(async () => {
  baton = await startBaton();
  dir = mkdtempSync(join(tmpdir(), "baton-served-sdk-"));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await baton.destroy();
});

test("/demo serves the example page, which loads the SDK from /sdk/", async () => {
  const res = await fetch(`${baton.url}/demo`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/html/);
  const html = await res.text();
  assert.match(html, /import \{ BatonClient \} from "\/sdk\/index\.ts"/);
  assert.match(html, /"centrifuge": "\/sdk\/centrifuge\.mjs"/);
  assert.equal((await fetch(`${baton.url}/sdk/..%2Fpackage.json`)).status, 404);
  assert.equal((await fetch(`${baton.url}/sdk/nope.ts`)).status, 404);
});

test("the served SDK is plain JavaScript that connects, subscribes and receives events", async () => {
  for (const file of ["index.ts", "baton-client.ts", "connection.ts", "events.ts", "worker.ts", "centrifuge.mjs"]) {
    const res = await fetch(`${baton.url}/sdk/${file}`);
    assert.equal(res.status, 200, file);
    assert.match(res.headers.get("content-type") ?? "", /javascript/);
    // As the page's import map does, point the bare specifier at the served file.
    writeFileSync(join(dir, file === "centrifuge.mjs" ? file : file.replace(/\.ts$/, ".js")), (await res.text()).replaceAll('from "centrifuge"', 'from "./centrifuge.mjs"').replaceAll(/from "\.\/([\w-]+)\.ts"/g, 'from "./$1.js"'));
  }
  const sdk = (await import(pathToFileURL(join(dir, "index.js")).href)) as typeof import("../../packages/sdk/src/index.ts");
  const client = new sdk.BatonClient(baton.url, { token: await token({ tenant: "acme", sub: "page", subscribe: ["room.>"], publish: ["room.>"] }) });
  const events: unknown[] = [];
  const topic = client.topic("room.demo");
  topic.on("event", (e) => events.push(e.data));
  try {
    client.connect();
    topic.subscribe();
    await until(() => topic.position !== undefined, 5000, "subscribed");
    await client.publish("room.demo", { text: "from the page" });
    await api(baton.url, await token({ tenant: "acme", sub: "b" }), "POST", "/v1/topics/room.demo/events", { data: { text: "from curl" } });
    await until(() => events.length === 2, 5000, "two events");
    assert.deepEqual(events, [{ text: "from the page" }, { text: "from curl" }]);
  } finally {
    client.disconnect();
  }
});
