/**
 * `npm run bench:consumers`: consumer groups (durable publish + consume + ack) against real
 * peers on this machine, in one run, with the same scenario for each:
 *
 * - `baton`: `baton start` in its own process, its consumer groups over HTTP (pull / ack / nack);
 * - `baton-ws`: the same server, consumed through the WebSocket worker SDK
 *   (packages/sdk/src/worker.ts);
 * - `baton-nats`, `baton-nats3`: `baton` on the NATS engine (the NATS service), one node and
 *   three nodes (bench/cluster.ts), HTTP connections spread over the nodes; server CPU is the
 *   Baton nodes' plus nats-server's;
 * - `bullmq`: BullMQ Queue.add / Worker on the Redis service at 127.0.0.1:6379;
 * - `redis-streams`: XADD / XREADGROUP / XACK (+ XAUTOCLAIM for retries) on the same Redis;
 * - `nats`, `nats-ackack`: a JetStream pull consumer with explicit ack, on the NATS service at
 *   127.0.0.1:4222, a fresh file-storage stream per case; `nats-ackack` waits for each ack's
 *   confirmation.
 *
 * Every case runs its producers and consumers in a child process (bench/consumer-clients.ts),
 * apart from the server; each Baton case gets a fresh server and data dir. Two variants: clean,
 * and one where BENCH_CONSUMER_FAIL_PCT % of the events fail on their first delivery and must be
 * retried (backoff ~100 ms where the peer lets one choose it). Each case checks that every event
 * completed exactly once. Prints a table, the ratios of Baton to each peer and the aims, and
 * writes JSON to bench/results/. docs/benchmarks.md ("Consumer groups") explains it.
 *
 * Environment (defaults):
 * - BENCH_CONSUMER_EVENTS (20000) measured events per case, BENCH_CONSUMER_WARMUP (2000);
 * - BENCH_CONSUMER_PRODUCERS (16) publishes in flight, BENCH_CONSUMER_WORKERS (4) consumers,
 *   BENCH_CONSUMER_CONCURRENCY (64) handlers in flight over all workers;
 * - BENCH_CONSUMER_FAIL_PCT (10) events failing once in the retry variant (0: no such variant);
 * - BENCH_CONSUMER_CASE_S (30) time limit of each phase, BENCH_CONSUMER_STALL_S (3): a phase with
 *   no publish and no completion for this long gives up;
 * - BENCH_CONSUMER_WS_COMMAND_RATE (1000000) Baton's per-socket command limit for the run (0: the
 *   server's default, 200/s; see WS_COMMAND_RATE);
 * - BENCH_CONSUMER_PEERS (baton,baton-ws,bullmq,redis-streams,nats,nats-ackack; also known:
 *   bullmq-aof,redis-streams-aof), BENCH_REDIS (127.0.0.1:6379), BENCH_NATS (127.0.0.1:4222).
 */
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { mintToken } from "../src/edge/auth/tokens.ts";
import type { ConsumerCaseResult, ConsumerClientsConfig } from "./consumer-clients.ts";
import { AOF_PEERS, BATON_NATS_NODES, PEERS, type PeerName } from "./consumer-peers.ts";
import { clusterUnavailable, startCluster } from "./cluster.ts";
import { BATON_NODE_ARGS, fmt, freePort, guardRun, removeDir, ROOT, runJsonChild, startChild, tempDir, printTable, waitQuiet, waitReady } from "./lib.ts";

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`${name} must be a number >= 0, got ${process.env[name]}`);
  return v;
};
const EVENTS = num("BENCH_CONSUMER_EVENTS", 20_000);
const WARMUP = num("BENCH_CONSUMER_WARMUP", 2_000);
const PRODUCERS = num("BENCH_CONSUMER_PRODUCERS", 16);
const WORKERS = num("BENCH_CONSUMER_WORKERS", 4);
const CONCURRENCY = num("BENCH_CONSUMER_CONCURRENCY", 64);
const FAIL_PCT = num("BENCH_CONSUMER_FAIL_PCT", 10);
const CASE_S = num("BENCH_CONSUMER_CASE_S", 30);
const STALL_S = num("BENCH_CONSUMER_STALL_S", 3);
/**
 * Baton closes a socket that sends more than BATON_WS_MAX_COMMANDS_PER_SECOND commands (default
 * 200/s, a guard against abusive browser clients). Workers' acks are exempt (paid for by their
 * deliveries), but `baton-socket`'s producers publish ~2,000/s per socket, so the Baton servers
 * of this benchmark run with this limit; 0 keeps the server's default.
 */
