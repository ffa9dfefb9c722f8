/**
 * The load generator of the gateway fan-out benchmark (bench/fanout.ts), one process for every
 * server so that every server is measured by the same client code: N subscribed sockets (the
 * `ws` client for Baton and the plain ws server, `socket.io-client` for Socket.IO) and an HTTP
 * publisher over raw keep-alive sockets (as bench/paced.ts), in one event loop.
 *
 * It runs the phases of its config in order against one server, or against the nodes of a Baton
 * cluster (bench/fanout-cluster.ts: sockets and publisher connections spread round-robin over
 * `urls`, CPU and RSS summed over `serverPids`, nats-server's CPU apart), and prints one
 * FanoutClientsResult as JSON on its last stdout line. Progress goes to stderr.
 *
 * - Connect: N sockets, at most `connectWindow` handshakes in flight (below the server's listen
 *   backlog of 511). A Baton socket sends connect and subscribe in one frame and counts as
 *   connected at the subscribe reply; each has its own user (`u<i>`), as real clients would.
 * - Idle memory: the server's RSS before the first socket and with all N connected and idle.
 * - Ramp: events at a rising rate, `stepS` seconds per step, until the sockets fall behind (what
 *   they are owed grows during the step). The most deliveries per second is the capacity.
 * - Steady: one rate for a while, for latency.
 * - Publish: closed-loop publishes to a topic without subscribers, for its append rate.
 * - Idle: nothing published, for the server's background CPU.
 * - Storm (Baton only): record every socket's offset, drop every socket at once, publish
 *   `events` durable events, reconnect every socket with recover:true from its offset, and
 *   check that each one receives exactly the offsets after its own, in order, once.
 *
 * Latency is end to end: the publisher puts its clock (µs since the epoch, from
 * performance.timeOrigin + performance.now()) in the event, the socket's message handler
 * subtracts it from its clock. Publisher and sockets share this process, so one clock.
 *
 * Usage: node bench/fanout-clients.ts '<FanoutClientsConfig JSON>'
 */
import { readFileSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { availableParallelism } from "node:os";
import { io, type Socket as IoSocket } from "socket.io-client";
import WebSocket from "ws";
import { mintToken } from "../src/edge/auth/tokens.ts";
import { cpuWindow, EVENT_DATA, waitQuiet, type CpuUse } from "./lib.ts";

export type ServerKind = "ws" | "socketio" | "baton";

export interface RampPhase {
  readonly type: "ramp";
  readonly name: string;
  /** Publish with `"ephemeral":true` (Baton's fast path; the peers ignore it). */
  readonly ephemeral: boolean;
  /** Deliveries per second offered by the first step (event rate × N). */
  readonly startDeliveriesPerS: number;
  readonly factor: number;
  readonly maxSteps: number;
  readonly stepS: number;
}

export interface SteadyPhase {
  readonly type: "steady";
  readonly name: string;
  readonly ephemeral: boolean;
  /** Events per second; or half the saturating rate of the ramp named `halfOf`. */
  readonly rate?: number;
  readonly halfOf?: string;
  readonly seconds: number;
}

export interface StormPhase {
  readonly type: "storm";
  readonly name: string;
  /** Durable events published while every socket is away. */
  readonly events: number;
  /** Reconnect handshakes in flight at once. */
  readonly window: number;
  /** Give up waiting for every socket to catch up after this long. */
  readonly limitS: number;
}

/**
 * Publishes only, closed loop: every publisher connection sends its next event to `topic` as soon
 * as the last one is answered, for `seconds`. Measures how fast one topic takes appends (with
 * several nodes, from all of them at once); `topic` should have no subscribers.
 */
export interface PublishPhase {
  readonly type: "publish";
  readonly name: string;
  readonly topic: string;
  readonly seconds: number;
  /** Give every event its own idempotency key. */
  readonly idempotent: boolean;
}

/** Nothing published for `seconds`, sockets connected: what the server does in the background. */
export interface IdlePhase {
  readonly type: "idle";
  readonly name: string;
  readonly seconds: number;
}

export type Phase = RampPhase | SteadyPhase | StormPhase | PublishPhase | IdlePhase;

export interface FanoutClientsConfig {
  readonly kind: ServerKind;
  /** http://host:port of the server. */
  readonly url: string;
  /**
   * Every node of a cluster (Baton): socket i connects to urls[i % length], publisher connection
   * j to urls[j % length], and publishes rotate over the connections. Default [url].
   */
  readonly urls?: readonly string[];
  readonly topic: string;
  readonly n: number;
  readonly serverPid: number;
  /** Every node's pid (summed for CPU and RSS). Default [serverPid]. */
  readonly serverPids?: readonly number[];
  /** Processes the server needs that are not the server (nats-server): CPU measured apart. */
  readonly helperPids?: readonly number[];
  /** HS256 secret to mint tokens with (Baton). */
  readonly secret?: string;
  readonly connectWindow: number;
  /** Publisher connections (each carries one request at a time). */
  readonly publishConnections: number;
  readonly phases: readonly Phase[];
  /**
   * Signal the server (started with --heapsnapshot-signal=SIGUSR2) to write a heap snapshot
   * before the first socket and once all are connected and idle.
   */
  readonly heapSnapshots?: boolean;
}

export interface StepResult extends CpuUse {
  /** Events per second asked of the publisher. */
  readonly targetEventsPerS: number;
  /** The sockets fell behind during the window (see backlogGrowth). */
  readonly saturated: boolean;
  /** Growth over the window of the deliveries owed and not yet received. */
  readonly backlogGrowth: number;
  /** Events actually published (sent) per second in the window. */
  readonly publishedPerS: number;
  /** publishedPerS × N: what the sockets should have received per second. */
  readonly offeredDeliveriesPerS: number;
  /** Messages received by all sockets in the window, per second. */
  readonly deliveredPerS: number;
  readonly seconds: number;
  /** End-to-end latency of every message received in the window and the drain after it. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly samples: number;
  /**
   * Several nodes: the same latency for sockets on the node that took the publish (local) and
   * on the others (remote: the event crossed NATS as an append notice). NaN with one server.
   */
  readonly localP50Ms: number;
  readonly localP99Ms: number;
  readonly remoteP50Ms: number;
  readonly remoteP99Ms: number;
  /** Deliveries still missing once the drain after the window ended (bounded wait). */
  readonly missing: number;
  readonly drainS: number;
  readonly publishFailures: number;
  /** HTTP acknowledgement latency p99 (durable: includes the fsync). */
  readonly ackP99Ms: number;
  readonly serverRssMaxB: number;
  /** The server's CPU time per delivered message, µs (all its threads). */
  readonly serverUsPerDelivery: number;
  /** The generator's CPU time per delivered message, µs. */
  readonly loadUsPerDelivery: number;
  /** Interrupt + softirq time (loopback TCP), in cores; part of foreignCpuPct. */
  readonly irqCores: number;
  /** foreignCpuPct without irqCores: work that is not this benchmark's, % of all cores. */
  readonly otherCpuPct: number;
}

export interface RampResult {
  readonly type: "ramp";
  readonly name: string;
  readonly steps: readonly (StepResult & { readonly retried: boolean })[];
  /** Most deliveries per second of any step. */
  readonly capacityDeliveriesPerS: number;
  /** capacityDeliveriesPerS / N. */
  readonly saturatingEventsPerS: number;
  /** False when the last step still kept up: capacity is then a lower bound. */
  readonly saturated: boolean;
  /** The step with the most deliveries per second. */
  readonly best: StepResult;
}

export interface SteadyResult extends StepResult {
  readonly type: "steady";
  readonly retried: boolean;
  readonly name: string;
  readonly rate: number;
}

export interface StormResult {
  readonly type: "storm";
  readonly name: string;
  readonly clients: number;
  readonly events: number;
  /** The highest offset before the drop and after the publishes. */
  readonly offsetBefore: number;
  readonly offsetTop: number;
  /** From the first reconnect to every subscribe reply, and to every socket at the top offset. */
  readonly allSubscribedS: number;
  readonly allCaughtUpS: number;
  readonly caughtUp: number;
  /** Sockets that missed an offset, got one twice or out of order, or were not recovered. */
  readonly gaps: number;
  readonly duplicates: number;
  readonly notRecovered: number;
  readonly failedConnects: number;
  /** Publications received across all sockets (should be clients × events). */
  readonly publications: number;
  readonly serverRssBeforeB: number;
  readonly serverRssPeakB: number;
  readonly serverCpuMs: number;
  readonly loadCpuMs: number;
}

export interface PublishResult extends CpuUse {
  readonly type: "publish";
  readonly name: string;
  readonly topic: string;
  readonly idempotent: boolean;
  readonly connections: number;
  readonly seconds: number;
  readonly acked: number;
  readonly ackedPerS: number;
  readonly failures: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Server CPU (all nodes) per acknowledged publish, µs. */
  readonly serverUsPerPublish: number;
  readonly irqCores: number;
  readonly otherCpuPct: number;
}

export interface IdleResult extends CpuUse {
  readonly type: "idle";
  readonly name: string;
  readonly seconds: number;
}

export interface FanoutClientsResult {
  readonly kind: ServerKind;
  readonly n: number;
  readonly connected: number;
  readonly connectS: number;
  readonly connectFailures: number;
  readonly serverRssBaseB: number;
  readonly serverRssIdleB: number;
  readonly rssPerConnectionB: number;
  /** RSS with half the sockets connected and idle. */
  readonly serverRssHalfB: number;
  /**
   * (RSS with all N idle − RSS with N/2 idle) ÷ (N/2): what one more connection costs, without
   * what the process grows by once whatever the count (heap spaces sized up by the connect
   * burst, compiled code, buffers), which `rssPerConnectionB` spreads over the N sockets.
   */
  readonly rssMarginalPerConnectionB: number;
  /** Sockets that did not receive the probe event sent after connecting. */
  readonly probeMissing: number;
  readonly phases: readonly (RampResult | SteadyResult | StormResult | PublishResult | IdleResult)[];
  /** Closes seen while sockets were meant to be open, by code or reason. */
  readonly unexpectedCloses: Record<string, number>;
  /** Messages that were not publications, by kind (pings excluded). */
  readonly otherMessages: number;
}

const config = JSON.parse(process.argv[2] ?? "") as FanoutClientsConfig;
/** Seconds at the start of a step before deliveries and CPU are counted. */
const STEP_WARM_S = 0.5;
const N = config.n;
const URLS = config.urls ?? [config.url];
const SERVER_PIDS = config.serverPids ?? [config.serverPid];
const HELPER_PIDS = config.helperPids ?? [];
const log = (msg: string): void => void process.stderr.write(`    [${config.kind} n=${N}] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

// --- server RSS (Linux /proc) ---

/** Summed over the nodes of a cluster. */
function serverRss(): number {
  let sum = 0;
  for (const pid of SERVER_PIDS) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      sum += m === null ? NaN : Number(m[1]) * 1024;
    } catch {
      return NaN;
    }
  }
  return sum;
}

/**
 * Time the machine spent in interrupt and softirq context so far, ms. Loopback TCP is processed
 * there, and the kernel charges it to no process: lib.ts's cpuWindow counts it as "other" CPU,
 * but in this benchmark it is the cost of the traffic itself.
 */
function irqMs(): number {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (f[5]! + f[6]!) * 10;
  } catch {
    return NaN;
  }
}

/** Samples the server's RSS every 50 ms until stopped; returns the peak. */
function rssPeak(): () => number {
  let peak = serverRss();
  const timer = setInterval(() => (peak = Math.max(peak, serverRss())), 50);
  return () => {
    clearInterval(timer);
    return Math.max(peak, serverRss());
  };
}

// --- latency histogram: 10 µs buckets up to 10 s, so millions of samples cost nothing ---

class Histogram {
  private readonly buckets = new Uint32Array(1_000_001);
  count = 0;

  add(us: number): void {
    const b = us <= 0 ? 0 : Math.min(1_000_000, Math.floor(us / 10));
    this.buckets[b]!++;
    this.count++;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
  }

  /** ms at quantile q (bucket upper edge). */
  at(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) return ((i + 1) * 10) / 1000;
    }
    return NaN;
  }
}

const latency = new Histogram();
/** With several nodes: latency on the publishing node's sockets and on the other nodes'. */
const [localLatency, remoteLatency] = URLS.length > 1 ? [new Histogram(), new Histogram()] : [undefined, undefined];
let received = 0;
let otherMessages = 0;
const unexpectedCloses: Record<string, number> = {};
const noteClose = (what: string): void => void (unexpectedCloses[what] = (unexpectedCloses[what] ?? 0) + 1);

// --- the publisher: raw HTTP/1.1 over keep-alive sockets, one request in flight on each ---

const REST = JSON.stringify(EVENT_DATA).slice(1);
let publishToken = "";
let eventNo = 0;

interface Ack {
  readonly status: number;
  readonly seq: number;
  readonly us: number;
}

class PubConnection {
  private pending: Buffer | undefined;
  private sentAt = 0;
  private onAck: ((ack: Ack) => void) | undefined;
  readonly socket: Socket;
  private readonly host: string;

  constructor(socket: Socket, host: string, node: number) {
    this.socket = socket;
    this.host = host;
    this.node = node;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.data(chunk));
  }

  /** Index in URLS of the node this connection publishes to. */
  readonly node: number;

  /**
   * Publishes one event stamped now; `done` gets the status, the seq (Baton, peers) and the ack
   * latency. `topic` defaults to the config's; `key` is an idempotency key.
   */
  send(ephemeral: boolean, done: (ack: Ack) => void, topic = config.topic, key?: string): void {
    const t = nowUs();
    const extra = `${ephemeral ? ',"ephemeral":true' : ""}${key === undefined ? "" : `,"idempotencyKey":"${key}"`}`;
    // With several nodes the event names the node it is published to ("o"), for local/remote latency.
    const body = `{"data":{"t":${t},${URLS.length > 1 ? `"o":${this.node},` : ""}"n":${++eventNo},${REST}${extra}}`;
    this.sentAt = t;
    this.onAck = done;
    this.socket.write(
      `POST /v1/topics/${topic}/events HTTP/1.1\r\nHost: ${this.host}\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${publishToken}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  private data(chunk: Buffer): void {
    const buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    const headEnd = buf.indexOf("\r\n\r\n");
    const head = headEnd < 0 ? "" : buf.toString("latin1", 0, headEnd);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (headEnd < 0 || buf.length < headEnd + 4 + length) {
      this.pending = buf;
      return;
    }
    this.pending = undefined;
    const body = buf.toString("utf8", headEnd + 4, headEnd + 4 + length);
    const done = this.onAck;
    this.onAck = undefined;
    done?.({ status: Number(head.slice(9, 12)), seq: Number(/"seq":(\d+)/.exec(body)?.[1] ?? NaN), us: nowUs() - this.sentAt });
  }
}

class Publisher {
  private readonly idle: PubConnection[] = [];
  private readonly all: PubConnection[] = [];
  private inFlight = 0;
  /** Highest seq acknowledged so far. */
  topSeq = 0;
  /** Events sent by paced(), for the step's window. */
  sent = 0;

  /** Connection j goes to URLS[j % URLS.length]. */
  async open(count: number): Promise<void> {
    const conns = await Promise.all(
      Array.from({ length: count }, (_, j) => {
        const { hostname, port } = new URL(URLS[j % URLS.length]!);
        const socket = tcpConnect(Number(port), hostname);
        return new Promise<PubConnection>((ok, fail) => {
          socket.once("connect", () => ok(new PubConnection(socket, `${hostname}:${port}`, j % URLS.length)));
          socket.once("error", fail);
        });
      }),
    );
    for (const c of conns) {
      this.all.push(c);
      this.idle.push(c);
    }
  }

  /**
   * The next idle connection: the most recently used one for a single server; with several
   * nodes the least recently used, so that publishes rotate over the nodes even at low rates.
   */
  private take(): PubConnection | undefined {
    return URLS.length > 1 ? this.idle.shift() : this.idle.pop();
  }

  close(): void {
    for (const c of this.all) c.socket.destroy();
  }

  /**
   * Events at `rate`/s for `seconds`, open loop: each is sent when due, or as soon as a
   * connection is free. Resolves when the schedule is over and the last answer is in (bounded).
   */
  async paced(
    rate: number,
    seconds: number,
    ephemeral: boolean,
    atEnd: () => void,
  ): Promise<{ sent: number; acked: number; failures: number; ackP99Ms: number; windowS: number }> {
    const acks = new Histogram();
    let sent = 0;
    let acked = 0;
    let failures = 0;
    let queued = 0;
    const onAck = (conn: PubConnection) => (ack: Ack) => {
      this.inFlight--;
      if (ack.status >= 200 && ack.status < 300) {
        acked++;
        acks.add(ack.us);
        if (ack.seq > this.topSeq) this.topSeq = ack.seq;
      } else failures++;
      if (queued > 0) {
        queued--;
        this.inFlight++;
        conn.send(ephemeral, onAck(conn));
      } else this.idle.push(conn);
    };
    const start = performance.now();
    const end = start + seconds * 1000;
    let due = 0;
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const now = Math.min(performance.now(), end);
        for (const target = Math.floor(((now - start) / 1000) * rate); due < target; due++) {
          sent++;
          this.sent++;
          const conn = this.take();
          if (conn === undefined) queued++;
          else {
            this.inFlight++;
            conn.send(ephemeral, onAck(conn));
          }
        }
        if (now >= end) {
          clearInterval(tick);
          resolve();
        }
      }, 1);
    });
    const windowS = (performance.now() - start) / 1000;
    atEnd();
    const drainUntil = performance.now() + 10_000;
    while ((this.inFlight > 0 || queued > 0) && performance.now() < drainUntil) await sleep(2);
    failures += this.inFlight + queued;
    return { sent, acked, failures, ackP99Ms: acks.at(0.99), windowS };
  }

  /** `count` events as fast as the connections allow; resolves with how many were acknowledged. */
  async burst(count: number, ephemeral: boolean): Promise<number> {
    let next = 0;
    let acked = 0;
    const worker = async (conn: PubConnection): Promise<void> => {
      while (next < count) {
        next++;
        const ack = await new Promise<Ack>((r) => conn.send(ephemeral, r));
        if (ack.status >= 200 && ack.status < 300) {
          acked++;
          if (ack.seq > this.topSeq) this.topSeq = ack.seq;
        }
      }
    };
    const conns = this.idle.splice(0);
    await Promise.all(conns.map(worker));
    this.idle.push(...conns);
    return acked;
  }

  /** Every connection publishes to `topic`, one request in flight each, until `seconds` pass. */
  async closedLoop(topic: string, seconds: number, idempotent: boolean): Promise<{ acked: number; failures: number; lat: Histogram; windowS: number }> {
    const lat = new Histogram();
    let acked = 0;
    let failures = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    const worker = async (conn: PubConnection, j: number): Promise<void> => {
      for (let i = 0; performance.now() < end; i++) {
        const ack = await new Promise<Ack>((r) => conn.send(false, r, topic, idempotent ? `k${j}-${i}-${eventNo}` : undefined));
        if (ack.status >= 200 && ack.status < 300) {
          acked++;
          lat.add(ack.us);
        } else failures++;
      }
    };
    const conns = this.idle.splice(0);
    await Promise.all(conns.map(worker));
    this.idle.push(...conns);
    return { acked, failures, lat, windowS: (performance.now() - start) / 1000 };
  }
}

