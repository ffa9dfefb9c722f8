/**
 * @module streams/groups/cluster/group-leadership
 * Which node runs each consumer group: a lease per group in the StateStore (`glead/<tenant>/
 * <group>` = `{node, ttlMs}`), taken and renewed by compare-and-set, so two nodes can never
 * both hold it.
 *
 * No clock is compared across nodes. A follower takes a lease over only after it has seen the
 * same revision of the record, unchanged, for a whole ttl on its own clock; the leader stops
 * acting `stepDownMarginMs` before a ttl has passed since it *issued* its last successful
 * renewal. The follower's ttl starts after that write completed, so the two windows never
 * overlap as long as both clocks run at about the same rate (they need not agree on the time).
 */
import { isBatonError } from "../../../errors/baton-error.ts";
import type { StateStore } from "../../../engine/engine.ts";

export interface LeadershipOptions {
  readonly state: StateStore;
  readonly nodeId: string;
  /** How long a lease lasts without renewal, ms. */
  readonly ttlMs: number;
  readonly now?: () => number;
  /** This node now leads `id`: start running it. A rejection gives the lease back. */
  readonly onGain: (id: string) => Promise<void>;
  /** This node no longer leads `id` (lost or given up): stop at once. */
  readonly onLose: (id: string) => void;
  readonly onError: (err: unknown, what: string) => void;
  /**
   * Whether this node should leave a free lease (no record) to the others for now: it takes it
   * only once it has stayed free for a ttl on this node's clock, so a group always ends up led.
   */
  readonly deferFree?: (id: string) => boolean;
}

interface Lease {
  /** The revision of the record as last seen or written; 0 = no record. */
  revision: number;
  /** Local time at which `revision` was first seen (followers count the ttl from here). */
  seenAt: number;
  holder: string | undefined;
  leading: boolean;
  /** onGain was called for this leadership (so its end is reported by onLose). */
  gained: boolean;
  /** Leader: when the last successful renewal was issued. */
  renewedAt: number;
  busy: boolean;
  stepDown: NodeJS.Timeout | undefined;
}

export function leaseKey(id: string): string {
  return `glead/${id}`;
}

