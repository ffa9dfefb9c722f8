/**
 * @module config/secret
 * The HS256 token secret: from config, else from `<dataDir>/jwt-secret`, else generated there
 * on first start (mode 0600) so `baton start` and `baton token` agree without setup.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BatonConfig } from "./config.ts";

export interface ResolvedSecret {
  readonly value: string;
  /** File it was read from or written to; undefined when it came from config. */
  readonly file: string | undefined;
}

export function secretFile(dataDir: string): string {
  return join(dataDir, "jwt-secret");
}

/** Returns the secret, reading or (when `create`) generating the data-dir file. */
export function resolveSecret(config: Pick<BatonConfig, "jwtSecret" | "dataDir">, create = true): { secret: ResolvedSecret; generated: boolean } {
  if (config.jwtSecret !== undefined) return { secret: { value: config.jwtSecret, file: undefined }, generated: false };
  const file = secretFile(config.dataDir);
  try {
    return { secret: { value: readFileSync(file, "utf8").trim(), file }, generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !create) throw err;
  }
  mkdirSync(config.dataDir, { recursive: true });
  const value = randomBytes(32).toString("base64url");
  writeFileSync(file, `${value}\n`, { mode: 0o600, flag: "wx" });
  return { secret: { value, file }, generated: true };
}
