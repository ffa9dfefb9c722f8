/**
 * @module streams/coordination/effects
 * Idempotent effects: a side effect (a model call, a charge, an e-mail) guarded by a key, so a
 * redelivered or duplicated event gets the stored outcome instead of running it again.
 *
 * `begin` claims the key with a lease (compare-and-set, so only one holder at a time, on any
 * node) or returns the outcome stored by whoever completed it; `complete` stores the outcome for
 * `ttl`; `abandon` (the effect failed) lets the next attempt claim it. A claim whose holder dies
 * expires and can be claimed again. The window it cannot close: an effect that finished but
 * whose holder died before `complete` runs again; pass the key on to the downstream system as
 * its idempotency key where it takes one.
 */
import { randomBytes } from "node:crypto";
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { StateEntry, StateStore } from "../../engine/engine.ts";
import type { Json } from "../event.ts";

type EffectRecord =
  | { readonly s: "running"; readonly token: string; readonly until: number }
  | { readonly s: "done"; readonly outcome: Json; readonly at: number; readonly expires: number };

export type BeginResult =
  | { readonly state: "claimed"; readonly token: string; readonly expiresAt: number }
  | { readonly state: "done"; readonly outcome: Json; readonly completedAt: number };

export const EFFECT_LIMITS = { keyLength: 512, ttlMs: [1000, 366 * 86_400_000], defaultTtlMs: 7 * 86_400_000 } as const;

export function assertEffectKey(key: string): string {
  let control = false;
  for (let i = 0; i < key.length && !control; i++) control = key.charCodeAt(i) < 0x20;
  if (key.length === 0 || key.length > EFFECT_LIMITS.keyLength || control) {
    throw new BatonError("VALIDATION_FAILED", `key: must be 1-${EFFECT_LIMITS.keyLength} characters without control characters`, { details: { field: "key" } });
  }
  return key;
}

function effectKey(tenant: string, key: string): string {
  return `eff/${tenant}/${key}`;
}

export class Effects {
  private readonly state: StateStore;
  private readonly now: () => number;

  constructor(state: StateStore, now: () => number = Date.now) {
    this.state = state;
    this.now = now;
  }

  async begin(tenant: string, key: string, leaseMs: number): Promise<BeginResult> {
    const k = effectKey(tenant, key);
    const entry = await this.state.get(k);
    const now = this.now();
    const r = this.live(entry, now);
    if (r?.s === "done") return { state: "done", outcome: r.outcome, completedAt: r.at };
    if (r?.s === "running") {
      throw new BatonError("EFFECT_IN_PROGRESS", `effect ${key.slice(0, 200)} is being run by another holder`, { retryAfterMs: Math.max(1, r.until - now) });
    }
    const token = randomBytes(12).toString("hex");
    const until = now + leaseMs;
    try {
      await this.state.put(k, { s: "running", token, until }, { expectRevision: entry?.revision ?? 0 });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("EFFECT_IN_PROGRESS", `effect ${key.slice(0, 200)} was claimed by another holder just now`, { retryAfterMs: 100 });
      throw err;
    }
    return { state: "claimed", token, expiresAt: until };
  }

  async extend(tenant: string, key: string, token: string, leaseMs: number): Promise<number> {
    const { entry } = await this.claimed(tenant, key, token);
    const until = this.now() + leaseMs;
    await this.cas(entry, { s: "running", token, until });
    return until;
  }

  async complete(tenant: string, key: string, token: string, outcome: Json, ttlMs: number): Promise<void> {
    const { entry } = await this.claimed(tenant, key, token);
    const now = this.now();
    await this.cas(entry, { s: "done", outcome, at: now, expires: now + ttlMs });
  }

  async abandon(tenant: string, key: string, token: string): Promise<void> {
    const { entry } = await this.claimed(tenant, key, token);
    try {
      await this.state.delete(entry.key, { expectRevision: entry.revision });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") throw notHeld(key);
      throw err;
    }
  }

  async get(tenant: string, key: string): Promise<{ state: "running"; expiresAt: number } | { state: "done"; outcome: Json; completedAt: number } | undefined> {
    const r = this.live(await this.state.get(effectKey(tenant, key)), this.now());
    if (r === undefined) return undefined;
    return r.s === "done" ? { state: "done", outcome: r.outcome, completedAt: r.at } : { state: "running", expiresAt: r.until };
  }

  /** Deletes outcomes past their ttl and claims long expired; resolves with how many. */
  async sweep(limit = 1000): Promise<number> {
    const now = this.now();
    let removed = 0;
    for (const e of await this.state.scan("eff/", { limit })) {
      if (this.live(e, now) !== undefined) continue;
      try {
        await this.state.delete(e.key, { expectRevision: e.revision });
        removed += 1;
      } catch (err) {
        if (!(isBatonError(err) && err.code === "CONFLICT")) throw err;
      }
    }
    return removed;
  }

  private live(entry: StateEntry | undefined, now: number): EffectRecord | undefined {
    const r = entry?.value as EffectRecord | undefined;
    if (r === undefined) return undefined;
    if (r.s === "done") return r.expires > now ? r : undefined;
    return r.until > now ? r : undefined;
  }

  private async claimed(tenant: string, key: string, token: string): Promise<{ entry: StateEntry }> {
    const entry = await this.state.get(effectKey(tenant, key));
    const r = this.live(entry, this.now());
    if (entry === undefined || r?.s !== "running" || r.token !== token) throw notHeld(key);
    return { entry };
  }

  private async cas(entry: StateEntry, value: Json): Promise<void> {
    try {
      await this.state.put(entry.key, value, { expectRevision: entry.revision });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("RESERVATION_NOT_HELD", "the effect claim changed hands while this request ran");
      throw err;
    }
  }
}

function notHeld(key: string): BatonError {
  return new BatonError("RESERVATION_NOT_HELD", `no live claim on effect ${key.slice(0, 200)} with this token (it expired, completed or was abandoned)`);
}
