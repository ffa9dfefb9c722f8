/**
 * @module streams/publish-request
 * Turns an untrusted publish body into validated events, or a VALIDATION_FAILED error that
 * names the field. Nothing is stored unless every event of the request is valid.
 */
import { BatonError } from "../errors/baton-error.ts";
import type { Json, NewEvent } from "./event.ts";

export const LIMITS = {
  keyLength: 256,
  typeLength: 256,
  idempotencyKeyLength: 256,
  causalIdLength: 256,
  headerCount: 64,
  headerNameLength: 128,
  headerValueLength: 4096,
  maxTtlMs: 366 * 86_400_000,
  /** Deepest nesting of arrays/objects in `data`; deeper values cannot be stored and read back. */
  dataDepth: 64,
} as const;

/** Whether `value` nests arrays/objects deeper than `max` (iterative: no stack to overflow). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** VALIDATION_FAILED when `data` nests deeper than LIMITS.dataDepth. */
export function assertDataDepth(data: unknown, where: string): void {
  if (nestsDeeperThan(data, LIMITS.dataDepth)) fail(where, `nests arrays/objects deeper than ${LIMITS.dataDepth} levels`);
}

const EVENT_FIELDS = new Set(["data", "key", "type", "schemaVersion", "causalId", "ttlMs", "idempotencyKey", "headers", "ephemeral"]);
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

function fail(where: string, message: string): never {
  throw new BatonError("VALIDATION_FAILED", `${where}: ${message}`, { details: { field: where } });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalString(obj: Record<string, unknown>, field: string, max: number, where: string): string | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > max) fail(`${where}.${field}`, `must be a string of 1-${max} characters`);
  return v;
}

export function parseHeaders(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) fail(where, "must be an object of string values");
  const entries = Object.entries(v);
  if (entries.length > LIMITS.headerCount) fail(where, `at most ${LIMITS.headerCount} headers`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (name.length > LIMITS.headerNameLength || !HEADER_NAME.test(name)) fail(`${where}.${name}`, "invalid header name");
    if (typeof value !== "string" || value.length > LIMITS.headerValueLength) {
      fail(`${where}.${name}`, `must be a string of at most ${LIMITS.headerValueLength} characters`);
    }
    const lower = name.toLowerCase();
    // Header names are case-insensitive: two spellings of one name would silently become one.
    if (Object.hasOwn(out, lower)) fail(`${where}.${name}`, "repeats a header name (names are case-insensitive)");
    out[lower] = value;
  }
  return entries.length === 0 ? undefined : out;
}

/** Validates one event object of the plain JSON API. */
export function parseEvent(value: unknown, where: string, idempotencyKeyHeader?: string): NewEvent {
  if (!isObject(value)) fail(where, "must be a JSON object with a `data` field");
  for (const field of Object.keys(value)) {
    if (!EVENT_FIELDS.has(field)) fail(`${where}.${field}`, `unknown field (allowed: ${[...EVENT_FIELDS].join(", ")})`);
  }
  if (!("data" in value)) fail(`${where}.data`, "is required (it may be null)");
  assertDataDepth(value["data"], `${where}.data`);
  const event: { -readonly [K in keyof NewEvent]: NewEvent[K] } = { data: value["data"] as Json };
  const key = optionalString(value, "key", LIMITS.keyLength, where);
  if (key !== undefined) event.key = key;
  const type = optionalString(value, "type", LIMITS.typeLength, where);
  if (type !== undefined) event.type = type;
  const causalId = optionalString(value, "causalId", LIMITS.causalIdLength, where);
  if (causalId !== undefined) event.causalId = causalId;
  const idem = optionalString(value, "idempotencyKey", LIMITS.idempotencyKeyLength, where) ?? idempotencyKeyHeader;
  if (idem !== undefined) event.idempotencyKey = idem;
  const schemaVersion = value["schemaVersion"];
  if (schemaVersion !== undefined) {
    if (!Number.isSafeInteger(schemaVersion) || (schemaVersion as number) < 1) fail(`${where}.schemaVersion`, "must be an integer >= 1");
    event.schemaVersion = schemaVersion as number;
  }
  const ttlMs = value["ttlMs"];
  if (ttlMs !== undefined) {
    if (!Number.isSafeInteger(ttlMs) || (ttlMs as number) < 1 || (ttlMs as number) > LIMITS.maxTtlMs) {
      fail(`${where}.ttlMs`, `must be an integer in [1, ${LIMITS.maxTtlMs}]`);
    }
    event.ttlMs = ttlMs as number;
  }
  const headers = parseHeaders(value["headers"], `${where}.headers`);
  if (headers !== undefined) event.headers = headers;
  const ephemeral = value["ephemeral"];
  if (ephemeral !== undefined && typeof ephemeral !== "boolean") fail(`${where}.ephemeral`, "must be a boolean");
  if (ephemeral === true && (event.idempotencyKey !== undefined || event.ttlMs !== undefined)) {
    fail(`${where}.ephemeral`, "an ephemeral event is never stored, so it takes no idempotencyKey or ttlMs");
  }
  return event;
}

function isEphemeral(value: unknown): boolean {
  return isObject(value) && value["ephemeral"] === true;
}

/**
 * A plain JSON publish body: one event, or `{events: [...]}` (all or nothing). The
 * `Idempotency-Key` header applies to a single event; in a batch each event carries its own.
 */
export function parsePublishBody(
  body: unknown,
  maxBatch: number,
  idempotencyKeyHeader?: string,
): { events: NewEvent[]; batch: boolean; ephemeral: boolean } {
  if (isObject(body) && "events" in body && !("data" in body)) {
    const list = body["events"];
    if (Object.keys(body).length !== 1) fail("body", "a batch has only the `events` field");
    if (!Array.isArray(list) || list.length === 0) fail("events", "must be a non-empty array");
    if (list.length > maxBatch) fail("events", `at most ${maxBatch} events per batch`);
    if (idempotencyKeyHeader !== undefined) fail("Idempotency-Key", "the header applies to single events; give each batch event its own idempotencyKey");
    const events = list.map((e, i) => parseEvent(e, `events[${i}]`));
    const ephemeral = isEphemeral(list[0]);
    list.forEach((e, i) => {
      if (isEphemeral(e) !== ephemeral) fail(`events[${i}].ephemeral`, "a batch is either all ephemeral or all durable");
    });
    return { events, batch: true, ephemeral };
  }
  const event = parseEvent(body, "body", idempotencyKeyHeader);
  if (isEphemeral(body) && idempotencyKeyHeader !== undefined) fail("Idempotency-Key", "an ephemeral event is never stored, so it takes no idempotency key");
  return { events: [event], batch: false, ephemeral: isEphemeral(body) };
}
