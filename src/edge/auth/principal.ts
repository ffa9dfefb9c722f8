/**
 * @module edge/auth/principal
 * Who is calling, as established by a verified token, and what they may do.
 */
import { BatonError } from "../../errors/baton-error.ts";
import { matchesAny, matchesTokens } from "../../streams/names.ts";

export interface Principal {
  readonly tenant: string;
  /** The token's `sub`: the user or service the token was issued to. */
  readonly subject: string;
  /** Topic patterns this principal may publish to. */
  readonly publish: readonly string[];
  /** Topic patterns this principal may read and subscribe to. */
  readonly subscribe: readonly string[];
  /** May create, configure and delete the tenant's topics. */
  readonly admin: boolean;
  /** Slot resource names and effect keys this principal may use (patterns); admins may use all. */
  readonly coordinate: readonly string[];
  /** Topics every socket of this token is subscribed to at connect (server-side). */
  readonly channels: readonly string[];
  /** Token expiry, epoch ms; undefined when the token has no `exp`. */
  readonly expiresAt: number | undefined;
}

export type Action = "publish" | "subscribe" | "admin";

export function can(principal: Principal, action: Action, topic: string): boolean {
  if (action === "admin") return principal.admin;
  return matchesAny(action === "publish" ? principal.publish : principal.subscribe, topic);
}

/** What a coordination call names: a slot resource or an effect key. */
export type CoordinationTarget = "slot" | "effect";

/**
 * Slots and effects are shared by the whole tenant, and an effect's stored outcome may hold a
 * model's output, so a token uses them only where its `coordinate` claim (or admin) allows:
 * a browser token of the same tenant must not read outcomes or hold a tenant's compute slots.
 */
export function authorizeCoordination(principal: Principal, target: CoordinationTarget, name: string): void {
  if (principal.admin) return;
  for (const p of principal.coordinate) if (matchesTokens(p, name)) return;
  const what = target === "slot" ? `reserve slots of resource ${JSON.stringify(name)}` : `use effect key ${JSON.stringify(name.slice(0, 200))}`;
  throw new BatonError("FORBIDDEN", `this token may not ${what}: its "coordinate" claim does not match it`);
}

export function authorize(principal: Principal, action: Action, topic: string): void {
  if (!can(principal, action, topic)) {
    const what = action === "admin" ? "administer topics" : `${action} to topic ${topic}`;
    throw new BatonError("FORBIDDEN", `this token may not ${what}`);
  }
}
