/**
 * The HTTP side shared by the fan-out peers (raw ws, Socket.IO): `POST /v1/topics/{topic}/events`
 * with `{data}` is parsed and handed to `broadcast`, then answered 202 `{id, seq}` like Baton's
 * ephemeral publish, so the load generator drives every server the same way.
 */
import { createServer, type Server } from "node:http";

export type Broadcast = (topic: string, data: unknown, seq: number, id: string) => void;

export function peerPublishServer(broadcast: Broadcast, skip: (url: string) => boolean = () => false): Server {
  let seq = 0;
  return createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    if (skip(req.url ?? "")) return;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST") {
        res.writeHead(200, { "content-length": 2 }).end("ok");
        return;
      }
      let body: { data?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { data?: unknown };
      } catch {
        res.writeHead(400, { "content-length": 0 }).end();
        return;
      }
      const topic = (req.url ?? "").split("/")[3] ?? "";
      const n = ++seq;
      const id = `evt_${String(n).padStart(26, "0")}`;
      broadcast(topic, body.data, n, id);
      const ack = JSON.stringify({ id, seq: n });
      res.writeHead(202, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(ack) });
      res.end(ack);
    });
  });
}
