/**
 * One case of the consumer-group benchmark (bench/consumers.ts): producers and consumers of one
 * peer (bench/consumer-peers.ts) in this process, the peer's server in another. Prints one
 * ConsumerCaseResult as JSON on its last stdout line; progress goes to stderr.
 *
 * The case: `producers` loops publish `events` events (each awaits its publish's durable ack
 * before the next), while `workers` consumers with `concurrency` handlers in flight in total
 * consume them. The handler does no work: it records the delivery and returns, so the event is
 * acked; in the retry variant every (100 / failPct)-th event throws on its first delivery and must
 * come back once. A warm-up of `warmup` events goes through the same consumers first.
 *
 * - events/s: measured events over the time from the first publish to the last completion.
 * - consume latency: from the publish time carried in the event (taken just before the publish
 *   call) to the start of the handler, first deliveries only; publisher and consumers share this
 *   process and so one clock.
 * - retry delay: from the failing handler to the event's second delivery.
 * - Exactly once: every id must complete (its ack confirmed by the peer, or for NATS plain ack
 *   and the Baton worker SDK, sent) once. Missing ids fail the run; duplicates are reported.
 *
 * Usage: node bench/consumer-clients.ts '<ConsumerClientsConfig JSON>'
 */
import { cpuWindow, EVENT_DATA, Latencies, type CpuUse, type LatencySummary } from "./lib.ts";
import { makePeer, Skip, type Handler, type Payload, type Peer, type PeerName } from "./consumer-peers.ts";

export interface ConsumerClientsConfig {
  readonly peer: PeerName;
  readonly events: number;
  readonly warmup: number;
  readonly producers: number;
  readonly workers: number;
  readonly concurrency: number;
  /** Share of events (%) whose first delivery fails; 0 for the clean variant. */
  readonly failPct: number;
  /** A phase that has not completed after this long gives up, with what is missing reported. */
  readonly limitS: number;
  /** ...and so does one in which nothing was published or completed for this long. */
  readonly stallS: number;
  /** After the last completion, wait this long for late (duplicate) deliveries before stopping. */
  readonly graceMs: number;
  readonly redis: { readonly host: string; readonly port: number };
  readonly nats: string;
  readonly baton?: { readonly url: string; readonly token: string; readonly urls?: readonly string[] };
  /** The server's pid, for its CPU time (Baton's child, or the Redis / NATS service). */
  /** The server's process(es): Baton nodes and, for Baton on NATS, nats-server. */
  readonly serverPid?: number | readonly number[];
  readonly runId: string;
}

export interface ConsumerCaseResult {
  readonly peer: PeerName;
  readonly failPct: number;
  readonly skipped?: string;
  readonly durability?: string;
  readonly events?: number;
  /** First publish to last completion, s. */
  readonly seconds?: number;
  readonly eventsPerS?: number;
  /** First publish to last publish ack, s, and the rate over it. */
  readonly publishSeconds?: number;
  readonly publishPerS?: number;
  readonly publish?: LatencySummary;
  readonly consume?: LatencySummary;
  readonly retry?: LatencySummary;
  readonly completed?: number;
  readonly missing?: number;
  readonly duplicates?: number;
  readonly plannedFailures?: number;
  /** Handler calls in the measured phase, and how many more than events + planned failures. */
  readonly deliveries?: number;
  readonly extraDeliveries?: number;
  readonly leftovers?: Record<string, unknown>;
  /** Why the case ended with events missing, and which ones. */
  readonly gaveUp?: string;
  readonly missingDetail?: string;
  readonly cpu?: CpuUse;
  readonly warmupSeconds?: number;
  /** The warm-up lost events (they are not counted in the measured figures). */
  readonly warmupProblem?: string;
}

const config = JSON.parse(process.argv[2] ?? "{}") as ConsumerClientsConfig;
const now = (): number => performance.timeOrigin + performance.now();
const failEvery = config.failPct > 0 ? Math.max(1, Math.round(100 / config.failPct)) : 0;

interface Rec {
  deliveries: number;
  completions: number;
  failedAt: number;
}

