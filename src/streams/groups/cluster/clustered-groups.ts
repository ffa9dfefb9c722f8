/**
 * @module streams/groups/cluster/clustered-groups
 * Consumer groups on a clustered engine. Each group runs on exactly one node at a time, its
 * leader (a lease in the StateStore, see GroupLeadership), so per-key order, maxInFlight and
 * attempts are kept by one runtime exactly as in a single process. Every other node reaches
 * the leader over the NodeBus at the group's address:
 *
 * - a socket member on a follower is announced to the leader by heartbeats (every
 *   HEARTBEAT_MS, and at once when it joins or a new leader announces itself); the leader
 *   adds it as a member whose deliveries it sends to the follower's node address;
 * - pull, ack, nack, term, extend, describe, reset and delete are requests to the leader.
 *
 * Nothing a follower holds is needed by anyone else. When a leader dies its lease runs out,
 * another node loads the group's progress from the StateStore and leads; deliveries that were
 * in flight come back after their leases, as after a restart of a single node.
 *
 * Leadership is balanced: every node announces how many groups it leads with its heartbeats, a
 * node leading at least two more than the least loaded one hands one group over per round
 * (stopping it and saving its in-flight deliveries first, as on shutdown, so their acks still
 * count at the next leader), and a node at or above its fair share leaves free leases to the
 * nodes below it for a ttl. So groups spread over the nodes again after a restart or a scale-out.
 */
import { BatonError, isBatonError } from "../../../errors/baton-error.ts";
import type { EventLog, NodeBus, StateStore } from "../../../engine/engine.ts";
import type { Json } from "../../event.ts";
import { groupConfigFromJson, groupConfigJson, parseStart, startJson, type GroupConfig, type StartPosition } from "../group-config.ts";
import type { DeliveryWork, GroupDirectory, GroupHandle, GroupInfo } from "../group-handle.ts";
import { destroyGroup, groupLag, rewindGroup, writeStartPositions } from "../group-lifecycle.ts";
import type { Delivery, MemberSink } from "../group-model.ts";
import { GroupRuntime, type GroupDeps } from "../group-runtime.ts";
import { groupKey, groupPrefix, scanAll } from "../group-state.ts";
import type { GroupStatus } from "../group-status.ts";
import { GroupLeadership } from "./group-leadership.ts";

/** Followers tell the leader which members they hold this often. */
export const HEARTBEAT_MS = 2000;
/** A follower's member the leader has not heard of for this long is gone (its node died). */
const MEMBER_TIMEOUT_MS = 3 * HEARTBEAT_MS + 1000;
/** How often every node re-reads the group definitions (creates and deletes elsewhere). */
const SCAN_MS = 2000;

/** Leaders re-read their caught-up topics this often: a wake-up from another node can be lost. */
const RECHECK_MS = 2000;

export interface ClusterDeps extends GroupDeps {
  readonly bus: NodeBus;
  /** How long a group's leader lease lasts without renewal, ms (failover time after a crash). */
  readonly leaderTtlMs: number;
  /** How often a node over its share hands one group to a less loaded node, ms; 0 = never. */
  readonly rebalanceMs?: number;
}

/** A node's load as it last announced it. */
interface NodeLoad {
  leading: number;
  seen: number;
}

type Op =
  | { op: "members"; node: string; members: { id: string; maxInFlight: number }[] }
  | { op: "leave"; member: string }
  | { op: "pull"; consumer: string; max: number; maxInFlight: number; waitMs: number }
  | { op: "ack"; tokens: string[] }
  | { op: "nack"; token: string; reason?: string; delayMs?: number }
  | { op: "term"; token: string; reason?: string }
  | { op: "extend"; token: string; leaseMs?: number }
  | { op: "work"; token: string }
  | { op: "describe" }
  | { op: "reset"; start: Json }
  | { op: "delete" };

type AckResult = { ok: true } | { ok: false; code: string; message: string };

interface NodeDelivery {
  readonly group: string;
  readonly member: string;
  readonly deliveries: Delivery[];
}

type Announcement = { kind: "leader"; id: string; node: string } | { kind: "gone"; id: string } | { kind: "load"; node: string; leading: number };

interface RemoteMember {
  readonly node: string;
  readonly sink: MemberSink;
  seen: number;
}

function idOf(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}

