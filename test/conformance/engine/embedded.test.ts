import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine } from "../../../src/engine/embedded/embedded-engine.ts";
import { describeStateStore } from "./state-store.suite.ts";
import { describeEventLog, type EngineFactoryOptions, type EngineHandle } from "./event-log.suite.ts";

function openEmbedded(dir: string, options: EngineFactoryOptions): EngineHandle {
  const engine = EmbeddedEngine.open({
    dataDir: dir,
    dedupWindowMs: options.dedupWindowMs,
    defaultRetention: { maxAgeMs: 0, maxEvents: 0, maxBytes: 0 },
    now: options.now,
  });
  return {
    engine,
    async reopen() {
      await engine.close();
      return openEmbedded(dir, options);
    },
    async destroy() {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeEventLog("embedded", async (options) => openEmbedded(mkdtempSync(join(tmpdir(), "baton-conf-")), options));
describeStateStore("embedded", async (options) => openEmbedded(mkdtempSync(join(tmpdir(), "baton-conf-")), options));
