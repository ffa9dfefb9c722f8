/**
 * @module sdk/connection
 * What the client SDK and the worker SDK share: opening the `centrifuge` client on a Baton URL,
 * and turning its call rejections into one error type that carries Baton's error code.
 */
import { Centrifuge } from "centrifuge";

export interface ConnectionOptions {
  /** A Baton JWT. Give `getToken` too so the client can refresh it before it expires. */
  readonly token?: string;
  /** Called for a new token at connect (when no token is set) and before expiry. */
  readonly getToken?: () => Promise<string>;
  /** First reconnect delay bound, ms (full jitter). Default 500. */
  readonly minReconnectDelayMs?: number;
  /** Reconnect delay cap, ms. Default 20000. */
  readonly maxReconnectDelayMs?: number;
  /** WebSocket constructor; defaults to the global one. */
  readonly websocket?: unknown;
}

/** `url` is the server's base URL (`http://host:7700`) or its WebSocket URL. */
export function openCentrifuge(url: string, options: ConnectionOptions): Centrifuge {
  const ws = url.startsWith("ws") ? url : `${url.replace(/^http/, "ws").replace(/\/$/, "")}/connection/websocket`;
  return new Centrifuge(ws, {
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.getToken === undefined ? {} : { getToken: () => options.getToken!() }),
    minReconnectDelay: options.minReconnectDelayMs ?? 500,
    maxReconnectDelay: options.maxReconnectDelayMs ?? 20_000,
    ...(options.websocket === undefined ? {} : { websocket: options.websocket }),
  });
}

/**
 * A refused call. `code` is the protocol's reply code (103 permission denied, 111 too many
 * requests, 1409 …); `batonCode` is Baton's stable error code (`DELIVERY_NOT_HELD`, …) when the
 * server sent one (the `baton.*` RPCs always do).
 */
export class BatonClientError extends Error {
  readonly code: number;
  /** The same call may succeed if retried. */
  readonly temporary: boolean;
  readonly batonCode: string | undefined;
  constructor(message: string, code: number, temporary: boolean) {
    super(message);
    this.name = "BatonClientError";
    this.code = code;
    this.temporary = temporary;
    this.batonCode = /^([A-Z_]+): /.exec(message)?.[1];
  }
}

/** centrifuge rejects calls with plain `{code, message}` objects; give applications an Error. */
export async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof Error) throw err;
    const e = err as { code?: number; message?: string; temporary?: boolean };
    throw new BatonClientError(e.message ?? "call failed", e.code ?? 0, e.temporary === true);
  }
}