// --- subscribers ---

/** Setup: waiting for the subscribe reply; fast: count and time; verify: parse and check offsets. */
const Mode = { Setup: 0, Fast: 1, Verify: 2 } as const;
type Mode = (typeof Mode)[keyof typeof Mode];

interface Client {
  readonly index: number;
  ws: WebSocket | undefined;
  io: IoSocket | undefined;
  mode: Mode;
  epoch: string;
  /** Last offset received (verify mode); -1 unknown. */
  last: number;
  /** Offset recorded before the storm's drop. */
  recorded: number;
  expectClose: boolean;
  gap: boolean;
  duplicate: boolean;
  notRecovered: boolean;
  /** Reached the storm's top offset. */
  caughtUp: boolean;
  onReady: ((err?: Error) => void) | undefined;
}

const clients: Client[] = [];
const tokens: string[] = [];
const wsUrls = URLS.map((u) => `${u.replace(/^http/, "ws")}/connection/websocket`);
const T_KEY = Buffer.from('"t":');
const O_KEY = Buffer.from('"o":');
let storm: { top: number; done: number; publications: number; lastDoneAt: number } | undefined;

/** The publish time in a frame, µs, read without parsing the frame; -1 if none. */
function stampOf(buf: Buffer): number {
  return numberAfter(buf, T_KEY);
}

