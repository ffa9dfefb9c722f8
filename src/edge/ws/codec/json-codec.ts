/**
 * @module edge/ws/codec/json-codec
 * The protocol's JSON encoding (the default): text frames, one JSON object per line. Publications
 * are serialised once per event and shared by every socket (publications.ts).
 */
import type { EphemeralEvent } from "../../../engine/engine.ts";
import type { Json, StoredEvent } from "../../../streams/event.ts";
import { decodeFrame, errorReply, messagePush, pubPush, reply, unsubscribePush, type DecodedLine } from "../protocol.ts";
import { ephemeralPublicationFrame, ephemeralPublicationJson, publicationFrame, publicationJson } from "../publications.ts";
import { replyWithPublications } from "../replies.ts";
import type { Frame, SubscribeOutcome, WireCodec } from "./wire-codec.ts";

class JsonCodec implements WireCodec {
  readonly binary = false;
  readonly ping = "{}";

  decode(message: Buffer): DecodedLine[] {
    return decodeFrame(message.toString());
  }

  reply(id: number, method: string, result: Record<string, unknown>): Frame {
    return reply(id, method, result);
  }

  replyWithPublications(id: number, method: "subscribe" | "history", result: Record<string, unknown>, events: readonly StoredEvent[]): Frame {
    return replyWithPublications(id, method, result, events);
  }

  connectReply(id: number, result: Record<string, unknown>, subs: ReadonlyMap<string, SubscribeOutcome>): Frame {
    if (subs.size === 0) return reply(id, "connect", result);
    const out: Record<string, unknown> = {};
    for (const [channel, sub] of subs) {
      out[channel] = sub.publications.length === 0 ? sub.result : { ...sub.result, publications: sub.publications.map((e) => JSON.parse(publicationJson(e)) as unknown) };
    }
    return reply(id, "connect", { ...result, subs: out });
  }

  errorReply(id: number, code: number, message: string, temporary: boolean): Frame {
    return errorReply(id, code, message, temporary);
  }

  publication(e: StoredEvent): Frame {
    return publicationFrame(e);
  }

  ephemeralPublication(channel: string, e: EphemeralEvent): Frame {
    return channel === e.topic ? ephemeralPublicationFrame(e) : pubPush(channel, ephemeralPublicationJson(e));
  }

  message(data: Json): Frame {
    return messagePush(JSON.stringify(data));
  }

  unsubscribe(channel: string, code: number, reason: string): Frame {
    return unsubscribePush(channel, code, reason);
  }
}

export const jsonCodec: WireCodec = new JsonCodec();
