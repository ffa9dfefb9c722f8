/**
 * Real Baton nodes for the benchmarks: `startCluster` starts N `bin/baton.js start` processes on
 * loopback, either one node on the embedded engine or N nodes on the NATS engine sharing one fresh
 * prefix (as test/integration/nats-engine.test.ts does), and `stop()` stops them, removes their
 * data dirs and deletes the prefix's streams and buckets. bench/fanout-cluster.ts uses it; any
 * scenario that needs "the same load against 1 embedded, 1 NATS and 3 NATS nodes" can.
 *
 * The processes are lib.ts children, so a run that ends by an error or Ctrl-C still kills them
 * and removes their data dirs (lib.ts guardRun); only the NATS prefix is then left behind, named
 * `bench<hex>` so that it is recognisable.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { natsUnreachable, removeNatsPrefix } from "../test/support/nats.ts";
import { BATON_NODE_ARGS, freePort, removeDir, ROOT, startChild, tempDir, waitReady, type Child } from "./lib.ts";

export interface ClusterOptions {
  /** How many Baton processes. The embedded engine allows one (a data dir has one owner). */
  readonly nodes: number;
  /** `nats://host:port[,…]` for the NATS engine; absent for the embedded engine. */
  readonly nats?: string;
  /** BATON_JWT_SECRET of every node (they must share it). */
  readonly secret: string;
  /** Extra environment for every node (BATON_*). */
  readonly env?: Readonly<Record<string, string>>;
  /** Node.js flags for every node, before the script (e.g. --cpu-prof --cpu-prof-dir=…). */
  readonly nodeArgs?: readonly string[];
  /** The NATS prefix; default a fresh `bench<hex>`. */
  readonly prefix?: string;
  /** Per node, to wait for /readyz. Default 30 s (three nodes starting at once on two cores). */
  readonly readyLimitMs?: number;
}

export interface ClusterNode {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly child: Child;
  readonly dataDir: string;
}

export interface Cluster {
  readonly engine: "embedded" | "nats";
  readonly nodes: readonly ClusterNode[];
  /** The NATS prefix the nodes share (NATS engine only). */
  readonly prefix: string | undefined;
  /** nats-server's pid when it runs on this machine (for its CPU), else undefined. */
  readonly natsPid: number | undefined;
  /**
   * Stops every node (`signal`, SIGKILL after `graceMs`), removes the data dirs, then the NATS
   * prefix. SIGINT makes a node started with --cpu-prof write its profile.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Undefined when a NATS engine can be started against `servers`, else why not (for a skip message). */
export const clusterUnavailable = natsUnreachable;

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (!(options.nodes >= 1)) throw new Error(`nodes must be >= 1, got ${options.nodes}`);
  if (options.nats === undefined && options.nodes !== 1) throw new Error("the embedded engine runs one node");
  const prefix = options.nats === undefined ? undefined : (options.prefix ?? `bench${randomBytes(4).toString("hex")}`);
  const env: Record<string, string> = {
    BATON_JWT_SECRET: options.secret,
    BATON_LOG_LEVEL: "warn",
    ...(options.nats === undefined ? {} : { BATON_ENGINE: options.nats, BATON_NATS_PREFIX: prefix! }),
    ...options.env,
  };
  const nodes: ClusterNode[] = [];
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 20_000): Promise<void> => {
    await Promise.all(nodes.map((n) => n.child.stop(signal, graceMs)));
    for (const n of nodes) removeDir(n.dataDir);
    if (options.nats !== undefined) await removeNatsPrefix(options.nats, prefix!);
  };
  try {
    const started = await Promise.all(
      Array.from({ length: options.nodes }, async () => {
        const port = await freePort();
        const dataDir = tempDir("baton-cluster-");
        const child = startChild(
          [...(options.nodeArgs ?? BATON_NODE_ARGS), join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir],
          env,
        );
        const node: ClusterNode = { url: `http://127.0.0.1:${port}`, port, pid: child.proc.pid!, child, dataDir };
        nodes.push(node);
        return node;
      }),
    );
    await Promise.all(started.map((n) => waitReady(`${n.url}/readyz`, n.child, options.readyLimitMs ?? 30_000)));
    // In start order, for callers that index nodes.
    nodes.splice(0, nodes.length, ...started);
  } catch (err) {
    await stop("SIGKILL", 0).catch(() => undefined);
    throw err;
  }
  return { engine: options.nats === undefined ? "embedded" : "nats", nodes, prefix, natsPid: options.nats === undefined ? undefined : pidOf("nats-server"), stop };
}

/** The pid of a local process by its command name (/proc/<pid>/comm), if any. */
export function pidOf(comm: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) return Number(entry);
    } catch {
      // gone, or not ours to read
    }
  }
  return undefined;
}
