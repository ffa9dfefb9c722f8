/**
 * `npm run bench:fanout`: gateway fan-out (issue 3). One topic, N subscribed sockets, events
 * published over HTTP, against three servers, each in its own process and driven by the same
 * load generator (bench/fanout-clients.ts) in another:
 *
 * - `ws`: a plain `ws` server broadcasting one pre-serialised Buffer (bench/ws-baseline-server.ts),
 *   the practical ceiling;
 * - `socket.io`: `io.to(room).emit` (bench/socketio-server.ts);
 * - `baton`: `baton start`, durable publishes (answered after fsync) and ephemeral ones.
 *
 * For each N it finds every server's capacity with a short ramp, then measures latency at half
 * of Baton's durable saturating rate; with 10,000 sockets it also reports each server's RSS per
 * idle connection and runs Baton's reconnect storm. Prints a table with the ratios and the aims
 * and writes JSON to bench/results/. docs/benchmarks.md ("Gateway fan-out") explains it.
 *
 * Environment: BENCH_FANOUT_SIZES (default "1000,10000"), BENCH_FANOUT_SERVERS
 * ("baton,ws,socket.io"), BENCH_FANOUT_STEP_S (2), BENCH_FANOUT_HALF_S (3),
 * BENCH_FANOUT_STORM_EVENTS (100).
 *
 * Profiling Baton under fan-out instead (files in /tmp/baton-prof):
 *   node bench/fanout.ts --profile [N=10000] [events/s=30] [seconds=10] [durable|ephemeral|ws|socket.io|storm]
 *   node bench/fanout.ts --heap [N=2000]     heap growth per idle subscribed connection
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { join } from "node:path";
import type { FanoutClientsConfig, FanoutClientsResult, Phase, RampResult, ServerKind, SteadyResult, StormResult } from "./fanout-clients.ts";
import { BATON_NODE_ARGS, fmt, freePort, guardRun, removeDir, ROOT, startChild, tempDir, waitQuiet, waitReady, printTable, type Child } from "./lib.ts";

const SIZES = (process.env["BENCH_FANOUT_SIZES"] ?? "1000,10000").split(",").map(Number);
const STEP_S = Number(process.env["BENCH_FANOUT_STEP_S"] ?? 2);
const HALF_S = Number(process.env["BENCH_FANOUT_HALF_S"] ?? 3);
const STORM_EVENTS = Number(process.env["BENCH_FANOUT_STORM_EVENTS"] ?? 100);
const SERVERS = (process.env["BENCH_FANOUT_SERVERS"] ?? "baton,ws,socket.io").split(",");
/** Reconnect handshakes in flight at once in the storm: below the listen backlog (511). */
const STORM_WINDOW = 500;
for (const [name, v] of Object.entries({ STEP_S, HALF_S, STORM_EVENTS, ...Object.fromEntries(SIZES.map((s, i) => [`SIZES[${i}]`, s])) })) {
  if (!(v > 0)) throw new Error(`BENCH_FANOUT_${name.replace(/\[.*/, "")} must be positive, got ${v}`);
}
const SECRET = "bench-secret-not-for-production-0123456789";
const TOPIC = "room.1";
const RUN_LIMIT_MS = 330_000;
const SESSION_LIMIT_MS = 150_000;
const QUIET_WAIT_MS = 5_000;
const PROF_DIR = "/tmp/baton-prof";
const NOISY_PCT = 15;
const AIMS = { vsSocketIo: 3, vsWs: 0.85, halfLoadP99Ms: 10, bytesPerIdleConnection: 10 * 1024 };

/** The ramp: first step offers this many deliveries/s (event rate × N), then × FACTOR per step. */
const RAMP = { startDeliveriesPerS: 30_000, factor: 1.6, maxSteps: 6, stepS: STEP_S };

type Server = "ws" | "socket.io" | "baton";

type Diagnostics = "none" | "cpu" | "heap";

