/**
 * @module engine/nats/tenant-streams
 * One JetStream stream per tenant, created on first use. A stream per tenant (not per topic)
 * keeps the number of streams, and of Raft groups on a replicated cluster, at the number of
 * tenants, whatever the number of topics; docs/scaling.md has the measurements.
 *
 * Retention is not a stream limit: limits apply to a whole stream, while each topic has its
 * own (the sweeper trims topics one by one). The duplicate window only backs publish retries
 * after a lost ack (Nats-Msg-Id per attempt); idempotency keys live in DedupIndex.
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { NatsNames } from "./names.ts";
import { isStreamNotFound } from "./subject-reader.ts";

export class TenantStreams {
  private readonly ensured = new Map<string, Promise<void>>();
  private readonly jsm: JetStreamManager;
  private readonly names: NatsNames;
  private readonly replicas: number;

  constructor(jsm: JetStreamManager, names: NatsNames, replicas: number) {
    this.jsm = jsm;
    this.names = names;
    this.replicas = replicas;
  }

  /** Creates the tenant's stream unless this process already knows it exists. */
  ensure(tenant: string): Promise<void> {
    let p = this.ensured.get(tenant);
    if (p === undefined) {
      p = this.create(tenant);
      this.ensured.set(tenant, p);
      p.catch(() => this.ensured.delete(tenant));
    }
    return p;
  }

  /** Forgets that the stream exists (it was deleted under us). */
  forget(tenant: string): void {
    this.ensured.delete(tenant);
  }

  async purgeSubject(tenant: string, subject: string): Promise<void> {
    await this.jsm.streams.purge(this.names.tenantStream(tenant), { filter: subject });
  }

  /** Purges a subject's messages below `streamSeq` (the retention trim). */
  async purgeBefore(tenant: string, subject: string, streamSeq: number): Promise<void> {
    await this.jsm.streams.purge(this.names.tenantStream(tenant), { filter: subject, seq: streamSeq });
  }

  /**
   * Messages stored per topic subject of the tenant's stream (subjects with none are absent):
   * one stream info request with a subject filter, about 1–3 µs of nats-server CPU per subject.
   */
  async subjectCounts(tenant: string): Promise<ReadonlyMap<string, number>> {
    try {
      const info = await this.jsm.streams.info(this.names.tenantStream(tenant), { subjects_filter: this.names.tenantSubjects(tenant) });
      return new Map(Object.entries(info.state.subjects ?? {}));
    } catch (err) {
      if (isStreamNotFound(err)) return new Map();
      throw err;
    }
  }

  private async create(tenant: string): Promise<void> {
    // Adding a stream with an identical config is a no-op on the server, so nodes racing here agree.
    await this.jsm.streams.add({
      name: this.names.tenantStream(tenant),
      subjects: [this.names.tenantSubjects(tenant)],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: this.replicas,
      allow_direct: true,
      duplicate_window: nanos(120_000),
    });
  }
}
