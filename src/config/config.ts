/**
 * @module config
 * Every setting in one documented schema. Precedence: command-line flag, then environment
 * variable, then default. docs/configuration.md lists the same settings.
 */
import { BatonError } from "../errors/baton-error.ts";
import { parseBytes, parseDuration } from "./duration.ts";

export interface BatonConfig {
  /** TCP port for HTTP and WebSocket. BATON_PORT, default 7700. */
  readonly port: number;
  /** Interface to bind. BATON_HOST, default 0.0.0.0. */
  readonly host: string;
  /** Where the embedded engine keeps its files. BATON_DATA_DIR, default ./data. */
  readonly dataDir: string;
  /** `embedded` or `nats://host:port[,host:port]`. BATON_ENGINE, default embedded. */
  readonly engine: string;
  /** NATS engine: prefix of its streams, buckets and subjects (one cluster may hold several Batons). BATON_NATS_PREFIX, default baton. */
  readonly natsPrefix: string;
  /** NATS engine: replicas of every stream and bucket (3 in production). BATON_NATS_REPLICAS, default 1. */
  readonly natsReplicas: number;
  /**
   * Cluster mode: how long a consumer group's leader lease lasts without renewal; after a
   * node crash its groups move to another node within about this time. BATON_GROUP_LEADER_TTL, default 5s.
   */
  readonly groupLeaderTtlMs: number;
  /**
   * Cluster mode: how often a node leading two or more groups above the least loaded node hands
   * one over; 0 turns balancing off. BATON_GROUP_REBALANCE, default 5s.
   */
  readonly groupRebalanceMs: number;
  /** HS256 secret for tokens; generated into the data dir when unset. BATON_JWT_SECRET. */
  readonly jwtSecret: string | undefined;
  /** JWKS URL whose keys also verify tokens (RS256/ES256/EdDSA). BATON_JWKS_URL. */
  readonly jwksUrl: string | undefined;
  /** Largest request body, bytes. BATON_MAX_BODY_BYTES, default 1MiB. */
  readonly maxBodyBytes: number;
  /** Most events in one batch publish. BATON_MAX_BATCH_EVENTS, default 1000. */
  readonly maxBatchEvents: number;
  /** How long an idempotency key is remembered. BATON_DEDUP_WINDOW, default 24h. */
  readonly dedupWindowMs: number;
  /** Create a topic on its first publish. BATON_AUTO_CREATE_TOPICS, default true. */
  readonly autoCreateTopics: boolean;
  /** Default retention: max age (0 = none). BATON_RETENTION_MAX_AGE, default 7d. */
  readonly retentionMaxAgeMs: number;
  /** Default retention: max events per topic (0 = none). BATON_RETENTION_MAX_EVENTS, default 0. */
  readonly retentionMaxEvents: number;
  /** Default retention: max bytes per topic (0 = none). BATON_RETENTION_MAX_BYTES, default 0. */
  readonly retentionMaxBytes: number;
  /** How long a graceful shutdown waits for in-flight requests. BATON_SHUTDOWN_TIMEOUT, default 10s. */
  readonly shutdownTimeoutMs: number;
  /** pino level. BATON_LOG_LEVEL, default info. */
  readonly logLevel: string;
  /** Seconds between server pings on sockets. BATON_WS_PING_INTERVAL, default 25s. */
  readonly wsPingIntervalMs: number;
  /** Open sockets per node. BATON_WS_MAX_CONNECTIONS, default 100000. */
  readonly wsMaxConnections: number;
  /** Largest inbound socket message. BATON_WS_MAX_MESSAGE_BYTES, default 64KiB. */
  readonly wsMaxMessageBytes: number;
  /** Subscriptions per socket. BATON_WS_MAX_SUBSCRIPTIONS, default 512. */
  readonly wsMaxSubscriptions: number;
  /** Outbound buffer high-water mark per socket. BATON_WS_BUFFER_BYTES, default 1MiB. */
  readonly wsBufferBytes: number;
  /** How long a socket may stay over its buffer mark before it is closed. BATON_WS_SLOW_TIMEOUT, default 10s. */
  readonly wsSlowTimeoutMs: number;
  /** Grace after a socket's token expires before it is closed 3005. BATON_WS_EXPIRY_GRACE, default 25s. */
  readonly wsExpiryGraceMs: number;
  /** A socket that sends nothing within this of a ping is closed 3012. BATON_WS_PONG_TIMEOUT, default 10s. */
  readonly wsPongTimeoutMs: number;
  /** Time a new socket has to send a successful connect before it is closed 3502. BATON_WS_CONNECT_TIMEOUT, default 15s. */
  readonly wsConnectTimeoutMs: number;
  /** Inbound commands per socket per second (bursts to twice that). BATON_WS_MAX_COMMANDS_PER_SECOND, default 200. */
  readonly wsMaxCommandsPerSecond: number;
  /** Bearer token for node operations (POST /admin/drain); unset = those routes are refused. BATON_OPERATOR_TOKEN. */
  readonly operatorToken: string | undefined;
  /** On SIGTERM, sockets are closed (to reconnect elsewhere) spread over this window. BATON_DRAIN_WINDOW, default 5s. */
  readonly drainWindowMs: number;
}

export type ConfigInput = { [K in keyof BatonConfig]?: string | undefined };

interface Setting<K extends keyof BatonConfig> {
  readonly env: string;
  readonly fallback: string | undefined;
  readonly parse: (raw: string) => BatonConfig[K];
}

function int(name: string, min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
    return n;
  };
}

