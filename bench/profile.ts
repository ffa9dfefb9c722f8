/**
 * Profiles a Baton server under one benchmark load: starts `bin/baton.js` with --cpu-prof on a
 * fresh temp data dir, drives it with bench/load.ts, stops it with SIGINT (so V8 writes the
 * profile) and prints the top self-time areas and functions.
 *
 * Usage: node bench/profile.ts [single|many|batch] [seconds]   (profiles land in /tmp/baton-prof)
 */
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { mintToken } from "../src/edge/auth/tokens.ts";
import { BATON_NODE_ARGS, EVENT_DATA, freePort, killEverything, removeDir, ROOT, runJsonChild, startChild, tempDir, waitReady, type LoadResult } from "./lib.ts";
import type { LoadConfig } from "./load.ts";

const kind = process.argv[2] ?? "single";
const seconds = Number(process.argv[3] ?? 8);
const SECRET = "bench-secret-not-for-production-0123456789";
const PROF_DIR = "/tmp/baton-prof";

process.on("exit", killEverything);
mkdirSync(PROF_DIR, { recursive: true });
const dataDir = tempDir("baton-prof-");
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const server = startChild(
  [...BATON_NODE_ARGS, "--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`, join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir],
  { BATON_JWT_SECRET: SECRET, BATON_LOG_LEVEL: "warn" },
);
try {
  await waitReady(`${url}/readyz`, server);
  const batch = kind === "batch";
  const config: LoadConfig = {
    url,
    token: await mintToken(SECRET, { tenant: "bench", sub: "bench", publish: [">"] }, 3_600_000),
    body: JSON.stringify(batch ? { events: Array.from({ length: 100 }, () => ({ data: EVENT_DATA })) } : { data: EVENT_DATA }),
    eventsPerRequest: batch ? 100 : 1,
    topics: kind === "many" ? 1000 : 1,
    connections: 50,
    warmupS: 0,
    durationS: seconds,
    mode: "closed",
  };
  const started = Date.now();
  const result = await runJsonChild<LoadResult>("bench/load.ts", config, seconds * 1000 + 30_000);
  console.log(`${kind}: ${result.eventsPerS.toFixed(0)} events/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`);
  await server.stop("SIGINT", 20_000);
  const newest = readdirSync(PROF_DIR)
    .filter((f) => f.endsWith(".cpuprofile") && statSync(join(PROF_DIR, f)).mtimeMs >= started)
    .sort()
    .pop();
  if (newest === undefined) throw new Error(`no profile written:\n${server.output()}`);
  const summary = startChild([join(ROOT, "bench/cpuprofile-top.ts"), join(PROF_DIR, newest), "20"]);
  await summary.exited;
  console.log(summary.output());
} finally {
  await server.stop("SIGKILL");
  removeDir(dataDir);
}
