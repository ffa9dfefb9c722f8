/**
 * @module streams/event
 * The event envelope, as published and as stored. Engine-neutral: no storage types here.
 */

/** A JSON value, as carried in `data` and parsed from request bodies. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where an event lives: a tenant's topic. The pair is the unit of order (the partition). */
export interface TopicRef {
  readonly tenant: string;
  readonly topic: string;
}

/** An event as a publisher hands it over, already validated. */
export interface NewEvent {
  readonly data: Json;
  /** Ordering scope inside the topic (e.g. a user id); consumer groups serialise per key. */
  readonly key?: string;
  readonly type?: string;
  readonly schemaVersion?: number;
  /** Id of the event that caused this one. */
  readonly causalId?: string;
  /** Time to live from publish, in milliseconds; an expired event is never delivered. */
  readonly ttlMs?: number;
  /** Same key within the dedup window => the first publish's result, nothing stored. */
  readonly idempotencyKey?: string;
  /** Free-form string headers; W3C `traceparent` / `tracestate` travel here. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** An event as stored and read back. */
export interface StoredEvent {
  /** Opaque, unique id assigned by Baton. */
  readonly id: string;
  readonly tenant: string;
  readonly topic: string;
  /** Position in the topic: gap-free, strictly increasing from 1. */
  readonly seq: number;
  readonly key?: string;
  readonly type?: string;
  readonly schemaVersion?: number;
  readonly causalId?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly data: Json;
  /** Publish time, epoch milliseconds; never decreases within a topic. */
  readonly time: number;
  /** Expiry time, epoch milliseconds, when the event had a TTL. */
  readonly expiresAt?: number;
}

/** What a publish is acknowledged with once durable. */
export interface Appended {
  readonly id: string;
  readonly seq: number;
  /** True when an earlier publish with the same idempotency key answered instead. */
  readonly duplicate: boolean;
}

/** Retention limits of one topic; whichever is reached first reclaims the oldest events. */
export interface Retention {
  /** Maximum age of an event, ms. 0 = unlimited. */
  readonly maxAgeMs: number;
  /** Maximum number of events kept. 0 = unlimited. */
  readonly maxEvents: number;
  /** Maximum stored bytes of events kept. 0 = unlimited. */
  readonly maxBytes: number;
}

/** The public description of a topic. */
export interface TopicInfo {
  readonly tenant: string;
  readonly name: string;
  /** Identity of this topic's history; changes only if history was lost (delete + recreate). */
  readonly epoch: string;
  /** Lowest sequence still stored, or lastSeq + 1 when the topic is empty. */
  readonly firstSeq: number;
  /** Highest sequence ever assigned (0 before the first event). */
  readonly lastSeq: number;
  /** Number of events currently stored. */
  readonly events: number;
  /** Stored size of those events, bytes. */
  readonly bytes: number;
  readonly createdAt: number;
  readonly retention: Retention;
}

/** One page of a topic read. */
export interface ReadPage {
  readonly events: StoredEvent[];
  /** The sequence to read from next. */
  readonly next: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly epoch: string;
}