function bool(name: string): (raw: string) => boolean {
  return (raw) => {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error(`${name} must be true or false, got ${JSON.stringify(raw)}`);
  };
}

const text = (raw: string): string => raw;
const optionalText = (raw: string): string | undefined => (raw === "" ? undefined : raw);

export const SETTINGS: { [K in keyof BatonConfig]: Setting<K> } = {
  port: { env: "BATON_PORT", fallback: "7700", parse: int("port", 0, 65535) },
  host: { env: "BATON_HOST", fallback: "0.0.0.0", parse: text },
  dataDir: { env: "BATON_DATA_DIR", fallback: "./data", parse: text },
  engine: {
    env: "BATON_ENGINE",
    fallback: "embedded",
    parse: (raw) => {
      if (raw !== "embedded" && !raw.startsWith("nats://")) throw new Error(`engine must be "embedded" or a nats:// URL, got ${JSON.stringify(raw)}`);
      return raw;
    },
  },
  natsPrefix: {
    env: "BATON_NATS_PREFIX",
    fallback: "baton",
    parse: (raw) => {
      if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(raw)) throw new Error(`natsPrefix must be 1-32 letters, digits or _ starting with a letter, got ${JSON.stringify(raw)}`);
      return raw;
    },
  },
  natsReplicas: { env: "BATON_NATS_REPLICAS", fallback: "1", parse: int("natsReplicas", 1, 5) },
  groupLeaderTtlMs: { env: "BATON_GROUP_LEADER_TTL", fallback: "5s", parse: parseDuration },
  groupRebalanceMs: { env: "BATON_GROUP_REBALANCE", fallback: "5s", parse: parseDuration },
  jwtSecret: { env: "BATON_JWT_SECRET", fallback: undefined, parse: optionalText },
  jwksUrl: { env: "BATON_JWKS_URL", fallback: undefined, parse: optionalText },
  maxBodyBytes: { env: "BATON_MAX_BODY_BYTES", fallback: "1MiB", parse: parseBytes },
  maxBatchEvents: { env: "BATON_MAX_BATCH_EVENTS", fallback: "1000", parse: int("maxBatchEvents", 1, 100_000) },
  dedupWindowMs: { env: "BATON_DEDUP_WINDOW", fallback: "24h", parse: parseDuration },
  autoCreateTopics: { env: "BATON_AUTO_CREATE_TOPICS", fallback: "true", parse: bool("autoCreateTopics") },
  retentionMaxAgeMs: { env: "BATON_RETENTION_MAX_AGE", fallback: "7d", parse: parseDuration },
  retentionMaxEvents: { env: "BATON_RETENTION_MAX_EVENTS", fallback: "0", parse: int("retentionMaxEvents", 0, Number.MAX_SAFE_INTEGER) },
  retentionMaxBytes: { env: "BATON_RETENTION_MAX_BYTES", fallback: "0", parse: parseBytes },
  shutdownTimeoutMs: { env: "BATON_SHUTDOWN_TIMEOUT", fallback: "10s", parse: parseDuration },
  logLevel: { env: "BATON_LOG_LEVEL", fallback: "info", parse: text },
  wsPingIntervalMs: { env: "BATON_WS_PING_INTERVAL", fallback: "25s", parse: parseDuration },
  wsMaxConnections: { env: "BATON_WS_MAX_CONNECTIONS", fallback: "100000", parse: int("wsMaxConnections", 1, 10_000_000) },
  wsMaxMessageBytes: { env: "BATON_WS_MAX_MESSAGE_BYTES", fallback: "64KiB", parse: parseBytes },
  wsMaxSubscriptions: { env: "BATON_WS_MAX_SUBSCRIPTIONS", fallback: "512", parse: int("wsMaxSubscriptions", 1, 100_000) },
  wsBufferBytes: { env: "BATON_WS_BUFFER_BYTES", fallback: "1MiB", parse: parseBytes },
  wsSlowTimeoutMs: { env: "BATON_WS_SLOW_TIMEOUT", fallback: "10s", parse: parseDuration },
  wsExpiryGraceMs: { env: "BATON_WS_EXPIRY_GRACE", fallback: "25s", parse: parseDuration },
  wsPongTimeoutMs: { env: "BATON_WS_PONG_TIMEOUT", fallback: "10s", parse: parseDuration },
  wsConnectTimeoutMs: { env: "BATON_WS_CONNECT_TIMEOUT", fallback: "15s", parse: parseDuration },
  wsMaxCommandsPerSecond: { env: "BATON_WS_MAX_COMMANDS_PER_SECOND", fallback: "200", parse: int("wsMaxCommandsPerSecond", 1, 1_000_000) },
  operatorToken: { env: "BATON_OPERATOR_TOKEN", fallback: undefined, parse: optionalText },
  drainWindowMs: { env: "BATON_DRAIN_WINDOW", fallback: "5s", parse: parseDuration },
};

/**
 * Resolves flags over environment over defaults. Bad input throws VALIDATION_FAILED naming
 * where the value came from: the flag (`--data-dir`) or the environment variable.
 */
export function loadConfig(flags: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): BatonConfig {
  const out: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [keyof BatonConfig, Setting<keyof BatonConfig>][]) {
    const flag = flags[name];
    const raw = flag ?? env[setting.env] ?? setting.fallback;
    try {
      out[name] = raw === undefined ? undefined : setting.parse(raw);
    } catch (err) {
      const source = flag !== undefined ? `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : setting.env;
      throw new BatonError("VALIDATION_FAILED", `invalid ${source}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out as unknown as BatonConfig;
}
