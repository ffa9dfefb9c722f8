/**
 * @module engine/nats/nats-state-store
 * The StateStore on a KV bucket.
 *
 * Revisions are per key, as the contract and its suite define them (1 on creation, +1 per
 * write, 0 when absent): the stored value is `{r, v}`. The KV revision (a bucket-wide stream
 * sequence) is what makes compare-and-set atomic across nodes: a write reads the entry, checks
 * `r` against `expectRevision`, and writes with `kv.update(key, ..., kvRevision)` (or
 * `kv.create` when absent), which JetStream refuses if anyone wrote the key in between. An
 * unconditional put retries that loop; a conditional one answers CONFLICT.
 *
 * KV keys allow only `[-/_=.A-Za-z0-9]`, so a key is stored as its `/`-separated segments,
 * hex-encoded, joined by `.`: `scan(prefix)` lists only the subtree of the prefix's complete
 * segments (a KV key filter) and sorts the decoded keys, as KV listing order is not key order.
 * Writes not yet acknowledged are kept in memory and merged into scans, as the contract asks.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import { BatonError } from "../../errors/baton-error.ts";
import type { Json } from "../../streams/event.ts";
import type { StateEntry, StateStore, StateWriteOptions } from "../engine.ts";
import { isKvConflict } from "./topic-records.ts";

interface Stored {
  readonly r: number;
  readonly v: Json;
}

interface Unsettled {
  /** undefined = being deleted. */
  entry: StateEntry | undefined;
  writes: number;
}

export class NatsStateStore implements StateStore {
  private readonly unsettled = new Map<string, Unsettled>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Per key, the tail of the writes issued here, so they reach the bucket in issue order. */
  private readonly tails = new Map<string, Promise<unknown>>();
  private closed = false;
  private readonly kv: KV;

  constructor(kv: KV) {
    this.kv = kv;
  }

  async get(key: string): Promise<StateEntry | undefined> {
    const current = await this.read(key);
    return current === undefined ? undefined : { key, value: current.stored.v, revision: current.stored.r };
  }

  put(key: string, value: Json, options: StateWriteOptions = {}): Promise<number> {
    return this.write(key, { key, value, revision: 0 }, () =>
      this.cas(key, options.expectRevision, async (current) => {
        const r = (current?.stored.r ?? 0) + 1;
        const body = JSON.stringify({ r, v: value } satisfies Stored);
        if (current === undefined) await this.kv.create(encodeKey(key), body);
        else await this.kv.update(encodeKey(key), body, current.kvRevision);
        return r;
      }),
    );
  }

  delete(key: string, options: StateWriteOptions = {}): Promise<boolean> {
    return this.write(key, undefined, () =>
      this.cas(key, options.expectRevision, async (current) => {
        if (current === undefined) return false;
        await this.kv.delete(encodeKey(key), { previousSeq: current.kvRevision });
        return true;
      }),
    );
  }

  async scan(prefix: string, options: { readonly after?: string; readonly limit: number }): Promise<StateEntry[]> {
    const cut = prefix.lastIndexOf("/");
    const filter = cut < 0 ? ">" : `${encodeKey(prefix.slice(0, cut))}.>`;
    const keys: string[] = [];
    for await (const k of await this.kv.keys(filter)) {
      const key = decodeKey(k);
      if (key.startsWith(prefix) && (options.after === undefined || key > options.after)) keys.push(key);
    }
    for (const [key, u] of this.unsettled) {
      if (u.entry !== undefined && key.startsWith(prefix) && (options.after === undefined || key > options.after) && !keys.includes(key)) keys.push(key);
    }
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: StateEntry[] = [];
    for (let i = 0; i < keys.length && out.length < options.limit; i += options.limit) {
      const page = await Promise.all(
        keys.slice(i, i + options.limit).map(async (key) => {
          const u = this.unsettled.get(key);
          if (u !== undefined) return u.entry;
          return this.get(key);
        }),
      );
      for (const e of page) if (e !== undefined && out.length < options.limit) out.push(e);
    }
    return out;
  }

  /** Stops writes and waits for those in flight. */
  async settle(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
  }

  private async read(key: string): Promise<{ stored: Stored; kvRevision: number } | undefined> {
    return toCurrent(await this.kv.get(encodeKey(key)));
  }

  /** Read, check, conditional write; an unconditional write retries when it loses a race. */
  private async cas<T>(key: string, expect: number | undefined, write: (current: { stored: Stored; kvRevision: number } | undefined) => Promise<T>): Promise<T> {
    for (;;) {
      const current = await this.read(key);
      const revision = current?.stored.r ?? 0;
      if (expect !== undefined && revision !== expect) {
        throw new BatonError("CONFLICT", `state ${key} is at revision ${revision}, not ${expect}`, { details: { revision } });
      }
      try {
        return await write(current);
      } catch (err) {
        if (!isKvConflict(err)) throw new BatonError("UNAVAILABLE", "the state write was not acknowledged", { cause: err, retryAfterMs: 1000 });
        if (expect !== undefined) {
          throw new BatonError("CONFLICT", `state ${key} changed concurrently`, { details: { revision: expect } });
        }
      }
    }
  }

  /** Runs a write after the earlier writes of the key issued here, tracking it for scans and close. */
  private write<T>(key: string, pending: StateEntry | undefined, run: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new BatonError("UNAVAILABLE", "the server is shutting down", { retryAfterMs: 1000 }));
    let u = this.unsettled.get(key);
    if (u === undefined) {
      u = { entry: pending, writes: 0 };
      this.unsettled.set(key, u);
    }
    u.entry = pending;
    u.writes += 1;
    const entry = u;
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(run, run);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
      entry.writes -= 1;
      if (entry.writes === 0 && this.unsettled.get(key) === entry) this.unsettled.delete(key);
    });
    this.inflight.add(tail);
    void tail.then(() => this.inflight.delete(tail));
    return result;
  }
}

/** Reversible, KV-safe: `/`-separated segments, each hex (empty = "_"), joined by `.`. */
export function encodeKey(key: string): string {
  return key
    .split("/")
    .map((s) => (s === "" ? "_" : Buffer.from(s, "utf8").toString("hex")))
    .join(".");
}

export function decodeKey(encoded: string): string {
  return encoded
    .split(".")
    .map((s) => (s === "_" ? "" : Buffer.from(s, "hex").toString("utf8")))
    .join("/");
}

function toCurrent(entry: KvEntry | null): { stored: Stored; kvRevision: number } | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  return { stored: entry.json<Stored>(), kvRevision: entry.revision };
}
