/**
 * A minimal HTTP/1.1 client over one raw keep-alive socket, one request at a time, for the
 * benchmark clients that talk to Baton's HTTP API (bench/consumer-peers.ts). It exists for the
 * same reason as bench/paced.ts: node:http's and fetch's client side cost several times more CPU
 * per request, and on a 2-core machine that CPU is taken from the server being measured.
 *
 * It understands what Baton answers: a Content-Length body, no body (204/304), or a chunked body.
 */
import { connect, type Socket } from "node:net";

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

interface Pending {
  readonly request: Buffer;
  readonly resolve: (answer: HttpAnswer) => void;
  readonly reject: (err: Error) => void;
}

export class KeepAliveHttp {
  private readonly socket: Socket;
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;
  private readonly hostHeader: string;
  private readonly auth: string;

  private constructor(socket: Socket, hostHeader: string, token: string) {
    this.socket = socket;
    this.hostHeader = hostHeader;
    this.auth = `Bearer ${token}`;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    const fail = (err: Error): void => {
      this.closed = true;
      const all = [...(this.current === undefined ? [] : [this.current]), ...this.queue.splice(0)];
      this.current = undefined;
      for (const p of all) p.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
  }

  /** Connects to `url` (http://host:port); every request carries `token` as a bearer token. */
  static open(url: string, token: string): Promise<KeepAliveHttp> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new KeepAliveHttp(socket, `${hostname}:${port}`, token));
      });
    });
  }

  /** Sends a request (JSON body if given); requests on one connection go one after another. */
  request(method: string, path: string, body?: string): Promise<HttpAnswer> {
    if (this.closed) return Promise.reject(new Error("connection closed"));
    const head =
      `${method} ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nAuthorization: ${this.auth}\r\n` +
      (body === undefined ? "Content-Length: 0\r\n\r\n" : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return new Promise((resolve, reject) => {
      this.queue.push({ request: Buffer.from(head), resolve, reject });
      this.next();
    });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private next(): void {
    if (this.current !== undefined) return;
    const p = this.queue.shift();
    if (p === undefined) return;
    this.current = p;
    this.socket.write(p.request);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      let answer: HttpAnswer | undefined;
      try {
        answer = this.parse();
      } catch (err) {
        this.socket.destroy(err as Error);
        return;
      }
      if (answer === undefined) return;
      const p = this.current;
      this.current = undefined;
      p?.resolve(answer);
      this.next();
    }
  }

  /** One complete answer off the front of the buffer, or undefined if it is not all here yet. */
  private parse(): HttpAnswer | undefined {
    const headEnd = this.buf.indexOf("\r\n\r\n");
    if (headEnd < 0) return undefined;
    const head = this.buf.toString("latin1", 0, headEnd);
    const status = Number(head.slice(9, 12));
    const start = headEnd + 4;
    if (status === 204 || status === 304) {
      this.buf = this.buf.subarray(start);
      return { status, body: "" };
    }
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length !== null) {
      const end = start + Number(length[1]);
      if (this.buf.length < end) return undefined;
      const body = this.buf.toString("utf8", start, end);
      this.buf = this.buf.subarray(end);
      return { status, body };
    }
    if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const parts: Buffer[] = [];
      let at = start;
      for (;;) {
        const lineEnd = this.buf.indexOf("\r\n", at);
        if (lineEnd < 0) return undefined;
        const size = parseInt(this.buf.toString("latin1", at, lineEnd), 16);
        if (size === 0) {
          // The last chunk, then (no trailers from Baton) the closing CRLF.
          if (this.buf.length < lineEnd + 4) return undefined;
          this.buf = this.buf.subarray(lineEnd + 4);
          return { status, body: Buffer.concat(parts).toString("utf8") };
        }
        if (this.buf.length < lineEnd + 2 + size + 2) return undefined;
        parts.push(this.buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
    }
    // Neither: the body runs to the end of the connection, which a keep-alive client cannot use.
    throw new Error(`answer without a length: ${head.slice(0, 200)}`);
  }
}
