/**
 * @module engine/embedded/data-dir-lock
 * One Baton process per data dir: the embedded log keeps topic positions in memory, so a
 * second writer would hand out the same sequences. A pid file taken with O_EXCL guards it; a
 * file left by a process that no longer exists (kill -9) is taken over.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BatonError } from "../../errors/baton-error.ts";

export interface DataDirLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, "baton.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      return {
        release: () => {
          if (readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(readFileSync(file, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new BatonError("CONFLICT", `data dir ${dataDir} is in use by process ${holder}; run one Baton per data dir`, { cause: err });
      }
      rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock data dir ${dataDir}`);
}
