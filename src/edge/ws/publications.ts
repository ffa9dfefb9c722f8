/**
 * @module edge/ws/publications
 * Events as Centrifugo publications in the JSON encoding. A publication is serialised once per
 * event and the same string is sent to every subscribed socket. Event metadata travels in
 * `tags` (string values, in both encodings): `id`, `type`, `key`, `causal_id`,
 * `schema_version`, `time`, and the event's headers (W3C `traceparent` among them).
 */
import type { EphemeralEvent } from "../../engine/engine.ts";
import type { StoredEvent } from "../../streams/event.ts";

const cache = new WeakMap<object, string>();

/** Tag names Baton sets itself; a header of the same name is not passed through. */
const RESERVED = new Set(["id", "type", "key", "time", "causal_id", "schema_version", "ephemeral"]);

function headerTags(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers !== undefined) for (const [k, v] of Object.entries(headers)) if (!RESERVED.has(k)) out[k] = v;
  return out;
}

function tags(e: { id: string; type?: string; key?: string; headers?: Readonly<Record<string, string>>; time: number }, extra: Record<string, string>): Record<string, string> {
  return {
    ...headerTags(e.headers),
    id: e.id,
    ...(e.type === undefined ? {} : { type: e.type }),
    ...(e.key === undefined ? {} : { key: e.key }),
    time: new Date(e.time).toISOString(),
    ...extra,
  };
}

/** A durable event's tags (the same in every encoding). */
export function durableTags(e: StoredEvent): Record<string, string> {
  const extra: Record<string, string> = {};
  if (e.causalId !== undefined) extra["causal_id"] = e.causalId;
  if (e.schemaVersion !== undefined) extra["schema_version"] = String(e.schemaVersion);
  return tags(e, extra);
}

/** An ephemeral event's tags: tagged `ephemeral`, as it has no offset. */
export function ephemeralTags(e: EphemeralEvent): Record<string, string> {
  return tags(e, { ephemeral: "true" });
}

/** `{"data":…,"offset":seq,"tags":{…}}` for a durable event. */
export function publicationJson(e: StoredEvent): string {
  let json = cache.get(e);
  if (json === undefined) {
    json = JSON.stringify({ data: e.data, offset: e.seq, tags: durableTags(e) });
    cache.set(e, json);
  }
  return json;
}

const frames = new WeakMap<object, Buffer>();

/** `{"push":{"channel":<topic>,"pub":<pubJson>}}` as UTF-8 bytes, built once per event. */
function sharedFrame<E extends { readonly topic: string }>(e: E, pubJson: (e: E) => string): Buffer {
  let frame = frames.get(e);
  if (frame === undefined) {
    frame = Buffer.from(`{"push":{"channel":${JSON.stringify(e.topic)},"pub":${pubJson(e)}}}`);
    frames.set(e, frame);
  }
  return frame;
}

/**
 * The whole `pub` push frame of a durable event on its own topic, as UTF-8 bytes, built once and
 * written as-is to every subscribed socket (ws then skips encoding a string per socket).
 */
export function publicationFrame(e: StoredEvent): Buffer {
  return sharedFrame(e, publicationJson);
}

/** The same for an ephemeral event. */
export function ephemeralPublicationFrame(e: EphemeralEvent): Buffer {
  return sharedFrame(e, ephemeralPublicationJson);
}

/** An ephemeral event: no offset, so the client's stream position does not move. */
export function ephemeralPublicationJson(e: EphemeralEvent): string {
  let json = cache.get(e);
  if (json === undefined) {
    json = JSON.stringify({ data: e.data, tags: ephemeralTags(e) });
    cache.set(e, json);
  }
  return json;
}
