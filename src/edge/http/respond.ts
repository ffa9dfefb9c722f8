/**
 * @module edge/http/respond
 * The only place HTTP answers are written; errors become `{error: {code, message}}` here.
 */
import type { ServerResponse } from "node:http";
import { BatonError, isBatonError } from "../../errors/baton-error.ts";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** Maps anything thrown to a typed error; unknown errors become INTERNAL. */
export function toBatonError(err: unknown): BatonError {
  if (isBatonError(err)) return err;
  return new BatonError("INTERNAL", "internal error", { cause: err });
}

export function sendError(res: ServerResponse, error: BatonError, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { ...extraHeaders };
  if (error.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  if (error.status === 401) headers["www-authenticate"] = 'Bearer realm="baton"';
  sendJson(res, error.status, error.toJSON(), headers);
}
