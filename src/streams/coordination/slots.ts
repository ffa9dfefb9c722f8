/**
 * @module streams/coordination/slots
 * Compute-slot reservations: at most `limit` concurrent holders of a named resource (e.g.
 * tenant + model), each with a lease that ends if the holder dies.
 *
 * Slot i of a resource is one StateStore key; a holder takes a free or expired slot with
 * compare-and-set, so two callers (on one node or, on a clustered engine, on two) can never both
 * get the last slot. A reservation can adopt the work of the delivery that asked for it (the
 * group ack carries the slot): then the event is acked at once, the slot's lease guards the run,
 * and if the holder dies before `finalize`, the sweeper hands the event back to its group (via
 * the group's redrive topic) so it is run again - the pattern reserve -> ack -> run -> finalize.
 */
import { randomBytes } from "node:crypto";
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { Appended, Json, NewEvent } from "../event.ts";
import type { EventLog, StateStore } from "../../engine/engine.ts";
import { reinject } from "../groups/dead-letters.ts";
import { DLQ_HEADERS } from "../groups/group-model.ts";

export interface Work {
  readonly group: string;
  /** Where the event lives and what it was first published as. */
  readonly topic: string;
  readonly seq: number;
  readonly origin: { readonly topic: string; readonly seq: number; readonly id: string };
}

interface SlotRecord {
  readonly token: string;
  readonly holder: string;
  readonly until: number;
  readonly work?: Work;
}

export interface SlotGrant {
  readonly token: string;
  readonly resource: string;
  readonly slot: number;
  readonly expiresAt: number;
}

export interface SlotHolding {
  readonly slot: number;
  readonly holder: string;
  readonly expiresAt: number;
  readonly work?: Work;
}

export interface SlotsOptions {
  readonly now?: () => number;
  /** Shortest pause between sweeps for expired slots, ms. Default 500. */
  readonly sweepIntervalMs?: number;
  /**
   * Longest pause between sweeps, ms. Default 5000. Between them a sweep runs when the earliest
   * lease it saw (or one this node granted or extended since) ends, so a node does not scan
   * every held slot twice a second; this bound catches slots taken on other nodes since.
   */
  readonly fullSweepIntervalMs?: number;
  /**
   * A sweep still running after this long is reported and another one starts, ms. Default
   * 30000. Sweeps are chained, so one that awaits a store call that never settles would
   * otherwise stop every later one: no expired slot freed, no work handed back. A second sweep
   * beside a stuck one is safe: hand-backs are idempotent and frees are compare-and-set.
   */
  readonly sweepTimeoutMs?: number;
  readonly onError?: (err: unknown, what: string) => void;
}

export const SLOT_LIMITS = { limit: 10_000, leaseMs: [100, 12 * 3600_000], waitMs: 60_000 } as const;
const RESOURCE = /^[A-Za-z0-9_\-:=+@.]{1,200}$/;

export function assertResourceName(name: string): string {
  if (!RESOURCE.test(name)) throw new BatonError("VALIDATION_FAILED", "resource: use 1-200 characters of [A-Za-z0-9_-:=+@.]", { details: { field: "resource" } });
  return name;
}

function slotKey(tenant: string, resource: string, slot: number): string {
  return `slot/${tenant}/${resource}/${String(slot).padStart(5, "0")}`;
}

/** `s.<slot>.<random>.<resource>`: names one holding of one slot. */
function parseToken(token: string): { slot: number; resource: string } | undefined {
  const m = /^s\.(\d{1,5})\.[0-9a-f]{16}\.(.+)$/.exec(token);
  if (m === null) return undefined;
  return { slot: Number(m[1]), resource: m[2]! };
}

export class Slots {
  private readonly state: StateStore;
  private readonly log: EventLog;
  private readonly now: () => number;
  private readonly options: SlotsOptions;
  private readonly wakers = new Map<string, Set<() => void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** When the scheduled sweep runs (local clock); Infinity while one runs. */
  private sweepAt = Infinity;
  /** The earliest lease granted or extended here while a sweep ran. */
  private pendingDeadline = Infinity;
  private sweepTick: (() => void) | undefined;
  private stopped = false;