function split(id: string): [string, string] {
  const cut = id.indexOf("/");
  return [id.slice(0, cut), id.slice(cut + 1)];
}

function groupAddress(id: string): string[] {
  return ["grp", ...split(id)];
}

export class ClusteredGroups implements GroupDirectory {
  private readonly deps: ClusterDeps;
  private readonly bus: NodeBus;
  private readonly log: EventLog;
  private readonly state: StateStore;
  private readonly now: () => number;
  /** Every group this node knows of. */
  private readonly configs = new Map<string, GroupConfig>();
  /** The groups this node leads. */
  private readonly runtimes = new Map<string, GroupRuntime>();
  private readonly serving = new Map<string, () => void>();
  /** Socket members connected to this node, by group. */
  private readonly local = new Map<string, Map<string, MemberSink>>();
  /** Members on other nodes of the groups this node leads. */
  private readonly remote = new Map<string, Map<string, RemoteMember>>();
  private readonly handles = new Map<string, ClusterGroupHandle>();
  /** Groups being reset or deleted here: one change at a time. */
  private readonly changing = new Set<string>();
  private readonly leadership: GroupLeadership;
  /** Other nodes' announced loads. */
  private readonly loads = new Map<string, NodeLoad>();
  /** Groups this node handed over, until when it leaves them to the others. */
  private readonly yielded = new Map<string, number>();
  private readonly stops: (() => void)[] = [];
  private closed = false;

  constructor(deps: ClusterDeps) {
    this.deps = { recheckMs: RECHECK_MS, ...deps };
    this.bus = deps.bus;
    this.log = deps.log;
    this.state = deps.state;
    this.now = deps.now ?? Date.now;
    this.leadership = new GroupLeadership({
      state: deps.state,
      nodeId: deps.bus.nodeId,
      ttlMs: deps.leaderTtlMs,
      now: this.now,
      onGain: (id) => this.lead(id),
      onLose: (id) => this.follow(id),
      onError: (err, what) => this.onError(err, what),
      deferFree: (id) => this.deferFree(id),
    });
  }

  get nodeId(): string {
    return this.bus.nodeId;
  }

  /** Whether this node leads the group (for tests and the admin view). */
  leads(tenant: string, name: string): boolean {
    return this.runtimes.has(idOf(tenant, name));
  }

