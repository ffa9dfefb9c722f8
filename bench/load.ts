/**
 * Load generator, run as its own process so it never shares an event loop with the server it
 * measures. Prints one LoadResult as JSON on its last stdout line.
 *
 * Usage: node bench/load.ts '<LoadConfig JSON>'
 *
 * Latencies are recorded from autocannon's per-response event rather than its histogram: the
 * histogram stores whole milliseconds, too coarse for a p50 well under 1 ms.
 */
import autocannon from "autocannon";
import { cpuWindow, Latencies, loadResult, type LoadResult } from "./lib.ts";
import { pacedRun } from "./paced.ts";

export interface LoadConfig {
  readonly url: string;
  readonly token: string;
  readonly body: string;
  readonly eventsPerRequest: number;
  /** 1 = every request to `hot`; more = each request to a topic picked at random. */
  readonly topics: number;
  readonly connections: number;
  readonly warmupS: number;
  readonly durationS: number;
  /**
   * closed: every connection sends its next request when the last is answered (saturation).
   * autocannon-rate: autocannon's overallRate, which spends each connection's quota for a second
   *   as fast as it can at the start of that second (bursts).
   * paced: requests start on an even schedule (open loop, see paced.ts). Latency counts from
   *   the request's start, including any wait for a free connection.
   */
  readonly mode: "closed" | "autocannon-rate" | "paced";
  /** Requests/s for the two rate modes. */
  readonly rate?: number;
  /** The server's process, for its share of the CPU (CpuUse). */
  readonly serverPid?: number;
}

const config = JSON.parse(process.argv[2] ?? "") as LoadConfig;
const headers = { "content-type": "application/json", authorization: `Bearer ${config.token}` };
const topicPath = (): string =>
  config.topics === 1 ? "/v1/topics/hot/events" : `/v1/topics/t-${Math.floor(Math.random() * config.topics)}/events`;

async function autocannonRun(seconds: number): Promise<LoadResult> {
  const instance = autocannon({
    url: config.url,
    connections: config.connections,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    ...(config.mode === "autocannon-rate" ? { overallRate: config.rate } : {}),
    requests: [
      {
        method: "POST",
        path: topicPath(),
        headers,
        body: config.body,
        ...(config.topics === 1 ? {} : { setupRequest: (req) => ({ ...req, path: topicPath() }) }),
      },
    ],
  });
  const recorded = new Latencies();
  const cpu = cpuWindow(config.serverPid);
  instance.on("response", (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) recorded.add(ms);
  });
  const result = await instance;
  return loadResult(recorded, config.eventsPerRequest, result.duration, result.non2xx + result.errors + result.timeouts, cpu());
}

const run = config.mode === "paced" ? (s: number) => pacedRun(config, topicPath, s) : autocannonRun;
if (config.warmupS > 0) await run(config.warmupS);
const result = await run(config.durationS);
process.stdout.write(`${JSON.stringify(result)}\n`);
// Nothing should be left, but a stray keep-alive socket must not keep this process alive.
process.exit(0);
