/**
 * `npm run bench:fanout-cluster` (part of `npm run bench`): the gateway fan-out scenario of
 * bench/fanout.ts on the engines side by side, in one run:
 *
 * - `embedded x1`: one `baton start` on the embedded engine (LMDB, fsync per group commit);
 * - `nats x1`: one `baton start --engine nats://…`;
 * - `nats x3`: three of them on one fresh NATS prefix (bench/cluster.ts). Socket i connects to
 *   node i % 3 and the publisher's connections rotate over the nodes, so two thirds of the
 *   events reach two thirds of the sockets through NATS (the append notice).
 *
 * Each session: N sockets subscribed to one topic (bench/fanout-clients.ts: the Centrifugo JSON
 * protocol over `ws`, each socket its own user), durable publishes over HTTP. A short ramp finds
 * the deliveries/s the setup sustains; then every setup runs at the same rate, half of the
 * embedded node's saturating rate, for publish -> delivery latency; then, with the sockets idle,
 * a closed-loop publish to a topic with no subscribers (16 connections, spread over the nodes),
 * with and without idempotency keys: the per-topic append rate, which on NATS is bound by
 * JetStream round trips, not by the nodes; last, a few seconds of nothing published, for the
 * nodes' and nats-server's background CPU (on NATS: every node's retention sweeper, which visits
 * every topic record, including each connected user's personal channel, every 5 s).
 *
 * The machine has 2 cores: three nodes, nats-server and the load generator share them, so the
 * 3-node figures show the cost of the cluster's extra work, not what three machines serve. The
 * table gives each side's CPU per delivery, which is what docs/scaling.md scales up.
 *
 * Environment: BENCH_CLUSTER_N (1000 sockets), BENCH_CLUSTER_STEP_S (2), BENCH_CLUSTER_HALF_S
 * (3), BENCH_CLUSTER_PUBLISH_S (3), BENCH_CLUSTER_IDLE_S (6), BENCH_CLUSTER_SETUPS
 * ("embedded:1,nats:1,nats:3"), BENCH_NATS (nats://127.0.0.1:4222), BENCH_CLUSTER_PROFILE=<dir>
 * (every node runs with --cpu-prof into <dir>; the run prints each profile's top functions).
 * Without a reachable NATS server the NATS setups are skipped with a message. Loopback only; the
 * run stops by itself (about 95 s on a quiet machine; it gives up after 170 s).
 * docs/benchmarks.md ("Fan-out on the NATS engine") explains it; docs/scaling.md scales it up.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { join } from "node:path";
import { clusterUnavailable, startCluster } from "./cluster.ts";
import type { FanoutClientsConfig, FanoutClientsResult, IdleResult, Phase, PublishResult, RampResult, SteadyResult } from "./fanout-clients.ts";
import { fmt, guardRun, printTable, ROOT, startChild, waitQuiet } from "./lib.ts";

const N = Number(process.env["BENCH_CLUSTER_N"] ?? 1000);
const STEP_S = Number(process.env["BENCH_CLUSTER_STEP_S"] ?? 2);
const HALF_S = Number(process.env["BENCH_CLUSTER_HALF_S"] ?? 3);
const PUBLISH_S = Number(process.env["BENCH_CLUSTER_PUBLISH_S"] ?? 3);
const IDLE_S = Number(process.env["BENCH_CLUSTER_IDLE_S"] ?? 6);
const NATS = process.env["BENCH_NATS"] ?? "nats://127.0.0.1:4222";
const PROFILE_DIR = process.env["BENCH_CLUSTER_PROFILE"];
const SETUPS = (process.env["BENCH_CLUSTER_SETUPS"] ?? "embedded:1,nats:1,nats:3").split(",").map((s) => {
  const [engine, nodes] = s.split(":");
  if ((engine !== "embedded" && engine !== "nats") || !(Number(nodes) >= 1) || (engine === "embedded" && Number(nodes) !== 1)) {
    throw new Error(`BENCH_CLUSTER_SETUPS: "${s}" is not embedded:1 or nats:<nodes>`);
  }
  return { engine, nodes: Number(nodes) } as const;
});
for (const [name, v] of Object.entries({ N, STEP_S, HALF_S, PUBLISH_S, IDLE_S })) {
  if (!(v > 0)) throw new Error(`BENCH_CLUSTER_${name} must be positive, got ${v}`);
}
const SECRET = "bench-secret-not-for-production-0123456789";
const TOPIC = "room.1";
const HOT_TOPIC = "hot.1";
const PUBLISH_CONNECTIONS = 16;
const RUN_LIMIT_MS = 170_000;
const SESSION_LIMIT_MS = 60_000;
/**
 * No session starts after this much of the run: it could not finish (and remove its NATS prefix)
 * before RUN_LIMIT_MS. A session takes about 30 s on a quiet machine, more when steps are re-run.
 */
