/**
 * @module edge/http/handlers/groups
 * Consumer groups over HTTP: `/v1/groups` and below. The operations themselves, their
 * validation and permissions live in edge/groups/group-commands.ts, shared with the socket RPCs.
 */
import { BatonError } from "../../../errors/baton-error.ts";
import { parseGroupConfig } from "../../../streams/groups/group-config.ts";
import { authorizeAdmin, groupInfoJson } from "../../groups/group-commands.ts";
import { authenticate } from "../auth.ts";
import { parseJson, readBody } from "../body.ts";
import { sendJson } from "../respond.ts";
import type { RequestContext } from "../router.ts";
import type { HttpServices } from "../services.ts";

async function jsonBody(ctx: RequestContext, s: HttpServices): Promise<unknown> {
  const raw = await readBody(ctx.req, s.config.maxBodyBytes);
  return raw.length === 0 ? {} : parseJson(raw);
}

function assertWritable(s: HttpServices): void {
  if (!s.isReady()) throw new BatonError("UNAVAILABLE", "this node is not accepting writes (starting or draining)", { retryAfterMs: 1000 });
}

export async function createGroup(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  authorizeAdmin(principal, "create consumer groups");
  assertWritable(s);
  const config = parseGroupConfig(principal.tenant, await jsonBody(ctx, s), Date.now());
  const info = await s.groups.create(config);
  sendJson(ctx.res, 201, groupInfoJson(info));
}

export async function listGroups(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const limitText = ctx.query.get("limit") ?? "100";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new BatonError("VALIDATION_FAILED", "limit: must be an integer in [1, 1000]", { details: { field: "limit" } });
  sendJson(ctx.res, 200, await s.groupCommands.list(principal, ctx.query.get("after") ?? undefined, limit));
}

export async function describeGroup(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  sendJson(ctx.res, 200, await s.groupCommands.describe(principal, ctx.params["group"]!));
}

export async function deleteGroup(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  authorizeAdmin(principal, "delete consumer groups");
  assertWritable(s);
  const group = ctx.params["group"]!;
  if (!(await s.groups.delete(principal.tenant, group))) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${group.slice(0, 120)}`);
  ctx.res.writeHead(204).end();
}

type Operation = "reset" | "pull" | "ack" | "nack" | "term" | "extend" | "redrive";

/** POST /v1/groups/:group/<operation> with a JSON body. */
export function groupOperation(operation: Operation): (ctx: RequestContext, s: HttpServices) => Promise<void> {
  return async (ctx, s) => {
    const principal = await authenticate(ctx.req, s.verifier);
    if (operation !== "pull") assertWritable(s);
    const body = await jsonBody(ctx, s);
    const group = ctx.params["group"]!;
    const c = s.groupCommands;
    const result = await (operation === "pull" ? c.pull(principal, group, body) : operation === "ack" ? c.ack(principal, group, body) : operation === "nack" ? c.nack(principal, group, body) : operation === "term" ? c.term(principal, group, body) : operation === "extend" ? c.extend(principal, group, body) : operation === "redrive" ? c.redrive(principal, group, body) : c.reset(principal, group, body));
    sendJson(ctx.res, 200, result);
  };
}

function seqParam(text: string | null, field: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > max) throw new BatonError("INVALID_POSITION", `${field}: must be an integer in [1, ${max}]`);
  return n;
}

export async function listDeadLetters(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const from = seqParam(ctx.query.get("from"), "from", 1);
  const limit = seqParam(ctx.query.get("limit"), "limit", 100, 1000);
  sendJson(ctx.res, 200, await s.groupCommands.deadLetters(principal, ctx.params["group"]!, from, limit));
}

export async function showDeadLetter(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  const seq = seqParam(ctx.params["seq"]!, "seq", 1);
  sendJson(ctx.res, 200, await s.groupCommands.deadLetter(principal, ctx.params["group"]!, seq));
}

export async function purgeDeadLetters(ctx: RequestContext, s: HttpServices): Promise<void> {
  const principal = await authenticate(ctx.req, s.verifier);
  assertWritable(s);
  sendJson(ctx.res, 200, await s.groupCommands.purge(principal, ctx.params["group"]!));
}
