/**
 * @module engine/embedded/data-dir-lock
 * One Baton process per data dir: the embedded log keeps topic positions in memory, so a
 * second writer would hand out the same sequences. A pid file taken with O_EXCL guards it; a
 * file left by a process that no longer runs (kill -9) is taken over.
 *
 * "Still runs" is checked as precisely as the system allows. The file also records the
 * process's start time (Linux: from /proc), so a pid reused by an unrelated process after a
 * crash does not hold the dir, and a killed process that its parent has not reaped yet (a
 * zombie, which `kill(pid, 0)` still finds) does not either. Without /proc only the pid counts.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BatonError } from "../../errors/baton-error.ts";

export interface DataDirLock {
  release(): void;
}

interface ProcStat {
  readonly state: string;
  readonly startTime: string;
}

/** State and start time of a process from /proc/<pid>/stat; undefined where there is no /proc or no such process. */
function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = rest[0];
    const startTime = rest[19];
    return state === undefined || startTime === undefined ? undefined : { state, startTime };
  } catch {
    return undefined;
  }
}

function runs(pid: number, startTime: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(pid);
  if (stat === undefined) return true;
  if (stat.state === "Z" || stat.state === "X") return false;
  return startTime === undefined || stat.startTime === startTime;
}

export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, "baton.pid");
  const own = procStat(process.pid)?.startTime;
  const content = own === undefined ? `${process.pid}\n` : `${process.pid} ${own}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, content, { flag: "wx" });
      return {
        release: () => {
          if (readFileSync(file, "utf8") === content) rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const [pidText, startTime] = readFileSync(file, "utf8").trim().split(" ");
      const holder = Number(pidText);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && runs(holder, startTime)) {
        throw new BatonError("CONFLICT", `data dir ${dataDir} is in use by process ${holder}; run one Baton per data dir`, { cause: err });
      }
      rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock data dir ${dataDir}`);
}
