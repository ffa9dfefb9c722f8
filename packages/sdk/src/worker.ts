/**
 * @module sdk/worker
 * The worker SDK: backend agents consume Baton consumer groups over one outbound WebSocket (no
 * inbound port), on the `centrifuge` client, which reconnects with capped, jittered backoff.
 *
 *   const worker = new BatonWorker("http://baton:7700", { token });
 *   const consumer = worker.consume("summaries", async (delivery, ctx) => { ... }, { maxInFlight: 4 });
 *   await consumer.stop();   // finish what is in flight, then stop
 *
 * Return from the handler = ack; throw = nack (retried on the group's backoff schedule); throw
 * `new Terminate(reason)` = no more attempts, to dead letters; throw `new RetryAfter(ms)` = retry
 * after that delay. While the handler runs, its lease is extended in the background.
 */
import type { Centrifuge } from "centrifuge";
import { BatonClientError, call, openCentrifuge, type ConnectionOptions } from "./connection.ts";

export interface WorkerOptions extends ConnectionOptions {
  /** Told about failures the worker handles by itself (an ack that could not be sent, …). */
  readonly onError?: (err: Error) => void;
}

export interface Failure {
  readonly attempt: number;
  readonly reason: string;
  readonly at: string;
}

/** One event handed to this worker by a consumer group. */
export interface Delivery<T = unknown> {
  readonly token: string;
  readonly group: string;
  readonly topic: string;
  readonly seq: number;
  /** 1 on the first delivery. */
  readonly attempt: number;
  /** Reasons of the earlier attempts, oldest first. */
  readonly failures: readonly Failure[];
  readonly leaseExpiresAt: string;
  /** The event as first published (a redriven dead letter keeps its origin). */
  readonly origin: { readonly topic: string; readonly seq: number; readonly id: string };
  readonly event: {
    readonly id: string;
    readonly seq: number;
    readonly key?: string;
    readonly type?: string;
    readonly causalId?: string;
    readonly headers?: Readonly<Record<string, string>>;
    readonly time: string;
    readonly data: T;
  };
}

export interface ConsumeOptions {
  /** Deliveries held at once (handlers running concurrently). Default 10. */
  readonly maxInFlight?: number;
}

/** Throw from a handler: no more attempts, straight to the group's dead letters. */
export class Terminate extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "Terminate";
  }
}

/** Throw from a handler: retry after `delayMs` instead of the group's backoff schedule. */
export class RetryAfter extends Error {
  readonly delayMs: number;
  constructor(delayMs: number, reason = `retry after ${delayMs} ms`) {
    super(reason);
    this.name = "RetryAfter";
    this.delayMs = delayMs;
  }
}

export interface HandlerContext {
  /** Aborted when the worker stops or the lease could not be kept. */
  readonly signal: AbortSignal;
  /** Extends the lease now (the SDK also does so in the background). */
  extendLease(leaseMs?: number): Promise<void>;
  /**
   * Acks now instead of on return. With `slot`, the reservation takes the event over first: if
   * this worker dies before `slot.finalize`, the event goes back to the group when the slot's
   * lease ends (reserve -> ack -> run -> finalize). After an early ack, a throw no longer nacks.
   */
  ack(options?: { slot?: Reservation }): Promise<void>;
  /**
   * Reserves a slot for this delivery (see BatonWorker.reserve). When the handler ends without
   * finalizing it, the SDK releases it, unless `ack({slot})` was called with it (even if that
   * call failed: its answer may be what was lost): then its lease is left to run out, and the
   * event goes back to the group.
   */
  reserve(resource: string, options: ReserveOptions): Promise<Reservation>;
  /** The worker, for reservations and effects (see BatonWorker.reserve / effect). */
  readonly worker: BatonWorker;
}

export interface ReserveOptions {
  /** At most this many holders of the resource at once. */
  readonly limit: number;
  /** Lease, ms (default 30000); kept alive in the background until release or finalize. */
  readonly leaseMs?: number;
  /** How long to wait for a free slot, ms (default 30000); then SLOT_UNAVAILABLE. */
  readonly waitMs?: number;
}

/** A held compute slot. */
export class Reservation {
  readonly resource: string;
  readonly token: string;
  private readonly worker: BatonWorker;
  private readonly heartbeat: NodeJS.Timeout;
  private ended = false;

  constructor(worker: BatonWorker, resource: string, token: string, leaseMs: number) {
    this.worker = worker;
    this.resource = resource;
    this.token = token;
    this.heartbeat = setInterval(() => {
      this.worker.call("baton.slot.extend", { resource, token, lease: leaseMs }).catch((err: unknown) => this.worker.reportError(err));
    }, Math.max(200, Math.floor(leaseMs / 3)));
  }

