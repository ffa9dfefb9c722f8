/**
 * @module streams/cloudevents
 * CloudEvents 1.0 onto Baton's envelope, for the structured, batched and binary HTTP modes.
 *
 * | CloudEvents            | Baton                                   |
 * |------------------------|-----------------------------------------|
 * | source + id            | idempotency key (spec: unique per event) |
 * | type                   | type                                    |
 * | partitionkey (ext.)    | key                                     |
 * | causalid (ext.)        | causalId                                |
 * | schemaversion (ext.)   | schemaVersion                           |
 * | ttlms (ext.)           | ttlMs                                   |
 * | traceparent/tracestate | headers (distributed tracing extension) |
 * | source, subject, time, dataschema, datacontenttype, other extensions | headers `ce-<name>` |
 * | data / data_base64     | data (JSON; text as a string; binary as `{ "base64": ... }`) |
 */
import { BatonError } from "../errors/baton-error.ts";
import type { Json, NewEvent } from "./event.ts";
import { LIMITS, assertDataDepth } from "./publish-request.ts";

const REQUIRED = ["id", "source", "specversion", "type"] as const;
const ATTRIBUTE = /^[a-z0-9]{1,20}$/;
const MAPPED = new Set(["id", "specversion", "type", "partitionkey", "causalid", "schemaversion", "ttlms", "traceparent", "tracestate", "data", "data_base64"]);

function fail(where: string, message: string): never {
  throw new BatonError("VALIDATION_FAILED", `${where}: ${message}`, { details: { field: where } });
}

function bounded(v: string, max: number, where: string): string {
  if (v.length === 0 || v.length > max) fail(where, `must be 1-${max} characters`);
  return v;
}

function attributeString(v: unknown, where: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return fail(where, "must be a string, number or boolean");
}

/** Maps validated CloudEvents attributes (names lower case) plus data to a Baton event. */
function toEvent(attributes: Record<string, unknown>, data: Json, where: string): NewEvent {
  assertDataDepth(data, `${where}.data`);
  if (attributes["specversion"] !== "1.0") fail(`${where}.specversion`, 'must be "1.0"');
  for (const name of REQUIRED) {
    const v = attributes[name];
    if (typeof v !== "string" || v.length === 0) fail(`${where}.${name}`, "is required and must be a non-empty string");
  }
  const id = attributes["id"] as string;
  const source = attributes["source"] as string;
  const type = attributes["type"] as string;
  if (type.length > LIMITS.typeLength) fail(`${where}.type`, `at most ${LIMITS.typeLength} characters`);
  // Length-prefixed so that no two (source, id) pairs share a key, and prefixed `ce:` so that they
  // never collide with a plain idempotency key.
  const idempotencyKey = `ce:${source.length}:${source}${id}`;
  if (idempotencyKey.length > LIMITS.idempotencyKeyLength) fail(`${where}.id`, `source + id must be at most ${LIMITS.idempotencyKeyLength - 8} characters`);
  const headers: Record<string, string> = {};
  let event: { -readonly [K in keyof NewEvent]: NewEvent[K] } = { data, type, idempotencyKey };
  for (const [name, value] of Object.entries(attributes)) {
    if (!MAPPED.has(name) && !ATTRIBUTE.test(name)) fail(`${where}.${name}`, "attribute names are 1-20 lower-case letters or digits");
    if (value === undefined || value === null) continue;
    if (!MAPPED.has(name)) headers[`ce-${name}`] = attributeString(value, `${where}.${name}`);
  }
  const key = attributes["partitionkey"];
  if (key !== undefined) event = { ...event, key: bounded(attributeString(key, `${where}.partitionkey`), LIMITS.keyLength, `${where}.partitionkey`) };
  const causalId = attributes["causalid"];
  if (causalId !== undefined) event = { ...event, causalId: bounded(attributeString(causalId, `${where}.causalid`), LIMITS.causalIdLength, `${where}.causalid`) };
  const schemaVersion = attributes["schemaversion"];
  if (schemaVersion !== undefined) {
    const n = Number(schemaVersion);
    if (!Number.isSafeInteger(n) || n < 1) fail(`${where}.schemaversion`, "must be an integer >= 1");
    event = { ...event, schemaVersion: n };
  }
  const ttl = attributes["ttlms"];
  if (ttl !== undefined) {
    const n = Number(ttl);
    if (!Number.isSafeInteger(n) || n < 1 || n > LIMITS.maxTtlMs) fail(`${where}.ttlms`, `must be an integer in [1, ${LIMITS.maxTtlMs}]`);
    event = { ...event, ttlMs: n };
  }
  for (const name of ["traceparent", "tracestate"]) {
    const v = attributes[name];
    if (v !== undefined) headers[name] = attributeString(v, `${where}.${name}`);
  }
  if (Object.keys(headers).length > LIMITS.headerCount) fail(where, `at most ${LIMITS.headerCount} extension attributes`);
  for (const [name, v] of Object.entries(headers)) {
    if (v.length > LIMITS.headerValueLength) fail(`${where}.${name}`, `at most ${LIMITS.headerValueLength} characters`);
  }
  return Object.keys(headers).length === 0 ? event : { ...event, headers };
}

/** Structured mode: one JSON object holding attributes and `data` or `data_base64`. */
export function fromStructured(value: unknown, where = "event"): NewEvent {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(where, "must be a CloudEvents JSON object");
  const obj = value as Record<string, unknown>;
  let data: Json = (obj["data"] as Json | undefined) ?? null;
  if (obj["data_base64"] !== undefined) {
    if (typeof obj["data_base64"] !== "string") fail(`${where}.data_base64`, "must be a base64 string");
    // The JSON format allows one or the other: keeping one would silently drop the other.
    if (obj["data"] !== undefined) fail(`${where}.data_base64`, "must not be sent together with data");
    data = { base64: obj["data_base64"] };
  }
  return toEvent(obj, data, where);
}

/** Batched mode: a JSON array of structured events. */
export function fromBatch(value: unknown, maxBatch: number): NewEvent[] {
  if (!Array.isArray(value) || value.length === 0) fail("body", "a CloudEvents batch must be a non-empty JSON array");
  if (value.length > maxBatch) fail("body", `at most ${maxBatch} events per batch`);
  return value.map((e, i) => fromStructured(e, `[${i}]`));
}

/**
 * Binary mode: attributes in `ce-*` headers, the body is the data, typed by Content-Type.
 * `headers` are the request's, names lower case.
 */
export function fromBinary(headers: Record<string, string | string[] | undefined>, body: Buffer, contentType: string): NewEvent {
  const attributes: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith("ce-") || value === undefined) continue;
    try {
      attributes[name.slice(3)] = Array.isArray(value) ? value.join(",") : decodeURIComponent(value);
    } catch {
      fail(`headers.${name}`, "is not valid percent-encoding");
    }
  }
  let data: Json = null;
  if (body.length > 0) {
    if (/^application\/([a-z.+-]*\+)?json\b/i.test(contentType) || contentType === "") {
      try {
        data = JSON.parse(body.toString("utf8")) as Json;
      } catch {
        throw new BatonError("INVALID_JSON", "the CloudEvent data is declared JSON but does not parse");
      }
    } else if (/^text\//i.test(contentType)) {
      data = body.toString("utf8");
    } else {
      data = { base64: body.toString("base64") };
    }
  }
  if (contentType !== "") attributes["datacontenttype"] = contentType;
  return toEvent(attributes, data, "headers");
}
