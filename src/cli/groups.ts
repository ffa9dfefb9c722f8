/**
 * @module cli/groups
 * `baton groups ...` (consumer groups and their dead letters), `baton slots list` and
 * `baton effects get`, over the HTTP API (`/v1/groups`, `/v1/slots`, `/v1/effects`).
 * Machine-facing output is one JSON value per line; `groups describe` is for people unless
 * `--json` is given.
 */
import type { Command } from "commander";
import { CliError, connectClient, type ClientOptions } from "./client.ts";
import { clientOptions, durationArg, integerArg, numberArg, positiveArg, startArg, type StartJson } from "./options.ts";

/** The server's page size limit for dead letters. */
const DLQ_PAGE = 1000;

const groupPath = (name: string): string => `/v1/groups/${encodeURIComponent(name)}`;

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function registerGroupCommands(program: Command): void {
  const groups = program.command("groups").alias("group").description("consumer groups: create, inspect, pull, and their dead letters");

  clientOptions(
    groups
      .command("create <name>")
      .alias("add")
      .description("create a consumer group reading a topic or pattern (prints the group as JSON)")
      .requiredOption("--topic <topic>", "topic name or pattern (orders.*, jobs.>) the group reads")
      .option("--start <position>", "where to begin: beginning | now | seq:<n> | time:<ISO-8601> (default beginning)", startArg)
      .option("--ack-wait <duration>", "lease of a delivery before it goes to another member (default 30s)", durationArg)
      .option("--max-attempts <n>", "deliveries before an event is dead-lettered (default 5)", integerArg)
      .option("--backoff-initial <duration>", "delay before the first retry (default 1s)", durationArg)
      .option("--backoff-max <duration>", "longest retry delay (default 5m)", durationArg)
      .option("--backoff-multiplier <x>", "retry delay growth per attempt (default 2)", numberArg)
      .option("--ordered-by-key", "at most one event per key in flight (keys run in parallel)")
      .option("--redrive-rate <n>", "redriven dead letters re-enter at most this many per second (default 50)", integerArg)
      .option("--max-pending <n>", "events read ahead and not yet done (default 100000)", integerArg),
  ).action(
    async (
      name: string,
      o: ClientOptions & { topic: string; start?: StartJson; ackWait?: number; maxAttempts?: number; backoffInitial?: number; backoffMax?: number; backoffMultiplier?: number; orderedByKey?: boolean; redriveRate?: number; maxPending?: number },
    ) => {
      const backoff = {
        ...(o.backoffInitial === undefined ? {} : { initial: o.backoffInitial }),
        ...(o.backoffMax === undefined ? {} : { max: o.backoffMax }),
        ...(o.backoffMultiplier === undefined ? {} : { multiplier: o.backoffMultiplier }),
      };
      const body = {
        name,
        topic: o.topic,
        ...(o.start === undefined ? {} : { start: o.start }),
        ...(o.ackWait === undefined ? {} : { ackWait: o.ackWait }),
        ...(o.maxAttempts === undefined ? {} : { maxAttempts: o.maxAttempts }),
        ...(Object.keys(backoff).length === 0 ? {} : { backoff }),
        ...(o.orderedByKey === true ? { orderedByKey: true } : {}),
        ...(o.redriveRate === undefined ? {} : { redriveRate: o.redriveRate }),
        ...(o.maxPending === undefined ? {} : { maxPending: o.maxPending }),
      };
      const client = await connectClient(o);
      printJson(await client.request("POST", "/v1/groups", body));
    },
  );

  clientOptions(groups.command("list").alias("ls").description("list consumer groups (JSON lines)")).action(async (o: ClientOptions) => {
    const client = await connectClient(o);
    // Every page, in name order.
    let after: string | undefined;
    do {
      const answer = (await client.request("GET", `/v1/groups?limit=1000${after === undefined ? "" : `&after=${encodeURIComponent(after)}`}`)) as { groups: unknown[]; next?: string };
      for (const g of answer.groups) printJson(g);
      after = answer.next;
    } while (after !== undefined);
  });

  clientOptions(
    groups
      .command("describe <name>")
      .alias("info")
      .description("show a group's state: lag, pending, in flight, members, why it is stalled, per-topic progress")
      .option("--json", "print the server's JSON instead of a summary"),
  ).action(async (name: string, o: ClientOptions & { json?: boolean }) => {
    const client = await connectClient(o);
    const info = await client.request("GET", groupPath(name));
    if (o.json === true) printJson(info);
    else process.stdout.write(describeText(info as GroupInfo));
  });

  clientOptions(groups.command("delete <name>").alias("rm").description("delete a group, its progress and its dead letters")).action(async (name: string, o: ClientOptions) => {
    const client = await connectClient(o);
    await client.request("DELETE", groupPath(name));
    process.stderr.write(`deleted group ${name}\n`);
  });

  clientOptions(
    groups
      .command("reset <name>")
      .description("move a group to a new start position, dropping what is pending or in flight (prints the group as JSON)")
      .requiredOption("--start <position>", "beginning | now | seq:<n> | time:<ISO-8601>", startArg),
  ).action(async (name: string, o: ClientOptions & { start: StartJson }) => {
    const client = await connectClient(o);
    printJson(await client.request("POST", `${groupPath(name)}/reset`, { start: o.start }));
  });

  clientOptions(
    groups
      .command("pull <group>")
      .alias("next")
      .description("take deliveries as a pull member and print them as JSON lines (not acked unless --ack)")
      .requiredOption("--consumer <name>", "member name; deliveries held by it count against its in-flight limit")
      .option("--max <n>", "at most this many deliveries (default 10, max 1000)", positiveArg)
      .option("--wait <duration>", "wait up to this long for a first delivery (default: answer at once)", durationArg)
      .option("--ack", "acknowledge the deliveries after printing them"),
  ).action(async (group: string, o: ClientOptions & { consumer: string; max?: number; wait?: number; ack?: boolean }) => {
    const client = await connectClient(o);
    const body = { consumer: o.consumer, ...(o.max === undefined ? {} : { max: o.max }), ...(o.wait === undefined ? {} : { wait: o.wait }) };
    const { deliveries } = (await client.request("POST", `${groupPath(group)}/pull`, body)) as { deliveries: { token: string }[] };
    for (const d of deliveries) printJson(d);
    if (o.ack !== true || deliveries.length === 0) return;
    const { results } = (await client.request("POST", `${groupPath(group)}/ack`, { tokens: deliveries.map((d) => d.token) })) as {
      results: { token: string; ok: boolean; error?: { code: string; message: string } }[];
    };
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) {
      const first = failed[0]!.error ?? { code: "INTERNAL", message: "ack failed" };
      throw new CliError(first.code, `${failed.length} of ${results.length} acks failed; first: ${first.message}`);
    }
  });

  const dlq = groups.command("dlq").alias("dead-letters").description("a group's dead letters: list, show, redrive, purge");

  clientOptions(
    dlq
      .command("list <group>")
      .alias("ls")
      .description("print dead letters as JSON lines, oldest first")
      .option("--from <seq>", "first dead-letter sequence (default 1)", positiveArg)
      .option("--limit <n>", "at most this many (default: all)", positiveArg),
  ).action(async (group: string, o: ClientOptions & { from?: number; limit?: number }) => {
    const client = await connectClient(o);
    let from = o.from ?? 1;
    let remaining = o.limit ?? Number.POSITIVE_INFINITY;
    while (remaining > 0) {
      const qs = new URLSearchParams({ from: String(from), limit: String(Math.min(remaining, DLQ_PAGE)) });
      const page = (await client.request("GET", `${groupPath(group)}/dead-letters?${qs}`)) as { deadLetters: unknown[]; next: number; lastSeq?: number };
      for (const letter of page.deadLetters) printJson(letter);
      remaining -= page.deadLetters.length;
      if (page.deadLetters.length === 0 || page.lastSeq === undefined || page.next > page.lastSeq) return;
      from = page.next;
    }
  });

  clientOptions(
    dlq
      .command("show")
      .description("print one dead letter as JSON: the event, where it came from, its failures")
      .argument("<group>", "consumer group")
      .argument("<seq>", "dead-letter sequence (`seq` in dlq list)", positiveArg),
  ).action(async (group: string, seq: number, o: ClientOptions) => {
    const client = await connectClient(o);
    printJson(await client.request("GET", `${groupPath(group)}/dead-letters/${seq}`));
  });

  clientOptions(
    dlq
      .command("redrive <group>")
      .description("send dead letters back to the group (idempotent per letter); prints {redriven, alreadyRedriven, next}")
      .option("--from <seq>", "first dead-letter sequence (default 1)", positiveArg)
      .option("--to <seq>", "last dead-letter sequence (default: the last)", positiveArg)
      .option("--type <type>", "only letters of this event type")
      .option("--key <key>", "only letters with this key")
      .option("--limit <n>", "at most this many letters (default 1000, max 10000)", positiveArg),
  ).action(async (group: string, o: ClientOptions & { from?: number; to?: number; type?: string; key?: string; limit?: number }) => {
    const client = await connectClient(o);
    const body = {
      ...(o.from === undefined ? {} : { from: o.from }),
      ...(o.to === undefined ? {} : { to: o.to }),
      ...(o.type === undefined ? {} : { type: o.type }),
      ...(o.key === undefined ? {} : { key: o.key }),
      ...(o.limit === undefined ? {} : { limit: o.limit }),
    };
    printJson(await client.request("POST", `${groupPath(group)}/dead-letters/redrive`, body));
  });

  clientOptions(
    dlq
      .command("purge <group>")
      .description("delete every dead letter of the group; prints {purged}")
      .option("--yes", "confirm: the letters cannot be recovered"),
  ).action(async (group: string, o: ClientOptions & { yes?: boolean }, cmd: Command) => {
    if (o.yes !== true) cmd.error(`error: purging deletes every dead letter of ${group} for good; add --yes to confirm`, { exitCode: 2, code: "baton.confirm" });
    const client = await connectClient(o);
    printJson(await client.request("DELETE", `${groupPath(group)}/dead-letters`));
  });

  const slots = program.command("slots").alias("slot").description("reservations (compute slots)");
  clientOptions(slots.command("list <resource>").alias("ls").description("print the held slots of a resource as JSON lines")).action(async (resource: string, o: ClientOptions) => {
    const client = await connectClient(o);
    const answer = (await client.request("GET", `/v1/slots/${encodeURIComponent(resource)}`)) as { held: unknown[] };
    for (const h of answer.held) printJson(h);
  });

  const effects = program.command("effects").alias("effect").description("idempotent effects");
  clientOptions(effects.command("get <key>").description("print an effect's state (running, or done with its outcome) as JSON")).action(async (key: string, o: ClientOptions) => {
    const client = await connectClient(o);
    printJson(await client.request("GET", `/v1/effects/${encodeURIComponent(key)}`));
  });
}

