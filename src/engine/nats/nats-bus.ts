/**
 * @module engine/nats/nats-bus
 * The NodeBus on core NATS: an address is a subject under `p.bus.`, a request is a NATS
 * request with a reply inbox, and "nobody serves it" is the server's no-responders status, so
 * a caller learns at once that an owner is missing instead of waiting for a timeout. Bodies
 * are msgpack; replies are `{ok}` or `{err: {code, message, details}}`.
 */
import { randomBytes } from "node:crypto";
import { errors, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import { ErrorCodes, type ErrorCode } from "../../errors/registry.ts";
import type { NodeBus } from "../engine.ts";
import type { NatsNames } from "./names.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

type Reply = { ok: unknown } | { err: { code: string; message: string; details?: Record<string, unknown> } };

export class NatsBus implements NodeBus {
  readonly nodeId = randomBytes(6).toString("hex");
  private readonly nc: NatsConnection;
  private readonly names: NatsNames;
  private readonly subs = new Set<Subscription>();

  constructor(nc: NatsConnection, names: NatsNames) {
    this.nc = nc;
    this.names = names;
  }

  send(address: readonly string[], message: unknown): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(this.names.busSubject(address), packr.pack(message));
  }

  async request(address: readonly string[], message: unknown, timeoutMs: number): Promise<unknown> {
    let raw: Uint8Array;
    try {
      const msg = await this.nc.request(this.names.busSubject(address), packr.pack(message), { timeout: timeoutMs });
      raw = msg.data;
    } catch (err) {
      throw unavailable(err, timeoutMs);
    }
    const reply = packr.unpack(raw) as Reply;
    if ("ok" in reply) return reply.ok;
    const code = (reply.err.code in ErrorCodes ? reply.err.code : "INTERNAL") as ErrorCode;
    throw new BatonError(code, reply.err.message, reply.err.details === undefined ? {} : { details: reply.err.details });
  }

  serve(address: readonly string[], handler: (message: unknown) => unknown): () => void {
    const sub = this.nc.subscribe(this.names.busSubject(address), {
      callback: (err, msg) => {
        if (err !== null) return;
        let message: unknown;
        try {
          message = packr.unpack(msg.data);
        } catch {
          return; // not ours
        }
        const answer = (reply: Reply): void => {
          if (msg.reply !== undefined && msg.reply !== "" && !this.nc.isClosed()) msg.respond(packr.pack(reply));
        };
        Promise.resolve()
          .then(() => handler(message))
          .then(
            (ok) => answer({ ok: ok ?? null }),
            (e: unknown) => answer({ err: isBatonError(e) ? { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }) } : { code: "INTERNAL", message: e instanceof Error ? e.message : String(e) } }),
          );
      },
    });
    this.subs.add(sub);
    return () => {
      if (!this.subs.delete(sub)) return;
      sub.unsubscribe();
    };
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs.clear();
  }
}

function unavailable(err: unknown, timeoutMs: number): BatonError {
  const noResponders = err instanceof errors.NoRespondersError || (err instanceof errors.RequestError && err.isNoResponders());
  if (noResponders) return new BatonError("UNAVAILABLE", "no node serves this right now (its owner is moving); retry", { details: { reason: "no-responders" }, retryAfterMs: 500 });
  if (err instanceof errors.TimeoutError) return new BatonError("UNAVAILABLE", `the owning node did not answer within ${timeoutMs} ms; retry`, { details: { reason: "timeout" }, retryAfterMs: 500 });
  return new BatonError("UNAVAILABLE", `cluster bus: ${err instanceof Error ? err.message : String(err)}`, { details: { reason: "connection" }, retryAfterMs: 1000 });
}
