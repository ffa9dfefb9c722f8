/**
 * @module edge/auth/principal
 * Who is calling, as established by a verified token, and what they may do.
 */
import { BatonError } from "../../errors/baton-error.ts";
import { matchesAny } from "../../streams/names.ts";

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

export function authorize(principal: Principal, action: Action, topic: string): void {
  if (!can(principal, action, topic)) {
    const what = action === "admin" ? "administer topics" : `${action} to topic ${topic}`;
    throw new BatonError("FORBIDDEN", `this token may not ${what}`);
  }
}
