/**
 * @module edge/http/auth
 * Bearer-token authentication for HTTP requests.
 */
import type { IncomingMessage } from "node:http";
import { BatonError } from "../../errors/baton-error.ts";
import type { Principal } from "../auth/principal.ts";
import type { TokenVerifier } from "../auth/tokens.ts";

export async function authenticate(req: IncomingMessage, verifier: TokenVerifier): Promise<Principal> {
  const header = req.headers.authorization;
  if (header === undefined) throw new BatonError("UNAUTHENTICATED", "missing Authorization header; send `Authorization: Bearer <JWT>`");
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) throw new BatonError("UNAUTHENTICATED", "the Authorization header must be `Bearer <JWT>`");
  return verifier.verify(m[1]!);
}
