/**
 * @module engine/nats/retention-sweeper
 * Applies each topic's retention (age, count, bytes). Stream limits cannot: they apply to the
 * whole tenant stream, and each topic has its own. A pass walks the topic records and asks
 * the log to trim each topic with a limit (NatsEventLog.trim): it moves the topic's `firstSeq`
 * in its record first (readers stop returning the events at once) and then purges the
 * subject's messages below it. Every node runs one; trims are compare-and-set on the record
 * and purges are idempotent, so concurrent sweepers are harmless, only redundant.
 */
import type { NatsEventLog } from "./nats-event-log.ts";

export interface NatsSweeperOptions {
  /** Pause between passes, ms; 0 = never run on a timer. */
  readonly intervalMs: number;
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  private readonly log: NatsEventLog;
  private readonly options: NatsSweeperOptions;

  constructor(log: NatsEventLog, options: NatsSweeperOptions) {
    this.log = log;
    this.options = options;
  }

  start(): void {
    if (this.options.intervalMs <= 0) return;
    const tick = (): void => {
      this.running = this.pass()
        .catch(() => 0)
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every topic with a retention limit. Returns the events reclaimed. */
  async pass(): Promise<number> {
    let reclaimed = 0;
    for (const ref of await this.log.topicsWithRetention()) {
      if (this.stopped) break;
      reclaimed += await this.log.trim(ref).catch(() => 0);
    }
    return reclaimed;
  }
}
