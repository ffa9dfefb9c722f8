/**
 * @module engine/embedded/embedded-engine
 * The default engine: everything on local disk in one LMDB environment, no service to run.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import type { Retention } from "../../streams/event.ts";
import type { Engine } from "../engine.ts";
import { EmbeddedEventLog, type EmbeddedDbs } from "./embedded-event-log.ts";
import type { DedupRecord } from "./records.ts";
import { RetentionSweeper } from "./retention-sweeper.ts";

export interface EmbeddedEngineOptions {
  /** Directory that holds the store (created if missing). */
  readonly dataDir: string;
  readonly dedupWindowMs: number;
  readonly defaultRetention: Retention;
  /** Default 100_000 events. */
  readonly maxPendingEvents?: number;
  /** Pause between retention passes, ms. Default 1000. */
  readonly sweepIntervalMs?: number;
  readonly now?: () => number;
}

export class EmbeddedEngine implements Engine {
  readonly name = "embedded";
  readonly log: EmbeddedEventLog;
  readonly sweeper: RetentionSweeper;
  private closing: Promise<void> | undefined;
  private readonly dbs: EmbeddedDbs;

  private constructor(dbs: EmbeddedDbs, options: EmbeddedEngineOptions) {
    this.dbs = dbs;
    const now = options.now ?? Date.now;
    this.log = new EmbeddedEventLog(dbs, {
      dedupWindowMs: options.dedupWindowMs,
      defaultRetention: options.defaultRetention,
      maxPendingEvents: options.maxPendingEvents ?? 100_000,
      now,
    });
    this.sweeper = new RetentionSweeper(dbs, {
      intervalMs: options.sweepIntervalMs ?? 1000,
      topicsPerPass: 1000,
      deletesPerTxn: 2000,
      now,
    });
  }

  static open(options: EmbeddedEngineOptions): EmbeddedEngine {
    mkdirSync(options.dataDir, { recursive: true });
    const root = open({
      path: join(options.dataDir, "baton.mdb"),
      maxDbs: 16,
      // Durability comes from awaiting `flushed` after each commit (see EmbeddedEventLog);
      // overlapping sync lets the next batch commit while the previous one is being fsynced.
      overlappingSync: true,
    });
    const dbs: EmbeddedDbs = {
      root,
      events: root.openDB({ name: "events", encoding: "binary" }),
      topics: root.openDB({ name: "topics" }),
      dedup: root.openDB<DedupRecord, [string, string, string]>({ name: "dedup" }),
      dedupExpiry: root.openDB<number, [number, string, string, string]>({ name: "dedup-expiry" }),
    };
    const engine = new EmbeddedEngine(dbs, options);
    engine.sweeper.start();
    return engine;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.log.stopWrites();
      await this.sweeper.stop();
      while (this.log.pending > 0) await new Promise((r) => setTimeout(r, 5));
      await this.dbs.root.flushed;
      await this.dbs.root.close();
    })();
    return this.closing;
  }
}
