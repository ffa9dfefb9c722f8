/**
 * @module engine/nats/message-index
 * Per topic, which stream message holds which topic sequences, for the messages this node has
 * appended, been told of or read. Reads of recent events (the common case: consumers close to
 * the head) find their messages here and fetch them in parallel; anything older is found by
 * binary search in the stream (SubjectReader.search). Bounded: the oldest entries are dropped.
 */
export class MessageIndex {
  /** Parallel arrays sorted by topic sequence: first sequence, count, stream sequence. */
  private readonly firsts: number[] = [];
  private readonly counts: number[] = [];
  private readonly streamSeqs: number[] = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  add(firstSeq: number, count: number, streamSeq: number): void {
    const n = this.firsts.length;
    if (n > 0 && firstSeq <= this.firsts[n - 1]!) {
      // Out of order (a read of older messages): insert unless known.
      const i = this.lowerBound(firstSeq);
      if (this.firsts[i] === firstSeq) return;
      this.firsts.splice(i, 0, firstSeq);
      this.counts.splice(i, 0, count);
      this.streamSeqs.splice(i, 0, streamSeq);
    } else {
      this.firsts.push(firstSeq);
      this.counts.push(count);
      this.streamSeqs.push(streamSeq);
    }
    if (this.firsts.length > this.max) {
      const drop = this.firsts.length - this.max;
      this.firsts.splice(0, drop);
      this.counts.splice(0, drop);
      this.streamSeqs.splice(0, drop);
    }
  }

  /**
   * Stream sequences of the contiguous run of known messages starting with the one that holds
   * `seq`, covering at least `events` events (fewer if the run ends); empty if `seq` is not known.
   */
  run(seq: number, events: number): number[] {
    let i = this.lowerBound(seq + 1) - 1;
    if (i < 0 || this.firsts[i]! + this.counts[i]! <= seq) return [];
    const out: number[] = [];
    let covered = 0;
    let expect = this.firsts[i]!;
    while (i < this.firsts.length && covered < events && this.firsts[i] === expect) {
      out.push(this.streamSeqs[i]!);
      covered += this.firsts[i]! + this.counts[i]! - Math.max(seq, this.firsts[i]!);
      expect = this.firsts[i]! + this.counts[i]!;
      i++;
    }
    return out;
  }

  clear(): void {
    this.firsts.length = 0;
    this.counts.length = 0;
    this.streamSeqs.length = 0;
  }

  /** First index whose first sequence is >= seq. */
  private lowerBound(seq: number): number {
    let lo = 0;
    let hi = this.firsts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.firsts[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
