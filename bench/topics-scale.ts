/**
 * Many topics: does a tenant with 100,000 topics publish as fast as one with 1,000, and what
 * does a topic cost in memory? In-process on the embedded engine (no HTTP), so the figures are
 * the engine's own. Prints one JSON line (see run.ts).
 *
 * Memory is heap used after a full GC, so it counts Baton's objects, not allocator slack:
 * - `heapPerActiveTopicB`: with every topic's position held (all used in the last minute);
 * - `heapPerIdleTopicB`: after idle positions are dropped, as the sweeper does after 60 s.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { EmbeddedEngine } from "../src/engine/embedded/embedded-engine.ts";
import { EVENT_DATA } from "./lib.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

interface Config {
  readonly topics: number;
  readonly callers: number;
  readonly seconds: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as Config;
const dataDir = mkdtempSync(join(tmpdir(), "baton-bench-topics-"));
const engine = EmbeddedEngine.open({
  dataDir,
  dedupWindowMs: 86_400_000,
  defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 },
  sweepIntervalMs: 3_600_000,
});
const tenant = { tenant: "bench" };

function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Single-event appends from `callers` concurrent loops over `topics` topics; events/s. */
async function publishRate(topics: number, seconds: number): Promise<number> {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const caller = async (): Promise<void> => {
    while (performance.now() < end) {
      await engine.log.append({ ...tenant, topic: `t-${Math.floor(Math.random() * topics)}` }, [{ data: EVENT_DATA }], { autoCreate: true });
      n++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: config.callers }, caller));
  return n / ((performance.now() - start) / 1000);
}

try {
  const base = heap();
  const createStart = performance.now();
  for (let i = 0; i < config.topics; i += 1000) {
    const chunk = Array.from({ length: Math.min(1000, config.topics - i) }, (_, j) =>
      engine.log.append({ ...tenant, topic: `t-${i + j}` }, [{ data: EVENT_DATA }], { autoCreate: true }),
    );
    await Promise.all(chunk);
  }
  const createS = (performance.now() - createStart) / 1000;
  const active = heap();
  const rateAll = await publishRate(config.topics, config.seconds);
  const rate1k = await publishRate(1000, config.seconds);
  await engine.log.flushPositions();
  engine.log.evictIdle(Date.now() + 1);
  const idle = heap();
  const rateAfterEvict = await publishRate(config.topics, config.seconds);
  const diskBytes = statSync(join(dataDir, "baton.mdb")).size;
  process.stdout.write(
    `${JSON.stringify({
      topics: config.topics,
      createS,
      heapPerActiveTopicB: (active - base) / config.topics,
      heapPerIdleTopicB: (idle - base) / config.topics,
      cachedAfterEvict: engine.log.cachedTopics,
      ratePerS: { allTopics: rateAll, first1000Topics: rate1k, allTopicsColdPositions: rateAfterEvict },
      diskBytesPerTopic: diskBytes / config.topics,
    })}\n`,
  );
} finally {
  await engine.close();
  rmSync(dataDir, { recursive: true, force: true });
}
