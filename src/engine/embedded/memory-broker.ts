/**
 * @module engine/embedded/memory-broker
 * The embedded engine's broker: one process, so fan-out is a map of listener sets.
 */
import type { TopicRef } from "../../streams/event.ts";
import type { Broker, EphemeralEvent, SessionMessage } from "../engine.ts";

class ListenerSets<T> {
  private readonly sets = new Map<string, Set<(value: T) => void>>();

  add(key: string, listener: (value: T) => void): () => void {
    let set = this.sets.get(key);
    if (set === undefined) {
      set = new Set();
      this.sets.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.sets.get(key);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) this.sets.delete(key);
    };
  }

  emit(key: string, value: T): void {
    const set = this.sets.get(key);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        listener(value);
      } catch {
        // at-most-once: one listener's failure does not stop the others
      }
    }
  }
}

export class MemoryBroker implements Broker {
  private readonly ephemeral = new ListenerSets<EphemeralEvent>();
  private readonly sessions = new ListenerSets<SessionMessage>();

  publishEphemeral(topic: TopicRef, event: EphemeralEvent): void {
    this.ephemeral.emit(`${topic.tenant}\u0000${topic.topic}`, event);
  }

  onEphemeral(topic: TopicRef, listener: (event: EphemeralEvent) => void): () => void {
    return this.ephemeral.add(`${topic.tenant}\u0000${topic.topic}`, listener);
  }

  sendToSession(message: SessionMessage): void {
    this.sessions.emit(`${message.tenant}\u0000${message.session}`, message);
  }

  onSessionMessage(tenant: string, session: string, listener: (message: SessionMessage) => void): () => void {
    return this.sessions.add(`${tenant}\u0000${session}`, listener);
  }
}
