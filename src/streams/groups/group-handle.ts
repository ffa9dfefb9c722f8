/**
 * @module streams/groups/group-handle
 * What the edge holds to work with consumer groups, whatever the engine: a directory of groups
 * and, per group, a handle to its runtime. In one process the handle is the GroupRuntime
 * itself; in a cluster it reaches the runtime on whichever node leads the group.
 */
import type { GroupConfig, StartPosition } from "./group-config.ts";
import type { Delivery, MemberSink } from "./group-model.ts";
import type { GroupRuntime } from "./group-runtime.ts";
import type { GroupStatus } from "./group-status.ts";

/** Where a delivery's event lives and what it was first published as (for slot adoption). */
export interface DeliveryWork {
  readonly topic: string;
  readonly seq: number;
  readonly origin: { readonly topic: string; readonly seq: number; readonly id: string };
}

export interface GroupHandle {
  readonly config: GroupConfig;
  /** A socket member: deliveries reach `sink.deliver` until removeMember. */
  addMember(sink: MemberSink): void;
  removeMember(id: string): void;
  pull(consumer: string, max: number, maxInFlight: number, waitMs: number): Promise<Delivery[]>;
  ack(token: string): Promise<void>;
  nack(token: string, reason: string | undefined, delayMs: number | undefined): Promise<void>;
  term(token: string, reason: string | undefined): Promise<void>;
  extend(token: string, leaseMs: number | undefined): Promise<number>;
  workOf(token: string): DeliveryWork | Promise<DeliveryWork>;
  describe(): GroupStatus | Promise<GroupStatus>;
}

export interface GroupInfo {
  readonly config: GroupConfig;
  readonly status: GroupStatus;
  /** Events published to the group's topics that it has not read yet. */
  readonly lag: number;
  /** Cluster mode: the id of the node running the group. */
  readonly leader?: string;
}

/** Every consumer group of a tenant: create, list, describe, reset, delete, consume. */
export interface GroupDirectory {
  /** Loads the stored groups and starts running them (those this node runs). */
  start(): Promise<void>;
  /** Stops the groups this node runs, recording what is in flight; resolves once durable. */
  close(): Promise<void>;
  create(config: GroupConfig): Promise<GroupInfo>;
  /** GROUP_NOT_FOUND when the group does not exist. */
  handle(tenant: string, name: string): Promise<GroupHandle>;
  describe(tenant: string, name: string): Promise<GroupInfo>;
  /** The tenant's groups in name order. */
  list(tenant: string): Promise<GroupConfig[]>;
  reset(tenant: string, name: string, start: StartPosition): Promise<GroupInfo>;
  /** Resolves false when the group did not exist. */
  delete(tenant: string, name: string): Promise<boolean>;
  /** The runtimes running in this process (for metrics: each group is counted by one node). */
  running(): Iterable<GroupRuntime>;
}
