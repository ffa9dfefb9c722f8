/**
 * @module streams/groups/group-config
 * A consumer group's definition: what it reads, where it starts, its lease and retry policy,
 * and the validation of the JSON that creates one. Engine-neutral.
 */
import { parseDuration } from "../../config/duration.ts";
import { BatonError } from "../../errors/baton-error.ts";
import type { Json } from "../event.ts";
import { isValidPattern, isValidTopicName } from "../names.ts";
import type { RetryPolicy } from "./retry-policy.ts";

export type StartPosition =
  | { readonly kind: "beginning" }
  | { readonly kind: "now" }
  | { readonly kind: "seq"; readonly seq: number }
  | { readonly kind: "time"; readonly time: number };

export interface GroupConfig {
  readonly tenant: string;
  readonly name: string;
  /** A topic name or a pattern (`orders.*`, `jobs.>`): every matching topic feeds the group. */
  readonly topic: string;
  readonly start: StartPosition;
  /** How long a member holds a delivery before it is handed to another, unless extended. */
  readonly ackWaitMs: number;
  readonly retry: RetryPolicy;
  /** At most one event per key in flight (SQS FIFO message groups); keys run in parallel. */
  readonly orderedByKey: boolean;
  /** Redriven dead letters re-enter the group at most this many per second. */
  readonly redriveRatePerS: number;
  /** Events read ahead and not yet done (ready, in flight, retrying, waiting behind their key). */
  readonly maxPending: number;
  readonly createdAt: number;
}

export const GROUP_LIMITS = {
  ackWaitMs: [100, 12 * 3600_000],
  maxAttempts: [1, 1000],
  backoffMs: [0, 24 * 3600_000],
  multiplier: [1, 10],
  redriveRatePerS: [1, 10_000],
  maxPending: [100, 1_000_000],
} as const;

export const GROUP_DEFAULTS = {
  ackWaitMs: 30_000,
  maxAttempts: 5,
  initialBackoffMs: 1000,
  maxBackoffMs: 5 * 60_000,
  multiplier: 2,
  redriveRatePerS: 50,
  maxPending: 100_000,
} as const;

const GROUP_NAME = /^[A-Za-z0-9_\-:=+@]{1,100}$/;

export function assertGroupName(name: string): string {
  if (!GROUP_NAME.test(name)) {
    throw new BatonError("VALIDATION_FAILED", `invalid group name ${JSON.stringify(name.slice(0, 120))}: use 1-100 characters of [A-Za-z0-9_-:=+@]`, { details: { field: "name" } });
  }
  return name;
}

/** The real topic that holds a group's dead letters (`~` keeps it out of every pattern). */
export function deadLetterTopic(group: string): string {
  return `~dlq.${group}`;
}

/** The topic redriven dead letters are appended to; the group reads it as one more source. */
export function redriveTopic(group: string): string {
  return `~redrive.${group}`;
}

export function isSystemTopic(topic: string): boolean {
  return topic.startsWith("~");
}

function fail(field: string, message: string): never {
  throw new BatonError("VALIDATION_FAILED", `${field}: ${message}`, { details: { field } });
}

/** A duration given as "30s" or as integer milliseconds, within [min, max]. */
export function durationField(v: unknown, field: string, [min, max]: readonly [number, number]): number | undefined {
  if (v === undefined) return undefined;
  let ms: number;
  if (typeof v === "number" && Number.isSafeInteger(v)) ms = v;
  else if (typeof v === "string") {
    try {
      ms = parseDuration(v);
    } catch (err) {
      return fail(field, (err as Error).message);
    }
  } else return fail(field, "must be a duration such as \"30s\" or integer milliseconds");
  if (ms < min || ms > max) fail(field, `must be between ${min} ms and ${max} ms`);
  return ms;
}

