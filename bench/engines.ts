/**
 * `npm run bench:engines`: the two engines behind the seam, in one process and one run, with no
 * HTTP in front: `log.append` from N concurrent callers and `log.read` of recent events, on the
 * embedded engine (LMDB in a temp dir, fsync per group commit) and on the NATS engine (the
 * server at BENCH_NATS, default nats://127.0.0.1:4222, with a fresh prefix removed afterwards).
 * Prints a table with the ratio NATS / embedded and writes JSON to bench/results/.
 *
 * Environment: BENCH_ENGINE_CASE_S (3) seconds per append case. Without a reachable NATS server
 * the NATS column is skipped with a message.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { EmbeddedEngine } from "../src/engine/embedded/embedded-engine.ts";
import { NatsEngine } from "../src/engine/nats/nats-engine.ts";
import type { Engine } from "../src/engine/engine.ts";
import type { Retention } from "../src/streams/event.ts";
import { EVENT_DATA, guardRun, removeDir, ROOT, tempDir } from "./lib.ts";
import { natsUnreachable, removeNatsPrefix } from "../test/support/nats.ts";

const CASE_S = Number(process.env["BENCH_ENGINE_CASE_S"] ?? 3);
const NATS = process.env["BENCH_NATS"] ?? "nats://127.0.0.1:4222";
const RETENTION: Retention = { maxAgeMs: 7 * 86_400_000, maxEvents: 0, maxBytes: 0 };
const TENANT = "bench";

guardRun("bench/engines.ts", 240_000);

interface Case {
  readonly name: string;
  readonly callers: number;
  readonly topics: number;
  readonly idempotent: boolean;
}

const CASES: readonly Case[] = [
  { name: "1 writer, 1 topic", callers: 1, topics: 1, idempotent: false },
  { name: "64 writers, 1 topic", callers: 64, topics: 1, idempotent: false },
  { name: "64 writers, 64 topics", callers: 64, topics: 64, idempotent: false },
  { name: "64 writers, 1 topic, idempotency keys", callers: 64, topics: 1, idempotent: true },
];

/** Appends per second over CASE_S seconds, and the p50 / p99 of one append, ms. */
async function appendCase(engine: Engine, c: Case, run: string): Promise<{ perS: number; p50: number; p99: number }> {
  const lat: number[] = [];
  let n = 0;
  const end = performance.now() + CASE_S * 1000;
  await Promise.all(
    Array.from({ length: c.callers }, async (_, w) => {
      while (performance.now() < end) {
        const topic = `${run}.t${c.topics === 1 ? 0 : (n + w) % c.topics}`;
        const t0 = performance.now();
        await engine.log.append({ tenant: TENANT, topic }, [{ data: { ...EVENT_DATA }, ...(c.idempotent ? { idempotencyKey: `${run}-${w}-${n}` } : {}) }], { autoCreate: true });
        lat.push(performance.now() - t0);
        n += 1;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { perS: n / CASE_S, p50: lat[Math.floor(lat.length / 2)] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0 };
}

/** Mean time to read the 100 most recent events of a topic of single-event appends, ms. */
async function readCase(engine: Engine, run: string): Promise<number> {
  const ref = { tenant: TENANT, topic: `${run}.read` };
  for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => engine.log.append(ref, [{ data: { ...EVENT_DATA } }], { autoCreate: true })));
  const reps = 20;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const page = await engine.log.read(ref, 101, 100);
    if (page.events.length !== 100) throw new Error(`read ${page.events.length} events, expected 100`);
  }
  return (performance.now() - t0) / reps;
}



type Row = { engine: string; case: string; perS: number; p50: number; p99: number };

async function measure(name: string, engine: Engine): Promise<{ rows: Row[]; readMs: number }> {
  const rows: Row[] = [];
  const run = `r${randomBytes(3).toString("hex")}`;
  for (const c of CASES) {
    const r = await appendCase(engine, c, `${run}${rows.length}`);
    rows.push({ engine: name, case: c.name, ...r });
    console.log(`  ${name.padEnd(8)} ${c.name.padEnd(40)} ${Math.round(r.perS).toLocaleString("en-US").padStart(8)} appends/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms`);
  }
  const readMs = await readCase(engine, run);
  console.log(`  ${name.padEnd(8)} ${"read 100 recent events".padEnd(40)} ${readMs.toFixed(2)} ms`);
  return { rows, readMs };
}

console.log(`engines: in-process appends of one ~200-byte event, ${CASE_S} s per case`);
const dir = tempDir("baton-engines-");
const embedded = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 86_400_000, defaultRetention: RETENTION, sweepIntervalMs: 1000 });
const results: Record<string, { rows: Row[]; readMs: number }> = {};
try {
  results["embedded"] = await measure("embedded", embedded);
} finally {
  await embedded.close();
  removeDir(dir);
}
const unreachable = await natsUnreachable(NATS);
if (unreachable !== undefined) {
  console.log(`  nats     skipped: ${unreachable}; start nats-server -js to measure it`);
} else {
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  const nats = await NatsEngine.open({ servers: NATS, prefix, dedupWindowMs: 86_400_000, defaultRetention: RETENTION });
  try {
    results["nats"] = await measure("nats", nats);
  } finally {
    await nats.close();
    await removeNatsPrefix(NATS, prefix);
  }
  console.log("\nratio nats / embedded (appends/s):");
  for (const [i, c] of CASES.entries()) {
    console.log(`  ${c.name.padEnd(40)} ${(results["nats"]!.rows[i]!.perS / results["embedded"]!.rows[i]!.perS).toFixed(2)}x`);
  }
}
const out = join(ROOT, "bench/results");
mkdirSync(out, { recursive: true });
const file = join(out, `engines-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), caseSeconds: CASE_S, nats: NATS, results }, null, 2));
console.log(`results: ${file}`);
process.exit(0);
