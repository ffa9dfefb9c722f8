/**
 * @module streams/groups/group-model
 * The shapes a consumer group's runtime works with: deliveries and members as the edge sees
 * them, the runtime's own entries, sources and lanes, and the delivery token format.
 */
import type { StoredEvent, TopicRef } from "../event.ts";
import { MAX_FAILURES_KEPT, type EntryRecord, type Failure } from "./group-state.ts";

/** Headers a dead letter carries about where it came from. */
export const DLQ_HEADERS = {
  group: "baton-dlq-group",
  topic: "baton-source-topic",
  seq: "baton-source-seq",
  id: "baton-source-id",
  attempts: "baton-attempts",
  failures: "baton-failures",
  /** Times expired reservations handed the event back to the group. */
  handbacks: "baton-handbacks",
} as const;

/** One event handed to one member. */
export interface Delivery {
  /** Names this delivery in ack / nack / term / extend; invalid once the delivery ends. */
  readonly token: string;
  /** Where the group holds it: the event's topic, or the group's redrive topic. */
  readonly topic: string;
  readonly seq: number;
  /** 1 for the first delivery. */
  readonly attempt: number;
  /** Earlier failures of this event in this group, oldest first (at most 10). */
  readonly failures: readonly Failure[];
  readonly leaseUntil: number;
  /** The event as first published (differs from topic/seq for a redriven dead letter). */
  readonly origin: { readonly topic: string; readonly seq: number; readonly id: string };
  readonly event: StoredEvent;
}

/** A member as the runtime sees it: how much it may hold, and how to give it events. */
export interface MemberSink {
  readonly id: string;
  readonly kind: "push" | "pull";
  maxInFlight: number;
  /** Called with deliveries this member now holds. */
  deliver(deliveries: Delivery[]): void;
}

export interface Member {
  readonly sink: MemberSink;
  inFlight: number;
  /** Pull members take events only while a pull waits. */
  waiter: { max: number; resolve: (d: Delivery[]) => void; timer: NodeJS.Timeout } | undefined;
  lastSeen: number;
}

export type EntryState = "ready" | "inflight" | "delayed" | "waiting" | "loading" | "dead-lettering";

export interface Entry {
  readonly source: Source;
  readonly seq: number;
  /** Its lane: origin topic + NUL + key ("" for keyless events). */
  readonly scope: string;
  /** One at a time in its lane (orderedByKey and the event has a key). */
  readonly ordered: boolean;
  event: StoredEvent | undefined;
  attempts: number;
  failures: Failure[];
  state: EntryState;
  notBefore: number;
  leaseUntil: number;
  member: Member | undefined;
  /** Bumped on every state change so stale heap items are recognised. */
  version: number;
  /** Its attempts are over: when its delay ends it goes to the dead-letter topic, not to a member. */
  dlq: boolean;
  /** Random part of the current delivery's token. */
  nonce: string;
  /** A record of this event exists on disk (or its write was issued). */
  recorded: boolean;
}

export interface Source {
  readonly topic: string;
  readonly ref: TopicRef;
  readonly redrive: boolean;
  /** Next sequence to read. */
  cursor: number;
  epoch: string;
  /** Floor as last written. */
  persistedFloor: number;
  /** The pending coalesced floor write of this turn, if any. */
  floorWrite: Promise<unknown> | undefined;
  /** Open entries in sequence order (Map keeps insertion order; we insert in read order). */
  readonly entries: Map<number, Entry>;
  /** Records loaded at start for sequences not read yet. */
  restored: Map<number, EntryRecord>;
  /** Sequences with a record on disk that is a done marker or will be. */
  readonly markers: Set<number>;
  reading: boolean;
  caughtUp: boolean;
  /** An append arrived since the current read began: the reader must look again. */
  appended: boolean;
  unlisten: () => void;
}

export interface Lane {
  readonly ordered: boolean;
  /** Ordered lanes: the one event that is out (ready, loading, in flight, delayed, dead-lettering). */
  readonly out: Set<Entry>;
  /** Events of this lane in the ready queue. */
  ready: number;
  /** Later events, in sequence order. */
  readonly waiting: Entry[];
}

/** Every sequence below it is done in the group. */
export function floorOf(source: Source): number {
  for (const seq of source.entries.keys()) return seq;
  return source.cursor;
}

export function keepFailures(failures: Failure[]): Failure[] {
  return failures.length > MAX_FAILURES_KEPT ? failures.slice(-MAX_FAILURES_KEPT) : failures;
}

export function isPattern(topic: string): boolean {
  return topic.split(".").some((t) => t === "*" || t === ">") || topic === "#*";
}

/** The event as first published: for the redrive topic, from the headers it carries. */
export function originOf(source: Source, event: StoredEvent): { topic: string; seq: number; id: string } {
  if (!source.redrive) return { topic: source.topic, seq: event.seq, id: event.id };
  const h = event.headers ?? {};
  const seq = Number(h[DLQ_HEADERS.seq]);
  return { topic: h[DLQ_HEADERS.topic] ?? source.topic, seq: Number.isSafeInteger(seq) ? seq : event.seq, id: h[DLQ_HEADERS.id] ?? event.id };
}

/** `<attempt>:<seq>:<nonce>:<topic>`; the nonce keeps other members from guessing a live token. */
export function parseToken(token: string): { attempt: number; seq: number; nonce: string; topic: string } | undefined {
  const m = /^(\d{1,9}):(\d{1,16}):([0-9a-z]{10}):(.+)$/.exec(token);
  if (m === null) return undefined;
  return { attempt: Number(m[1]), seq: Number(m[2]), nonce: m[3]!, topic: m[4]! };
}
