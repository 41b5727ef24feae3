// The official Socket.IO client, driven line by line over stdin by the Python test:
//   "drop"      -> disconnect (the connection is cut; events keep happening)
//   "reconnect" -> connect again with the last event id seen
//   "quit"      -> disconnect and exit
// Every event received is printed as one JSON line: {"event": name, "data": payload}.
// The documented client rule is applied as a client would: remember the last id, and drop
// what was already seen (the test also counts what the server sent, before the rule).
import { io } from "socket.io-client";
import readline from "node:readline";

const url = process.env.HUB_URL;
const token = process.env.HUB_TOKEN;
let lastEventId = null;
const seen = new Set();
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(url, { transports: ["websocket"], auth: { token }, reconnection: false });

socket.onAny((event, data) => {
  print({ event, data, duplicate: data && data.id !== undefined && seen.has(data.id) });
  if (event === "recovered" && data.last_event_id !== undefined && data.last_event_id !== null) {
    lastEventId = lastEventId ?? data.last_event_id;
  }
  if (data && data.id !== undefined) {
    seen.add(data.id);
    lastEventId = data.id;
  }
});
socket.on("connect", () => print({ event: "connect" }));
socket.on("disconnect", (reason) => print({ event: "disconnect", data: reason }));
socket.on("connect_error", (err) => print({ event: "connect_error", data: err.data ?? err.message }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = line.trim();
  if (command === "drop") socket.disconnect();
  if (command === "reconnect") {
    socket.auth = { token, last_event_id: lastEventId };
    socket.connect();
  }
  if (command === "quit") {
    socket.disconnect();
    process.exit(0);
  }
});
setTimeout(() => process.exit(3), 60_000).unref(); // bounded: never outlives the test