/** One batch of events with its own ids (`prefix` + index) and its own counters. */
class Phase {
  readonly prefix: string;
  readonly n: number;
  readonly recs: Rec[];
  readonly consume = new Latencies();
  readonly retry = new Latencies();
  readonly publish = new Latencies();
  completed = 0;
  lastCompletionAt = 0;
  done: () => void = () => undefined;

  constructor(prefix: string, n: number) {
    this.prefix = prefix;
    this.n = n;
    this.recs = Array.from({ length: n }, () => ({ deliveries: 0, completions: 0, failedAt: 0 }));
  }

  failsFirst(index: number): boolean {
    return failEvery > 0 && index % failEvery === 0;
  }
}

const phases = new Map<string, Phase>();
let fatal: ((err: unknown) => void) | undefined;
let fatalError: unknown;

function lookup(id: string): { phase: Phase; index: number; rec: Rec } {
  const phase = phases.get(id[0]!);
  const index = Number(id.slice(1));
  const rec = phase?.recs[index];
  if (phase === undefined || rec === undefined) throw new Error(`unknown event id ${id}`);
  return { phase, index, rec };
}

const handler: Handler = (p: Payload) => {
  const at = now();
  const { phase, index, rec } = lookup(p.id);
  rec.deliveries++;
  if (rec.deliveries === 1) phase.consume.add(at - p.t);
  else if (rec.deliveries === 2 && rec.failedAt > 0) phase.retry.add(at - rec.failedAt);
  if (rec.failedAt === 0 && phase.failsFirst(index)) {
    rec.failedAt = at;
    return Promise.reject(new Error("planned failure"));
  }
  return Promise.resolve();
};

function onCompleted(id: string): void {
  const { phase, rec } = lookup(id);
  rec.completions++;
  if (rec.completions === 1) {
    phase.completed++;
    phase.lastCompletionAt = now();
    if (phase.completed === phase.n) phase.done();
  }
}

function onError(err: unknown): void {
  fatalError ??= err;
  fatal?.(err);
}

interface PhaseRun {
  readonly startedAt: number;
  readonly publishedAt: number;
  /** Why the phase ended before every event completed: "time limit" or "stalled"; undefined if all did. */
  readonly gaveUp: string | undefined;
}

async function runPhase(peer: Peer, phase: Phase): Promise<PhaseRun> {
  phases.set(phase.prefix, phase);
  const finished = new Promise<string | undefined>((resolve, reject) => {
    phase.done = () => resolve(undefined);
    fatal = reject;
    if (fatalError !== undefined) reject(fatalError as Error);
  });
  let next = 0;
  let publishedAt = 0;
  const startedAt = now();
  let watch: NodeJS.Timeout | undefined;
  const timer = new Promise<string>((resolve) => {
    watch = setInterval(() => {
      const t = now();
      if (t - startedAt > config.limitS * 1000) resolve(`time limit (${config.limitS} s)`);
      else if (t - Math.max(startedAt, publishedAt, phase.lastCompletionAt) > config.stallS * 1000) resolve(`stalled (nothing published or completed for ${config.stallS} s)`);
    }, 100);
  });
  const producer = async (k: number): Promise<void> => {
    while (next < phase.n) {
      const i = next++;
      const t = now();
      await peer.publish({ id: `${phase.prefix}${i}`, t, ...EVENT_DATA }, k);
      const acked = now();
      phase.publish.add(acked - t);
      publishedAt = Math.max(publishedAt, acked);
    }
  };
  const producing = Promise.all(Array.from({ length: config.producers }, (_, k) => producer(k)));
  const gaveUp = await Promise.race([Promise.all([finished, producing]).then(([t]) => t), timer]);
  clearInterval(watch);
  return { startedAt, publishedAt, gaveUp };
}

const STOP_LIMIT_MS = 10_000;

