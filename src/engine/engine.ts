/**
 * @module engine
 * The storage and cluster seam. Layers above see only these interfaces; only the composition
 * root (`src/main.ts`) picks an implementation (`embedded` today, `nats` next). Every method
 * states its contract; an engine that cannot honour one must not claim to implement it.
 */
import type {
  Appended,
  Json,
  NewEvent,
  ReadPage,
  Retention,
  StoredEvent,
  TopicInfo,
  TopicRef,
} from "../streams/event.ts";

export interface Engine {
  /** Short name for logs and /readyz: "embedded" | "nats". */
  readonly name: string;
  readonly log: EventLog;
  readonly broker: Broker;
  readonly state: StateStore;
  /**
   * Messages between the processes of a cluster; absent on an engine that runs in one process
   * (everything it owns is local). See {@link NodeBus}.
   */
  readonly bus?: NodeBus;
  /** False once the engine can no longer accept writes (e.g. after a storage failure). */
  isHealthy(): boolean;
  /** Resolves once every acknowledged write is durable and resources are released. Idempotent. */
  close(): Promise<void>;
}

export interface AppendOptions {
  /** Create the topic with default retention if it does not exist (else TOPIC_NOT_FOUND). */
  readonly autoCreate: boolean;
}

export interface ListTopicsOptions {
  /** Only names starting with this prefix. */
  readonly prefix?: string;
  /** Exclusive lower bound, for paging: the last name of the previous page. */
  readonly after?: string;
  readonly limit: number;
}

/**
 * Listener for events as they become durable, with the epoch of the topic's history they belong
 * to (a listener holding another epoch knows the topic was deleted and recreated); see
 * {@link EventLog.onAppend}.
 */
export type AppendListener = (events: readonly StoredEvent[], epoch: string) => void;

/**
 * The durable event log: one gap-free sequence per topic.
 */
export interface EventLog {
  /**
   * Appends `events` to one topic, all or nothing. Resolves only after the write is durable
   * (it survives kill -9 of the process; on the embedded engine also power loss as far as the
   * disk honours fsync). Results are in input order with sequences strictly increasing by one.
   * Appends to one topic that this process issues one after another take sequences in that
   * order (a socket's back-to-back publishes keep their order), whether or not each awaited
   * the previous one.
   * An event whose idempotency key was appended to the same topic within the dedup window
   * resolves to that first result with `duplicate: true` and stores nothing, also when the two
   * appends race or straddle a restart. Rejects with TOPIC_NOT_FOUND, OVERLOADED (bounded
   * write queue) or UNAVAILABLE (closing).
   */
  append(topic: TopicRef, events: readonly NewEvent[], options: AppendOptions): Promise<Appended[]>;

  /**
   * Reads up to `limit` stored events with `seq >= fromSeq`, in order, skipping expired ones.
   * `next` is where the following read should start. A `fromSeq` below `firstSeq` starts at
   * `firstSeq` (older events were reclaimed by retention). Rejects TOPIC_NOT_FOUND.
   */
  read(topic: TopicRef, fromSeq: number, limit: number): Promise<ReadPage>;

  /** The lowest sequence whose publish time is >= `time` (lastSeq + 1 if none). */
  seqAtTime(topic: TopicRef, time: number): Promise<number>;

  /** Creates a topic. Rejects TOPIC_EXISTS. A recreated topic gets a new epoch. */
  createTopic(topic: TopicRef, retention: Retention): Promise<TopicInfo>;

  describeTopic(topic: TopicRef): Promise<TopicInfo | undefined>;

  /** A tenant's topics in name order. */
  listTopics(tenant: string, options: ListTopicsOptions): Promise<TopicInfo[]>;

  /** Deletes a topic and its history. Resolves false if it did not exist. */
  deleteTopic(topic: TopicRef): Promise<boolean>;

