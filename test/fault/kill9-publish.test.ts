/**
 * Fault test: a real Baton process under concurrent publish load is killed with SIGKILL at random
 * moments, several times, on the same data dir. After each restart:
 *
 * - every acknowledged event is readable with the id, sequence and payload it was acknowledged with;
 * - every topic holds exactly the sequences 1..lastSeq (no gap, no repeat) and keeps its epoch;
 * - every stored event was published by this test, on the topic it was published to;
 * - a batch that was in flight at the kill was stored all or nothing;
 * - every publish that was in flight (or failed) at the kill, retried with the same idempotency
 *   key, succeeds: as `duplicate` with the id and sequence already stored when it had committed
 *   before the kill, as a new event otherwise, and each key ends up stored exactly once;
 * - retrying an acknowledged publish answers `duplicate` with the original id and sequence and
 *   does not grow the topic.
 *
 * The scenario runs once in `before` and records violations per guarantee; each test asserts one
 * guarantee. Choices (topics, request shapes, kill delays) come from a seeded generator: the seed
 * is in every failure message and can be replayed with BATON_FAULT_SEED (kill timing itself stays
 * nondeterministic).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { api, startBaton, token, type BatonProcess } from "../support/start-baton.ts";

const ROUNDS = 5;
const TOPICS = Array.from({ length: 8 }, (_, i) => `fault.kill9.t${i}`);
const PUBLISHERS = 32;
const KILL_AFTER_MS = [150, 900] as const;
const MAX_BATCH = 5;
const RETRY_CONCURRENCY = 16;
const ACK_RETRIES_LATEST = 16;
const ACK_RETRIES_EARLIER = 8;
const SEED = process.env["BATON_FAULT_SEED"] === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env["BATON_FAULT_SEED"]);

type Form = "header" | "body" | "batch";

/** The `data` of every event: it names its own idempotency key. */
interface Payload {
  readonly key: string;
  readonly round: number;
  readonly pad: string;
}

/** One publish request: a single event (key in the header or in the body) or a batch. */
interface Publish {
  readonly round: number;
  readonly topic: string;
  readonly form: Form;
  readonly events: readonly Payload[];
  /** Why it is pending: the network error or the HTTP answer seen at kill time. */
  reason?: string;
}

interface Placed {
  readonly topic: string;
  readonly id: string;
  readonly seq: number;
  /** How the client learned it: the publish was acknowledged, or a retry after a kill answered. */
  readonly how?: "ack" | "retry";
}

interface Result extends Placed {
  readonly duplicate: boolean;
}

interface StoredEvent {
  readonly id: string;
  readonly seq: number;
  readonly data: unknown;
}

interface TopicLog {
  readonly events: StoredEvent[];
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly epoch: string;
}

interface RoundStats {
  round: number;
  killAfterMs: number;
  requests: number;
  ackedEvents: number;
  pendingRequests: number;
  pendingEvents: number;
  /** Pending events found stored after the restart (committed, acknowledgement lost). */
  committedUnacked: number;
  ackRetries: number;
}

const GUARANTEES = ["acked", "gapless", "phantom", "allOrNothing", "retryOnce", "ackRetry", "load"] as const;
type Guarantee = (typeof GUARANTEES)[number];

/** mulberry32: small, seedable, good enough to pick shapes and delays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(text: string, chars: number): string {
  return text.length <= chars ? text : `…${text.slice(-chars)}`;
}

function describeError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause === undefined ? String(e.message ?? e) : `${e.message}: ${e.cause.code ?? e.cause.message ?? String(e.cause)}`;
}

/** Runs `fn` over `items` with at most `limit` calls at once. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function pick<T>(items: readonly T[], n: number, random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

function send(url: string, jwt: string, p: Publish): ReturnType<typeof api> {
  const path = `/v1/topics/${p.topic}/events`;
  if (p.form === "batch") return api(url, jwt, "POST", path, { events: p.events.map((data) => ({ data, idempotencyKey: data.key })) });
  const only = p.events[0]!;
  if (p.form === "header") return api(url, jwt, "POST", path, { data: only }, { "idempotency-key": only.key });
  return api(url, jwt, "POST", path, { data: only, idempotencyKey: only.key });
}

/** One result per event of `p`, or why the answer is not a successful publish answer. */
function parseAnswer(p: Publish, res: { status: number; body: any }): Result[] | string {
  const shown = `HTTP ${res.status} ${JSON.stringify(res.body)}`;
  const one = (r: any): Result | undefined =>
    r !== null && typeof r === "object" && typeof r.id === "string" && Number.isSafeInteger(r.seq) && r.seq >= 1
      ? { topic: p.topic, id: r.id as string, seq: r.seq as number, duplicate: r.duplicate === true }
      : undefined;
  if (p.form === "batch") {
    const list: unknown = res.body?.events;
    if (res.status !== 201 || !Array.isArray(list) || list.length !== p.events.length) return shown;
    const out = list.map(one);
    return out.every((r) => r !== undefined) ? (out as Result[]) : shown;
  }
  if (res.status !== 200 && res.status !== 201) return shown;
  const r = one(res.body);
  if (r === undefined) return shown;
  if (r.duplicate !== (res.status === 200)) return `status and duplicate flag disagree: ${shown}`;
  return [r];
}

