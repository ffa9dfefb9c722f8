/**
 * @module edge/ws/socket-groups
 * Consumer groups over the socket: the `baton.group.*` RPC methods, and the pushes that hand a
 * socket member its deliveries. Requests, permissions and answers are those of the HTTP API
 * (edge/groups/group-commands.ts); only the framing differs. A socket can be a member of several
 * groups; when it closes, it stops receiving, and what it held stays leased until acked (from
 * any connection: a worker that reconnects can still ack) or until its lease ends.
 */
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { Json } from "../../streams/event.ts";
import type { Delivery } from "../../streams/groups/group-model.ts";
import type { Principal } from "../auth/principal.ts";
import { deliveryJson, type GroupCommands } from "../groups/group-commands.ts";
import type { CoordinationCommands } from "../groups/coordination-commands.ts";
import { ReplyCodes } from "./protocol.ts";

const GROUP_METHODS = ["consume", "stop", "ack", "nack", "term", "extend", "describe"];
const SLOT_METHODS = ["reserve", "extend", "release", "finalize", "list"];
const EFFECT_METHODS = ["begin", "extend", "complete", "abandon", "get"];

/** Every `baton.*` RPC method this module answers. */
export const SOCKET_RPC_METHODS = new Set([
  ...GROUP_METHODS.map((m) => `baton.group.${m}`),
  ...SLOT_METHODS.map((m) => `baton.slot.${m}`),
  ...EFFECT_METHODS.map((m) => `baton.effect.${m}`),
]);

export type RpcOutcome = { result: Json } | { error: number; message: string; temporary?: boolean };

/** Reply code for a Baton error on a `baton.*` RPC; the message always starts with the Baton code. */
export function rpcError(err: BatonError): { error: number; message: string; temporary?: boolean } {
  const message = `${err.code}: ${err.message}`;
  const temporary = err.retryable ? { temporary: true } : {};
  switch (err.code) {
    case "VALIDATION_FAILED":
    case "INVALID_JSON":
      return { error: ReplyCodes.BAD_REQUEST, message };
    case "FORBIDDEN":
      return { error: ReplyCodes.PERMISSION_DENIED, message };
    case "OVERLOADED":
      return { error: ReplyCodes.TOO_MANY_REQUESTS, message, temporary: true };
    case "INTERNAL":
    case "UNAVAILABLE":
      return { error: ReplyCodes.INTERNAL, message, temporary: true };
    default:
      // Application errors: 1000 + the HTTP status (1404 GROUP_NOT_FOUND, 1409 DELIVERY_NOT_HELD...).
      return { error: 1000 + err.status, message, ...temporary };
  }
}

/** Enough for ack, a few lease extensions, reserve, finalize and an effect's begin and complete. */
const CREDIT_PER_DELIVERY = 8;
const MAX_CREDIT = 100_000;

export class SocketGroups {
  private readonly members = new Map<string, () => void>();
  private readonly commands: GroupCommands;
  private readonly coordination: CoordinationCommands;
  private readonly sessionId: string;
  private readonly push: (data: Json) => void;
  private disposed = false;
  /** Commands this socket may still send free of its rate limit, earned by deliveries (see spendCredit). */
  private credit = 0;

  /** `push` sends a `message` push to this socket (never dropped: bounded by maxInFlight). */
  constructor(commands: GroupCommands, coordination: CoordinationCommands, sessionId: string, push: (data: Json) => void) {
    this.commands = commands;
    this.coordination = coordination;
    this.sessionId = sessionId;
    this.push = push;
  }

  /**
   * Takes one command's worth of credit. A worker's settlements and coordination calls follow
   * the deliveries the server chose to hand it (bounded by its maxInFlight), so they are paid
   * for by those deliveries, not by the socket's command rate, which is sized for browsers:
   * a worker settling thousands of events a second is not throttled, and a client that was
   * handed nothing still pays for every call.
   */
  spendCredit(): boolean {
    if (this.credit < 1) return false;
    this.credit -= 1;
    return true;
  }

