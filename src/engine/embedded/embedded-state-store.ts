/**
 * @module engine/embedded/embedded-state-store
 * The StateStore on LMDB: one table of key -> [revision, value].
 *
 * The process owns its data dir, so compare-and-set is a synchronous read, compare and write in
 * one event turn: nothing else can run in between. lmdb-js shows a write to readers only once
 * its transaction commits, so writes not yet committed are kept in `unsettled` and reads look
 * there first; otherwise two quick writes of one key would read the same stale revision. Writes
 * join the same group commit as appends and resolve once flushed.
 */
import type { Database } from "lmdb";
import { BatonError } from "../../errors/baton-error.ts";
import type { Json } from "../../streams/event.ts";
import type { StateEntry, StateStore, StateWriteOptions } from "../engine.ts";

/** Stored form: [revision, value]. */
export type StateRecord = [number, Json];

type WritePromise = Promise<unknown> & { flushed?: Promise<unknown> };

interface Unsettled {
  /** undefined = deleted. */
  record: StateRecord | undefined;
  /** Writes of this key not yet durable; the entry goes when it reaches 0. */
  writes: number;
}

export interface EmbeddedStateStoreOptions {
  /** Called once when a write fails; the store then refuses writes, like the event log. */
  readonly onFailure?: (err: unknown) => void;
}

export class EmbeddedStateStore implements StateStore {
  private readonly unsettled = new Map<string, Unsettled>();
  private readonly inflight = new Set<Promise<unknown>>();
  private failure: unknown = undefined;
  private closed = false;
  private readonly db: Database<StateRecord, string>;
  private readonly options: EmbeddedStateStoreOptions;

  constructor(db: Database<StateRecord, string>, options: EmbeddedStateStoreOptions = {}) {
    this.db = db;
    this.options = options;
  }

  get(key: string): Promise<StateEntry | undefined> {
    const record = this.current(key);
    return Promise.resolve(record === undefined ? undefined : { key, revision: record[0], value: record[1] });
  }

  put(key: string, value: Json, options: StateWriteOptions = {}): Promise<number> {
    try {
      this.assertWritable();
      const current = this.current(key);
      this.check(key, current, options);
      const revision = (current?.[0] ?? 0) + 1;
      const record: StateRecord = [revision, value];
      return this.track(key, record, this.db.put(key, record) as WritePromise).then(() => revision);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  delete(key: string, options: StateWriteOptions = {}): Promise<boolean> {
    try {
      this.assertWritable();
      const current = this.current(key);
      this.check(key, current, options);
      if (current === undefined) return Promise.resolve(false);
      return this.track(key, undefined, this.db.remove(key) as WritePromise).then(() => true);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  scan(prefix: string, options: { readonly after?: string; readonly limit: number }): Promise<StateEntry[]> {
    const out: StateEntry[] = [];
    const start = options.after !== undefined && options.after >= prefix ? options.after : prefix;
    // Committed entries, merged with writes still in flight (which readers cannot see yet).
    const seen = new Set<string>();
    for (const { key } of this.db.getRange({ start, end: `${prefix}\uffff` })) {
      if (out.length >= options.limit) break;
      if (options.after !== undefined && key <= options.after) continue;
      seen.add(key);
      const record = this.current(key);
      if (record !== undefined) out.push({ key, revision: record[0], value: record[1] });
    }
    for (const [key, u] of this.unsettled) {
      if (seen.has(key) || u.record === undefined || !key.startsWith(prefix)) continue;
      if (options.after !== undefined && key <= options.after) continue;
      out.push({ key, revision: u.record[0], value: u.record[1] });
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return Promise.resolve(out.slice(0, options.limit));
  }

  get healthy(): boolean {
    return this.failure === undefined;
  }

  /** Resolves when every write issued so far is durable (or failed). */
  async settle(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
  }

  private current(key: string): StateRecord | undefined {
    const u = this.unsettled.get(key);
    if (u !== undefined) return u.record;
    return this.db.get(key);
  }

  private check(key: string, current: StateRecord | undefined, options: StateWriteOptions): void {
    if (options.expectRevision === undefined) return;
    const revision = current?.[0] ?? 0;
    if (revision !== options.expectRevision) {
      throw new BatonError("CONFLICT", `state ${key} is at revision ${revision}, not ${options.expectRevision}`, { details: { revision } });
    }
  }

  private assertWritable(): void {
    if (this.closed) throw new BatonError("UNAVAILABLE", "the server is shutting down", { retryAfterMs: 1000 });
    if (this.failure !== undefined) throw new BatonError("UNAVAILABLE", "a storage write failed; this node accepts no writes until it is restarted", { cause: this.failure });
  }

  private track(key: string, record: StateRecord | undefined, write: WritePromise): Promise<void> {
    let u = this.unsettled.get(key);
    if (u === undefined) {
      u = { record, writes: 0 };
      this.unsettled.set(key, u);
    }
    u.record = record;
    u.writes += 1;
    const entry = u;
    const durable = (async () => {
      try {
        await write;
        await write.flushed;
      } catch (err) {
        if (this.failure === undefined) {
          this.failure = err;
          this.options.onFailure?.(err);
        }
        throw new BatonError("INTERNAL", "the storage write failed", { cause: err });
      } finally {
        entry.writes -= 1;
        if (entry.writes === 0 && this.unsettled.get(key) === entry) this.unsettled.delete(key);
      }
    })();
    this.inflight.add(durable);
    void durable.then(
      () => this.inflight.delete(durable),
      () => this.inflight.delete(durable),
    );
    return durable;
  }
}
