/**
 * @module edge/http/auth
 * Bearer-token authentication for HTTP requests.
 */
import type { IncomingMessage } from "node:http";
import { BatonError } from "../../errors/baton-error.ts";
import type { Principal } from "../auth/principal.ts";
import type { TokenVerifier } from "../auth/tokens.ts";

/** The tenant each authenticated request acts for, so its error answers are counted per tenant. */
const tenants = new WeakMap<IncomingMessage, string>();

export async function authenticate(req: IncomingMessage, verifier: TokenVerifier): Promise<Principal> {
  const header = req.headers.authorization;
  if (header === undefined) throw new BatonError("UNAUTHENTICATED", "missing Authorization header; send `Authorization: Bearer <JWT>`");
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) throw new BatonError("UNAUTHENTICATED", "the Authorization header must be `Bearer <JWT>`");
  const principal = await verifier.verify(m[1]!);
  tenants.set(req, principal.tenant);
  return principal;
}

/** The tenant of `req`'s verified token; empty before (or without) authentication. */
export function requestTenant(req: IncomingMessage): string {
  return tenants.get(req) ?? "";
}
