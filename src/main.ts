/**
 * @module main
 * The composition root: config -> engine -> layers -> listen. The only module that picks the
 * engine implementation.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { BatonError, isBatonError } from "./errors/baton-error.ts";
import { resolveSecret } from "./config/secret.ts";
import type { BatonConfig } from "./config/config.ts";
import { TokenVerifier } from "./edge/auth/tokens.ts";
import { createHttpApi } from "./edge/http/http-api.ts";
import { WsGateway } from "./edge/ws/ws-gateway.ts";
import { TopicFanout } from "./edge/ws/topic-fanout.ts";
import { EmbeddedEngine } from "./engine/embedded/embedded-engine.ts";
import { NatsEngine } from "./engine/nats/nats-engine.ts";
import type { Engine } from "./engine/engine.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { Metrics } from "./observability/metrics.ts";
import { ConsumerGroups } from "./streams/groups/consumer-groups.ts";
import { ClusteredGroups } from "./streams/groups/cluster/clustered-groups.ts";
import type { GroupDirectory } from "./streams/groups/group-handle.ts";
import { GroupCommands } from "./edge/groups/group-commands.ts";
import { CoordinationCommands } from "./edge/groups/coordination-commands.ts";
import { Slots } from "./streams/coordination/slots.ts";
import { Effects } from "./streams/coordination/effects.ts";

export const VERSION = "0.1.0";

export interface RunningBaton {
  readonly url: string;
  readonly port: number;
  readonly engine: Engine;
  readonly logger: Logger;
  /** Stops accepting, finishes in-flight requests (up to the shutdown timeout), closes the store. */
  close(): Promise<void>;
}

/** An engine as the composition root needs it: the seam plus its write-queue depth for metrics. */
type RunningEngine = Engine & { readonly log: Engine["log"] & { readonly pending: number } };

export async function createEngine(config: BatonConfig, logger: Logger): Promise<RunningEngine> {
  const defaultRetention = { maxAgeMs: config.retentionMaxAgeMs, maxEvents: config.retentionMaxEvents, maxBytes: config.retentionMaxBytes };
  if (config.engine.startsWith("nats://")) {
    return NatsEngine.open({
      servers: config.engine,
      prefix: config.natsPrefix,
      replicas: config.natsReplicas,
      dedupWindowMs: config.dedupWindowMs,
      defaultRetention,
    });
  }
  return EmbeddedEngine.open({
    dataDir: config.dataDir,
    dedupWindowMs: config.dedupWindowMs,
    defaultRetention: {
      maxAgeMs: config.retentionMaxAgeMs,
      maxEvents: config.retentionMaxEvents,
      maxBytes: config.retentionMaxBytes,
    },
    onFailure: (err) => logger.fatal({ err }, "a storage write failed: this node refuses writes until it is restarted"),
  });
}