async function startServer(server: Server, diagnostics: Diagnostics = "none"): Promise<{ child: Child; url: string; dataDir?: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  if (server === "baton") {
    const dataDir = tempDir("baton-fanout-");
    const prof = {
      none: [],
      cpu: ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`],
      heap: ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${PROF_DIR}`],
    }[diagnostics];
    const child = startChild([...BATON_NODE_ARGS, ...prof, join(ROOT, "bin/baton.js"), "start", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir], {
      BATON_JWT_SECRET: SECRET,
      BATON_LOG_LEVEL: "warn",
    });
    await waitReady(`${url}/readyz`, child);
    return { child, url, dataDir };
  }
  const prof = diagnostics === "cpu" ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`] : [];
  const child = startChild([...prof, join(ROOT, server === "ws" ? "bench/ws-baseline-server.ts" : "bench/socketio-server.ts"), String(port)], { BENCH_ROOM: TOPIC });
  await waitReady(url, child);
  return { child, url };
}

/** Runs the generator against `url`, forwarding its progress lines, killing it at `limitMs`. */
async function runClients(config: FanoutClientsConfig, limitMs: number): Promise<FanoutClientsResult> {
  const child = startChild([join(ROOT, "bench/fanout-clients.ts"), JSON.stringify(config)]);
  child.proc.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), limitMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`fanout-clients (${config.kind}, n=${config.n}) exited with ${code ?? child.proc.signalCode}:\n${child.output()}`);
  const lines = child.stdout().trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as FanoutClientsResult;
}

async function session(server: Server, n: number, phases: Phase[], diagnostics: Diagnostics = "none"): Promise<FanoutClientsResult> {
  await waitQuiet(QUIET_WAIT_MS);
  const { child, url, dataDir } = await startServer(server, diagnostics);
  try {
    const kind: ServerKind = server === "socket.io" ? "socketio" : server;
    return await runClients(
      { kind, url, topic: TOPIC, n, serverPid: child.proc.pid!, secret: SECRET, connectWindow: 256, publishConnections: 16, phases, heapSnapshots: diagnostics === "heap" },
      SESSION_LIMIT_MS,
    );
  } finally {
    // SIGINT: a graceful exit, so that V8 writes the CPU profile.
    await child.stop(diagnostics === "cpu" ? "SIGINT" : "SIGTERM", 20_000);
    if (dataDir !== undefined) removeDir(dataDir);
  }
}

const ramp = (name: string, ephemeral: boolean): Phase => ({ type: "ramp", name, ephemeral, ...RAMP });

interface Row {
  readonly n: number;
  readonly server: string;
  readonly ramp: RampResult;
  readonly half: SteadyResult;
  readonly session: FanoutClientsResult;
}

const phase = <T>(s: FanoutClientsResult, name: string): T => s.phases.find((p) => p.name === name) as T;
const cores = (ms: number, seconds: number): number => ms / 1000 / seconds;

function report(rows: readonly Row[], storm: StormResult | undefined): string[] {
  const get = (n: number, server: string): Row | undefined => rows.find((r) => r.n === n && r.server === server);
  const ratio = (a: number | undefined, b: number | undefined, unit: "x" | "%"): string =>
    a === undefined || b === undefined ? "" : unit === "x" ? `${fmt(a / b, 2)}x` : `${fmt((100 * a) / b)}%`;
  console.log();
  printTable([
    ["N", "server", "delivered/s", "sat ev/s", "vs socket.io", "vs ws", "srv cores", "gen cores", "irq cores", "half ev/s", "p50 ms", "p99 ms", "srv us/dlv", "gen us/dlv", "other cpu", "missing", "RSS/conn", "marginal"],
    ...rows.map((r) => {
      const b = r.ramp.best;
      const baton = r.server.startsWith("baton");
      const cap = r.ramp.capacityDeliveriesPerS;
      const steps = [...r.ramp.steps, r.half];
      return [
        fmt(r.n),
        r.server,
        `${fmt(cap)}${r.ramp.saturated ? "" : "+"}`,
        fmt(r.ramp.saturatingEventsPerS, 1),
        baton ? ratio(cap, get(r.n, "socket.io")?.ramp.capacityDeliveriesPerS, "x") : "",
        baton ? ratio(cap, get(r.n, "ws")?.ramp.capacityDeliveriesPerS, "%") : "",
        fmt(cores(b.serverCpuMs, b.seconds), 2),
        fmt(cores(b.loadCpuMs, b.seconds), 2),
        fmt(b.irqCores, 2),
        fmt(r.half.rate, 1),
        fmt(r.half.p50Ms, 2),
        fmt(r.half.p99Ms, 2),
        fmt(r.half.serverUsPerDelivery, 1),
        fmt(r.half.loadUsPerDelivery, 1),
        `${fmt(Math.max(...steps.map((s) => s.otherCpuPct)))}%`,
        String(steps.reduce((a, s) => a + s.missing, 0)),
        r.server === "baton-ephemeral" ? "" : `${fmt(r.session.rssPerConnectionB / 1024, 1)} KiB`,
        r.server === "baton-ephemeral" ? "" : `${fmt(r.session.rssMarginalPerConnectionB / 1024, 1)} KiB`,
      ];
    }),
  ]);
  console.log(
    "\ndelivered/s: the ramp's best step (+: the last step still kept up, so a lower bound); cores: in that step; " +
      "half: every server at half of Baton's durable saturating rate; us/dlv: CPU per delivered message at half load; " +
      "other cpu: the worst step's share of the machine busy with work that is not the benchmark's.",
  );

  const verdict = (ok: boolean): string => (ok ? "met" : "NOT met");
  // A figure measured while other processes took more than this share of the machine is flagged.
  const noisy = (...rs: (Row | undefined)[]): string => {
    const worst = Math.max(...rs.flatMap((r) => (r === undefined ? [] : [r.ramp.best.otherCpuPct, r.half.otherCpuPct])));
    return worst > NOISY_PCT ? ` [unreliable: ${fmt(worst)}% of the machine busy with other work]` : "";
  };
  const aims: string[] = [];
  for (const n of SIZES) {
    const io = get(n, "socket.io")?.ramp.capacityDeliveriesPerS;
    const ws = get(n, "ws");
    for (const name of ["baton", "baton-ephemeral"]) {
      const b = get(n, name);
      if (b === undefined) continue;
      const cap = b.ramp.capacityDeliveriesPerS;
      if (io !== undefined) {
        aims.push(`n=${fmt(n)} ${name}: ${fmt(cap / io, 2)}x Socket.IO's deliveries/s vs aim >= ${AIMS.vsSocketIo}x: ${verdict(cap / io >= AIMS.vsSocketIo)}${noisy(b, get(n, "socket.io"))}`);
      }
      if (ws !== undefined) {
        const r = cap / ws.ramp.capacityDeliveriesPerS;
        aims.push(`n=${fmt(n)} ${name}: ${fmt(r * 100)}% of ws's deliveries/s vs aim >= ${AIMS.vsWs * 100}%: ${verdict(r >= AIMS.vsWs)}${noisy(b, ws)}`);
      }
      const p99 = b.half.p99Ms;
      const control = ws === undefined ? "" : ` (ws at the same rate: ${fmt(ws.half.p99Ms, 2)} ms)`;
      aims.push(`n=${fmt(n)} ${name}: p99 ${fmt(p99, 2)} ms at ${fmt(b.half.rate, 1)} events/s vs aim < ${AIMS.halfLoadP99Ms} ms: ${verdict(p99 < AIMS.halfLoadP99Ms)}${control}${noisy(b)}`);
    }
    const b = get(n, "baton");
    if (n >= 10_000 && b !== undefined) {
      const per = b.session.rssPerConnectionB;
      const marginal = b.session.rssMarginalPerConnectionB;
      aims.push(
        `n=${fmt(n)} baton: RSS per idle subscribed connection vs aim < 10 KiB: averaged over all ${fmt(n)} ${fmt(per / 1024, 1)} KiB: ${verdict(per < AIMS.bytesPerIdleConnection)}; ` +
          `marginal (second half of the sockets) ${fmt(marginal / 1024, 1)} KiB: ${verdict(marginal < AIMS.bytesPerIdleConnection)}`,
      );
    }
  }
  const idle = rows.filter((r) => r.n >= 10_000 && r.server !== "baton-ephemeral");
  if (idle.length > 0) {
    console.log(
      `\nRSS per idle connection (${fmt(idle[0]!.n)} sockets; averaged: RSS with them, idle, minus RSS with none, over N; marginal: RSS with all minus RSS with half, over N/2): ` +
        idle
          .map(
            (r) =>
              `${r.server} ${fmt(r.session.rssPerConnectionB / 1024, 1)} KiB averaged, ${fmt(r.session.rssMarginalPerConnectionB / 1024, 1)} KiB marginal ` +
              `(${fmt(r.session.serverRssBaseB / 2 ** 20)} -> ${fmt(r.session.serverRssHalfB / 2 ** 20)} -> ${fmt(r.session.serverRssIdleB / 2 ** 20)} MiB)`,
          )
          .join(", "),
    );
  }
  if (storm !== undefined) {
    const s = storm;
    const clean = s.gaps === 0 && s.duplicates === 0 && s.notRecovered === 0 && s.failedConnects === 0 && s.caughtUp === s.clients;
    console.log(
      `\nreconnect storm: ${fmt(s.clients)} Baton sockets dropped at once, ${s.events} durable events published meanwhile ` +
        `(offsets ${s.offsetBefore + 1}..${s.offsetTop}), all reconnected with recover:true (${STORM_WINDOW} handshakes in flight): ` +
        `all subscribed in ${fmt(s.allSubscribedS, 2)} s, all caught up in ${fmt(s.allCaughtUpS, 2)} s; ` +
        `${fmt(s.caughtUp)}/${fmt(s.clients)} at the top offset, ${fmt(s.publications)} publications received; gaps ${s.gaps}, duplicates ${s.duplicates}, ` +
        `not recovered ${s.notRecovered}, failed connects ${s.failedConnects}; server RSS ${fmt(s.serverRssBeforeB / 2 ** 20)} MiB before the drop, ` +
        `peak ${fmt(s.serverRssPeakB / 2 ** 20)} MiB; server CPU ${fmt(s.serverCpuMs / 1000, 2)} s`,
    );
    aims.push(`storm: every socket caught up with zero gaps and duplicates: ${verdict(clean)}`);
  }
  return aims;
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

