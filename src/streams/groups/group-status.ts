/**
 * @module streams/groups/group-status
 * What a consumer group reports about itself: the figures of `describe` (and the HTTP API's
 * group description), the reasons it is not making progress, and the cheaper sample the
 * metrics read at every scrape. Computed from a read-only view of the runtime.
 */
import type { GroupConfig } from "./group-config.ts";
import { floorOf, type Lane, type Member, type Source } from "./group-model.ts";

/** What the status is computed from (the runtime hands out its own structures, read only). */
export interface GroupView {
  readonly config: GroupConfig;
  readonly now: number;
  readonly sources: ReadonlyMap<string, Source>;
  readonly lanes: ReadonlyMap<string, Lane>;
  readonly members: ReadonlyMap<string, Member>;
  /** Events in the ready queue. */
  readonly ready: number;
  /** Events read and not done. */
  readonly pending: number;
  readonly counters: GroupCounters;
  /** Leases that expired in the last 5 minutes. */
  readonly recentLeaseExpiries: number;
}

export interface GroupCounters {
  delivered: number;
  redelivered: number;
  acked: number;
  nacked: number;
  terminated: number;
  deadLettered: number;
  expired: number;
  leaseExpired: number;
}

export interface GroupSample {
  readonly pending: number;
  readonly inFlight: number;
  readonly delayed: number;
  readonly blockedKeys: number;
  readonly oldestPendingAgeS: number;
}

/** Ordered lanes whose one event out is waiting for its retry while later events wait behind it. */
function blockedKeys(lanes: ReadonlyMap<string, Lane>): { count: number; example: string | undefined } {
  let count = 0;
  let example: string | undefined;
  for (const [scope, lane] of lanes) {
    if (!lane.ordered || lane.waiting.length === 0) continue;
    for (const head of lane.out) {
      if (head.state !== "delayed" && head.state !== "dead-lettering") continue;
      count += 1;
      example ??= scope.replace("\u0000", " key ");
    }
  }
  return { count, example };
}

/** One pass over the open events. */
export function sampleGroup(v: GroupView): GroupSample {
  let oldest = v.now;
  let inFlight = 0;
  let delayed = 0;
  for (const s of v.sources.values()) {
    let first = true;
    for (const e of s.entries.values()) {
      if (first && e.event !== undefined) oldest = Math.min(oldest, e.event.time);
      first = false;
      if (e.state === "inflight") inFlight += 1;
      else if (e.state === "delayed" || e.state === "dead-lettering") delayed += 1;
    }
  }
  return { pending: v.pending, inFlight, delayed, blockedKeys: blockedKeys(v.lanes).count, oldestPendingAgeS: (v.now - oldest) / 1000 };
}

export function describeGroup(v: GroupView): GroupStatus {
  let inFlight = 0;
  let delayed = 0;
  let waiting = 0;
  const partitions: PartitionStatus[] = [];
  for (const s of v.sources.values()) {
    let sIn = 0;
    let sDelayed = 0;
    for (const e of s.entries.values()) {
      if (e.state === "inflight") sIn += 1;
      else if (e.state === "delayed" || e.state === "dead-lettering") sDelayed += 1;
      else if (e.state === "waiting" || e.state === "loading") waiting += 1;
    }
    inFlight += sIn;
    delayed += sDelayed;
    partitions.push({ topic: s.topic, floor: floorOf(s), cursor: s.cursor, pending: s.entries.size, inFlight: sIn, delayed: sDelayed });
  }
  const blocked = blockedKeys(v.lanes);
  const members = [...v.members.values()];
  const live = members.filter((m) => m.sink.kind === "push" || m.waiter !== undefined || m.inFlight > 0 || v.now - m.lastSeen < 60_000);
  const stalled: StallReason[] = [];
  if (v.ready > 0 && live.length === 0) stalled.push({ code: "NO_MEMBERS", message: `${v.ready} events are ready and no member is consuming` });
  if (v.ready > 0 && live.length > 0 && live.every((m) => m.inFlight >= m.sink.maxInFlight)) {
    stalled.push({ code: "MEMBERS_AT_LIMIT", message: `${v.ready} events are ready and every member holds its maxInFlight` });
  }
  if (blocked.count > 0) stalled.push({ code: "KEYS_BLOCKED", message: `${blocked.count} keys wait behind an event that is retrying (e.g. ${blocked.example})` });
  if (v.recentLeaseExpiries > 0 && v.pending > 0) {
    const n = v.recentLeaseExpiries;
    stalled.push({ code: "LEASES_EXPIRING", message: `${n} ${n === 1 ? "lease" : "leases"} expired in the last 5 minutes: members die or need to extend their lease (ackWait ${v.config.ackWaitMs} ms)` });
  }
  if (v.pending >= v.config.maxPending) stalled.push({ code: "WINDOW_FULL", message: `${v.pending} events are open (maxPending ${v.config.maxPending}); reading pauses until some finish` });
  return {
    pending: v.pending,
    ready: v.ready,
    inFlight,
    delayed,
    waitingOnKey: waiting,
    blockedKeys: blocked.count,
    members: members.map((m) => ({ id: m.sink.id, kind: m.sink.kind, inFlight: m.inFlight, maxInFlight: m.sink.maxInFlight })),
    partitions,
    counters: { ...v.counters },
    stalled,
  };
}

export interface StallReason {
  readonly code: "NO_MEMBERS" | "MEMBERS_AT_LIMIT" | "KEYS_BLOCKED" | "LEASES_EXPIRING" | "WINDOW_FULL";
  readonly message: string;
}

export interface PartitionStatus {
  readonly topic: string;
  /** Every sequence below it is done in this group. */
  readonly floor: number;
  /** Next sequence to be read into the window. */
  readonly cursor: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly delayed: number;
}

export interface GroupStatus {
  readonly pending: number;
  readonly ready: number;
  readonly inFlight: number;
  readonly delayed: number;
  readonly waitingOnKey: number;
  readonly blockedKeys: number;
  readonly members: { id: string; kind: string; inFlight: number; maxInFlight: number }[];
  readonly partitions: PartitionStatus[];
  readonly counters: GroupCounters;
  readonly stalled: StallReason[];
}

