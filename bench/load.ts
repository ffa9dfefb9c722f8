/**
 * Load generator, run as its own process so it never shares an event loop with the server it
 * measures. Prints one LoadResult as JSON on its last stdout line.
 *
 * Usage: node bench/load.ts '<LoadConfig JSON>'
 *
 * Latencies are recorded from autocannon's per-response event rather than its histogram: the
 * histogram stores whole milliseconds, too coarse for a p50 well under 1 ms.
 */
import { Agent, request } from "node:http";
import autocannon from "autocannon";
import { Latencies, loadResult, type LoadResult } from "./lib.ts";

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
   * paced: requests are issued on an even schedule (open loop); latency counts from the
   *   scheduled time, so falling behind shows up in the figures instead of hiding.
   */
  readonly mode: "closed" | "autocannon-rate" | "paced";
  /** Requests/s for the two rate modes. */
  readonly rate?: number;
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
  instance.on("response", (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) recorded.add(ms);
  });
  const result = await instance;
  return loadResult(recorded, config.eventsPerRequest, result.duration, result.non2xx + result.errors + result.timeouts);
}

async function pacedRun(seconds: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: config.connections });
  const lat = new Latencies();
  const rate = config.rate ?? 1000;
  let failures = 0;
  let sent = 0;
  let inFlight = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const fire = (scheduled: number): void => {
    inFlight++;
    const req = request(
      `${config.url}${topicPath()}`,
      { method: "POST", agent, headers: { ...headers, "content-length": String(Buffer.byteLength(config.body)) } },
      (res) => {
        res.resume();
        res.on("end", () => {
          inFlight--;
          if (res.statusCode !== undefined && res.statusCode < 300) lat.add(performance.now() - scheduled);
          else failures++;
        });
      },
    );
    req.on("error", () => {
      inFlight--;
      failures++;
    });
    req.end(config.body);
  };
  // Timers fire about once a millisecond; each tick sends whatever the schedule says is due,
  // stamped with its own due time.
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const now = Math.min(performance.now(), end);
      const due = Math.floor(((now - start) / 1000) * rate);
      while (sent < due) fire(start + (++sent * 1000) / rate);
      if (now >= end) {
        clearInterval(tick);
        done();
      }
    }, 1);
  });
  // Let the last requests finish (bounded) so they count, then drop the sockets.
  const drainUntil = performance.now() + 5000;
  while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  failures += inFlight;
  agent.destroy();
  return loadResult(lat, config.eventsPerRequest, seconds, failures);
}

const run = config.mode === "paced" ? pacedRun : autocannonRun;
if (config.warmupS > 0) await run(config.warmupS);
const result = await run(config.durationS);
process.stdout.write(`${JSON.stringify(result)}\n`);
// Nothing should be left, but a stray keep-alive socket must not keep this process alive.
process.exit(0);
