/**
 * @module engine/nats/topic-records
 * Topic records in a KV bucket, one key per topic (`<tenant hex>.<topic hex>`): epoch,
 * retention, creation time and the retention trim point. The position (last sequence, time,
 * bytes) is not here: the topic's last message carries it, so appends never write the record.
 * The bucket also holds the retention sweeper's lease under the key `sweeper` (see
 * NatsEngine), which is not of that form.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import type { Retention } from "../../streams/event.ts";
import { fromHexToken, hexToken } from "./names.ts";

export interface TopicRecord {
  readonly epoch: string;
  readonly createdAt: number;
  readonly retention: Retention;
  /** Lowest sequence not reclaimed by retention (1 until the sweeper trims). */
  readonly firstSeq: number;
  /** Cumulative body bytes before `firstSeq` (see BatchHead.bytes). */
  readonly bytesBefore: number;
  /**
   * Set by a retention trim: no event kept then was older than this (ms), nor is any appended
   * since. With `createdAt` it tells the sweeper when an age limit can next reclaim anything.
   */
  readonly keptSince?: number;
  /** Set while a delete purges the history; the record goes last. */
  readonly deleting?: true;
}

export interface StoredTopicRecord {
  readonly record: TopicRecord;
  readonly revision: number;
}

export class TopicRecords {
  private readonly kv: KV;

  constructor(kv: KV) {
    this.kv = kv;
  }

  async get(tenant: string, topic: string): Promise<StoredTopicRecord | undefined> {
    return toStored(await this.kv.get(recordKey(tenant, topic)));
  }

  /** Creates the record; resolves undefined if one exists (also one being deleted). */
  async create(tenant: string, topic: string, record: TopicRecord): Promise<number | undefined> {
    try {
      return await this.kv.create(recordKey(tenant, topic), JSON.stringify(record));
    } catch (err) {
      if (isKvConflict(err)) return undefined;
      throw err;
    }
  }

  /** Compare-and-set on the record's revision; resolves undefined on conflict. */
  async update(tenant: string, topic: string, record: TopicRecord, revision: number): Promise<number | undefined> {
    try {
      return await this.kv.update(recordKey(tenant, topic), JSON.stringify(record), revision);
    } catch (err) {
      if (isKvConflict(err)) return undefined;
      throw err;
    }
  }

  async remove(tenant: string, topic: string, revision: number): Promise<boolean> {
    try {
      await this.kv.delete(recordKey(tenant, topic), { previousSeq: revision });
      return true;
    } catch (err) {
      if (isKvConflict(err)) return false;
      throw err;
    }
  }

  /** Names of a tenant's topics (unsorted; deleted ones excluded by the KV listing). */
  async names(tenant: string): Promise<string[]> {
    const out: string[] = [];
    for await (const key of await this.kv.keys(`${hexToken(tenant)}.*`)) out.push(fromHexToken(key.slice(key.indexOf(".") + 1)));
    return out;
  }
}

function recordKey(tenant: string, topic: string): string {
  return `${hexToken(tenant)}.${hexToken(topic)}`;
}

function toStored(entry: KvEntry | null): StoredTopicRecord | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  return { record: entry.json<TopicRecord>(), revision: entry.revision };
}

/** A KV create/update/delete refused because the key's revision was not the expected one. */
export function isKvConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e === undefined || e === null) return false;
  if (e.code === 10071) return true;
  return typeof e.message === "string" && /wrong last sequence|key exists/i.test(e.message);
}
