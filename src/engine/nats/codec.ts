/**
 * @module engine/nats/codec
 * One JetStream message per append: the whole batch in one msgpack body, so a batch is stored
 * all or nothing (nats-server 2.9 has no atomic multi-message publish). The position of the
 * batch travels in headers so it can be read without decoding the body.
 *
 * Headers: `Baton-Epoch` (the topic history it belongs to), `Baton-Seq` (topic sequence of
 * the first event), `Baton-Count` (events in the body), `Baton-Time` (publish time, ms: never
 * below the previous message's), `Baton-Bytes` (body bytes of the topic up to and including
 * this message: stored bytes are a difference of two of these).
 */
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import type { Json, StoredEvent } from "../../streams/event.ts";

/** Position of one stored message (a batch of `count` events). */
export interface BatchHead {
  readonly epoch: string;
  /** Topic sequence of the first event. */
  readonly seq: number;
  readonly count: number;
  readonly time: number;
  /** Cumulative body bytes of the topic, this message included. */
  readonly bytes: number;
}

/** An event as stored inside a batch; `idem` is the idempotency key, kept for dedup scans. */
export interface BatchEvent {
  readonly event: Omit<StoredEvent, "tenant" | "topic" | "seq">;
  readonly idem: string | undefined;
}

type EventTuple = [
  id: string,
  data: Json,
  key: string | null,
  type: string | null,
  schemaVersion: number | null,
  causalId: string | null,
  headers: Record<string, string> | null,
  expiresAt: number | null,
  idem: string | null,
];

// variableMapSize: objects with 65,536+ keys encode instead of throwing.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeBatch(events: readonly BatchEvent[]): Uint8Array {
  return packr.pack(
    events.map(({ event: e, idem }): EventTuple => [
      e.id,
      e.data,
      e.key ?? null,
      e.type ?? null,
      e.schemaVersion ?? null,
      e.causalId ?? null,
      e.headers ?? null,
      e.expiresAt ?? null,
      idem ?? null,
    ]),
  );
}

/** Decodes a batch body into stored events (sequences from `head.seq`) and their keys. */
export function decodeBatch(tenant: string, topic: string, head: BatchHead, body: Uint8Array): { event: StoredEvent; idem: string | undefined }[] {
  const tuples = packr.unpack(body) as EventTuple[];
  return tuples.map(([id, data, key, type, schemaVersion, causalId, headers, expiresAt, idem], i) => {
    const event: { -readonly [K in keyof StoredEvent]: StoredEvent[K] } = { id, tenant, topic, seq: head.seq + i, data, time: head.time };
    if (key !== null) event.key = key;
    if (type !== null) event.type = type;
    if (schemaVersion !== null) event.schemaVersion = schemaVersion;
    if (causalId !== null) event.causalId = causalId;
    if (headers !== null) event.headers = headers;
    if (expiresAt !== null) event.expiresAt = expiresAt;
    return { event, idem: idem ?? undefined };
  });
}

export function headHeaders(head: BatchHead): MsgHdrs {
  const h = natsHeaders();
  h.set("Baton-Epoch", head.epoch);
  h.set("Baton-Seq", String(head.seq));
  h.set("Baton-Count", String(head.count));
  h.set("Baton-Time", String(head.time));
  h.set("Baton-Bytes", String(head.bytes));
  return h;
}

/** Reads a message's position; undefined for a message Baton did not write. */
export function readHead(h: MsgHdrs | undefined): BatchHead | undefined {
  if (h === undefined) return undefined;
  const epoch = h.get("Baton-Epoch");
  const seq = Number(h.get("Baton-Seq"));
  const count = Number(h.get("Baton-Count"));
  const time = Number(h.get("Baton-Time"));
  const bytes = Number(h.get("Baton-Bytes"));
  if (epoch === "" || !Number.isSafeInteger(seq) || seq < 1 || !Number.isSafeInteger(count) || count < 1 || !Number.isFinite(time) || !Number.isSafeInteger(bytes)) return undefined;
  return { epoch, seq, count, time, bytes };
}
