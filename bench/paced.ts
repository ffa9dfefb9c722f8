/**
 * An open-loop load generator: requests start on an even schedule, whatever the server is
 * doing, as they would from many independent clients. autocannon's overallRate cannot do this:
 * each connection spends its quota for a second as fast as it can at the start of that second,
 * so "half load" is really full load for part of every second (node_modules/autocannon/lib/
 * httpClient.js, _doRequest).
 *
 * It speaks just enough HTTP/1.1 over raw keep-alive sockets for one request at a time per
 * connection and fixed-length answers, because node:http's client costs several times more CPU
 * per request, which on a 2-core machine is taken straight from the server being measured.
 */
import { connect, type Socket } from "node:net";
import { cpuWindow, Latencies, loadResult, type LoadResult } from "./lib.ts";
import type { LoadConfig } from "./load.ts";

class Connection {
  private pending: Buffer | undefined;
  private issuedAt = 0;
  private readonly socket: Socket;
  private readonly done: (conn: Connection, status: number, issuedAt: number) => void;

  constructor(socket: Socket, done: (conn: Connection, status: number, issuedAt: number) => void) {
    this.socket = socket;
    this.done = done;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
  }

  send(request: Buffer, issuedAt: number): void {
    this.issuedAt = issuedAt;
    this.socket.write(request);
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    const headEnd = buf.indexOf("\r\n\r\n");
    const head = headEnd < 0 ? "" : buf.toString("latin1", 0, headEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (headEnd < 0 || buf.length < headEnd + 4 + Number(length?.[1] ?? 0)) {
      this.pending = buf;
      return;
    }
    this.pending = undefined;
    this.done(this, Number(head.slice(9, 12)), this.issuedAt);
  }
}

export async function pacedRun(config: LoadConfig, path: () => string, seconds: number): Promise<LoadResult> {
  const { hostname, port } = new URL(config.url);
  const rate = config.rate ?? 1000;
  const request = (p: string): Buffer =>
    Buffer.from(
      `POST ${p} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${config.token}\r\nContent-Length: ${Buffer.byteLength(config.body)}\r\n\r\n${config.body}`,
    );
  const hot = request(path());
  const next = (): Buffer => (config.topics === 1 ? hot : request(path()));

  const lat = new Latencies();
  let failures = 0;
  let inFlight = 0;
  const idle: Connection[] = [];
  // Issue times of requests that found every connection busy: their wait counts as latency.
  const queued: number[] = [];
  const finished = (conn: Connection, status: number, issuedAt: number): void => {
    inFlight--;
    if (status >= 200 && status < 300) lat.add(performance.now() - issuedAt);
    else failures++;
    const waiting = queued.shift();
    if (waiting === undefined) idle.push(conn);
    else {
      inFlight++;
      conn.send(next(), waiting);
    }
  };
  const sockets = await Promise.all(
    Array.from({ length: config.connections }, () => {
      const socket = connect(Number(port), hostname);
      socket.on("error", () => failures++);
      return new Promise<Socket>((ok) => socket.once("connect", () => ok(socket)));
    }),
  );
  for (const s of sockets) idle.push(new Connection(s, finished));

  const cpu = cpuWindow(config.serverPid);
  const start = performance.now();
  const end = start + seconds * 1000;
  let sent = 0;
  // Timers fire about once a millisecond; each tick issues whatever the schedule says is due.
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = Math.min(performance.now(), end);
      for (const due = Math.floor(((now - start) / 1000) * rate); sent < due; sent++) {
        const conn = idle.pop();
        if (conn === undefined) queued.push(now);
        else {
          inFlight++;
          conn.send(next(), now);
        }
      }
      if (now >= end) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  // Let the last requests finish (bounded) so they count.
  const drainUntil = performance.now() + 5000;
  while ((inFlight > 0 || queued.length > 0) && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  failures += inFlight + queued.length;
  const used = cpu();
  for (const s of sockets) s.destroy();
  return loadResult(lat, config.eventsPerRequest, seconds, failures, used);
}
