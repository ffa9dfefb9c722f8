/**
 * @module edge/groups/group-commands
 * The consumer-group operations as both transports expose them: the HTTP API
 * (`/v1/groups/...`) and the socket's RPC methods (`baton.group.*`) validate the same request
 * objects here, check the same permissions and answer the same JSON, so a worker can move
 * between HTTP and WebSocket without learning anything new.
 */
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { EventLog } from "../../engine/engine.ts";
import type { Json, StoredEvent } from "../../streams/event.ts";
import type { GroupDirectory, GroupInfo } from "../../streams/groups/group-handle.ts";
import { durationField, groupConfigJson, parseStart, type GroupConfig } from "../../streams/groups/group-config.ts";
import type { Delivery } from "../../streams/groups/group-model.ts";
import { purgeDeadLetters, readDeadLetters, redrive } from "../../streams/groups/dead-letters.ts";
import type { Principal } from "../auth/principal.ts";
import type { Slots } from "../../streams/coordination/slots.ts";
import { eventJson } from "../http/event-json.ts";

export const PULL_LIMITS = { max: 1000, maxInFlight: 10_000, waitMs: 60_000 } as const;
const MAX_TOKENS = 1000;
const MAX_REASON = 1000;
const NAME = /^[A-Za-z0-9_\-:=+@.]{1,100}$/;

type Body = Record<string, unknown>;

function fail(field: string, message: string): never {
  throw new BatonError("VALIDATION_FAILED", `${field}: ${message}`, { details: { field } });
}

export function asBody(v: unknown, allowed: readonly string[]): Body {
  if (v === undefined || v === null) v = {};
  if (typeof v !== "object" || Array.isArray(v)) return fail("body", "must be a JSON object");
  const obj = v as Body;
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(k, `unknown field (allowed: ${allowed.join(", ")})`);
  return obj;
}

function intField(v: unknown, field: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) return fail(field, `must be an integer in [${min}, ${max}]`);
  return v;
}

function stringField(v: unknown, field: string, max: number): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length > max) return fail(field, `must be a string of at most ${max} characters`);
  return v;
}

function tokenField(v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || v.length > 400) return fail("token", "is required: the `token` of a delivery");
  return v;
}

/** A subscribe grant covers a group's topic or pattern when it matches everything the pattern can. */
function grantCovers(grant: string, pattern: string): boolean {
  if (grant === pattern || grant === ">") return true;
  const g = grant.split(".");
  const p = pattern.split(".");
  for (let i = 0; i < g.length; i++) {
    if (g[i] === ">") return i < p.length;
    if (i >= p.length) return false;
    if (p[i] === ">") return false;
    if (g[i] !== "*" && (p[i] === "*" || g[i] !== p[i])) return false;
  }
  return g.length === p.length;
}

export function canConsume(principal: Principal, config: GroupConfig): boolean {
  return principal.admin || principal.subscribe.some((g) => grantCovers(g, config.topic));
}

function authorizeConsume(principal: Principal, config: GroupConfig): void {
  if (!canConsume(principal, config)) throw new BatonError("FORBIDDEN", `this token may not consume group ${config.name}: its subscribe patterns do not cover ${config.topic}`);
}

export function authorizeAdmin(principal: Principal, what: string): void {
  if (!principal.admin) throw new BatonError("FORBIDDEN", `this token may not ${what} (admin claim required)`);
}

export function deliveryJson(d: Delivery): Json {
  return {
    token: d.token,
    topic: d.topic,
    seq: d.seq,
    attempt: d.attempt,
    failures: d.failures.map((f) => ({ attempt: f.attempt, reason: f.reason, at: new Date(f.at).toISOString() })),
    leaseExpiresAt: new Date(d.leaseUntil).toISOString(),
    origin: d.origin,
    event: eventJson(d.event) as Json,
  };
}

export function groupInfoJson(info: GroupInfo): Json {
  const s = info.status;
  return {
    ...groupConfigJson(info.config),
    lag: info.lag,
    pending: s.pending,
    ready: s.ready,
    inFlight: s.inFlight,
    delayed: s.delayed,
    waitingOnKey: s.waitingOnKey,
    blockedKeys: s.blockedKeys,
    counters: { ...s.counters },
    members: s.members,
    partitionCount: s.partitions.length,
    /** The first 100 (by topic order of discovery); `partitionCount` says how many there are. */
    partitions: s.partitions.slice(0, 100) as unknown as Json,
    stalled: s.stalled as unknown as Json,
    ...(info.leader === undefined ? {} : { leader: info.leader }),
  };
}

