/**
 * @module edge/http/handlers/events
 * POST and GET /v1/topics/{topic}/events and /v1/users/{user}/events: publish (plain JSON,
 * batch, CloudEvents structured, batched and binary; durable or ephemeral) and read by sequence
 * or time, with optional long-poll. A user's events go to their personal channel `#<user>`,
 * which every socket of that user is subscribed to.
 */
import type { IncomingMessage } from "node:http";
import { BatonError } from "../../../errors/baton-error.ts";
import { fromBatch, fromBinary, fromStructured } from "../../../streams/cloudevents.ts";
import type { NewEvent, ReadPage, TopicRef } from "../../../streams/event.ts";
import { newEventId } from "../../../streams/ids.ts";
import { assertTopicName, personalChannel } from "../../../streams/names.ts";
import { LIMITS, parsePublishBody } from "../../../streams/publish-request.ts";
import { authorize } from "../../auth/principal.ts";
import { authenticate } from "../auth.ts";
import { parseJson, readBody } from "../body.ts";
import { eventJson } from "../event-json.ts";
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

const MAX_READ_LIMIT = 1000;
const MAX_WAIT_MS = 60_000;

/** The topic a route addresses: `{topic}` as named, or `{user}` as their personal channel. */
export function routeTopic(ctx: RequestContext): string {
  const user = ctx.params["user"];
  if (user !== undefined) {
    const channel = personalChannel(user);
    if (channel === undefined) throw new BatonError("VALIDATION_FAILED", "user: 1-199 characters of [A-Za-z0-9_-:@=+.]", { details: { field: "user" } });
    return channel;
  }
  return assertTopicName(ctx.params["topic"] ?? "");
}

export async function publishEvents(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const topic = routeTopic(ctx);
  authorize(principal, "publish", topic);
  if (!s.isReady()) throw new BatonError("UNAVAILABLE", "this node is not accepting writes (starting or draining)", { retryAfterMs: 1000 });
  const body = await readBody(ctx.req, s.config.maxBodyBytes);
  const { events, batch, ephemeral } = decodePublish(ctx.req, body, s.config.maxBatchEvents);
  if (ephemeral) {
    const now = Date.now();
    const ids = events.map((e) => {
      const id = newEventId(now);
      s.broker.publishEphemeral(
        { tenant: principal.tenant, topic },
        { id, topic, data: e.data, time: now, ...(e.type === undefined ? {} : { type: e.type }), ...(e.key === undefined ? {} : { key: e.key }), ...(e.headers === undefined ? {} : { headers: e.headers }) },
      );
      return { id };
    });
    sendJson(ctx.res, 202, batch ? { events: ids } : ids[0]);
    return;
  }
  const started = performance.now();
  const results = await s.log.append({ tenant: principal.tenant, topic }, events, { autoCreate: s.config.autoCreateTopics });
  s.metrics.appendLatency.observe((performance.now() - started) / 1000);
  let stored = 0;
  for (const r of results) if (!r.duplicate) stored++;
  s.metrics.appendedEvents.inc(stored);
  if (stored < results.length) s.metrics.duplicateEvents.inc(results.length - stored);
  const shape = (r: (typeof results)[number]): Record<string, unknown> =>
    r.duplicate ? { id: r.id, seq: r.seq, duplicate: true } : { id: r.id, seq: r.seq };
  if (batch) {
    sendJson(ctx.res, 201, { events: results.map(shape) });
  } else {
    const only = results[0]!;
    sendJson(ctx.res, only.duplicate ? 200 : 201, shape(only));
  }
}

