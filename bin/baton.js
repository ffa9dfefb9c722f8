#!/usr/bin/env node
// Baton's sources are TypeScript run directly by Node >= 22.18 (native type stripping). On an
// older `node` on PATH, re-run this script with the Node 24 that the project pins as a dev
// dependency, so `./bin/baton.js` works on a machine whose system Node is older.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const [major, minor] = process.versions.node.split(".").map(Number);
if (major > 22 || (major === 22 && minor >= 18)) {
  await import("../src/cli/main.ts");
} else {
  const pinned = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(`baton needs Node.js >= 22.18 (found ${process.version}); run \`npm ci\` to install the pinned Node 24\n`);
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}
