// The Node.js peer of Hub's realtime part: Socket.IO 4 with its Redis adapter. It authenticates
// the same HS256 tokens (sub, role, exp), puts each socket in `user:<sub>`, sends `recovered`
// like Hub, and emits what the bench driver publishes into Redis the way @socket.io/redis-emitter
// does (channel `socket.io#/#<room>#`, msgpack [uid, packet, opts]). No HTTP routes, no database.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const port = Number(process.env.PEER_PORT);
const secret = process.env.PEER_JWT_SECRET;
const redisUrl = process.env.PEER_REDIS_URL;
if (!port || !secret || !redisUrl) {
  console.error("set PEER_PORT, PEER_JWT_SECRET and PEER_REDIS_URL");
  process.exit(2);
}

function verify(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  if (header.alg !== "HS256") return null;
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  if (typeof claims.sub !== "string" || !(claims.exp > Date.now() / 1000)) return null;
  return claims;
}

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  adapter: createAdapter(pub, sub),
  serveClient: false,
});

io.use((socket, next) => {
  const claims = verify(socket.handshake.auth?.token);
  if (!claims) {
    const error = new Error("invalid_token");
    error.data = { type: "invalid_token", message: "the token is not valid" };
    return next(error);
  }
  socket.data.user = claims.sub;
  next();
});

io.on("connection", (socket) => {
  socket.join(`user:${socket.data.user}`);
  socket.emit("recovered", { recovered: true, missed: 0, last_event_id: 0 });
});

httpServer.listen(port, "127.0.0.1", () => console.log(`peer listening on ${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