/** The non-negative integer after `key` (4 bytes, `"x":`) in a frame; -1 if none. */
function numberAfter(buf: Buffer, key: Buffer): number {
  const at = buf.indexOf(key);
  if (at < 0) return -1;
  let v = 0;
  for (let i = at + 4; i < buf.length; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
  }
  return v;
}

function onWsMessage(c: Client, buf: Buffer): void {
  if (buf.length === 2) {
    // Baton's ping `{}`: answer with a pong.
    if (config.kind === "baton") c.ws?.send("{}");
    return;
  }
  if (c.mode === Mode.Fast) {
    const t = stampOf(buf);
    if (t >= 0) {
      received++;
      const us = nowUs() - t;
      latency.add(us);
      if (localLatency !== undefined) (numberAfter(buf, O_KEY) === c.index % URLS.length ? localLatency : remoteLatency!).add(us);
    } else otherMessages++;
    return;
  }
  for (const line of buf.toString("utf8").split("\n")) {
    if (line !== "") onFrameLine(c, JSON.parse(line) as Record<string, any>);
  }
}

function onFrameLine(c: Client, msg: Record<string, any>): void {
  if (c.mode === Mode.Setup) {
    if (msg["id"] === 2) {
      if (msg["subscribe"] === undefined) return c.onReady?.(new Error(`subscribe failed: ${JSON.stringify(msg)}`));
      const sub = msg["subscribe"] as { epoch: string; offset: number; recovered?: boolean; publications?: { offset: number }[] };
      c.epoch = sub.epoch;
      if (storm !== undefined) {
        if (sub.recovered !== true) c.notRecovered = true;
        c.mode = Mode.Verify;
        for (const p of sub.publications ?? []) onPublication(c, p.offset);
      } else {
        c.mode = Mode.Fast;
      }
      c.onReady?.();
    } else if (msg["error"] !== undefined) {
      c.onReady?.(new Error(`reply ${JSON.stringify(msg)}`));
    }
    return;
  }
  const pub = (msg["push"] as { pub?: { offset?: number; data?: { t?: number } } } | undefined)?.pub;
  if (pub === undefined) {
    if (msg["push"] !== undefined || msg["error"] !== undefined) otherMessages++;
    return;
  }
  received++;
  if (typeof pub.data?.t === "number") latency.add(nowUs() - pub.data.t);
  if (typeof pub.offset === "number") onPublication(c, pub.offset);
}

