/**
 * @module cli/client
 * How CLI commands reach a running server: its URL and a token. Without --token the CLI mints
 * a short-lived token from the same secret the server uses (flag, env or data-dir file), so a
 * developer on the server's machine needs no setup.
 */
import { loadConfig } from "../config/config.ts";
import { resolveSecret } from "../config/secret.ts";
import { mintToken } from "../edge/auth/tokens.ts";

export interface ClientOptions {
  url?: string;
  token?: string;
  tenant?: string;
  dataDir?: string;
  jwtSecret?: string;
}

export class CliError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface Client {
  readonly url: string;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<unknown>;
}

export async function connectClient(o: ClientOptions): Promise<Client> {
  const url = (o.url ?? process.env["BATON_URL"] ?? "http://127.0.0.1:7700").replace(/\/$/, "");
  let token = o.token ?? process.env["BATON_TOKEN"];
  let mint: (() => Promise<string>) | undefined;
  if (token === undefined) {
    const config = loadConfig({ dataDir: o.dataDir, jwtSecret: o.jwtSecret });
    let secret: string;
    try {
      secret = resolveSecret(config, false).secret.value;
    } catch {
      throw new CliError("UNAUTHENTICATED", `no --token / BATON_TOKEN given and no secret found (BATON_JWT_SECRET or ${config.dataDir}/jwt-secret)`);
    }
    const tenant = o.tenant ?? process.env["BATON_TENANT"] ?? "default";
    mint = () => mintToken(secret, { tenant, sub: "baton-cli", publish: [">"], subscribe: [">"], admin: true }, 5 * 60_000);
    token = await mint();
  }
  let auth = `Bearer ${token}`;
  const client: Client = {
    url,
    async request(method, path, body, headers = {}) {
      let res: Response;
      try {
        res = await fetch(`${url}${path}`, {
          method,
          headers: { authorization: auth, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (err) {
        throw new CliError("UNAVAILABLE", `cannot reach ${url}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      const parsed: unknown = text === "" ? undefined : JSON.parse(text);
      if (!res.ok) {
        const e = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
        // A token this CLI minted itself (a long `tail`) is renewed instead of failing.
        if (e?.code === "TOKEN_EXPIRED" && mint !== undefined) {
          auth = `Bearer ${await mint()}`;
          return client.request(method, path, body, headers);
        }
        throw new CliError(e?.code ?? "INTERNAL", e?.message ?? `HTTP ${res.status}`);
      }
      return parsed;
    },
  };
  return client;
}
