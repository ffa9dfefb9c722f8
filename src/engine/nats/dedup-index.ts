/**
 * @module engine/nats/dedup-index
 * Idempotency keys for the whole configurable dedup window (24 h by default, far beyond what a
 * stream's `duplicate_window` should hold in server memory), in a KV bucket whose max age is
 * that window. A key is *reserved* before its event is published and *committed* after:
 *
 * - reserve = KV create of `{pending, after}`, where `after` is the stream sequence the
 *   publisher expects to append behind. Only one node can hold a reservation, so two nodes
 *   racing with one key never both publish it.
 * - commit = KV update of the reservation to `{id, seq, exp}` once the publish is acked.
 * - A pending reservation found by another node is resolved from the log itself: the key's
 *   event, if it was stored, is in a message after `after` (the publish was conditional on
 *   that position). If it is there, that is the answer; if not and the reservation is older
 *   than `staleMs` (its holder crashed between reserve and publish), it is taken over. A slow
 *   holder that publishes after a takeover loses its conditional publish and finds the
 *   key in the log when it catches up, so the key is still stored once.
 *
 * The record key is a hash of tenant, topic, epoch and idempotency key: keys of a deleted
 * history can never answer for the new one, and are reclaimed by the bucket's max age.
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { KV } from "@nats-io/kv";
import type { Appended } from "../../streams/event.ts";
import { isKvConflict } from "./topic-records.ts";

type DedupRecord = { readonly pending: true; readonly after: number; readonly at: number } | { readonly id: string; readonly seq: number; readonly exp: number };

/** What resolving a key decided: it was stored before, or this caller may store it. */
export type KeyClaim = { readonly duplicate: Appended } | { readonly reservation: number };

export interface KeyScope {
  readonly tenant: string;
  readonly topic: string;
  readonly epoch: string;
}

/** Looks for a key's event in the topic's messages after a stream sequence. */
export type LogScan = (idem: string, afterStreamSeq: number) => Promise<Appended | undefined>;

export class DedupIndex {
  private readonly kv: KV;
  private readonly staleMs: number;

  constructor(kv: KV, staleMs: number) {
    this.kv = kv;
    this.staleMs = staleMs;
  }

  /**
   * Resolves one key: the earlier result if it is stored and its window (by the injected clock
   * `now`) has not passed, else a reservation to publish it.
   */
  async claim(scope: KeyScope, idem: string, after: number, now: number, scan: LogScan): Promise<KeyClaim> {
    const key = dedupKey(scope, idem);
    const pending = JSON.stringify({ pending: true, after, at: Date.now() } satisfies DedupRecord);
    for (let attempt = 0; ; attempt++) {
      try {
        return { reservation: await this.kv.create(key, pending) };
      } catch (err) {
        if (!isKvConflict(err)) throw err;
      }
      const entry = await this.kv.get(key);
      if (entry === null || entry.operation !== "PUT") continue;
      const record = entry.json<DedupRecord>();
      if ("pending" in record) {
        const found = await scan(idem, record.after);
        if (found !== undefined) return { duplicate: { ...found, duplicate: true } };
        if (Date.now() - record.at < this.staleMs) {
          await sleep(Math.min(200, 5 * 2 ** Math.min(attempt, 6)));
          continue;
        }
      } else if (record.exp > now) {
        return { duplicate: { id: record.id, seq: record.seq, duplicate: true } };
      }
      // Expired, or a stale reservation: take it over (or lose to whoever else did).
      try {
        return { reservation: await this.kv.update(key, pending, entry.revision) };
      } catch (err) {
        if (!isKvConflict(err)) throw err;
      }
    }
  }

  /** Records the stored result under a reservation this caller holds. */
  async commit(scope: KeyScope, idem: string, reservation: number, appended: Appended, exp: number): Promise<void> {
    try {
      await this.kv.update(dedupKey(scope, idem), JSON.stringify({ id: appended.id, seq: appended.seq, exp } satisfies DedupRecord), reservation);
    } catch (err) {
      // Taken over after this holder was presumed dead: the taker found the event in the log.
      if (!isKvConflict(err)) throw err;
    }
  }

  /** Gives a reservation back after a publish that stored nothing. Best effort. */
  async release(scope: KeyScope, idem: string, reservation: number): Promise<void> {
    await this.kv.delete(dedupKey(scope, idem), { previousSeq: reservation }).catch(() => undefined);
  }
}

function dedupKey(scope: KeyScope, idem: string): string {
  return createHash("sha256").update(`${scope.tenant}\u0000${scope.topic}\u0000${scope.epoch}\u0000${idem}`).digest("base64url");
}