const WS_COMMAND_RATE = num("BENCH_CONSUMER_WS_COMMAND_RATE", 1_000_000);
const BATON_ENV: Record<string, string> = WS_COMMAND_RATE > 0 ? { BATON_WS_MAX_COMMANDS_PER_SECOND: String(WS_COMMAND_RATE) } : {};
const SELECTED = (process.env["BENCH_CONSUMER_PEERS"] ?? PEERS.join(",")).split(",").map((s) => s.trim()) as PeerName[];
const [REDIS_HOST, REDIS_PORT] = (process.env["BENCH_REDIS"] ?? "127.0.0.1:6379").split(":") as [string, string];
const NATS = process.env["BENCH_NATS"] ?? "127.0.0.1:4222";
for (const [name, v] of Object.entries({ EVENTS, PRODUCERS, WORKERS, CONCURRENCY, CASE_S, STALL_S })) {
  if (v < 1) throw new Error(`BENCH_CONSUMER_${name} must be at least 1`);
}
if (FAIL_PCT > 50) throw new Error("BENCH_CONSUMER_FAIL_PCT above 50 is not a retry case");
for (const p of SELECTED) if (![...PEERS, ...AOF_PEERS].includes(p)) throw new Error(`unknown peer ${p} (known: ${[...PEERS, ...AOF_PEERS].join(", ")})`);
if (CONCURRENCY < WORKERS) throw new Error("BENCH_CONSUMER_CONCURRENCY must be at least BENCH_CONSUMER_WORKERS");

const SECRET = "bench-secret-not-for-production-0123456789";
/** Cases are scheduled to end within this (see CASE_BUDGET_MS); the run gives up at RUN_LIMIT_MS. */
const SCHEDULE_MS = 210_000;
const RUN_LIMIT_MS = 240_000;
const QUIET_WAIT_MS = 5_000;
/** A case during which other work took more than this share of the machine runs once more. */
const NOISY_PCT = 15;
/** ...unless the run has less than this left. */
const RERUN_RESERVE_MS = 60_000;
const GRACE_MS = 300;
/** A case is started only with this much of the run's time left. */
const CASE_BUDGET_MS = 30_000;
const AIMS = { vsBullmq: 3, vsNats: 1, onParNats: 0.9 };
const BATON_PEERS: readonly PeerName[] = ["baton", "baton-ws", "baton-socket", "baton-nats", "baton-nats3"];

interface Row extends ConsumerCaseResult {
  readonly variant: string;
  readonly error?: string;
  /** The first try had other work on the machine (above NOISY_PCT) and this is the second. */
  readonly rerun?: boolean;
}

/** The pid of a running process by its command name (for a service's CPU time), from /proc. */
function pidOf(comm: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) return Number(entry);
    } catch {
      // gone, or not ours to read
    }
  }
  return undefined;
}

interface RedisTarget {
  readonly host: string;
  readonly port: number;
  /** Its persistence settings: what it does with an acknowledged write. */
  readonly durability: string;
  readonly pid?: number;
  /** Stops it and waits for its exit, for one started here. */
  readonly stop?: () => Promise<void>;
}

