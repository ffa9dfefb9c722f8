/**
 * @module streams/ids
 * Event ids and epochs. Ids are opaque to users; they sort roughly by creation time (a 48-bit
 * millisecond prefix, like ULID/UUIDv7) which keeps index inserts local, and carry 80 random
 * bits. Built with plain number arithmetic: this runs once per stored event.
 */
import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function randomByte(): number {
  if (poolOffset >= pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  return pool[poolOffset++]!;
}

/** `chars` base32 characters of random bits. */
function randomChars(chars: number): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < chars; i++) {
    if (bits < 5) {
      acc = (acc << 8) | randomByte();
      bits += 8;
    }
    bits -= 5;
    out += ALPHABET[(acc >> bits) & 31];
    acc &= (1 << bits) - 1;
  }
  return out;
}

function timeChars(ms: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

/** A new event id: `evt_` + 26 base32 characters (10 of time, 16 random). */
export function newEventId(now = Date.now()): string {
  return `evt_${timeChars(now)}${randomChars(16)}`;
}

/** Random part of a delivery token: 10 base32 characters (50 bits), from the pooled entropy. */
export function newNonce(): string {
  return randomChars(10);
}

/** A new stream epoch: 8 random base32 characters. */
export function newEpoch(): string {
  return randomChars(8);
}
