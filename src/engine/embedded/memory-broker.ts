/**
 * @module engine/embedded/memory-broker
 * The embedded engine's broker: one process, so fan-out is a map of listener sets.
 */
import type { TopicRef } from "../../streams/event.ts";
import type { Broker, EphemeralEvent, SessionMessage } from "../engine.ts";
import { ListenerSets } from "../listener-sets.ts";

export class MemoryBroker implements Broker {
  private readonly ephemeral = new ListenerSets<[EphemeralEvent]>();
  private readonly sessions = new ListenerSets<[SessionMessage]>();

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
