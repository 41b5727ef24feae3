// A webhook receiver for bench/sender.py: answers every POST 204 at once, counts what came
// and checks each user's deliveries arrive in seq order. GET /stats, POST /reset.
import http from "node:http";

const port = Number(process.env.RECEIVER_PORT);
let received = 0;
let outOfOrder = 0;
let repeated = 0;
let last = new Map();

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ received, out_of_order: outOfOrder, repeated, users: last.size }));
    return;
  }
  if (req.method === "POST" && req.url === "/reset") {
    received = 0; outOfOrder = 0; repeated = 0; last = new Map();
    res.writeHead(204).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    received += 1;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const before = last.get(body.user_id) ?? 0;
      if (body.seq <= before) repeated += 1;
      else if (body.seq !== before + 1) outOfOrder += 1;
      if (body.seq > before) last.set(body.user_id, body.seq);
    } catch {
      outOfOrder += 1;
    }
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => console.log("receiver listening"));