export class GroupCommands {
  private readonly groups: GroupDirectory;
  private readonly log: EventLog;

  private readonly slots: Slots;

  constructor(groups: GroupDirectory, log: EventLog, slots: Slots) {
    this.groups = groups;
    this.log = log;
    this.slots = slots;
  }

  /**
   * Makes a socket a member of the group: deliveries arrive through `sink.deliver` until the
   * returned function is called. `maxInFlight` (default 10) bounds what it holds at once.
   */
  async consume(principal: Principal, group: string, raw: unknown, sink: { id: string; deliver: (d: Delivery[]) => void }): Promise<() => void> {
    const body = asBody(raw, ["maxInFlight"]);
    const maxInFlight = intField(body["maxInFlight"], "maxInFlight", 1, PULL_LIMITS.maxInFlight, 10);
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    runtime.addMember({ id: sink.id, kind: "push", maxInFlight, deliver: sink.deliver });
    return () => runtime.removeMember(sink.id);
  }

  async describe(principal: Principal, group: string): Promise<Json> {
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    return groupInfoJson(await this.groups.describe(principal.tenant, group));
  }

  /** The tenant's groups this principal may consume, in name order, a page at a time. */
  async list(principal: Principal, after: string | undefined, limit: number): Promise<Json> {
    const all = (await this.groups.list(principal.tenant)).filter((c) => canConsume(principal, c) && (after === undefined || c.name > after));
    const page = all.slice(0, limit);
    return { groups: page.map(groupConfigJson), ...(all.length > limit ? { next: page[page.length - 1]!.name } : {}) };
  }

  async reset(principal: Principal, group: string, raw: unknown): Promise<Json> {
    authorizeAdmin(principal, "reset consumer groups");
    const body = asBody(raw, ["start"]);
    if (body["start"] === undefined) fail("start", "is required: \"beginning\", \"now\", {\"seq\": n} or {\"time\": \"<ISO-8601>\"}");
    return groupInfoJson(await this.groups.reset(principal.tenant, group, parseStart(body["start"])));
  }

