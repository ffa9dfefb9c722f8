/**
 * @module engine/embedded/retention-sweeper
 * Reclaims space in the background: events past their topic's age, count or byte limit,
 * expired events at the head of a topic, and idempotency keys past the dedup window. Each pass
 * looks at a bounded slice of topics and removes a bounded number of records per transaction,
 * so a large backlog is worked off over several passes without holding up publishes.
 *
 * Events are only ever removed from the head, so the stored range of a topic stays contiguous:
 * a TTL-expired event behind a longer-lived one is hidden from reads at once and reclaimed when
 * it reaches the head.
 */
import type { Retention } from "../../streams/event.ts";
import type { EmbeddedDbs, EmbeddedEventLog } from "./embedded-event-log.ts";
import { decodeEventTime } from "./records.ts";

export interface SweeperOptions {
  /** Pause between passes, ms. */
  readonly intervalMs: number;
  /** Topics examined per pass. */
  readonly topicsPerPass: number;
  /** Records removed per transaction. */
  readonly deletesPerTxn: number;
  /** Positions of topics unused for this long are dropped from memory, ms. */
  readonly idleTopicMs: number;
  readonly now?: () => number;
}

/** Whether the head event must go: over count, over bytes, expired, or too old. */
export function mustReclaim(retention: Retention, eventsLeft: number, bytesLeft: number, event: Buffer, now: number): boolean {
  if (retention.maxEvents > 0 && eventsLeft > retention.maxEvents) return true;
  if (retention.maxBytes > 0 && bytesLeft > retention.maxBytes) return true;
  const { time, expiresAt } = decodeEventTime(event);
  if (expiresAt !== null && expiresAt <= now) return true;
  return retention.maxAgeMs > 0 && time + retention.maxAgeMs <= now;
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private cursor: [string, string] | undefined;
  private running: Promise<void> | undefined;
  private deletesResumed = false;
  private readonly now: () => number;
  private readonly db: EmbeddedDbs;
  private readonly log: EmbeddedEventLog;
  private readonly options: SweeperOptions;

  constructor(db: EmbeddedDbs, log: EmbeddedEventLog, options: SweeperOptions) {
    this.db = db;
    this.log = log;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    const tick = (): void => {
      this.running = this.pass()
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          this.running = undefined;
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.options.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass: a slice of topics plus expired idempotency keys. Returns records removed. */
  async pass(): Promise<number> {
    await this.log.flushPositions();
    if (!this.deletesResumed) {
      // Once per start: deletes a crash interrupted (a full scan of the topic records).
      await this.log.resumeDeletes();
      this.deletesResumed = true;
    }
    let removed = 0;
    for (;;) {
      const n = await this.log.reclaimKeys(this.options.deletesPerTxn);
      removed += n;
      if (n < this.options.deletesPerTxn) break;
    }
    const names: [string, string][] = [];
    for (const key of this.db.topics.getKeys({ ...(this.cursor === undefined ? {} : { start: this.cursor }), limit: this.options.topicsPerPass + 1 })) {
      if (this.cursor !== undefined && key[0] === this.cursor[0] && key[1] === this.cursor[1]) continue;
      names.push(key);
      if (names.length >= this.options.topicsPerPass) break;
    }
    this.cursor = names.length < this.options.topicsPerPass ? undefined : names[names.length - 1];
    for (const [tenant, topic] of names) {
      for (;;) {
        const n = await this.log.reclaimHead(tenant, topic, mustReclaim, this.options.deletesPerTxn);
        removed += n;
        if (n < this.options.deletesPerTxn) break;
      }
    }
    this.log.evictIdle(this.now() - this.options.idleTopicMs);
    return removed;
  }
}
