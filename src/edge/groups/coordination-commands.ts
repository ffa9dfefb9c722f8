/**
 * @module edge/groups/coordination-commands
 * Reservations (compute slots) and idempotent effects as the HTTP API (`/v1/slots/...`,
 * `/v1/effects/...`) and the socket RPCs (`baton.slot.*`, `baton.effect.*`) expose them: one
 * validation, one permission check, one answer shape for both transports.
 */
import { BatonError } from "../../errors/baton-error.ts";
import type { Json } from "../../streams/event.ts";
import { assertTopicName } from "../../streams/names.ts";
import { parseEvent } from "../../streams/publish-request.ts";
import { assertEffectKey, EFFECT_LIMITS, type Effects } from "../../streams/coordination/effects.ts";
import { assertResourceName, SLOT_LIMITS, type Slots } from "../../streams/coordination/slots.ts";
import { durationField } from "../../streams/groups/group-config.ts";
import { authorize, authorizeCoordination, type Principal } from "../auth/principal.ts";
import { asBody } from "./group-commands.ts";

const iso = (ms: number): string => new Date(ms).toISOString();

function slotResource(principal: Principal, resource: string): string {
  authorizeCoordination(principal, "slot", assertResourceName(resource));
  return resource;
}

function effectKey(principal: Principal, key: string): string {
  authorizeCoordination(principal, "effect", assertEffectKey(key));
  return key;
}

function tokenOf(v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || v.length > 400) throw new BatonError("VALIDATION_FAILED", "token: is required (the token a reserve or begin answered with)", { details: { field: "token" } });
  return v;
}

function leaseOf(v: unknown, fallback: number): number {
  return durationField(v, "lease", SLOT_LIMITS.leaseMs) ?? fallback;
}

export class CoordinationCommands {
  private readonly slots: Slots;
  private readonly effects: Effects;

  constructor(slots: Slots, effects: Effects) {
    this.slots = slots;
    this.effects = effects;
  }

  async reserve(principal: Principal, resource: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["limit", "lease", "wait"]);
    slotResource(principal, resource);
    const limit = body["limit"];
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > SLOT_LIMITS.limit) {
      throw new BatonError("VALIDATION_FAILED", `limit: is required, an integer in [1, ${SLOT_LIMITS.limit}] (concurrent holders of the resource)`, { details: { field: "limit" } });
    }
    const leaseMs = leaseOf(body["lease"], 30_000);
    const waitMs = durationField(body["wait"], "wait", [0, SLOT_LIMITS.waitMs]) ?? 0;
    const g = await this.slots.reserve(principal.tenant, resource, principal.subject, limit, leaseMs, waitMs);
    return { token: g.token, resource: g.resource, slot: g.slot, expiresAt: iso(g.expiresAt) };
  }

  async extendSlot(principal: Principal, resource: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "lease"]);
    const token = this.slotToken(principal, body["token"], resource);
    return { expiresAt: iso(await this.slots.extend(principal.tenant, token, leaseOf(body["lease"], 30_000))) };
  }

  async release(principal: Principal, resource: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token"]);
    await this.slots.release(principal.tenant, this.slotToken(principal, body["token"], resource));
    return { released: true };
  }

  async finalize(principal: Principal, resource: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "topic", "event"]);
    const token = this.slotToken(principal, body["token"], resource);
    if (typeof body["topic"] !== "string") throw new BatonError("VALIDATION_FAILED", "topic: is required (where the result is published)", { details: { field: "topic" } });
    const topic = assertTopicName(body["topic"]);
    authorize(principal, "publish", topic);
    const event = parseEvent(body["event"], "event");
    const r = await this.slots.finalize(principal.tenant, token, topic, event);
    return { id: r.id, seq: r.seq, duplicate: r.duplicate, released: true };
  }

  async listSlots(principal: Principal, resource: string): Promise<Json> {
    slotResource(principal, resource);
    const held = await this.slots.list(principal.tenant, resource);
    return { resource, held: held.map((h) => ({ slot: h.slot, holder: h.holder, expiresAt: iso(h.expiresAt), ...(h.work === undefined ? {} : { work: h.work as unknown as Json }) })) };
  }

  async beginEffect(principal: Principal, key: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["lease"]);
    const r = await this.effects.begin(principal.tenant, effectKey(principal, key), leaseOf(body["lease"], 30_000));
    return r.state === "claimed" ? { state: "claimed", token: r.token, expiresAt: iso(r.expiresAt) } : { state: "done", outcome: r.outcome, completedAt: iso(r.completedAt) };
  }

  async extendEffect(principal: Principal, key: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "lease"]);
    return { expiresAt: iso(await this.effects.extend(principal.tenant, effectKey(principal, key), tokenOf(body["token"]), leaseOf(body["lease"], 30_000))) };
  }

  async completeEffect(principal: Principal, key: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token", "outcome", "ttl"]);
    if (!("outcome" in body)) throw new BatonError("VALIDATION_FAILED", "outcome: is required (any JSON value; null is fine)", { details: { field: "outcome" } });
    const ttlMs = durationField(body["ttl"], "ttl", EFFECT_LIMITS.ttlMs) ?? EFFECT_LIMITS.defaultTtlMs;
    await this.effects.complete(principal.tenant, effectKey(principal, key), tokenOf(body["token"]), body["outcome"] as Json, ttlMs);
    return { completed: true };
  }

  async abandonEffect(principal: Principal, key: string, raw: unknown): Promise<Json> {
    const body = asBody(raw, ["token"]);
    await this.effects.abandon(principal.tenant, effectKey(principal, key), tokenOf(body["token"]));
    return { abandoned: true };
  }

  async getEffect(principal: Principal, key: string): Promise<Json> {
    const r = await this.effects.get(principal.tenant, effectKey(principal, key));
    if (r === undefined) throw new BatonError("EFFECT_NOT_FOUND", `no effect ${key.slice(0, 200)} (never run, abandoned, or past its ttl)`);
    return r.state === "done" ? { state: "done", outcome: r.outcome, completedAt: iso(r.completedAt) } : { state: "running", expiresAt: iso(r.expiresAt) };
  }

  private slotToken(principal: Principal, v: unknown, resource: string): string {
    slotResource(principal, resource);
    const token = tokenOf(v);
    if (!token.endsWith(`.${resource}`)) throw new BatonError("RESERVATION_NOT_HELD", `token ${token.slice(0, 260)} is not a reservation of ${resource}`);
    return token;
  }
}
