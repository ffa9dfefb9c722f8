/**
 * @module edge/ws/replies
 * Publications in replies (subscribe recovery, history): read within a byte budget, and spliced
 * into the reply as the JSON already serialised for pushes.
 */
import type { EventLog } from "../../engine/engine.ts";
import type { ReadPage, StoredEvent, TopicRef } from "../../streams/event.ts";
import { reply } from "./protocol.ts";
import { publicationJson } from "./publications.ts";

/**
 * Up to `limit` events in [from, to] (oldest first, or newest first when `reverse`) whose
 * publications fit in `budget` bytes (at least one), read in small pages so a reply
 * never costs much more than what a socket may have queued. Recovery sends the rest as
 * pushes; history returns fewer publications (page on with `since`). `first` is the first
 * page read, for its epoch and firstSeq.
 */
export async function readBudgeted(
  log: EventLog,
  budget: number,
  ref: TopicRef,
  from: number,
  to: number,
  limit: number,
  reverse: boolean,
): Promise<{ events: StoredEvent[]; first: ReadPage | undefined }> {
  const PAGE = 25;
  const events: StoredEvent[] = [];
  let first: ReadPage | undefined;
  let bytes = 0;
  // Bounded by what can exist, so a wild position cannot make this loop long.
  const info = await log.describeTopic(ref);
  let lo = Math.max(from, info?.firstSeq ?? from);
  let hi = Math.min(to, info?.lastSeq ?? to);
  while (events.length < limit && lo <= hi) {
    const start = reverse ? Math.max(lo, hi - PAGE + 1) : lo;
    const page = await log.read(ref, start, reverse ? hi - start + 1 : Math.min(PAGE, limit - events.length));
    first ??= page;
    const got = page.events.filter((e) => e.seq <= hi);
    if (reverse) got.reverse();
    for (const e of got) {
      bytes += publicationJson(e).length;
      if ((events.length > 0 && bytes > budget) || events.length >= limit) return { events, first };
      events.push(e);
    }
    if (reverse) hi = start - 1;
    else if (page.next > page.lastSeq || page.next <= lo) break;
    else lo = page.next;
  }
  return { events, first };
}

const PUBLICATIONS_MARK = "__baton_publications__";

/**
 * A reply whose `publications` are spliced in as their already-serialised JSON (the strings
 * pushes share), instead of being parsed and serialised again.
 */
export function replyWithPublications(id: number, method: string, result: Record<string, unknown>, events: readonly StoredEvent[]): string {
  if (events.length === 0) return reply(id, method, result);
  const json = JSON.stringify({ ...result, publications: PUBLICATIONS_MARK });
  return `{"id":${id},"${method}":${json.replace(`"${PUBLICATIONS_MARK}"`, () => `[${events.map(publicationJson).join(",")}]`)}}`;
}