function onPublication(c: Client, offset: number): void {
  if (storm !== undefined) storm.publications++;
  if (c.last >= 0) {
    if (offset <= c.last) c.duplicate = true;
    else if (offset > c.last + 1) c.gap = true;
  }
  if (offset > c.last) c.last = offset;
  if (storm !== undefined && !c.caughtUp && c.last === storm.top) {
    c.caughtUp = true;
    storm.done++;
    storm.lastDoneAt = performance.now();
  }
}

function openWs(c: Client, recover: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const ready = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.onReady = undefined;
      if (err === undefined) resolve();
      else reject(err);
    };
    const timer = setTimeout(() => ready(new Error("connect timed out")), 30_000);
    const ws = new WebSocket(wsUrls[c.index % wsUrls.length]!, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 20_000 });
    c.ws = ws;
    c.expectClose = false;
    c.onReady = ready;
    c.mode = config.kind === "baton" ? Mode.Setup : Mode.Fast;
    ws.on("open", () => {
      if (config.kind !== "baton") return ready();
      const sub = recover ? { channel: config.topic, recover: true, offset: c.recorded, epoch: c.epoch } : { channel: config.topic };
      ws.send(`${JSON.stringify({ id: 1, connect: { token: tokens[c.index] } })}\n${JSON.stringify({ id: 2, subscribe: sub })}`);
    });
    ws.on("message", (data: Buffer) => onWsMessage(c, data));
    ws.on("error", (err) => ready(err));
    ws.on("close", (code) => {
      if (!c.expectClose) noteClose(`ws ${code}`);
      ready(new Error(`closed ${code} before ready`));
    });
  });
}

function openIo(c: Client): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = io(config.url, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: 20_000 });
    c.io = s;
    c.mode = Mode.Fast;
    s.on("pub", (p: { data?: { t?: number } }) => {
      received++;
      if (typeof p.data?.t === "number") latency.add(nowUs() - p.data.t);
    });
    s.once("connect", () => resolve());
    s.once("connect_error", (err) => reject(err));
    s.on("disconnect", (reason) => {
      if (!c.expectClose) noteClose(`socket.io ${reason}`);
    });
  });
}

function newClient(index: number): Client {
  return { index, ws: undefined, io: undefined, mode: Mode.Setup, epoch: "", last: -1, recorded: -1, expectClose: false, gap: false, duplicate: false, notRecovered: false, caughtUp: false, onReady: undefined };
}

/** Runs `open` for every client with at most `window` in flight; returns the failures. */
async function connectAll(list: readonly Client[], window: number, open: (c: Client) => Promise<void>): Promise<number> {
  let next = 0;
  let failures = 0;
  const lane = async (): Promise<void> => {
    while (next < list.length) {
      const c = list[next++]!;
      try {
        await open(c);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, list.length) }, lane));
  return failures;
}

function dropAll(): Promise<void> {
  const closing: Promise<unknown>[] = [];
  for (const c of clients) {
    c.expectClose = true;
    if (c.ws !== undefined && c.ws.readyState !== WebSocket.CLOSED) {
      closing.push(new Promise((r) => c.ws!.once("close", r)));
      c.ws.terminate();
    }
    c.io?.disconnect();
  }
  return Promise.race([Promise.all(closing).then(() => undefined), sleep(10_000)]);
}

