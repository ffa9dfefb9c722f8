/**
 * The ceiling: the least work an HTTP publish endpoint can do in Node (read the body, parse
 * it, answer) with none of Baton's auth, validation or storage. Baton's figures are read as a
 * fraction of this one, measured on the same machine under the same load.
 *
 * Usage: node bench/bare-server.ts PORT
 */
import { createServer } from "node:http";

const port = Number(process.argv[2]);
const ACK = JSON.stringify({ id: "evt_00000000000000000000000000", seq: 1 });

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "POST") {
      try {
        JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        res.writeHead(400).end();
        return;
      }
    }
    res.writeHead(202, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(ACK) });
    res.end(ACK);
  });
});

server.listen(port, "127.0.0.1");
// The parent holds our stdin open; when it goes away (even by SIGKILL) so do we.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
