/**
 * @module edge/ws/topic-fanout
 * The gateway's local fan-out: one append listener and one ephemeral listener per topic with
 * at least one subscribed socket, however many sockets subscribe to it. Each subscription is
 * then an entry in its topic's set rather than two listeners and their removers registered
 * with the engine: about 300 bytes less per subscription, and an idle socket holds two (its
 * topic and its personal channel).
 *
 * Delivery is as the engine's: in order, at most once, and a member that throws does not stop
 * the others.
 */
import type { AppendListener, Broker, EphemeralEvent, EventLog } from "../../engine/engine.ts";
import type { StoredEvent, TopicRef } from "../../streams/event.ts";

export interface FanoutMember {
  onLive(events: readonly StoredEvent[], epoch: string): void;
  onEphemeral(event: EphemeralEvent): void;
}

interface TopicEntry<M extends FanoutMember> {
  /** A topic's only member is held as it is; a Set is made when a second one joins. */
  members: M | Set<M>;
  readonly offAppend: () => void;
  readonly offEphemeral: () => void;
}

export class TopicFanout<M extends FanoutMember> {
  private readonly topics = new Map<string, TopicEntry<M>>();
  private readonly log: EventLog;
  private readonly broker: Broker;

  constructor(log: EventLog, broker: Broker) {
    this.log = log;
    this.broker = broker;
  }

  /** Topics with at least one member. */
  get size(): number {
    return this.topics.size;
  }

  join(ref: TopicRef, member: M): void {
    const key = topicKey(ref);
    const entry = this.topics.get(key);
    if (entry === undefined) {
      const onAppend: AppendListener = (events, epoch) => this.emitLive(key, events, epoch);
      this.topics.set(key, {
        members: member,
        offAppend: this.log.onAppend(ref, onAppend),
        offEphemeral: this.broker.onEphemeral(ref, (event) => this.emitEphemeral(key, event)),
      });
    } else if (entry.members instanceof Set) {
      entry.members.add(member);
    } else if (entry.members !== member) {
      entry.members = new Set([entry.members, member]);
    }
  }

  leave(ref: TopicRef, member: M): void {
    const key = topicKey(ref);
    const entry = this.topics.get(key);
    if (entry === undefined) return;
    if (entry.members instanceof Set) {
      if (!entry.members.delete(member) || entry.members.size > 0) return;
    } else if (entry.members !== member) {
      return;
    }
    this.topics.delete(key);
    entry.offAppend();
    entry.offEphemeral();
  }

  private emitLive(key: string, events: readonly StoredEvent[], epoch: string): void {
    const members = this.topics.get(key)?.members;
    if (members === undefined) return;
    if (!(members instanceof Set)) {
      try {
        members.onLive(events, epoch);
      } catch {
        // one member's failure is its own
      }
      return;
    }
    for (const m of members) {
      try {
        m.onLive(events, epoch);
      } catch {
        // one member's failure is its own
      }
    }
  }

  private emitEphemeral(key: string, event: EphemeralEvent): void {
    const members = this.topics.get(key)?.members;
    if (members === undefined) return;
    if (!(members instanceof Set)) {
      try {
        members.onEphemeral(event);
      } catch {
        // one member's failure is its own
      }
      return;
    }
    for (const m of members) {
      try {
        m.onEphemeral(event);
      } catch {
        // one member's failure is its own
      }
    }
  }
}

function topicKey(ref: TopicRef): string {
  return `${ref.tenant}\u0000${ref.topic}`;
}