// --- measurement ---

let expected = 0;

/** Waits until every published event reached every socket, or progress stops (bounded). */
async function drain(limitMs: number): Promise<number> {
  const start = performance.now();
  let last = received;
  let lastMove = start;
  while (received < expected && performance.now() - start < limitMs) {
    await sleep(20);
    if (received !== last) {
      last = received;
      lastMove = performance.now();
    } else if (performance.now() - lastMove > 1500) break;
  }
  return (performance.now() - start) / 1000;
}

/**
 * Publishes at `rate` for `seconds`. Deliveries and CPU are counted from `warmS` into the window
 * to its end: by then deliveries flow at the rate of this step whatever the latency, so the
 * count is neither short by the events still in flight at the end nor padded by the step before.
 * Latency covers every message of the window and of the drain after it (a backlog's latency is
 * part of the load's).
 */
async function step(rate: number, seconds: number, ephemeral: boolean, publisher: Publisher, warmS = STEP_WARM_S): Promise<StepResult> {
  latency.reset();
  localLatency?.reset();
  remoteLatency?.reset();
  const peak = rssPeak();
  publisher.sent = 0;
  const base = received;
  // Deliveries owed for the events sent so far in this step and not yet received.
  const backlog = (): number => publisher.sent * N - (received - base);
  const mark = () => ({ received, at: performance.now(), sent: publisher.sent, backlog: backlog(), cpu: cpuWindow(SERVER_PIDS, HELPER_PIDS), irq: irqMs() });
  let from = mark();
  const warm = setTimeout(() => (from = mark()), warmS * 1000);
  let delivered = 0;
  let windowS = 0;
  let sent = 0;
  let growth = 0;
  let used: CpuUse | undefined;
  let irq = 0;
  const pub = await publisher.paced(rate, seconds, ephemeral, () => {
    clearTimeout(warm);
    delivered = received - from.received;
    windowS = (performance.now() - from.at) / 1000;
    sent = publisher.sent - from.sent;
    growth = backlog() - from.backlog;
    used = from.cpu();
    irq = irqMs() - from.irq;
  });
  expected += pub.acked * N;
  const drainS = await drain(10_000);
  const deliveredPerS = delivered / windowS;
  const irqCores = irq / 1000 / windowS;
  return {
    targetEventsPerS: rate,
    // The sockets fell behind: what they were owed grew over the window by more than a few
    // events' worth. Latency alone cannot tell, and comparing deliveries with the offered rate
    // cannot either when a window holds only a handful of events of 10,000 deliveries each.
    saturated: growth > Math.max(3 * N, 0.1 * sent * N),
    backlogGrowth: growth,
    publishedPerS: sent / windowS,
    offeredDeliveriesPerS: (sent * N) / windowS,
    deliveredPerS,
    seconds: windowS,
    p50Ms: latency.at(0.5),
    p99Ms: latency.at(0.99),
    localP50Ms: localLatency?.at(0.5) ?? NaN,
    localP99Ms: localLatency?.at(0.99) ?? NaN,
    remoteP50Ms: remoteLatency?.at(0.5) ?? NaN,
    remoteP99Ms: remoteLatency?.at(0.99) ?? NaN,
    maxMs: latency.at(1),
    samples: latency.count,
    missing: Math.max(0, expected - received),
    drainS,
    publishFailures: pub.failures,
    ackP99Ms: pub.ackP99Ms,
    serverRssMaxB: peak(),
    serverUsPerDelivery: (1000 * used!.serverCpuMs) / Math.max(1, delivered),
    loadUsPerDelivery: (1000 * used!.loadCpuMs) / Math.max(1, delivered),
    irqCores,
    otherCpuPct: Math.max(0, used!.foreignCpuPct - (100 * irqCores) / availableParallelism()),
    ...used!,
  };
}

function fmtStep(r: StepResult): string {
  return (
    `${r.targetEventsPerS.toFixed(1)} ev/s x ${N}: delivered ${Math.round(r.deliveredPerS)}/s of ${Math.round(r.offeredDeliveriesPerS)}/s offered, ` +
    `p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} ms, srv ${(r.serverCpuMs / 1000 / r.seconds).toFixed(2)} gen ${(r.loadCpuMs / 1000 / r.seconds).toFixed(2)}${HELPER_PIDS.length > 0 ? ` helper ${(r.helperCpuMs / 1000 / r.seconds).toFixed(2)}` : ""} cores, ` +
    `irq ${r.irqCores.toFixed(2)} cores, other ${r.otherCpuPct.toFixed(0)}%, missing ${r.missing}${r.saturated ? ", SATURATED" : ""}`
  );
}

/**
 * A step whose window saw more than this share of the machine busy with work that is not the
 * benchmark's (other processes on this shared VM) is run once more after the machine is quiet.
 */
const OTHER_CPU_RETRY_PCT = 15;