function numberField(v: unknown, field: string, [min, max]: readonly [number, number], integer = true): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    return fail(field, `must be ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
  }
  return v;
}

function object(v: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(field, "must be an object");
  const obj = v as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(field === "body" ? k : `${field}.${k}`, `unknown field (allowed: ${allowed.join(", ")})`);
  return obj;
}

/** `"beginning" | "now" | {"seq": n} | {"time": "2026-01-01T00:00:00Z"}`. */
export function parseStart(v: unknown, field = "start"): StartPosition {
  if (v === undefined || v === "beginning") return { kind: "beginning" };
  if (v === "now") return { kind: "now" };
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    const obj = object(v, field, ["seq", "time"]);
    if (obj["seq"] !== undefined && obj["time"] === undefined) {
      const seq = numberField(obj["seq"], `${field}.seq`, [1, Number.MAX_SAFE_INTEGER])!;
      return { kind: "seq", seq };
    }
    if (obj["time"] !== undefined && obj["seq"] === undefined) {
      const t = typeof obj["time"] === "string" ? Date.parse(obj["time"]) : NaN;
      if (!Number.isFinite(t)) fail(`${field}.time`, "must be an ISO-8601 time such as \"2026-11-23T10:00:00Z\"");
      return { kind: "time", time: t };
    }
  }
  return fail(field, "must be \"beginning\", \"now\", {\"seq\": n} or {\"time\": \"<ISO-8601>\"}");
}

/** Validates a create-group request body; changes nothing. */
export function parseGroupConfig(tenant: string, body: unknown, now: number): GroupConfig {
  const obj = object(body, "body", ["name", "topic", "start", "ackWait", "maxAttempts", "backoff", "orderedByKey", "redriveRate", "maxPending"]);
  if (typeof obj["name"] !== "string") fail("name", "is required and must be a string");
  const name = assertGroupName(obj["name"] as string);
  const topic = obj["topic"];
  if (typeof topic !== "string") return fail("topic", "is required and must be a topic name or pattern");
  if (!isValidTopicName(topic) && !isValidPattern(topic)) fail("topic", `${JSON.stringify(topic.slice(0, 210))} is neither a topic name nor a pattern`);
  const backoff = obj["backoff"] === undefined ? {} : object(obj["backoff"], "backoff", ["initial", "max", "multiplier"]);
  const initialBackoffMs = durationField(backoff["initial"], "backoff.initial", GROUP_LIMITS.backoffMs) ?? GROUP_DEFAULTS.initialBackoffMs;
  const maxBackoffMs = durationField(backoff["max"], "backoff.max", GROUP_LIMITS.backoffMs) ?? Math.max(GROUP_DEFAULTS.maxBackoffMs, initialBackoffMs);
  if (maxBackoffMs < initialBackoffMs) fail("backoff.max", "must not be below backoff.initial");
  const orderedByKey = obj["orderedByKey"] ?? false;
  if (typeof orderedByKey !== "boolean") fail("orderedByKey", "must be true or false");
  return {
    tenant,
    name,
    topic,
    start: parseStart(obj["start"]),
    ackWaitMs: durationField(obj["ackWait"], "ackWait", GROUP_LIMITS.ackWaitMs) ?? GROUP_DEFAULTS.ackWaitMs,
    retry: {
      maxAttempts: numberField(obj["maxAttempts"], "maxAttempts", GROUP_LIMITS.maxAttempts) ?? GROUP_DEFAULTS.maxAttempts,
      initialBackoffMs,
      maxBackoffMs,
      multiplier: numberField(backoff["multiplier"], "backoff.multiplier", GROUP_LIMITS.multiplier, false) ?? GROUP_DEFAULTS.multiplier,
    },
    orderedByKey: orderedByKey as boolean,
    redriveRatePerS: numberField(obj["redriveRate"], "redriveRate", GROUP_LIMITS.redriveRatePerS) ?? GROUP_DEFAULTS.redriveRatePerS,
    maxPending: numberField(obj["maxPending"], "maxPending", GROUP_LIMITS.maxPending) ?? GROUP_DEFAULTS.maxPending,
    createdAt: now,
  };
}

export function startJson(start: StartPosition): Json {
  switch (start.kind) {
    case "beginning":
    case "now":
      return start.kind;
    case "seq":
      return { seq: start.seq };
    case "time":
      return { time: new Date(start.time).toISOString() };
  }
}

/** The public JSON of a group's definition (also what is stored). */
export function groupConfigJson(c: GroupConfig): { [key: string]: Json } {
  return {
    name: c.name,
    topic: c.topic,
    start: startJson(c.start),
    ackWaitMs: c.ackWaitMs,
    maxAttempts: c.retry.maxAttempts,
    backoff: { initialMs: c.retry.initialBackoffMs, maxMs: c.retry.maxBackoffMs, multiplier: c.retry.multiplier },
    orderedByKey: c.orderedByKey,
    redriveRatePerS: c.redriveRatePerS,
    maxPending: c.maxPending,
    deadLetterTopic: deadLetterTopic(c.name),
    createdAt: new Date(c.createdAt).toISOString(),
  };
}

/** Reads back what {@link groupConfigJson} stored. */
export function groupConfigFromJson(tenant: string, v: Json): GroupConfig {
  const o = v as Record<string, Json>;
  const backoff = o["backoff"] as Record<string, number>;
  return {
    tenant,
    name: o["name"] as string,
    topic: o["topic"] as string,
    start: parseStart(o["start"]),
    ackWaitMs: o["ackWaitMs"] as number,
    retry: { maxAttempts: o["maxAttempts"] as number, initialBackoffMs: backoff["initialMs"]!, maxBackoffMs: backoff["maxMs"]!, multiplier: backoff["multiplier"]! },
    orderedByKey: o["orderedByKey"] as boolean,
    redriveRatePerS: o["redriveRatePerS"] as number,
    maxPending: o["maxPending"] as number,
    createdAt: Date.parse(o["createdAt"] as string),
  };
}
