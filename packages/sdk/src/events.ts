/**
 * @module sdk/events
 * The shapes the SDK hands to applications, and a tiny typed emitter.
 */

/** An event as delivered to a socket. */
export interface BatonEvent<T = unknown> {
  /** The topic, or `#<user>` for events addressed to the connected user. */
  readonly topic: string;
  /** Sequence in the topic; undefined for ephemeral events (never stored). */
  readonly seq: number | undefined;
  readonly id: string;
  readonly type: string | undefined;
  readonly key: string | undefined;
  readonly causalId: string | undefined;
  /** Publish time, ISO-8601. */
  readonly time: string | undefined;
  /** Remaining metadata (e.g. `traceparent`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly ephemeral: boolean;
  readonly data: T;
}

/** Where a subscription stands: resume from here (Centrifugo's offset + epoch). */
export interface Position {
  readonly seq: number;
  readonly epoch: string;
}

export interface SubscribedInfo {
  /** True when the subscribe asked to resume from a previous position. */
  readonly wasRecovering: boolean;
  /** True when every missed event is being delivered; false means refetch your state. */
  readonly recovered: boolean;
  readonly position: Position | undefined;
}

type Listener<T> = (value: T) => void;

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const listener of this.listeners.get(event) ?? []) (listener as Listener<Events[K]>)(value);
  }
}

const KNOWN_TAGS = new Set(["id", "type", "key", "causal_id", "time", "ephemeral", "schema_version"]);

/** Maps a Centrifugo publication (data, offset, tags) to a BatonEvent. */
export function toEvent<T>(topic: string, data: unknown, offset: number | undefined, tags: Record<string, string> | undefined): BatonEvent<T> {
  const t = tags ?? {};
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) if (!KNOWN_TAGS.has(k)) headers[k] = v;
  return {
    topic,
    seq: offset !== undefined && offset > 0 ? offset : undefined,
    id: t["id"] ?? "",
    type: t["type"],
    key: t["key"],
    causalId: t["causal_id"],
    time: t["time"],
    headers,
    ephemeral: t["ephemeral"] === "true",
    data: data as T,
  };
}