const LAST_START_MS = RUN_LIMIT_MS - SESSION_LIMIT_MS - 15_000;
const QUIET_WAIT_MS = 5_000;
const NOISY_PCT = 15;
/** As bench/fanout.ts: the first step offers this many deliveries/s, then x factor per step. */
const RAMP = { startDeliveriesPerS: 30_000, factor: 1.6, maxSteps: 6, stepS: STEP_S };

guardRun("bench:fanout-cluster", RUN_LIMIT_MS);

interface Setup {
  readonly engine: "embedded" | "nats";
  readonly nodes: number;
}

interface Row {
  readonly setup: Setup;
  readonly session: FanoutClientsResult;
  readonly ramp: RampResult;
  readonly half: SteadyResult;
  readonly hot: PublishResult;
  readonly hotKeys: PublishResult;
  readonly idle: IdleResult;
}

const label = (s: Setup): string => `${s.engine} x${s.nodes}`;
const phase = <T>(s: FanoutClientsResult, name: string): T => s.phases.find((p) => p.name === name) as T;

/** Runs the generator, forwarding its progress lines, killing it at the session limit. */
async function runClients(config: FanoutClientsConfig): Promise<FanoutClientsResult> {
  const child = startChild([join(ROOT, "bench/fanout-clients.ts"), JSON.stringify(config)]);
  child.proc.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), SESSION_LIMIT_MS);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`fanout-clients (${config.urls?.length ?? 1} nodes) exited with ${code ?? child.proc.signalCode}:\n${child.output()}`);
  const lines = child.stdout().trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as FanoutClientsResult;
}

async function session(setup: Setup, halfRate: number | undefined): Promise<Row> {
  await waitQuiet(QUIET_WAIT_MS);
  console.error(`fanout-cluster: ${label(setup)}, ${fmt(N)} sockets on one topic`);
  const cluster = await startCluster({
    nodes: setup.nodes,
    ...(setup.engine === "nats" ? { nats: NATS } : {}),
    secret: SECRET,
    ...(PROFILE_DIR === undefined ? {} : { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] }),
  });
  try {
    const phases: Phase[] = [
      { type: "ramp", name: "durable", ephemeral: false, ...RAMP },
      halfRate === undefined
        ? { type: "steady", name: "half", ephemeral: false, halfOf: "durable", seconds: HALF_S }
        : { type: "steady", name: "half", ephemeral: false, rate: halfRate, seconds: HALF_S },
      { type: "publish", name: "hot", topic: HOT_TOPIC, seconds: PUBLISH_S, idempotent: false },
      { type: "publish", name: "hot-keys", topic: `${HOT_TOPIC}k`, seconds: PUBLISH_S, idempotent: true },
      { type: "idle", name: "idle", seconds: IDLE_S },
    ];
    const s = await runClients({
      kind: "baton",
      url: cluster.nodes[0]!.url,
      urls: cluster.nodes.map((n) => n.url),
      topic: TOPIC,
      n: N,
      serverPid: cluster.nodes[0]!.pid,
      serverPids: cluster.nodes.map((n) => n.pid),
      helperPids: cluster.natsPid === undefined ? [] : [cluster.natsPid],
      secret: SECRET,
      connectWindow: 256,
      publishConnections: PUBLISH_CONNECTIONS,
      phases,
    });
    return { setup, session: s, ramp: phase(s, "durable"), half: phase(s, "half"), hot: phase(s, "hot"), hotKeys: phase(s, "hot-keys"), idle: phase(s, "idle") };
  } finally {
    // SIGINT: a graceful exit, so that a node started with --cpu-prof writes its profile.
    await cluster.stop(PROFILE_DIR === undefined ? "SIGTERM" : "SIGINT");
  }
}

