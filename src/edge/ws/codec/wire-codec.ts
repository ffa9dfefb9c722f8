/**
 * @module edge/ws/codec/wire-codec
 * The seam between a session and its wire encoding. Centrifugo's protocol v2 has two: JSON
 * (text frames, the default) and Protobuf (binary frames, selected with the
 * `centrifuge-protobuf` subprotocol). The session speaks in commands, results and events; a
 * codec turns them into frames and back, so the session logic is the same for both.
 */
import type { EphemeralEvent } from "../../../engine/engine.ts";
import type { Json, StoredEvent } from "../../../streams/event.ts";
import type { DecodedLine } from "../protocol.ts";

/** What a codec writes: text (a string, or UTF-8 bytes shared across sockets) or binary bytes. */
export type Frame = string | Buffer;

/** A subscription result with the publications recovered into it. */
export interface SubscribeOutcome {
  readonly result: Record<string, unknown>;
  readonly publications: readonly StoredEvent[];
}

export interface WireCodec {
  /** Frames go out (and must come in) as binary WebSocket messages. */
  readonly binary: boolean;
  /** The server's ping (the client answers with an empty command). */
  readonly ping: Frame;
  /**
   * One inbound WebSocket message as its commands. Throws ProtocolError when it is not a
   * well-formed sequence of commands (the session closes 3501).
   */
  decode(message: Buffer): DecodedLine[];
  /**
   * A command's result. `data` in an `rpc` result is a JSON value; every other field is as in the
   * JSON encoding (snake_case names).
   */
  reply(id: number, method: string, result: Record<string, unknown>): Frame;
  /** A `subscribe` or `history` result whose `publications` are `events`. */
  replyWithPublications(id: number, method: "subscribe" | "history", result: Record<string, unknown>, events: readonly StoredEvent[]): Frame;
  /** The connect result, with the server-side subscriptions (and their recovered publications). */
  connectReply(id: number, result: Record<string, unknown>, subs: ReadonlyMap<string, SubscribeOutcome>): Frame;
  errorReply(id: number, code: number, message: string, temporary: boolean): Frame;
  /** A durable event pushed on its own topic, built once per event and shared by every socket. */
  publication(e: StoredEvent): Frame;
  /** An ephemeral event pushed on `channel` (its topic, or a personal channel). */
  ephemeralPublication(channel: string, e: EphemeralEvent): Frame;
  /** The async `message` push. */
  message(data: Json): Frame;
  /** The per-channel `unsubscribe` push. */
  unsubscribe(channel: string, code: number, reason: string): Frame;
}
