/**
 * @module edge/ws/socket-publish
 * A publish over the socket (the `publish` command and the `baton.publish` RPC): validation,
 * the fast path, the durable append, and storage errors as reply codes.
 */
import type { EphemeralEvent } from "../../engine/engine.ts";
import { isBatonError } from "../../errors/baton-error.ts";
import type { Json, TopicRef } from "../../streams/event.ts";
import { newEventId } from "../../streams/ids.ts";
import { isValidTopicName } from "../../streams/names.ts";
import { LIMITS, nestsDeeperThan } from "../../streams/publish-request.ts";
import { can, type Principal } from "../auth/principal.ts";
import type { SessionServices } from "./client-session.ts";
import { ReplyCodes } from "./protocol.ts";

export type Outcome = { result: Record<string, unknown> } | { error: number; message: string; temporary?: boolean };

/** Validates and performs a socket publish request; a durable one resolves once durable. */
export async function publishFromSocket(
  s: SessionServices,
  p: Record<string, unknown>,
  principal: Principal,
): Promise<Outcome> {
  const channel = p["channel"];
  if (typeof channel !== "string" || !isValidTopicName(channel)) return { error: ReplyCodes.UNKNOWN_CHANNEL, message: "unknown channel" };
  if (!can(principal, "publish", channel)) return { error: ReplyCodes.PERMISSION_DENIED, message: "permission denied" };
  if (!("data" in p)) return { error: ReplyCodes.BAD_REQUEST, message: "bad request: data is required" };
  if (nestsDeeperThan(p["data"], LIMITS.dataDepth)) return { error: ReplyCodes.BAD_REQUEST, message: `bad request: data nests deeper than ${LIMITS.dataDepth} levels` };
  const idem = p["idempotency_key"];
  if (idem !== undefined && (typeof idem !== "string" || idem.length === 0 || idem.length > LIMITS.idempotencyKeyLength)) {
    return { error: ReplyCodes.BAD_REQUEST, message: "bad request: idempotency_key must be a string of 1-256 characters" };
  }
  if (!s.acceptsWrites()) return { error: ReplyCodes.INTERNAL, message: "this node is not accepting writes (draining); retry", temporary: true };
  const ref: TopicRef = { tenant: principal.tenant, topic: channel };
  const data = p["data"] as Json;
  if (p["ephemeral"] === true) {
    if (idem !== undefined) return { error: ReplyCodes.BAD_REQUEST, message: "bad request: an ephemeral publication is never stored, so it takes no idempotency_key" };
    const event: EphemeralEvent = { id: newEventId(), topic: channel, data, time: Date.now() };
    s.broker.publishEphemeral(ref, event);
    return { result: { event_id: event.id } };
  }
  try {
    const started = performance.now();
    const [r] = await s.log.append(ref, [{ data, ...(idem === undefined ? {} : { idempotencyKey: idem }) }], { autoCreate: s.autoCreateTopics });
    s.onAppended(r!.duplicate, (performance.now() - started) / 1000);
    return { result: { event_id: r!.id, offset: r!.seq, ...(r!.duplicate ? { duplicate: true } : {}) } };
  } catch (err) {
    return failureOutcome(err);
  }
}

/** A storage error as a reply error (OVERLOADED and UNAVAILABLE are temporary). */
function failureOutcome(err: unknown): Outcome {
  if (!isBatonError(err)) throw err;
  switch (err.code) {
    case "OVERLOADED":
      return { error: ReplyCodes.TOO_MANY_REQUESTS, message: err.message, temporary: true };
    case "UNAVAILABLE":
    case "INTERNAL":
      return { error: ReplyCodes.INTERNAL, message: err.message, temporary: true };
    case "TOPIC_NOT_FOUND":
      return { error: ReplyCodes.UNKNOWN_CHANNEL, message: "unknown channel" };
    default:
      return { error: ReplyCodes.BAD_REQUEST, message: `bad request: ${err.message}` };
  }
}
