/**
 * @module edge/auth/tokens
 * JWT verification and (for development) minting, with `jose`.
 *
 * Claims: `tenant` (string), `sub` (string), `publish` and `subscribe` (topic patterns),
 * `channels` (topics subscribed server-side at connect), `admin` (boolean), `coordinate` (slot
 * resource / effect key patterns), `exp`. Tokens are verified with the HS256 secret or, when configured, with
 * the keys of a JWKS. Verified tokens are cached until their expiry so a hot publisher does not
 * pay a signature check per request.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { BatonError } from "../../errors/baton-error.ts";
import { isValidCoordinationPattern, isValidPattern, isValidTenant, isValidTopicName } from "../../streams/names.ts";
import type { Principal } from "./principal.ts";

export interface TokenClaims {
  readonly tenant: string;
  readonly sub: string;
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
  readonly admin?: boolean;
  readonly channels?: readonly string[];
  readonly coordinate?: readonly string[];
}

export interface VerifierOptions {
  readonly secret?: string | undefined;
  readonly jwksUrl?: string | undefined;
  /** Verified tokens kept in the cache. Default 10_000. */
  readonly cacheSize?: number;
  readonly now?: () => number;
}

const HS_ALGORITHMS = ["HS256"];
const ASYMMETRIC_ALGORITHMS = ["RS256", "ES256", "EdDSA", "PS256"];

export class TokenVerifier {
  /**
   * The HS256 secret imported once as a WebCrypto key: jose otherwise imports a raw secret on
   * every verification, a quarter of its cost (about 220 against 165 µs here).
   */
  private readonly secret: Promise<CryptoKey> | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private readonly cache = new Map<string, Principal>();
  private readonly cacheSize: number;
  private readonly now: () => number;

  constructor(options: VerifierOptions) {
    this.secret =
      options.secret === undefined
        ? undefined
        : crypto.subtle.importKey("raw", new TextEncoder().encode(options.secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    // A secret WebCrypto refuses (empty) fails each verification as TOKEN_INVALID, not the process.
    this.secret?.catch(() => undefined);
    this.jwks = options.jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(options.jwksUrl));
    if (this.secret === undefined && this.jwks === undefined) throw new Error("a JWT secret or a JWKS URL is required");
    this.cacheSize = options.cacheSize ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Tokens in the cache. */
  get cached(): number {
    return this.cache.size;
  }

  /**
   * Verifies `token` and returns its principal; TOKEN_INVALID or TOKEN_EXPIRED otherwise.
   * `remember: false` still answers from the cache but does not add to it: a socket verifies its
   * token once per connect, so caching it would only hold memory for every connection and push
   * out the tokens of HTTP clients, which do come back with every request.
   */
  async verify(token: string, options: { remember?: boolean } = {}): Promise<Principal> {
    const cached = this.cache.get(token);
    if (cached !== undefined) {
      if (cached.expiresAt === undefined || cached.expiresAt > this.now()) {
        // Least recently used goes first: move a hit to the end.
        this.cache.delete(token);
        this.cache.set(token, cached);
        return cached;
      }
      this.cache.delete(token);
      throw new BatonError("TOKEN_EXPIRED", "the token has expired");
    }
    const payload = await this.verifySignature(token);
    const principal = principalFromClaims(payload);
    if (options.remember === false) return principal;
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(token, principal);
    return principal;
  }

  private async verifySignature(token: string): Promise<JWTPayload> {
    const header = decodeHeaderAlg(token);
    const currentDate = new Date(this.now());
    try {
      if (HS_ALGORITHMS.includes(header) && this.secret !== undefined) {
        return (await jwtVerify(token, await this.secret, { algorithms: HS_ALGORITHMS, currentDate })).payload;
      }
      if (ASYMMETRIC_ALGORITHMS.includes(header) && this.jwks !== undefined) {
        return (await jwtVerify(token, this.jwks, { algorithms: ASYMMETRIC_ALGORITHMS, currentDate })).payload;
      }
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new BatonError("TOKEN_EXPIRED", "the token has expired", { cause: err });
      throw new BatonError("TOKEN_INVALID", `the token was rejected: ${(err as Error).message}`, { cause: err });
    }
    throw new BatonError("TOKEN_INVALID", `the token was rejected: algorithm ${JSON.stringify(header)} is not accepted here`);
  }
}

function decodeHeaderAlg(token: string): string {
  const dot = token.indexOf(".");
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), "base64url").toString("utf8")) as { alg?: unknown };
    if (dot > 0 && typeof header.alg === "string") return header.alg;
  } catch {
    // fall through to the error below
  }
  throw new BatonError("TOKEN_INVALID", "the token is not a JWT (expected header.payload.signature)");
}

