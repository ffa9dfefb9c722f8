/**
 * @module sdk/baton-client
 * A typed client for Baton's concepts over Centrifugo's client protocol, built on the
 * `centrifuge` package, which already does what a realtime client must get right: reconnect
 * with exponential backoff and full jitter (capped), resubscribe, and resume each subscription
 * from its last position (recovery). Works in browsers and in Node >= 22 (global WebSocket).
 */
import type { Centrifuge, Subscription } from "centrifuge";
export { BatonClientError } from "./connection.ts";
import { call, openCentrifuge, type ConnectionOptions } from "./connection.ts";
import { Emitter, toEvent, type BatonEvent, type Position, type SubscribedInfo } from "./events.ts";

export type BatonClientOptions = ConnectionOptions;

export interface ClientEvents {
  connected: { clientId: string };
  /** The connection dropped and the client is reconnecting (code per Centrifugo's ranges). */
  reconnecting: { code: number; reason: string };
  /** The client stopped for good (disconnect(), an invalid token, a terminal close code). */
  disconnected: { code: number; reason: string };
  /** An event addressed to the connected user (all of their sessions). */
  userEvent: BatonEvent;
  /** A message addressed to this one session (at most once, not stored). */
  message: unknown;
  /** Events of server-side channels listed in the token (`channels` claim). */
  channelEvent: BatonEvent;
  error: { message: string };
}

export interface PublishOptions {
  /** Same key within the dedup window: stored once, the first result returned. */
  readonly idempotencyKey?: string;
  /** Fast path: not stored, no sequence, at most once. */
  readonly ephemeral?: boolean;
}

export interface PublishResult {
  readonly id: string;
  /** Undefined for ephemeral events. */
  readonly seq: number | undefined;
  readonly duplicate: boolean;
}

export interface TopicOptions {
  /** Resume from this position (e.g. saved before a page reload). */
  readonly since?: Position;
}

export interface TopicEvents<T> {
  event: BatonEvent<T>;
  subscribed: SubscribedInfo;
  /** The subscription ended; `code` 103 = permission denied. */
  unsubscribed: { code: number; reason: string };
  error: { message: string };
}



export class BatonClient extends Emitter<ClientEvents> {
  private readonly centrifuge: Centrifuge;

  /** `url` is the server's base URL (`http://host:7700`) or its WebSocket URL. */
  constructor(url: string, options: BatonClientOptions = {}) {
    super();
    this.centrifuge = openCentrifuge(url, options);
    const c = this.centrifuge;
    c.on("connected", (ctx) => this.emit("connected", { clientId: ctx.client }));
    c.on("connecting", (ctx) => {
      if (ctx.code !== 0) this.emit("reconnecting", { code: ctx.code, reason: ctx.reason });
    });
    c.on("disconnected", (ctx) => this.emit("disconnected", { code: ctx.code, reason: ctx.reason }));
    c.on("error", (ctx) => this.emit("error", { message: ctx.error.message }));
    c.on("message", (ctx) => this.emit("message", ctx.data));
    c.on("publication", (ctx) => {
      const event = toEvent(ctx.channel, ctx.data, ctx.offset, ctx.tags);
      this.emit(ctx.channel.startsWith("#") ? "userEvent" : "channelEvent", event);
    });
  }

  get state(): "disconnected" | "connecting" | "connected" {
    return this.centrifuge.state;
  }

  connect(): void {
    this.centrifuge.connect();
  }

  disconnect(): void {
    this.centrifuge.disconnect();
  }

  /** A subscription to one topic; call `subscribe()` on it. One per topic per client. */
  topic<T = unknown>(name: string, options: TopicOptions = {}): TopicSubscription<T> {
    const existing = this.centrifuge.getSubscription(name);
    if (existing !== null) throw new Error(`already subscribed to ${name}; use the existing TopicSubscription`);
    const sub = this.centrifuge.newSubscription(name, options.since === undefined ? {} : { since: { offset: options.since.seq, epoch: options.since.epoch } });
    return new TopicSubscription<T>(name, sub);
  }

  /** Publishes one event; resolves with its id (and sequence) once Baton has it durably. */
  async publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const request = {
      channel: topic,
      data,
      ...(options.idempotencyKey === undefined ? {} : { idempotency_key: options.idempotencyKey }),
      ...(options.ephemeral ? { ephemeral: true } : {}),
    };
    const result = (await call(this.centrifuge.rpc("baton.publish", request))).data as { event_id: string; offset?: number; duplicate?: boolean };
    return { id: result.event_id, seq: result.offset, duplicate: result.duplicate === true };
  }

  /** Stored events of a topic, oldest first (or newest first with `reverse`). */
  async history<T = unknown>(topic: string, options: { limit?: number; since?: Position; reverse?: boolean } = {}): Promise<{ events: BatonEvent<T>[]; position: Position }> {
    const r = await call(this.centrifuge.history(topic, {
      limit: options.limit ?? -1,
      ...(options.since === undefined ? {} : { since: { offset: options.since.seq, epoch: options.since.epoch } }),
      ...(options.reverse ? { reverse: true } : {}),
    }));
    return { events: r.publications.map((p) => toEvent<T>(topic, p.data, p.offset, p.tags)), position: { seq: r.offset, epoch: r.epoch } };
  }
}

export class TopicSubscription<T> extends Emitter<TopicEvents<T>> {
  readonly name: string;
  private readonly sub: Subscription;
  private last: Position | undefined;

  constructor(name: string, sub: Subscription) {
    super();
    this.name = name;
    this.sub = sub;
    sub.on("publication", (ctx) => {
      const event = toEvent<T>(name, ctx.data, ctx.offset, ctx.tags);
      if (event.seq !== undefined && this.last !== undefined) this.last = { seq: event.seq, epoch: this.last.epoch };
      this.emit("event", event);
    });
    sub.on("subscribed", (ctx) => {
      const position = ctx.streamPosition === undefined ? undefined : { seq: ctx.streamPosition.offset, epoch: ctx.streamPosition.epoch };
      this.last = position;
      this.emit("subscribed", { wasRecovering: ctx.wasRecovering, recovered: ctx.recovered, position });
    });
    sub.on("unsubscribed", (ctx) => this.emit("unsubscribed", { code: ctx.code, reason: ctx.reason }));
    sub.on("error", (ctx) => this.emit("error", { message: ctx.error.message }));
  }

  /** The last position delivered to the application: save it to resume after a reload. */
  get position(): Position | undefined {
    return this.last;
  }

  subscribe(): void {
    this.sub.subscribe();
  }

  unsubscribe(): void {
    this.sub.unsubscribe();
  }
}
