/**
 * @module streams/groups/deadline-heap
 * A min-heap of (deadline, item) for retry delays and lease expiries. Entries are not removed
 * when they stop mattering (an ack before the lease ends); the caller checks on pop whether the
 * deadline still applies, which keeps every operation O(log n).
 */

export class DeadlineHeap<T> {
  private readonly at: number[] = [];
  private readonly items: T[] = [];

  get size(): number {
    return this.at.length;
  }

  /** The earliest deadline, or undefined when empty. */
  peek(): number | undefined {
    return this.at[0];
  }

  push(deadline: number, item: T): void {
    this.at.push(deadline);
    this.items.push(item);
    let i = this.at.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.at[parent]! <= deadline) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes and returns the earliest item if its deadline is <= now. */
  popDue(now: number): T | undefined {
    if (this.at.length === 0 || this.at[0]! > now) return undefined;
    const item = this.items[0]!;
    const lastAt = this.at.pop()!;
    const lastItem = this.items.pop()!;
    if (this.at.length > 0) {
      this.at[0] = lastAt;
      this.items[0] = lastItem;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.at.length && this.at[l]! < this.at[m]!) m = l;
        if (r < this.at.length && this.at[r]! < this.at[m]!) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return item;
  }

  clear(): void {
    this.at.length = 0;
    this.items.length = 0;
  }

  private swap(a: number, b: number): void {
    [this.at[a], this.at[b]] = [this.at[b]!, this.at[a]!];
    [this.items[a], this.items[b]] = [this.items[b]!, this.items[a]!];
  }
}
