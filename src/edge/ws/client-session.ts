/**
 * @module edge/ws/client-session
 * One WebSocket connection speaking Centrifugo's client protocol: authentication, commands in
 * order, subscriptions with recovery, publishing, history, token refresh and liveness. Frames are
 * made and read by the connection's WireCodec (JSON or Protobuf), and the socket itself is
 * behind `SessionTransport`, so the session logic depends on neither the encoding nor `ws`.
 */
import { randomUUID } from "node:crypto";
import type { Broker, EphemeralEvent, EventLog } from "../../engine/engine.ts";
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Json, Retention, StoredEvent, TopicRef } from "../../streams/event.ts";
import { isValidTopicName, personalChannel } from "../../streams/names.ts";
import { can, type Principal } from "../auth/principal.ts";
import type { TokenVerifier } from "../auth/tokens.ts";
import { DurableSubscription, type SubscriptionSink } from "./durable-subscription.ts";
import type { TopicFanout } from "./topic-fanout.ts";
import { readBudgeted } from "./replies.ts";
import { publishFromSocket } from "./socket-publish.ts";
import { CloseCodes, ProtocolError, ReplyCodes, type CloseSpec, type Command } from "./protocol.ts";
import type { Frame, SubscribeOutcome, WireCodec } from "./codec/wire-codec.ts";
import { SOCKET_RPC_METHODS, SocketGroups } from "./socket-groups.ts";
import type { ClockClient, SessionClock } from "./session-clock.ts";
import type { GroupCommands } from "../groups/group-commands.ts";
import type { CoordinationCommands } from "../groups/coordination-commands.ts";

/** The socket as the session sees it. */
export interface SessionTransport {
  /** A frame of the session's codec (a Buffer may be shared across sockets). */
  send(frame: Frame): void;
  /** Bytes queued for the socket and not yet written. */
  readonly bufferedAmount: number;
  close(spec: CloseSpec): void;
  readonly open: boolean;
}

export interface SessionLimits {
  /** Seconds between server pings; the client answers each with a pong. */
  readonly pingIntervalS: number;
  /** A connection that sends nothing within this long of a ping is closed 3012. */
  readonly pongTimeoutMs: number;
  /** Time allowed for the first frame (connect), ms. */
  readonly connectTimeoutMs: number;
  /** Subscriptions per connection. */
  readonly maxSubscriptions: number;
  /** Outbound buffer high-water mark, bytes: durable subscriptions pause, ephemeral events drop. */
  readonly bufferHighBytes: number;
  /** A connection whose buffer stays over the high-water mark this long is closed 3008. */
  readonly slowTimeoutMs: number;
  /** Publications included in a subscribe reply when recovering; the rest follow as pushes. */
  readonly recoveryReplyLimit: number;
  /** Grace after token expiry before the connection is closed 3005, ms. */
  readonly expiryGraceMs: number;
  /** Inbound commands per second (bursts up to twice that); more closes the socket 3013. */
  readonly maxCommandsPerSecond: number;
}

export interface SessionServices {
  readonly log: EventLog;
  readonly broker: Broker;
  /** Subscriptions join their topic here: one engine listener per topic, not per socket. */
  readonly fanout: TopicFanout<DurableSubscription>;
  readonly verifier: TokenVerifier;
  readonly logger: Logger;
  readonly limits: SessionLimits;
  readonly autoCreateTopics: boolean;
  /** Retention of topics created by a first subscribe. */
  readonly defaultRetention: Retention;
  readonly version: string;
  /** Ephemeral events dropped because a socket was behind. */
  readonly onDropped: () => void;
  /** A durable socket publish was acknowledged (for the append metrics). */
  readonly onAppended: (duplicate: boolean, seconds: number) => void;
  /** False while the node starts, drains or cannot write: publishes get a temporary error. */
  readonly acceptsWrites: () => boolean;
  /** Consumer groups, for the `baton.group.*` RPC methods. */
  readonly groups: GroupCommands;
  /** Reservations and effects, for the `baton.slot.*` and `baton.effect.*` RPC methods. */
  readonly coordination: CoordinationCommands;
}

/**
 * The session is also the sink of its durable subscriptions (`send`, `drained`, `closed`): one
 * class for every socket keeps the per-delivery calls monomorphic.
 */
