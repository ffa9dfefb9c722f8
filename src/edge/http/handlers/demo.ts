/**
 * @module edge/http/handlers/demo
 * The example page at `/demo` and the client SDK it loads from `/sdk/…`: the SDK's TypeScript
 * sources with their types stripped (Node's `stripTypeScriptTypes`), and the `centrifuge`
 * client it builds on. Only the files listed at start-up are served; nothing is read per
 * request from a path the client chose.
 */
import { readFileSync, readdirSync } from "node:fs";
import { stripTypeScriptTypes } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BatonError } from "../../../errors/baton-error.ts";
import type { RequestContext } from "../router.ts";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

interface Asset {
  readonly contentType: string;
  readonly body: string;
}

function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const js = "text/javascript; charset=utf-8";
  const sdkDir = join(ROOT, "packages/sdk/src");
  for (const file of readdirSync(sdkDir)) {
    if (!file.endsWith(".ts") || file.endsWith(".test.ts")) continue;
    assets.set(`/sdk/${file}`, { contentType: js, body: stripTypeScriptTypes(readFileSync(join(sdkDir, file), "utf8")) });
  }
  assets.set("/sdk/centrifuge.mjs", { contentType: js, body: readFileSync(fileURLToPath(import.meta.resolve("centrifuge")), "utf8") });
  assets.set("/demo", { contentType: "text/html; charset=utf-8", body: readFileSync(join(ROOT, "examples/live-events.html"), "utf8") });
  return assets;
}

let assets: Map<string, Asset> | undefined;

export function serveAsset(ctx: RequestContext): void {
  assets ??= loadAssets();
  const path = ctx.route === "/demo" ? "/demo" : `/sdk/${ctx.params["file"] ?? ""}`;
  const asset = assets.get(path);
  if (asset === undefined) throw new BatonError("NOT_FOUND", `no such file: ${path.slice(0, 100)}`);
  ctx.res.writeHead(200, { "content-type": asset.contentType, "content-length": Buffer.byteLength(asset.body), "cache-control": "no-cache" });
  ctx.res.end(asset.body);
}
