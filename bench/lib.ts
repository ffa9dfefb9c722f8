/**
 * Shared pieces of the benchmark: the workload every case uses, latency summaries, and child
 * processes that are always killed (and temp dirs always removed) however the run ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");

/** One event's `data`: a chat-like record of about 200 bytes of JSON. */
export const EVENT_DATA = {
  tenantUser: "user_01HZX3K9Q2M4N7P8R5T6V1W0YZ",
  kind: "message.created",
  conversation: "conv_7f3a9c2e",
  text: "The quick brown fox jumps over the lazy dog; a message of ordinary size.",
  tokens: 42,
  model: "small-2025-01",
  final: true,
};

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Collects per-call latencies without per-sample allocation (runs reach a few million). */
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

/** What a load child reports on its last stdout line. */
export interface LoadResult extends LatencySummary {
  /** Acknowledged (2xx) requests or calls in the measured window. */
  readonly acked: number;
  readonly events: number;
  readonly seconds: number;
  readonly requestsPerS: number;
  readonly eventsPerS: number;
  /** Non-2xx answers, socket errors and timeouts: any of these makes the figure suspect. */
  readonly failures: number;
}

export function loadResult(lat: Latencies, eventsPerRequest: number, seconds: number, failures: number): LoadResult {
  const s = lat.summary();
  return {
    ...s,
    acked: s.count,
    events: s.count * eventsPerRequest,
    seconds,
    requestsPerS: s.count / seconds,
    eventsPerS: (s.count * eventsPerRequest) / seconds,
    failures,
  };
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

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

/**
 * How busy the machine is with nothing of ours running, in % of all cores (Linux /proc/stat;
 * NaN elsewhere). On a 2-core box any other work skews every figure, so each case records it.
 */
export async function backgroundBusyPct(ms = 500): Promise<number> {
  const sample = (): { idle: number; total: number } | undefined => {
    try {
      const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
      return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
    } catch {
      return undefined;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  if (a === undefined || b === undefined || b.total === a.total) return NaN;
  return (100 * (1 - (b.idle - a.idle) / (b.total - a.total)));
}