export async function startBaton(config: BatonConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningBaton> {
  let resolved: ReturnType<typeof resolveSecret>;
  let engine: RunningEngine;
  try {
    resolved = resolveSecret(config);
    engine = await createEngine(config, logger);
  } catch (err) {
    throw dataDirError(err, config.dataDir);
  }
  const { secret, generated } = resolved;
  if (generated) logger.warn({ file: secret.file }, "no BATON_JWT_SECRET set: generated a development secret and saved it in the data dir");
  if (generated && config.engine !== "embedded") logger.warn("a cluster needs one secret on every node: set BATON_JWT_SECRET (or BATON_JWKS_URL), or tokens from one node fail on the others");
  const groupDeps = {
    log: engine.log,
    state: engine.state,
    onError: (err: unknown, what: string) => logger.warn({ err, what }, "consumer group background step failed; retrying"),
  };
  // In a cluster each group runs on one leader node and the others reach it over the bus.
  const groups: GroupDirectory =
    engine.bus === undefined ? new ConsumerGroups(groupDeps) : new ClusteredGroups({ ...groupDeps, bus: engine.bus, leaderTtlMs: config.groupLeaderTtlMs, rebalanceMs: config.groupRebalanceMs });
  try {
    await groups.start();
  } catch (err) {
    await engine.close();
    throw err;
  }
  const slots = new Slots(engine.state, engine.log, {
    onError: (err, what) => logger.warn({ err, what }, "reservation sweep step failed; retrying"),
  });
  slots.start();
  const effects = new Effects(engine.state);
  const effectSweep = setInterval(() => {
    effects.sweep().catch((err: unknown) => logger.warn({ err }, "effect sweep failed; retrying"));
  }, 60_000);
  effectSweep.unref();
  const groupCommands = new GroupCommands(groups, engine.log, slots);
  const coordination = new CoordinationCommands(slots, effects);
  const gatewayRef: { current?: WsGateway } = {};
  const metrics = new Metrics(() => engine.log.pending, () => gatewayRef.current?.connections ?? 0);
  metrics.watchGroups(function* () {
    for (const g of groups.running()) {
      yield { tenant: g.config.tenant, group: g.config.name, ...g.sample(), ...g.counters };
    }
  });
  let ready = false;
  let draining: Promise<void> | undefined;
  const verifier = new TokenVerifier({ secret: secret.value, jwksUrl: config.jwksUrl });
  const handler = createHttpApi({
    config,
    log: engine.log,
    broker: engine.broker,
    groups,
    groupCommands,
    coordination,
    verifier,
    metrics,
    logger,
    engineName: engine.name,
    ...(engine.bus === undefined ? {} : { nodeId: engine.bus.nodeId }),
    isReady: () => ready && engine.isHealthy(),
    drain: () => {
      ready = false;
      const connections = gatewayRef.current?.connections ?? 0;
      draining ??= gatewayRef.current?.drain(config.drainWindowMs, config.shutdownTimeoutMs);
      return connections;
    },
  });
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 120_000 }, handler);
  // `Expect: 100-continue` with a body over the limit is refused before the client sends it.
  server.on("checkContinue", (req, res) => {
    if (Number(req.headers["content-length"] ?? 0) <= config.maxBodyBytes) res.writeContinue();
    handler(req, res);
  });
  const gateway = new WsGateway(
    server,
    {
      log: engine.log,
      broker: engine.broker,
      fanout: new TopicFanout(engine.log, engine.broker),
      verifier,
      logger,
      autoCreateTopics: config.autoCreateTopics,
      defaultRetention: { maxAgeMs: config.retentionMaxAgeMs, maxEvents: config.retentionMaxEvents, maxBytes: config.retentionMaxBytes },
      version: `baton ${VERSION}`,
      onDropped: () => metrics.droppedEphemeral.inc(),
      onAppended: (duplicate, seconds) => {
        metrics.appendLatency.observe(seconds);
        if (duplicate) metrics.duplicateEvents.inc();
        else metrics.appendedEvents.inc();
      },
      acceptsWrites: () => ready && engine.isHealthy(),
      groups: groupCommands,
      coordination,
      limits: {
        pingIntervalS: Math.max(1, Math.round(config.wsPingIntervalMs / 1000)),
        pongTimeoutMs: config.wsPongTimeoutMs,
        connectTimeoutMs: config.wsConnectTimeoutMs,
        maxSubscriptions: config.wsMaxSubscriptions,
        bufferHighBytes: config.wsBufferBytes,
        slowTimeoutMs: config.wsSlowTimeoutMs,
        recoveryReplyLimit: 300,
        expiryGraceMs: config.wsExpiryGraceMs,
        maxCommandsPerSecond: config.wsMaxCommandsPerSecond,
      },
    },
    { maxConnections: config.wsMaxConnections, maxMessageBytes: config.wsMaxMessageBytes },
  );
  gatewayRef.current = gateway;
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    // Nothing was served: stop what started, so the store is closed and its lock released.
    slots.stop();
    clearInterval(effectSweep);
    await groups.close().catch(() => undefined);
    await engine.close().catch(() => undefined);
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  ready = true;
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const url = `http://${host}:${port}`;
  logger.info({ url, engine: engine.name, dataDir: config.dataDir }, "baton is listening");

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      ready = false;
      await (draining ?? gateway.drain(config.drainWindowMs, config.shutdownTimeoutMs));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // A keep-alive connection busy at close() goes idle later and would hold the close until
      // its keep-alive timeout (65 s): close those as they go idle.
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref());
      logger.debug("sockets drained");
      const timedOut = await Promise.race([closed.then(() => false), timeout.then(() => true)]);
      if (timedOut) logger.warn({ timeoutMs: config.shutdownTimeoutMs }, "HTTP requests still open at the shutdown timeout: closing them");
      clearInterval(idleSweep);
      logger.debug({ timedOut }, "HTTP server closed");
      server.closeAllConnections();
      await groups.close();
      logger.debug("consumer groups stopped");
      slots.stop();
      clearInterval(effectSweep);
      await engine.close();
      logger.info("baton stopped");
    })());
  return { url, port, engine, logger, close };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      const message =
        err.code === "EADDRINUSE"
          ? `port ${port} on ${host} is already in use: pick another with --port or BATON_PORT`
          : err.code === "EACCES"
            ? `port ${port} on ${host} needs privileges this process does not have: pick another with --port or BATON_PORT`
            : `cannot listen on ${host}:${port} (${err.message}): check --host / BATON_HOST and --port / BATON_PORT`;
      reject(new BatonError("UNAVAILABLE", message, { cause: err }));
    };
    server.once("error", failed);
    server.listen(port, host, () => {
      server.off("error", failed);
      resolve();
    });
  });
}

/** A file-system error while opening the data dir, as the error model's UNAVAILABLE naming the dir. */
function dataDirError(err: unknown, dataDir: string): unknown {
  if (isBatonError(err) || typeof (err as NodeJS.ErrnoException).syscall !== "string") return err;
  return new BatonError("UNAVAILABLE", `cannot use data dir ${dataDir} (--data-dir, BATON_DATA_DIR): ${(err as Error).message}`, { cause: err });
}