async function main(): Promise<void> {
  const started = performance.now();
  const rows: Row[] = [];
  const sessions: FanoutClientsResult[] = [];
  let storm: StormResult | undefined;
  for (const n of SIZES) {
    console.error(`fanout: ${fmt(n)} sockets on one topic`);
    let half: number | undefined;
    if (SERVERS.includes("baton")) {
      const withStorm = n >= 10_000;
      const baton = await session("baton", n, [
        ramp("durable", false),
        { type: "steady", name: "durable-half", ephemeral: false, halfOf: "durable", seconds: HALF_S },
        ramp("ephemeral", true),
        { type: "steady", name: "ephemeral-half", ephemeral: true, halfOf: "durable", seconds: HALF_S },
        ...(withStorm ? [{ type: "storm", name: "storm", events: STORM_EVENTS, window: STORM_WINDOW, limitS: 60 } as const] : []),
      ]);
      sessions.push(baton);
      const durable = phase<RampResult>(baton, "durable");
      half = durable.saturatingEventsPerS / 2;
      rows.push({ n, server: "baton", ramp: durable, half: phase<SteadyResult>(baton, "durable-half"), session: baton });
      rows.push({ n, server: "baton-ephemeral", ramp: phase<RampResult>(baton, "ephemeral"), half: phase<SteadyResult>(baton, "ephemeral-half"), session: baton });
      if (withStorm) storm = phase<StormResult>(baton, "storm");
    }
    for (const peer of ["ws", "socket.io"] as const) {
      if (!SERVERS.includes(peer)) continue;
      const halfPhase: Phase = half === undefined ? { type: "steady", name: "half", ephemeral: false, halfOf: "plain", seconds: HALF_S } : { type: "steady", name: "half", ephemeral: false, rate: half, seconds: HALF_S };
      const s = await session(peer, n, [ramp("plain", false), halfPhase]);
      sessions.push(s);
      rows.push({ n, server: peer, ramp: phase<RampResult>(s, "plain"), half: phase<SteadyResult>(s, "half"), session: s });
    }
  }

  const aims = report(rows, storm);
  for (const s of sessions.filter((x) => x.connectFailures > 0 || x.probeMissing !== 0 || Object.keys(x.unexpectedCloses).length > 0 || x.otherMessages > 0)) {
    console.log(`warning: ${s.kind} n=${s.n}: ${s.connectFailures} connect failures, probe missing ${s.probeMissing}, closes ${JSON.stringify(s.unexpectedCloses)}, other messages ${s.otherMessages}`);
  }
  console.log(`\naims:\n  ${aims.join("\n  ")}`);

  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown", node: process.version, kernel: release() };
  const commit = gitCommit();
  const settings = { commit, sizes: SIZES, servers: SERVERS, ramp: RAMP, halfS: HALF_S, stormEvents: STORM_EVENTS, stormWindow: STORM_WINDOW, topic: TOPIC };
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `fanout-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), machine, settings, aims, storm, sessions }, null, 2)}\n`);
  console.log(`\nresults: ${file} (commit ${commit}, ${fmt((performance.now() - started) / 1000)} s)`);
}

