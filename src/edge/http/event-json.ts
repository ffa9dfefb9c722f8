/**
 * @module edge/http/event-json
 * The JSON shapes of stored events and topics in HTTP answers (times as ISO-8601).
 */
import type { StoredEvent, TopicInfo } from "../../streams/event.ts";

export function eventJson(e: StoredEvent): Record<string, unknown> {
  return {
    id: e.id,
    topic: e.topic,
    seq: e.seq,
    ...(e.key === undefined ? {} : { key: e.key }),
    ...(e.type === undefined ? {} : { type: e.type }),
    ...(e.schemaVersion === undefined ? {} : { schemaVersion: e.schemaVersion }),
    ...(e.causalId === undefined ? {} : { causalId: e.causalId }),
    ...(e.headers === undefined ? {} : { headers: e.headers }),
    time: new Date(e.time).toISOString(),
    ...(e.expiresAt === undefined ? {} : { expiresAt: new Date(e.expiresAt).toISOString() }),
    data: e.data,
  };
}

export function topicJson(t: TopicInfo): Record<string, unknown> {
  return {
    name: t.name,
    epoch: t.epoch,
    firstSeq: t.firstSeq,
    lastSeq: t.lastSeq,
    events: t.events,
    bytes: t.bytes,
    createdAt: new Date(t.createdAt).toISOString(),
    retention: t.retention,
  };
}
