/**
 * The peers of the consumer-group benchmark (bench/consumers.ts), each behind one small
 * interface so that bench/consumer-clients.ts drives all of them with the same producers, the
 * same handler and the same bookkeeping:
 *
 * - `bullmq`: Queue.add, Worker with `concurrency`; a job completes when the handler returns.
 * - `redis-streams`: XADD; XREADGROUP COUNT/BLOCK, XACK; failed entries are left pending and
 *   taken back with XAUTOCLAIM once idle for the backoff.
 * - `nats` / `nats-ackack`: JetStream, a file-storage stream made for the run, a durable pull
 *   consumer with explicit ack, consume(); `nats-ackack` waits for the server to confirm each ack.
 * - `baton`: Baton's consumer groups over HTTP (create, pull, ack, nack).
 * - `baton-ws`: the same groups through the WebSocket worker SDK (packages/sdk/src/worker.ts);
 *   producers publish over HTTP as for `baton`.
 * - `baton-nats`, `baton-nats3`: `baton` on the NATS engine with one and with three Baton nodes
 *   (connections spread round-robin over the nodes; the group runs on one of them, the others
 *   forward to it).
 *
 * Every peer publishes with durable acknowledgement (the publish resolves when the peer says the
 * event is stored), runs `workers` consumers with `concurrency` handlers in flight in total, acks
 * after the handler returns, and when the handler throws hands the event back for a retry after
 * about BACKOFF_MS where the peer lets it choose.
 */
