// The peer of bench/sender.py: the same signed deliveries POSTed to the same receiver by a
// bare Node loop, with the same discipline as Hub's sender (at most LANES users' queues at a
// time, each user's deliveries one after another in seq order), and no database: the HTTP
// floor of sending them. Reads JSON lines {user_id, id, payload} from DELIVERIES; prints
// {seconds, cpu_ms, sent, failed}.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";

const url = new URL(process.env.TARGET_URL);
const lanes = Number(process.env.LANES || 64);
const secret = Buffer.from(process.env.SECRET.replace(/^whsec_/, ""), "base64");
const agent = new http.Agent({ keepAlive: true, maxSockets: lanes });

const queues = new Map();
for (const line of fs.readFileSync(process.env.DELIVERIES, "utf8").split("\n")) {
  if (!line) continue;
  const d = JSON.parse(line);
  if (!queues.has(d.user_id)) queues.set(d.user_id, []);
  queues.get(d.user_id).push(d);
}

function post(d) {
  return new Promise((resolve) => {
    const timestamp = Math.floor(Date.now() / 1000);
    const id = `evt_${d.event_id}`;
    const signature = crypto.createHmac("sha256", secret)
      .update(`${id}.${timestamp}.${d.payload}`).digest("base64");
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname, method: "POST", agent,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(d.payload),
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": `v1,${signature}`,
      },
    }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode < 300)); });
    req.on("error", () => resolve(false));
    req.end(d.payload);
  });
}

const pending = [...queues.values()];
let sent = 0, failed = 0;
const started = process.hrtime.bigint();
const cpu = process.cpuUsage();
async function lane() {
  for (let queue = pending.shift(); queue; queue = pending.shift()) {
    for (const d of queue) (await post(d)) ? sent++ : failed++;
  }
}
await Promise.all(Array.from({ length: lanes }, lane));
const used = process.cpuUsage(cpu);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ seconds, cpu_ms: (used.user + used.system) / 1000, sent, failed }));
agent.destroy();