export class ClientSession implements SubscriptionSink, ClockClient {
  readonly id = randomUUID();
  private principal: Principal | undefined;
  private readonly subs = new Map<string, DurableSubscription>();
  private chain: Promise<void> = Promise.resolve();
  /** Commands waiting in `chain`. */
  private queued = 0;
  private ended = false;
  private lastActivity = Date.now();
  private overSince = 0;
  /** Token bucket for inbound commands. */
  private allowance: number;
  private allowanceAt = Date.now();
  /** Deadlines, epoch ms, all run by the gateway's shared clock (see onClock). */
  private connectDeadline: number;
  private nextPingAt = Infinity;
  /** The ping whose answer is awaited (0: none), and when the socket is closed 3012 without one. */
  private awaitedPingAt = 0;
  private pongDeadline = Infinity;
  /** When the token's expiry plus grace has passed: the connection is closed 3005. */
  private expiredAt = Infinity;
  /** ClockClient: owned by the clock. */
  clockSlot = 0;
  private offMessages: (() => void) | undefined;
  private readonly transport: SessionTransport;
  private readonly s: SessionServices;
  private readonly clock: SessionClock<ClientSession>;
  /** Made on the first consumer-group or coordination call: most sockets are browsers. */
  private socketGroups: SocketGroups | undefined;
  private readonly codec: WireCodec;

  constructor(transport: SessionTransport, services: SessionServices, clock: SessionClock<ClientSession>, codec: WireCodec) {
    this.transport = transport;
    this.codec = codec;
    this.s = services;
    this.clock = clock;
    this.allowance = this.burst();
    this.connectDeadline = Date.now() + services.limits.connectTimeoutMs;
    clock.schedule(this, this.connectDeadline);
  }

  private get groups(): SocketGroups {
    return (this.socketGroups ??= new SocketGroups(this.s.groups, this.s.coordination, this.id, (data) => void this.write(this.codec.message(data))));
  }

  /** The transport is gone (SubscriptionSink). */
  get closed(): boolean {
    return this.ended;
  }

  /** A durable event of a subscribed topic (SubscriptionSink): false when over the high-water mark. */
  sendPublication(e: StoredEvent): boolean {
    return this.write(this.codec.publication(e));
  }

  get tenant(): string | undefined {
    return this.principal?.tenant;
  }

  /** One incoming WebSocket message: text for JSON, binary for Protobuf (the other closes 3501). */
  receive(message: Buffer, isBinary: boolean): void {
    if (this.ended) return;
    this.lastActivity = Date.now();
    if (isBinary !== this.codec.binary) {
      this.close(CloseCodes.BAD_REQUEST);
      return;
    }
    let lines;
    try {
      lines = this.codec.decode(message);
    } catch (err) {
      if (err instanceof ProtocolError) this.close(CloseCodes.BAD_REQUEST);
      else throw err;
      return;
    }
    // Settlements (acks and their kin, slot and effect calls) are paid for by the deliveries
    // this socket was handed (SocketGroups.spendCredit); beyond that credit they cost an eighth.
    let cost = 0;
    for (const line of lines) {
      if (line.kind !== "command" || !isSettlement(line.command)) cost += 1;
      else if (this.socketGroups?.spendCredit() !== true) cost += 0.125;
    }
    if (!this.spend(cost)) {
      this.close(CloseCodes.TOO_MANY_REQUESTS);
      return;
    }
    for (const line of lines) {
      if (line.kind === "invalid") {
        // Answered in its turn, like the command it stands for (and before connect, closed like one).
        const { id, message } = line;
        this.queued += 1;
        this.chain = this.chain
          .then(() => {
            if (this.principal === undefined) this.close(CloseCodes.BAD_REQUEST);
            else this.write(this.codec.errorReply(id, ReplyCodes.BAD_REQUEST, message, false));
          })
          .finally(() => (this.queued -= 1));
        continue;
      }
      if (line.kind === "command") {
        const command = line.command;
        if (this.principal !== undefined && this.runsAlongside(command)) {
          // Publishes and settlements wait for a durable write; serving them one after the other
          // would let one socket publish or settle once per commit. They run side by side,
          // answered by id. A publish starts (and takes its sequence) in arrival order.
          (command.method === "publish" ? this.publish(command, this.principal) : this.rpc(command, this.principal)).catch((err: unknown) => {
            this.s.logger.error({ err, session: this.id }, "session command failed");
            this.close(CloseCodes.INTERNAL);
          });
          continue;
        }
        this.queued += 1;
        // A client that does not read its replies does not get more commands served: the next
        // one waits until the send buffer drains (or the slow timeout closes the socket).
        this.chain = this.chain
          .then(() => this.drained())
          .then(() => this.handle(command))
          .catch((err: unknown) => {
            this.s.logger.error({ err, session: this.id }, "session command failed");
            this.close(CloseCodes.INTERNAL);
          })
          .finally(() => (this.queued -= 1));
      }
      // Pongs only refresh liveness; `send` (async message to the server) has no handler.
    }
  }

