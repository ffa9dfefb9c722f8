/**
 * @module cli
 * `baton start | token | publish | tail | topics | groups | slots | effects`. Errors print
 * `error CODE: message` on stderr and exit 1; usage errors exit 2.
 */
import { Command, CommanderError, Option } from "commander";
import { loadConfig } from "../config/config.ts";
import { resolveSecret } from "../config/secret.ts";
import { mintToken } from "../edge/auth/tokens.ts";
import { isBatonError } from "../errors/baton-error.ts";
import { startBaton } from "../main.ts";
import { CliError, connectClient, type ClientOptions } from "./client.ts";
import { registerGroupCommands } from "./groups.ts";
import { clientOptions, durationArg } from "./options.ts";

const program = new Command("baton")
  .description("Baton: durable, ordered realtime event streams for multi-tenant apps")
  .version("0.1.0")
  .showHelpAfterError()
  .exitOverride();

program
  .command("start")
  .description("serve the HTTP API and the WebSocket endpoint on one port")
  .option("-p, --port <port>", "port (env BATON_PORT, default 7700)")
  .option("--host <host>", "interface (env BATON_HOST, default 0.0.0.0)")
  .option("-d, --data-dir <dir>", "embedded engine directory (env BATON_DATA_DIR, default ./data)")
  .option("--engine <engine>", "embedded or nats://host:port (env BATON_ENGINE, default embedded)")
  .option("--jwt-secret <secret>", "HS256 token secret (env BATON_JWT_SECRET; default: generated into the data dir)")
  .option("--jwks-url <url>", "JWKS whose keys also verify tokens (env BATON_JWKS_URL)")
  .action(async (o: { port?: string; host?: string; dataDir?: string; engine?: string; jwtSecret?: string; jwksUrl?: string }) => {
    const config = loadConfig(o);
    const baton = await startBaton(config);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      baton.logger.info({ signal }, "shutting down gracefully");
      baton.close().then(
        () => process.exit(0),
        (err: unknown) => {
          baton.logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

const token = program.command("token").description("development tokens");
token
  .command("create")
  .description("print a signed JWT on stdout, using the server's secret")
  .requiredOption("--tenant <tenant>", "tenant claim")
  .requiredOption("--sub <subject>", "subject claim (user or service id)")
  .option("--publish <pattern...>", "topic patterns it may publish to (* one token, > the rest)")
  .option("--subscribe <pattern...>", "topic patterns it may read / subscribe to")
  .option("--channel <topic...>", "topics every socket of this token is subscribed to at connect")
  .option("--coordinate <pattern...>", "slot resources and effect keys it may use (same wildcards)")
  .option("--admin", "may administer topics and groups, and use every slot and effect", false)
  .addOption(new Option("--ttl <duration>", "lifetime, e.g. 15m, 24h; 0 = no expiry").argParser(durationArg).default(3_600_000, "1h"))
  .option("-d, --data-dir <dir>", "data dir holding the generated secret (env BATON_DATA_DIR)")
  .option("--jwt-secret <secret>", "HS256 secret (env BATON_JWT_SECRET)")
  .action(async (o: { tenant: string; sub: string; publish?: string[]; subscribe?: string[]; channel?: string[]; coordinate?: string[]; admin: boolean; ttl: number; dataDir?: string; jwtSecret?: string }) => {
    const config = loadConfig({ dataDir: o.dataDir, jwtSecret: o.jwtSecret });
    const { secret, generated } = resolveSecret(config);
    if (generated) process.stderr.write(`generated a development secret in ${secret.file}\n`);
    let jwt: string;
    try {
      jwt = await mintToken(secret.value, { tenant: o.tenant, sub: o.sub, publish: o.publish ?? [], subscribe: o.subscribe ?? [], channels: o.channel ?? [], coordinate: o.coordinate ?? [], admin: o.admin }, o.ttl);
    } catch (err) {
      // A claim the flags made invalid is a usage error (exit 2), as other bad flags are.
      if (!isBatonError(err) || err.code !== "TOKEN_INVALID") throw err;
      const flag = (claim: string): string => `--${claim === "channels" ? "channel" : claim}`;
      process.stderr.write(`error VALIDATION_FAILED: ${err.message.replace(/^claim "([a-z]+)"/, (_, c: string) => flag(c))}\n`);
      process.exit(2);
    }
    process.stdout.write(`${jwt}\n`);
  });

clientOptions(
  program
    .command("publish <topic> [data]")
    .description("publish one event (data is JSON; read from stdin when omitted)")
    .option("-k, --key <key>", "ordering key")
    .option("-t, --type <type>", "event type")
    .option("-i, --idempotency-key <key>", "idempotency key")
    .option("--ttl <duration>", "time to live, e.g. 30s", durationArg),
).action(async (topic: string, data: string | undefined, o: ClientOptions & { key?: string; type?: string; idempotencyKey?: string; ttl?: number }) => {
  const raw = data ?? (await readStdin());
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new CliError("INVALID_JSON", `data is not valid JSON: ${(err as Error).message}`);
  }
  const client = await connectClient(o);
  const body = {
    data: parsed,
    ...(o.key === undefined ? {} : { key: o.key }),
    ...(o.type === undefined ? {} : { type: o.type }),
    ...(o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey }),
    ...(o.ttl === undefined ? {} : { ttlMs: o.ttl }),
  };
  const result = await client.request("POST", `/v1/topics/${encodeURIComponent(topic)}/events`, body);
  process.stdout.write(`${JSON.stringify(result)}\n`);
});

clientOptions(
  program
    .command("tail <topic>")
    .description("print a topic's events as JSON lines, then follow new ones")
    .option("--from <seq>", "start at this sequence (default: only new events)")
    .option("--since <time>", "start at this ISO-8601 time")
    .option("--no-follow", "stop after the stored events"),
).action(async (topic: string, o: ClientOptions & { from?: string; since?: string; follow: boolean }) => {
  const client = await connectClient(o);
  const base = `/v1/topics/${encodeURIComponent(topic)}/events`;
  let position: string;
  if (o.since !== undefined) position = `since=${encodeURIComponent(o.since)}`;
  else if (o.from !== undefined) position = `from=${encodeURIComponent(o.from)}`;
  else {
    const info = (await client.request("GET", `/v1/topics/${encodeURIComponent(topic)}`)) as { lastSeq: number };
    position = `from=${info.lastSeq + 1}`;
  }
  for (;;) {
    const page = (await client.request("GET", `${base}?${position}&limit=500${o.follow ? "&wait=30000" : ""}`)) as { events: unknown[]; next: number; lastSeq: number };
    for (const e of page.events) process.stdout.write(`${JSON.stringify(e)}\n`);
    position = `from=${page.next}`;
    if (!o.follow && page.next > page.lastSeq) return;
  }
});

const topics = program.command("topics").description("list, create, describe and delete topics");
clientOptions(topics.command("list").description("list topics").option("--prefix <prefix>", "only names with this prefix")).action(
  async (o: ClientOptions & { prefix?: string }) => {
    const client = await connectClient(o);
    let after: string | undefined;
    do {
      const qs = new URLSearchParams({ limit: "1000", ...(o.prefix === undefined ? {} : { prefix: o.prefix }), ...(after === undefined ? {} : { after }) });
      const page = (await client.request("GET", `/v1/topics?${qs}`)) as { topics: { name: string }[]; next?: string };
      for (const t of page.topics) process.stdout.write(`${JSON.stringify(t)}\n`);
      after = page.next;
    } while (after !== undefined);
  },
);
clientOptions(
  topics
    .command("create <name>")
    .description("create a topic")
    .option("--max-age <duration>", "retention: maximum age, e.g. 7d (0 = unlimited)")
    .option("--max-events <n>", "retention: maximum events (0 = unlimited)")
    .option("--max-bytes <size>", "retention: maximum bytes, e.g. 1GiB (0 = unlimited)"),
).action(async (name: string, o: ClientOptions & { maxAge?: string; maxEvents?: string; maxBytes?: string }) => {
  const client = await connectClient(o);
  const retention = {
    ...(o.maxAge === undefined ? {} : { maxAge: o.maxAge }),
    ...(o.maxEvents === undefined ? {} : { maxEvents: Number(o.maxEvents) }),
    ...(o.maxBytes === undefined ? {} : { maxBytes: o.maxBytes }),
  };
  const body = { name, ...(Object.keys(retention).length === 0 ? {} : { retention }) };
  process.stdout.write(`${JSON.stringify(await client.request("POST", "/v1/topics", body))}\n`);
});
clientOptions(topics.command("describe <name>").description("show a topic")).action(async (name: string, o: ClientOptions) => {
  const client = await connectClient(o);
  process.stdout.write(`${JSON.stringify(await client.request("GET", `/v1/topics/${encodeURIComponent(name)}`))}\n`);
});
clientOptions(topics.command("delete <name>").description("delete a topic and its history")).action(async (name: string, o: ClientOptions) => {
  const client = await connectClient(o);
  await client.request("DELETE", `/v1/topics/${encodeURIComponent(name)}`);
  process.stderr.write(`deleted ${name}\n`);
});

registerGroupCommands(program);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const code = err instanceof CliError || isBatonError(err) ? err.code : "INTERNAL";
  process.stderr.write(`error ${code}: ${(err as Error).message}\n`);
  process.exit(1);
}