  /** Frees the slot; work it took over and did not finalize goes back to the group. */
  async release(): Promise<void> {
    this.end();
    await this.worker.call("baton.slot.release", { resource: this.resource, token: this.token });
  }

  /**
   * Publishes the result to `topic` (its causal id is the event the slot took over) and frees the
   * slot, in one call; stored once per work however often it is called.
   */
  async finalize(topic: string, event: { data: unknown; type?: string; key?: string; headers?: Record<string, string> }): Promise<{ id: string; seq: number; duplicate: boolean }> {
    const r = await this.worker.callPersistently<{ id: string; seq: number; duplicate: boolean }>("baton.slot.finalize", { resource: this.resource, token: this.token, topic, event }, Date.now() + 60_000);
    this.end();
    return r;
  }

  /** Finalized or released. */
  get done(): boolean {
    return this.ended;
  }

  /** Stops the heartbeat: the lease runs out by itself. */
  abandon(): void {
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
  }
}

export interface EffectOptions {
  /** Claim lease, ms (default 30000), kept alive while `run` runs. */
  readonly leaseMs?: number;
  /** How long the outcome is kept, ms (default 7 days). */
  readonly ttlMs?: number;
  /** How long to wait for another holder's outcome, ms (default 120000). */
  readonly waitMs?: number;
}

export type Handler<T> = (delivery: Delivery<T>, ctx: HandlerContext) => Promise<unknown> | unknown;

/** A refused `baton.*` call: a BatonClientError, whose `batonCode` names Baton's error code. */
export const BatonCallError = BatonClientError;
export type BatonCallError = BatonClientError;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Below centrifuge's default call timeout (5 s). */
const RESERVE_WAIT_PER_CALL_MS = 2000;

export class BatonWorker {
  private readonly centrifuge: Centrifuge;
  private readonly consumers = new Map<string, Consumer<unknown>>();
  private readonly options: WorkerOptions;

  /** `url` is the server's base URL (`http://host:7700`) or its WebSocket URL. */
  constructor(url: string, options: WorkerOptions = {}) {
    this.options = options;
    this.centrifuge = openCentrifuge(url, options);
    // After every (re)connect, each consumer joins its group again.
    this.centrifuge.on("connected", () => {
      for (const c of this.consumers.values()) c.join();
    });
    this.centrifuge.on("message", (ctx) => {
      const data = ctx.data as { baton?: string; group?: string; deliveries?: Delivery[] };
      if (data.baton !== "deliveries" || data.group === undefined) return;
      this.consumers.get(data.group)?.receive(data.deliveries ?? []);
    });
    this.centrifuge.connect();
  }

  /** Consumes `group`: `handler` runs for each delivery, at most `maxInFlight` at once. */
  consume<T = unknown>(group: string, handler: Handler<T>, options: ConsumeOptions = {}): Consumer<T> {
    if (this.consumers.has(group)) throw new Error(`this worker already consumes ${group}`);
    const consumer = new Consumer<T>(this, group, handler, options.maxInFlight ?? 10);
    this.consumers.set(group, consumer as Consumer<unknown>);
    if (this.centrifuge.state === "connected") consumer.join();
    return consumer;
  }

  /** Calls a `baton.*` RPC; rejects with BatonCallError. */
  async call<R = Record<string, unknown>>(method: string, data: Record<string, unknown>): Promise<R> {
    return (await call(this.centrifuge.rpc(method, data))).data as R;
  }