/** Asks a Redis for its version, persistence settings and pid. */
async function describeRedis(host: string, port: number): Promise<RedisTarget> {
  const r = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await r.connect();
    const setting = async (name: string): Promise<string> => ((await r.config("GET", name)) as string[])[1] ?? "?";
    const info = await r.info("server");
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    const durability =
      `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? "?"} at ${host}:${port}: appendonly ${await setting("appendonly")}, ` +
      `appendfsync ${await setting("appendfsync")}, save "${await setting("save")}"`;
    return { host, port, durability, ...(Number.isInteger(pid) ? { pid } : {}) };
  } catch (err) {
    return { host, port, durability: `Redis at ${host}:${port} unreachable: ${(err as Error).message}` };
  } finally {
    r.disconnect();
  }
}

/**
 * A private Redis for the `-aof` peers: append-only file fsynced before every answer
 * (appendfsync always, batched per event-loop pass as Redis does), no snapshots, in a temp dir.
 */
async function startAofRedis(): Promise<RedisTarget> {
  const port = await freePort();
  const dir = tempDir("bench-redis-aof-");
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"], {
    stdio: "ignore",
  });
  process.on("exit", () => proc.kill("SIGKILL"));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
    removeDir(dir);
  };
  const failed = new Promise<never>((_, reject) => proc.once("error", reject));
  failed.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  for (;;) {
    await Promise.race([new Promise((r) => setTimeout(r, 100)), failed]);
    const target = await describeRedis("127.0.0.1", port);
    if (target.pid !== undefined) return { ...target, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`private Redis did not start: ${target.durability}`);
    }
  }
}

