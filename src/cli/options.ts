/**
 * @module cli/options
 * Flags shared by the client commands, and parsers for flag values. A parser refuses a value
 * with commander's InvalidArgumentError, so a bad flag is a usage error (exit 2) that sends
 * nothing to the server; ranges are left to the server, which answers VALIDATION_FAILED.
 */
import { type Command, InvalidArgumentError } from "commander";
import { parseDuration } from "../config/duration.ts";

/** Adds `--url`, `--token`, `--tenant`, `--data-dir` and `--jwt-secret` (see connectClient). */
export function clientOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", "server URL (env BATON_URL)", undefined)
    .option("--token <jwt>", "bearer token (env BATON_TOKEN); default: mint one from the local secret")
    .option("--tenant <tenant>", "tenant for the minted token (env BATON_TENANT)", undefined)
    .option("--data-dir <dir>", "data dir holding the secret (env BATON_DATA_DIR)")
    .option("--jwt-secret <secret>", "HS256 secret (env BATON_JWT_SECRET)");
}

/** A whole number (0 included); the server checks its range. */
export function integerArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("must be a whole number");
  return n;
}

/** A whole number >= 1: sequences, counts, limits. */
export function positiveArg(value: string): number {
  const n = integerArg(value);
  if (n < 1) throw new InvalidArgumentError("must be 1 or more");
  return n;
}

/** A decimal number such as 2 or 1.5. */
export function numberArg(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("must be a number");
  return n;
}

/** `250ms`, `30s`, `5m`, `1h`, `1d` or plain milliseconds; answers milliseconds. */
export function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export type StartJson = "beginning" | "now" | { seq: number } | { time: string };

/** `beginning`, `now`, `seq:N` or `time:<ISO-8601>`, as the HTTP API's `start`. */
export function startArg(value: string): StartJson {
  if (value === "beginning" || value === "now") return value;
  if (value.startsWith("seq:")) {
    const text = value.slice(4);
    const seq = Number(text);
    if (/^\d+$/.test(text) && Number.isSafeInteger(seq) && seq >= 1) return { seq };
  } else if (value.startsWith("time:")) {
    const time = value.slice(5);
    if (Number.isFinite(Date.parse(time))) return { time };
  }
  throw new InvalidArgumentError("use beginning, now, seq:<n> (n >= 1) or time:<ISO-8601>, e.g. time:2026-01-01T00:00:00Z");
}
