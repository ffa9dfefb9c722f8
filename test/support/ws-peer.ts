/**
 * A `ws` package client for tests that need more than a browser WebSocket can do (binary or
 * invalid-UTF-8 frames, pausing the TCP socket): it records how the connection opened and
 * closed. Subclasses add their own message handling.
 */
import WsClient, { type ClientOptions } from "ws";
import { wsUrl } from "./centrifuge-client.ts";

export class WsPeer {
  readonly ws: WsClient;
  closeCode: number | undefined;
  closeReason: string | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(httpUrl: string, options: ClientOptions = {}, subprotocols: string[] = []) {
    this.ws = new WsClient(wsUrl(httpUrl), subprotocols, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.closed = new Promise((resolve) =>
      this.ws.once("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      }),
    );
    this.ws.on("error", () => undefined);
  }
}
