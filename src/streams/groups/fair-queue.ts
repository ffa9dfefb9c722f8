/**
 * @module streams/groups/fair-queue
 * The ready events of a group, served round-robin across keys: each turn takes the oldest ready
 * event of the next key in the rotation, so a key with ten thousand ready events and a key with
 * one get served alternately. Keys (and keyless events, which share one lane) enter the rotation
 * when they get a ready event and leave it when they have none.
 */

class Lane<T> {
  readonly items: T[] = [];
  head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = undefined as T;
    this.head += 1;
    // Compact now and then so a long-lived lane does not keep a growing dead prefix.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return item;
  }
}

export class FairQueue<T> {
  private readonly lanes = new Map<string, Lane<T>>();
  private readonly rotation = new Lane<string>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `item` behind the other ready items of `lane`. */
  push(lane: string, item: T): void {
    this.lane(lane).push(item);
  }

  /** Adds `item` in front of the other ready items of `lane` (a retry keeps its place). */
  pushFront(lane: string, item: T): void {
    this.lane(lane).unshift(item);
  }

  /** The next item in round-robin order across lanes. */
  shift(): T | undefined {
    for (;;) {
      const name = this.rotation.shift();
      if (name === undefined) return undefined;
      const lane = this.lanes.get(name);
      const item = lane?.shift();
      if (lane === undefined || item === undefined) {
        this.lanes.delete(name);
        continue;
      }
      this.count -= 1;
      if (lane.size > 0) this.rotation.push(name);
      else this.lanes.delete(name);
      return item;
    }
  }

  /** Removes every item for which `drop` is true (rare: reset, delete). */
  removeWhere(drop: (item: T) => boolean): void {
    for (const [name, lane] of this.lanes) {
      const keep = lane.items.slice(lane.head).filter((i) => !drop(i));
      this.count -= lane.size - keep.length;
      if (keep.length === 0) this.lanes.delete(name);
      else {
        lane.items.length = 0;
        lane.items.push(...keep);
        lane.head = 0;
      }
    }
  }

  private lane(name: string): Lane<T> {
    let lane = this.lanes.get(name);
    if (lane === undefined) {
      lane = new Lane<T>();
      this.lanes.set(name, lane);
      this.rotation.push(name);
    }
    this.count += 1;
    return lane;
  }
}