  async pull(principal: Principal, group: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["consumer", "max", "maxInFlight", "wait"]);
    const consumer = body["consumer"];
    if (typeof consumer !== "string" || !NAME.test(consumer)) fail("consumer", "is required: a name of 1-100 characters of [A-Za-z0-9_-:=+@.] that identifies this worker");
    const max = intField(body["max"], "max", 1, PULL_LIMITS.max, 10);
    const maxInFlight = intField(body["maxInFlight"], "maxInFlight", 1, PULL_LIMITS.maxInFlight, 1000);
    const waitMs = durationField(body["wait"], "wait", [0, PULL_LIMITS.waitMs]) ?? 0;
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    const deliveries = await runtime.pull(consumer as string, max, maxInFlight, waitMs);
    return { deliveries: deliveries.map(deliveryJson) };
  }

  async ack(principal: Principal, group: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "tokens", "slot"]);
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    if (body["tokens"] !== undefined) {
      if (body["token"] !== undefined) fail("token", "give `token` or `tokens`, not both");
      if (body["slot"] !== undefined) fail("slot", "hand work to a slot one delivery at a time (`token`, not `tokens`)");
      const tokens = body["tokens"];
      if (!Array.isArray(tokens) || tokens.length === 0 || tokens.length > MAX_TOKENS) fail("tokens", `must be an array of 1-${MAX_TOKENS} delivery tokens`);
      const list = (tokens as unknown[]).map((t) => tokenField(t));
      const results = await Promise.all(
        list.map((token) =>
          runtime.ack(token).then(
            () => ({ token, ok: true }) as Json,
            (err: unknown) => {
              if (!isBatonError(err)) throw err;
              return { token, ok: false, error: { code: err.code, message: err.message } } as Json;
            },
          ),
        ),
      );
      return { results };
    }
    const token = tokenField(body["token"]);
    if (body["slot"] !== undefined) {
      // reserve -> ack -> run -> finalize: the slot takes the event over before it is acked, and
      // gives it back to the group if its holder dies before finalizing.
      const slot = body["slot"];
      if (typeof slot !== "string" || slot.length === 0 || slot.length > 400) fail("slot", "must be the token of a reservation");
      await this.slots.adopt(principal.tenant, slot as string, { group, ...(await runtime.workOf(token)) });
    }
    await runtime.ack(token);
    return { acked: true };
  }

  async nack(principal: Principal, group: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "delay", "reason"]);
    const token = tokenField(body["token"]);
    const delayMs = durationField(body["delay"], "delay", [0, 24 * 3600_000]);
    const reason = stringField(body["reason"], "reason", MAX_REASON);
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    await runtime.nack(token, reason, delayMs);
    return { nacked: true };
  }

  async term(principal: Principal, group: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "reason"]);
    const token = tokenField(body["token"]);
    const reason = stringField(body["reason"], "reason", MAX_REASON);
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    await runtime.term(token, reason);
    return { terminated: true };
  }

  async extend(principal: Principal, group: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "lease"]);
    const token = tokenField(body["token"]);
    const leaseMs = durationField(body["lease"], "lease", [100, 12 * 3600_000]);
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    const until = await runtime.extend(token, leaseMs);
    return { leaseExpiresAt: new Date(until).toISOString() };
  }

  async deadLetters(principal: Principal, group: string, fromSeq: number, limit: number): Promise<Json> {
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    const page = await readDeadLetters(this.log, principal.tenant, group, fromSeq, limit);
    if (page === undefined) return { deadLetters: [], next: fromSeq };
    return { deadLetters: page.events.map(deadLetterJson), next: page.next, firstSeq: page.firstSeq, lastSeq: page.lastSeq };
  }

  async deadLetter(principal: Principal, group: string, seq: number): Promise<Json> {
    const runtime = await this.groups.handle(principal.tenant, group);
    authorizeConsume(principal, runtime.config);
    const page = await readDeadLetters(this.log, principal.tenant, group, seq, 1);
    const letter = page?.events[0];
    if (letter === undefined || letter.seq !== seq) throw new BatonError("DEAD_LETTER_NOT_FOUND", `group ${group} has no dead letter ${seq}`);
    return deadLetterJson(letter);
  }

  async redrive(principal: Principal, group: string, raw: unknown): Promise<Json> {
    authorizeAdmin(principal, "redrive dead letters");
    const body = asBody(raw, ["from", "to", "type", "key", "limit"]);
    await this.groups.handle(principal.tenant, group);
    const result = await redrive(this.log, principal.tenant, group, {
      limit: intField(body["limit"], "limit", 1, 10_000, 1000),
      ...(body["from"] === undefined ? {} : { fromSeq: intField(body["from"], "from", 1, Number.MAX_SAFE_INTEGER, 1) }),
      ...(body["to"] === undefined ? {} : { toSeq: intField(body["to"], "to", 1, Number.MAX_SAFE_INTEGER, 1) }),
      ...(body["type"] === undefined ? {} : { type: stringField(body["type"], "type", 200)! }),
      ...(body["key"] === undefined ? {} : { key: stringField(body["key"], "key", 1000)! }),
    });
    return { ...result };
  }

  async purge(principal: Principal, group: string): Promise<Json> {
    authorizeAdmin(principal, "purge dead letters");
    await this.groups.handle(principal.tenant, group);
    return { purged: await purgeDeadLetters(this.log, principal.tenant, group) };
  }
}

/** A dead letter with its history decoded from the headers it was stored with. */
function deadLetterJson(e: StoredEvent): Json {
  const h = e.headers ?? {};
  let failures: Json;
  try {
    failures = (JSON.parse(h["baton-failures"] ?? "[]") as { attempt: number; reason: string; at: number }[]).map((f) => ({ attempt: f.attempt, reason: f.reason, at: new Date(f.at).toISOString() }));
  } catch {
    failures = [];
  }
  return {
    seq: e.seq,
    id: e.id,
    origin: { topic: h["baton-source-topic"] ?? null, seq: Number(h["baton-source-seq"] ?? 0), id: h["baton-source-id"] ?? null },
    attempts: Number(h["baton-attempts"] ?? 0),
    failures,
    deadAt: new Date(e.time).toISOString(),
    event: eventJson(e) as Json,
  };
}