/** CPU of all nodes per delivery at half load, without what they use when idle, µs. */
function netUsPerDelivery(r: Row): number {
  const idlePerS = r.idle.serverCpuMs / r.idle.seconds;
  return (1000 * (r.half.serverCpuMs - idlePerS * r.half.seconds)) / Math.max(1, r.half.deliveredPerS * r.half.seconds);
}

function report(rows: readonly Row[]): void {
  const base = rows.find((r) => r.setup.engine === "embedded");
  const ratio = (a: number, b: number | undefined): string => (b === undefined ? "" : `${fmt(a / b, 2)}x`);
  const perS = (ms: number, s: number): number => ms / 1000 / s;
  console.log(`\nfan-out: ${fmt(N)} sockets on one topic, durable publishes over HTTP (${PUBLISH_CONNECTIONS} connections), all on this ${availableParallelism()}-core machine`);
  printTable([
    ["setup", "delivered/s", "vs embedded", "baton cores", "nats cores", "gen cores", "half ev/s", "p50 ms", "p99 ms", "p99 vs emb", "p50 local/remote", "baton us/dlv", "net us/dlv", "half nats", "ack p99 ms", "idle baton", "idle nats", "other cpu", "missing"],
    ...rows.map((r) => {
      const b = r.ramp.best;
      const h = r.half;
      const steps = [...r.ramp.steps, h];
      const nats = r.setup.engine === "nats";
      return [
        label(r.setup),
        `${fmt(r.ramp.capacityDeliveriesPerS)}${r.ramp.saturated ? "" : "+"}`,
        r === base ? "" : ratio(r.ramp.capacityDeliveriesPerS, base?.ramp.capacityDeliveriesPerS),
        fmt(perS(b.serverCpuMs, b.seconds), 2),
        nats ? fmt(perS(b.helperCpuMs, b.seconds), 2) : "",
        fmt(perS(b.loadCpuMs, b.seconds), 2),
        fmt(h.rate, 1),
        fmt(h.p50Ms, 2),
        fmt(h.p99Ms, 2),
        r === base ? "" : ratio(h.p99Ms, base?.half.p99Ms),
        r.setup.nodes > 1 ? `${fmt(h.localP50Ms, 2)} / ${fmt(h.remoteP50Ms, 2)}` : "",
        fmt(h.serverUsPerDelivery, 1),
        fmt(netUsPerDelivery(r), 1),
        nats ? fmt(perS(h.helperCpuMs, h.seconds), 2) : "",
        fmt(h.ackP99Ms, 2),
        fmt(perS(r.idle.serverCpuMs, r.idle.seconds), 2),
        nats ? fmt(perS(r.idle.helperCpuMs, r.idle.seconds), 2) : "",
        `${fmt(Math.max(...steps.map((s) => s.otherCpuPct)))}%`,
        String(steps.reduce((a, s) => a + s.missing, 0)),
      ];
    }),
  ]);
  console.log(
    "\ndelivered/s: the ramp's best step (+: the last step still kept up, a lower bound); cores: in that step, baton = all nodes; " +
      "half: every setup at half of the embedded node's saturating rate; p50/p99: publish -> delivery at half load; " +
      "p50 local/remote: on sockets of the node that took the publish / of the other nodes (the event crossed NATS); " +
      "baton us/dlv: CPU of all nodes per delivery at half load; net us/dlv: the same minus the nodes' idle CPU; " +
      "half nats: nats-server's cores at half load; ack p99: the HTTP publish's acknowledgement at half load; " +
      `idle: cores used with the sockets connected and nothing published (${IDLE_S} s, at the end).`,
  );

  console.log(`\nappends to one topic with no subscribers: ${PUBLISH_CONNECTIONS} HTTP connections (spread over the nodes), one request in flight each, ${PUBLISH_S} s closed loop`);
  const baseHot = base?.hot;
  const baseKeys = base?.hotKeys;
  printTable([
    ["setup", "keys", "publishes/s", "vs embedded", "p50 ms", "p99 ms", "baton cores", "nats cores", "baton us/pub", "fail", "other cpu"],
    ...rows.flatMap((r) =>
      [r.hot, r.hotKeys].map((p) => [
        label(r.setup),
        p.idempotent ? "yes" : "no",
        fmt(p.ackedPerS),
        r === base ? "" : ratio(p.ackedPerS, (p.idempotent ? baseKeys : baseHot)?.ackedPerS),
        fmt(p.p50Ms, 2),
        fmt(p.p99Ms, 2),
        fmt(perS(p.serverCpuMs, p.seconds), 2),
        r.setup.engine === "nats" ? fmt(perS(p.helperCpuMs, p.seconds), 2) : "",
        fmt(p.serverUsPerPublish, 0),
        String(p.failures),
        `${fmt(p.otherCpuPct)}%`,
      ]),
    ),
  ]);

  const noisy = rows.filter((r) => Math.max(r.ramp.best.otherCpuPct, r.half.otherCpuPct, r.hot.otherCpuPct, r.hotKeys.otherCpuPct) > NOISY_PCT);
  if (noisy.length > 0) console.log(`\nunreliable: ${noisy.map((r) => label(r.setup)).join(", ")} ran with more than ${NOISY_PCT}% of the machine busy with other work`);
  if (rows.some((r) => r.setup.nodes > 1)) {
    console.log(
      `\nnote: ${availableParallelism()} cores for everything: with several nodes, the nodes, nats-server and the load generator compete for them, ` +
        "so those rows measure what the cluster's extra work costs, not what that many machines would serve (docs/scaling.md scales the per-node CPU figures).",
    );
  }
}

