/**
 * @module engine/nats/nats-engine
 * The clustered engine: any number of stateless Baton nodes on one NATS JetStream (2.9+).
 * Durable events in one stream per tenant (NatsEventLog), keyed state, topic records and
 * idempotency keys in KV buckets, fan-out and messages between nodes (NatsBus) on core NATS
 * subjects; retention applied by one node of the prefix at a time (RetentionSweeper, which
 * holds a lease in the topics bucket). The design, its limits on a 2.9 server and its
 * measurements are in docs/scaling.md.
 */
import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { BatonError } from "../../errors/baton-error.ts";
import type { Retention } from "../../streams/event.ts";
import type { Engine } from "../engine.ts";
import { DedupIndex } from "./dedup-index.ts";
import { KvLease } from "./kv-lease.ts";
import { NatsNames } from "./names.ts";
import { NatsBroker } from "./nats-broker.ts";
import { NatsBus } from "./nats-bus.ts";
import { NatsEventLog } from "./nats-event-log.ts";
import { NatsStateStore } from "./nats-state-store.ts";
import { RetentionSweeper } from "./retention-sweeper.ts";
import { TenantStreams } from "./tenant-streams.ts";
import { TopicCatalog } from "./topic-catalog.ts";
import { TopicRecords } from "./topic-records.ts";

export interface NatsEngineOptions {
  /** e.g. "nats://127.0.0.1:4222" (or several, comma-separated). */
  readonly servers: string;
  /** Names of streams, buckets and subjects start with it (letters, digits, _). Default "baton". */
  readonly prefix?: string;
  /** Replicas of every stream and bucket: 1 for a single server, 3 in production (see docs/scaling.md). */
  readonly replicas?: number;
  readonly dedupWindowMs: number;
  readonly defaultRetention: Retention;
  /** Default 100_000 events queued on this node. */
  readonly maxPendingEvents?: number;
  /** A pending idempotency reservation older than this is presumed abandoned, ms. Default 10_000. */
  readonly reservationStaleMs?: number;
  /** How long a node trusts its cached topic record, ms. Default 1000. */
  readonly recordCacheMs?: number;
  /** Pause between retention passes, ms; 0 disables the sweeper (and its lease). Default 5000. */
  readonly sweepIntervalMs?: number;
  /**
   * The sweeper lease's ttl, ms: one node of the prefix sweeps; if it dies, another takes over
   * after this long (at once after a clean close). Default 10_000.
   */
  readonly sweepLeaseTtlMs?: number;
  readonly now?: () => number;
  /**
   * Keep the NATS client's async stack traces: every request then builds two Error objects
   * (their stacks name the caller of a request that timed out). Default false: without them a
   * read of 100 events took 28–37% less of the node's CPU, a single append 0–19% (docs/scaling.md).
   */
  readonly asyncTraces?: boolean;
  /** Connection name shown by the server (e.g. the node id). */
  readonly name?: string;
}

/** The retention sweeper's lease, in the topics bucket (never a topic key: those are `<hex>.<hex>`). */
export const SWEEPER_LEASE_KEY = "sweeper";

export class NatsEngine implements Engine {
  readonly name = "nats";
  readonly log: NatsEventLog;
  readonly broker: NatsBroker;
  readonly bus: NatsBus;
  readonly state: NatsStateStore;
  readonly sweeper: RetentionSweeper;
  readonly names: NatsNames;
  private closing: Promise<void> | undefined;
  private readonly nc: NatsConnection;

  private constructor(nc: NatsConnection, names: NatsNames, log: NatsEventLog, state: NatsStateStore, sweeper: RetentionSweeper) {
    this.nc = nc;
    this.names = names;
    this.log = log;
    this.state = state;
    this.broker = new NatsBroker(nc, names);
    this.bus = new NatsBus(nc, names);
    this.sweeper = sweeper;
  }

  static async open(options: NatsEngineOptions): Promise<NatsEngine> {
    const names = new NatsNames(options.prefix ?? "baton");
    const replicas = options.replicas ?? 1;
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers.split(","),
        name: options.name ?? "baton",
        maxReconnectAttempts: -1,
        noAsyncTraces: options.asyncTraces !== true,
      });
    } catch (err) {
      throw new BatonError("UNAVAILABLE", `cannot reach NATS at ${options.servers}: ${(err as Error).message} (is nats-server running with -js?)`, { cause: err });
    }
    try {
      const jsm = await jetstreamManager(nc).catch((err: unknown) => {
        throw new BatonError("UNAVAILABLE", `NATS at ${options.servers} has no JetStream: ${(err as Error).message} (start nats-server with -js)`, { cause: err });
      });
      // Direct gets answer in about a millisecond; one that gets no answer (nats-server 2.9
      // drops one that lands while the stream is being created) is retried soon instead of
      // holding its read or append for the default 5 s (SubjectReader).
      const directJsm = await jetstreamManager(nc, { timeout: 1500 });
      const js = jetstream(nc);
      const kvm = new Kvm(js);
      const bucket = (role: "topics" | "dedup" | "state", extra: { ttl?: number } = {}): Promise<KV> =>
        kvm.create(names.bucket(role), { history: 1, replicas, ...extra });
      const [topicsKv, dedupKv, stateKv] = await Promise.all([
        bucket("topics"),
        // Keys are checked against their own expiry; the bucket's max age only reclaims them.
        bucket("dedup", { ttl: options.dedupWindowMs + 60_000 }),
        bucket("state"),
      ]);
      const now = options.now ?? Date.now;
      const streams = new TenantStreams(jsm, names, replicas);
      const records = new TopicRecords(topicsKv);
      const log = new NatsEventLog(
        { nc, js, jsm, directJsm, streams, records, dedup: new DedupIndex(dedupKv, options.reservationStaleMs ?? 10_000), names },
        {
          dedupWindowMs: options.dedupWindowMs,
          defaultRetention: options.defaultRetention,
          maxPendingEvents: options.maxPendingEvents ?? 100_000,
          // Headroom under the server's max_payload for the headers.
          maxPayload: nc.info!.max_payload - 4096,
          recordCacheMs: options.recordCacheMs ?? 1000,
          now,
        },
      );
      // One sweeper per prefix: the holder of this lease, next to the topic records it sweeps.
      const lease = new KvLease({ kv: topicsKv, key: SWEEPER_LEASE_KEY, nodeId: `${options.name ?? "baton"}#${randomBytes(4).toString("hex")}`, ttlMs: options.sweepLeaseTtlMs ?? 10_000, now: Date.now });
      const sweeper = new RetentionSweeper({ log, catalog: new TopicCatalog(topicsKv), lease, names }, { intervalMs: options.sweepIntervalMs ?? 5000, now });
      const engine = new NatsEngine(nc, names, log, new NatsStateStore(stateKv), sweeper);
      sweeper.start();
      return engine;
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  isHealthy(): boolean {
    return !this.nc.isClosed();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.log.stopWrites();
      await this.sweeper.stop();
      await this.log.settle();
      await this.state.settle();
      this.broker.close();
      this.bus.close();
      await this.nc.drain().catch(() => this.nc.close());
    })();
    return this.closing;
  }
}
