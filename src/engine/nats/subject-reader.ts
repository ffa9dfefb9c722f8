/**
 * @module engine/nats/subject-reader
 * Reads one topic's messages out of its tenant stream with direct gets (nats-server 2.9:
 * `allow_direct`, by sequence, next-by-subject, last-by-subject). Ordered consumers would
 * batch better, but the v3 client creates them with `filter_subjects`, which needs 2.10.
 */
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { readHead, type BatchHead } from "./codec.ts";

/** One stored batch message: its stream sequence, position headers and body. */
export interface TopicMessage {
  readonly streamSeq: number;
  readonly head: BatchHead;
  readonly body: Uint8Array;
}

/** Tries of one direct get that times out (each bounded by the manager's timeout). */
const MAX_ATTEMPTS = 4;

export class SubjectReader {
  private readonly jsm: JetStreamManager;

  constructor(jsm: JetStreamManager) {
    this.jsm = jsm;
  }

  /** The subject's last message (also one of another epoch), or undefined if it has none. */
  async last(stream: string, subject: string): Promise<TopicMessage | undefined> {
    return toTopicMessage(await this.get(stream, { last_by_subj: subject }));
  }

  /** The subject's first message at stream sequence `fromStreamSeq` or later. */
  async next(stream: string, subject: string, fromStreamSeq: number): Promise<TopicMessage | undefined> {
    return toTopicMessage(await this.get(stream, { seq: Math.max(1, fromStreamSeq), next_by_subj: subject }));
  }

  /** The message at exactly this stream sequence, if it is still stored and on `subject`. */
  async at(stream: string, subject: string, streamSeq: number): Promise<TopicMessage | undefined> {
    const m = await this.get(stream, { seq: streamSeq });
    return m === null || m.subject !== subject ? undefined : toTopicMessage(m);
  }

  /**
   * The first message (by stream sequence, from `loStreamSeq` to `hiStreamSeq`) for which `pred`
   * holds, `pred` being monotone along the subject (false ... false true ... true). A binary
   * search over stream sequences: O(log n) direct gets.
   */
  async search(stream: string, subject: string, hiStreamSeq: number, pred: (m: TopicMessage) => boolean, loStreamSeq = 1): Promise<TopicMessage | undefined> {
    let lo = Math.max(1, loStreamSeq);
    let hi = hiStreamSeq;
    let found: TopicMessage | undefined;
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const m = await this.next(stream, subject, mid);
      if (m === undefined || m.streamSeq > hi) {
        hi = mid - 1;
      } else if (pred(m)) {
        found = m;
        hi = mid - 1;
      } else {
        lo = m.streamSeq + 1;
      }
    }
    return found;
  }

  private async get(stream: string, query: Parameters<JetStreamManager["direct"]["getMessage"]>[1]): Promise<StoredMsg | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.jsm.direct.getMessage(stream, query);
      } catch (err) {
        // A tenant whose stream does not exist yet has no messages.
        if (isStreamNotFound(err)) return null;
        // A direct get is idempotent: one left unanswered (seen on 2.9.10 when it lands while
        // another node creates the stream) is asked again.
        if (err instanceof errors.TimeoutError && attempt < MAX_ATTEMPTS) continue;
        throw err;
      }
    }
  }
}

function toTopicMessage(m: StoredMsg | null): TopicMessage | undefined {
  if (m === null) return undefined;
  const head = readHead(m.header);
  return head === undefined ? undefined : { streamSeq: m.seq, head, body: m.data };
}

export function isStreamNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  if (e === undefined || e === null) return false;
  if (e.code === 10059) return true;
  const message = typeof e.message === "string" ? e.message : "";
  return e.name === "NoRespondersError" || /no responders|stream not found/i.test(message);
}