  /**
   * Settlements always run alongside the queue; a publish does when nothing is queued before it
   * (so it cannot overtake an earlier subscribe) and the socket is reading its replies.
   */
  private runsAlongside(cmd: Command): boolean {
    if (isSettlement(cmd)) return true;
    const publish = cmd.method === "publish" || (cmd.method === "rpc" && cmd.params["method"] === "baton.publish");
    return publish && this.queued === 0 && this.transport.bufferedAmount < this.s.limits.bufferHighBytes;
  }

  /** A reconnecting client sends connect and every subscribe in one frame: that must fit. */
  private burst(): number {
    return Math.max(this.s.limits.maxCommandsPerSecond * 2, this.s.limits.maxSubscriptions + 16);
  }

  /** Takes `n` commands from the bucket; false when the client is over its rate. */
  private spend(n: number): boolean {
    const rate = this.s.limits.maxCommandsPerSecond;
    const now = Date.now();
    this.allowance = Math.min(this.burst(), this.allowance + ((now - this.allowanceAt) / 1000) * rate);
    this.allowanceAt = now;
    this.allowance -= n;
    return this.allowance >= 0;
  }

  /** The transport is gone (closed by either side). */
  dispose(): void {
    if (this.ended) return;
    this.ended = true;
    this.clock.cancel(this);
    this.offMessages?.();
    this.socketGroups?.dispose();
    for (const sub of this.subs.values()) sub.close();
    this.subs.clear();
  }

  close(spec: CloseSpec): void {
    if (this.ended) return;
    this.transport.close(spec);
    this.dispose();
  }

  /** Delivers a message to this session (the `message` push), if it has room. */
  deliverMessage(data: Json): void {
    this.write(this.codec.message(data), true);
  }

  private async handle(cmd: Command): Promise<void> {
    if (this.ended) return;
    if (cmd.method === "connect") {
      if (this.principal !== undefined) return this.close(CloseCodes.BAD_REQUEST);
      return this.connect(cmd);
    }
    if (this.principal === undefined) return this.close(CloseCodes.BAD_REQUEST);
    switch (cmd.method) {
      case "subscribe":
        return this.subscribe(cmd, this.principal);
      case "unsubscribe":
        return this.unsubscribe(cmd);
      case "publish":
        return this.publish(cmd, this.principal);
      case "history":
        return this.history(cmd, this.principal);
      case "refresh":
        return this.refresh(cmd);
      case "rpc":
        return this.rpc(cmd, this.principal);
      default:
        return this.replyError(cmd, ReplyCodes.NOT_AVAILABLE, "not available");
    }
  }

