/**
 * The Socket.IO peer for bench/fanout.ts: every socket joins one room on connection and each
 * event is broadcast with `io.to(room).emit("pub", publication)`, Socket.IO's own fan-out (the
 * packet is encoded once per broadcast by the adapter). WebSocket transport only, no
 * compression, default heartbeat.
 *
 * Events come in like Baton's: `POST /v1/topics/{topic}/events` with `{"data":…}`, answered 202
 * `{"id":…,"seq":n}`; the topic is the room. The publication has the fields and about the size of
 * Baton's (`{data, offset, tags:{id, time}}`), so both servers move the same bytes.
 *
 * Usage: node bench/socketio-server.ts PORT
 */
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const ROOM = process.env["BENCH_ROOM"] ?? "room.1";
let seq = 0;

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if ((req.url ?? "").startsWith("/socket.io/")) return; // engine.io answers these
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
    const room = (req.url ?? "").split("/")[3] ?? "";
    const n = ++seq;
    const id = `evt_${String(n).padStart(26, "0")}`;
    io.to(room).emit("pub", { data: body.data, offset: n, tags: { id, time: new Date().toISOString() } });
    const ack = JSON.stringify({ id, seq: n });
    res.writeHead(202, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(ack) });
    res.end(ack);
  });
});

const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
io.on("connection", (socket) => {
  void socket.join(ROOM);
});

server.listen(port, "127.0.0.1");
// The parent holds our stdin open; when it goes away (even by SIGKILL) so do we.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
