/**
 * @module streams/groups/consumer-groups
 * Every consumer group of this node: create, list, describe, reset, delete, and the way to a
 * group's runtime for consuming. Definitions live in the StateStore, so groups come back with
 * their progress after a restart.
 */
import { BatonError, isBatonError } from "../../errors/baton-error.ts";
import type { EventLog, StateStore } from "../../engine/engine.ts";
import type { Json } from "../event.ts";
import { matchesPattern } from "../names.ts";
import { deadLetterTopic, groupConfigFromJson, groupConfigJson, isSystemTopic, redriveTopic, type GroupConfig, type StartPosition } from "./group-config.ts";
import { GroupRuntime, type GroupDeps } from "./group-runtime.ts";
import { isPattern } from "./group-model.ts";
import type { GroupStatus } from "./group-status.ts";
import { deleteGroupProgress, groupKey, groupPrefix, positionKey } from "./group-state.ts";

export interface GroupInfo {
  readonly config: GroupConfig;
  readonly status: GroupStatus;
  /** Events published to the group's topics that it has not read yet. */
  readonly lag: number;
}

export class ConsumerGroups {
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

  /** Loads and starts every stored group. */
  async start(): Promise<void> {
    if (this.deps.unsupported !== undefined) return;
    let after: string | undefined;
    for (;;) {
      const page = await this.state.scan(groupPrefix(), { limit: 500, ...(after === undefined ? {} : { after }) });
      for (const e of page) {
        const tenant = e.key.split("/")[1]!;
        const config = groupConfigFromJson(tenant, e.value);
        await this.run(config);
      }
      if (page.length < 500) return;
      after = page[page.length - 1]!.key;
    }
  }

  /** Stops every group, recording what is in flight; resolves once that is durable. */
  async close(): Promise<void> {
    for (const r of this.runtimes.values()) r.stop();
    await Promise.all([...this.runtimes.values()].map((r) => r.recordInFlight()));
    this.runtimes.clear();
  }

  async create(config: GroupConfig): Promise<GroupInfo> {
    this.assertSupported();
    const id = runtimeId(config.tenant, config.name);
    this.lock(id);
    try {
      try {
        await this.state.put(groupKey(config.tenant, config.name), groupConfigJson(config), { expectRevision: 0 });
      } catch (err) {
        if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("GROUP_EXISTS", `consumer group ${config.name} already exists`);
        throw err;
      }
      await this.writeStart(config, config.start);
      await this.run(config);
    } finally {
      this.changing.delete(id);
    }
    return this.describe(config.tenant, config.name);
  }

  runtime(tenant: string, name: string): GroupRuntime {
    this.assertSupported();
    const r = this.runtimes.get(runtimeId(tenant, name));
    if (r === undefined) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${name.slice(0, 120)}`);
    return r;
  }

  async describe(tenant: string, name: string): Promise<GroupInfo> {
    const r = this.runtime(tenant, name);
    const status = r.describe();
    let lag = 0;
    for (const p of status.partitions) {
      const info = await this.log.describeTopic({ tenant, topic: p.topic });
      if (info !== undefined) lag += Math.max(0, info.lastSeq + 1 - p.cursor);
    }
    return { config: r.config, status, lag };
  }

  /** Every running group (for metrics). */
  all(): Iterable<GroupRuntime> {
    return this.runtimes.values();
  }

  list(tenant: string): GroupConfig[] {
    this.assertSupported();
    return [...this.runtimes.values()].map((r) => r.config).filter((c) => c.tenant === tenant).sort((a, b) => (a.name < b.name ? -1 : 1));
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
      await deleteGroupProgress(this.state, tenant, name);
      const config = { ...old.config, start };
      await this.state.put(groupKey(tenant, name), groupConfigJson(config));
      await this.writeStart(config, start);
      const runtime = await this.run(config);
      for (const sink of old.pushMembers()) runtime.addMember(sink);
    } finally {
      this.changing.delete(id);
    }
    return this.describe(tenant, name);
  }

  /** Deletes the group, its progress, and its dead-letter and redrive topics. */
  async delete(tenant: string, name: string): Promise<boolean> {
    this.assertSupported();
    const id = runtimeId(tenant, name);
    const r = this.runtimes.get(id);
    if (r === undefined) return false;
    this.lock(id);
    try {
      r.stop();
      this.runtimes.delete(id);
      await deleteGroupProgress(this.state, tenant, name);
      for (const topic of [deadLetterTopic(name), redriveTopic(name)]) await this.log.deleteTopic({ tenant, topic });
      await this.state.delete(groupKey(tenant, name));
    } finally {
      this.changing.delete(id);
    }
    return true;
  }

  private assertSupported(): void {
    if (this.deps.unsupported !== undefined) throw new BatonError("ENGINE_UNSUPPORTED", this.deps.unsupported);
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

  /**
   * Writes the starting floor of every topic that exists now. Topics that appear later start at
   * their first event (they hold nothing older than the group). `"now"` on create means: after
   * what each topic holds at this moment.
   */
  private async writeStart(config: GroupConfig, start: StartPosition): Promise<void> {
    const { tenant } = config;
    const topics: string[] = [];
    if (isPattern(config.topic)) {
      let after: string | undefined;
      for (;;) {
        const page = await this.log.listTopics(tenant, { limit: 1000, ...(after === undefined ? {} : { after }) });
        for (const t of page) if (!isSystemTopic(t.name) && matchesPattern(config.topic, t.name)) topics.push(t.name);
        if (page.length < 1000) break;
        after = page[page.length - 1]!.name;
      }
    } else {
      topics.push(config.topic);
    }
    for (const topic of topics) {
      const info = await this.log.describeTopic({ tenant, topic });
      if (info === undefined) continue;
      let floor: number;
      switch (start.kind) {
        case "beginning":
          floor = info.firstSeq;
          break;
        case "now":
          floor = info.lastSeq + 1;
          break;
        case "seq":
          floor = start.seq;
          break;
        case "time":
          floor = await this.log.seqAtTime({ tenant, topic }, start.time);
          break;
      }
      const value: Json = { floor, epoch: info.epoch };
      await this.state.put(positionKey(tenant, config.name, topic), value);
    }
  }
}

function runtimeId(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}
