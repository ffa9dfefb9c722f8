/**
 * @module streams/groups/consumer-groups
 * The consumer groups of a single-process engine: every group runs here. Definitions live in
 * the StateStore, so groups come back with their progress after a restart. (On a clustered
 * engine, ClusteredGroups runs each group on one leader node instead.)
 */
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { EventLog, StateStore } from "../../engine/engine.ts";
import { groupConfigFromJson, groupConfigJson, type GroupConfig, type StartPosition } from "./group-config.ts";
import type { GroupDirectory, GroupInfo } from "./group-handle.ts";
import { destroyGroup, groupLag, rewindGroup, writeStartPositions } from "./group-lifecycle.ts";
import { GroupRuntime, type GroupDeps } from "./group-runtime.ts";
import { groupKey, groupPrefix, scanAll } from "./group-state.ts";

export class ConsumerGroups implements GroupDirectory {
  private readonly runtimes = new Map<string, GroupRuntime>();
  /** Groups being created, reset or deleted: one change at a time per group. */
  private readonly changing = new Set<string>();
  private readonly deps: GroupDeps;
  private readonly log: EventLog;
  private readonly state: StateStore;

  constructor(deps: GroupDeps) {
    this.deps = deps;
    this.log = deps.log;
    this.state = deps.state;
  }

  async start(): Promise<void> {
    const configs: GroupConfig[] = [];
    await scanAll(this.state, groupPrefix(), (key, value) => configs.push(groupConfigFromJson(key.split("/")[1]!, value)));
    for (const config of configs) await this.run(config);
  }

  async close(): Promise<void> {
    for (const r of this.runtimes.values()) r.stop();
    await Promise.all([...this.runtimes.values()].map((r) => r.recordInFlight()));
    this.runtimes.clear();
  }

  async create(config: GroupConfig): Promise<GroupInfo> {
    const id = runtimeId(config.tenant, config.name);
    this.lock(id);
    try {
      try {
        await this.state.put(groupKey(config.tenant, config.name), groupConfigJson(config), { expectRevision: 0 });
      } catch (err) {
        if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("GROUP_EXISTS", `consumer group ${config.name} already exists`);
        throw err;
      }
      await writeStartPositions(this.log, this.state, config, config.start);
      await this.run(config);
    } finally {
      this.changing.delete(id);
    }
    return this.describe(config.tenant, config.name);
  }

  handle(tenant: string, name: string): Promise<GroupRuntime> {
    return Promise.resolve(this.runtime(tenant, name));
  }

  async describe(tenant: string, name: string): Promise<GroupInfo> {
    const r = this.runtime(tenant, name);
    const status = r.describe();
    return { config: r.config, status, lag: await groupLag(this.log, tenant, status) };
  }

  running(): Iterable<GroupRuntime> {
    return this.runtimes.values();
  }

  list(tenant: string): Promise<GroupConfig[]> {
    return Promise.resolve(
      [...this.runtimes.values()]
        .map((r) => r.config)
        .filter((c) => c.tenant === tenant)
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
  }

  /**
   * Moves the group to `start` on every topic: what was pending or in flight is dropped (tokens
   * held by members stop working), as a JetStream consumer recreated at a new position would.
   */
  async reset(tenant: string, name: string, start: StartPosition): Promise<GroupInfo> {
    const old = this.runtime(tenant, name);
    const id = runtimeId(tenant, name);
    this.lock(id);
    try {
      old.stop();
      this.runtimes.delete(id);
      const config = { ...old.config, start };
      await rewindGroup(this.log, this.state, config);
      const runtime = await this.run(config);
      for (const sink of old.pushMembers()) runtime.addMember(sink);
    } finally {
      this.changing.delete(id);
    }
    return this.describe(tenant, name);
  }

  /** Deletes the group, its progress, and its dead-letter and redrive topics. */
  async delete(tenant: string, name: string): Promise<boolean> {
    const id = runtimeId(tenant, name);
    const r = this.runtimes.get(id);
    if (r === undefined) return false;
    this.lock(id);
    try {
      r.stop();
      this.runtimes.delete(id);
      await destroyGroup(this.log, this.state, tenant, name);
    } finally {
      this.changing.delete(id);
    }
    return true;
  }

  private runtime(tenant: string, name: string): GroupRuntime {
    const r = this.runtimes.get(runtimeId(tenant, name));
    if (r === undefined) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${name.slice(0, 120)}`);
    return r;
  }

  private lock(id: string): void {
    if (this.changing.has(id)) throw new BatonError("CONFLICT", "the group is being changed by another request; retry");
    this.changing.add(id);
  }

  private async run(config: GroupConfig): Promise<GroupRuntime> {
    const runtime = new GroupRuntime(config, this.deps);
    this.runtimes.set(runtimeId(config.tenant, config.name), runtime);
    await runtime.start();
    return runtime;
  }
}

function runtimeId(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}
