/**
 * `npm run bench`: one run of every case, each server in its own process and each load
 * generator in another, so that no figure includes the generator's own event loop. Prints a
 * table and writes the same figures as JSON to bench/results/. docs/benchmarks.md explains the
 * cases, the columns and the aims.
 *
 * Environment: BENCH_DURATION_S (default 6), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { join } from "node:path";
import { mintToken } from "../src/edge/auth/tokens.ts";
import type { InprocConfig } from "./inproc.ts";
import {
  BATON_NODE_ARGS,
  guardRun,
  EVENT_DATA,
  freePort,
  removeDir,
  ROOT,
  runJsonChild,
  startChild,
  tempDir,
  waitQuiet,
  waitReady,
  type LoadResult,
} from "./lib.ts";
import type { LoadConfig } from "./load.ts";

const DURATION_S = Number(process.env["BENCH_DURATION_S"] ?? 6);
const WARMUP_S = Number(process.env["BENCH_WARMUP_S"] ?? 2);
const CONNECTIONS = Number(process.env["BENCH_CONNECTIONS"] ?? 50);
const TOPICS = 1000;
const BATCH = 100;
const SECRET = "bench-secret-not-for-production-0123456789";
// A child gets its own run time plus this much before it is presumed hung and killed.
const CHILD_SLACK_MS = 30_000;
const RUN_LIMIT_MS = 300_000;
// Before each case, wait at most this long for other work on the machine to stop.
const QUIET_WAIT_MS = 10_000;

for (const [name, value] of Object.entries({ DURATION_S, WARMUP_S, CONNECTIONS })) {
  if (!(value >= 0) || (name !== "WARMUP_S" && value === 0)) throw new Error(`BENCH_${name} must be a positive number, got ${value}`);
}

const AIMS = { batchEventsPerS: 200_000, singleRatio: 0.6, halfLoadP99Ms: 5 };

interface CaseResult extends LoadResult {
  readonly name: string;
  readonly note: string;
  /** requestsPerS over the mean of the two bare-server runs, for the HTTP single-event cases. */
  readonly ratioToBare?: number;
  readonly rate?: number;
}

const single = JSON.stringify({ data: EVENT_DATA });
const batch = JSON.stringify({ events: Array.from({ length: BATCH }, () => ({ data: EVENT_DATA })) });

async function withServer(kind: "bare" | "baton", fn: (url: string, pid: number | undefined) => Promise<LoadResult>): Promise<LoadResult> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = kind === "baton" ? tempDir("baton-bench-") : undefined;
  const child =
    dataDir === undefined
      ? startChild([join(ROOT, "bench/bare-server.ts"), String(port)])
      : startChild([...BATON_NODE_ARGS, join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir], {
          BATON_JWT_SECRET: SECRET,
          BATON_LOG_LEVEL: "warn",
        });
  try {
    await waitReady(kind === "baton" ? `${url}/readyz` : url, child);
    return await fn(url, child.proc.pid);
  } finally {
    await child.stop("SIGTERM");
    if (dataDir !== undefined) removeDir(dataDir);
  }
}

/** A figure is worthless if Baton is refusing the requests: check both shapes once. */
async function checkBaton(url: string, token: string): Promise<void> {
  const post = async (body: string): Promise<unknown> => {
    const res = await fetch(`${url}/v1/topics/smoke/events`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body,
    });
    if (res.status !== 201) throw new Error(`smoke publish answered ${res.status}: ${await res.text()}`);
    return res.json();
  };
  const one = (await post(single)) as { seq?: unknown };
  const many = (await post(batch)) as { events?: unknown[] };
  if (typeof one.seq !== "number" || many.events?.length !== BATCH) throw new Error("smoke publish returned an unexpected body");
}

async function httpCase(kind: "bare" | "baton", token: string, load: Omit<LoadConfig, "url" | "token" | "connections" | "warmupS" | "durationS">): Promise<LoadResult> {
  return withServer(kind, async (url, serverPid) => {
    if (kind === "baton") await checkBaton(url, token);
    const config: LoadConfig = { url, token, connections: CONNECTIONS, warmupS: WARMUP_S, durationS: DURATION_S, serverPid, ...load };
    return runJsonChild<LoadResult>("bench/load.ts", config, (WARMUP_S + DURATION_S) * 1000 + CHILD_SLACK_MS);
  });
}