  /**
   * Calls until it succeeds, the server refuses for good, or `deadline` passes: acks must reach
   * the server across reconnects.
   */
  async callPersistently<R>(method: string, data: Record<string, unknown>, deadline: number): Promise<R> {
    let delay = 100;
    for (;;) {
      try {
        return await this.call<R>(method, data);
      } catch (err) {
        const permanent = err instanceof BatonCallError && !err.temporary && err.code !== 0 && err.batonCode !== undefined;
        if (permanent || Date.now() + delay > deadline) throw err;
        await sleep(Math.random() * delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /** Reserves one of `limit` slots of `resource` (waits up to `waitMs` for one). */
  async reserve(resource: string, options: ReserveOptions): Promise<Reservation> {
    const leaseMs = options.leaseMs ?? 30_000;
    const deadline = Date.now() + (options.waitMs ?? 30_000);
    // Each call waits on the server for less than the client's call timeout: a call the client
    // gave up on could otherwise take a slot nobody holds.
    for (;;) {
      const wait = Math.max(0, Math.min(RESERVE_WAIT_PER_CALL_MS, deadline - Date.now()));
      try {
        const r = await this.call<{ token: string }>("baton.slot.reserve", { resource, limit: options.limit, lease: leaseMs, wait });
        return new Reservation(this, resource, r.token, leaseMs);
      } catch (err) {
        if (!(err instanceof BatonCallError && err.batonCode === "SLOT_UNAVAILABLE") || Date.now() >= deadline) throw err;
      }
    }
  }

  /**
   * Runs `run` at most once per `key` (per tenant, while the outcome is kept): a second call
   * with the same key, on any worker, gets the stored outcome; one that finds the effect running
   * elsewhere waits for it. If `run` throws, the claim is dropped so a later attempt can run it.
   */
  async effect<R>(key: string, run: () => Promise<R> | R, options: EffectOptions = {}): Promise<R> {
    const leaseMs = options.leaseMs ?? 30_000;
    const deadline = Date.now() + (options.waitMs ?? 120_000);
    let delay = 100;
    for (;;) {
      let begun: { state: "claimed"; token: string } | { state: "done"; outcome: unknown };
      try {
        begun = await this.call("baton.effect.begin", { key, lease: leaseMs });
      } catch (err) {
        if (!(err instanceof BatonCallError && err.batonCode === "EFFECT_IN_PROGRESS") || Date.now() > deadline) throw err;
        await sleep(delay / 2 + Math.random() * (delay / 2));
        delay = Math.min(delay * 2, 2000);
        continue;
      }
      if (begun.state === "done") return begun.outcome as R;
      const token = begun.token;
      const heartbeat = setInterval(() => {
        this.call("baton.effect.extend", { key, token, lease: leaseMs }).catch((err: unknown) => this.reportError(err));
      }, Math.max(200, Math.floor(leaseMs / 3)));
      let outcome: R;
      try {
        outcome = await run();
      } catch (err) {
        clearInterval(heartbeat);
        await this.call("baton.effect.abandon", { key, token }).catch((e: unknown) => this.reportError(e));
        throw err;
      }
      clearInterval(heartbeat);
      return this.storeOutcome(key, token, outcome, leaseMs, options.ttlMs);
    }
  }

  /**
   * Stores what `run` returned. If the claim lapsed meanwhile (e.g. the server was down longer
   * than the lease), the outcome is still stored under a new claim rather than running the
   * effect again; if someone else completed it first, theirs wins.
   */
  private async storeOutcome<R>(key: string, token: string, outcome: R, leaseMs: number, ttlMs: number | undefined): Promise<R> {
    const value = outcome === undefined ? null : outcome;
    const ttl = ttlMs === undefined ? {} : { ttl: ttlMs };
    let claim = token;
    for (let tries = 0; ; tries++) {
      try {
        await this.callPersistently("baton.effect.complete", { key, token: claim, outcome: value, ...ttl }, Date.now() + Math.max(leaseMs, 30_000));
        return outcome;
      } catch (err) {
        if (!(err instanceof BatonCallError && err.batonCode === "RESERVATION_NOT_HELD") || tries >= 5) throw err;
      }
      const again = await this.callPersistently<{ state: "claimed"; token: string } | { state: "done"; outcome: unknown }>("baton.effect.begin", { key, lease: leaseMs }, Date.now() + 30_000).catch((err: unknown) => {
        if (err instanceof BatonCallError && err.batonCode === "EFFECT_IN_PROGRESS") return undefined;
        throw err;
      });
      if (again?.state === "done") return again.outcome as R;
      if (again?.state === "claimed") claim = again.token;
      else await sleep(200);
    }
  }

  reportError(err: unknown): void {
    this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  forget(group: string): void {
    this.consumers.delete(group);
  }

  /** Stops every consumer (finishing what they hold), then disconnects. */
  async close(): Promise<void> {
    await Promise.all([...this.consumers.values()].map((c) => c.stop()));
    this.centrifuge.disconnect();
  }
}

export class Consumer<T> {
  readonly group: string;
  private readonly worker: BatonWorker;
  private readonly handler: Handler<T>;
  private readonly maxInFlight: number;
  private readonly running = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private stopping: Promise<void> | undefined;
  private readonly acks: { token: string; resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(worker: BatonWorker, group: string, handler: Handler<T>, maxInFlight: number) {
    this.worker = worker;
    this.group = group;
    this.handler = handler;
    this.maxInFlight = maxInFlight;
  }

  /** Deliveries being handled now. */
  get inFlight(): number {
    return this.running.size;
  }

  join(): void {
    if (this.stopping !== undefined) return;
    this.worker.call("baton.group.consume", { group: this.group, maxInFlight: this.maxInFlight }).catch((err: unknown) => this.worker.reportError(err));
  }

  receive(deliveries: Delivery[]): void {
    for (const d of deliveries) {
      if (this.running.has(d.token)) continue;
      const run = this.handle({ ...d, group: this.group } as Delivery<T>).finally(() => this.running.delete(d.token));
      this.running.set(d.token, run);
    }
  }

  /** Stops taking deliveries, lets running handlers finish (and settle), then resolves. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.worker.call("baton.group.stop", { group: this.group }).catch((err: unknown) => this.worker.reportError(err));
      await Promise.allSettled([...this.running.values()]);
      this.abort.abort();
      this.worker.forget(this.group);
    })();
    return this.stopping;
  }

  /** Acks of one tick go in one call (`tokens`), answered per token. */
  private ackSoon(token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.acks.push({ token, resolve, reject });
      if (this.acks.length === 1) setImmediate(() => void this.flushAcks());
    });
  }

  private async flushAcks(): Promise<void> {
    const batch = this.acks.splice(0, 1000);
    if (this.acks.length > 0) setImmediate(() => void this.flushAcks());
    try {
      const r = await this.worker.callPersistently<{ results: { ok: boolean; error?: { code: string; message: string } }[] }>("baton.group.ack", { group: this.group, tokens: batch.map((a) => a.token) }, Date.now() + 60_000);
      batch.forEach((a, i) => {
        const result = r.results[i];
        if (result?.ok === true) a.resolve();
        else a.reject(new BatonCallError(`${result?.error?.code ?? "INTERNAL"}: ${result?.error?.message ?? "no result"}`, 1409, false));
      });
    } catch (err) {
      for (const a of batch) a.reject(err);
    }
  }

  private async handle(d: Delivery<T>): Promise<void> {
    const leaseMs = Math.max(1000, Date.parse(d.leaseExpiresAt) - Date.now());
    const local = new AbortController();
    const onStop = (): void => local.abort();
    this.abort.signal.addEventListener("abort", onStop);
    const extend = async (ms?: number): Promise<void> => {
      await this.worker.call("baton.group.extend", { group: this.group, token: d.token, ...(ms === undefined ? {} : { lease: ms }) });
    };
    // Heartbeat at a third of the lease, so two can fail before the lease ends.
    const heartbeat = setInterval(() => {
      extend(leaseMs).catch((err: unknown) => {
        this.worker.reportError(err);
        if (err instanceof BatonCallError && err.batonCode === "DELIVERY_NOT_HELD") local.abort();
      });
    }, Math.max(200, Math.floor(leaseMs / 3)));
    let settle: { method: string; data: Record<string, unknown> } | undefined;
    let acked = false;
    const reservations: Reservation[] = [];
    const handedOver = new Set<Reservation>();
    const ack = async (options: { slot?: Reservation } = {}): Promise<void> => {
      if (acked) return;
      // Marked before the call: if its answer is lost, the slot may hold the event already, and
      // must then be left to run out (the event goes back to the group), never released.
      if (options.slot !== undefined) handedOver.add(options.slot);
      await this.worker.callPersistently("baton.group.ack", { group: this.group, token: d.token, ...(options.slot === undefined ? {} : { slot: options.slot.token }) }, Date.parse(d.leaseExpiresAt) + leaseMs * 10);
      acked = true;
      clearInterval(heartbeat);
    };
    const reserve = async (resource: string, options: ReserveOptions): Promise<Reservation> => {
      const r = await this.worker.reserve(resource, options);
      reservations.push(r);
      return r;
    };
    try {
      await this.handler(d, { signal: local.signal, extendLease: extend, ack, reserve, worker: this.worker });
      settle = { method: "baton.group.ack", data: { token: d.token } };
    } catch (err) {
      if (err instanceof Terminate) settle = { method: "baton.group.term", data: { token: d.token, reason: err.message } };
      else if (err instanceof RetryAfter) settle = { method: "baton.group.nack", data: { token: d.token, delay: err.delayMs, reason: err.message } };
      else settle = { method: "baton.group.nack", data: { token: d.token, reason: err instanceof Error ? `${err.name}: ${err.message}` : String(err) } };
    } finally {
      clearInterval(heartbeat);
      this.abort.signal.removeEventListener("abort", onStop);
      for (const r of reservations) {
        if (r.done) continue;
        if (handedOver.has(r)) r.abandon();
        else await r.release().catch((err: unknown) => this.worker.reportError(err));
      }
    }
    if (acked) return;
    try {
      if (settle.method === "baton.group.ack") await this.ackSoon(d.token);
      else await this.worker.callPersistently(settle.method, { group: this.group, ...settle.data }, Date.parse(d.leaseExpiresAt) + leaseMs * 10);
    } catch (err) {
      // Typically DELIVERY_NOT_HELD: the lease ended and another member has it now.
      this.worker.reportError(err);
    }
  }
}
