/**
 * @module engine/embedded/retention-sweeper
 * Reclaims space in the background: events past their topic's age, count or byte limit, expired
 * events at the head of a topic, and idempotency keys past the dedup window. Each pass touches a
 * bounded number of topics and deletes a bounded number of records per transaction, so a large
 * backlog is worked off over several passes without holding the writer (and publishes) for long.
 *
 * Events are only ever removed from the head, so the stored range of a topic stays contiguous:
 * a TTL-expired event behind a longer-lived one is hidden from reads at once and reclaimed when
 * it reaches the head.
 */
import type { EmbeddedDbs } from "./embedded-event-log.ts";
import { decodeEventTime, type TopicRecord } from "./records.ts";

export interface SweeperOptions {
  /** Pause between passes, ms. */
  readonly intervalMs: number;
  /** Topics examined per pass. */
  readonly topicsPerPass: number;
  /** Records deleted per transaction. */
  readonly deletesPerTxn: number;
  readonly now?: () => number;
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private cursor: [string, string] | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly db: EmbeddedDbs;
  private readonly options: SweeperOptions;

  constructor(db: EmbeddedDbs, options: SweeperOptions) {
    this.db = db;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    const tick = (): void => {
      this.running = this.pass()
        .then(() => undefined, () => undefined)
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

  /** One pass: a slice of topics plus expired idempotency keys. Returns records deleted. */
  async pass(): Promise<number> {
    let deleted = await this.sweepDedup();
    const names: [string, string][] = [];
    for (const key of this.db.topics.getKeys({
      ...(this.cursor === undefined ? {} : { start: this.cursor }),
      limit: this.options.topicsPerPass + 1,
    })) {
      if (this.cursor !== undefined && key[0] === this.cursor[0] && key[1] === this.cursor[1]) continue;
      names.push(key);
      if (names.length >= this.options.topicsPerPass) break;
    }
    this.cursor = names.length < this.options.topicsPerPass ? undefined : names[names.length - 1];
    for (const name of names) deleted += await this.sweepTopic(name);
    return deleted;
  }

  private async sweepTopic(key: [string, string]): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.db.root.transaction(() => {
        const record = this.db.topics.get(key);
        if (record === undefined || record.deleting) return 0;
        const updated: TopicRecord = { ...record };
        const now = this.now();
        let n = 0;
        while (n < this.options.deletesPerTxn && updated.firstSeq <= updated.lastSeq) {
          const eventKey: [string, string, number] = [key[0], key[1], updated.firstSeq];
          const buf = this.db.events.get(eventKey);
          if (buf !== undefined && !this.mustGo(updated, buf, now)) break;
          if (buf !== undefined) {
            void this.db.events.remove(eventKey);
            updated.events -= 1;
            updated.bytes -= buf.length;
          }
          updated.firstSeq += 1;
          n++;
        }
        if (n > 0) void this.db.topics.put(key, updated);
        return n;
      });
      total += n;
      if (n < this.options.deletesPerTxn) return total;
    }
  }

  private mustGo(record: TopicRecord, buf: Buffer, now: number): boolean {
    const { maxAgeMs, maxEvents, maxBytes } = record.retention;
    if (maxEvents > 0 && record.events > maxEvents) return true;
    if (maxBytes > 0 && record.bytes > maxBytes) return true;
    const { time, expiresAt } = decodeEventTime(buf);
    if (expiresAt !== null && expiresAt <= now) return true;
    return maxAgeMs > 0 && time + maxAgeMs <= now;
  }

  private async sweepDedup(): Promise<number> {
    return this.db.root.transaction(() => {
      let n = 0;
      for (const key of this.db.dedupExpiry.getKeys({
        end: [this.now(), "", "", ""],
        limit: this.options.deletesPerTxn,
      })) {
        const [expiresAt, tenant, topic, idempotencyKey] = key;
        const current = this.db.dedup.get([tenant, topic, idempotencyKey]);
        if (current?.expiresAt === expiresAt) void this.db.dedup.remove([tenant, topic, idempotencyKey]);
        void this.db.dedupExpiry.remove(key);
        n++;
      }
      return n;
    });
  }
}
