/**
 * A worker process for test/fault/exactly-once.test.ts: consumes a group with the worker SDK
 * and runs the documented pattern reserve -> ack -> run (guarded by an effect) -> finalize
 * against a fake model at MODEL_URL. Its pid travels with every model call, so the test can
 * SIGKILL it in the middle of one.
 */
import { BatonWorker, type Delivery, type HandlerContext } from "../../packages/sdk/src/index.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};

const worker = new BatonWorker(env("BATON_URL"), {
  token: env("BATON_TOKEN"),
  minReconnectDelayMs: 50,
  maxReconnectDelayMs: 300,
  onError: (err) => process.stderr.write(`worker ${process.pid}: ${err.message}\n`),
});
const modelUrl = env("MODEL_URL");
const lease = Number(env("LEASE_MS"));

worker.consume<{ prompt: string }>(env("GROUP"), async (d, ctx) => {
  try {
    await run(d, ctx);
  } catch (err) {
    process.stderr.write(`worker ${process.pid}: ${d.origin.id} attempt ${d.attempt}: ${(err as Error).message}\n`);
    throw err;
  }
}, { maxInFlight: 2 });

async function run(d: Delivery<{ prompt: string }>, ctx: HandlerContext): Promise<void> {
  const slot = await ctx.reserve("model.fake", { limit: Number(env("SLOT_LIMIT")), leaseMs: lease, waitMs: 120_000 });
  await ctx.ack({ slot });
  const answer = await worker.effect(`run.${d.origin.id}`, async () => {
    const res = await fetch(modelUrl, { method: "POST", headers: { "content-type": "application/json", "x-worker-pid": String(process.pid) }, body: JSON.stringify({ run: d.origin.id, prompt: d.event.data.prompt }) });
    if (!res.ok) throw new Error(`model answered ${res.status}`);
    return (await res.json()) as { text: string };
  }, { leaseMs: lease });
  await slot.finalize("results", { data: { run: d.origin.id, answer } });
}

process.on("SIGTERM", () => {
  worker.close().then(() => process.exit(0), () => process.exit(1));
});
process.stdout.write("ready\n");
