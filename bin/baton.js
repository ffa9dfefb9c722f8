#!/usr/bin/env node
// Baton's sources are TypeScript run directly by Node >= 22.18 (native type stripping). On an
// older `node` on PATH, re-run this script with the Node 24 that the project pins as a dev
// dependency, so `./bin/baton.js` works on a machine whose system Node is older.
//
// `baton start` also caps V8's young generation (--max-semi-space-size=16, the old default).
// Node 24 lets it grow to 64 MiB per semi-space under a burst of allocation (a few thousand
// sockets connecting) and keeps it while idle: about 100 MiB of RSS that served no connection,
// with no measured gain in delivery or publish throughput (docs/benchmarks.md, "Memory per idle
// connection"). V8 reads this flag only at startup, so the process re-executes itself in place
// (same pid) with it. A --max-semi-space-size of the user's own, on the command line or in
// NODE_OPTIONS, wins.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const V8_FLAGS = ["--max-semi-space-size=16"];
const script = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const userSetsSemiSpace = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some((a) => a.startsWith("--max-semi-space-size"));
const v8Flags = args[0] === "start" && !userSetsSemiSpace ? V8_FLAGS : [];

const [major, minor] = process.versions.node.split(".").map(Number);
if (major > 22 || (major === 22 && minor >= 18)) {
  if (v8Flags.length > 0 && typeof process.execve === "function") {
    try {
      process.execve(process.execPath, [process.execPath, ...v8Flags, ...process.execArgv, script, ...args], process.env);
    } catch {
      // Where the process cannot be replaced (execve refused), run with Node's defaults.
    }
  }
  await import("../src/cli/main.ts");
} else {
  const pinned = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(`baton needs Node.js >= 22.18 (found ${process.version}); run \`npm ci\` to install the pinned Node 24\n`);
    process.exit(1);
  }
  const child = spawn(pinned, [...v8Flags, script, ...args], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}
