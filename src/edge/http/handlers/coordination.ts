/**
 * @module edge/http/handlers/coordination
 * Reservations (`/v1/slots/:resource/...`) and idempotent effects (`/v1/effects/:key/...`) over
 * HTTP; the operations live in edge/groups/coordination-commands.ts, shared with the socket.
 */
import { BatonError } from "../../../errors/baton-error.ts";
import type { Json } from "../../../streams/event.ts";
import type { Principal } from "../../auth/principal.ts";
import type { CoordinationCommands } from "../../groups/coordination-commands.ts";
import { authenticate } from "../auth.ts";
import { parseJson, readBody } from "../body.ts";
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

type Op = (c: CoordinationCommands, principal: Principal, name: string, body: unknown) => Promise<Json>;

export const SLOT_OPS: Record<string, Op> = {
  reserve: (c, p, n, b) => c.reserve(p, n, b),
  extend: (c, p, n, b) => c.extendSlot(p, n, b),
  release: (c, p, n, b) => c.release(p, n, b),
  finalize: (c, p, n, b) => c.finalize(p, n, b),
};

export const EFFECT_OPS: Record<string, Op> = {
  begin: (c, p, n, b) => c.beginEffect(p, n, b),
  extend: (c, p, n, b) => c.extendEffect(p, n, b),
  complete: (c, p, n, b) => c.completeEffect(p, n, b),
  abandon: (c, p, n, b) => c.abandonEffect(p, n, b),
};

/** POST /v1/slots/:resource/<op> or /v1/effects/:key/<op>. */
export function coordinationOperation(op: Op, param: "resource" | "key"): (ctx: RequestContext, s: HttpServices) => Promise<void> {
  return async (ctx, s) => {
    const principal = await authenticate(ctx.req, s.verifier);
    if (!s.isReady()) throw new BatonError("UNAVAILABLE", "this node is not accepting writes (starting or draining)", { retryAfterMs: 1000 });
    const raw = await readBody(ctx.req, s.config.maxBodyBytes);
    const body = raw.length === 0 ? {} : parseJson(raw);
    sendJson(ctx.res, 200, await op(s.coordination, principal, ctx.params[param]!, body));
  };
}

export async function listSlots(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  sendJson(ctx.res, 200, await s.coordination.listSlots(principal, ctx.params["resource"]!));
}

export async function getEffect(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  sendJson(ctx.res, 200, await s.coordination.getEffect(principal, ctx.params["key"]!));
}
