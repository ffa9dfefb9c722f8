/**
 * @module edge/http/handlers/health
 * Liveness, readiness and Prometheus metrics; no authentication.
 */
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

export function healthz(ctx: RequestContext): void {
  sendJson(ctx.res, 200, { status: "ok" });
}

export function readyz(ctx: RequestContext, s: HttpServices): void {
  const ready = s.isReady();
  sendJson(ctx.res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", engine: s.engineName });
}

export async function metrics(ctx: RequestContext, s: HttpServices): Promise<void> {
  const text = await s.metrics.registry.metrics();
  ctx.res.writeHead(200, { "content-type": s.metrics.registry.contentType });
  ctx.res.end(text);
}
