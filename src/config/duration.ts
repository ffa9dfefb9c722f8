/**
 * @module config/duration
 * Human durations for flags and env vars: `250ms`, `30s`, `15m`, `24h`, `7d`, or plain ms.
 */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (m === null) throw new Error(`invalid duration ${JSON.stringify(text)}: use e.g. 500ms, 30s, 15m, 24h or 7d`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? "ms"] ?? 1));
}

const SIZE_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1e6, gb: 1e9 };

/** Sizes: `512`, `64KiB`, `1MiB`, `2GiB` (also kb/mb/gb as powers of ten). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$/i.exec(text);
  const unit = SIZE_UNITS[(m?.[2] ?? "b").toLowerCase()];
  if (m === null || unit === undefined) {
    throw new Error(`invalid size ${JSON.stringify(text)}: use e.g. 512, 64KiB, 1MiB or 2GiB`);
  }
  return Math.round(Number(m[1]) * unit);
}
