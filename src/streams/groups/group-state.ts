/**
 * @module streams/groups/group-state
 * How a consumer group's progress is kept in the engine's StateStore, and read back.
 *
 * Per topic the group reads, a position record holds the floor (every sequence below it is done)
 * and the topic's epoch. Per event above the floor that was ever delivered, an entry record
 * holds its attempts, the reasons of earlier failures, and either its lease end (in flight), its
 * retry time (delayed) or `d` (done out of order: acked while an older event is still open).
 * An ack at the floor moves the floor and deletes the records it passes, so the state of a
 * healthy group stays as small as its in-flight window.
 */
import type { Json } from "../event.ts";
import type { StateStore } from "../../engine/engine.ts";

export interface Failure {
  readonly attempt: number;
  readonly reason: string;
  /** Epoch ms. */
  readonly at: number;
}

export interface EntryRecord {
  /** Deliveries so far. */
  readonly attempts: number;
  readonly failures: readonly Failure[];
  /** In flight until this time (epoch ms). */
  readonly leaseUntil?: number;
  /** Delayed until this time (epoch ms). */
  readonly notBefore?: number;
  readonly done?: boolean;
  /** Random part of the in-flight delivery's token, so it can still be acked after a restart. */
  readonly nonce?: string;
}

export interface PositionRecord {
  readonly floor: number;
  readonly epoch: string;
}

/** Only the most recent failures travel with a delivery and are kept. */
export const MAX_FAILURES_KEPT = 10;

const SEQ_WIDTH = 16;

export function groupKey(tenant: string, group: string): string {
  return `grp/${tenant}/${group}`;
}

export function groupPrefix(tenant?: string): string {
  return tenant === undefined ? "grp/" : `grp/${tenant}/`;
}

function positionPrefix(tenant: string, group: string): string {
  return `gpos/${tenant}/${group}/`;
}

function entryPrefix(tenant: string, group: string): string {
  return `gent/${tenant}/${group}/`;
}

export function positionKey(tenant: string, group: string, topic: string): string {
  return `${positionPrefix(tenant, group)}${topic}`;
}

export function entryKey(tenant: string, group: string, topic: string, seq: number): string {
  return `${entryPrefix(tenant, group)}${topic}/${String(seq).padStart(SEQ_WIDTH, "0")}`;
}

export function entryJson(r: EntryRecord): Json {
  const out: Record<string, Json> = { a: r.attempts, f: r.failures.map((f) => [f.attempt, f.reason, f.at]) };
  if (r.leaseUntil !== undefined) out["l"] = r.leaseUntil;
  if (r.notBefore !== undefined) out["n"] = r.notBefore;
  if (r.done === true) out["d"] = 1;
  if (r.nonce !== undefined) out["k"] = r.nonce;
  return out;
}

function entryFromJson(v: Json): EntryRecord {
  const o = v as Record<string, Json>;
  const failures = ((o["f"] ?? []) as [number, string, number][]).map(([attempt, reason, at]) => ({ attempt, reason, at }));
  return {
    attempts: (o["a"] as number | undefined) ?? 0,
    failures,
    ...(typeof o["l"] === "number" ? { leaseUntil: o["l"] } : {}),
    ...(typeof o["n"] === "number" ? { notBefore: o["n"] } : {}),
    ...(o["d"] === 1 ? { done: true } : {}),
    ...(typeof o["k"] === "string" ? { nonce: o["k"] } : {}),
  };
}

export interface LoadedGroupState {
  readonly positions: Map<string, PositionRecord>;
  /** topic -> seq -> record */
  readonly entries: Map<string, Map<number, EntryRecord>>;
}

/** Every entry under `prefix`, a page at a time. */
export async function scanAll(state: StateStore, prefix: string, each: (key: string, value: Json) => void): Promise<void> {
  let after: string | undefined;
  for (;;) {
    const page = await state.scan(prefix, { limit: 1000, ...(after === undefined ? {} : { after }) });
    for (const e of page) each(e.key, e.value);
    if (page.length < 1000) return;
    after = page[page.length - 1]!.key;
  }
}

export async function loadGroupState(state: StateStore, tenant: string, group: string): Promise<LoadedGroupState> {
  const positions = new Map<string, PositionRecord>();
  const entries = new Map<string, Map<number, EntryRecord>>();
  const pp = positionPrefix(tenant, group);
  await scanAll(state, pp, (key, value) => positions.set(key.slice(pp.length), value as unknown as PositionRecord));
  const ep = entryPrefix(tenant, group);
  await scanAll(state, ep, (key, value) => {
    const rest = key.slice(ep.length);
    const slash = rest.lastIndexOf("/");
    const topic = rest.slice(0, slash);
    const seq = Number(rest.slice(slash + 1));
    let m = entries.get(topic);
    if (m === undefined) entries.set(topic, (m = new Map()));
    m.set(seq, entryFromJson(value));
  });
  return { positions, entries };
}

/** Removes every position and entry record of a group (not its definition). */
export async function deleteGroupProgress(state: StateStore, tenant: string, group: string): Promise<void> {
  for (const prefix of [entryPrefix(tenant, group), positionPrefix(tenant, group)]) {
    const keys: string[] = [];
    await scanAll(state, prefix, (key) => keys.push(key));
    for (let i = 0; i < keys.length; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k) => state.delete(k)));
  }
}
