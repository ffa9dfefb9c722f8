/**
 * The fan-out ceiling for bench/fanout.ts: a plain `ws` server that does the least a broadcast
 * can do in Node. Every socket that connects to /connection/websocket gets every event; an event
 * is serialised once, into a Buffer, and that same Buffer is sent to every socket.
 *
 * Events come in like Baton's: `POST /v1/topics/{topic}/events` with `{"data":…}`, answered 202
 * `{"id":…,"seq":n}`. The frame has the shape and about the size of Baton's publication push
 * (`{"push":{"channel":…,"pub":{"data":…,"offset":n,"tags":{"id":…,"time":…}}}}`), so both
 * servers move the same bytes. No auth, no storage, no flow control.
 *
 * Usage: node bench/ws-baseline-server.ts PORT
 */
import { createServer } from "node:http";
import { WebSocketServer, type WebSocket } from "ws";

const port = Number(process.argv[2]);
/**
 * BENCH_WS_FRAME=string: build the frame as a string per socket and let `ws` encode it on every
 * send, as Baton does, instead of one shared Buffer. Only to tell how much of the difference
 * between Baton and this server that accounts for; the benchmark runs the Buffer variant.
 */
const STRING_FRAMES = process.env["BENCH_WS_FRAME"] === "string";
const clients = new Set<WebSocket>();
let seq = 0;

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
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
    const pub = JSON.stringify({ data: body.data, offset: n, tags: { id, time: new Date().toISOString() } });
    if (STRING_FRAMES) {
      // Diagnostic variant: a string built per socket, as Baton's gateway does.
      for (const ws of clients) ws.send(`{"push":{"channel":${JSON.stringify(topic)},"pub":${pub}}}`);
    } else {
      const frame = Buffer.from(`{"push":{"channel":${JSON.stringify(topic)},"pub":${pub}}}`);
      for (const ws of clients) ws.send(frame, { binary: false });
    }
    const ack = JSON.stringify({ id, seq: n });
    res.writeHead(202, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(ack) });
    res.end(ack);
  });
});

const wss = new WebSocketServer({ server, path: "/connection/websocket", perMessageDeflate: false });
wss.on("connection", (ws) => {
  clients.add(ws);
  ws.on("close", () => clients.delete(ws));
  ws.on("error", () => ws.terminate());
});

server.listen(port, "127.0.0.1");
// The parent holds our stdin open; when it goes away (even by SIGKILL) so do we.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