  async start(): Promise<void> {
    this.stops.push(this.bus.serve(["node", this.nodeId], (m) => this.onNodeDelivery(m as NodeDelivery)));
    this.stops.push(this.bus.serve(["groups"], (m) => this.onAnnouncement(m as Announcement)));
    await this.scan();
    this.leadership.start();
    const every = (ms: number, fn: () => Promise<void> | void): void => {
      const t = setInterval(() => {
        Promise.resolve()
          .then(fn)
          .catch((err: unknown) => this.onError(err, "consumer group cluster upkeep"));
      }, ms);
      t.unref();
      this.stops.push(() => clearInterval(t));
    };
    every(SCAN_MS, () => this.scan());
    every(HEARTBEAT_MS, () => {
      for (const id of this.local.keys()) this.heartbeat(id);
      this.expireRemoteMembers();
      this.bus.send(["groups"], { kind: "load", node: this.nodeId, leading: this.runtimes.size } satisfies Announcement);
    });
    const rebalanceMs = this.deps.rebalanceMs ?? 5000;
    if (rebalanceMs > 0) every(rebalanceMs, () => this.rebalance());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stops.splice(0)) stop();
    for (const r of this.runtimes.values()) r.stop();
    await Promise.all([...this.runtimes.values()].map((r) => r.recordInFlight()));
    // Gives every lease back, so the other nodes take the groups over without waiting a ttl.
    await this.leadership.close();
  }

  async create(config: GroupConfig): Promise<GroupInfo> {
    const id = idOf(config.tenant, config.name);
    try {
      await this.leadership.claim(id, async () => {
        try {
          await this.state.put(groupKey(config.tenant, config.name), groupConfigJson(config), { expectRevision: 0 });
        } catch (err) {
          if (isBatonError(err) && err.code === "CONFLICT") throw new BatonError("GROUP_EXISTS", `consumer group ${config.name} already exists`);
          throw err;
        }
        await writeStartPositions(this.log, this.state, config, config.start);
        this.configs.set(id, config);
      });
    } catch (err) {
      if (isBatonError(err) && err.code === "CONFLICT") {
        if ((await this.state.get(groupKey(config.tenant, config.name))) !== undefined) throw new BatonError("GROUP_EXISTS", `consumer group ${config.name} already exists`);
        throw new BatonError("CONFLICT", `consumer group ${config.name} is being created or deleted by another request; retry`);
      }
      throw err;
    }
    return this.describe(config.tenant, config.name);
  }

  handle(tenant: string, name: string): Promise<GroupHandle> {
    return this.handleOf(tenant, name);
  }

  private async handleOf(tenant: string, name: string): Promise<ClusterGroupHandle> {
    const id = idOf(tenant, name);
    let config = this.configs.get(id);
    if (config === undefined) {
      // Created on another node since the last scan.
      const entry = await this.state.get(groupKey(tenant, name));
      if (entry === undefined) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${name.slice(0, 120)}`);
      config = groupConfigFromJson(tenant, entry.value);
      this.know(id, config);
    }
    let h = this.handles.get(id);
    if (h === undefined) {
      h = new ClusterGroupHandle(this, id);
      this.handles.set(id, h);
    }
    return h;
  }

  async describe(tenant: string, name: string): Promise<GroupInfo> {
    const h = await this.handleOf(tenant, name);
    const { config, status, node } = (await this.call(h.id, { op: "describe" })) as { config: Json; status: GroupStatus; node: string };
    return { config: groupConfigFromJson(tenant, config), status, lag: await groupLag(this.log, tenant, status), leader: node };
  }

  async list(tenant: string): Promise<GroupConfig[]> {
    const out: GroupConfig[] = [];
    await scanAll(this.state, groupPrefix(tenant), (_key, value) => out.push(groupConfigFromJson(tenant, value)));
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async reset(tenant: string, name: string, start: StartPosition): Promise<GroupInfo> {
    const h = await this.handleOf(tenant, name);
    await this.call(h.id, { op: "reset", start: startJson(start) });
    return this.describe(tenant, name);
  }

  async delete(tenant: string, name: string): Promise<boolean> {
    let h: ClusterGroupHandle;
    try {
      h = await this.handleOf(tenant, name);
    } catch (err) {
      if (isBatonError(err) && err.code === "GROUP_NOT_FOUND") return false;
      throw err;
    }
    return (await this.call(h.id, { op: "delete" })) as boolean;
  }

  running(): Iterable<GroupRuntime> {
    return this.runtimes.values();
  }

  // ---- reaching the leader ---------------------------------------------------------------

  /**
   * Runs `op` on the group's leader: here if this node leads, else over the bus. While no
   * node leads (a failover), it retries until a leader could have taken over.
   */
  async call(id: string, op: Op, timeoutMs = 10_000): Promise<unknown> {
    const deadline = this.now() + this.deps.leaderTtlMs + 3000;
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      try {
        if (this.runtimes.has(id)) return await this.serve(id, op);
        const t0 = this.now();
        try {
          return await this.bus.request(groupAddress(id), op, timeoutMs);
        } finally {
          if (this.now() - t0 > 2000 + (op.op === "pull" ? op.waitMs : 0)) this.onError(new Error(`slow ${op.op}: ${this.now() - t0} ms`), `request to the leader of group ${id}`);
        }
      } catch (err) {
        const leaderless = isBatonError(err) && err.code === "UNAVAILABLE" && (err.details?.["reason"] === "no-responders" || err.details?.["reason"] === "moved");
        if (!leaderless || this.now() + wait > deadline || this.closed) throw err;
      }
      await new Promise((r) => setTimeout(r, wait));
      if (!this.configs.has(id)) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${split(id)[1].slice(0, 120)}`);
    }
  }

  addMember(id: string, sink: MemberSink): void {
    let members = this.local.get(id);
    if (members === undefined) {
      members = new Map();
      this.local.set(id, members);
    }
    if (members.has(sink.id)) throw new BatonError("VALIDATION_FAILED", `member ${sink.id} already consumes group ${split(id)[1]}`);
    members.set(sink.id, sink);
    const runtime = this.runtimes.get(id);
    if (runtime !== undefined) runtime.addMember(sink);
    else this.heartbeat(id);
  }

  removeMember(id: string, member: string): void {
    const members = this.local.get(id);
    if (members?.delete(member) !== true) return;
    if (members.size === 0) this.local.delete(id);
    const runtime = this.runtimes.get(id);
    if (runtime !== undefined) runtime.removeMember(member);
    else this.bus.send(groupAddress(id), { op: "leave", member } satisfies Op);
  }

  configOf(id: string): GroupConfig {
    const c = this.configs.get(id);
    if (c === undefined) throw new BatonError("GROUP_NOT_FOUND", `no consumer group ${split(id)[1].slice(0, 120)}`);
    return c;
  }

  private heartbeat(id: string): void {
    if (this.runtimes.has(id)) return;
    const members = [...(this.local.get(id)?.values() ?? [])].map((s) => ({ id: s.id, maxInFlight: s.maxInFlight }));
    this.bus.send(groupAddress(id), { op: "members", node: this.nodeId, members } satisfies Op);
  }

  // ---- leading ---------------------------------------------------------------------------

  private async lead(id: string): Promise<void> {
    const [tenant, name] = split(id);
    // The store, not this node's cache, says whether the group still exists and how it is set.
    const entry = await this.state.get(groupKey(tenant, name));
    if (entry === undefined) {
      this.forget(id);
      throw new BatonError("GROUP_NOT_FOUND", `consumer group ${name} was deleted`);
    }
    const config = groupConfigFromJson(tenant, entry.value);
    this.configs.set(id, config);
    const runtime = new GroupRuntime(config, this.deps);
    await runtime.start();
    if (!this.leadership.isLeader(id) || this.closed) {
      runtime.stop();
      return;
    }
    this.runtimes.set(id, runtime);
    this.remote.set(id, new Map());
    this.serving.set(id, this.bus.serve(groupAddress(id), (m) => this.serve(id, m as Op)));
    for (const sink of this.local.get(id)?.values() ?? []) runtime.addMember(sink);
    this.bus.send(["groups"], { kind: "leader", id, node: this.nodeId } satisfies Announcement);
  }

  /** Leadership of `id` ended here: stop at once; local members go to the next leader. */
  private follow(id: string): void {
    const runtime = this.runtimes.get(id);
    this.runtimes.delete(id);
    this.remote.delete(id);
    this.serving.get(id)?.();
    this.serving.delete(id);
    runtime?.stop();
  }

  /** An operation at the leader. */
  private async serve(id: string, op: Op): Promise<unknown> {
    const runtime = this.runtimes.get(id);
    if (runtime === undefined) throw new BatonError("UNAVAILABLE", "this node no longer leads the group; retry", { details: { reason: "moved" } });
    switch (op.op) {
      case "members":
        this.reconcileMembers(id, runtime, op.node, op.members);
        return null;
      case "leave":
        this.remote.get(id)?.delete(op.member);
        runtime.removeMember(op.member);
        return null;
      case "pull":
        return runtime.pull(op.consumer, op.max, op.maxInFlight, op.waitMs);
      case "ack":
        return Promise.all(
          op.tokens.map((t) =>
            runtime.ack(t).then(
              (): AckResult => ({ ok: true }),
              (err: unknown): AckResult => {
                if (!isBatonError(err)) throw err;
                return { ok: false, code: err.code, message: err.message };
              },
            ),
          ),
        );
      case "nack":
        await runtime.nack(op.token, op.reason, op.delayMs);
        return null;
      case "term":
        await runtime.term(op.token, op.reason);
        return null;
      case "extend":
        return runtime.extend(op.token, op.leaseMs);
      case "work":
        return runtime.workOf(op.token);
      case "describe":
        return { config: groupConfigJson(runtime.config), status: runtime.describe(), node: this.nodeId };
      case "reset":
        await this.resetHere(id, runtime, parseStart(op.start));
        return null;
      case "delete":
        await this.deleteHere(id, runtime);
        return true;
    }
  }

  private reconcileMembers(id: string, runtime: GroupRuntime, node: string, members: { id: string; maxInFlight: number }[]): void {
    const known = this.remote.get(id)!;
    const now = this.now();
    const listed = new Set<string>();
    for (const m of members) {
      listed.add(m.id);
      const r = known.get(m.id);
      if (r !== undefined) {
        r.seen = now;
        r.sink.maxInFlight = m.maxInFlight;
        continue;
      }
      const sink: MemberSink = {
        id: m.id,
        kind: "push",
        maxInFlight: m.maxInFlight,
        deliver: (deliveries) => this.bus.send(["node", node], { group: id, member: m.id, deliveries } satisfies NodeDelivery),
      };
      try {
        runtime.addMember(sink);
      } catch (err) {
        this.onError(err, `member ${m.id} of group ${id}`);
        continue;
      }
      known.set(m.id, { node, sink, seen: now });
    }
    // The heartbeat is the node's whole list for this group: the rest left.
    for (const [mid, r] of known) {
      if (r.node === node && !listed.has(mid)) {
        known.delete(mid);
        runtime.removeMember(mid);
      }
    }
  }

  private expireRemoteMembers(): void {
    const cutoff = this.now() - MEMBER_TIMEOUT_MS;
    for (const [id, known] of this.remote) {
      const runtime = this.runtimes.get(id);
      for (const [mid, r] of known) {
        if (r.seen >= cutoff) continue;
        known.delete(mid);
        runtime?.removeMember(mid);
      }
    }
  }

  private async resetHere(id: string, old: GroupRuntime, start: StartPosition): Promise<void> {
    this.lock(id);
    try {
      this.runtimes.delete(id);
      old.stop();
      const config = { ...old.config, start };
      await rewindGroup(this.log, this.state, config);
      this.configs.set(id, config);
      const runtime = new GroupRuntime(config, this.deps);
      await runtime.start();
      if (!this.leadership.isLeader(id)) {
        runtime.stop();
        return;
      }
      this.runtimes.set(id, runtime);
      for (const sink of old.pushMembers()) runtime.addMember(sink);
    } finally {
      this.changing.delete(id);
    }
  }

  private async deleteHere(id: string, runtime: GroupRuntime): Promise<void> {
    this.lock(id);
    try {
      this.runtimes.delete(id);
      runtime.stop();
      const [tenant, name] = split(id);
      await destroyGroup(this.log, this.state, tenant, name);
      this.forget(id);
      this.bus.send(["groups"], { kind: "gone", id } satisfies Announcement);
    } finally {
      this.changing.delete(id);
    }
  }

  private lock(id: string): void {
    if (this.changing.has(id)) throw new BatonError("CONFLICT", "the group is being changed by another request; retry");
    this.changing.add(id);
  }

  // ---- knowing the groups ----------------------------------------------------------------

  private know(id: string, config: GroupConfig): void {
    if (!this.configs.has(id)) this.configs.set(id, config);
    this.leadership.track(id);
  }

  /** The group no longer exists: drop it and stop contending for it. */
  private forget(id: string): void {
    this.configs.delete(id);
    this.local.delete(id);
    this.handles.delete(id);
    this.follow(id);
    this.leadership.release(id).catch((err: unknown) => this.onError(err, `release of group ${id}`));
  }

  private async scan(): Promise<void> {
    const seen = new Set<string>();
    await scanAll(this.state, groupPrefix(), (key, value) => {
      const tenant = key.split("/")[1]!;
      const config = groupConfigFromJson(tenant, value);
      const id = idOf(tenant, config.name);
      seen.add(id);
      this.know(id, config);
    });
    for (const id of [...this.leadership.tracked()]) {
      // A group this node leads or is creating is never forgotten on a scan (its write may be newer).
      if (!seen.has(id) && !this.leadership.isLeader(id)) this.forget(id);
    }
  }

  private onNodeDelivery(m: NodeDelivery): void {
    // A member that left meanwhile: its deliveries come back to the group after their lease.
    this.local.get(m.group)?.get(m.member)?.deliver(m.deliveries);
  }

  private onAnnouncement(m: Announcement): void {
    if (m.kind === "load") {
      if (m.node !== this.nodeId) this.loads.set(m.node, { leading: m.leading, seen: this.now() });
      return;
    }
    if (m.kind === "gone") {
      if (this.configs.has(m.id) && !this.runtimes.has(m.id)) this.forget(m.id);
      return;
    }
    if (m.node !== this.nodeId && this.local.has(m.id)) this.heartbeat(m.id);
  }

  private onError(err: unknown, what: string): void {
    this.deps.onError?.(err, what);
  }

  // ---- balance ------------------------------------------------------------------------------

  /** Live nodes' loads, this one included; a node silent for MEMBER_TIMEOUT_MS is gone. */
  private liveLoads(): { mine: number; others: number[] } {
    const cutoff = this.now() - MEMBER_TIMEOUT_MS;
    const others: number[] = [];
    for (const [node, load] of this.loads) {
      if (load.seen < cutoff) this.loads.delete(node);
      else others.push(load.leading);
    }
    return { mine: this.runtimes.size, others };
  }

  private fairShare(mine: number, others: readonly number[]): number {
    return Math.ceil(others.reduce((a, b) => a + b, mine) / (others.length + 1));
  }

  private deferFree(id: string): boolean {
    const until = this.yielded.get(id);
    if (until !== undefined) {
      if (until > this.now()) return true;
      this.yielded.delete(id);
    }
    const { mine, others } = this.liveLoads();
    const fair = this.fairShare(mine + 1, others);
    return mine >= fair && others.some((n) => n < fair);
  }

  /** Hands one group to the other nodes when this node leads two or more above the least loaded. */
  private async rebalance(): Promise<void> {
    const { mine, others } = this.liveLoads();
    if (others.length === 0 || this.closed) return;
    if (mine <= this.fairShare(mine, others) || mine - Math.min(...others) < 2) return;
    const id = [...this.runtimes.keys()].find((g) => !this.changing.has(g));
    if (id === undefined) return;
    const runtime = this.runtimes.get(id)!;
    this.lock(id);
    try {
      // Left to the others for a few ttls; after that this node may take it again like any other.
      this.yielded.set(id, this.now() + 3 * this.deps.leaderTtlMs);
      // Stops serving and running it here (giveUp's onLose then finds nothing left to stop).
      this.follow(id);
      // As on shutdown: the next leader honours these deliveries' acks instead of redelivering.
      await runtime.recordInFlight();
      await this.leadership.giveUp(id);
    } finally {
      this.changing.delete(id);
    }
  }
}

