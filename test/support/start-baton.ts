/**
 * Starts a real Baton process (`bin/baton.js start`) on a free port with its own data dir, for
 * black-box tests. The process is the same one `npm start` runs.
 *
 * Engine-parametrized: with BATON_TEST_ENGINE=nats (what `npm run test:nats` sets), every process
 * whose options do not name BATON_ENGINE runs on the NATS engine at BATON_TEST_NATS (default
 * nats://127.0.0.1:4222) under a fresh random BATON_NATS_PREFIX of its own, which `restart()`
 * keeps and `destroy()` deletes. Otherwise it runs on the embedded engine.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { mintToken, type TokenClaims } from "../../src/edge/auth/tokens.ts";
import { removeNatsPrefix } from "./nats.ts";

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
  /** Starts a new process on the same data dir and port (and NATS prefix). */
  restart(): Promise<BatonProcess>;
  /** Stops if running and removes the data dir (and the NATS prefix startBaton() made for it). */
  destroy(): Promise<void>;
}

export interface StartOptions {
  readonly dataDir?: string;
  readonly port?: number;
  readonly env?: Record<string, string>;
}

/** The engine startBaton() uses when the options do not pick one: BATON_TEST_ENGINE=nats, else embedded. */
export function testEngine(): "embedded" | "nats" {
  return process.env["BATON_TEST_ENGINE"] === "nats" ? "nats" : "embedded";
}

/** The NATS servers of the NATS test pass. */
export function testNatsServers(): string {
  return process.env["BATON_TEST_NATS"] ?? "nats://127.0.0.1:4222";
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
  if (testEngine() !== "nats" || options.env?.["BATON_ENGINE"] !== undefined) return launch(options, undefined);
  // A prefix of its own, so processes of parallel tests never see each other's topics.
  const prefix = `bt${randomBytes(6).toString("hex")}`;
  const servers = testNatsServers();
  const nats = { servers, prefix };
  try {
    return await launch({ ...options, env: { BATON_ENGINE: servers, BATON_NATS_PREFIX: prefix, ...options.env } }, nats);
  } catch (err) {
    await removeNatsPrefix(servers, prefix).catch(() => undefined); // the start error is the one to report
    throw err;
  }
}

/** `nats`: the prefix this process owns (created by startBaton), deleted by destroy(). */
async function launch(options: StartOptions, nats: { servers: string; prefix: string } | undefined): Promise<BatonProcess> {
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
      return launch({ ...options, dataDir, port }, nats);
    },
    async destroy() {
      await proc.kill9();
      rmSync(dataDir, { recursive: true, force: true });
      if (nats !== undefined) await removeNatsPrefix(nats.servers, nats.prefix);
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
