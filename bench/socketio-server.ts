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
import { Server } from "socket.io";
import { peerPublishServer } from "./peer-publish.ts";

const port = Number(process.argv[2]);
const ROOM = process.env["BENCH_ROOM"] ?? "room.1";

const server = peerPublishServer(
  (room, data, offset, id) => io.to(room).emit("pub", { data, offset, tags: { id, time: new Date().toISOString() } }),
  (url) => url.startsWith("/socket.io/"), // engine.io answers these
);

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