// ---- describe ------------------------------------------------------------------------------

interface GroupInfo {
  name: string;
  topic: string;
  start: StartJson;
  ackWaitMs: number;
  maxAttempts: number;
  backoff: { initialMs: number; maxMs: number; multiplier: number };
  orderedByKey: boolean;
  redriveRatePerS: number;
  maxPending: number;
  deadLetterTopic: string;
  createdAt: string;
  lag: number;
  pending: number;
  ready: number;
  inFlight: number;
  delayed: number;
  waitingOnKey: number;
  blockedKeys: number;
  counters: Record<string, number>;
  members: { id: string; kind: string; inFlight: number; maxInFlight: number }[];
  partitions: { topic: string; floor: number; cursor: number; pending: number; inFlight: number; delayed: number }[];
  stalled: { code: string; message: string }[];
}

/** The server answers at most this many partitions in a describe. */
const PARTITIONS_SHOWN = 100;

function ms(n: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return `${n}ms`;
}

function startText(start: StartJson): string {
  if (typeof start === "string") return start;
  return "seq" in start ? `seq:${start.seq}` : `time:${start.time}`;
}

function table(rows: string[][], indent = "  "): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `${indent}${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")}`.trimEnd()).join("\n") + "\n";
}

const camelWords = (k: string): string => k.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);