async function cleanStep(rate: number, seconds: number, ephemeral: boolean, publisher: Publisher, label: string): Promise<StepResult & { retried: boolean }> {
  const first = await step(rate, seconds, ephemeral, publisher);
  if (!(first.otherCpuPct > OTHER_CPU_RETRY_PCT)) return { ...first, retried: false };
  log(`${label}: ${first.otherCpuPct.toFixed(0)}% of the machine was busy with other work; waiting for quiet and running it again`);
  await waitQuiet(10_000);
  return { ...(await step(rate, seconds, ephemeral, publisher)), retried: true };
}

async function ramp(p: RampPhase, publisher: Publisher): Promise<RampResult> {
  const steps: (StepResult & { retried: boolean })[] = [];
  let offered = p.startDeliveriesPerS;
  let saturated = false;
  for (let i = 0; i < p.maxSteps; i++) {
    const r = await cleanStep(offered / N, p.stepS, p.ephemeral, publisher, `${p.name} step ${i + 1}`);
    steps.push(r);
    log(`${p.name} step ${i + 1}: ${fmtStep(r)}`);
    if (r.saturated) {
      saturated = true;
      break;
    }
    offered *= p.factor;
  }
  // A step that kept up delivered what was offered (more only by counting noise); a saturated
  // one delivered what the server and generator could.
  const rateOf = (r: StepResult): number => (r.saturated ? r.deliveredPerS : Math.min(r.deliveredPerS, r.offeredDeliveriesPerS));
  const best = steps.reduce((a, b) => (rateOf(b) > rateOf(a) ? b : a));
  return { type: "ramp", name: p.name, steps, capacityDeliveriesPerS: rateOf(best), saturatingEventsPerS: rateOf(best) / N, saturated, best };
}

async function runStorm(p: StormPhase, publisher: Publisher): Promise<StormResult> {
  if (config.kind !== "baton") throw new Error("the storm is a Baton scenario");
  // Every socket parses and checks offsets from here on; a few events set each one's offset.
  for (const c of clients) {
    c.mode = Mode.Verify;
    c.last = -1;
  }
  expected += (await publisher.burst(3, false)) * N;
  await drain(10_000);
  const offsetBefore = publisher.topSeq;
  let unset = 0;
  for (const c of clients) {
    if (c.last !== offsetBefore) unset++;
    c.recorded = c.last;
    c.gap = c.duplicate = false;
  }
  if (unset > 0) log(`storm: ${unset} sockets were not at offset ${offsetBefore} before the drop`);

  const peak = rssPeak();
  const rssBefore = serverRss();
  const cpu = cpuWindow(SERVER_PIDS, HELPER_PIDS);
  await dropAll();
  const acked = await publisher.burst(p.events, false);
  const top = publisher.topSeq;
  log(`storm: dropped ${clients.length} sockets, published ${acked} events (offsets ${offsetBefore + 1}..${top}); reconnecting`);
  storm = { top, done: 0, publications: 0, lastDoneAt: 0 };
  const start = performance.now();
  let subscribedAt = start;
  let subscribed = 0;
  const failedConnects = await connectAll(clients, p.window, async (c) => {
    await openWs(c, true);
    if (++subscribed === clients.length) subscribedAt = performance.now();
  });
  const deadline = start + p.limitS * 1000;
  while (storm.done < clients.length - failedConnects && performance.now() < deadline) await sleep(10);
  const caughtUpAt = storm.lastDoneAt;
  // Anything arriving late is a duplicate: give it a moment to show up.
  await sleep(500);
  const used = cpu();
  const result: StormResult = {
    type: "storm",
    name: p.name,
    clients: clients.length,
    events: acked,
    offsetBefore,
    offsetTop: top,
    allSubscribedS: subscribed === clients.length ? (subscribedAt - start) / 1000 : NaN,
    allCaughtUpS: storm.done === clients.length ? (caughtUpAt - start) / 1000 : NaN,
    caughtUp: clients.filter((c) => c.last === top).length,
    gaps: clients.filter((c) => c.gap).length,
    duplicates: clients.filter((c) => c.duplicate).length,
    notRecovered: clients.filter((c) => c.notRecovered).length,
    failedConnects,
    publications: storm.publications,
    serverRssBeforeB: rssBefore,
    serverRssPeakB: peak(),
    serverCpuMs: used.serverCpuMs,
    loadCpuMs: used.loadCpuMs,
  };
  log(
    `storm: ${result.caughtUp}/${result.clients} caught up in ${result.allCaughtUpS.toFixed(2)} s (all subscribed ${result.allSubscribedS.toFixed(2)} s), ` +
      `gaps ${result.gaps}, duplicates ${result.duplicates}, not recovered ${result.notRecovered}, failed ${failedConnects}`,
  );
  return result;
}

async function publishOnly(p: PublishPhase, publisher: Publisher): Promise<PublishResult> {
  const cpu = cpuWindow(SERVER_PIDS, HELPER_PIDS);
  const irq0 = irqMs();
  const r = await publisher.closedLoop(p.topic, p.seconds, p.idempotent);
  const used = cpu();
  const irqCores = (irqMs() - irq0) / 1000 / r.windowS;
  const result: PublishResult = {
    type: "publish",
    name: p.name,
    topic: p.topic,
    idempotent: p.idempotent,
    connections: config.publishConnections,
    seconds: r.windowS,
    acked: r.acked,
    ackedPerS: r.acked / r.windowS,
    failures: r.failures,
    p50Ms: r.lat.at(0.5),
    p99Ms: r.lat.at(0.99),
    serverUsPerPublish: (1000 * used.serverCpuMs) / Math.max(1, r.acked),
    irqCores,
    otherCpuPct: Math.max(0, used.foreignCpuPct - (100 * irqCores) / availableParallelism()),
    ...used,
  };
  log(
    `${p.name}: ${Math.round(result.ackedPerS)} publishes/s to ${p.topic} over ${config.publishConnections} connections, ack p50 ${result.p50Ms.toFixed(2)} p99 ${result.p99Ms.toFixed(2)} ms, ` +
      `failures ${result.failures}, srv ${(used.serverCpuMs / 1000 / r.windowS).toFixed(2)} helper ${(used.helperCpuMs / 1000 / r.windowS).toFixed(2)} cores, other ${result.otherCpuPct.toFixed(0)}%`,
  );
  return result;
}

