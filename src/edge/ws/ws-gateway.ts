/**
 * @module edge/ws/ws-gateway
 * The WebSocket endpoint `/connection/websocket` on the HTTP server's port (`ws` library):
 * upgrades and the choice of encoding, connection limits, inbound frame limits, and shutdown /
 * draining of all sessions.
 */
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocket, WebSocketServer, type Server as WsServer } from "ws";
import { ClientSession, type SessionServices, type SessionTransport } from "./client-session.ts";
import { jsonCodec } from "./codec/json-codec.ts";
import { protobufCodec } from "./codec/protobuf-codec.ts";
import type { Frame, WireCodec } from "./codec/wire-codec.ts";
import { CloseCodes, type CloseSpec } from "./protocol.ts";
import { SessionClock } from "./session-clock.ts";

export const WEBSOCKET_PATH = "/connection/websocket";

export interface GatewayOptions {
  /** Open connections per node; one more is accepted and closed 3504. */
  readonly maxConnections: number;
  /** Largest inbound message, bytes; a larger one closes the socket 1009. */
  readonly maxMessageBytes: number;
}

/**
 * ws's socket carrying its session, so that one set of event handlers serves every socket
 * (`this` is the socket) instead of three closures per connection.
 */
class GatewaySocket extends WebSocket {
  session: ClientSession | undefined;
}

function onSocketMessage(this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
  // binaryType is ws's default, "nodebuffer": a message (however fragmented) is one Buffer.
  (this as GatewaySocket).session?.receive(data as Buffer, isBinary);
}

/** Subprotocols, as Centrifugo names them. A client that offers none speaks JSON. */
const PROTOBUF_SUBPROTOCOL = "centrifuge-protobuf";
const JSON_SUBPROTOCOL = "centrifuge-json";

/**
 * The encoding a client asked for: the `centrifuge-protobuf` subprotocol, or (for clients that
 * cannot set one) `format=protobuf` or `cf_protocol=protobuf` in the query, as Centrifugo accepts.
 */
function codecFor(ws: WebSocket, req: IncomingMessage): WireCodec {
  if (ws.protocol === PROTOBUF_SUBPROTOCOL) return protobufCodec;
  if (ws.protocol === JSON_SUBPROTOCOL) return jsonCodec;
  const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "");
  return query.get("format") === "protobuf" || query.get("cf_protocol") === "protobuf" ? protobufCodec : jsonCodec;
}

/** The subprotocol to select among those offered; false (none) when Baton speaks none of them. */
function selectSubprotocol(offered: Set<string>): string | false {
  if (offered.has(PROTOBUF_SUBPROTOCOL)) return PROTOBUF_SUBPROTOCOL;
  if (offered.has(JSON_SUBPROTOCOL)) return JSON_SUBPROTOCOL;
  return false;
}

// ws answers protocol errors (bad UTF-8, oversize) with its own close frame and closes the
// socket after it; terminating here would drop that frame and any replies still queued.
function ignoreSocketError(): void {}

export class WsGateway {
  private readonly wss: WsServer<typeof GatewaySocket>;
  private readonly onSocketClose: (this: WebSocket) => void;
  private readonly sessions = new Set<ClientSession>();
  /** Every session's connect, ping and expiry deadlines, on one timer. */
  private readonly clock: SessionClock<ClientSession>;
  private accepting = true;
  private readonly services: SessionServices;
  private readonly options: GatewayOptions;

  constructor(server: Server, services: SessionServices, options: GatewayOptions) {
    this.services = services;
    this.options = options;
    this.clock = new SessionClock<ClientSession>({ onError: (err) => services.logger.error({ err }, "session deadline failed") });
    const sessions = this.sessions;
    this.onSocketClose = function (this: WebSocket): void {
      const socket = this as GatewaySocket;
      const session = socket.session;
      if (session === undefined) return;
      socket.session = undefined;
      session.dispose();
      sessions.delete(session);
    };
    this.wss = new WebSocketServer({
      noServer: true,
      WebSocket: GatewaySocket,
      // The gateway keeps its own set of sessions; ws's would cost a Set entry and a listener per socket.
      clientTracking: false,
      maxPayload: options.maxMessageBytes,
      perMessageDeflate: false,
      // A client offering only protocols Baton does not speak gets none selected, and fails its
      // handshake rather than receive frames it cannot read.
      handleProtocols: selectSubprotocol,
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Stops accepting new sockets (existing ones stay). */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * Draining: stops accepting, then closes each socket with 4000 "draining" (clients reconnect,
   * to another node behind the load balancer) at a random moment within `windowMs`, so a large
   * node does not send all its clients back at once. Resolves when every socket is gone, or at
   * `deadlineMs`, when the rest are closed with 3001.
   */
  async drain(windowMs: number, deadlineMs: number): Promise<void> {
    this.accepting = false;
    const timers = [...this.sessions].map((session) => setTimeout(() => session.close(CloseCodes.DRAINING), Math.random() * windowMs));
    const deadline = Date.now() + deadlineMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const t of timers) clearTimeout(t);
    this.closeAll();
  }

  /** Closes every session with `spec` (default: shutdown, which makes clients reconnect). */
  closeAll(spec: CloseSpec = CloseCodes.SHUTDOWN): void {
    for (const session of this.sessions) session.close(spec);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "").split("?")[0];
    if (path !== WEBSOCKET_PATH || !this.accepting) {
      const status = path !== WEBSOCKET_PATH ? "404 Not Found" : "503 Service Unavailable";
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: GatewaySocket, req: IncomingMessage): void {
    if (this.sessions.size >= this.options.maxConnections) {
      ws.close(CloseCodes.CONNECTION_LIMIT.code, CloseCodes.CONNECTION_LIMIT.reason);
      return;
    }
    const codec = codecFor(ws, req);
    const session = new ClientSession(new WsTransport(ws, codec.binary), this.services, this.clock, codec);
    ws.session = session;
    this.sessions.add(session);
    ws.on("message", onSocketMessage);
    ws.on("error", ignoreSocketError);
    ws.on("close", this.onSocketClose);
  }
}

/** ws sends a Buffer as it is (no copy, no encoding); these mark it a text or a binary frame. */
const TEXT_FRAME = { binary: false } as const;
const BINARY_FRAME = { binary: true } as const;

/**
 * One socket as its session sees it. A class rather than an object literal with getters per
 * socket: such literals each get their own hidden class, which made every load on the send path
 * (`send`, `open`, `bufferedAmount`) megamorphic once there were many sockets.
 */
class WsTransport implements SessionTransport {
  private readonly ws: WebSocket;
  private readonly frameType: typeof TEXT_FRAME | typeof BINARY_FRAME;

  constructor(ws: WebSocket, binary: boolean) {
    this.ws = ws;
    this.frameType = binary ? BINARY_FRAME : TEXT_FRAME;
  }

  send(frame: Frame): void {
    this.ws.send(frame, this.frameType);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(spec: CloseSpec): void {
    this.ws.close(spec.code, spec.reason);
  }
}
