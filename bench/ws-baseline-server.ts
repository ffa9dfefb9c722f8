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
import { WebSocketServer, type WebSocket } from "ws";
import { peerPublishServer } from "./peer-publish.ts";

const port = Number(process.argv[2]);
/**
 * BENCH_WS_FRAME=string: build the frame as a string per socket and let `ws` encode it on every
 * send, as Baton does, instead of one shared Buffer. Only to tell how much of the difference
 * between Baton and this server that accounts for; the benchmark runs the Buffer variant.
 */
const STRING_FRAMES = process.env["BENCH_WS_FRAME"] === "string";
const clients = new Set<WebSocket>();

const server = peerPublishServer((topic, data, offset, id) => {
  const pub = JSON.stringify({ data, offset, tags: { id, time: new Date().toISOString() } });
  if (STRING_FRAMES) {
    // Diagnostic variant: a string built per socket, which ws encodes on every send.
    for (const ws of clients) ws.send(`{"push":{"channel":${JSON.stringify(topic)},"pub":${pub}}}`);
  } else {
    const frame = Buffer.from(`{"push":{"channel":${JSON.stringify(topic)},"pub":${pub}}}`);
    for (const ws of clients) ws.send(frame, { binary: false });
  }
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