  private async connect(cmd: Command): Promise<void> {
    const token = cmd.params["token"];
    if (typeof token !== "string" || token === "") return this.close(CloseCodes.INVALID_TOKEN);
    let principal: Principal;
    try {
      principal = await this.s.verifier.verify(token, { remember: false });
    } catch (err) {
      if (isBatonError(err) && err.code === "TOKEN_EXPIRED") return this.replyError(cmd, ReplyCodes.TOKEN_EXPIRED, "token expired");
      return this.close(CloseCodes.INVALID_TOKEN);
    }
    if (this.ended) return;
    this.principal = principal;
    this.nextPingAt = Date.now() + this.s.limits.pingIntervalS * 1000;
    this.armExpiry(principal);
    // Server-side subscriptions: the user's personal channel and the token's `channels`. The
    // client asks to recover them through connect.subs, keyed by channel.
    const wanted = [personalChannel(principal.subject), ...principal.channels].filter((c): c is string => c !== undefined);
    const asked = (cmd.params["subs"] ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const subs = new Map<string, SubscribeOutcome>();
    const started: (() => void)[] = [];
    for (const channel of new Set(wanted)) {
      const opened = await this.openSubscription(principal, channel, typeof asked === "object" && asked !== null ? (asked[channel] ?? {}) : {}, true);
      if (this.ended) return;
      if (opened === undefined || "error" in opened) continue;
      subs.set(channel, opened);
      started.push(opened.start);
    }
    this.write(
      this.codec.connectReply(
        cmd.id,
        { client: this.id, version: this.s.version, ping: this.s.limits.pingIntervalS, pong: true, ...this.expiryFields(principal) },
        subs,
      ),
    );
    for (const start of started) start();
    this.offMessages = this.s.broker.onSessionMessage(principal.tenant, this.id, (m) => this.deliverMessage(m.data));
  }

  private async refresh(cmd: Command): Promise<void> {
    const token = cmd.params["token"];
    const current = this.principal!;
    let next: Principal;
    try {
      if (typeof token !== "string" || token === "") throw new BatonError("TOKEN_INVALID", "empty token");
      next = await this.s.verifier.verify(token, { remember: false });
    } catch (err) {
      if (isBatonError(err) && err.code === "TOKEN_EXPIRED") return this.replyError(cmd, ReplyCodes.TOKEN_EXPIRED, "token expired");
      return this.close(CloseCodes.INVALID_TOKEN);
    }
    if (next.tenant !== current.tenant || next.subject !== current.subject) return this.close(CloseCodes.INVALID_TOKEN);
    this.principal = next;
    this.armExpiry(next);
    this.write(this.codec.reply(cmd.id, "refresh", { client: this.id, version: this.s.version, ...this.expiryFields(next) }));
  }

  private async subscribe(cmd: Command, principal: Principal): Promise<void> {
    const channel = cmd.params["channel"];
    if (typeof channel !== "string" || channel === "") return this.close(CloseCodes.BAD_REQUEST);
    if (this.subs.has(channel)) return this.replyError(cmd, ReplyCodes.ALREADY_SUBSCRIBED, "already subscribed");
    if (!isValidTopicName(channel)) return this.replyError(cmd, ReplyCodes.UNKNOWN_CHANNEL, "unknown channel");
    if (!can(principal, "subscribe", channel)) return this.replyError(cmd, ReplyCodes.PERMISSION_DENIED, "permission denied");
    if (this.subs.size >= this.s.limits.maxSubscriptions) return this.replyError(cmd, ReplyCodes.LIMIT_EXCEEDED, "limit exceeded");
    const opened = await this.openSubscription(principal, channel, cmd.params);
    if (opened === undefined) return;
    if ("error" in opened) return this.replyError(cmd, opened.error, opened.message, opened.temporary);
    this.write(this.codec.replyWithPublications(cmd.id, "subscribe", opened.result, opened.publications));
    opened.start();
  }

  /**
   * Prepares a subscription at the position the request asks for (Centrifugo's recovery rules)
   * and returns the subscribe result; the caller writes it, then calls `start()`, which begins
   * delivery (catch-up from the store, then live, and ephemeral), so nothing for the channel is
   * written before its reply. Undefined when the session went away meanwhile.
   */
  private async openSubscription(
    principal: Principal,
    channel: string,
    p: Record<string, unknown>,
    serverSide = false,
  ): Promise<{ result: Record<string, unknown>; publications: StoredEvent[]; start: () => void } | { error: number; message: string; temporary?: boolean } | undefined> {
    const ref: TopicRef = { tenant: principal.tenant, topic: channel };
    let info = await this.s.log.describeTopic(ref);
    if (info === undefined) {
      if (!this.s.autoCreateTopics && !channel.startsWith("#")) return { error: ReplyCodes.UNKNOWN_CHANNEL, message: "unknown channel" };
      try {
        info = await this.s.log.createTopic(ref, this.s.defaultRetention);
      } catch (err) {
        if (isBatonError(err) && err.code === "TOPIC_EXISTS") info = await this.s.log.describeTopic(ref);
        else if (isBatonError(err) && err.code === "UNAVAILABLE") return { error: ReplyCodes.INTERNAL, message: err.message, temporary: true };
        else throw err;
        if (info === undefined) return { error: ReplyCodes.INTERNAL, message: "internal error", temporary: true };
      }
    }
    const top = info.lastSeq;
    const recover = p["recover"] === true;
    const offset = typeof p["offset"] === "number" && Number.isSafeInteger(p["offset"]) && p["offset"] >= 0 ? p["offset"] : 0;
    const epoch = typeof p["epoch"] === "string" ? p["epoch"] : "";
    let recoverable = recover && (epoch === "" || epoch === info.epoch) && offset <= top && offset + 1 >= info.firstSeq;
    let publications: StoredEvent[] = [];
    if (recoverable && offset < top) {
      const { events, first } = await readBudgeted(this.s.log, this.s.limits.bufferHighBytes / 2, ref, offset + 1, top, this.s.limits.recoveryReplyLimit, false);
      // Retention may have moved on between the describe and the read: then it is no recovery.
      if (first === undefined || first.epoch !== info.epoch || first.firstSeq > offset + 1) recoverable = false;
      else publications = events;
    }
    if (this.ended || this.subs.has(channel)) return undefined;
    const flag = typeof p["flag"] === "number" ? p["flag"] : 0;
    if (recover && !recoverable && (flag & 2) !== 0) return { error: ReplyCodes.UNRECOVERABLE_POSITION, message: "unrecoverable position" };
    // Catch-up at start() reads the store from here, so events appended while this was being
    // prepared are not missed even though nothing listened yet.
    const startAt = recoverable ? offset : top;
    const sub = new DurableSubscription(this.s.fanout, this.s.log, ref, channel, info.epoch, startAt, this, serverSide);
    if (publications.length > 0) sub.markSent(publications[publications.length - 1]!.seq);
    this.subs.set(channel, sub);
    const result: Record<string, unknown> = { recoverable: true, positioned: true, epoch: info.epoch, offset: startAt };
    if (recover) {
      result["was_recovering"] = true;
      if (recoverable) result["recovered"] = true;
    }
    const start = (): void => {
      if (this.subs.get(channel) === sub) sub.begin();
    };
    return { result, publications, start };
  }

  private unsubscribe(cmd: Command): void {
    const channel = cmd.params["channel"];
    if (typeof channel === "string") this.dropSub(channel);
    this.write(this.codec.reply(cmd.id, "unsubscribe", {}));
  }

  /**
   * A subscription's position became unusable. A client-side one gets the `unsubscribe` push
   * 2500, after which the client resubscribes and recovers; a server-side one cannot be
   * resubscribed by the client, so the connection closes 3010 and the client's reconnect
   * recovers it through connect.subs.
   */
  subscriptionLost(sub: DurableSubscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.dropSub(sub.channel);
    if (sub.serverSide) this.close(CloseCodes.INSUFFICIENT_STATE);
    else this.write(this.codec.unsubscribe(sub.channel, 2500, "insufficient state"));
  }

  private dropSub(channel: string): void {
    const sub = this.subs.get(channel);
    if (sub === undefined) return;
    sub.close();
    this.subs.delete(channel);
  }

  private async publish(cmd: Command, principal: Principal): Promise<void> {
    const outcome = await publishFromSocket(this.s, cmd.params, principal);
    if ("error" in outcome) this.replyError(cmd, outcome.error, outcome.message, outcome.temporary);
    else this.write(this.codec.reply(cmd.id, "publish", outcome.result));
  }

  /**
   * RPC methods. `baton.publish` is `publish` with its result as RPC data, for SDKs (such as
   * centrifuge-js) that drop the fields of a publish reply: `{data: {event_id, offset, duplicate?}}`.
   */
  private async rpc(cmd: Command, principal: Principal): Promise<void> {
    const method = cmd.params["method"];
    if (typeof method === "string" && SOCKET_RPC_METHODS.has(method)) {
      const outcome = await this.groups.call(method, principal, cmd.params["data"]);
      if ("error" in outcome) this.replyError(cmd, outcome.error, outcome.message, outcome.temporary);
      else this.write(this.codec.reply(cmd.id, "rpc", { data: outcome.result }));
      return;
    }
    if (method !== "baton.publish") return this.replyError(cmd, ReplyCodes.METHOD_NOT_FOUND, "method not found");
    const data = cmd.params["data"];
    if (typeof data !== "object" || data === null || Array.isArray(data)) return this.replyError(cmd, ReplyCodes.BAD_REQUEST, "bad request: data must be a publish request");
    const outcome = await publishFromSocket(this.s, data as Record<string, unknown>, principal);
    if ("error" in outcome) this.replyError(cmd, outcome.error, outcome.message, outcome.temporary);
    else this.write(this.codec.reply(cmd.id, "rpc", { data: outcome.result }));
  }

  private async history(cmd: Command, principal: Principal): Promise<void> {
    const p = cmd.params;
    const channel = p["channel"];
    if (typeof channel !== "string" || !isValidTopicName(channel)) return this.replyError(cmd, ReplyCodes.UNKNOWN_CHANNEL, "unknown channel");
    if (!can(principal, "subscribe", channel)) return this.replyError(cmd, ReplyCodes.PERMISSION_DENIED, "permission denied");
    const ref: TopicRef = { tenant: principal.tenant, topic: channel };
    const info = await this.s.log.describeTopic(ref);
    if (info === undefined) return this.replyError(cmd, ReplyCodes.UNKNOWN_CHANNEL, "unknown channel");
    const rawLimit = p["limit"] ?? 0;
    if (typeof rawLimit !== "number" || !Number.isSafeInteger(rawLimit)) return this.replyError(cmd, ReplyCodes.BAD_REQUEST, "bad request: limit must be an integer");
    const limit = rawLimit < 0 ? this.s.limits.recoveryReplyLimit : Math.min(rawLimit, this.s.limits.recoveryReplyLimit);
    const since = p["since"] as { offset?: unknown; epoch?: unknown } | undefined;
    const reverse = p["reverse"] === true;
    let from: number;
    let sinceOffset = 0;
    if (since !== undefined && since !== null) {
      if (typeof since.epoch === "string" && since.epoch !== "" && since.epoch !== info.epoch) {
        return this.replyError(cmd, ReplyCodes.UNRECOVERABLE_POSITION, "unrecoverable position");
      }
      const rawOffset = since.offset ?? 0;
      if (typeof rawOffset !== "number" || !Number.isSafeInteger(rawOffset) || rawOffset < 0) return this.replyError(cmd, ReplyCodes.BAD_REQUEST, "bad request: since.offset must be a non-negative integer");
      sinceOffset = rawOffset;
      if (reverse && sinceOffset === 0) return this.replyError(cmd, ReplyCodes.BAD_REQUEST, "bad request");
      if (!reverse && sinceOffset + 1 < info.firstSeq) return this.replyError(cmd, ReplyCodes.UNRECOVERABLE_POSITION, "unrecoverable position");
      from = reverse ? Math.max(info.firstSeq, sinceOffset - limit) : sinceOffset + 1;
    } else {
      from = reverse ? Math.max(info.firstSeq, info.lastSeq - limit + 1) : info.firstSeq;
    }
    let publications: StoredEvent[] = [];
    if (limit > 0) {
      const upTo = reverse && since !== undefined && since !== null ? Math.min(sinceOffset - 1, info.lastSeq) : info.lastSeq;
      publications = (await readBudgeted(this.s.log, this.s.limits.bufferHighBytes / 2, ref, reverse ? info.firstSeq : from, upTo, limit, reverse)).events;
    }
    this.write(this.codec.replyWithPublications(cmd.id, "history", { publications: [], epoch: info.epoch, offset: info.lastSeq }, publications));
  }

  /** An ephemeral event of a subscribed channel (SubscriptionSink). */
  deliverEphemeral(channel: string, event: EphemeralEvent): void {
    this.write(this.codec.ephemeralPublication(channel, event), true);
  }

  /**
   * Queues a frame. Returns false when the buffer is over its high-water mark. `droppable`
   * frames (ephemeral traffic) are dropped instead of queued when over the mark.
   */
  private write(frame: Frame, droppable = false): boolean {
    if (this.ended || !this.transport.open) return false;
    const over = this.transport.bufferedAmount >= this.s.limits.bufferHighBytes;
    if (over) {
      const now = Date.now();
      if (this.overSince === 0) this.overSince = now;
      else if (now - this.overSince > this.s.limits.slowTimeoutMs) {
        this.close(CloseCodes.SLOW);
        return false;
      }
      if (droppable) {
        this.s.onDropped();
        return false;
      }
    } else {
      this.overSince = 0;
    }
    this.transport.send(frame);
    return this.transport.bufferedAmount < this.s.limits.bufferHighBytes;
  }

  /** Resolves once the buffer is below its low-water mark or the session is gone (SubscriptionSink). */
  async drained(): Promise<void> {
    const low = this.s.limits.bufferHighBytes / 2;
    // A paused durable subscription writes nothing, so the slow clock starts here too.
    if (this.overSince === 0 && this.transport.bufferedAmount >= this.s.limits.bufferHighBytes) this.overSince = Date.now();
    while (!this.ended && this.transport.bufferedAmount > low) {
      await new Promise((r) => setTimeout(r, 10));
      if (this.overSince !== 0 && Date.now() - this.overSince > this.s.limits.slowTimeoutMs) this.close(CloseCodes.SLOW);
    }
    if (this.transport.bufferedAmount <= low) this.overSince = 0;
  }

  private replyError(cmd: Command, code: number, message: string, temporary = false): void {
    this.write(this.codec.errorReply(cmd.id, code, message, temporary));
  }

  private expiryFields(principal: Principal): Record<string, unknown> {
    if (principal.expiresAt === undefined) return {};
    return { expires: true, ttl: Math.max(1, Math.floor((principal.expiresAt - Date.now()) / 1000)) };
  }

  /** (Re)sets the token's deadline: its expiry plus grace, after which the socket is closed 3005. */
  private armExpiry(principal: Principal): void {
    this.expiredAt = principal.expiresAt === undefined ? Infinity : principal.expiresAt + this.s.limits.expiryGraceMs;
    this.scheduleNext();
  }

  private scheduleNext(): void {
    if (this.ended) return;
    this.clock.schedule(this, this.principal === undefined ? this.connectDeadline : Math.min(this.nextPingAt, this.expiredAt, this.pongDeadline));
  }

  /**
   * ClockClient: one of this socket's deadlines has passed. Before connect: the connect timeout
   * (3502 stale). After: token expiry (3005); every ping interval a ping `{}`; and a close 3012
   * when the client has sent nothing since a ping for the pong timeout. The pong deadline runs
   * from the ping actually written, so a late tick (a busy event loop) never closes a socket
   * that was not pinged.
   */
  onClock(now: number): void {
    if (this.ended) return;
    if (this.principal === undefined) {
      if (now >= this.connectDeadline) return this.close(CloseCodes.STALE);
    } else {
      if (now >= this.expiredAt) return this.close(CloseCodes.CONNECTION_EXPIRED);
      if (now >= this.pongDeadline) {
        if (this.lastActivity < this.awaitedPingAt) return this.close(CloseCodes.NO_PONG);
        this.awaitedPingAt = 0;
        this.pongDeadline = Infinity;
      }
      if (now >= this.nextPingAt) {
        this.write(this.codec.ping);
        // One answer awaited at a time (a pong timeout longer than the interval spans pings).
        if (this.awaitedPingAt === 0) {
          this.awaitedPingAt = now;
          this.pongDeadline = now + this.s.limits.pongTimeoutMs;
        }
        this.nextPingAt = now + this.s.limits.pingIntervalS * 1000;
      }
    }
    this.scheduleNext();
  }
}


// Everything that waits on a durable write and does not change the socket's own state.
const SETTLEMENTS = new Set([
  "baton.group.ack",
  "baton.group.nack",
  "baton.group.term",
  "baton.group.extend",
  "baton.slot.reserve",
  "baton.slot.extend",
  "baton.slot.release",
  "baton.slot.finalize",
  "baton.effect.begin",
  "baton.effect.extend",
  "baton.effect.complete",
  "baton.effect.abandon",
]);

/** An RPC that settles or extends a delivery. */
function isSettlement(cmd: Command): boolean {
  return cmd.method === "rpc" && SETTLEMENTS.has(cmd.params["method"] as string);
}
