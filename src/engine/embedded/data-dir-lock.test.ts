import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockDataDir } from "./data-dir-lock.ts";

const linux = existsSync("/proc/self/stat");

function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

test("a running holder keeps the dir; a dead one, or a pid now used by another process, does not", { skip: linux ? false : "needs /proc" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-lock-"));
  const other = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await new Promise((r) => other.once("spawn", r));
    const pid = other.pid!;
    const file = join(dir, "baton.pid");

    writeFileSync(file, `${pid} ${startTimeOf(pid)}\n`);
    assert.throws(() => lockDataDir(dir), { code: "CONFLICT", message: new RegExp(`in use by process ${pid}`) });

    // The same pid with another start time: the recorded process is gone and the pid was reused.
    writeFileSync(file, `${pid} 1\n`);
    const lock = lockDataDir(dir);
    assert.match(readFileSync(file, "utf8"), new RegExp(`^${process.pid} \\d+\\n$`));
    lock.release();
    assert.equal(existsSync(file), false);

    // An old-format file (pid only) of a running process still holds the dir.
    writeFileSync(file, `${pid}\n`);
    assert.throws(() => lockDataDir(dir), { code: "CONFLICT" });

    other.kill("SIGKILL");
    await new Promise((r) => other.once("exit", r));
    lockDataDir(dir).release();
  } finally {
    other.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