export function describeText(g: GroupInfo): string {
  const width = "Ordered by key:  ".length;
  const field = (label: string, values: string[]): string => values.map((v, i) => `${(i === 0 ? `${label}:` : "").padEnd(width)}${v}\n`).join("");
  let out = [
    field("Group", [g.name]),
    field("Topic", [`${g.topic} (start ${startText(g.start)}, created ${g.createdAt})`]),
    field("Ack wait", [ms(g.ackWaitMs)]),
    field("Retries", [`max attempts ${g.maxAttempts}, backoff ${ms(g.backoff.initialMs)} to ${ms(g.backoff.maxMs)} x${g.backoff.multiplier}`]),
    field("Ordered by key", [g.orderedByKey ? "yes" : "no"]),
    field("Max pending", [String(g.maxPending)]),
    field("Dead letters", [`${g.deadLetterTopic} (redrive ${g.redriveRatePerS}/s)`]),
    field("Lag", [`${g.lag} (events not yet read)`]),
    field("Pending", [`${g.pending} (ready ${g.ready}, in flight ${g.inFlight}, delayed ${g.delayed}, waiting on key ${g.waitingOnKey}, blocked keys ${g.blockedKeys})`]),
    field("Counters", [Object.entries(g.counters).map(([k, v]) => `${camelWords(k)} ${v}`).join(", ")]),
    field("Stalled", g.stalled.length === 0 ? ["no"] : g.stalled.map((r) => `${r.code}: ${r.message}`)),
  ].join("");
  out += g.members.length === 0 ? field("Members", ["none"]) : `Members:\n${table([["ID", "KIND", "IN FLIGHT"], ...g.members.map((m) => [m.id, m.kind, `${m.inFlight}/${m.maxInFlight}`])])}`;
  if (g.partitions.length === 0) out += field("Partitions", ["none yet"]);
  else {
    const more = g.partitions.length >= PARTITIONS_SHOWN ? ` (first ${PARTITIONS_SHOWN})` : "";
    const rows = g.partitions.map((p) => [p.topic, String(p.floor), String(p.cursor), String(p.pending), String(p.inFlight), String(p.delayed)]);
    out += `Partitions${more}:\n${table([["TOPIC", "FLOOR", "CURSOR", "PENDING", "IN FLIGHT", "DELAYED"], ...rows])}`;
  }
  return out;
}
