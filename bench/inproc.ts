/**
 * The engine alone: `engine.log.append` called from N concurrent async callers in this
 * process, no HTTP. The gap between this and the HTTP figures is what the edge costs.
 * Prints one LoadResult as JSON on its last stdout line.
 *
 * Usage: node bench/inproc.ts '<InprocConfig JSON>'
 */
import { EmbeddedEngine } from "../src/engine/embedded/embedded-engine.ts";
import type { NewEvent } from "../src/streams/event.ts";
import { cpuWindow, EVENT_DATA, Latencies, loadResult, type LoadResult } from "./lib.ts";

export interface InprocConfig {
  readonly dataDir: string;
  readonly callers: number;
  readonly eventsPerCall: number;
  readonly topics: number;
  readonly warmupS: number;
  readonly durationS: number;
}

const config = JSON.parse(process.argv[2] ?? "") as InprocConfig;
// Server defaults (24 h dedup window, 7 d retention) so the engine does what `baton start` does.
const engine = EmbeddedEngine.open({
  dataDir: config.dataDir,
  dedupWindowMs: 86_400_000,
  defaultRetention: { maxAgeMs: 7 * 86_400_000, maxEvents: 0, maxBytes: 0 },
});
// Each call gets fresh event objects, as a decoded request body would be.
const makeEvents = (): NewEvent[] => Array.from({ length: config.eventsPerCall }, () => ({ data: { ...EVENT_DATA } }));

async function phase(seconds: number): Promise<LoadResult> {
  const lat = new Latencies();
  let failures = 0;
  const cpu = cpuWindow();
  const start = performance.now();
  const end = start + seconds * 1000;
  const caller = async (): Promise<void> => {
    while (performance.now() < end) {
      const topic = config.topics === 1 ? "hot" : `t-${Math.floor(Math.random() * config.topics)}`;
      const events = makeEvents();
      const t = performance.now();
      try {
        await engine.log.append({ tenant: "bench", topic }, events, { autoCreate: true });
        lat.add(performance.now() - t);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: config.callers }, caller));
  return loadResult(lat, config.eventsPerCall, (performance.now() - start) / 1000, failures, cpu());
}

try {
  if (config.warmupS > 0) await phase(config.warmupS);
  const result = await phase(config.durationS);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await engine.close();
}
