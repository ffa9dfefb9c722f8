/**
 * @module edge/ws/codec/protobuf-codec
 * The protocol's Protobuf encoding, for the SDKs that speak only it (Dart, Swift, Java) and for
 * centrifuge-js's protobuf build: binary frames, each a run of varint-length-delimited `Command`s
 * (client to server) or `Reply`s (server to client), as in client.proto. Every `data` field is
 * the event's JSON as UTF-8 bytes, so a Protobuf client sees the same payload as a JSON one, and
 * what it publishes must be JSON.
 */
import { readFileSync } from "node:fs";
import protobuf from "protobufjs";
import type { EphemeralEvent } from "../../../engine/engine.ts";
import type { Json, StoredEvent } from "../../../streams/event.ts";
import { ProtocolError, commandMethod, type Command, type DecodedLine } from "../protocol.ts";
import { durableTags, ephemeralTags } from "../publications.ts";
import type { Frame, SubscribeOutcome, WireCodec } from "./wire-codec.ts";

// keepCase: fields keep the protocol's snake_case names, the same keys as the JSON encoding, so
// the session reads one shape of command whichever codec decoded it.
const root = protobuf.parse(readFileSync(new URL("./client.proto", import.meta.url), "utf8"), { keepCase: true }).root;
const CommandType = root.lookupType("centrifugal.centrifuge.protocol.Command");
const ReplyType = root.lookupType("centrifugal.centrifuge.protocol.Reply");

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: false };

/** Methods whose `data` the session reads, as JSON. */
const JSON_DATA = new Set(["publish", "rpc", "send"]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A `data` field's bytes as the JSON value they hold; undefined when they are not JSON. */
function parseJsonBytes(bytes: Uint8Array): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(utf8.decode(bytes)) };
  } catch {
    return undefined;
  }
}

function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value ?? null));
}

function encodeReply(reply: Record<string, unknown>): Buffer {
  return ReplyType.encodeDelimited(reply).finish() as Buffer;
}

function durablePublication(e: StoredEvent): Record<string, unknown> {
  return { data: jsonBytes(e.data), offset: e.seq, tags: durableTags(e) };
}

class ProtobufCodec implements WireCodec {
  readonly binary = true;
  /** An empty Reply: its length prefix, 0. */
  readonly ping = Buffer.from([0]);
  private readonly frames = new WeakMap<object, Buffer>();

  decode(message: Buffer): DecodedLine[] {
    const out: DecodedLine[] = [];
    const reader = protobuf.Reader.create(message);
    while (reader.pos < reader.len) {
      let obj: Record<string, unknown>;
      try {
        obj = CommandType.toObject(CommandType.decodeDelimited(reader), TO_OBJECT);
      } catch (err) {
        throw new ProtocolError(`frame is not a sequence of length-delimited commands (${(err as Error).message})`);
      }
      const id = typeof obj["id"] === "number" ? obj["id"] : 0;
      const method = commandMethod(obj);
      if (method === undefined) {
        // An empty command answers the server's ping.
        if (id === 0) out.push({ kind: "pong" });
        else throw new ProtocolError("unknown command");
        continue;
      }
      const params = { ...(obj[method] as Record<string, unknown>) };
      if (JSON_DATA.has(method) && params["data"] instanceof Uint8Array) {
        const parsed = parseJsonBytes(params["data"]);
        if (parsed === undefined) {
          if (id === 0) continue; // an async message nobody reads
          out.push({ kind: "invalid", id, message: "bad request: data must be JSON (UTF-8)" });
          continue;
        }
        params["data"] = parsed.value;
      }
      if (method === "send" && id === 0) {
        out.push({ kind: "send", data: params["data"] });
        continue;
      }
      if (id === 0) throw new ProtocolError(`${method} needs a non-zero id`);
      const command: Command = { id, method, params };
      out.push({ kind: "command", command });
    }
    return out;
  }

  reply(id: number, method: string, result: Record<string, unknown>): Frame {
    const body = method === "rpc" ? { data: jsonBytes(result["data"]) } : result;
    return encodeReply({ id, [method]: body });
  }

  replyWithPublications(id: number, method: "subscribe" | "history", result: Record<string, unknown>, events: readonly StoredEvent[]): Frame {
    return encodeReply({ id, [method]: { ...result, publications: events.map(durablePublication) } });
  }

  connectReply(id: number, result: Record<string, unknown>, subs: ReadonlyMap<string, SubscribeOutcome>): Frame {
    const out: Record<string, unknown> = {};
    for (const [channel, sub] of subs) out[channel] = { ...sub.result, publications: sub.publications.map(durablePublication) };
    return encodeReply({ id, connect: { ...result, subs: out } });
  }

  errorReply(id: number, code: number, message: string, temporary: boolean): Frame {
    return encodeReply({ id, error: { code, message, temporary } });
  }

  publication(e: StoredEvent): Frame {
    let frame = this.frames.get(e);
    if (frame === undefined) {
      frame = encodeReply({ push: { channel: e.topic, pub: durablePublication(e) } });
      this.frames.set(e, frame);
    }
    return frame;
  }

  ephemeralPublication(channel: string, e: EphemeralEvent): Frame {
    const build = (): Buffer => encodeReply({ push: { channel, pub: { data: jsonBytes(e.data), tags: ephemeralTags(e) } } });
    if (channel !== e.topic) return build();
    let frame = this.frames.get(e);
    if (frame === undefined) {
      frame = build();
      this.frames.set(e, frame);
    }
    return frame;
  }

  message(data: Json): Frame {
    return encodeReply({ push: { message: { data: jsonBytes(data) } } });
  }

  unsubscribe(channel: string, code: number, reason: string): Frame {
    return encodeReply({ push: { channel, unsubscribe: { code, reason } } });
  }
}

export const protobufCodec: WireCodec = new ProtobufCodec();
