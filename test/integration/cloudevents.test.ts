/**
 * An application using the official `cloudevents` SDK publishes to Baton unchanged: binary and
 * structured modes through the SDK's own HTTP emitter, and the batched mode.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CloudEvent, HTTP, Mode, emitterFor, httpTransport } from "cloudevents";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

let baton: BatonProcess;
let jwt: string;
before(async () => {
  baton = await startBaton();
  jwt = await token({ tenant: "acme", sub: "ce-producer" });
});
after(() => baton.destroy());

const sink = (topic: string): string => `${baton.url}/v1/topics/${topic}/events`;

async function readAll(topic: string): Promise<any[]> {
  return (await api(baton.url, jwt, "GET", `/v1/topics/${topic}/events?from=1`)).body.events;
}

for (const mode of [Mode.BINARY, Mode.STRUCTURED]) {
  test(`the SDK's HTTP emitter publishes in ${mode} mode and the envelope maps onto Baton's`, async () => {
    const topic = `ce.${mode}`;
    const emit = emitterFor(httpTransport(sink(topic)), { binding: HTTP, mode });
    const event = new CloudEvent({
      source: "/classroom/7",
      type: "com.example.question.asked",
      subject: "question-12",
      data: { text: "why is the sky blue?" },
      partitionkey: "student-3",
      causalid: "evt_parent",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    });
    const res = (await emit(event, { headers: { authorization: `Bearer ${jwt}` } })) as { body: string; headers: Record<string, string> };
    const ack = JSON.parse(res.body);
    assert.equal(ack.seq, 1, res.body);
    const [stored] = await readAll(topic);
    assert.equal(stored.id, ack.id);
    assert.equal(stored.type, "com.example.question.asked");
    assert.equal(stored.key, "student-3");
    assert.equal(stored.causalId, "evt_parent");
    assert.deepEqual(stored.data, { text: "why is the sky blue?" });
    assert.equal(stored.headers["ce-source"], "/classroom/7");
    assert.equal(stored.headers["ce-subject"], "question-12");
    assert.equal(stored.headers.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

    // CloudEvents: source + id identify an event, so a re-sent event is a duplicate.
    const again = JSON.parse(((await emit(event, { headers: { authorization: `Bearer ${jwt}` } })) as { body: string }).body);
    assert.deepEqual(again, { id: ack.id, seq: 1, duplicate: true });
    assert.equal((await readAll(topic)).length, 1);
  });
}

test("batched mode publishes all events of the batch, all or nothing", async () => {
  const batch = [1, 2, 3].map((n) => new CloudEvent({ source: "/batch", type: "com.example.n", data: { n } }).toJSON());
  const res = await fetch(sink("ce.batch"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/cloudevents-batch+json" },
    body: JSON.stringify(batch),
  });
  assert.equal(res.status, 201);
  assert.deepEqual((await readAll("ce.batch")).map((e) => e.data.n), [1, 2, 3]);
  const bad = await fetch(sink("ce.batch"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/cloudevents-batch+json" },
    body: JSON.stringify([{ ...batch[0], id: "new" }, { specversion: "1.0", id: "x", type: "t" }]),
  });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as any).error.code, "VALIDATION_FAILED");
  assert.equal((await readAll("ce.batch")).length, 3);
});

test("a CloudEvent missing a required attribute is refused with the attribute named", async () => {
  const res = await fetch(sink("ce.bad"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json", "ce-specversion": "1.0", "ce-id": "1", "ce-type": "t" },
    body: "{}",
  });
  const body = (await res.json()) as any;
  assert.equal(res.status, 400);
  assert.match(body.error.message, /source/);
});

test("structured mode with data_base64 stores the binary data; bad percent-encoding in binary mode is a 400", async () => {
  const res = await fetch(sink("ce.b64"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/cloudevents+json" },
    body: JSON.stringify({ specversion: "1.0", id: "b1", source: "/bin", type: "blob", data_base64: Buffer.from([1, 2, 3]).toString("base64") }),
  });
  assert.equal(res.status, 201);
  assert.deepEqual((await readAll("ce.b64"))[0].data, { base64: "AQID" });
  const bad = await fetch(sink("ce.b64"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json", "ce-specversion": "1.0", "ce-id": "%E0%A4%A", "ce-source": "/x", "ce-type": "t" },
    body: "{}",
  });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as any).error.code, "VALIDATION_FAILED");
  // data and data_base64 together: one of them would be dropped, so neither is taken.
  const both = await fetch(sink("ce.b64"), {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/cloudevents+json" },
    body: JSON.stringify({ specversion: "1.0", id: "b2", source: "/bin", type: "blob", data: { a: 1 }, data_base64: "AQID" }),
  });
  assert.equal(both.status, 400);
  assert.match(((await both.json()) as any).error.message, /data_base64/);
  assert.equal((await readAll("ce.b64")).length, 1);
});
