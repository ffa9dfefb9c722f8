/**
 * @module engine/nats/topic-catalog
 * The topic records with a retention limit, kept in memory by a watch on the topics bucket, for
 * the node that sweeps. Loading them costs one pass over the bucket (an ordered consumer: about
 * 5–10 µs of node and of nats-server CPU per record, against ~150 µs each for a KV get); after
 * that the watch brings only changes (topics created, trimmed, deleted), so a sweep pass walks
 * memory instead of the bucket. Records with no limit are not kept. Only the active sweeper
 * runs one; it stops (and forgets everything) when the node loses the sweeper lease.
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/transport-node";
import type { Retention, TopicRef } from "../../streams/event.ts";
import { fromHexToken } from "./names.ts";
import type { TopicRecord } from "./topic-records.ts";

export interface CatalogEntry<M> {
  /** The record's KV key. */
  readonly key: string;
  revision: number;
  record: TopicRecord;
  /** What the sweeper learnt about the topic (its own bookkeeping; survives record updates). */
  memo: M | undefined;
}

export class TopicCatalog<M> {
  /** KV key -> entry, for every topic record whose retention has a limit. */
  readonly entries = new Map<string, CatalogEntry<M>>();
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private starting: Promise<void> | undefined;
  /** Highest KV revision applied. */
  private seen = 0;
  private waiters: { target: number; wake: () => void }[] = [];
  private readonly kv: KV;

  constructor(kv: KV) {
    this.kv = kv;
  }

  get running(): boolean {
    return this.watcher !== undefined;
  }

  /**
   * Starts following the bucket if it is not yet, then waits until everything written to it
   * before this call is applied. Rejects (and stops following) if that takes over `timeoutMs`.
   */
  async sync(timeoutMs = 15_000): Promise<void> {
    if (this.watcher === undefined) await (this.starting ??= this.start().finally(() => (this.starting = undefined)));
    const target = (await this.kv.status()).streamInfo.state.last_seq;
    if (this.seen >= target) return;
    const reached = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push({
        target,
        wake: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
    if (!reached || this.seen < target) {
      this.stop();
      throw new Error(`the topic catalog did not reach revision ${target} (at ${this.seen})`);
    }
  }

  /** Stops following the bucket and forgets its records. */
  stop(): void {
    const w = this.watcher;
    this.watcher = undefined;
    this.entries.clear();
    this.seen = 0;
    w?.stop();
    this.wake(true);
  }

  private async start(): Promise<void> {
    this.entries.clear();
    this.seen = 0;
    const w = await this.kv.watch({ key: ">" });
    this.watcher = w;
    void (async () => {
      try {
        for await (const e of w) this.apply(e);
      } catch {
        // The watch failed: the next sync() starts a new one.
      } finally {
        if (this.watcher === w) this.stop();
      }
    })();
  }

  private apply(e: KvWatchEntry): void {
    if (e.revision > this.seen) this.seen = e.revision;
    if (isRecordKey(e.key)) {
      const record = e.operation === "PUT" ? parseRecord(e) : undefined;
      const r = record?.retention;
      if (record === undefined || r === undefined || !(r.maxAgeMs > 0 || r.maxEvents > 0 || r.maxBytes > 0)) {
        this.entries.delete(e.key);
      } else {
        const entry = this.entries.get(e.key);
        if (entry === undefined) this.entries.set(e.key, { key: e.key, revision: e.revision, record, memo: undefined });
        else if (e.revision > entry.revision) {
          entry.revision = e.revision;
          entry.record = record;
        }
      }
    }
    if (this.waiters.length > 0) this.wake(false);
  }

  private wake(all: boolean): void {
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (all || this.seen >= w.target) w.wake();
      else keep.push(w);
    }
    this.waiters = keep;
  }
}

const HEX_TOKEN = /^(?:_|(?:[0-9a-f]{2})+)$/;

/** Topic record keys are `<hex tenant>.<hex topic>`; anything else in the bucket (the sweeper lease) is not one. */
function isRecordKey(key: string): boolean {
  const dot = key.indexOf(".");
  return dot > 0 && key.indexOf(".", dot + 1) < 0 && HEX_TOKEN.test(key.slice(0, dot)) && HEX_TOKEN.test(key.slice(dot + 1));
}

/** The topic a record key names. */
export function refOfKey(key: string): TopicRef {
  const dot = key.indexOf(".");
  return { tenant: fromHexToken(key.slice(0, dot)), topic: fromHexToken(key.slice(dot + 1)) };
}

/** Most topics share a few retentions (the default above all): one object each, not one per record. */
const retentions = new Map<string, Retention>();

function parseRecord(e: KvWatchEntry): TopicRecord | undefined {
  let record: TopicRecord;
  try {
    record = e.json<TopicRecord>();
  } catch {
    return undefined;
  }
  const r = record.retention as Retention | undefined;
  if (r === undefined) return record;
  const id = `${r.maxAgeMs}/${r.maxEvents}/${r.maxBytes}`;
  let shared = retentions.get(id);
  if (shared === undefined) {
    shared = { maxAgeMs: r.maxAgeMs, maxEvents: r.maxEvents, maxBytes: r.maxBytes };
    if (retentions.size < 1000) retentions.set(id, shared);
  }
  return { ...record, retention: shared };
}