function patterns(payload: JWTPayload, claim: string): string[] {
  const value = payload[claim];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new BatonError("TOKEN_INVALID", `claim "${claim}" must be an array of topic patterns`);
  const bad = value.find((p) => typeof p !== "string" || !isValidPattern(p));
  if (bad !== undefined) {
    throw new BatonError(
      "TOKEN_INVALID",
      `claim "${claim}": ${JSON.stringify(bad).slice(0, 120)} is not a topic pattern (dot-separated tokens of [A-Za-z0-9_-:@=+], * for one token, a final > for the rest)`,
    );
  }
  return value as string[];
}

export function principalFromClaims(payload: JWTPayload): Principal {
  const tenant = payload["tenant"];
  if (typeof tenant !== "string" || !isValidTenant(tenant)) {
    throw new BatonError("TOKEN_INVALID", 'claim "tenant" must be a tenant name ([A-Za-z0-9][A-Za-z0-9_-]{0,63})');
  }
  if (typeof payload.sub !== "string" || payload.sub.length === 0) {
    throw new BatonError("TOKEN_INVALID", 'claim "sub" must be a non-empty string');
  }
  const admin = payload["admin"];
  if (admin !== undefined && typeof admin !== "boolean") throw new BatonError("TOKEN_INVALID", 'claim "admin" must be a boolean');
  const channels = payload["channels"] ?? [];
  if (!Array.isArray(channels)) throw new BatonError("TOKEN_INVALID", 'claim "channels" must be an array of topic names');
  const badChannel = channels.find((c) => typeof c !== "string" || !isValidTopicName(c));
  if (badChannel !== undefined) {
    throw new BatonError("TOKEN_INVALID", `claim "channels": ${JSON.stringify(badChannel).slice(0, 120)} is not a topic name (no wildcards: the socket is subscribed to exactly these)`);
  }
  return {
    tenant,
    subject: payload.sub,
    publish: patterns(payload, "publish"),
    subscribe: patterns(payload, "subscribe"),
    admin: admin === true,
    channels,
    coordinate: coordinationPatterns(payload),
    expiresAt: payload.exp === undefined ? undefined : payload.exp * 1000,
  };
}

function coordinationPatterns(payload: JWTPayload): string[] {
  const value = payload["coordinate"];
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((p): p is string => typeof p === "string" && isValidCoordinationPattern(p))) {
    throw new BatonError("TOKEN_INVALID", 'claim "coordinate" must be an array of slot resource / effect key patterns');
  }
  return value;
}

/** Mints an HS256 token (development and tests). `ttlMs` 0 = no expiry. */
export async function mintToken(secret: string, claims: TokenClaims, ttlMs: number, now = Date.now()): Promise<string> {
  principalFromClaims({ ...claims, publish: [...(claims.publish ?? [])], subscribe: [...(claims.subscribe ?? [])], channels: [...(claims.channels ?? [])], coordinate: [...(claims.coordinate ?? [])] });
  const jwt = new SignJWT({
    tenant: claims.tenant,
    ...(claims.publish?.length ? { publish: [...claims.publish] } : {}),
    ...(claims.subscribe?.length ? { subscribe: [...claims.subscribe] } : {}),
    ...(claims.admin ? { admin: true } : {}),
    ...(claims.channels?.length ? { channels: [...claims.channels] } : {}),
    ...(claims.coordinate?.length ? { coordinate: [...claims.coordinate] } : {}),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(Math.floor(now / 1000));
  if (ttlMs > 0) jwt.setExpirationTime(Math.floor((now + ttlMs) / 1000));
  return jwt.sign(new TextEncoder().encode(secret));
}