/** Has the server write a heap snapshot; resolves once it answers HTTP again (the write blocks it). */
async function heapSnapshot(): Promise<void> {
  process.kill(config.serverPid, "SIGUSR2");
  await sleep(200);
  await fetch(`${config.url}/readyz`, { signal: AbortSignal.timeout(60_000) });
  log("heap snapshot written");
}

async function main(): Promise<void> {
  if (config.kind === "baton") {
    const secret = config.secret ?? "";
    publishToken = await mintToken(secret, { tenant: "bench", sub: "publisher", publish: [">"] }, 3_600_000);
    for (let i = 0; i < N; i++) tokens.push(await mintToken(secret, { tenant: "bench", sub: `u${i}`, subscribe: [">"] }, 3_600_000));
  }
  const publisher = new Publisher();
  await publisher.open(config.publishConnections);
  if (config.heapSnapshots === true) await heapSnapshot();
  const rssBase = serverRss();

  for (let i = 0; i < N; i++) clients.push(newClient(i));
  // Half the sockets, then the other half, each connected, probed and idle for 2 s before the
  // RSS is read: the difference is the marginal cost of a connection.
  const half = Math.floor(N / 2);
  const open = (c: Client): Promise<void> => (config.kind === "socketio" ? openIo(c) : openWs(c, false));
  const probe = async (connected: number): Promise<number> => {
    // One event must reach every connected socket before anything is measured.
    const from = received;
    expected = received + (await publisher.burst(1, false)) * connected;
    await drain(10_000);
    return connected - (received - from);
  };
  const t0 = performance.now();
  let connectFailures = await connectAll(clients.slice(0, half), config.connectWindow, open);
  let connectS = (performance.now() - t0) / 1000;
  const halfMissing = await probe(half - connectFailures);
  await sleep(2000);
  const rssHalf = serverRss();
  const t1 = performance.now();
  connectFailures += await connectAll(clients.slice(half), config.connectWindow, open);
  connectS += (performance.now() - t1) / 1000;
  log(`connected ${N - connectFailures}/${N} in ${connectS.toFixed(1)} s`);
  const probeMissing = halfMissing + (await probe(N - connectFailures));
  await sleep(2000);
  const rssIdle = serverRss();
  log(`probe missing ${probeMissing}; server RSS ${(rssBase / 2 ** 20).toFixed(0)} MiB -> ${(rssIdle / 2 ** 20).toFixed(0)} MiB idle`);
  if (config.heapSnapshots === true) await heapSnapshot();

  const results: (RampResult | SteadyResult | StormResult | PublishResult | IdleResult)[] = [];
  for (const p of config.phases) {
    if (p.type === "ramp") results.push(await ramp(p, publisher));
    else if (p.type === "publish") results.push(await publishOnly(p, publisher));
    else if (p.type === "idle") {
      const cpu = cpuWindow(SERVER_PIDS, HELPER_PIDS);
      const t = performance.now();
      await sleep(p.seconds * 1000);
      const r: IdleResult = { type: "idle", name: p.name, seconds: (performance.now() - t) / 1000, ...cpu() };
      log(`${p.name}: idle for ${r.seconds.toFixed(1)} s: srv ${(r.serverCpuMs / 1000 / r.seconds).toFixed(2)} helper ${(r.helperCpuMs / 1000 / r.seconds).toFixed(2)} cores`);
      results.push(r);
    }
    else if (p.type === "steady") {
      const base = results.find((r): r is RampResult => r.type === "ramp" && r.name === p.halfOf);
      const rate = p.rate ?? (base === undefined ? NaN : base.saturatingEventsPerS / 2);
      if (!(rate > 0)) throw new Error(`steady ${p.name}: no rate`);
      const r = await cleanStep(rate, p.seconds, p.ephemeral, publisher, p.name);
      log(`${p.name}: ${fmtStep(r)}`);
      results.push({ type: "steady", name: p.name, rate, ...r });
    } else {
      results.push(await runStorm(p, publisher));
    }
  }

  for (const c of clients) c.expectClose = true;
  await dropAll();
  publisher.close();
  const result: FanoutClientsResult = {
    kind: config.kind,
    n: N,
    connected: N - connectFailures,
    connectS,
    connectFailures,
    serverRssBaseB: rssBase,
    serverRssIdleB: rssIdle,
    rssPerConnectionB: (rssIdle - rssBase) / N,
    serverRssHalfB: rssHalf,
    rssMarginalPerConnectionB: (rssIdle - rssHalf) / (N - half),
    probeMissing,
    phases: results,
    unexpectedCloses,
    otherMessages,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
