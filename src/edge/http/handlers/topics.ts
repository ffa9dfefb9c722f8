/**
 * @module edge/http/handlers/topics
 * Topic admin: create (with retention), list, describe, delete.
 */
import { parseBytes, parseDuration } from "../../../config/duration.ts";
import { BatonError } from "../../../errors/baton-error.ts";
import type { Retention } from "../../../streams/event.ts";
import { assertTopicName } from "../../../streams/names.ts";
import { authorize, can } from "../../auth/principal.ts";
import { authenticate } from "../auth.ts";
import { parseJson, readBody } from "../body.ts";
import { topicJson } from "../event-json.ts";
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

const MAX_LIST = 1000;

export function defaultRetention(s: HttpServices): Retention {
  return { maxAgeMs: s.config.retentionMaxAgeMs, maxEvents: s.config.retentionMaxEvents, maxBytes: s.config.retentionMaxBytes };
}

function retentionValue(v: unknown, field: string, parse: (raw: string) => number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string") {
    try {
      return parse(v);
    } catch (err) {
      throw new BatonError("VALIDATION_FAILED", `retention.${field}: ${(err as Error).message}`, { details: { field: `retention.${field}` } });
    }
  }
  throw new BatonError("VALIDATION_FAILED", `retention.${field}: must be a non-negative integer (0 = unlimited)${field === "maxEvents" ? "" : " or a string such as \"7d\" / \"1GiB\""}`, { details: { field: `retention.${field}` } });
}

function parseRetention(v: unknown, defaults: Retention): Retention {
  if (v === undefined) return defaults;
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BatonError("VALIDATION_FAILED", "retention: must be an object", { details: { field: "retention" } });
  const obj = v as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!["maxAgeMs", "maxAge", "maxEvents", "maxBytes"].includes(k)) throw new BatonError("VALIDATION_FAILED", `retention.${k}: unknown field (allowed: maxAge, maxAgeMs, maxEvents, maxBytes)`, { details: { field: `retention.${k}` } });
  }
  const noUnit = (raw: string): number => {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error("must be a non-negative integer");
    return n;
  };
  return {
    maxAgeMs: retentionValue(obj["maxAgeMs"] ?? obj["maxAge"], "maxAge", parseDuration) ?? defaults.maxAgeMs,
    maxEvents: retentionValue(obj["maxEvents"], "maxEvents", noUnit) ?? defaults.maxEvents,
    maxBytes: retentionValue(obj["maxBytes"], "maxBytes", parseBytes) ?? defaults.maxBytes,
  };
}

export async function createTopic(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  authorize(principal, "admin", "");
  const body = parseJson(await readBody(ctx.req, s.config.maxBodyBytes));
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new BatonError("VALIDATION_FAILED", "body: must be an object like {\"name\": \"orders\"}", { details: { field: "body" } });
  const obj = body as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k !== "name" && k !== "retention") throw new BatonError("VALIDATION_FAILED", `body.${k}: unknown field (allowed: name, retention)`, { details: { field: `body.${k}` } });
  }
  if (typeof obj["name"] !== "string") throw new BatonError("VALIDATION_FAILED", "body.name: is required and must be a string", { details: { field: "body.name" } });
  const name = assertTopicName(obj["name"]);
  const retention = parseRetention(obj["retention"], defaultRetention(s));
  const info = await s.log.createTopic({ tenant: principal.tenant, topic: name }, retention);
  sendJson(ctx.res, 201, topicJson(info));
}

export async function listTopics(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const q = ctx.query;
  const limitText = q.get("limit") ?? "100";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw new BatonError("VALIDATION_FAILED", `limit: must be an integer in [1, ${MAX_LIST}]`, { details: { field: "limit" } });
  const prefix = q.get("prefix") ?? undefined;
  const after = q.get("after") ?? undefined;
  const page = await s.log.listTopics(principal.tenant, {
    limit,
    ...(prefix === undefined ? {} : { prefix }),
    ...(after === undefined ? {} : { after }),
  });
  const visible = principal.admin ? page : page.filter((t) => can(principal, "subscribe", t.name));
  const last = page[page.length - 1];
  sendJson(ctx.res, 200, { topics: visible.map(topicJson), ...(page.length === limit && last !== undefined ? { next: last.name } : {}) });
}

export async function describeTopic(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const topic = assertTopicName(ctx.params["topic"] ?? "");
  if (!principal.admin) authorize(principal, "subscribe", topic);
  const info = await s.log.describeTopic({ tenant: principal.tenant, topic });
  if (info === undefined) throw new BatonError("TOPIC_NOT_FOUND", `topic ${topic} does not exist`);
  sendJson(ctx.res, 200, topicJson(info));
}

export async function deleteTopic(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const topic = assertTopicName(ctx.params["topic"] ?? "");
  authorize(principal, "admin", topic);
  const deleted = await s.log.deleteTopic({ tenant: principal.tenant, topic });
  if (!deleted) throw new BatonError("TOPIC_NOT_FOUND", `topic ${topic} does not exist`);
  ctx.res.writeHead(204).end();
}
