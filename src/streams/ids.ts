/**
 * @module streams/ids
 * Event ids and epochs. Ids are opaque to users; they sort roughly by creation time (a 48-bit
 * millisecond prefix, like ULID/UUIDv7) which keeps index inserts local, and carry 80 random bits.
 */
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

let pool = randomBytes(0);
let poolOffset = 0;

function random(n: number): Buffer {
  if (poolOffset + n > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

function base32(value: bigint, chars: number): string {
  let out = "";
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[Number(value & 31n)] + out;
    value >>= 5n;
  }
  return out;
}

/** A new event id: `evt_` + 26 base32 characters (time-ordered prefix + randomness). */
export function newEventId(now = Date.now()): string {
  const rand = random(10);
  let r = 0n;
  for (const b of rand) r = (r << 8n) | BigInt(b);
  return `evt_${base32(BigInt(now), 10)}${base32(r, 16)}`;
}

/** A new stream epoch: 8 random base32 characters. */
export function newEpoch(): string {
  const rand = random(5);
  let r = 0n;
  for (const b of rand) r = (r << 8n) | BigInt(b);
  return base32(r, 8);
}
