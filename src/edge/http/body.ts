/**
 * @module edge/http/body
 * Reads a request body under a byte limit. An oversize body is refused from its declared
 * Content-Length before any of it is read. A streamed (chunked) body is refused as soon as it
 * passes the limit, and never buffered: the 413 goes out at once (with `Connection: close`)
 * while the rest is read and discarded, so a client still uploading can read it (a "lingering
 * close", as nginx does), up to DISCARD_LIMIT bytes, past which the connection is cut. A
 * client that goes away mid-upload is REQUEST_ABORTED, not a server error.
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
        }
        return;
      }
      if (size > maxBytes) {
        overflowed = true;
        chunks.length = 0;
        // Answered now; this listener stays to discard the rest (bounded, see above).
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      if (!overflowed) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new BatonError("REQUEST_ABORTED", `the client closed the connection before its request body arrived (${err.message})`, { cause: err }));
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
