/**
 * @module edge/ws/durable-subscription
 * One socket's subscription to one topic: delivers every durable event after `lastSent`, in
 * order, exactly once, whatever the interleaving of live notifications, store reads and a slow
 * socket.
 *
 * Two modes. `live`: events arrive from `EventLog.onAppend` (through the gateway's TopicFanout)
 * and are sent if they are the next sequence. `catchup`: events are read from the store from
 * `lastSent + 1` until the reader is at the top, pausing while the socket's buffer is full; live
 * notifications meanwhile only raise `seenHigh`. Any gap, a full buffer, or a notification
 * during catch-up leads to (more) catch-up, never to loss; an event at or below `lastSent` is never sent again. Because the store is the
 * source of truth, a slow socket costs a position, not memory.
 */
import type { EphemeralEvent, EventLog } from "../../engine/engine.ts";
import type { StoredEvent, TopicRef } from "../../streams/event.ts";
import type { FanoutMember, TopicFanout } from "./topic-fanout.ts";

export interface SubscriptionSink {
  /** Queues the event's publication; false when the connection's buffer is over its high-water mark. */
  sendPublication(e: StoredEvent): boolean;
  /** Resolves once the buffer is below its low-water mark (or the connection is gone). */
  drained(): Promise<void>;
  readonly closed: boolean;
  /** An ephemeral event of the subscription's topic (dropped, not queued, when behind). */
  deliverEphemeral(channel: string, event: EphemeralEvent): void;
  /**
   * Called once, after `sub` closed, when its position became unusable: the history it still
   * needed is gone or the topic was recreated. The session tells the client.
   */
  subscriptionLost(sub: DurableSubscription): void;
}

const READ_PAGE = 200;

export class DurableSubscription implements FanoutMember {
  readonly channel: string;
  /** Made by the server (the token's channels), not by a subscribe command. */
  readonly serverSide: boolean;
  /** Highest sequence sent (or skipped as expired) to this socket. */
  lastSent: number;
  readonly epoch: string;
  private mode: "starting" | "live" | "catchup" | "closed" = "starting";
  private seenHigh = 0;
  private readonly fanout: TopicFanout<DurableSubscription>;
  private readonly log: EventLog;
  private readonly ref: TopicRef;
  private readonly sink: SubscriptionSink;

  /** Starts listening at once; nothing is sent until `begin()` (after the subscribe reply). */
  constructor(fanout: TopicFanout<DurableSubscription>, log: EventLog, ref: TopicRef, channel: string, epoch: string, lastSent: number, sink: SubscriptionSink, serverSide: boolean) {
    this.fanout = fanout;
    this.log = log;
    this.ref = ref;
    this.channel = channel;
    this.epoch = epoch;
    this.lastSent = lastSent;
    this.sink = sink;
    this.serverSide = serverSide;
    fanout.join(ref, this);
  }

  /** Sends `events` (already read, e.g. recovered ones in the reply) as part of the stream. */
  markSent(upTo: number): void {
    if (upTo > this.lastSent) this.lastSent = upTo;
  }

  /** Called once the subscribe reply is written: catches up from the store, then goes live. */
  begin(): void {
    void this.catchUp();
  }

  close(): void {
    if (this.mode === "closed") return;
    this.mode = "closed";
    this.fanout.leave(this.ref, this);
  }

  /** Ephemeral events are at-most-once and not ordered with durable ones: sent as they come, once begun. */
  onEphemeral(event: EphemeralEvent): void {
    if (this.mode === "starting" || this.mode === "closed") return;
    this.sink.deliverEphemeral(this.channel, event);
  }

  onLive(events: readonly StoredEvent[], epoch: string): void {
    const top = events[events.length - 1]!.seq;
    if (top > this.seenHigh) this.seenHigh = top;
    // Before begin() and during catch-up the store read does the work (and sees an epoch change).
    if (this.mode !== "live") return;
    if (epoch !== this.epoch) {
      // The topic was deleted and recreated: this position belongs to a history that is gone.
      this.lose();
      return;
    }
    for (const e of events) {
      if (e.seq <= this.lastSent) continue;
      if (e.seq !== this.lastSent + 1) {
        void this.catchUp();
        return;
      }
      this.lastSent = e.seq;
      if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) continue;
      if (!this.sink.sendPublication(e)) {
        void this.catchUp();
        return;
      }
    }
  }

  private async catchUp(): Promise<void> {
    if (this.mode === "catchup" || this.mode === "closed") return;
    this.mode = "catchup";
    try {
      for (;;) {
        if (this.isClosed()) return;
        await this.sink.drained();
        if (this.isClosed()) return;
        const page = await this.log.read(this.ref, this.lastSent + 1, READ_PAGE);
        if (this.isClosed()) return;
        if (page.epoch !== this.epoch || page.firstSeq > this.lastSent + 1) {
          // History this socket still needed is gone (retention, or the topic was recreated).
          this.lose();
          return;
        }
        let full = false;
        for (const e of page.events) {
          if (e.seq <= this.lastSent) continue;
          full = !this.sink.sendPublication(e);
          this.lastSent = e.seq;
          if (full) break;
        }
        if (!full && page.next - 1 > this.lastSent) this.lastSent = page.next - 1;
        if (full) continue;
        if (page.next > page.lastSeq && this.seenHigh <= this.lastSent) {
          this.mode = "live";
          return;
        }
      }
    } catch {
      // TOPIC_NOT_FOUND (deleted) or a failed read: the client resubscribes and recovers.
      this.lose();
    }
  }

  private isClosed(): boolean {
    return this.mode === "closed" || this.sink.closed;
  }

  private lose(): void {
    if (this.isClosed()) return;
    this.close();
    this.sink.subscriptionLost(this);
  }
}
