/**
 * @module engine/nats/retention-sweeper
 * Applies each topic's retention (age, count, bytes). Stream limits cannot: they apply to the
 * whole tenant stream, and each topic has its own.
 *
 * **One sweeper per cluster.** Every node runs a RetentionSweeper, but only the holder of the
 * sweeper lease (a KvLease on the key `sweeper` of the topics bucket) sweeps; the others only
 * check the lease every ttl/5. Trims are compare-and-set on the record and purges are
 * idempotent, so a brief overlap during a takeover would be redundant, not unsafe; the lease is
 * there for the cost: at steady state exactly one node sweeps.
 *
 * **A pass skips what cannot have anything to reclaim.** The active sweeper keeps the records
 * with a limit in memory (TopicCatalog: a watch on the bucket, so a pass does not list it) and,
 * per topic, what its last visit learnt (`Memo`, valid while the record's revision is the one
 * visited). A topic is visited (NatsEventLog.sweepTopic) only if:
 * - an age limit may have passed: `now >= oldest + maxAge`, where `oldest` is the time of its
 *   first stored message (from the last visit), or, with no visit yet, the record's `createdAt`
 *   or `keptSince` (what the last trim kept): no event of the topic can be older;
 * - or, for a count or byte limit, its subject's message count changed since the last visit
 *   (one stream info request per tenant per pass, with a subject filter, gives every topic's
 *   count): appends add messages, and only trims and deletes remove them, which change the
 *   record's revision.
 * Topics with no limit are not in the catalog at all. So an idle topic costs no round trip at
 * all per pass, whatever its limits.
 */
import type { TopicRef } from "../../streams/event.ts";
import type { KvLease } from "./kv-lease.ts";
import type { NatsNames } from "./names.ts";
import type { NatsEventLog } from "./nats-event-log.ts";
import { refOfKey, type CatalogEntry, type TopicCatalog } from "./topic-catalog.ts";

export interface NatsSweeperOptions {
  /** Pause between passes, ms; 0 = never run on a timer (nor contend for the lease). */
  readonly intervalMs: number;
  /** The clock of event times (NatsEngineOptions.now). */
  readonly now: () => number;
}

/** What the last visit of a topic learnt; valid while the record's revision is `revision`. */
interface Memo {
  readonly revision: number;
  /** No visible event of the topic is older than this, nor will any appended later be (ms). */
  readonly oldest: number;
  /** The topic's first stored message is at or after this stream sequence. */
  readonly firstStreamSeq: number;
  /** The subject's message count when it was visited, if its tenant's counts were read then. */
  readonly msgs: number | undefined;
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  private passCount = 0;
  private visitCount = 0;
  private readonly log: NatsEventLog;
  private readonly catalog: TopicCatalog<Memo>;
  private readonly lease: KvLease;
  private readonly names: NatsNames;
  private readonly options: NatsSweeperOptions;

  constructor(parts: { log: NatsEventLog; catalog: TopicCatalog<Memo>; lease: KvLease; names: NatsNames }, options: NatsSweeperOptions) {
    this.log = parts.log;
    this.catalog = parts.catalog;
    this.lease = parts.lease;
    this.names = parts.names;
    this.options = options;
  }

  /** True while this node holds the sweeper lease (so its timer sweeps). */
  get active(): boolean {
    return this.lease.active;
  }

  /** Passes run by this node (timer or explicit). */
  get passes(): number {
    return this.passCount;
  }

  /** Topics visited (a round trip or more each) by this node's passes. */
  get visits(): number {
    return this.visitCount;
  }

  start(): void {
    if (this.options.intervalMs <= 0) return;
    this.lease.start();
    const tick = (): void => {
      const sweep = this.lease.active;
      // A node that does not sweep keeps no catalog (memory, and the watch's traffic).
      if (!sweep && this.catalog.running) this.catalog.stop();
      this.running = (sweep ? this.sweep(() => this.lease.active) : Promise.resolve(0))
        .catch(() => 0)
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs).unref();
  }

  /** Stops sweeping, then gives the lease back (so another node takes over at its next check). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.catalog.stop();
    await this.lease.close();
  }

  /** One pass now, whether or not this node holds the lease. Returns the events reclaimed. */
  pass(): Promise<number> {
    return this.sweep(() => true);
  }

  /** One pass over the topics with a limit, visiting only those that may have something to reclaim. */
  private async sweep(mayContinue: () => boolean): Promise<number> {
    this.passCount += 1;
    await this.catalog.sync();
    const now = this.options.now();
    // Per tenant with a count or byte limit somewhere, its subjects' message counts (read once per pass).
    const counts = new Map<string, Promise<ReadonlyMap<string, number> | undefined>>();
    let reclaimed = 0;
    for (const entry of this.catalog.entries.values()) {
      if (this.stopped || !mayContinue()) break;
      const { record, revision } = entry;
      if (record.deleting === true) continue;
      const r = record.retention;
      const memo = entry.memo !== undefined && entry.memo.revision === revision ? entry.memo : undefined;
      const oldest = memo?.oldest ?? Math.max(record.createdAt, record.keptSince ?? 0);
      let visit = r.maxAgeMs > 0 && now >= oldest + r.maxAgeMs;
      let ref: TopicRef | undefined;
      let msgs: number | undefined;
      if (r.maxEvents > 0 || r.maxBytes > 0) {
        ref = refOfKey(entry.key);
        let tenantCounts = counts.get(ref.tenant);
        if (tenantCounts === undefined) {
          tenantCounts = this.log.subjectCounts(ref.tenant).catch(() => undefined);
          counts.set(ref.tenant, tenantCounts);
        }
        // Unknown (the request failed): visit, as with no memo.
        const known = await tenantCounts;
        msgs = known === undefined ? undefined : (known.get(this.names.topicSubject(ref.tenant, ref.topic)) ?? 0);
        if (msgs === undefined || memo?.msgs !== msgs) visit = true;
      }
      if (visit) reclaimed += await this.visit(entry, ref ?? refOfKey(entry.key), memo, msgs);
    }
    return reclaimed;
  }

  private async visit(entry: CatalogEntry<Memo>, ref: TopicRef, memo: Memo | undefined, msgs: number | undefined): Promise<number> {
    this.visitCount += 1;
    const { record, revision } = entry;
    const hint = { firstStreamSeq: memo?.firstStreamSeq ?? 1, ...(memo === undefined ? {} : { oldest: memo.oldest }) };
    const outcome = await this.log.sweepTopic(ref, { record, revision }, hint).catch(() => undefined);
    if (outcome === undefined) {
      entry.memo = undefined;
      return 0;
    }
    // After a purge the message count is no longer `msgs`: unknown until the next pass reads it.
    entry.memo = { revision: outcome.revision, oldest: outcome.oldest, firstStreamSeq: outcome.firstStreamSeq, msgs: outcome.purged ? undefined : msgs };
    return outcome.reclaimed;
  }
}