/**
 * `--profile`: one server under steady fan-out with --cpu-prof; prints the top self-time
 * functions. Target: durable or ephemeral (Baton), ws (the ceiling), socket.io, or storm (Baton's
 * reconnect storm; N sockets, events/s and seconds unused).
 */
async function profile(args: string[]): Promise<void> {
  const n = Number(args[0] ?? 10_000);
  const rate = Number(args[1] ?? 30);
  const seconds = Number(args[2] ?? 10);
  const target = args[3] ?? "durable";
  const ephemeral = target === "ephemeral";
  const server: Server = target === "ws" || target === "socket.io" ? target : "baton";
  mkdirSync(PROF_DIR, { recursive: true });
  const t0 = Date.now();
  if (target === "storm") {
    const result = await session("baton", n, [{ type: "storm", name: "storm", events: STORM_EVENTS, window: STORM_WINDOW, limitS: 60 }], "cpu");
    const s = result.phases[0] as StormResult;
    console.log(`storm n=${n}: caught up in ${fmt(s.allCaughtUpS, 2)} s, gaps ${s.gaps}, duplicates ${s.duplicates}; server CPU ${fmt(s.serverCpuMs / 1000, 2)} s during the storm`);
    return summarize(t0);
  }
  const result = await session(server, n, [{ type: "steady", name: "profiled", ephemeral, rate, seconds }], "cpu");
  const r = result.phases[0] as SteadyResult;
  console.log(
    `${target} n=${n} at ${rate} events/s: delivered ${fmt(r.deliveredPerS)}/s of ${fmt(r.offeredDeliveriesPerS)}/s, ` +
      `p50 ${fmt(r.p50Ms, 2)} p99 ${fmt(r.p99Ms, 2)} ms, server ${fmt(r.serverCpuMs / 1000 / r.seconds, 2)} cores, ${fmt(r.serverUsPerDelivery, 2)} us/delivery`,
  );
  await summarize(t0);
}

