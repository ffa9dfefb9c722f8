/**
 * @module edge/ws/session-clock
 * One coarse timer for the deadlines of every socket (connect timeout, pings, token expiry),
 * instead of a Node timer per socket and deadline. A Node `Timeout` with its callback closure
 * costs a few hundred bytes of heap that stay for as long as the socket does; at tens of
 * thousands of idle sockets those were a large share of what an idle connection held
 * (docs/benchmarks.md, "Memory per idle connection"). A deadline runs at the first tick that
 * finds its slot due: never early, and up to two ticks late (its slot's end, plus the interval's
 * phase).
 */

/** Something with deadlines: the clock keeps its slot in the item itself (no side map per item). */
export interface ClockClient {
  /** The slot the item is scheduled in; 0 when it is not scheduled. Owned by the clock. */
  clockSlot: number;
  /** A scheduled deadline has passed. The item reschedules itself if it has another. */
  onClock(now: number): void;
}

export interface SessionClockOptions {
  /** Resolution, ms. Default 250. */
  readonly tickMs?: number;
  readonly now?: () => number;
  /** Called when an item's onClock throws (the others still run). */
  readonly onError?: (err: unknown) => void;
}

export class SessionClock<T extends ClockClient> {
  private readonly slots = new Map<number, Set<T>>();
  private readonly tickMs: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private timer: NodeJS.Timeout | undefined;
  /** The first slot not yet run. */
  private nextSlot = 0;
  private scheduled = 0;

  constructor(options: SessionClockOptions = {}) {
    this.tickMs = options.tickMs ?? 250;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => undefined);
  }

  /** Items currently scheduled. */
  get size(): number {
    return this.scheduled;
  }

  /** (Re)schedules `item` for `atMs` (epoch ms); a deadline already past runs at the next tick. */
  schedule(item: T, atMs: number): void {
    this.cancel(item);
    if (this.timer === undefined) {
      this.nextSlot = Math.floor(this.now() / this.tickMs) + 1;
      this.timer = setInterval(() => this.runDue(this.now()), this.tickMs);
      this.timer.unref();
    }
    const slot = Math.max(Math.ceil(atMs / this.tickMs), this.nextSlot);
    let set = this.slots.get(slot);
    if (set === undefined) {
      set = new Set();
      this.slots.set(slot, set);
    }
    set.add(item);
    item.clockSlot = slot;
    this.scheduled += 1;
  }

  cancel(item: T): void {
    if (item.clockSlot === 0) return;
    const set = this.slots.get(item.clockSlot);
    if (set !== undefined && set.delete(item)) {
      this.scheduled -= 1;
      if (set.size === 0) this.slots.delete(item.clockSlot);
    }
    item.clockSlot = 0;
    if (this.scheduled === 0) this.stop();
  }

  /** Runs every slot up to `now`. The interval calls it; tests may call it with their own time. */
  runDue(now: number): void {
    const last = Math.floor(now / this.tickMs);
    while (this.nextSlot <= last) {
      // Advance first: an item rescheduled from its callback lands in a later slot, which this
      // loop still reaches if that slot is due too.
      const slot = this.nextSlot++;
      const set = this.slots.get(slot);
      if (set === undefined) continue;
      this.slots.delete(slot);
      this.scheduled -= set.size;
      for (const item of set) {
        item.clockSlot = 0;
        try {
          item.onClock(now);
        } catch (err) {
          this.onError(err);
        }
      }
    }
    if (this.scheduled === 0) this.stop();
  }

  /** Stops the timer; items scheduled later start it again. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