/** Awaits `p` for at most `ms`: its value, or what went wrong as `{error}`. */
async function bounded<T>(p: Promise<T>, ms: number): Promise<T | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ error: string }>((r) => (timer = setTimeout(() => r({ error: `no answer in ${ms} ms` }), ms)));
  try {
    return await Promise.race([p.catch((err: unknown) => ({ error: String(err) })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The first few events that never completed, with how often each was delivered. */
function describeMissing(phase: Phase): string {
  const missing = phase.recs.flatMap((r, i) => (r.completions === 0 ? [`${phase.prefix}${i} (${r.deliveries} deliveries${r.failedAt > 0 ? ", failed once" : ""})`] : []));
  return missing.length === 0 ? "none missing" : `missing ${missing.length}: ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", ..." : ""}`;
}

async function main(): Promise<ConsumerCaseResult> {
  const peer = makePeer(config.peer, {
    workers: config.workers,
    concurrency: config.concurrency,
    redis: config.redis,
    nats: config.nats,
    runId: config.runId,
    producers: config.producers,
    ...(config.baton === undefined ? {} : { baton: config.baton }),
  });
  try {
    try {
      await peer.start(handler, onCompleted, onError);
    } catch (err) {
      if (err instanceof Skip) return { peer: config.peer, failPct: config.failPct, skipped: err.message };
      throw err;
    }
    const warm = new Phase("w", config.warmup);
    const w = config.warmup > 0 ? await runPhase(peer, warm) : undefined;
    // A warm-up that loses events is reported, and the measured phase still runs: its figure,
    // flagged, says more about the peer than no figure.
    let warmupProblem: string | undefined;
    if (w?.gaveUp !== undefined) {
      const leftovers = await peer.leftovers().catch((err: unknown) => ({ error: String(err) }));
      warmupProblem = `warm-up: ${warm.completed} of ${warm.n} completed, ${w.gaveUp}; ${describeMissing(warm)}; peer: ${JSON.stringify(leftovers).slice(0, 1000)}`;
      console.error(`  ${config.peer}: ${warmupProblem}`);
    }
    const warmupSeconds = w === undefined ? 0 : (warm.lastCompletionAt - w.startedAt) / 1000;
    console.error(`  ${config.peer}: warm-up ${config.warmup} events in ${warmupSeconds.toFixed(2)} s`);

    const phase = new Phase("m", config.events);
    const cpu = cpuWindow(config.serverPid);
    const m = await runPhase(peer, phase);
    const used = cpu();
    // Late deliveries (a redelivery of something already acked) show up as duplicates.
    await new Promise((r) => setTimeout(r, config.graceMs));
    // Bounded: a consumer whose acks hang must not hold the case until the parent kills it.
    const stopped = await bounded(peer.stop(), STOP_LIMIT_MS);
    const leftovers = { ...(await bounded(peer.leftovers(), STOP_LIMIT_MS)), ...(stopped === undefined ? {} : { stop: stopped }) };

    // With events missing, the rate is over what did complete, up to its last completion.
    const end = phase.lastCompletionAt;
    const seconds = (end - m.startedAt) / 1000;
    let deliveries = 0;
    let duplicates = 0;
    let planned = 0;
    phase.recs.forEach((r, i) => {
      deliveries += r.deliveries;
      if (r.completions > 1) duplicates++;
      if (phase.failsFirst(i)) planned++;
    });
    return {
      peer: config.peer,
      failPct: config.failPct,
      durability: peer.durability,
      events: phase.n,
      seconds,
      eventsPerS: phase.completed / seconds,
      publishSeconds: (m.publishedAt - m.startedAt) / 1000,
      publishPerS: phase.publish.summary().count / ((m.publishedAt - m.startedAt) / 1000),
      publish: phase.publish.summary(),
      consume: phase.consume.summary(),
      retry: phase.retry.summary(),
      completed: phase.completed,
      missing: phase.n - phase.completed,
      duplicates,
      plannedFailures: planned,
      deliveries,
      extraDeliveries: deliveries - phase.n - planned,
      leftovers,
      ...(m.gaveUp === undefined ? {} : { gaveUp: m.gaveUp, missingDetail: describeMissing(phase) }),
      cpu: used,
      warmupSeconds,
      ...(warmupProblem === undefined ? {} : { warmupProblem }),
    };
  } finally {
    const closed = await bounded(peer.close(), STOP_LIMIT_MS);
    if (closed !== undefined) console.error(`${config.peer}: close: ${JSON.stringify(closed)}`);
  }
}

main().then(
  (result) => {
    // Exit only once the line is out: process.exit() drops what a pipe has not taken yet.
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
