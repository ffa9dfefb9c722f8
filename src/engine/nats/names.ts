/**
 * @module engine/nats/names
 * Where things live on NATS. Tenant, topic and session names are user input and may hold any
 * character, while subject tokens and stream names may not hold `.`, `*`, `>` or spaces, so
 * each name is hex-encoded (UTF-8). Hex is reversible, keeps byte order and never collides.
 *
 * Layout under a prefix `p` (default "baton"):
 * - stream `P_<tenant>` (upper-cased prefix) holds subjects `p.<tenant>.t.<topic>`: one stream
 *   per tenant, the topic is the subject;
 * - `p.<tenant>.n.<topic>`: core-NATS notice of a durable append (see AppendFanout);
 * - `p.<tenant>.e.<topic>` and `p.<tenant>.s.<session>`: the Broker's core subjects;
 * - `p.bus.<part>…`: NodeBus addresses (messages between nodes, e.g. to a group's leader);
 * - KV buckets `P_topics` (topic records, and the retention sweeper's lease under the key
 *   `sweeper`), `P_dedup` (idempotency keys), `P_state` (StateStore).
 */

/** Lower-case hex of the UTF-8 bytes; the empty string becomes "_" (a token cannot be empty). */
export function hexToken(value: string): string {
  return value === "" ? "_" : Buffer.from(value, "utf8").toString("hex");
}

export function fromHexToken(token: string): string {
  return token === "_" ? "" : Buffer.from(token, "hex").toString("utf8");
}

export class NatsNames {
  readonly prefix: string;
  private readonly upper: string;

  /** `prefix`: letters, digits and `_` only (it is a subject token and part of stream names). */
  constructor(prefix: string) {
    if (!/^[A-Za-z0-9_]+$/.test(prefix)) throw new Error(`invalid NATS prefix ${JSON.stringify(prefix)}: use letters, digits and _`);
    this.prefix = prefix.toLowerCase();
    this.upper = prefix.toUpperCase();
  }

  tenantStream(tenant: string): string {
    return `${this.upper}_${hexToken(tenant)}`;
  }

  /** Every stream of this prefix starts with this (for clean-up). */
  get streamPrefix(): string {
    return `${this.upper}_`;
  }

  tenantSubjects(tenant: string): string {
    return `${this.prefix}.${hexToken(tenant)}.t.>`;
  }

  topicSubject(tenant: string, topic: string): string {
    return `${this.prefix}.${hexToken(tenant)}.t.${hexToken(topic)}`;
  }

  noticeSubject(tenant: string, topic: string): string {
    return `${this.prefix}.${hexToken(tenant)}.n.${hexToken(topic)}`;
  }

  ephemeralSubject(tenant: string, topic: string): string {
    return `${this.prefix}.${hexToken(tenant)}.e.${hexToken(topic)}`;
  }

  sessionSubject(tenant: string, session: string): string {
    return `${this.prefix}.${hexToken(tenant)}.s.${hexToken(session)}`;
  }

  /** A NodeBus address: `p.bus.<part>.<part>…`. */
  busSubject(parts: readonly string[]): string {
    return `${this.prefix}.bus.${parts.map(hexToken).join(".")}`;
  }

  bucket(role: "topics" | "dedup" | "state"): string {
    return `${this.upper}_${role}`;
  }
}