async function runCase(peer: PeerName, failPct: number, token: string, runId: string, redis: RedisTarget | undefined): Promise<ConsumerCaseResult> {
  const base = {
    peer,
    events: EVENTS,
    warmup: WARMUP,
    producers: PRODUCERS,
    workers: WORKERS,
    concurrency: CONCURRENCY,
    failPct,
    limitS: CASE_S,
    stallS: STALL_S,
    graceMs: GRACE_MS,
    redis: { host: redis?.host ?? REDIS_HOST, port: redis?.port ?? Number(REDIS_PORT) },
    nats: NATS,
    runId,
  };
  // Warm-up and measured phase each within CASE_S, plus setup and teardown.
  const limitMs = 2 * CASE_S * 1000 + 30_000;
  if (!BATON_PEERS.includes(peer)) {
    const serverPid = redis !== undefined ? redis.pid : pidOf("nats-server");
    const config: ConsumerClientsConfig = { ...base, ...(serverPid === undefined ? {} : { serverPid }) };
    return runJsonChild<ConsumerCaseResult>("bench/consumer-clients.ts", config, limitMs);
  }
  const natsNodes = BATON_NATS_NODES[peer];
  if (natsNodes !== undefined) {
    const servers = `nats://${NATS}`;
    const why = await clusterUnavailable(servers);
    if (why !== undefined) return { peer, failPct, skipped: why };
    const cluster = await startCluster({ nodes: natsNodes, nats: servers, secret: SECRET, env: BATON_ENV });
    try {
      const urls = cluster.nodes.map((n) => n.url);
      const pids = [...cluster.nodes.map((n) => n.pid), ...(cluster.natsPid === undefined ? [] : [cluster.natsPid])];
      const config: ConsumerClientsConfig = { ...base, baton: { url: urls[0]!, urls, token }, serverPid: pids };
      return await runJsonChild<ConsumerCaseResult>("bench/consumer-clients.ts", config, limitMs);
    } finally {
      await cluster.stop();
    }
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = tempDir("baton-consumers-");
  const child = startChild([...BATON_NODE_ARGS, join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir], {
    BATON_JWT_SECRET: SECRET,
    BATON_LOG_LEVEL: "warn",
    ...BATON_ENV,
    // BENCH_CONSUMER_PROFILE=<dir>: a CPU profile of each Baton server, written when it stops.
    ...(process.env["BENCH_CONSUMER_PROFILE"] === undefined ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env["BENCH_CONSUMER_PROFILE"]}` }),
  });
  try {
    await waitReady(`${url}/readyz`, child);
    const config: ConsumerClientsConfig = { ...base, baton: { url, token }, serverPid: child.proc.pid! };
    return await runJsonChild<ConsumerCaseResult>("bench/consumer-clients.ts", config, limitMs);
  } finally {
    await child.stop("SIGTERM");
    removeDir(dataDir);
  }
}

/** An error's first line, for a table cell (child errors start with the child's name). */
function firstLine(error: string | undefined): string {
  const lines = (error ?? "no result").split("\n").filter((l) => l.trim() !== "");
  const cause = lines.find((l) => /^\w*Error:/.test(l.trim()));
  return (cause ?? lines[0] ?? "").trim().slice(0, 160);
}

const measured = (r: Row | undefined): r is Row & { eventsPerS: number } => r !== undefined && r.skipped === undefined && r.error === undefined && r.eventsPerS !== undefined;

function report(rows: readonly Row[], variants: readonly string[]): { ratios: string[]; aims: string[] } {
  const cores = (ms: number | undefined, s: number | undefined): number | undefined => (ms === undefined || s === undefined ? undefined : ms / 1000 / s);
  console.log();
  printTable([
    ["peer", "variant", "events/s", "publish/s", "pub p50", "pub p99", "consume p50", "consume p99", "retry p50", "deliveries", "dup", "missing", "srv us/ev", "srv cores", "client cores", "other cpu", "note"],
    ...rows.map((r) => {
      // The table gets the first line of an error; the JSON and the progress lines have all of it.
      if (!measured(r)) return [r.peer, r.variant, ...Array<string>(14).fill(""), r.skipped !== undefined ? `skipped: ${r.skipped}` : `ERROR: ${firstLine(r.error)}`];
      const s = r.seconds;
      return [
        r.peer,
        r.variant,
        fmt(r.eventsPerS),
        fmt(r.publishPerS),
        fmt(r.publish?.p50Ms, 2),
        fmt(r.publish?.p99Ms, 2),
        fmt(r.consume?.p50Ms, 2),
        fmt(r.consume?.p99Ms, 2),
        r.failPct > 0 ? fmt(r.retry?.p50Ms, 0) : "",
        `${fmt(r.deliveries)}${r.extraDeliveries !== 0 ? ` (${(r.extraDeliveries ?? 0) > 0 ? "+" : ""}${fmt(r.extraDeliveries)})` : ""}`,
        fmt(r.duplicates),
        fmt(r.missing),
        fmt(r.cpu === undefined || !r.completed ? undefined : (1000 * r.cpu.serverCpuMs) / r.completed),
        fmt(cores(r.cpu?.serverCpuMs, s), 2),
        fmt(cores(r.cpu?.loadCpuMs, s), 2),
        `${fmt(r.cpu?.foreignCpuPct)}%`,
        [
          r.missing !== 0 ? `MISSING ${fmt(r.missing)} EVENTS (${r.gaveUp?.split(" (")[0] ?? "?"}; events/s over the rest)` : "",
          r.warmupProblem !== undefined ? "the warm-up lost events" : "",
          (r.cpu?.foreignCpuPct ?? 0) > NOISY_PCT ? "noisy: other work on the machine" : "",
          r.rerun === true ? "(second try)" : "",
        ]
          .filter((s) => s !== "")
          .join(", "),
      ];
    }),
  ], (i, last) => i <= 1 || i === last);
  console.log(
    "\nevents/s: measured events over first publish to last ack; publish/s over first publish to last publish ack; pub, consume: ms " +
      "(consume = publish start to handler start, first deliveries); retry p50: ms from the failing handler to the redelivery; " +
      "deliveries: handler calls (+ beyond events + planned failures); srv us/ev: server CPU (all threads) per event; " +
      "cores: server and client process over the case; " +
      "other cpu: the rest of the machine, % of all cores.",
  );

  const ratios: string[] = [];
  const aims: string[] = [];
  const verdict = (ok: boolean): string => (ok ? "met" : "NOT met");
  for (const variant of variants) {
    const get = (p: PeerName): Row | undefined => rows.find((r) => r.peer === p && r.variant === variant);
    for (const b of BATON_PEERS) {
      const baton = get(b);
      if (!measured(baton)) {
        if (SELECTED.includes(b)) ratios.push(`${variant} ${b}: no figure (${baton?.skipped !== undefined ? `skipped: ${baton.skipped}` : firstLine(baton?.error ?? "not run")})`);
        continue;
      }
      const embedded = get("baton");
      if (BATON_NATS_NODES[b] !== undefined && measured(embedded)) {
        ratios.push(`${variant} ${b}/baton (embedded): events/s ${fmt(baton.eventsPerS / embedded.eventsPerS, 2)}x, consume p99 ${fmt(baton.consume!.p99Ms, 2)} vs ${fmt(embedded.consume!.p99Ms, 2)} ms`);
      }
      for (const p of ["bullmq", "redis-streams", "nats", "nats-ackack"] as const) {
        const peer = get(p);
        if (!measured(peer)) continue;
        const incomplete = [baton, peer].filter((r) => (r.missing ?? 0) > 0).map((r) => `${r.peer} missed ${fmt(r.missing)} events`);
        ratios.push(
          `${variant} ${b}/${p}: events/s ${fmt(baton.eventsPerS / peer.eventsPerS, 2)}x, consume p99 ${fmt(baton.consume!.p99Ms, 2)} vs ${fmt(peer.consume!.p99Ms, 2)} ms` +
            (incomplete.length > 0 ? ` [INCOMPLETE: ${incomplete.join(", ")}]` : ""),
        );
      }
      // An aim is not met by a case that lost events, whatever its rate.
      const lost =
        (baton.missing ?? 0) > 0
          ? `NOT met: ${fmt(baton.missing)} events never completed`
          : baton.warmupProblem !== undefined
            ? "NOT met: events of the warm-up never completed"
            : undefined;
      const bull = get("bullmq");
      if (measured(bull)) {
        const r = baton.eventsPerS / bull.eventsPerS;
        aims.push(`${variant} ${b}: ${fmt(r, 2)}x BullMQ's events/s vs aim >= ${AIMS.vsBullmq}x: ${lost ?? verdict(r >= AIMS.vsBullmq)}`);
      }
      const nats = get("nats");
      if (measured(nats)) {
        const r = baton.eventsPerS / nats.eventsPerS;
        const v = r >= AIMS.vsNats ? "met (above)" : r >= AIMS.onParNats ? "met (on par, within 10%)" : "NOT met";
        aims.push(`${variant} ${b}: ${fmt(r, 2)}x NATS JetStream's events/s vs aim on par or above: ${lost ?? v}`);
      }
    }
  }
  if (ratios.length > 0) console.log(`\nratios (Baton / peer):\n  ${ratios.join("\n  ")}`);
  if (aims.length > 0) console.log(`\naims:\n  ${aims.join("\n  ")}`);
  return { ratios, aims };
}