interface TopicsScale {
  readonly topics: number;
  readonly createS: number;
  readonly heapPerActiveTopicB: number;
  readonly heapPerIdleTopicB: number;
  readonly ratePerS: { readonly allTopics: number; readonly first1000Topics: number; readonly allTopicsColdPositions: number };
  readonly diskBytesPerTopic: number;
}

async function inprocCase(eventsPerCall: number, topics: number): Promise<LoadResult> {
  const dataDir = tempDir("baton-bench-inproc-");
  try {
    const config: InprocConfig = { dataDir, callers: CONNECTIONS, eventsPerCall, topics, warmupS: WARMUP_S, durationS: DURATION_S };
    return await runJsonChild<LoadResult>("bench/inproc.ts", config, (WARMUP_S + DURATION_S) * 1000 + CHILD_SLACK_MS);
  } finally {
    removeDir(dataDir);
  }
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return "-";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function printTable(results: readonly CaseResult[]): void {
  const rows = [
    ["case", "req/s", "events/s", "p50 ms", "p99 ms", "vs bare", "srv cpu us/ev", "srv cores", "gen cores", "other cpu", "fail", "note"],
    ...results.map((r) => [
      r.name,
      fmt(r.requestsPerS),
      fmt(r.eventsPerS),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      r.ratioToBare === undefined ? "" : `${fmt(r.ratioToBare * 100)}%`,
      fmt((1000 * r.serverCpuMs) / r.events, 1),
      fmt(r.serverCpuMs / (1000 * r.seconds), 2),
      fmt(r.loadCpuMs / (1000 * r.seconds), 2),
      `${fmt(r.foreignCpuPct)}%`,
      String(r.failures),
      r.note,
    ]),
  ];
  const last = rows[0]!.length - 1;
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => (i === 0 || i === last ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "));
}

async function main(): Promise<void> {
  const token = await mintToken(SECRET, { tenant: "bench", sub: "bench", publish: [">"] }, 3_600_000);
  const results: CaseResult[] = [];
  const measure = async (name: string, note: string, run: () => Promise<LoadResult>, extra: Partial<CaseResult> = {}): Promise<CaseResult> => {
    const waited = await waitQuiet(QUIET_WAIT_MS);
    const r = await run();
    const entry = { name, note, ...r, ...extra };
    results.push(entry);
    const wait = waited > 1000 ? `, waited ${fmt(waited / 1000)} s for a quiet machine` : "";
    console.error(`  ${name}: ${fmt(r.eventsPerS)} events/s, p99 ${fmt(r.p99Ms, 2)} ms (other cpu ${fmt(r.foreignCpuPct)}%${wait})`);
    return entry;
  };
  const http = (kind: "bare" | "baton", load: Parameters<typeof httpCase>[2]) => () => httpCase(kind, token, load);
  console.error(`bench: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s per case`);

  // The ceiling is measured before and after the single-event cases and the ratio taken against
  // the mean: this VM's speed drifts by tens of % within minutes, and the two runs show how much.
  const bareLoad = { body: single, eventsPerRequest: 1, topics: 1, mode: "closed" } as const;
  const bare1 = await measure("bare-http", "ceiling: node:http, JSON.parse, 202", http("bare", bareLoad));
  const hot = await measure("http-single-hot", "1 topic", http("baton", { body: single, eventsPerRequest: 1, topics: 1, mode: "closed" }));
  const many = await measure("http-single-many", `${TOPICS} topics, random per request`, http("baton", { body: single, eventsPerRequest: 1, topics: TOPICS, mode: "closed" }));
  const bare2 = await measure("bare-http-again", "ceiling again, for drift", http("bare", bareLoad));
  const ceiling = (bare1.requestsPerS + bare2.requestsPerS) / 2;
  for (const r of [hot, many]) results[results.indexOf(r)] = { ...r, ratioToBare: r.requestsPerS / ceiling };
  await measure("http-batch100-hot", `${BATCH} events/request, 1 topic`, http("baton", { body: batch, eventsPerRequest: BATCH, topics: 1, mode: "closed" }));

  // Half of the saturating rate of http-single-hot, driven two ways (see LoadConfig.mode), and
  // the bare server at the same rate: the latency floor of this machine and generator.
  const half = Math.max(1, Math.floor(hot.requestsPerS / 2));
  const halfLoad = (mode: LoadConfig["mode"]) => ({ body: single, eventsPerRequest: 1, topics: 1, mode, rate: half });
  const withRate = { rate: half };
  await measure("http-half-load-ac", `${fmt(half)} req/s, autocannon overallRate (1 s bursts)`, http("baton", halfLoad("autocannon-rate")), withRate);
  await measure("http-half-load-paced", `${fmt(half)} req/s, evenly spaced (open loop)`, http("baton", halfLoad("paced")), withRate);
  await measure("bare-half-load-paced", `control: bare server, ${fmt(half)} req/s evenly spaced`, http("bare", halfLoad("paced")), withRate);

  for (const [events, topics] of [[1, 1], [1, TOPICS], [BATCH, 1], [BATCH, TOPICS]] as const) {
    const name = `inproc-${events === 1 ? "single" : `batch${events}`}-${topics === 1 ? "hot" : "many"}`;
    await measure(name, `${CONNECTIONS} concurrent append callers`, () => inprocCase(events, topics));
  }

  console.log("  topics-scale: 100,000 topics in one tenant (in-process)...");
  const topicsScale = await runJsonChild<TopicsScale>("bench/topics-scale.ts", { topics: 100_000, callers: CONNECTIONS, seconds: 4 }, 120_000);

  console.log();
  printTable(results);
  console.log(
    `\ntopics-scale: ${fmt(topicsScale.topics)} topics created in ${fmt(topicsScale.createS, 1)} s; single appends over all of them ` +
      `${fmt(topicsScale.ratePerS.allTopics)}/s (positions cold: ${fmt(topicsScale.ratePerS.allTopicsColdPositions)}/s) vs ` +
      `${fmt(topicsScale.ratePerS.first1000Topics)}/s over 1,000 of them; heap per topic ${fmt(topicsScale.heapPerActiveTopicB)} B ` +
      `while in use, ${fmt(topicsScale.heapPerIdleTopicB)} B idle; disk ${fmt(topicsScale.diskBytesPerTopic)} B per topic with ~1 event`,
  );
  const byName = new Map(results.map((r) => [r.name, r]));
  const verdict = (ok: boolean): string => (ok ? "met" : "NOT met");
  const batchR = byName.get("http-batch100-hot")!;
  const aims = [
    `batches of ${BATCH}: ${fmt(batchR.eventsPerS)} events/s vs aim ${fmt(AIMS.batchEventsPerS)}: ${verdict(batchR.eventsPerS >= AIMS.batchEventsPerS)}`,
    ...["http-single-hot", "http-single-many"].map((n) => {
      const r = byName.get(n)!.ratioToBare!;
      return `${n}: ${fmt(r * 100)}% of bare (mean of 2 runs) vs aim ${AIMS.singleRatio * 100}%: ${verdict(r >= AIMS.singleRatio)}`;
    }),
    ...["http-half-load-ac", "http-half-load-paced"].map((n) => {
      const p99 = byName.get(n)!.p99Ms;
      return `${n}: p99 ${fmt(p99, 2)} ms vs aim < ${AIMS.halfLoadP99Ms} ms: ${verdict(p99 < AIMS.halfLoadP99Ms)}`;
    }),
    `(control) bare-half-load-paced: p99 ${fmt(byName.get("bare-half-load-paced")!.p99Ms, 2)} ms on the same machine and generator`,
  ];
  console.log(`\naims:\n  ${aims.join("\n  ")}`);

  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown", node: process.version, kernel: release() };
  const settings = { connections: CONNECTIONS, warmupS: WARMUP_S, durationS: DURATION_S, topics: TOPICS, batch: BATCH, singleBodyBytes: single.length, batchBodyBytes: batch.length };
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), machine, settings, aims, results, topicsScale }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

guardRun("bench", RUN_LIMIT_MS);

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
