/**
 * Shared pieces of the benchmark: the workload every case uses, latency summaries, and child
 * processes that are always killed (and temp dirs always removed) however the run ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");

/**
 * BENCH_BATON_NODE_ARGS: extra Node flags for Baton's servers only, for A/B runs of V8 settings
 * (e.g. "--max-semi-space-size=64" to measure without the launcher's default, bin/baton.js).
 */
export const BATON_NODE_ARGS: readonly string[] = (process.env["BENCH_BATON_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "");

/** One event's `data`: a chat-like record of about 200 bytes of JSON. */
export const EVENT_DATA = {
  tenantUser: "user_01HZX3K9Q2M4N7P8R5T6V1W0YZ",
  kind: "message.created",
  conversation: "conv_7f3a9c2e",
  text: "The quick brown fox jumps over the lazy dog.",
  tokens: 42,
  model: "small-1",
  final: true,
};

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Collects per-call latencies without per-sample allocation (a case records up to ~500k). */
export class Latencies {
  private buf = new Float64Array(1 << 16);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.buf.slice(0, this.n).sort();
    const at = (q: number): number => (this.n === 0 ? NaN : sorted[Math.min(this.n - 1, Math.floor(q * this.n))]!);
    return { count: this.n, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
  }
}

/** Where the CPU went during one measured window: a figure is only as good as its share. */
export interface CpuUse {
  /** The server process, all threads, ms. For in-process runs: that process. */
  readonly serverCpuMs: number;
  /** The load generator, ms (0 for in-process runs, where it is the server). */
  readonly loadCpuMs: number;
  /**
   * Processes the server needs but that are not the server (nats-server under the NATS engine),
   * all threads, ms; 0 when none were named. Not counted in foreignCpuPct.
   */
  readonly helperCpuMs: number;
  /**
   * Everything else on the machine, % of all cores. Above a few % the case competed for cores
   * with work that is not ours and its figures understate Baton.
   */
  readonly foreignCpuPct: number;
}

/**
 * Starts a window; the returned function ends it. Without a server pid, this process is the
 * server. Several pids (the nodes of a cluster) are summed; `helperPids` are measured apart.
 */
export function cpuWindow(serverPid?: number | readonly number[], helperPids: readonly number[] = []): () => CpuUse {
  const servers = serverPid === undefined ? undefined : typeof serverPid === "number" ? [serverPid] : serverPid;
  const sum = (pids: readonly number[]): number => pids.reduce((a, pid) => a + processCpuMs(pid), 0);
  const [machine0, own0, server0, helper0, t0] = [machineBusyMs(), ownCpuMs(), servers === undefined ? 0 : sum(servers), sum(helperPids), performance.now()];
  return () => {
    const own = ownCpuMs() - own0;
    const server = servers === undefined ? own : sum(servers) - server0;
    const helper = sum(helperPids) - helper0;
    const foreign = machineBusyMs() - machine0 - own - (servers === undefined ? 0 : server) - helper;
    const capacity = (performance.now() - t0) * availableParallelism();
    return { serverCpuMs: server, loadCpuMs: servers === undefined ? 0 : own, helperCpuMs: helper, foreignCpuPct: Math.max(0, (100 * foreign) / capacity) };
  };
}

/** What a load child reports on its last stdout line. */
export interface LoadResult extends LatencySummary, CpuUse {
  /** Acknowledged (2xx) requests or calls in the measured window. */
  readonly acked: number;
  readonly events: number;
  readonly seconds: number;
  readonly requestsPerS: number;
  readonly eventsPerS: number;
  /** Non-2xx answers, socket errors and timeouts: any of these makes the figure suspect. */
  readonly failures: number;
}

export function loadResult(lat: Latencies, eventsPerRequest: number, seconds: number, failures: number, cpu: CpuUse): LoadResult {
  const s = lat.summary();
  return {
    ...s,
    acked: s.count,
    events: s.count * eventsPerRequest,
    seconds,
    requestsPerS: s.count / seconds,
    eventsPerS: (s.count * eventsPerRequest) / seconds,
    failures,
    ...cpu,
  };
}

/** A free loopback port (the tests' helper). */
export { freePort } from "../test/support/start-baton.ts";

// Everything started or created by this process, torn down on any exit path.
const children = new Set<ChildProcess>();
const dirs = new Set<string>();

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Synchronous so it also works from an `exit` handler. */
export function killEverything(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  children.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

export interface Child {
  readonly proc: ChildProcess;
  /** stdout and stderr interleaved, for failure messages. */
  output(): string;
  stdout(): string;
  readonly exited: Promise<number | null>;
  /** Sends `signal` and waits for exit, escalating to SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export function startChild(args: readonly string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  children.add(proc);
  let out = "";
  let stdout = "";
  proc.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    stdout += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((done) =>
    proc.once("exit", (code) => {
      children.delete(proc);
      done(code);
    }),
  );
  return {
    proc,
    output: () => out,
    stdout: () => stdout,
    exited,
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Runs a bench child that prints its result as JSON on its last stdout line. `limitMs` is a hard
 * bound: a hung child is killed rather than hanging the run.
 */
export async function runJsonChild<T>(script: string, config: unknown, limitMs: number): Promise<T> {
  const child = startChild([join(ROOT, script), JSON.stringify(config)]);
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), limitMs);
  const code = await child.exited;
  clearTimeout(timer);
  const lines = child.stdout().trim().split("\n");
  if (code !== 0) throw new Error(`${script} exited with ${code ?? child.proc.signalCode}:\n${child.output()}`);
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export async function waitReady(url: string, child: Child, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`server exited with ${child.proc.exitCode} during start:\n${child.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server at ${url} not ready in ${limitMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Busy CPU time of the whole machine so far, ms (Linux /proc/stat; NaN elsewhere). */
export function machineBusyMs(): number {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal...: all but idle and iowait; 100 ticks/s.
    return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) * 10;
  } catch {
    return NaN;
  }
}

/** CPU time a live process has used, ms (Linux /proc; NaN elsewhere). */
export function processCpuMs(pid: number | undefined): number {
  try {
    // Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

/** This process's own CPU time so far, ms. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Waits (bounded) until the machine is nearly idle. On a 2-core box anything else running
 * distorts every figure, and each case records how much did (CpuUse.foreignCpuPct).
 */
export async function waitQuiet(limitMs: number, busyPct = 15): Promise<number> {
  const start = performance.now();
  for (;;) {
    const a = machineBusyMs();
    await new Promise((r) => setTimeout(r, 500));
    const pct = (100 * (machineBusyMs() - a)) / (500 * availableParallelism());
    if (!(pct > busyPct) || performance.now() - start > limitMs) return performance.now() - start;
  }
}

/**
 * However a benchmark run ends, no server or generator outlives it and no temp dir is left
 * behind; a run that passes `limitMs` gives up.
 */
export function guardRun(name: string, limitMs: number): void {
  process.on("exit", killEverything);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killEverything();
      process.exit(130);
    });
  }
  setTimeout(() => {
    console.error(`${name}: over ${limitMs / 1000} s, giving up`);
    process.exit(1);
  }, limitMs).unref();
}

/** A figure for a table cell: grouped thousands, `digits` decimals, "-" when there is none. */
export function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return "-";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Prints rows (the first is the header) in aligned columns: text columns left, figures right. */
export function printTable(rows: readonly (readonly string[])[], leftAligned: (column: number, last: number) => boolean = (i) => i === 0): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const last = rows[0]!.length - 1;
  for (const row of rows) console.log(row.map((c, i) => (leftAligned(i, last) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
}