  constructor(state: StateStore, log: EventLog, options: SlotsOptions = {}) {
    this.state = state;
    this.log = log;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.sweepAt = Infinity;
      let settled = false;
      const timeoutMs = this.options.sweepTimeoutMs ?? 30_000;
      const bound = setTimeout(() => {
        if (settled || this.stopped) return;
        settled = true;
        this.options.onError?.(new Error(`a slot sweep has not finished after ${timeoutMs} ms; starting another`), "slot sweep");
        this.schedule(this.now());
      }, timeoutMs);
      bound.unref();
      this.sweep().then(
        (r) => {
          if (settled) return;
          settled = true;
          clearTimeout(bound);
          this.schedule(r.earliest);
        },
        (err: unknown) => {
          this.options.onError?.(err, "slot sweep");
          if (settled) return;
          settled = true;
          clearTimeout(bound);
          this.schedule(this.now());
        },
      );
    };
    this.sweepTick = tick;
    this.schedule(this.now());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.sweepTimer);
    for (const set of this.wakers.values()) for (const wake of set) wake();
  }

  /** Schedules the next sweep for `deadline`, kept within [min, full] sweep intervals from now. */
  private schedule(deadline: number): void {
    const now = this.now();
    const at = Math.min(Math.max(deadline, now + (this.options.sweepIntervalMs ?? 500)), now + (this.options.fullSweepIntervalMs ?? 5000));
    this.rearm(at);
  }

  /** A lease granted or extended here ends at `until`: sweep then if that is sooner. */
  private expiresAt(until: number): void {
    // Infinity = a sweep is running; it schedules the next from what it saw, plus this one.
    if (this.sweepTick === undefined || this.stopped) return;
    if (this.sweepAt === Infinity) {
      this.pendingDeadline = Math.min(this.pendingDeadline, until);
      return;
    }
    if (until < this.sweepAt) this.rearm(Math.max(until, this.now() + 10));
  }

  private rearm(at: number): void {
    const tick = this.sweepTick;
    if (tick === undefined) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    // A few ms after the lease ends, so the sweep finds it expired.
    this.sweepTimer = setTimeout(tick, Math.max(0, at - this.now()) + 5);
    this.sweepTimer.unref();
  }

  /**
   * Takes one of `limit` slots of `resource` for `leaseMs`, waiting up to `waitMs` for one to
   * free; SLOT_UNAVAILABLE after that.
   */
  async reserve(tenant: string, resource: string, holder: string, limit: number, leaseMs: number, waitMs: number): Promise<SlotGrant> {
    const deadline = this.now() + waitMs;
    for (;;) {
      const grant = await this.tryReserve(tenant, resource, holder, limit, leaseMs);
      if (grant !== undefined) return grant;
      const left = deadline - this.now();
      if (left <= 0 || this.stopped) {
        throw new BatonError("SLOT_UNAVAILABLE", `all ${limit} slots of ${resource} are held`, { retryAfterMs: Math.min(1000, leaseMs) });
      }
      // A local release wakes us at once; a poll covers releases on other nodes and expiries.
      await this.waitForRelease(`${tenant}/${resource}`, Math.min(left, 50 + Math.random() * 200));
    }
  }

  private async tryReserve(tenant: string, resource: string, holder: string, limit: number, leaseMs: number): Promise<SlotGrant | undefined> {
    const now = this.now();
    for (let slot = 0; slot < limit; slot++) {
      const key = slotKey(tenant, resource, slot);
      const current = await this.state.get(key);
      const record = current?.value as SlotRecord | undefined;
      if (record !== undefined && (record.until > now || record.work !== undefined)) continue;
      const token = `s.${slot}.${randomBytes(8).toString("hex")}.${resource}`;
      const until = now + leaseMs;
      try {
        await this.state.put(key, { token, holder, until } as unknown as Json, { expectRevision: current?.revision ?? 0 });
        this.expiresAt(until);
        return { token, resource, slot, expiresAt: until };
      } catch (err) {
        if (isBatonError(err) && err.code === "CONFLICT") continue;
        throw err;
      }
    }
    return undefined;
  }

  private waitForRelease(id: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.wakers.get(id);
      if (set === undefined) this.wakers.set(id, (set = new Set()));
      const wake = (): void => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) this.wakers.delete(id);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      set.add(wake);
    });
  }

  private wake(tenant: string, resource: string): void {
    const set = this.wakers.get(`${tenant}/${resource}`);
    const first = set?.values().next().value;
    first?.();
  }

  /** The live record of `token`, or RESERVATION_NOT_HELD. */
  private async held(tenant: string, token: string): Promise<{ key: string; record: SlotRecord; revision: number; resource: string }> {
    const parsed = parseToken(token);
    const notHeld = new BatonError("RESERVATION_NOT_HELD", `reservation ${token.slice(0, 260)} is not held (expired, released or never granted)`);
    if (parsed === undefined) throw notHeld;
    const key = slotKey(tenant, parsed.resource, parsed.slot);
    const entry = await this.state.get(key);
    const record = entry?.value as SlotRecord | undefined;
    if (entry === undefined || record === undefined || record.token !== token || record.until <= this.now()) throw notHeld;
    return { key, record, revision: entry.revision, resource: parsed.resource };
  }

  async extend(tenant: string, token: string, leaseMs: number): Promise<number> {
    const { key, record, revision } = await this.held(tenant, token);
    const until = this.now() + leaseMs;
    await this.cas(key, { ...record, until }, revision);
    this.expiresAt(until);
    return until;
  }

  /** Binds the work of a delivery to the slot (before that delivery is acked). */
  async adopt(tenant: string, token: string, work: Work): Promise<void> {
    const { key, record, revision } = await this.held(tenant, token);
    await this.cas(key, { ...record, work }, revision);
  }

  /**
   * Frees the slot. Work it took over (`adopt`) and did not finalize goes back to its group
   * first, as when its lease runs out: a release never drops an acked event's only copy.
   */
  async release(tenant: string, token: string): Promise<void> {
    const { key, record, revision, resource } = await this.held(tenant, token);
    await this.handBack(tenant, record, "slot release");
    await this.casDelete(key, revision);
    this.wake(tenant, resource);
  }

  /**
   * Publishes the result (caused by the slot's work, stored once however often finalize runs
   * for that work) and frees the slot.
   */
  async finalize(tenant: string, token: string, topic: string, event: NewEvent): Promise<Appended> {
    const { key, record, revision, resource } = await this.held(tenant, token);
    const origin = record.work?.origin.id;
    const result: NewEvent = {
      ...event,
      ...(event.causalId === undefined && origin !== undefined ? { causalId: origin } : {}),
      idempotencyKey: event.idempotencyKey ?? `finalize:${resource}:${origin ?? token}`,
    };
    const [appended] = await this.log.append({ tenant, topic }, [result], { autoCreate: true });
    await this.casDelete(key, revision);
    this.wake(tenant, resource);
    return appended!;
  }

  async list(tenant: string, resource: string): Promise<SlotHolding[]> {
    const prefix = `slot/${tenant}/${resource}/`;
    const now = this.now();
    const out: SlotHolding[] = [];
    for (const e of await this.state.scan(prefix, { limit: SLOT_LIMITS.limit })) {
      const r = e.value as unknown as SlotRecord;
      if (r.until <= now && r.work === undefined) continue;
      out.push({ slot: Number(e.key.slice(prefix.length)), holder: r.holder, expiresAt: r.until, ...(r.work === undefined ? {} : { work: r.work }) });
    }
    return out;
  }

  /**
   * Frees expired slots; the work of an expired slot goes back to its group first. `earliest`
   * is when the first lease still held (or granted here while this ran) ends.
   */
  async sweep(): Promise<{ freed: number; earliest: number }> {
    const now = this.now();
    let freed = 0;
    let earliest = Infinity;
    this.pendingDeadline = Infinity;
    let after: string | undefined;
    for (;;) {
      const page = await this.state.scan("slot/", { limit: 500, ...(after === undefined ? {} : { after }) });
      for (const e of page) {
        const r = e.value as unknown as SlotRecord;
        if (r.until > now) {
          earliest = Math.min(earliest, r.until);
          continue;
        }
        const [, tenant, resource] = e.key.split("/") as [string, string, string];
        await this.handBack(tenant, r, "slot reclaim");
        try {
          await this.state.delete(e.key, { expectRevision: e.revision });
          freed += 1;
          this.wake(tenant, resource);
        } catch (err) {
          if (!(isBatonError(err) && err.code === "CONFLICT")) throw err;
        }
      }
      if (page.length < 500) return { freed, earliest: Math.min(earliest, this.pendingDeadline) };
      after = page[page.length - 1]!.key;
    }
  }

  /**
   * Appends the slot's work, if it took any over, to its group's redrive topic. The key is the
   * reservation's, so the sweep and a release racing it hand the event back once.
   */
  private async handBack(tenant: string, record: SlotRecord, what: string): Promise<void> {
    const work = record.work;
    if (work === undefined) return;
    const handed = await reinject(this.log, tenant, work.group, work, `reclaim:${record.token}`, DLQ_HEADERS.handbacks);
    if (!handed) this.options.onError?.(new Error(`the event ${work.topic}#${work.seq} of a slot is gone (${what})`), what);
  }

  private async cas(key: string, value: SlotRecord, revision: number): Promise<void> {
    try {
      await this.state.put(key, value as unknown as Json, { expectRevision: revision });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("RESERVATION_NOT_HELD", "the reservation changed hands while this request ran");
      throw err;
    }
  }

  private async casDelete(key: string, revision: number): Promise<void> {
    try {
      await this.state.delete(key, { expectRevision: revision });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("RESERVATION_NOT_HELD", "the reservation changed hands while this request ran");
      throw err;
    }
  }
}
