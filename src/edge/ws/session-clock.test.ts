import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionClock, type ClockClient } from "./session-clock.ts";

class Item implements ClockClient {
  clockSlot = 0;
  readonly fired: number[] = [];
  next: ((now: number) => number | undefined) | undefined;
  readonly clock: SessionClock<Item>;
  constructor(clock: SessionClock<Item>) {
    this.clock = clock;
  }
  onClock(now: number): void {
    this.fired.push(now);
    const at = this.next?.(now);
    if (at !== undefined) this.clock.schedule(this, at);
  }
}

function clockAt(start: number): { clock: SessionClock<Item>; time: { now: number } } {
  const time = { now: start };
  // A tick far longer than the test: only runDue moves it.
  return { clock: new SessionClock<Item>({ tickMs: 100, now: () => time.now }), time };
}

test("a deadline fires at the first tick at or after it, never before", () => {
  const { clock } = clockAt(10_000);
  const item = new Item(clock);
  clock.schedule(item, 10_250);
  clock.runDue(10_200);
  assert.deepEqual(item.fired, []);
  clock.runDue(10_299);
  assert.deepEqual(item.fired, []);
  clock.runDue(10_300);
  assert.deepEqual(item.fired, [10_300]);
  assert.equal(item.clockSlot, 0);
  assert.equal(clock.size, 0);
  clock.runDue(20_000);
  assert.deepEqual(item.fired, [10_300], "fires once");
  clock.stop();
});

test("cancel and reschedule: only the latest deadline counts", () => {
  const { clock } = clockAt(0);
  const a = new Item(clock);
  const b = new Item(clock);
  clock.schedule(a, 500);
  clock.schedule(b, 500);
  clock.schedule(a, 900);
  clock.cancel(b);
  assert.equal(clock.size, 1);
  clock.runDue(600);
  assert.deepEqual(a.fired, []);
  assert.deepEqual(b.fired, []);
  clock.runDue(900);
  assert.deepEqual(a.fired, [900]);
  assert.deepEqual(b.fired, []);
  clock.stop();
});

test("a deadline in the past runs at the next tick; a callback may reschedule itself", () => {
  const { clock } = clockAt(1_000);
  const item = new Item(clock);
  const deadlines = [1_250, 1_400];
  item.next = () => deadlines.shift();
  clock.schedule(item, 0);
  clock.runDue(1_100);
  assert.deepEqual(item.fired, [1_100]);
  // One late call runs every slot in between: the deadline the item set from its own callback
  // (1,400, already past at 2,000) lands in a later slot, which the same call still runs.
  clock.runDue(2_000);
  assert.deepEqual(item.fired, [1_100, 2_000, 2_000]);
  assert.equal(clock.size, 0);
  clock.stop();
});

test("one item's throw does not stop the others", () => {
  const errors: unknown[] = [];
  const clock = new SessionClock<ClockClient>({ tickMs: 100, onError: (err) => errors.push(err) });
  const seen: string[] = [];
  const bad: ClockClient = { clockSlot: 0, onClock: () => { throw new Error("boom"); } };
  const good: ClockClient = { clockSlot: 0, onClock: () => void seen.push("good") };
  const t = Date.now();
  clock.schedule(bad, t);
  clock.schedule(good, t);
  clock.runDue(t + 1_000);
  assert.deepEqual(seen, ["good"]);
  assert.equal(errors.length, 1);
  clock.stop();
});

test("the real timer runs due items by itself", async () => {
  const clock = new SessionClock<ClockClient>({ tickMs: 20 });
  const fired = await new Promise<number>((resolve) => {
    const item: ClockClient = { clockSlot: 0, onClock: (now) => resolve(now) };
    clock.schedule(item, Date.now() + 30);
  });
  assert.ok(fired >= 0);
  assert.equal(clock.size, 0);
  clock.stop();
});