  /**
   * Calls `listener` with each durably appended batch of the topic, in sequence order, after
   * `append` resolved for it. At-most-once and local to this process's view: a listener that
   * needs every event re-reads from its last sequence (this is a wake-up, not a log).
   * Returns the function that removes the listener.
   */
  onAppend(topic: TopicRef, listener: AppendListener): () => void;
}

/** An event on the fast path: never stored, no sequence, delivered at most once. */
export interface EphemeralEvent {
  readonly id: string;
  readonly topic: string;
  readonly data: StoredEvent["data"];
  readonly type?: string;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly time: number;
}

/** A message for one connection (Centrifugo's async `message` push). */
export interface SessionMessage {
  readonly tenant: string;
  readonly session: string;
  readonly data: StoredEvent["data"];
}

/**
 * Fan-out of what is not stored: ephemeral topic events and per-session messages. At-most-once,
 * to every node with a listener; a node without one never receives the message (on NATS it is
 * a core subject per topic / session). Durable events do not go through here: nodes learn of
 * them from `EventLog.onAppend`.
 */
export interface Broker {
  publishEphemeral(topic: TopicRef, event: EphemeralEvent): void;
  onEphemeral(topic: TopicRef, listener: (event: EphemeralEvent) => void): () => void;
  sendToSession(message: SessionMessage): void;
  onSessionMessage(tenant: string, session: string, listener: (message: SessionMessage) => void): () => void;
}

/** One value of the {@link StateStore} with its revision. */
export interface StateEntry {
  readonly key: string;
  readonly value: Json;
  /** Increases with every write of the key; a key that does not exist has revision 0. */
  readonly revision: number;
}

export interface StateWriteOptions {
  /** Write only if the key's current revision is this (0 = the key must not exist); else CONFLICT. */
  readonly expectRevision?: number;
}

/**
 * Small durable keyed state beside the log: consumer positions and attempts, reservations,
 * effect outcomes. Values are JSON; keys are strings the layer above scopes by tenant. Writes
 * issued one after the other become durable in that order; every method resolves only once its
 * write is durable (same promise as `EventLog.append`). Compare-and-set through `expectRevision`
 * is atomic, also across nodes on a clustered engine, so fencing and slot limits can rely on it.
 */
export interface StateStore {
  get(key: string): Promise<StateEntry | undefined>;
  /** Resolves with the new revision. Rejects CONFLICT when `expectRevision` does not hold. */
  put(key: string, value: Json, options?: StateWriteOptions): Promise<number>;
  /** Resolves false when the key did not exist. Rejects CONFLICT when `expectRevision` does not hold. */
  delete(key: string, options?: StateWriteOptions): Promise<boolean>;
  /** Entries whose key starts with `prefix`, in key order, after `after` (exclusive). */
  scan(prefix: string, options: { readonly after?: string; readonly limit: number }): Promise<StateEntry[]>;
}

/**
 * Request/reply and one-way messages between the nodes of a cluster, for work that one node
 * owns at a time (a consumer group's leader) and the others reach. An address is a list of
 * name parts (any strings). At most once and never stored: callers that need more keep their
 * truth in the {@link StateStore} and use this only to reach its current owner.
 */
export interface NodeBus {
  /** This process's id in the cluster: unique per start, never reused. */
  readonly nodeId: string;
  /** Sends to whoever serves `address` now; dropped when nobody does. */
  send(address: readonly string[], message: unknown): void;
  /**
   * Asks the one server of `address`. Resolves with its handler's result; rejects with the
   * BatonError the handler threw, or UNAVAILABLE (details.reason "no-responders" or "timeout").
   */
  request(address: readonly string[], message: unknown, timeoutMs: number): Promise<unknown>;
  /**
   * Serves `address` until the returned function is called. The handler's result answers a
   * request; a thrown BatonError reaches the requester as itself, anything else as INTERNAL.
   */
  serve(address: readonly string[], handler: (message: unknown) => unknown): () => void;
}
