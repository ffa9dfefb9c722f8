/**
 * @module engine/embedded/embedded-engine
 * The default engine: everything on local disk in one LMDB environment, no service to run.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { open, type Database } from "lmdb";
import type { Retention } from "../../streams/event.ts";
import type { Engine } from "../engine.ts";
import { EmbeddedEventLog, type EmbeddedDbs } from "./embedded-event-log.ts";
import type { DedupRecord } from "./records.ts";
import { MemoryBroker } from "./memory-broker.ts";
import { lockDataDir, type DataDirLock } from "./data-dir-lock.ts";
import { RetentionSweeper } from "./retention-sweeper.ts";
import { EmbeddedStateStore, type StateRecord } from "./embedded-state-store.ts";

export interface EmbeddedEngineOptions {
  /** Directory that holds the store (created if missing). */
  readonly dataDir: string;
  readonly dedupWindowMs: number;
  readonly defaultRetention: Retention;
  /** Default 100_000 events. */
  readonly maxPendingEvents?: number;
  /** Default 256 MiB of encoded events. */
  readonly maxPendingBytes?: number;
  /** Pause between retention passes, ms. Default 1000. */
  readonly sweepIntervalMs?: number;
  readonly now?: () => number;
  /** Told once if a storage write fails (the log then refuses writes until restart). */
  readonly onFailure?: (err: unknown) => void;
}

export class EmbeddedEngine implements Engine {
  readonly name = "embedded";
  readonly log: EmbeddedEventLog;
  readonly broker = new MemoryBroker();
  readonly sweeper: RetentionSweeper;
  readonly state: EmbeddedStateStore;
  private closing: Promise<void> | undefined;
  private readonly dbs: EmbeddedDbs;
  private readonly lock: DataDirLock;

  private constructor(dbs: EmbeddedDbs, stateDb: Database<StateRecord, string>, lock: DataDirLock, options: EmbeddedEngineOptions) {
    this.dbs = dbs;
    this.state = new EmbeddedStateStore(stateDb, options.onFailure === undefined ? {} : { onFailure: options.onFailure });
    this.lock = lock;
    const now = options.now ?? Date.now;
    this.log = new EmbeddedEventLog(dbs, {
      dedupWindowMs: options.dedupWindowMs,
      defaultRetention: options.defaultRetention,
      maxPendingEvents: options.maxPendingEvents ?? 100_000,
      maxPendingBytes: options.maxPendingBytes ?? 256 * 1024 * 1024,
      now,
      ...(options.onFailure === undefined ? {} : { onFailure: options.onFailure }),
    });
    this.sweeper = new RetentionSweeper(dbs, this.log, {
      intervalMs: options.sweepIntervalMs ?? 1000,
      topicsPerPass: 1000,
      deletesPerTxn: 2000,
      idleTopicMs: 60_000,
      now,
    });
  }

  static open(options: EmbeddedEngineOptions): EmbeddedEngine {
    mkdirSync(options.dataDir, { recursive: true });
    const lock = lockDataDir(options.dataDir);
    const root = open({
      path: join(options.dataDir, "baton.mdb"),
      maxDbs: 16,
      // Each write's promise resolves at commit and carries `flushed` for its fsync, which is
      // what appends wait for (see EmbeddedEventLog); overlapping sync lets the next batch
      // commit while the previous one is being fsynced.
      overlappingSync: true,
      separateFlushed: true,
    });
    const dbs: EmbeddedDbs = {
      root,
      events: root.openDB({ name: "events", encoding: "binary" }),
      topics: root.openDB({ name: "topics" }),
      dedup: root.openDB<DedupRecord, [string, string, string]>({ name: "dedup" }),
      dedupExpiry: root.openDB<number, [number, string, string, string]>({ name: "dedup-expiry" }),
    };
    const stateDb = root.openDB<StateRecord, string>({ name: "state" });
    const engine = new EmbeddedEngine(dbs, stateDb, lock, options);
    engine.sweeper.start();
    return engine;
  }

  isHealthy(): boolean {
    return this.log.healthy && this.state.healthy;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.log.stopWrites();
      await this.sweeper.stop();
      await this.log.settle();
      await this.state.settle();
      await this.log.flushPositions();
      await this.dbs.root.flushed;
      await this.dbs.root.close();
      this.lock.release();
    })();
    return this.closing;
  }
}
