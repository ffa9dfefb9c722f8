/**
 * Reads of one recent range, again and again, as a reconnect storm does (every socket of a
 * topic recovers the same missed events): 100 events of about 260 bytes, read in pages of 25
 * by 500 readers one after the other, on each engine in process (no HTTP). The first pass fills
 * the engine's cache of decoded events (src/engine/recent-events.ts); the second only hits it.
 * Without the cache both passes cost what the first costs here minus the cache's upkeep: to see
 * it, copy this file into a checkout of a commit before the cache (898c9fa) and run it there.
 *
 * Usage: node bench/recent-reads.ts        (NATS at BENCH_NATS, default 127.0.0.1:4222)
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EventLog } from "../src/engine/engine.ts";
import { EmbeddedEngine } from "../src/engine/embedded/embedded-engine.ts";
import { NatsEngine } from "../src/engine/nats/nats-engine.ts";
import { natsUnreachable, removeNatsPrefix } from "../test/support/nats.ts";
import { EVENT_DATA } from "./lib.ts";

const NATS = process.env["BENCH_NATS"] ?? "127.0.0.1:4222";
const RETENTION = { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 };
const EVENTS = 100;
const READERS = 500;
const ref = { tenant: "bench", topic: "room" };

async function measure(name: string, log: EventLog): Promise<void> {
  for (let i = 0; i < EVENTS; i++) await log.append(ref, [{ data: { ...EVENT_DATA, i } }], { autoCreate: true });
  for (const pass of ["first pass (fills the cache)", "second pass"]) {
    const t0 = performance.now();
    let read = 0;
    for (let r = 0; r < READERS; r++) {
      for (let from = 1; ; ) {
        const page = await log.read(ref, from, 25);
        read += page.events.length;
        if (page.events.length === 0 || page.next > page.lastSeq) break;
        from = page.next;
      }
    }
    const ms = performance.now() - t0;
    if (read !== EVENTS * READERS) throw new Error(`${name}: read ${read} events, expected ${EVENTS * READERS}`);
    console.log(`${name.padEnd(9)} ${pass.padEnd(29)} ${read} events in ${ms.toFixed(0)} ms: ${((ms * 1000) / read).toFixed(2)} µs per event`);
  }
}

const dir = mkdtempSync(join(tmpdir(), "baton-bench-recent-"));
const embedded = EmbeddedEngine.open({ dataDir: dir, dedupWindowMs: 86_400_000, defaultRetention: RETENTION, sweepIntervalMs: 3_600_000 });
try {
  await measure("embedded", embedded.log);
} finally {
  await embedded.close();
  rmSync(dir, { recursive: true, force: true });
}
const unreachable = await natsUnreachable(NATS);
if (unreachable !== undefined) {
  console.log(`nats      skipped: ${unreachable}`);
} else {
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  const nats = await NatsEngine.open({ servers: NATS, prefix, dedupWindowMs: 86_400_000, defaultRetention: RETENTION });
  try {
    await measure("nats", nats.log);
  } finally {
    await nats.close();
    await removeNatsPrefix(NATS, prefix);
  }
}
process.exit(0);
