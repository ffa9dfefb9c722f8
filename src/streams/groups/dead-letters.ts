/**
 * @module streams/groups/dead-letters
 * A group's dead letters: a real topic (`~dlq.<group>`) that can be read like any other, and
 * redriven back into the group. Redrive appends the chosen letters to the group's redrive topic
 * with an idempotency key per letter, so redriving the same letter twice within the dedup window
 * hands it to the group once; the group then reads them at its `redriveRate`.
 */
import { isBatonError } from "../../errors/baton-error.ts";
import type { EventLog } from "../../engine/engine.ts";
import type { NewEvent, ReadPage, StoredEvent } from "../event.ts";
import { deadLetterTopic, redriveTopic } from "./group-config.ts";
import { DLQ_HEADERS } from "./group-model.ts";

export interface RedriveFilter {
  /** Lowest dead-letter sequence to consider (default 1). */
  readonly fromSeq?: number;
  /** Highest dead-letter sequence to consider (default: the last). */
  readonly toSeq?: number;
  readonly type?: string;
  readonly key?: string;
  /** At most this many letters per call (default 1000, max 10000). */
  readonly limit: number;
}

export interface RedriveResult {
  /** Letters appended to the redrive topic by this call. */
  readonly redriven: number;
  /** Letters matched that an earlier redrive already sent back. */
  readonly alreadyRedriven: number;
  /** Where the next call should start to continue (dead-letter sequence). */
  readonly next: number;
}

const PAGE = 500;

export async function readDeadLetters(log: EventLog, tenant: string, group: string, fromSeq: number, limit: number): Promise<ReadPage | undefined> {
  try {
    return await log.read({ tenant, topic: deadLetterTopic(group) }, fromSeq, limit);
  } catch (err) {
    if (isBatonError(err) && err.code === "TOPIC_NOT_FOUND") return undefined;
    throw err;
  }
}

export async function redrive(log: EventLog, tenant: string, group: string, filter: RedriveFilter): Promise<RedriveResult> {
  let from = filter.fromSeq ?? 1;
  let redriven = 0;
  let alreadyRedriven = 0;
  let matched = 0;
  for (;;) {
    const page = await readDeadLetters(log, tenant, group, from, PAGE);
    if (page === undefined) return { redriven, alreadyRedriven, next: from };
    const chosen: StoredEvent[] = [];
    let next = page.next;
    for (const e of page.events) {
      if (filter.toSeq !== undefined && e.seq > filter.toSeq) {
        next = e.seq;
        break;
      }
      if (matched >= filter.limit) {
        next = e.seq;
        break;
      }
      if (filter.type !== undefined && e.type !== filter.type) continue;
      if (filter.key !== undefined && e.key !== filter.key) continue;
      chosen.push(e);
      matched += 1;
    }
    if (chosen.length > 0) {
      const results = await log.append({ tenant, topic: redriveTopic(group) }, chosen.map((e) => asRedrive(e, page.epoch)), { autoCreate: true });
      for (const r of results) {
        if (r.duplicate) alreadyRedriven += 1;
        else redriven += 1;
      }
    }
    from = next;
    const done = page.events.length === 0 || next > page.lastSeq || matched >= filter.limit || (filter.toSeq !== undefined && from > filter.toSeq);
    if (done) return { redriven, alreadyRedriven, next: from };
  }
}

function asRedrive(letter: StoredEvent, epoch: string): NewEvent {
  return {
    data: letter.data,
    idempotencyKey: `redrive:${epoch}:${letter.seq}`,
    ...(letter.headers === undefined ? {} : { headers: letter.headers }),
    ...(letter.key === undefined ? {} : { key: letter.key }),
    ...(letter.type === undefined ? {} : { type: letter.type }),
    ...(letter.schemaVersion === undefined ? {} : { schemaVersion: letter.schemaVersion }),
    ...(letter.causalId === undefined ? {} : { causalId: letter.causalId }),
  };
}

/** Deletes every dead letter of the group; resolves with how many there were. */
export async function purgeDeadLetters(log: EventLog, tenant: string, group: string): Promise<number> {
  const ref = { tenant, topic: deadLetterTopic(group) };
  const info = await log.describeTopic(ref);
  if (info === undefined) return 0;
  await log.deleteTopic(ref);
  return info.events;
}

/**
 * Hands one event back to a group through its redrive topic, keeping its origin, stored once
 * per `idempotencyKey`. Resolves false when the event is no longer stored.
 */
export async function reinject(
  log: EventLog,
  tenant: string,
  group: string,
  work: { readonly topic: string; readonly seq: number; readonly origin: { readonly topic: string; readonly seq: number; readonly id: string } },
  idempotencyKey: string,
  countAs?: string,
): Promise<boolean> {
  let page: ReadPage;
  try {
    page = await log.read({ tenant, topic: work.topic }, work.seq, 1);
  } catch (err) {
    if (isBatonError(err) && err.code === "TOPIC_NOT_FOUND") return false;
    throw err;
  }
  const event = page.events[0];
  if (event === undefined || event.seq !== work.seq) return false;
  const headers: Record<string, string> = {
    ...(event.headers ?? {}),
    [DLQ_HEADERS.topic]: work.origin.topic,
    [DLQ_HEADERS.seq]: String(work.origin.seq),
    [DLQ_HEADERS.id]: work.origin.id,
  };
  // A counter header (e.g. hand-backs) carried over from the last round and increased.
  if (countAs !== undefined) headers[countAs] = String(Number(headers[countAs] ?? 0) + 1);
  await log.append({ tenant, topic: redriveTopic(group) }, [{ ...asRedrive({ ...event, headers }, ""), idempotencyKey }], { autoCreate: true });
  return true;
}
