/**
 * @module edge/ws/protocol
 * Centrifugo client protocol v2: the reply and close codes, the decoded command, and the JSON
 * encoding's frames (the Protobuf encoding is in codec/protobuf-codec.ts). Pure: no Node APIs,
 * no session logic. See docs/protocol.md for every frame with examples.
 */

/** Reply error codes (Centrifugo's). `temporary` ones make clients retry. */
export const ReplyCodes = {
  INTERNAL: 100,
  UNAUTHORIZED: 101,
  UNKNOWN_CHANNEL: 102,
  PERMISSION_DENIED: 103,
  METHOD_NOT_FOUND: 104,
  ALREADY_SUBSCRIBED: 105,
  LIMIT_EXCEEDED: 106,
  BAD_REQUEST: 107,
  NOT_AVAILABLE: 108,
  TOKEN_EXPIRED: 109,
  EXPIRED: 110,
  TOO_MANY_REQUESTS: 111,
  UNRECOVERABLE_POSITION: 112,
} as const;

/**
 * WebSocket close codes. 3000-3499 and 4000-4499: the client reconnects; 3500-3999 and
 * 4500-4999: it does not. The reason must be non-empty plain text (not JSON) for the
 * terminal ranges to apply in centrifuge-js.
 */
export const CloseCodes = {
  SHUTDOWN: { code: 3001, reason: "shutdown" },
  INTERNAL: { code: 3004, reason: "internal server error" },
  CONNECTION_EXPIRED: { code: 3005, reason: "connection expired" },
  SLOW: { code: 3008, reason: "slow" },
  /** A server-side subscription lost its position: reconnect, and recover through connect.subs. */
  INSUFFICIENT_STATE: { code: 3010, reason: "insufficient state" },
  NO_PONG: { code: 3012, reason: "no pong" },
  TOO_MANY_REQUESTS: { code: 3013, reason: "too many requests" },
  INVALID_TOKEN: { code: 3500, reason: "invalid token" },
  BAD_REQUEST: { code: 3501, reason: "bad request" },
  STALE: { code: 3502, reason: "stale" },
  CONNECTION_LIMIT: { code: 3504, reason: "connection limit" },
  /** Baton: draining; reconnect (to another node) after the advised delay. */
  DRAINING: { code: 4000, reason: "draining" },
} as const;

export type CloseSpec = (typeof CloseCodes)[keyof typeof CloseCodes];

/** One decoded command. `method` is the first method field present. */
export interface Command {
  readonly id: number;
  readonly method: string;
  readonly params: Record<string, unknown>;
}

/**
 * One decoded command line. `invalid`: a well-formed command whose content cannot be read (a
 * Protobuf `data` that is not JSON); it is answered with a 107 error, not a close.
 */
export type DecodedLine =
  | { kind: "command"; command: Command }
  | { kind: "pong" }
  | { kind: "send"; data: unknown }
  | { kind: "invalid"; id: number; message: string };

const METHODS = [
  "connect",
  "subscribe",
  "unsubscribe",
  "publish",
  "presence",
  "presence_stats",
  "history",
  "ping",
  "send",
  "rpc",
  "refresh",
  "sub_refresh",
] as const;

/** A command's method: the first method field present and not null, in either encoding. */
export function commandMethod(obj: Record<string, unknown>): string | undefined {
  return METHODS.find((m) => obj[m] !== undefined && obj[m] !== null);
}

export class ProtocolError extends Error {}

/**
 * Splits one text frame into commands. Throws ProtocolError on anything that is not a
 * well-formed command (the session answers that with close 3501).
 */
export function decodeFrame(text: string): DecodedLine[] {
  const out: DecodedLine[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new ProtocolError("frame line is not JSON");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ProtocolError("command must be a JSON object");
    const obj = value as Record<string, unknown>;
    const id = obj["id"];
    if (id !== undefined && (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffffffff)) {
      throw new ProtocolError("command id must be a uint32");
    }
    const method = commandMethod(obj);
    if (method === undefined) {
      if (Object.keys(obj).length === 0 || (Object.keys(obj).length === 1 && id === 0)) {
        out.push({ kind: "pong" });
        continue;
      }
      throw new ProtocolError("unknown command");
    }
    const params = obj[method];
    if (typeof params !== "object" || Array.isArray(params)) throw new ProtocolError(`${method} must carry an object`);
    if (method === "send" && (id === undefined || id === 0)) {
      out.push({ kind: "send", data: (params as Record<string, unknown>)["data"] });
      continue;
    }
    if (id === undefined || id === 0) throw new ProtocolError(`${method} needs a non-zero id`);
    out.push({ kind: "command", command: { id, method, params: params as Record<string, unknown> } });
  }
  return out;
}

/** A publication as pushed and as returned in subscribe/history results. */
export interface Publication {
  data: unknown;
  offset?: number;
  tags?: Record<string, string>;
  info?: { user: string; client: string };
}

export function reply(id: number, method: string, result: unknown): string {
  return `{"id":${id},"${method}":${JSON.stringify(result)}}`;
}

export function errorReply(id: number, code: number, message: string, temporary = false): string {
  return JSON.stringify({ id, error: temporary ? { code, message, temporary } : { code, message } });
}

/** A publication push. `dataJson` is the event data already serialised (shared across sockets). */
export function pubPush(channel: string, pubJson: string): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"pub":${pubJson}}}`;
}

export function messagePush(dataJson: string): string {
  return `{"push":{"message":{"data":${dataJson}}}}`;
}

export function unsubscribePush(channel: string, code: number, reason: string): string {
  return JSON.stringify({ push: { channel, unsubscribe: { code, reason } } });
}
