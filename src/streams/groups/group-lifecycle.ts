/**
 * @module streams/groups/group-lifecycle
 * The stored side of creating, resetting and deleting a group, shared by the single-process
 * ConsumerGroups and the clustered one: where a group starts on each topic, and what a delete
 * removes. Only the node that runs the group calls these for an existing group, so no runtime
 * writes progress behind them.
 */
import type { EventLog, StateStore } from "../../engine/engine.ts";
import type { Json } from "../event.ts";
import { matchesPattern } from "../names.ts";
import { deadLetterTopic, groupConfigJson, isSystemTopic, redriveTopic, type GroupConfig, type StartPosition } from "./group-config.ts";
import { isPattern } from "./group-model.ts";
import { deleteGroupProgress, groupKey, positionKey } from "./group-state.ts";
import type { GroupStatus } from "./group-status.ts";

/**
 * Writes the starting floor of every topic that exists now. Topics that appear later start at
 * their first event (they hold nothing older than the group). `"now"` on create means: after
 * what each topic holds at this moment.
 */
export async function writeStartPositions(log: EventLog, state: StateStore, config: GroupConfig, start: StartPosition): Promise<void> {
  const { tenant } = config;
  const topics: string[] = [];
  if (isPattern(config.topic)) {
    let after: string | undefined;
    for (;;) {
      const page = await log.listTopics(tenant, { limit: 1000, ...(after === undefined ? {} : { after }) });
      for (const t of page) if (!isSystemTopic(t.name) && matchesPattern(config.topic, t.name)) topics.push(t.name);
      if (page.length < 1000) break;
      after = page[page.length - 1]!.name;
    }
  } else {
    topics.push(config.topic);
  }
  for (const topic of topics) {
    const info = await log.describeTopic({ tenant, topic });
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
        floor = await log.seqAtTime({ tenant, topic }, start.time);
        break;
    }
    const value: Json = { floor, epoch: info.epoch };
    await state.put(positionKey(tenant, config.name, topic), value);
  }
}

/** Drops what the group has done and writes its new start (its runtime must be stopped). */
export async function rewindGroup(log: EventLog, state: StateStore, config: GroupConfig): Promise<void> {
  await deleteGroupProgress(state, config.tenant, config.name);
  await state.put(groupKey(config.tenant, config.name), groupConfigJson(config));
  await writeStartPositions(log, state, config, config.start);
}

/** Removes the group's progress, its dead-letter and redrive topics, then its definition. */
export async function destroyGroup(log: EventLog, state: StateStore, tenant: string, name: string): Promise<void> {
  await deleteGroupProgress(state, tenant, name);
  for (const topic of [deadLetterTopic(name), redriveTopic(name)]) await log.deleteTopic({ tenant, topic });
  await state.delete(groupKey(tenant, name));
}

/** Events published to the group's topics that it has not read yet. */
export async function groupLag(log: EventLog, tenant: string, status: GroupStatus): Promise<number> {
  let lag = 0;
  for (const p of status.partitions) {
    const info = await log.describeTopic({ tenant, topic: p.topic });
    if (info !== undefined) lag += Math.max(0, info.lastSeq + 1 - p.cursor);
  }
  return lag;
}
