/**
 * @module engine/nats/nats-broker
 * Ephemeral events and session messages on core NATS subjects: at most once, and a node
 * subscribes to a topic's or session's subject only while it has a listener for it, so a
 * message reaches only the nodes that need it. The publisher's own listeners hear it back
 * from the server like everyone else's (no local shortcut that would deliver twice).
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { TopicRef } from "../../streams/event.ts";
import type { Broker, EphemeralEvent, SessionMessage } from "../engine.ts";
import { ListenerSets } from "../listener-sets.ts";
import type { NatsNames } from "./names.ts";

export class NatsBroker implements Broker {
  private readonly listeners = new ListenerSets<[unknown]>();
  private readonly subs = new Map<string, { sub: Subscription; count: number }>();
  private readonly nc: NatsConnection;
  private readonly names: NatsNames;

  constructor(nc: NatsConnection, names: NatsNames) {
    this.nc = nc;
    this.names = names;
  }

  publishEphemeral(topic: TopicRef, event: EphemeralEvent): void {
    this.send(this.names.ephemeralSubject(topic.tenant, topic.topic), event);
  }

  onEphemeral(topic: TopicRef, listener: (event: EphemeralEvent) => void): () => void {
    return this.listen(this.names.ephemeralSubject(topic.tenant, topic.topic), listener as (m: unknown) => void);
  }

  sendToSession(message: SessionMessage): void {
    this.send(this.names.sessionSubject(message.tenant, message.session), message);
  }

  onSessionMessage(tenant: string, session: string, listener: (message: SessionMessage) => void): () => void {
    return this.listen(this.names.sessionSubject(tenant, session), listener as (m: unknown) => void);
  }

  close(): void {
    for (const { sub } of this.subs.values()) sub.unsubscribe();
    this.subs.clear();
  }

  private send(subject: string, payload: unknown): void {
    if (this.nc.isClosed()) return; // at most once: a closing node drops it
    this.nc.publish(subject, JSON.stringify(payload));
  }

  private listen(subject: string, listener: (m: unknown) => void): () => void {
    let entry = this.subs.get(subject);
    if (entry === undefined) {
      const sub = this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err !== null) return;
          let value: unknown;
          try {
            value = msg.json();
          } catch {
            return; // not ours
          }
          this.listeners.emit(subject, value);
        },
      });
      entry = { sub, count: 0 };
      this.subs.set(subject, entry);
    }
    entry.count += 1;
    const off = this.listeners.add(subject, listener);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      off();
      const e = this.subs.get(subject);
      if (e === undefined) return;
      e.count -= 1;
      if (e.count === 0) {
        e.sub.unsubscribe();
        this.subs.delete(subject);
      }
    };
  }
}