  async call(method: string, principal: Principal, data: unknown): Promise<RpcOutcome> {
    try {
      return { result: await this.run(method, principal, data) };
    } catch (err) {
      if (isBatonError(err)) return rpcError(err);
      throw err;
    }
  }

  /** The socket closed: stop receiving in every group. */
  dispose(): void {
    this.disposed = true;
    for (const leave of this.members.values()) leave();
    this.members.clear();
  }

  private async run(qualified: string, principal: Principal, raw: unknown): Promise<Json> {
    const body = (typeof raw === "object" && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
    const [, family, method] = qualified.split(".") as [string, string, string];
    if (family === "slot") return this.slot(method, principal, body);
    if (family === "effect") return this.effect(method, principal, body);
    const group = body["group"];
    if (typeof group !== "string") throw new BatonError("VALIDATION_FAILED", "group: is required (the consumer group's name)", { details: { field: "group" } });
    const rest = { ...body };
    delete rest["group"];
    const c = this.commands;
    switch (method) {
      case "consume":
        return this.consume(principal, group, rest);
      case "stop": {
        const leave = this.members.get(group);
        this.members.delete(group);
        leave?.();
        return { stopped: leave !== undefined };
      }
      case "ack":
        return c.ack(principal, group, rest);
      case "nack":
        return c.nack(principal, group, rest);
      case "term":
        return c.term(principal, group, rest);
      case "extend":
        return c.extend(principal, group, rest);
      default:
        return c.describe(principal, group);
    }
  }

  private slot(method: string, principal: Principal, body: Record<string, unknown>): Promise<Json> {
    const resource = body["resource"];
    if (typeof resource !== "string") throw new BatonError("VALIDATION_FAILED", "resource: is required (the reserved resource's name)", { details: { field: "resource" } });
    const rest = { ...body };
    delete rest["resource"];
    const c = this.coordination;
    switch (method) {
      case "reserve":
        return c.reserve(principal, resource, rest);
      case "extend":
        return c.extendSlot(principal, resource, rest);
      case "release":
        return c.release(principal, resource, rest);
      case "finalize":
        return c.finalize(principal, resource, rest);
      default:
        return c.listSlots(principal, resource);
    }
  }

  private effect(method: string, principal: Principal, body: Record<string, unknown>): Promise<Json> {
    const key = body["key"];
    if (typeof key !== "string") throw new BatonError("VALIDATION_FAILED", "key: is required (the effect's idempotency key)", { details: { field: "key" } });
    const rest = { ...body };
    delete rest["key"];
    const c = this.coordination;
    switch (method) {
      case "begin":
        return c.beginEffect(principal, key, rest);
      case "extend":
        return c.extendEffect(principal, key, rest);
      case "complete":
        return c.completeEffect(principal, key, rest);
      case "abandon":
        return c.abandonEffect(principal, key, rest);
      default:
        return c.getEffect(principal, key);
    }
  }

  private async consume(principal: Principal, group: string, body: Record<string, unknown>): Promise<Json> {
    const id = `ws:${this.sessionId}:${group}`;
    const sink = {
      id,
      deliver: (deliveries: Delivery[]) => {
        this.credit = Math.min(this.credit + deliveries.length * CREDIT_PER_DELIVERY, MAX_CREDIT);
        this.push({ baton: "deliveries", group, deliveries: deliveries.map(deliveryJson) });
      },
    };
    // Consuming again (e.g. after a reconnect the SDK re-sends it) only updates maxInFlight.
    this.members.get(group)?.();
    this.members.delete(group);
    const leave = await this.commands.consume(principal, group, body, sink);
    if (this.disposed) {
      leave();
      throw new BatonError("UNAVAILABLE", "the connection closed");
    }
    // Another consume of the same group may have finished while this one was out.
    this.members.get(group)?.();
    this.members.set(group, leave);
    return { member: id };
  }
}
