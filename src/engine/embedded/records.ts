/**
 * @module engine/embedded/records
 * The on-disk shapes of the embedded engine. Events are msgpack arrays (not objects) so field
 * names are not stored once per event; the layout is versioned by its position order.
 */
import { Packr } from "msgpackr";
import type { Json, Retention, StoredEvent, TopicInfo } from "../../streams/event.ts";

/**
 * Per-topic record: epoch, retention and counters. Written with a topic's first events and then
 * periodically; the stored events are the truth for `lastSeq` (see EmbeddedEventLog.loadState).
 */
export interface TopicRecord {
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  events: number;
  bytes: number;
  createdAt: number;
  /** Publish time of the last event, so publish times never go backwards within a topic. */
  lastTime: number;
  retention: Retention;
  /** Set while a delete is removing the history in chunks. */
  deleting?: true;
}

export interface DedupRecord {
  id: string;
  seq: number;
  expiresAt: number;
}

type EventTuple = [
  id: string,
  time: number,
  data: Json,
  key: string | null,
  type: string | null,
  schemaVersion: number | null,
  causalId: string | null,
  headers: Record<string, string> | null,
  expiresAt: number | null,
];

// variableMapSize: objects with 65,536+ keys encode instead of throwing.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeEvent(e: Omit<StoredEvent, "tenant" | "topic" | "seq">): Buffer {
  const tuple: EventTuple = [
    e.id,
    e.time,
    e.data,
    e.key ?? null,
    e.type ?? null,
    e.schemaVersion ?? null,
    e.causalId ?? null,
    e.headers ?? null,
    e.expiresAt ?? null,
  ];
  return packr.pack(tuple);
}

export function decodeEvent(tenant: string, topic: string, seq: number, buf: Uint8Array): StoredEvent {
  const [id, time, data, key, type, schemaVersion, causalId, headers, expiresAt] = packr.unpack(buf) as EventTuple;
  const event: { -readonly [K in keyof StoredEvent]: StoredEvent[K] } = { id, tenant, topic, seq, data, time };
  if (key !== null) event.key = key;
  if (type !== null) event.type = type;
  if (schemaVersion !== null) event.schemaVersion = schemaVersion;
  if (causalId !== null) event.causalId = causalId;
  if (headers !== null) event.headers = headers;
  if (expiresAt !== null) event.expiresAt = expiresAt;
  return event;
}

/** Reads only the publish time, for retention and time lookups. */
export function decodeEventTime(buf: Uint8Array): { time: number; expiresAt: number | null } {
  const tuple = packr.unpack(buf) as EventTuple;
  return { time: tuple[1], expiresAt: tuple[8] };
}

/** `lastSeq` is the durable one: only acknowledged events are ever visible. */
export function topicInfo(tenant: string, name: string, r: TopicRecord, lastSeq: number): TopicInfo {
  return {
    tenant,
    name,
    epoch: r.epoch,
    firstSeq: r.firstSeq,
    lastSeq,
    events: r.events,
    bytes: r.bytes,
    createdAt: r.createdAt,
    retention: r.retention,
  };
}
