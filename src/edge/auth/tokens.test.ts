import { test } from "node:test";
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { TokenVerifier, mintToken } from "./tokens.ts";
import { can } from "./principal.ts";
import { isBatonError } from "../../errors/baton-error.ts";

const SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret";

test("a minted token verifies to its principal", async () => {
  const now = 1_700_000_000_000;
  const jwt = await mintToken(SECRET, { tenant: "acme", sub: "u1", publish: ["room.*"], subscribe: ["room.>"], admin: true }, 60_000, now);
  const p = await new TokenVerifier({ secret: SECRET, now: () => now }).verify(jwt);
  assert.deepEqual(p, { tenant: "acme", subject: "u1", publish: ["room.*"], subscribe: ["room.>"], admin: true, channels: [], coordinate: [], expiresAt: now + 60_000 });
  assert.ok(can(p, "publish", "room.1"));
  assert.ok(!can(p, "publish", "room.1.x"));
  assert.ok(can(p, "subscribe", "room.1.x"));
});

test("expiry is enforced, also for a token already in the cache", async () => {
  let now = 1_700_000_000_000;
  const verifier = new TokenVerifier({ secret: SECRET, now: () => now });
  const jwt = await mintToken(SECRET, { tenant: "acme", sub: "u1" }, 2_000, now);
  await verifier.verify(jwt);
  now += 3_000;
  await assert.rejects(verifier.verify(jwt), (e: unknown) => isBatonError(e) && e.code === "TOKEN_EXPIRED");
  const fresh = new TokenVerifier({ secret: SECRET, now: () => now });
  await assert.rejects(fresh.verify(jwt), (e: unknown) => isBatonError(e) && e.code === "TOKEN_EXPIRED");
});

test("remember: false answers from the cache but never adds to it or evicts from it", async () => {
  const now = 1_700_000_000_000;
  const verifier = new TokenVerifier({ secret: SECRET, now: () => now, cacheSize: 2 });
  const [a, b, socket] = await Promise.all(["a", "b", "socket"].map((sub) => mintToken(SECRET, { tenant: "acme", sub }, 60_000, now)));
  await verifier.verify(a!);
  await verifier.verify(b!);
  assert.equal(verifier.cached, 2);
  assert.equal((await verifier.verify(socket!, { remember: false })).subject, "socket");
  assert.equal(verifier.cached, 2, "not added, nothing evicted");
  // A remembered token is still answered (from the cache) when asked with remember: false.
  assert.equal((await verifier.verify(a!, { remember: false })).subject, "a");
  await verifier.verify(socket!);
  assert.equal(verifier.cached, 2, "remembered: the least recently used one made room");
  await assert.rejects(verifier.verify(socket!.slice(0, -2), { remember: false }), (e: unknown) => isBatonError(e) && e.code === "TOKEN_INVALID");
});

test("tokens with bad claims are invalid", async () => {
  const verifier = new TokenVerifier({ secret: SECRET });
  const key = new TextEncoder().encode(SECRET);
  const cases = [
    new SignJWT({ publish: [">"] }).setSubject("x"),
    new SignJWT({ tenant: "bad tenant!" }).setSubject("x"),
    new SignJWT({ tenant: "acme" }),
    new SignJWT({ tenant: "acme", publish: "room.*" }).setSubject("x"),
    new SignJWT({ tenant: "acme", publish: ["a.>.b"] }).setSubject("x"),
    new SignJWT({ tenant: "acme", admin: "yes" }).setSubject("x"),
  ];
  for (const jwt of cases) {
    const token = await jwt.setProtectedHeader({ alg: "HS256" }).sign(key);
    await assert.rejects(verifier.verify(token), (e: unknown) => isBatonError(e) && e.code === "TOKEN_INVALID");
  }
});

test("tokens signed with a key from the configured JWKS are accepted; other keys are not", async () => {
  const { generateKeyPair, exportJWK } = await import("jose");
  const { createServer } = await import("node:http");
  const trusted = await generateKeyPair("ES256");
  const stranger = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(trusted.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { port } = server.address() as { port: number };
    const verifier = new TokenVerifier({ jwksUrl: `http://127.0.0.1:${port}/jwks.json` });
    const sign = (key: CryptoKey): Promise<string> =>
      new SignJWT({ tenant: "acme", subscribe: ["a.>"] }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setSubject("svc").setExpirationTime("5m").sign(key);
    const p = await verifier.verify(await sign(trusted.privateKey));
    assert.deepEqual([p.tenant, p.subject, p.subscribe], ["acme", "svc", ["a.>"]]);
    await assert.rejects(verifier.verify(await sign(stranger.privateKey)), (e: unknown) => isBatonError(e) && e.code === "TOKEN_INVALID");
    const hs = await mintToken(SECRET, { tenant: "acme", sub: "x" }, 60_000);
    await assert.rejects(verifier.verify(hs), (e: unknown) => isBatonError(e) && e.code === "TOKEN_INVALID", "no HS256 secret configured");
  } finally {
    server.close();
  }
});
