/**
 * @module edge/http/body
 * Reads a request body under a byte limit. An oversize body is refused from its declared
 * Content-Length before any of it is read. A streamed (chunked) body that passes the limit is
 * never buffered: the rest is read and discarded so the client, still uploading, can read the
 * 413 (a "lingering close", as nginx does), up to DISCARD_LIMIT bytes, past which the
 * connection is cut.
 */
import type { IncomingMessage } from "node:http";
import { BatonError } from "../../errors/baton-error.ts";

const DISCARD_LIMIT = 16 * 1024 * 1024;

export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (overflowed) {
        if (size > maxBytes + DISCARD_LIMIT) {
          cleanup();
          req.destroy();
          reject(tooLarge(maxBytes));
        }
        return;
      }
      if (size > maxBytes) {
        overflowed = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      if (overflowed) reject(tooLarge(maxBytes));
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

function tooLarge(maxBytes: number): BatonError {
  return new BatonError("PAYLOAD_TOO_LARGE", `the request body is larger than the limit of ${maxBytes} bytes`, {
    details: { maxBytes },
  });
}

/** Parses a JSON body; INVALID_JSON (with the parser's reason) when it does not parse. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new BatonError("INVALID_JSON", "the request body is empty; send a JSON document");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new BatonError("INVALID_JSON", `the request body is not valid JSON: ${(err as Error).message}`);
  }
}
