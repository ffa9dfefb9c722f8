/**
 * @module edge/http/handlers/health
 * Liveness, readiness and Prometheus metrics; no authentication.
 */
import { timingSafeEqual } from "node:crypto";
import { BatonError } from "../../../errors/baton-error.ts";
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

export function healthz(ctx: RequestContext): void {
  sendJson(ctx.res, 200, { status: "ok" });
}

export function readyz(ctx: RequestContext, s: HttpServices): void {
  const ready = s.isReady();
  sendJson(ctx.res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", engine: s.engineName, ...(s.nodeId === undefined ? {} : { node: s.nodeId }) });
}

export async function metrics(ctx: RequestContext, s: HttpServices): Promise<void> {
  const text = await s.metrics.registry.metrics();
  ctx.res.writeHead(200, { "content-type": s.metrics.registry.contentType });
  ctx.res.end(text);
}

/**
 * POST /admin/drain: the admin form of SIGTERM's first half. The node reports not ready (so a
 * load balancer stops sending it traffic), refuses new sockets and moves its sockets away with
 * spread-out 4000 closes; it keeps running until it is stopped. Authorised by the operator token
 * (`BATON_OPERATOR_TOKEN`), not by tenant tokens: a node is shared by every tenant.
 */
export function drainNode(ctx: RequestContext, s: HttpServices): void {
  const expected = s.config.operatorToken;
  if (expected === undefined) throw new BatonError("FORBIDDEN", "node operations are disabled: set BATON_OPERATOR_TOKEN to enable them");
  const given = /^Bearer\s+(\S+)\s*$/i.exec(ctx.req.headers.authorization ?? "")?.[1] ?? "";
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new BatonError("UNAUTHENTICATED", "send `Authorization: Bearer <operator token>`");
  sendJson(ctx.res, 202, { draining: true, connections: s.drain() });
}