export class GroupLeadership {
  private readonly o: LeadershipOptions;
  private readonly now: () => number;
  private readonly leases = new Map<string, Lease>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: LeadershipOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
  }

  /** How often leases are checked and renewed. */
  get tickMs(): number {
    return Math.max(100, Math.floor(this.o.ttlMs / 5));
  }

  private get marginMs(): number {
    return Math.max(this.tickMs, Math.floor(this.o.ttlMs / 5));
  }

  start(): void {
    const loop = (): void => {
      if (this.closed) return;
      this.tick()
        .catch((err: unknown) => this.o.onError(err, "group leases"))
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(loop, this.tickMs).unref();
        });
    };
    this.timer = setTimeout(loop, 0).unref();
  }

  isLeader(id: string): boolean {
    return this.leases.get(id)?.leading === true;
  }

  /** The node that holds `id` as far as this node knows (itself included). */
  holder(id: string): string | undefined {
    return this.leases.get(id)?.holder;
  }

  /** How many groups this node leads. */
  get leading(): number {
    let n = 0;
    for (const l of this.leases.values()) if (l.leading) n += 1;
    return n;
  }

  /** Starts contending for `id` (no-op if tracked). */
  track(id: string): void {
    if (this.leases.has(id)) return;
    this.leases.set(id, { revision: -1, seenAt: this.now(), holder: undefined, leading: false, gained: false, renewedAt: 0, busy: false, stepDown: undefined });
  }

  tracked(): Iterable<string> {
    return this.leases.keys();
  }

  /**
   * Takes the lease of a group being created, before anything else of it is stored: other
   * nodes that see the new definition then find it held and wait. `prepare` runs while this
   * node holds the lease and before `onGain`; if it fails, the lease is given back and the
   * failure rethrown. Rejects CONFLICT when the lease exists (the group exists or is being
   * created elsewhere).
   */
  async claim(id: string, prepare: () => Promise<void>): Promise<void> {
    const issued = this.now();
    const revision = await this.o.state.put(leaseKey(id), this.record(), { expectRevision: 0 });
    // Renewed like any lease while `prepare` runs, which may take a while on a large pattern.
    const lease: Lease = { revision, seenAt: issued, holder: this.o.nodeId, leading: true, gained: false, renewedAt: issued, busy: false, stepDown: undefined };
    this.leases.set(id, lease);
    this.armStepDown(id, lease);
    try {
      await prepare();
    } catch (err) {
      await this.release(id);
      throw err;
    }
    if (!lease.leading) return;
    lease.gained = true;
    try {
      await this.o.onGain(id);
    } catch (err) {
      await this.release(id);
      throw err;
    }
  }

  /**
   * Stops contending for `id`; if this node leads it, it stops and deletes the lease so
   * another node can take over at once (a clean shutdown or a deleted group).
   */
  async release(id: string): Promise<void> {
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    this.leases.delete(id);
    if (!lease.leading) return;
    this.lose(id, lease);
    try {
      await this.o.state.delete(leaseKey(id), { expectRevision: lease.revision });
    } catch (err) {
      if (!(isBatonError(err) && err.code === "CONFLICT")) this.o.onError(err, `release of group lease ${id}`);
    }
  }

  /**
   * Gives up leading `id` (to balance load) but keeps contending for it: the record is deleted
   * so another node takes it at its next check. The caller has already stopped and saved what
   * it ran; onLose is called as for any end of leadership.
   */
  async giveUp(id: string): Promise<void> {
    const lease = this.leases.get(id);
    if (lease === undefined || !lease.leading) return;
    const revision = lease.revision;
    this.lose(id, lease);
    lease.revision = -1;
    lease.seenAt = this.now();
    try {
      await this.o.state.delete(leaseKey(id), { expectRevision: revision });
    } catch (err) {
      // A renewal raced it: the record stays ours but unrenewed, and the others take it after a ttl.
      if (!(isBatonError(err) && err.code === "CONFLICT")) this.o.onError(err, `hand-off of group lease ${id}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await Promise.all([...this.leases.keys()].map((id) => this.release(id)));
  }

  /** One pass over every tracked lease. */
  async tick(): Promise<void> {
    const ids = [...this.leases.keys()];
    for (let i = 0; i < ids.length; i += 64) await Promise.all(ids.slice(i, i + 64).map((id) => this.step(id)));
  }

  private async step(id: string): Promise<void> {
    const lease = this.leases.get(id);
    if (lease === undefined || lease.busy || this.closed) return;
    lease.busy = true;
    try {
      if (lease.leading) await this.renew(id, lease);
      else await this.observe(id, lease);
    } catch (err) {
      this.o.onError(err, `group lease ${id}`);
    } finally {
      lease.busy = false;
    }
  }

  private async renew(id: string, lease: Lease): Promise<void> {
    const issued = this.now();
    if (issued - lease.renewedAt < this.o.ttlMs / 3) return;
    try {
      lease.revision = await this.o.state.put(leaseKey(id), this.record(), { expectRevision: lease.revision });
      if (!lease.leading) return; // stepped down while the write was out: the next observe sorts it out
      lease.renewedAt = issued;
      this.armStepDown(id, lease);
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") {
        this.lose(id, lease);
        lease.revision = -1;
        return;
      }
      throw err; // not renewed: the step-down timer ends leadership if this goes on
    }
  }

  private async observe(id: string, lease: Lease): Promise<void> {
    const entry = await this.o.state.get(leaseKey(id));
    const now = this.now();
    if (!this.leases.has(id)) return;
    if (entry === undefined) {
      if (this.o.deferFree?.(id) === true) {
        // Seen free for a whole ttl: nobody better placed took it, so this node does.
        if (lease.revision !== 0) {
          lease.revision = 0;
          lease.seenAt = now;
          lease.holder = undefined;
          return;
        }
        if (now - lease.seenAt < this.o.ttlMs) return;
      }
      await this.acquire(id, lease, 0);
      return;
    }
    if (entry.revision !== lease.revision) {
      lease.revision = entry.revision;
      lease.seenAt = now;
      lease.holder = (entry.value as { node?: string } | null)?.node;
      return;
    }
    const ttl = Number((entry.value as { ttlMs?: number } | null)?.ttlMs ?? this.o.ttlMs);
    if (now - lease.seenAt >= ttl) await this.acquire(id, lease, entry.revision);
  }

  private async acquire(id: string, lease: Lease, expectRevision: number): Promise<void> {
    const issued = this.now();
    try {
      lease.revision = await this.o.state.put(leaseKey(id), this.record(), { expectRevision });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") {
        lease.revision = -1; // someone else was faster: read it next time
        return;
      }
      throw err;
    }
    if (!this.leases.has(id) || this.closed) {
      await this.o.state.delete(leaseKey(id), { expectRevision: lease.revision }).catch(() => undefined);
      return;
    }
    lease.leading = true;
    lease.holder = this.o.nodeId;
    lease.renewedAt = issued;
    this.armStepDown(id, lease);
    lease.gained = true;
    try {
      await this.o.onGain(id);
    } catch (err) {
      this.o.onError(err, `start of group ${id} after taking its lease`);
      this.lose(id, lease);
      await this.o.state.delete(leaseKey(id), { expectRevision: lease.revision }).catch(() => undefined);
      lease.revision = -1;
    }
  }

  /** Leadership ends by itself if no renewal succeeds in time. */
  private armStepDown(id: string, lease: Lease): void {
    if (lease.stepDown !== undefined) clearTimeout(lease.stepDown);
    const at = lease.renewedAt + this.o.ttlMs - this.marginMs;
    lease.stepDown = setTimeout(() => {
      lease.stepDown = undefined;
      if (lease.leading && this.now() >= at) {
        this.o.onError(new Error(`could not renew the lease of group ${id} in time`), "group lease");
        this.lose(id, lease);
        lease.seenAt = this.now();
      }
    }, Math.max(0, at - this.now()));
    lease.stepDown.unref();
  }

  private lose(id: string, lease: Lease): void {
    if (lease.stepDown !== undefined) clearTimeout(lease.stepDown);
    lease.stepDown = undefined;
    if (!lease.leading) return;
    lease.leading = false;
    lease.holder = undefined;
    if (lease.gained) this.o.onLose(id);
    lease.gained = false;
  }

  private record(): { node: string; ttlMs: number } {
    return { node: this.o.nodeId, ttlMs: this.o.ttlMs };
  }
}
