/**
 * @module edge/http/services
 * What the HTTP handlers depend on; built by the composition root.
 */
import type { BatonConfig } from "../../config/config.ts";
import type { Broker, EventLog } from "../../engine/engine.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { TokenVerifier } from "../auth/tokens.ts";
import type { GroupDirectory } from "../../streams/groups/group-handle.ts";
import type { GroupCommands } from "../groups/group-commands.ts";
import type { CoordinationCommands } from "../groups/coordination-commands.ts";

export interface HttpServices {
  readonly config: BatonConfig;
  readonly log: EventLog;
  readonly broker: Broker;
  readonly groups: GroupDirectory;
  readonly groupCommands: GroupCommands;
  readonly coordination: CoordinationCommands;
  readonly verifier: TokenVerifier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Engine name for /readyz. */
  readonly engineName: string;
  /** Cluster mode: this node's id (as group descriptions name leaders). */
  readonly nodeId?: string;
  /** False while starting or draining: /readyz answers 503 and writes get UNAVAILABLE. */
  readonly isReady: () => boolean;
  /** Starts draining this node's sockets (admin call); resolves with the sockets it had. */
  readonly drain: () => number;
}
