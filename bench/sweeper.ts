/**
 * `node bench/sweeper.ts`: what the NATS engine's retention sweeper costs, per topic record and
 * per pass, in this process (the node) and in nats-server, and how many nodes of one prefix
 * sweep. Loopback only, one nats-server at BENCH_NATS (default nats://127.0.0.1:4222), a fresh
 * prefix per dataset, removed afterwards. Stops by itself (gives up after 420 s).
 *
 * 1. Passes: for each dataset (BENCH_SWEEP_TOPICS topic records, default "1000,10000", in one
 *    tenant; shape "age" = the default retention, 7 days, and "count" = 7 days and at most 1000
 *    events), one engine with no timer calls `sweeper.pass()`: the first pass (cold: nothing
 *    known yet) and BENCH_SWEEP_PASSES (5) more; between the steady passes BENCH_SWEEP_APPENDS
 *    (1%) of the topics get one more event. The topics were created 8 days ago (by an engine
 *    whose clock is 8 days behind) and hold one event of now: older than the age limit, so the
 *    first pass must look at every one, but with nothing to reclaim (the long-lived personal
 *    channel of a connected user). Reports CPU µs per record per pass and the topics visited.
 * 2. Cluster: BENCH_SWEEP_NODES (3) engines on one prefix of 1,000 "age" topics with the timer
 *    (BENCH_SWEEP_INTERVAL_MS, 1000) for BENCH_SWEEP_WINDOW_S (8) s: passes per engine, CPU.
 * 3. Async traces (BENCH_SWEEP_TRACES=0 skips it): the node's CPU per request-bound operation
 *    with the NATS client's async stack traces on (`asyncTraces: true`) and off (the default):
 *    sequential single-event appends to one topic and reads of 100 events, 2 s each, 5 rounds
 *    alternating which engine goes first. Prints each round's figure, sorted.
 *
 * CPU is process.cpuUsage() for the node and /proc/<pid>/stat for nats-server (found by name;
 * absent if it runs elsewhere); "other" is the rest of the machine, % of all cores (n/a for a
 * pass under 200 ms: those clocks tick every 10 ms). "heap left by the first pass" is the heap
 * it left behind (after a full GC), per record: the sweeper's catalog and what it knows.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { NatsEngine } from "../src/engine/nats/nats-engine.ts";
import type { Retention } from "../src/streams/event.ts";
import { cpuWindow, EVENT_DATA, guardRun, ROOT, waitQuiet } from "./lib.ts";
import { pidOf } from "./cluster.ts";
import { natsUnreachable, removeNatsPrefix } from "../test/support/nats.ts";

const NATS = process.env["BENCH_NATS"] ?? "nats://127.0.0.1:4222";
const TOPICS = (process.env["BENCH_SWEEP_TOPICS"] ?? "1000,10000").split(",").map(Number);
const SHAPES = (process.env["BENCH_SWEEP_SHAPES"] ?? "age,count").split(",");
const PASSES = Number(process.env["BENCH_SWEEP_PASSES"] ?? 5);
const APPENDS = Number(process.env["BENCH_SWEEP_APPENDS"] ?? 0.01);
const NODES = Number(process.env["BENCH_SWEEP_NODES"] ?? 3);
const INTERVAL_MS = Number(process.env["BENCH_SWEEP_INTERVAL_MS"] ?? 1000);
const WINDOW_S = Number(process.env["BENCH_SWEEP_WINDOW_S"] ?? 8);
const TRACES = process.env["BENCH_SWEEP_TRACES"] !== "0";
const TENANT = "bench";
const DAY = 86_400_000;
const RETENTION: Record<string, Retention> = {
  age: { maxAgeMs: 7 * DAY, maxEvents: 0, maxBytes: 0 },
  count: { maxAgeMs: 7 * DAY, maxEvents: 1000, maxBytes: 0 },
};

guardRun("bench/sweeper.ts", 420_000);
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const unreachable = await natsUnreachable(NATS);
if (unreachable !== undefined) {
  console.log(`sweeper: skipped, ${unreachable}; start nats-server -js to measure it`);
  process.exit(0);
}
const natsPid = pidOf("nats-server");

function open(prefix: string, sweepIntervalMs: number, name?: string, clockOffsetMs = 0): Promise<NatsEngine> {
  return NatsEngine.open({
    servers: NATS,
    prefix,
    dedupWindowMs: DAY,
    defaultRetention: RETENTION["age"]!,
    sweepIntervalMs,
    now: () => Date.now() + clockOffsetMs,
    ...(name === undefined ? {} : { name }),
  });
}

/** Runs `fn` over 0..n-1, `width` at a time. */
async function each(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** `n` topics created 8 days ago (an engine whose clock is that far behind), each with one event of now. */
async function populate(prefix: string, engine: NatsEngine, n: number, retention: Retention): Promise<void> {
  const creator = await open(prefix, 0, "creator", -8 * DAY);
  try {
    await each(n, 64, (i) => creator.log.createTopic({ tenant: TENANT, topic: `user.${i}` }, retention));
  } finally {
    await creator.close();
  }
  await each(n, 64, (i) => engine.log.append({ tenant: TENANT, topic: `user.${i}` }, [{ data: { ...EVENT_DATA } }], { autoCreate: false }));
}

interface PassFigures {
  readonly ms: number;
  readonly visits: number;
  readonly nodeCpuMs: number;
  readonly natsCpuMs: number;
  readonly otherPct: number;
}

async function measurePass(engine: NatsEngine): Promise<PassFigures> {
  const end = cpuWindow(undefined, natsPid === undefined ? [] : [natsPid]);
  const t0 = performance.now();
  const v0 = visitsOf(engine);
  await engine.sweeper.pass();
  const ms = performance.now() - t0;
  const cpu = end();
  return { ms, visits: visitsOf(engine) - v0, nodeCpuMs: cpu.serverCpuMs, natsCpuMs: natsPid === undefined ? NaN : cpu.helperCpuMs, otherPct: cpu.foreignCpuPct };
}

/** Topics visited so far (NaN on a sweeper that does not count them). */
const visitsOf = (engine: NatsEngine): number => (engine.sweeper as { visits?: number }).visits ?? NaN;

const us = (ms: number, n: number): string => ((1000 * ms) / n).toFixed(1).padStart(8);

interface DatasetResult {
  readonly shape: string;
  readonly topics: number;
  readonly first: PassFigures;
  readonly steady: PassFigures[];
  readonly heapPerRecordB: number;
}

const datasets: DatasetResult[] = [];
console.log(`sweeper: one pass over N topic records (1 event each), node and nats-server CPU per record; ${PASSES} steady passes with ${APPENDS * 100}% of topics appended to in between`);
console.log(`  ${"shape".padEnd(6)} ${"topics".padStart(7)} ${"pass".padEnd(7)} ${"wall ms".padStart(9)} ${"visited".padStart(8)} ${"node µs/rec".padStart(12)} ${"nats µs/rec".padStart(12)} ${"other %".padStart(8)}`);
for (const shape of SHAPES) {
  for (const n of TOPICS) {
    const prefix = `bench${randomBytes(4).toString("hex")}`;
    const engine = await open(prefix, 0);
    try {
      await populate(prefix, engine, n, RETENTION[shape]!);
      await waitQuiet(5000);
      const row = (label: string, f: PassFigures): void =>
        console.log(`  ${shape.padEnd(6)} ${String(n).padStart(7)} ${label.padEnd(7)} ${f.ms.toFixed(0).padStart(9)} ${String(Math.round(f.visits)).padStart(8)} ${us(f.nodeCpuMs, n).padStart(12)} ${us(f.natsCpuMs, n).padStart(12)} ${(f.ms < 200 ? "n/a" : f.otherPct.toFixed(0)).padStart(8)}`);
      const heap0 = heap();
      const first = await measurePass(engine);
      const heapPerRecordB = (heap() - heap0) / n;
      row("first", first);
      console.log(`  ${"".padEnd(6)} ${"".padStart(7)} heap left by the first pass: ${heapPerRecordB.toFixed(0)} B per record`);
      const steady: PassFigures[] = [];
      for (let p = 0; p < PASSES; p++) {
        const touched = Math.round(n * APPENDS);
        await each(touched, 16, (i) => engine.log.append({ tenant: TENANT, topic: `user.${(p * touched + i) % n}` }, [{ data: { ...EVENT_DATA } }], { autoCreate: false }));
        const f = await measurePass(engine);
        steady.push(f);
        row(`steady`, f);
      }
      // CPU clocks tick every 10 ms: a short pass reads 0 or 10 ms, so the mean over the passes is the figure.
      const sum = (f: (p: PassFigures) => number): number => steady.reduce((a, p) => a + f(p), 0);
      const wall = sum((p) => p.ms);
      row("mean", { ms: wall / steady.length, visits: sum((p) => p.visits) / steady.length, nodeCpuMs: sum((p) => p.nodeCpuMs) / steady.length, natsCpuMs: sum((p) => p.natsCpuMs) / steady.length, otherPct: wall > 0 ? sum((p) => p.otherPct * p.ms) / wall : 0 });
      datasets.push({ shape, topics: n, first, steady, heapPerRecordB });
    } finally {
      await engine.close();
      await removeNatsPrefix(NATS, prefix);
    }
  }
}

// Cluster: several engines on one prefix, each with its timer.
console.log(`\ncluster: ${NODES} engines on one prefix of 1,000 "age" topics, sweeper timer ${INTERVAL_MS} ms, ${WINDOW_S} s`);
const prefix = `bench${randomBytes(4).toString("hex")}`;
let cluster: { passesPerNode: number[]; nodeCpuMs: number; natsCpuMs: number; otherPct: number } | undefined;
{
  const seed = await open(prefix, 0);
  const engines: NatsEngine[] = [];
  try {
    await populate(prefix, seed, 1000, RETENTION["age"]!);
    await seed.close();
    await waitQuiet(5000);
    for (let i = 0; i < NODES; i++) engines.push(await open(prefix, INTERVAL_MS, `node-${i}`));
    const passes0 = engines.map((e) => e.sweeper.passes);
    const end = cpuWindow(undefined, natsPid === undefined ? [] : [natsPid]);
    await sleep(WINDOW_S * 1000);
    const cpu = end();
    const passes = engines.map((e, i) => e.sweeper.passes - passes0[i]!);
    cluster = { passesPerNode: passes, nodeCpuMs: cpu.serverCpuMs, natsCpuMs: cpu.helperCpuMs, otherPct: cpu.foreignCpuPct };
    console.log(`  passes per engine: ${passes.join(", ")}; all engines ${(cpu.serverCpuMs / (WINDOW_S * 1000)).toFixed(3)} cores, nats-server ${(cpu.helperCpuMs / (WINDOW_S * 1000)).toFixed(3)} cores, other ${cpu.foreignCpuPct.toFixed(0)}%`);
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    await seed.close();
    await removeNatsPrefix(NATS, prefix);
  }
}

// Async traces: the same request-bound work on two engines, one with the client's async traces.
let traces: Record<string, Record<string, number[]>> | undefined;
if (TRACES) {
  console.log(`\nasync traces: node CPU per sequential single-event append and per read of 100 events, 2 s each, 5 rounds`);
  const prefixes = [`bench${randomBytes(4).toString("hex")}`, `bench${randomBytes(4).toString("hex")}`];
  const base = { servers: NATS, dedupWindowMs: DAY, defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 }, sweepIntervalMs: 0 };
  const modes = [
    { name: "asyncTraces: true", engine: await NatsEngine.open({ ...base, prefix: prefixes[0]!, asyncTraces: true }) },
    { name: "asyncTraces: false", engine: await NatsEngine.open({ ...base, prefix: prefixes[1]! }) },
  ];
  traces = {};
  try {
    const read = { tenant: TENANT, topic: "read" };
    for (const { engine } of modes) for (let i = 0; i < 100; i++) await engine.log.append(read, [{ data: { ...EVENT_DATA } }], { autoCreate: true });
    const timed = async (engine: NatsEngine, op: () => Promise<unknown>): Promise<{ us: number; other: number }> => {
      let n = 0;
      const end = cpuWindow();
      const stop = performance.now() + 2000;
      while (performance.now() < stop) {
        await op();
        n += 1;
      }
      const cpu = end();
      return { us: (1000 * cpu.serverCpuMs) / n, other: cpu.foreignCpuPct };
    };
    for (let round = 0; round < 5; round++) {
      for (const { name, engine } of round % 2 === 0 ? modes : [...modes].reverse()) {
        const figures = (traces[name] ??= { appendUs: [], read100Us: [], otherPct: [] });
        const a = await timed(engine, () => engine.log.append({ tenant: TENANT, topic: "one" }, [{ data: { ...EVENT_DATA } }], { autoCreate: true }));
        const r = await timed(engine, () => engine.log.read(read, 1, 100));
        figures["appendUs"]!.push(a.us);
        figures["read100Us"]!.push(r.us);
        figures["otherPct"]!.push(a.other, r.other);
      }
    }
    for (const [name, f] of Object.entries(traces)) {
      const sorted = (v: number[]): string => [...v].sort((x, y) => x - y).map((x) => x.toFixed(0)).join(" ");
      console.log(`  ${name.padEnd(19)} append µs: ${sorted(f["appendUs"]!)} | read 100 µs: ${sorted(f["read100Us"]!)} | other %: max ${Math.max(...f["otherPct"]!).toFixed(0)}`);
    }
  } finally {
    for (const { engine } of modes) await engine.close();
    for (const p of prefixes) await removeNatsPrefix(NATS, p);
  }
}

const out = join(ROOT, "bench/results");
mkdirSync(out, { recursive: true });
const file = join(out, `sweeper-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), nats: NATS, passes: PASSES, appends: APPENDS, datasets, cluster, traces }, null, 2));
console.log(`results: ${file}`);
process.exit(0);
