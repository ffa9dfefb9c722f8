/**
 * Starts a real Baton process (`bin/baton.js start`) on a free port with its own data dir, for
 * black-box tests. The process is the same one `npm start` runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { mintToken, type TokenClaims } from "../../src/edge/auth/tokens.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const TEST_SECRET = "test-secret-please-change-0123456789";

export interface BatonProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  /** SIGKILL, no cleanup: the crash case. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** Starts a new process on the same data dir and port. */
  restart(): Promise<BatonProcess>;
  /** Stops if running and removes the data dir. */
  destroy(): Promise<void>;
}

export interface StartOptions {
  readonly dataDir?: string;
  readonly port?: number;
  readonly env?: Record<string, string>;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

export async function startBaton(options: StartOptions = {}): Promise<BatonProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "baton-test-"));
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir], {
    env: { ...process.env, BATON_JWT_SECRET: TEST_SECRET, BATON_LOG_LEVEL: "warn", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`baton exited with ${child.exitCode} during start:\n${out}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`baton did not become ready in 20 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const proc: BatonProcess = {
    url,
    port,
    dataDir,
    child,
    output: () => out,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    async restart() {
      await proc.stop();
      return startBaton({ ...options, dataDir, port });
    },
    async destroy() {
      await proc.kill9();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return proc;
}

export function token(claims: Partial<TokenClaims> & { tenant: string }, ttlMs = 3_600_000): Promise<string> {
  return mintToken(TEST_SECRET, { sub: "tester", publish: [">"], subscribe: [">"], ...claims }, ttlMs);
}

/** fetch with a bearer token and JSON body; returns status, headers and parsed body. */
export async function api(
  url: string,
  jwt: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(jwt === undefined ? {} : { authorization: `Bearer ${jwt}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === "" ? undefined : JSON.parse(text) };
}
