/**
 * Several real Baton processes on one NATS prefix (a cluster), the stand-in for a load
 * balancer in front of them, and the skip rule of every NATS test: without a reachable server
 * the test skips with a message, except under CI=true, where that fails the run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as tcpConnect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { startBaton, type BatonProcess } from "./start-baton.ts";
import { natsUnreachable, removeNatsPrefix } from "./nats.ts";

export const NATS_SERVERS = process.env["BATON_TEST_NATS"] ?? "nats://127.0.0.1:4222";

/** Resolves true when NATS is reachable; otherwise registers a skipping (or, on CI, failing) test named `what`. */
export async function requireNats(what: string): Promise<boolean> {
  const why = await natsUnreachable(NATS_SERVERS);
  if (why === undefined) return true;
  if (process.env["CI"] === "true") test(what, () => assert.fail(`${why}; CI=true requires it (start nats-server -js)`));
  else test(what, { skip: `${why}; start nats-server -js to run it` }, () => undefined);
  return false;
}

export class Cluster {
  readonly nodes: BatonProcess[];
  readonly env: Record<string, string>;

  private constructor(nodes: BatonProcess[], env: Record<string, string>) {
    this.nodes = nodes;
    this.env = env;
  }

  /** `size` nodes on a fresh prefix; `env` is added to every node's environment. */
  static async start(size: number, env: Record<string, string> = {}): Promise<Cluster> {
    const all = { BATON_ENGINE: NATS_SERVERS, BATON_NATS_PREFIX: `c${randomBytes(4).toString("hex")}`, ...env };
    const nodes = await Promise.all(Array.from({ length: size }, () => startBaton({ env: all })));
    return new Cluster(nodes, all);
  }

  /** SIGKILL node `i` (revive starts it again). */
  async kill9(i: number): Promise<void> {
    await this.nodes[i]!.kill9();
  }

  /** Starts node `i` again on its port (after kill9 or stop). */
  async revive(i: number): Promise<void> {
    const old = this.nodes[i]!;
    this.nodes[i] = await startBaton({ env: this.env, port: old.port, dataDir: old.dataDir });
  }

  /** SIGTERM node `i` (it drains), then starts it again on its port. */
  async restart(i: number): Promise<void> {
    await this.nodes[i]!.stop();
    await this.revive(i);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.destroy()));
    await removeNatsPrefix(NATS_SERVERS, this.env["BATON_NATS_PREFIX"]!);
  }
}

/**
 * A TCP load balancer: each new connection goes to the first port of `ports()` that accepts
 * it, so clients of a node that died reconnect to another one.
 */
export class Balancer {
  private readonly server: Server;
  private readonly sockets: Set<Socket>;

  private constructor(server: Server, sockets: Set<Socket>) {
    this.server = server;
    this.sockets = sockets;
  }

  static async start(ports: () => number[]): Promise<Balancer> {
    const sockets = new Set<Socket>();
    const server = createTcpServer((inbound) => {
      sockets.add(inbound);
      inbound.on("error", () => inbound.destroy());
      const pick = (candidates: number[]): void => {
        if (candidates.length === 0) {
          inbound.destroy();
          return;
        }
        const outbound = tcpConnect(candidates[0]!, "127.0.0.1");
        const failed = (): void => pick(candidates.slice(1));
        outbound.once("error", failed);
        outbound.once("connect", () => {
          outbound.off("error", failed);
          sockets.add(outbound);
          inbound.pipe(outbound).pipe(inbound);
          const end = (): void => {
            inbound.destroy();
            outbound.destroy();
          };
          inbound.once("close", end);
          outbound.once("close", end);
          outbound.on("error", end);
        });
      };
      pick(ports());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return new Balancer(server, sockets);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}
