/**
 * Helpers for driving Baton with the unmodified `centrifuge` npm client and with raw frames.
 */
import { Centrifuge, type Options, type Subscription } from "centrifuge";

export function wsUrl(httpUrl: string): string {
  return `${httpUrl.replace(/^http/, "ws")}/connection/websocket`;
}

export function client(httpUrl: string, token: string, options: Partial<Options> = {}): Centrifuge {
  return new Centrifuge(wsUrl(httpUrl), { token, websocket: WebSocket, minReconnectDelay: 50, maxReconnectDelay: 500, ...options });
}

export function once<T>(emitter: { once(event: string, fn: (ctx: T) => void): unknown }, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (ctx: T) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}

/** Collects the publications of a subscription as {offset, data}. */
export function collect(sub: Subscription): { offset: number; data: any; tags?: Record<string, string> }[] {
  const seen: { offset: number; data: any; tags?: Record<string, string> }[] = [];
  sub.on("publication", (ctx) => seen.push({ offset: ctx.offset ?? 0, data: ctx.data, ...(ctx.tags === undefined ? {} : { tags: ctx.tags }) }));
  return seen;
}

export async function until(check: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw WebSocket speaking frames by hand; records every frame and the close. */
export class RawSocket {
  readonly frames: string[] = [];
  closeCode: number | undefined;
  closeReason: string | undefined;
  private readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(httpUrl: string) {
    this.ws = new WebSocket(wsUrl(httpUrl));
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve());
      this.ws.addEventListener("error", () => reject(new Error("socket error")));
    });
    this.closed = new Promise((resolve) =>
      this.ws.addEventListener("close", (e) => {
        this.closeCode = e.code;
        this.closeReason = e.reason;
        resolve();
      }),
    );
    this.ws.addEventListener("message", (e) => this.frames.push(String(e.data)));
  }

  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  close(): void {
    this.ws.close();
  }

  /** Parsed replies/pushes received so far, one per line. */
  messages(): any[] {
    return this.frames.flatMap((f) => f.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l)));
  }

  async reply(id: number, timeoutMs = 5000): Promise<any> {
    await until(() => this.messages().some((m) => m.id === id), timeoutMs, `reply ${id}`);
    return this.messages().find((m) => m.id === id);
  }
}