/** Prints the top of the newest CPU profile written since `t0`. */
async function summarize(t0: number): Promise<void> {
  const newest = readdirSync(PROF_DIR)
    .filter((f) => f.endsWith(".cpuprofile") && statSync(join(PROF_DIR, f)).mtimeMs >= t0)
    .sort()
    .pop();
  if (newest === undefined) throw new Error("no profile written");
  const summary = startChild([join(ROOT, "bench/cpuprofile-top.ts"), join(PROF_DIR, newest), "25"]);
  await summary.exited;
  console.log(summary.output());
}

/** `--heap`: what an idle subscribed Baton connection holds, from two heap snapshots. */
async function heap(args: string[]): Promise<void> {
  const n = Number(args[0] ?? 2000);
  mkdirSync(PROF_DIR, { recursive: true });
  const t0 = Date.now();
  const result = await session("baton", n, [], "heap");
  console.log(
    `baton: RSS ${fmt(result.serverRssBaseB / 2 ** 20)} MiB -> ${fmt(result.serverRssHalfB / 2 ** 20)} MiB -> ${fmt(result.serverRssIdleB / 2 ** 20)} MiB with 0, ${fmt(n / 2)} and ${fmt(n)} idle sockets: ` +
      `${fmt(result.rssPerConnectionB)} B each averaged, ${fmt(result.rssMarginalPerConnectionB)} B marginal`,
  );
  const snaps = readdirSync(PROF_DIR)
    .filter((f) => f.endsWith(".heapsnapshot") && statSync(join(PROF_DIR, f)).mtimeMs >= t0)
    .sort((x, y) => statSync(join(PROF_DIR, x)).mtimeMs - statSync(join(PROF_DIR, y)).mtimeMs);
  if (snaps.length < 2) throw new Error(`expected 2 heap snapshots in ${PROF_DIR}, found ${snaps.length}`);
  const diff = startChild(["--max-old-space-size=8192", join(ROOT, "bench/heapsnapshot-diff.ts"), join(PROF_DIR, snaps[0]!), join(PROF_DIR, snaps[1]!), String(n), "30"]);
  await diff.exited;
  console.log(diff.output());
}

guardRun("bench:fanout", RUN_LIMIT_MS);

const argv = process.argv.slice(2);
(argv[0] === "--profile" ? profile(argv.slice(1)) : argv[0] === "--heap" ? heap(argv.slice(1)) : main()).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