/** The commit measured, with "+dirty" when the work tree differs from it. */
function gitCommit(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}

async function printProfiles(since: number): Promise<void> {
  const files = readdirSync(PROFILE_DIR!)
    .filter((f) => f.endsWith(".cpuprofile") && statSync(join(PROFILE_DIR!, f)).mtimeMs >= since)
    .sort();
  for (const f of files) {
    const top = startChild([join(ROOT, "bench/cpuprofile-top.ts"), join(PROFILE_DIR!, f), "15"]);
    await top.exited;
    console.log(`\n${f}:\n${top.output()}`);
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const t0 = Date.now();
  if (PROFILE_DIR !== undefined) mkdirSync(PROFILE_DIR, { recursive: true });
  const why = SETUPS.some((s) => s.engine === "nats") ? await clusterUnavailable(NATS) : undefined;
  if (why !== undefined) console.log(`fanout-cluster: NATS setups skipped: ${why}; start nats-server -js to measure them`);
  const rows: Row[] = [];
  let halfRate: number | undefined;
  for (const setup of SETUPS) {
    if (setup.engine === "nats" && why !== undefined) continue;
    if (performance.now() - started > LAST_START_MS) {
      console.log(`fanout-cluster: ${label(setup)} skipped: no time left in the run (the machine is busy; steps were re-run)`);
      continue;
    }
    const row = await session(setup, halfRate);
    // Every later setup runs its latency step at the first setup's half rate (the embedded one's by default).
    halfRate ??= row.ramp.saturatingEventsPerS / 2;
    rows.push(row);
  }
  report(rows);
  for (const r of rows.filter((x) => x.session.connectFailures > 0 || x.session.probeMissing !== 0 || Object.keys(x.session.unexpectedCloses).length > 0 || x.session.otherMessages > 0)) {
    const s = r.session;
    console.log(`warning: ${label(r.setup)}: ${s.connectFailures} connect failures, probe missing ${s.probeMissing}, closes ${JSON.stringify(s.unexpectedCloses)}, other messages ${s.otherMessages}`);
  }
  if (PROFILE_DIR !== undefined) await printProfiles(t0);

  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown", node: process.version, kernel: release() };
  const commit = gitCommit();
  const settings = { commit, n: N, setups: SETUPS, ramp: RAMP, halfS: HALF_S, publishS: PUBLISH_S, publishConnections: PUBLISH_CONNECTIONS, nats: NATS, topic: TOPIC };
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `fanout-cluster-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), machine, settings, rows }, null, 2)}\n`);
  console.log(`\nresults: ${file} (commit ${commit}, ${fmt((performance.now() - started) / 1000)} s)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