async function main(): Promise<number> {
  const started = performance.now();
  const token = await mintToken(SECRET, { tenant: "bench", sub: "bench", admin: true, publish: [">"], subscribe: [">"] }, 3_600_000);
  const variants = FAIL_PCT > 0 ? ["clean", `fail${FAIL_PCT}%`] : ["clean"];
  const serviceRedis = await describeRedis(REDIS_HOST, Number(REDIS_PORT));
  let aofRedis: RedisTarget | undefined;
  if (SELECTED.some((p) => AOF_PEERS.includes(p))) {
    try {
      aofRedis = await startAofRedis();
    } catch (err) {
      aofRedis = { host: "127.0.0.1", port: 0, durability: `private Redis with AOF unavailable: ${(err as Error).message}` };
    }
  }
  const redisOf = (peer: PeerName): RedisTarget | undefined => (AOF_PEERS.includes(peer) ? aofRedis : peer === "bullmq" || peer === "redis-streams" ? serviceRedis : undefined);
  const redis = [serviceRedis.durability, ...(aofRedis === undefined ? [] : [`-aof peers: ${aofRedis.durability}`])].join("; ");
  console.error(
    `consumers: ${fmt(EVENTS)} events per case (+${fmt(WARMUP)} warm-up), ${PRODUCERS} publishes in flight, ${WORKERS} workers with ` +
      `${CONCURRENCY} handlers in flight in total; peers ${SELECTED.join(", ")}\n  ${redis}`,
  );
  const rows: Row[] = [];
  const skipped = new Map<PeerName, string>();
  const runId = `${process.pid}-${Date.now().toString(36)}`;
  for (const [vi, variant] of variants.entries()) {
    const failPct = vi === 0 ? 0 : FAIL_PCT;
    for (const peer of SELECTED) {
      const already = skipped.get(peer);
      if (already !== undefined) {
        rows.push({ peer, variant, failPct, skipped: already });
        continue;
      }
      // The run must end (and write its results) in time whatever the machine does.
      const elapsed = performance.now() - started;
      if (elapsed > SCHEDULE_MS - CASE_BUDGET_MS) {
        rows.push({ peer, variant, failPct, skipped: "not run: the run's time budget is spent" });
        continue;
      }
      let row: Row | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        await waitQuiet(performance.now() - started < SCHEDULE_MS / 2 ? QUIET_WAIT_MS : 1000);
        try {
          row = { ...(await runCase(peer, failPct, token, `${runId}-${peer}-${vi}-${attempt}`, redisOf(peer))), variant, ...(attempt > 0 ? { rerun: true } : {}) };
        } catch (err) {
          row = { peer, variant, failPct, error: (err as Error).message.split("\n").slice(0, 12).join("\n") };
        }
        const other = row.cpu?.foreignCpuPct ?? 0;
        if (attempt > 0 || !(other > NOISY_PCT) || performance.now() - started > SCHEDULE_MS - RERUN_RESERVE_MS) break;
        console.error(`  ${peer} ${variant}: ${fmt(other)}% of the machine was busy with other work; once more`);
      }
      if (row === undefined) throw new Error("unreachable");
      rows.push(row);
      if (row.skipped !== undefined) skipped.set(peer, row.skipped);
      const line =
        row.skipped !== undefined
          ? `skipped: ${row.skipped}`
          : row.error !== undefined
            ? `ERROR: ${row.error}`
            : `${fmt(row.eventsPerS)} events/s, consume p99 ${fmt(row.consume?.p99Ms, 2)} ms, missing ${row.missing}, duplicates ${row.duplicates} (other cpu ${fmt(row.cpu?.foreignCpuPct)}%)`;
      console.error(`  ${peer} ${variant}: ${line}`);
    }
  }
  await aofRedis?.stop?.();
  const { ratios, aims } = report(rows, variants);

  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown", node: process.version, kernel: release() };
  const settings = { events: EVENTS, warmup: WARMUP, producers: PRODUCERS, workers: WORKERS, concurrency: CONCURRENCY, failPct: FAIL_PCT, caseLimitS: CASE_S, stallS: STALL_S, redis, nats: NATS, batonEnv: BATON_ENV };
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `consumers-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), machine, settings, ratios, aims, results: rows }, null, 2)}\n`);
  console.log(`\nresults: ${file} (${fmt((performance.now() - started) / 1000)} s)`);

  const broken = rows.filter((r) => r.error !== undefined || (r.missing ?? 0) > 0 || r.warmupProblem !== undefined);
  if (broken.length > 0) {
    console.error(`\n${broken.length} case(s) failed or lost events: ${broken.map((r) => `${r.peer} ${r.variant}`).join(", ")}`);
    return 1;
  }
  return 0;
}

guardRun("bench:consumers", RUN_LIMIT_MS);

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