function decodePublish(req: IncomingMessage, body: Buffer, maxBatch: number): { events: NewEvent[]; batch: boolean; ephemeral: boolean } {
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (req.headers["ce-specversion"] !== undefined) {
    return { events: [fromBinary(req.headers, body, req.headers["content-type"] ?? "")], batch: false, ephemeral: false };
  }
  if (contentType === "application/cloudevents+json") return { events: [fromStructured(parseJson(body))], batch: false, ephemeral: false };
  if (contentType === "application/cloudevents-batch+json") return { events: fromBatch(parseJson(body), maxBatch), batch: true, ephemeral: false };
  if (contentType === "application/json" || contentType === "") {
    const header = req.headers["idempotency-key"];
    // Node joins repeated headers with ", ": two keys must not become a third.
    const repeated = (req.headersDistinct["idempotency-key"]?.length ?? 0) > 1;
    if (header !== undefined && (repeated || typeof header !== "string" || header.length === 0 || header.length > LIMITS.idempotencyKeyLength)) {
      throw new BatonError("VALIDATION_FAILED", `Idempotency-Key: must be one header of 1-${LIMITS.idempotencyKeyLength} characters`, { details: { field: "Idempotency-Key" } });
    }
    return parsePublishBody(parseJson(body), maxBatch, header);
  }
  throw new BatonError("UNSUPPORTED_MEDIA_TYPE", `content type ${JSON.stringify(contentType)} is not accepted for publishing: send Content-Type: application/json (or a CloudEvents mode)`);
}

function nonNegativeInt(value: string | null, name: string): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw new BatonError("INVALID_POSITION", `${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

export async function readEvents(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const topic = routeTopic(ctx);
  // A user may always read their own personal channel.
  if (topic !== personalChannel(principal.subject)) authorize(principal, "subscribe", topic);
  const q = ctx.query;
  const from = nonNegativeInt(q.get("from"), "from");
  const since = q.get("since");
  const limit = nonNegativeInt(q.get("limit"), "limit") ?? 100;
  const wait = nonNegativeInt(q.get("wait"), "wait") ?? 0;
  if (from !== undefined && since !== null) throw new BatonError("INVALID_POSITION", "give either from or since, not both");
  if (limit < 1 || limit > MAX_READ_LIMIT) throw new BatonError("INVALID_POSITION", `limit must be in [1, ${MAX_READ_LIMIT}]`);
  if (wait > MAX_WAIT_MS) throw new BatonError("INVALID_POSITION", `wait must be at most ${MAX_WAIT_MS} ms`);
  const ref: TopicRef = { tenant: principal.tenant, topic };
  let start = from ?? 1;
  if (since !== null) {
    const time = Date.parse(since);
    if (Number.isNaN(time)) throw new BatonError("INVALID_POSITION", `since must be an ISO-8601 time, got ${JSON.stringify(since)}`);
    start = await s.log.seqAtTime(ref, time);
  }
  let page = await s.log.read(ref, start, limit);
  if (page.events.length === 0 && wait > 0 && page.next > page.lastSeq) {
    page = await waitForEvents(ctx, s, ref, page, limit, wait);
  }
  sendJson(ctx.res, 200, {
    events: page.events.map(eventJson),
    next: page.next,
    firstSeq: page.firstSeq,
    lastSeq: page.lastSeq,
    epoch: page.epoch,
  });
}

/** Long-poll: waits until the topic grows past `page.next`, the wait ends or the client leaves. */
async function waitForEvents(ctx: RequestContext, s: HttpServices, ref: TopicRef, page: ReadPage, limit: number, waitMs: number): Promise<ReadPage> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      off();
      ctx.res.off("close", done);
      resolve();
    };
    const off = s.log.onAppend(ref, (events) => {
      if (events[events.length - 1]!.seq >= page.next) done();
    });
    const timer = setTimeout(done, waitMs);
    ctx.res.on("close", done);
    // An append may have landed between the read and the listener: check once more.
    void s.log.describeTopic(ref).then((t) => {
      if (t === undefined || t.lastSeq >= page.next) done();
    }, done);
  });
  return s.log.read(ref, page.next, limit);
}

/** POST /v1/sessions/{session}/messages: an at-most-once `message` push to one connection. */
export async function sendSessionMessage(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  authorize(principal, "publish", "#*");
  const session = ctx.params["session"] ?? "";
  if (!/^[0-9a-f-]{36}$/.test(session)) throw new BatonError("VALIDATION_FAILED", "session: a client id as given in the connect reply");
  const body = parseJson(await readBody(ctx.req, s.config.maxBodyBytes));
  if (typeof body !== "object" || body === null || Array.isArray(body) || !("data" in body) || Object.keys(body).length !== 1) {
    throw new BatonError("VALIDATION_FAILED", 'body: must be {"data": <JSON>}', { details: { field: "body" } });
  }
  s.broker.sendToSession({ tenant: principal.tenant, session, data: (body as { data: NewEvent["data"] }).data });
  sendJson(ctx.res, 202, {});
}