async function readTopic(url: string, jwt: string, topic: string): Promise<TopicLog | undefined> {
  const events: StoredEvent[] = [];
  let from = 1;
  for (;;) {
    const res = await api(url, jwt, "GET", `/v1/topics/${topic}/events?from=${from}&limit=1000`);
    if (res.status === 404 && from === 1) return undefined;
    if (res.status !== 200) throw new Error(`reading ${topic} from ${from}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    const page = res.body as { events: StoredEvent[]; next: number; firstSeq: number; lastSeq: number; epoch: string };
    events.push(...page.events);
    if (page.events.length === 0 || page.next > page.lastSeq) return { events, firstSeq: page.firstSeq, lastSeq: page.lastSeq, epoch: page.epoch };
    from = page.next;
  }
}

describe(`Baton killed with SIGKILL under concurrent publish load, ${ROUNDS} times on one data dir`, () => {
  const random = prng(SEED);
  const dataDir = mkdtempSync(join(tmpdir(), "baton-kill9-"));
  const procs: BatonProcess[] = [];
  let proc: BatonProcess | undefined;
  let jwt = "";

  /** Every event ever sent, by idempotency key. */
  const sent = new Map<string, { topic: string; payload: Payload }>();
  /** Where each key is known to be stored: from an acknowledgement or a successful retry. */
  const placed = new Map<string, Placed>();
  /** Acknowledged requests, by round, to retry a sample of. */
  const acked: Publish[][] = [];
  /** Requests in flight or failed at the last kill, to retry after the restart. */
  let pending: Publish[] = [];
  const epochs = new Map<string, string>();
  const stats: RoundStats[] = [];
  const violations = Object.fromEntries(GUARANTEES.map((g) => [g, [] as string[]])) as Record<Guarantee, string[]>;

  function violate(g: Guarantee, message: string): void {
    violations[g].push(message);
  }

  function outputs(): string {
    return procs.map((p, i) => `--- baton process ${i + 1} (pid ${p.child.pid}) ---\n${tail(p.output(), 3000) || "(no output)"}`).join("\n");
  }

  function summary(): string {
    return stats
      .map(
        (s) =>
          `round ${s.round}: SIGKILL after ${s.killAfterMs} ms, ${s.requests} requests, ${s.ackedEvents} events acknowledged, ` +
          `${s.pendingRequests} requests (${s.pendingEvents} events) in flight or failed, ${s.committedUnacked} of those committed before the kill, ` +
          `${s.ackRetries} acknowledged requests retried`,
      )
      .join("\n");
  }

  /** Fails with the first violations, the per-round summary and the servers' output. */
  function expectNone(g: Guarantee): void {
    const list = violations[g];
    if (list.length === 0) return;
    const shown = list.slice(0, 20).join("\n");
    const more = list.length > 20 ? `\n… and ${list.length - 20} more` : "";
    assert.fail(`${list.length} violation(s) (seed ${SEED}, BATON_FAULT_SEED=${SEED} replays the choices):\n${shown}${more}\n\n${summary()}\n\n${outputs()}`);
  }

  /** Runs the load against the current process and SIGKILLs it after a random delay. */
  async function loadAndKill(round: number): Promise<void> {
    const p = proc!;
    const killAfterMs = Math.round(KILL_AFTER_MS[0] + random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]));
    const roundStats: RoundStats = { round, killAfterMs, requests: 0, ackedEvents: 0, pendingRequests: 0, pendingEvents: 0, committedUnacked: 0, ackRetries: 0 };
    stats.push(roundStats);
    const roundAcked: Publish[] = [];
    acked.push(roundAcked);
    let killing = false;
    let firstAck!: () => void;
    const acknowledged = new Promise<void>((r) => (firstAck = r));
    // The shapes are drawn up front so the seed alone decides them, whatever the interleaving.
    const plans = Array.from({ length: PUBLISHERS }, () => Array.from({ length: 400 }, () => [random(), random(), random(), random()] as const));

    const publisher = async (loop: number): Promise<void> => {
      for (let n = 0; !killing; n++) {
        const [rTopic, rForm, rSize, rPad] = plans[loop]![n % 400]!;
        const topic = TOPICS[Math.floor(rTopic * TOPICS.length)]!;
        const form: Form = rForm < 0.4 ? "header" : rForm < 0.7 ? "body" : "batch";
        const size = form === "batch" ? 2 + Math.floor(rSize * (MAX_BATCH - 1)) : 1;
        const events = Array.from({ length: size }, (_, i): Payload => ({
          key: `r${round}-p${loop}-n${n}-e${i}`,
          round,
          pad: "x".repeat(Math.floor(rPad * 200)),
        }));
        for (const e of events) sent.set(e.key, { topic, payload: e });
        const req: Publish = { round, topic, form, events };
        roundStats.requests++;
        let res: Awaited<ReturnType<typeof api>>;
        try {
          res = await send(p.url, jwt, req);
        } catch (err) {
          req.reason = describeError(err);
          pending.push(req);
          return; // the server is gone
        }
        const results = parseAnswer(req, res);
        if (typeof results === "string" || results.some((r) => r.duplicate)) {
          if (res.status >= 500) {
            req.reason = `answered ${typeof results === "string" ? results : "duplicate"}`;
            pending.push(req);
            continue;
          }
          violate("load", `round ${round}: a fresh publish to ${topic} (${form}, keys ${events.map((e) => e.key).join(", ")}) was answered ${typeof results === "string" ? results : `as duplicate: ${JSON.stringify(res.body)}`}`);
          pending.push({ ...req, reason: "unexpected answer" });
          return;
        }
        events.forEach((e, i) => {
          const r = results[i]!;
          placed.set(e.key, { topic: r.topic, id: r.id, seq: r.seq, how: "ack" });
        });
        roundStats.ackedEvents += events.length;
        roundAcked.push(req);
        firstAck();
      }
    };

    const loops = Array.from({ length: PUBLISHERS }, (_, i) => publisher(i));
    const delay = sleep(killAfterMs);
    let noAckTimer: NodeJS.Timeout | undefined;
    const noAck = new Promise<"timeout">((r) => (noAckTimer = setTimeout(() => r("timeout"), 20_000)));
    const first = await Promise.race([acknowledged, noAck]);
    clearTimeout(noAckTimer);
    if (first === "timeout") {
      killing = true;
      await p.kill9();
      await Promise.all(loops);
      throw new Error(`round ${round}: no publish was acknowledged within 20 s`);
    }
    await delay;
    killing = true;
    await p.kill9();
    await Promise.all(loops);
    roundStats.pendingRequests = pending.length;
    roundStats.pendingEvents = pending.reduce((n, r) => n + r.events.length, 0);
  }

  /** Reads every topic and checks it against everything known; returns the logs by topic. */
  async function checkLogs(round: number, phase: string, ackRetried: ReadonlySet<string>): Promise<Map<string, Map<string, StoredEvent>>> {
    const byTopic = new Map<string, Map<string, StoredEvent>>();
    const expected = new Map<string, number>();
    for (const [, where] of placed) expected.set(where.topic, (expected.get(where.topic) ?? 0) + 1);
    for (const topic of TOPICS) {
      const log = await readTopic(proc!.url, jwt, topic);
      const byKey = new Map<string, StoredEvent>();
      byTopic.set(topic, byKey);
      const at = `round ${round} ${phase}, topic ${topic}`;
      if (log === undefined) {
        if (epochs.has(topic) || (expected.get(topic) ?? 0) > 0) violate("acked", `${at}: the topic is gone (404) but holds acknowledged events`);
        continue;
      }
      const known = epochs.get(topic);
      if (known === undefined) epochs.set(topic, log.epoch);
      else if (known !== log.epoch) violate("gapless", `${at}: epoch changed from ${known} to ${log.epoch}`);
      const seqs = log.events.map((e) => e.seq);
      const contiguous = log.firstSeq === 1 && seqs.length === log.lastSeq && seqs.every((s, i) => s === i + 1);
      if (!contiguous) {
        const firstBad = seqs.findIndex((s, i) => s !== i + 1);
        violate(
          "gapless",
          `${at}: expected sequences 1..${log.lastSeq} once each, got ${seqs.length} events (firstSeq ${log.firstSeq}); ` +
            `first mismatch at position ${firstBad + 1}: seq ${String(seqs[firstBad])} (around: ${JSON.stringify(seqs.slice(Math.max(0, firstBad - 3), firstBad + 3))})`,
        );
      }
      for (const e of log.events) {
        const key = (e.data as { key?: unknown } | null)?.key;
        const origin = typeof key === "string" ? sent.get(key) : undefined;
        if (typeof key !== "string" || origin === undefined) {
          violate("phantom", `${at}: seq ${e.seq} (${e.id}) was never published by a client: data ${JSON.stringify(e.data)}`);
          continue;
        }
        if (origin.topic !== topic) violate("phantom", `${at}: seq ${e.seq} holds key ${key}, published to ${origin.topic}`);
        if (!isDeepStrictEqual(e.data, origin.payload)) violate("acked", `${at}: seq ${e.seq} (key ${key}) has data ${JSON.stringify(e.data)}, published ${JSON.stringify(origin.payload)}`);
        const twice = byKey.get(key);
        if (twice !== undefined) {
          violate(ackRetried.has(key) ? "ackRetry" : "retryOnce", `${at}: idempotency key ${key} is stored twice, at seq ${twice.seq} (${twice.id}) and seq ${e.seq} (${e.id})`);
          continue;
        }
        byKey.set(key, e);
      }
    }
    for (const [key, where] of placed) {
      const e = byTopic.get(where.topic)?.get(key);
      const told = where.how === "retry" ? "answered to a retry" : "acknowledged";
      if (e === undefined) violate("acked", `round ${round} ${phase}: key ${key}, ${told} as ${where.topic} seq ${where.seq} (${where.id}), is missing`);
      else if (e.id !== where.id || e.seq !== where.seq) {
        violate("acked", `round ${round} ${phase}: key ${key} was ${told} as ${where.topic} seq ${where.seq} (${where.id}) but is stored at seq ${e.seq} (${e.id})`);
      }
    }
    return byTopic;
  }

  /** Sends `req` again, as a client would after a lost answer: a few tries on 503. */
  async function resend(req: Publish): Promise<{ status: number; body: any }> {
    for (let attempt = 1; ; attempt++) {
      const res = await send(proc!.url, jwt, req);
      if (res.status !== 503 || attempt === 3) return res;
      await sleep(200);
    }
  }

  /** After a restart: check everything, retry the pending publishes and a sample of acked ones. */
  async function verifyAndRetry(round: number): Promise<void> {
    const roundStats = stats[round - 1]!;
    const logs = await checkLogs(round, "after restart", new Set());

    // Pending publishes: some committed before the kill (their answer was lost), some did not.
    const retries = pending;
    pending = [];
    const expected = new Map<Publish, (StoredEvent | undefined)[]>();
    for (const req of retries) {
      const stored = req.events.map((e) => logs.get(req.topic)?.get(e.key));
      expected.set(req, stored);
      const count = stored.filter((s) => s !== undefined).length;
      roundStats.committedUnacked += count;
      if (req.form === "batch" && count !== 0 && count !== req.events.length) {
        violate("allOrNothing", `round ${round}: batch to ${req.topic} in flight at SIGKILL (${req.reason}) has ${count} of ${req.events.length} events stored: ${req.events.map((e, i) => `${e.key}=${stored[i] ? `seq ${stored[i].seq}` : "missing"}`).join(", ")}`);
      }
    }
    await eachLimited(retries, RETRY_CONCURRENCY, async (req) => {
      const res = await resend(req);
      const results = parseAnswer(req, res);
      const what = `round ${round}: retry of ${req.form} publish to ${req.topic} (keys ${req.events.map((e) => e.key).join(", ")}; at SIGKILL: ${req.reason})`;
      if (typeof results === "string") {
        violate("retryOnce", `${what} did not succeed: ${results}`);
        return;
      }
      const stored = expected.get(req)!;
      req.events.forEach((e, i) => {
        const r = results[i]!;
        const was = stored[i];
        if (was !== undefined && (!r.duplicate || r.id !== was.id || r.seq !== was.seq)) {
          violate("retryOnce", `${what}: key ${e.key} was stored before the kill at seq ${was.seq} (${was.id}) but the retry answered ${JSON.stringify(r)}`);
        } else if (was === undefined && r.duplicate) {
          violate("retryOnce", `${what}: key ${e.key} is not stored, yet the retry answered duplicate ${JSON.stringify(r)}`);
        }
        placed.set(e.key, { topic: r.topic, id: r.id, seq: r.seq, how: "retry" });
      });
    });

    // Acknowledged publishes retried: each must be a duplicate of what was acknowledged.
    const latest = acked[acked.length - 1] ?? [];
    const earlier = acked.slice(0, -1).flat();
    const sample = [...pick(latest, ACK_RETRIES_LATEST, random), ...pick(earlier, ACK_RETRIES_EARLIER, random)];
    roundStats.ackRetries = sample.length;
    const ackRetried = new Set(sample.flatMap((r) => r.events.map((e) => e.key)));
    await eachLimited(sample, RETRY_CONCURRENCY, async (req) => {
      const res = await resend(req);
      const results = parseAnswer(req, res);
      const what = `round ${round}: retry of acknowledged ${req.form} publish to ${req.topic} (round ${req.round})`;
      if (typeof results === "string") {
        violate("ackRetry", `${what} did not succeed: ${results}`);
        return;
      }
      req.events.forEach((e, i) => {
        const r = results[i]!;
        const was = placed.get(e.key)!;
        if (!r.duplicate || r.id !== was.id || r.seq !== was.seq) {
          violate("ackRetry", `${what}: key ${e.key} was acknowledged as seq ${was.seq} (${was.id}); the retry answered ${JSON.stringify(r)}`);
        }
      });
    });

    // Now every key ever sent is placed: each topic must hold exactly its keys, once each.
    const afterRetries = await checkLogs(round, "after retries", ackRetried);
    const perTopic = new Map<string, number>();
    for (const [, where] of placed) perTopic.set(where.topic, (perTopic.get(where.topic) ?? 0) + 1);
    for (const topic of TOPICS) {
      const have = afterRetries.get(topic)?.size ?? 0;
      const want = perTopic.get(topic) ?? 0;
      if (have !== want) violate("retryOnce", `round ${round} after retries, topic ${topic}: ${want} distinct keys were published, ${have} distinct keys are stored`);
    }
  }

  async function run(): Promise<void> {
    jwt = await token({ tenant: "fault" });
    for (let round = 1; round <= ROUNDS; round++) {
      proc = proc === undefined ? await startBaton({ dataDir }) : await proc.restart();
      procs.push(proc);
      if (round > 1) await verifyAndRetry(round - 1);
      await loadAndKill(round);
    }
    proc = await proc!.restart();
    procs.push(proc);
    await verifyAndRetry(ROUNDS);
  }

  before(
    async () => {
      try {
        await run();
      } catch (err) {
        throw new Error(`the kill -9 scenario could not run: ${describeError(err)} (seed ${SEED})\n\n${summary()}\n\n${outputs()}`, { cause: err });
      }
    },
    { timeout: 80_000 },
  );

  after(async () => {
    for (const p of procs) await p.kill9();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("each round acknowledged publishes before its SIGKILL, and the kills interrupted publishes in flight", (t) => {
    t.diagnostic(`seed ${SEED}\n${summary()}`);
    expectNone("load");
    assert.equal(stats.length, ROUNDS);
    for (const s of stats) assert.ok(s.ackedEvents > 0, `round ${s.round} acknowledged nothing before the kill\n${summary()}`);
    assert.ok(
      stats.some((s) => s.pendingRequests > 0),
      `no publish was in flight at any SIGKILL: the crash case was not exercised\n${summary()}`,
    );
  });

  test("every acknowledged event is readable after each restart with the same id, sequence and payload", () => {
    expectNone("acked");
  });

  test("after each restart every topic holds sequences 1..lastSeq with no gap or repeat, and keeps its epoch", () => {
    expectNone("gapless");
  });

  test("every stored event was published by a client, on the topic it was published to", () => {
    expectNone("phantom");
  });

  test("a batch in flight at SIGKILL is stored all or nothing", () => {
    expectNone("allOrNothing");
  });

  test("a publish in flight at SIGKILL, retried with its idempotency key, succeeds and is stored exactly once (duplicate with the original id and sequence if it had committed)", () => {
    expectNone("retryOnce");
  });

  test("retrying an acknowledged publish answers duplicate with the original id and sequence and does not grow the topic", () => {
    expectNone("ackRetry");
  });
});
