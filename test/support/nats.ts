/**
 * The NATS server the NATS-engine tests and benchmark use: whether it is reachable, and removing
 * everything one engine prefix created (its streams and KV buckets).
 */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

/** Undefined when JetStream answers at `servers`, else why not. */
export async function natsUnreachable(servers: string): Promise<string | undefined> {
  try {
    const nc = await connect({ servers, timeout: 2000, reconnect: false });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
    } finally {
      await nc.close();
    }
    return undefined;
  } catch (err) {
    return `NATS JetStream at ${servers} is unreachable (${(err as Error).message})`;
  }
}

/** Deletes every stream and bucket of an engine prefix. */
export async function removeNatsPrefix(servers: string, prefix: string): Promise<void> {
  const nc = await connect({ servers });
  try {
    const jsm = await jetstreamManager(nc);
    const upper = prefix.toUpperCase();
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (name.startsWith(`${upper}_`) || name.startsWith(`KV_${upper}_`)) names.push(name);
    await Promise.all(names.map((n) => jsm.streams.delete(n)));
  } finally {
    await nc.close();
  }
}
