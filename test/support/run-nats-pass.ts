/**
 * `npm run test:nats`: runs the given test files with BATON_TEST_ENGINE=nats, so every Baton
 * they start (test/support/start-baton.ts) runs on the NATS engine at BATON_TEST_NATS (default
 * nats://127.0.0.1:4222). Checks once that JetStream answers there first: if not, the pass is
 * skipped with a message, except under CI=true, where that fails the run.
 *
 *   node test/support/run-nats-pass.ts test/integration/http-api.test.ts …
 */
import { spawn } from "node:child_process";
import { natsUnreachable } from "./nats.ts";
import { testNatsServers } from "./start-baton.ts";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node test/support/run-nats-pass.ts <test files…>");
  process.exit(2);
}
const servers = testNatsServers();
const why = await natsUnreachable(servers);
if (why !== undefined) {
  if (process.env["CI"] === "true") {
    console.error(`NATS test pass FAILED: ${why}. CI=true requires it: start nats-server -js (or set BATON_TEST_NATS).`);
    process.exit(1);
  }
  console.log(`NATS test pass SKIPPED: ${why}. Start nats-server -js (or set BATON_TEST_NATS) to run the suite on the NATS engine too.`);
  process.exit(0);
}
console.log(`NATS test pass: ${files.length} files on the NATS engine at ${servers}`);
const child = spawn(process.execPath, ["--test", "--test-concurrency=2", "--test-timeout=240000", ...files], {
  stdio: "inherit",
  env: { ...process.env, BATON_TEST_ENGINE: "nats", BATON_TEST_NATS: servers },
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code) => process.exit(code ?? 1));
