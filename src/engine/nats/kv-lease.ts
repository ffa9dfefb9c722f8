/**
 * @module engine/nats/kv-lease
 * One lease on one KV key, for work that exactly one node of a prefix should do at a time (the
 * retention sweeper). The value is `{node, ttlMs}`; it is taken and renewed by compare-and-set
 * on the key's KV revision (`kv.create`, `kv.update(key, value, revision)`), so two nodes can
 * never both write it from the same revision.
 *
 * No clock is compared across nodes (the rule of the consumer-group leader lease, which lives
 * in a layer above the engine and is not imported here):
 * - a follower takes the lease over only after it has seen the *same* KV revision, unchanged, for
 *   a whole ttl on its own clock (KV revisions are bucket-wide stream sequences, so a deleted
 *   and recreated key never shows an old revision again);
 * - the holder is `active` only until `ttlMs - margin` after it *issued* its last successful
 *   renewal. The follower's ttl starts after that write completed, so the two windows never
 *   overlap as long as both clocks run at about the same rate (they need not agree on the time);
 * - a clean `close()` deletes the key (compare-and-set), so a follower takes over at its next
 *   check (ttl/5) instead of after a ttl.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import { isKvConflict } from "./topic-records.ts";

export interface KvLeaseOptions {
  readonly kv: KV;
  readonly key: string;
  /** Written into the lease: who holds it (diagnostics). */
  readonly nodeId: string;
  /** How long a lease lasts without renewal, ms. */
  readonly ttlMs: number;
  readonly now?: () => number;
  /** A failed check or renewal (the lease keeps trying; the holder stops being active in time). */
  readonly onError?: (err: unknown) => void;
}

interface LeaseValue {
  readonly node: string;
  readonly ttlMs: number;
}

export class KvLease {
  /** The key's KV revision as last seen or written; -1 = unknown, 0 = absent. */
  private revision = -1;
  /** Local time at which `revision` was first seen (a follower counts the ttl from here). */
  private seenAt = 0;
  private holding = false;
  /** When the last successful write of the lease by this node was issued. */
  private renewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  private readonly o: KvLeaseOptions;
  private readonly now: () => number;

  constructor(options: KvLeaseOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
  }

  /** How often the lease is checked (follower) or considered for renewal (holder). */
  get tickMs(): number {
    return Math.max(100, Math.floor(this.o.ttlMs / 5));
  }

  /** The holder stops this long before a ttl has passed since its last renewal was issued. */
  private get marginMs(): number {
    return Math.max(this.tickMs, Math.floor(this.o.ttlMs / 5));
  }

  /** True while this node holds the lease and may act on it. Checked on every use: no timer needed. */
  get active(): boolean {
    return this.holding && !this.closed && this.now() < this.renewedAt + this.o.ttlMs - this.marginMs;
  }

  start(): void {
    const loop = (): void => {
      if (this.closed) return;
      this.ticking = this.tick()
        .catch((err: unknown) => this.o.onError?.(err))
        .finally(() => {
          this.ticking = undefined;
          if (!this.closed) this.timer = setTimeout(loop, this.tickMs).unref();
        });
    };
    this.timer = setTimeout(loop, 0).unref();
  }

  /** Stops contending; if this node holds the lease, deletes it so another node takes over at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (!this.holding) return;
    this.holding = false;
    try {
      await this.o.kv.delete(this.o.key, { previousSeq: this.revision });
    } catch (err) {
      if (!isKvConflict(err)) this.o.onError?.(err);
    }
  }

  /** One check: renew (holder) or watch and maybe take over (follower). */
  async tick(): Promise<void> {
    if (this.closed) return;
    if (this.holding && !this.active) {
      // Not renewed in time: stop, and from now on wait like any follower. If this node's last
      // write is still the current revision, nobody takes it for a whole ttl, this node included.
      this.holding = false;
      this.seenAt = this.now();
    }
    if (this.holding) await this.renew();
    else await this.observe();
  }

  private async renew(): Promise<void> {
    const issued = this.now();
    if (issued - this.renewedAt < this.o.ttlMs / 3) return;
    try {
      this.revision = await this.o.kv.update(this.o.key, this.value(), this.revision);
      this.renewedAt = issued;
    } catch (err) {
      if (!isKvConflict(err)) throw err; // not renewed: `active` runs out if this goes on
      // Someone else wrote the key: it is theirs. Read it on the next check.
      this.holding = false;
      this.revision = -1;
    }
  }

  private async observe(): Promise<void> {
    const entry = await this.o.kv.get(this.o.key);
    const now = this.now();
    if (this.closed) return;
    if (entry === null || entry.operation !== "PUT") {
      await this.acquire(entry);
      return;
    }
    if (entry.revision !== this.revision) {
      this.revision = entry.revision;
      this.seenAt = now;
      return;
    }
    const ttl = readValue(entry)?.ttlMs ?? this.o.ttlMs;
    if (now - this.seenAt >= ttl) await this.acquire(entry);
  }

  /** Writes the lease over `current` (absent, deleted, or seen unchanged for a ttl). */
  private async acquire(current: KvEntry | null): Promise<void> {
    const issued = this.now();
    try {
      this.revision = current === null ? await this.o.kv.create(this.o.key, this.value()) : await this.o.kv.update(this.o.key, this.value(), current.revision);
    } catch (err) {
      if (!isKvConflict(err)) throw err;
      this.revision = -1; // someone else was faster: read it next time
      return;
    }
    if (this.closed) {
      await this.o.kv.delete(this.o.key, { previousSeq: this.revision }).catch(() => undefined);
      return;
    }
    this.holding = true;
    this.renewedAt = issued;
  }

  private value(): string {
    return JSON.stringify({ node: this.o.nodeId, ttlMs: this.o.ttlMs } satisfies LeaseValue);
  }
}

function readValue(entry: KvEntry): LeaseValue | undefined {
  try {
    const v = entry.json<Partial<LeaseValue> | null>();
    const ttlMs = typeof v?.ttlMs === "number" && Number.isFinite(v.ttlMs) && v.ttlMs > 0 ? v.ttlMs : undefined;
    return ttlMs === undefined || typeof v?.node !== "string" ? undefined : { node: v.node, ttlMs };
  } catch {
    return undefined;
  }
}