/** A group as the edge holds it in a cluster: each call goes to wherever the group runs. */
class ClusterGroupHandle implements GroupHandle {
  readonly id: string;
  private readonly groups: ClusteredGroups;
  private acks: { token: string; resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(groups: ClusteredGroups, id: string) {
    this.groups = groups;
    this.id = id;
  }

  get config(): GroupConfig {
    return this.groups.configOf(this.id);
  }

  addMember(sink: MemberSink): void {
    this.groups.addMember(this.id, sink);
  }

  removeMember(id: string): void {
    this.groups.removeMember(this.id, id);
  }

  async pull(consumer: string, max: number, maxInFlight: number, waitMs: number): Promise<Delivery[]> {
    return (await this.groups.call(this.id, { op: "pull", consumer, max, maxInFlight, waitMs }, waitMs + 10_000)) as Delivery[];
  }

  /** Acks issued in the same turn travel to the leader as one request. */
  ack(token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.acks.push({ token, resolve, reject });
      if (this.acks.length === 1) queueMicrotask(() => this.flushAcks());
    });
  }

  private flushAcks(): void {
    const batch = this.acks;
    this.acks = [];
    this.groups.call(this.id, { op: "ack", tokens: batch.map((a) => a.token) }).then(
      (results) => {
        (results as AckResult[]).forEach((r, i) => {
          const a = batch[i]!;
          if (r.ok) a.resolve();
          else a.reject(new BatonError(r.code as "DELIVERY_NOT_HELD", r.message));
        });
      },
      (err: unknown) => {
        for (const a of batch) a.reject(err);
      },
    );
  }

  async nack(token: string, reason: string | undefined, delayMs: number | undefined): Promise<void> {
    await this.groups.call(this.id, { op: "nack", token, ...(reason === undefined ? {} : { reason }), ...(delayMs === undefined ? {} : { delayMs }) });
  }

  async term(token: string, reason: string | undefined): Promise<void> {
    await this.groups.call(this.id, { op: "term", token, ...(reason === undefined ? {} : { reason }) });
  }

  async extend(token: string, leaseMs: number | undefined): Promise<number> {
    return (await this.groups.call(this.id, { op: "extend", token, ...(leaseMs === undefined ? {} : { leaseMs }) })) as number;
  }

  async workOf(token: string): Promise<DeliveryWork> {
    return (await this.groups.call(this.id, { op: "work", token })) as DeliveryWork;
  }

  async describe(): Promise<GroupStatus> {
    return ((await this.groups.call(this.id, { op: "describe" })) as { status: GroupStatus }).status;
  }
}