import { connect as natsConnect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, StorageType, type ConsumerMessages, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { BatonWorker, type Delivery as WorkerDelivery, type HandlerContext } from "../packages/sdk/src/worker.ts";
import { BatonClient } from "../packages/sdk/src/baton-client.ts";
import { KeepAliveHttp } from "./keepalive-http.ts";

/** What every event carries: its id, its publish time (ms on the shared clock) and the data. */
export interface Payload {
  readonly id: string;
  readonly t: number;
  readonly [key: string]: unknown;
}

/** Runs the benchmark's handler for one delivery; rejects when the handler "fails". */
export type Handler = (payload: Payload) => Promise<void>;

/** Called once per confirmed (or, where the peer confirms nothing, sent) ack. */
export type OnCompleted = (id: string) => void;

/** A consumer loop died: the case cannot finish. */
export type OnError = (err: unknown) => void;

export interface PeerOptions {
  readonly workers: number;
  /** Handlers in flight at once, over all workers. */
  readonly concurrency: number;
  readonly redis: { readonly host: string; readonly port: number };
  readonly nats: string;
  /**
   * Baton's URL (http://host:port) and an admin token with publish and subscribe ">"; with
   * `urls` (a cluster) connections are spread over those nodes round-robin.
   */
  readonly baton?: { readonly url: string; readonly token: string; readonly urls?: readonly string[] };
  /** A name unique to this run, for queues, streams and keys. */
  readonly runId: string;
  /** Opens this many publishing connections where a peer publishes over per-request connections. */
  readonly producers: number;
}

export interface Peer {
  /** How the peer stores an acknowledged publish, for the report. */
  readonly durability: string;
  /** Creates the queue, stream or group and starts the consumers. */
  start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void>;
  /** One publish; resolves when the peer has acknowledged it. `producer` picks a connection. */
  publish(payload: Payload, producer: number): Promise<void>;
  /** Stops the consumers (in-flight handlers finish). */
  stop(): Promise<void>;
  /** What the peer itself still holds as pending after the run: all zero when every event was acked. */
  leftovers(): Promise<Record<string, unknown>>;
  /** Deletes what start() created and closes every connection. */
  close(): Promise<void>;
}

/** A case that cannot run here (the peer is missing a feature): reported, not failed. */
export class Skip extends Error {}

export const BACKOFF_MS = 100;
const MAX_ATTEMPTS = 5;

export type PeerName = "bullmq" | "redis-streams" | "nats" | "nats-ackack" | "baton" | "baton-ws" | "baton-socket" | "baton-nats" | "baton-nats3" | "bullmq-aof" | "redis-streams-aof";
/** The peers a default run measures. */
export const PEERS: readonly PeerName[] = ["baton", "baton-ws", "baton-socket", "baton-nats", "baton-nats3", "bullmq", "redis-streams", "nats", "nats-ackack"];
/** Baton on the NATS engine, and how many nodes. */
export const BATON_NATS_NODES: Readonly<Partial<Record<PeerName, number>>> = { "baton-nats": 1, "baton-nats3": 3 };
/**
 * Also known, on request (BENCH_CONSUMER_PEERS): BullMQ and Redis Streams on a private Redis that
 * fsyncs its append-only file before answering (appendfsync always), Baton's durability.
 */
export const AOF_PEERS: readonly PeerName[] = ["bullmq-aof", "redis-streams-aof"];

export function makePeer(name: PeerName, o: PeerOptions): Peer {
  switch (name) {
    case "bullmq":
    case "bullmq-aof":
      return new BullPeer(o);
    case "redis-streams":
    case "redis-streams-aof":
      return new RedisStreamsPeer(o);
    case "nats":
      return new NatsPeer(o, false);
    case "nats-ackack":
      return new NatsPeer(o, true);
    case "baton":
      return new BatonHttpPeer(o);
    case "baton-nats":
    case "baton-nats3":
      return new BatonHttpPeer(o, `NATS engine, ${BATON_NATS_NODES[name]} node(s): publishes and acks are answered once JetStream / KV acked them (one nats-server 2.9, R1: written, fsynced periodically)`);
    case "baton-ws":
      return new BatonWsPeer(o);
    case "baton-socket":
      return new BatonSocketPeer(o);
  }
}

/** Splits `total` handler slots over `workers` as evenly as possible (each at least 1). */
export function share(total: number, workers: number, i: number): number {
  return Math.max(1, Math.floor(total / workers) + (i < total % workers ? 1 : 0));
}

/** Bounds the handlers in flight where the peer's client does not (NATS consume() buffers). */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(n: number) {
    this.free = n;
  }

  acquire(): Promise<void> | undefined {
    if (this.free > 0) {
      this.free--;
      return undefined;
    }
    return new Promise((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free++;
    else next();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the handler and says whether it succeeded. */
async function succeeded(handler: Handler, payload: Payload): Promise<boolean> {
  try {
    await handler(payload);
    return true;
  } catch {
    return false;
  }
}

// --- BullMQ ---

class BullPeer implements Peer {
  readonly durability = "Redis as configured (see the run's redis settings)";
  private readonly o: PeerOptions;
  private readonly name: string;
  private readonly connections: Redis[] = [];
  private queue: Queue | undefined;
  private readonly workers: Worker[] = [];

  constructor(o: PeerOptions) {
    this.o = o;
    this.name = `bench-consumers-${o.runId}`;
  }

  private redis(): Redis {
    // BullMQ needs maxRetriesPerRequest: null on connections it blocks on; ESM callers pass instances.
    const r = new Redis({ ...this.o.redis, maxRetriesPerRequest: null, lazyConnect: false });
    this.connections.push(r);
    return r;
  }

  async start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.queue = new Queue(this.name, { connection: this.redis() });
    await this.queue.waitUntilReady();
    for (let i = 0; i < this.o.workers; i++) {
      const w = new Worker(this.name, async (job) => handler(job.data as Payload), {
        connection: this.redis(),
        concurrency: share(this.o.concurrency, this.o.workers, i),
      });
      w.on("completed", (job) => onCompleted((job.data as Payload).id));
      // A handler failure is expected (the retry case) and only fires "failed"; "error" is the worker's own.
      w.on("error", onError);
      this.workers.push(w);
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  async publish(payload: Payload): Promise<void> {
    await this.queue!.add("e", payload, {
      attempts: MAX_ATTEMPTS,
      backoff: { type: "fixed", delay: BACKOFF_MS },
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }

  async leftovers(): Promise<Record<string, unknown>> {
    return this.queue!.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "failed");
  }

  async close(): Promise<void> {
    if (this.queue !== undefined) {
      await this.queue.obliterate({ force: true });
      await this.queue.close();
    }
    for (const r of this.connections) r.disconnect();
  }
}

// --- Redis Streams ---

type StreamEntry = [id: string, fields: string[]];

class RedisStreamsPeer implements Peer {
  readonly durability = "Redis as configured (see the run's redis settings)";
  private readonly o: PeerOptions;
  private readonly key: string;
  private readonly group = "bench";
  private cmd: Redis | undefined;
  private readonly blocking: Redis[] = [];
  private running = false;
  private readonly loops: Promise<void>[] = [];

  constructor(o: PeerOptions) {
    this.o = o;
    this.key = `bench:consumers:${o.runId}`;
  }

  async start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.cmd = new Redis(this.o.redis);
    await this.cmd.xgroup("CREATE", this.key, this.group, "$", "MKSTREAM");
    this.running = true;
    for (let i = 0; i < this.o.workers; i++) {
      const blk = new Redis(this.o.redis);
      this.blocking.push(blk);
      const ackConn = new Redis(this.o.redis);
      this.blocking.push(ackConn);
      const count = share(this.o.concurrency, this.o.workers, i);
      const consumer = `w${i}`;
      let acking: Promise<void> = Promise.resolve();
      // Handlers of one batch run concurrently; successes are acked in one pipeline (one XACK per
      // entry, so each completion is confirmed per id), while the next batch is already read.
      const handle = async (entries: StreamEntry[]): Promise<void> => {
        const payloads = entries.map(([, fields]) => JSON.parse(fields[1]!) as Payload);
        const ok = await Promise.all(payloads.map((p) => succeeded(handler, p)));
        const done = entries.flatMap(([id], j) => (ok[j] ? [{ id, event: payloads[j]!.id }] : []));
        if (done.length === 0) return;
        await acking;
        const p = ackConn.pipeline();
        for (const d of done) p.xack(this.key, this.group, d.id);
        acking = p.exec().then((res) => {
          res?.forEach(([err, n], j) => {
            if (err === null && n === 1) onCompleted(done[j]!.event);
          });
        });
      };
      this.loops.push(
        (async () => {
          while (this.running) {
            const res = (await blk.xreadgroup("GROUP", this.group, consumer, "COUNT", count, "BLOCK", 250, "STREAMS", this.key, ">")) as [string, StreamEntry[]][] | null;
            const entries = res?.[0]?.[1];
            if (entries !== undefined && entries.length > 0) await handle(entries);
          }
          await acking;
        })().catch(onError),
      );
      // Retries: entries left unacked (the handler threw) are claimed back once idle for the
      // backoff, every BACKOFF_MS / 4, walking the whole pending list each time.
      this.loops.push(
        (async () => {
          while (this.running) {
            await sleep(BACKOFF_MS / 4);
            let cursor = "0-0";
            do {
              const res = (await ackConn.xautoclaim(this.key, this.group, consumer, BACKOFF_MS, cursor, "COUNT", count)) as [string, (StreamEntry | null)[], string[]];
              cursor = res[0];
              const entries = res[1].filter((e): e is StreamEntry => e !== null && e[1] !== null);
              if (entries.length > 0) await handle(entries);
            } while (cursor !== "0-0" && this.running);
          }
        })().catch(onError),
      );
    }
  }

  async publish(payload: Payload): Promise<void> {
    await this.cmd!.xadd(this.key, "*", "d", JSON.stringify(payload));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  async leftovers(): Promise<Record<string, unknown>> {
    const pending = (await this.cmd!.xpending(this.key, this.group)) as [number, ...unknown[]];
    const groups = (await this.cmd!.xinfo("GROUPS", this.key)) as unknown[][];
    const lag = groups[0]?.[groups[0].indexOf("lag") + 1];
    return { pending: pending[0], lag };
  }

  async close(): Promise<void> {
    if (this.cmd !== undefined) {
      await this.cmd.del(this.key);
      this.cmd.disconnect();
    }
    for (const r of this.blocking) r.disconnect();
  }
}

// --- NATS JetStream ---

class NatsPeer implements Peer {
  readonly durability = "JetStream file storage (nats-server 2.9 default: fsync every 2 min, not per message)";
  private readonly o: PeerOptions;
  private readonly ackAck: boolean;
  private readonly stream: string;
  private readonly subject: string;
  private readonly durable = "bench";
  private pubConn: NatsConnection | undefined;
  private jsm: JetStreamManager | undefined;
  private readonly conns: NatsConnection[] = [];
  private readonly iterators: ConsumerMessages[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(o: PeerOptions, ackAck: boolean) {
    this.o = o;
    this.ackAck = ackAck;
    this.stream = `BENCH_CONSUMERS_${o.runId.replace(/[^A-Za-z0-9]/g, "_")}`;
    this.subject = `bench.consumers.${o.runId.replace(/[^A-Za-z0-9]/g, "_")}`;
  }

  async start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.pubConn = await natsConnect({ servers: this.o.nats });
    this.jsm = await jetstreamManager(this.pubConn);
    await this.jsm.streams.add({ name: this.stream, subjects: [this.subject], storage: StorageType.File });
    await this.jsm.consumers.add(this.stream, {
      durable_name: this.durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_deliver: MAX_ATTEMPTS,
      max_ack_pending: 10_000,
    });
    for (let i = 0; i < this.o.workers; i++) {
      const nc = await natsConnect({ servers: this.o.nats });
      this.conns.push(nc);
      const consumer = await jetstream(nc).consumers.get(this.stream, this.durable);
      const max = share(this.o.concurrency, this.o.workers, i);
      const messages = await consumer.consume({ max_messages: max });
      this.iterators.push(messages);
      const slots = new Slots(max);
      const one = async (m: JsMsg): Promise<void> => {
        const payload = m.json<Payload>();
        if (!(await succeeded(handler, payload))) {
          m.nak(BACKOFF_MS);
        } else if (!this.ackAck) {
          m.ack();
          onCompleted(payload.id);
        } else if (await m.ackAck()) {
          onCompleted(payload.id);
        }
      };
      this.loops.push(
        (async () => {
          for await (const m of messages) {
            await slots.acquire();
            const p = one(m).finally(() => {
              slots.release();
              this.inFlight.delete(p);
            });
            this.inFlight.add(p);
          }
        })().catch(onError),
      );
    }
    await Promise.all(this.conns.map((c) => c.flush()));
  }

  async publish(payload: Payload): Promise<void> {
    await jetstream(this.pubConn!).publish(this.subject, JSON.stringify(payload));
  }

  async stop(): Promise<void> {
    for (const it of this.iterators) it.stop();
    await Promise.all(this.loops);
    await Promise.all([...this.inFlight]);
    // Plain acks are fire and forget: flushing makes sure the server has them before the count.
    await Promise.all(this.conns.map((c) => c.flush()));
  }

  async leftovers(): Promise<Record<string, unknown>> {
    const info = await this.jsm!.consumers.info(this.stream, this.durable);
    return { num_pending: info.num_pending, num_ack_pending: info.num_ack_pending, num_redelivered: info.num_redelivered };
  }

  async close(): Promise<void> {
    try {
      if (this.jsm !== undefined) await this.jsm.streams.delete(this.stream);
    } finally {
      await Promise.all([...this.conns, ...(this.pubConn === undefined ? [] : [this.pubConn])].map((c) => c.close()));
    }
  }
}

// --- Baton ---

const GROUP = "bench";
const TOPIC = "jobs";

interface BatonDelivery {
  readonly token: string;
  readonly topic?: string;
  readonly seq?: number;
  readonly attempt?: number;
  readonly event: Record<string, unknown>;
}

/** The benchmark's payload inside a delivery, whether `event` is the stored event or its data. */
function payloadOf(d: { readonly event?: unknown; readonly data?: unknown }): Payload {
  const e = (d.event ?? d) as Record<string, unknown>;
  if (typeof e["id"] === "string" && typeof e["t"] === "number") return e as Payload;
  return e["data"] as Payload;
}

/** The group creation the issue specifies; Skip when the server has no consumer groups yet. */
async function createGroup(http: KeepAliveHttp): Promise<void> {
  const body = { name: GROUP, topic: TOPIC, start: "beginning", ackWait: "30s", maxAttempts: MAX_ATTEMPTS, backoff: { initial: `${BACKOFF_MS}ms`, max: "1s" } };
  const res = await http.request("POST", "/v1/groups", JSON.stringify(body));
  if (res.status === 404) throw new Skip("consumer groups not available");
  if (res.status !== 201) throw new Error(`POST /v1/groups answered ${res.status}: ${res.body.slice(0, 500)}`);
}

/** Publishing, group creation and leftovers, shared by the HTTP and WebSocket variants. */
abstract class BatonBase implements Peer {
  readonly durability: string;
  protected readonly o: PeerOptions;
  private opened = 0;
  protected readonly conns: KeepAliveHttp[] = [];
  private readonly producers: KeepAliveHttp[] = [];
  protected admin: KeepAliveHttp | undefined;

  constructor(o: PeerOptions, durability = "LMDB: publishes and acks are fsynced (group commit) before they are answered") {
    if (o.baton === undefined) throw new Error("no Baton URL");
    this.o = o;
    this.durability = durability;
  }

  protected open(): Promise<KeepAliveHttp> {
    const urls = this.o.baton!.urls ?? [this.o.baton!.url];
    const url = urls[this.opened++ % urls.length]!;
    return KeepAliveHttp.open(url, this.o.baton!.token).then((c) => {
      this.conns.push(c);
      return c;
    });
  }

  async start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.admin = await this.open();
    await createGroup(this.admin);
    for (let i = 0; i < this.o.producers; i++) this.producers.push(await this.open());
    await this.startConsumers(handler, onCompleted, onError);
  }

  protected abstract startConsumers(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void>;
  abstract stop(): Promise<void>;

  async publish(payload: Payload, producer: number): Promise<void> {
    const res = await this.producers[producer % this.producers.length]!.request("POST", `/v1/topics/${TOPIC}/events`, JSON.stringify({ data: payload }));
    if (res.status !== 201) throw new Error(`publish answered ${res.status}: ${res.body.slice(0, 300)}`);
  }

  /** Acks the server refused, and (worker SDK) errors the SDK reported, by code. */
  protected readonly settleErrors: Record<string, number> = {};

  protected refused(code: string): void {
    this.settleErrors[code] = (this.settleErrors[code] ?? 0) + 1;
  }

  async leftovers(): Promise<Record<string, unknown>> {
    // The group's own view (GET /v1/groups/{name}): pending, in flight, delayed, counters.
    const res = await this.admin!.request("GET", `/v1/groups/${GROUP}`);
    const settleErrors = this.settleErrors;
    if (res.status !== 200) return { settleErrors, group: `GET answered ${res.status}` };
    const g = JSON.parse(res.body) as Record<string, unknown>;
    const pick = ["lag", "pending", "ready", "inFlight", "delayed", "waitingOnKey", "counters"];
    return { settleErrors, ...Object.fromEntries(pick.filter((k) => k in g).map((k) => [k, g[k]])) };
  }

  async close(): Promise<void> {
    await this.admin?.request("DELETE", `/v1/groups/${GROUP}`).catch(() => undefined);
    for (const c of this.conns) c.close();
  }
}

/** Workers that pull over HTTP: pull (long-poll), run the batch's handlers, ack them in one call while pulling the next. */
class BatonHttpPeer extends BatonBase {
  private running = false;
  private readonly loops: Promise<void>[] = [];

  protected async startConsumers(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.running = true;
    for (let i = 0; i < this.o.workers; i++) {
      const pull = await this.open();
      const ack = await this.open();
      const max = share(this.o.concurrency, this.o.workers, i);
      const pullBody = JSON.stringify({ consumer: `w${i}`, max, wait: "1s" });
      let acking: Promise<void> = Promise.resolve();
      this.loops.push(
        (async () => {
          while (this.running) {
            const res = await pull.request("POST", `/v1/groups/${GROUP}/pull`, pullBody);
            if (res.status !== 200) throw new Error(`pull answered ${res.status}: ${res.body.slice(0, 300)}`);
            const deliveries = (JSON.parse(res.body) as { deliveries: BatonDelivery[] }).deliveries;
            if (deliveries.length === 0) continue;
            const payloads = deliveries.map(payloadOf);
            const ok = await Promise.all(payloads.map((p) => succeeded(handler, p)));
            await acking;
            const done = deliveries.filter((_, j) => ok[j]);
            const failed = deliveries.filter((_, j) => !ok[j]);
            const ids = payloads.filter((_, j) => ok[j]).map((p) => p.id);
            const calls: Promise<void>[] = failed.map(async (d) => {
              const r = await ack.request("POST", `/v1/groups/${GROUP}/nack`, JSON.stringify({ token: d.token, reason: "planned failure" }));
              if (r.status >= 300) throw new Error(`nack answered ${r.status}: ${r.body.slice(0, 300)}`);
            });
            if (done.length > 0) {
              calls.push(
                ack.request("POST", `/v1/groups/${GROUP}/ack`, JSON.stringify({ tokens: done.map((d) => d.token) })).then((r) => {
                  if (r.status >= 300) throw new Error(`ack answered ${r.status}: ${r.body.slice(0, 300)}`);
                  // {"results":[{"token","ok"}...]}, in the order of the tokens: only an ok ack completes.
                  const results = (JSON.parse(r.body) as { results?: { ok?: boolean; error?: { code?: string } }[] }).results;
                  ids.forEach((id, j) => {
                    const res = results?.[j];
                    if (results === undefined || res?.ok === true) onCompleted(id);
                    else this.refused(res?.error?.code ?? "no result");
                  });
                }),
              );
            }
            acking = Promise.all(calls).then(() => undefined);
          }
          await acking;
        })().catch(onError),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** A short, stable label for an error: its Baton code, or the start of its message. */
function errorCode(err: unknown): string {
  const e = err as { batonCode?: unknown; code?: unknown; message?: unknown };
  if (typeof e.batonCode === "string") return e.batonCode;
  const message = typeof e.message === "string" ? e.message : String(err);
  return `${typeof e.code === "number" || typeof e.code === "string" ? `${e.code} ` : ""}${message.replace(/\d+:\d+:\S+/g, "<token>").slice(0, 80)}`;
}

/**
 * Workers on the WebSocket worker SDK (packages/sdk/src/worker.ts), one socket per worker. The
 * handler acks explicitly with `ctx.ack()` once the benchmark's handler has returned, which is
 * what the SDK does on return, but awaiting the server's answer, so that a completion is counted
 * only when the ack is confirmed (as for the HTTP workers). A throw is a nack (the SDK's).
 */
class BatonWsPeer extends BatonBase {
  private readonly workers: BatonWorker[] = [];

  protected startConsumers(handler: Handler, onCompleted: OnCompleted, _onError: OnError): Promise<void> {
    for (let i = 0; i < this.o.workers; i++) {
      // Errors the SDK handles itself (an ack it could not send, ...) are counted, not fatal: a
      // lost ack shows up as a missing or duplicate event.
      const w = new BatonWorker(this.o.baton!.url, {
        token: this.o.baton!.token,
        onError: (err) => this.refused(errorCode(err)),
      });
      this.workers.push(w);
      w.consume(
        GROUP,
        async (delivery: WorkerDelivery, ctx: HandlerContext) => {
          const p = payloadOf(delivery);
          await handler(p);
          try {
            await ctx.ack();
          } catch (err) {
            // Counted; the SDK then nacks, and the event comes back or is missing at the end.
            this.refused(`ack: ${errorCode(err)}`);
            throw err;
          }
          onCompleted(p.id);
        },
        { maxInFlight: share(this.o.concurrency, this.o.workers, i) },
      );
    }
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    // Stops each consumer (finishing what it holds) and disconnects.
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/**
 * Everything over sockets: producers publish with the client SDK (`BatonClient.publish`, the
 * `baton.publish` RPC, acknowledged once durable) on one socket per 4 producers, as a backend
 * holding a connection would; workers as in `baton-ws`.
 */
class BatonSocketPeer extends BatonWsPeer {
  private readonly clients: BatonClient[] = [];

  override async start(handler: Handler, onCompleted: OnCompleted, onError: OnError): Promise<void> {
    this.admin = await this.open();
    await createGroup(this.admin);
    for (let i = 0; i < Math.max(1, Math.ceil(this.o.producers / 4)); i++) {
      const c = new BatonClient(this.o.baton!.url, { token: this.o.baton!.token });
      const connected = new Promise<void>((resolve) => c.on("connected", () => resolve()));
      c.connect();
      await connected;
      this.clients.push(c);
    }
    await this.startConsumers(handler, onCompleted, onError);
  }

  override async publish(payload: Payload, producer: number): Promise<void> {
    await this.clients[producer % this.clients.length]!.publish(TOPIC, payload);
  }

  override async stop(): Promise<void> {
    await super.stop();
    for (const c of this.clients) c.disconnect();
  }
}
