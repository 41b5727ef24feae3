// The overlay for streaming software: connects with the overlay key from the URL's fragment
// (never sent to a server) and shows each tip alert once, one after the other.
import { io } from "/app/vendor/socket.io.esm.min.js";
import { el, formatMoney } from "/app/static/js/common.js";

const SHOW_MS = Number(new URLSearchParams(location.search).get("duration")) || 7000;
const key = new URLSearchParams(location.hash.slice(1)).get("key");
const stage = document.getElementById("stage");
const shown = new Set();
const queue = [];
let playing = false;

function render(alert) {
  const { name, amount, currency, message } = alert.data;
  return el("div", { class: "alert", "data-tip-id": alert.data.tip_id },
    el("span", { class: "who" }, `${name || "Someone"} tipped`),
    el("span", { class: "amount" }, formatMoney(amount, currency)),
    message ? el("span", { class: "message" }, message) : null);
}

async function play() {
  if (playing) return;
  playing = true;
  while (queue.length) {
    const node = render(queue.shift());
    stage.replaceChildren(node);
    await new Promise((done) => setTimeout(done, SHOW_MS));
    node.classList.add("leaving");
    await new Promise((done) => setTimeout(done, 450));
    node.remove();
  }
  playing = false;
}

if (!key) {
  document.getElementById("overlay-help").hidden = false;
} else {
  const socket = io(location.origin, { transports: ["websocket"], auth: { overlay_key: key } });
  const status = (state) => { document.body.dataset.live = state; };
  status("connecting");
  socket.on("connect", () => status("live"));
  socket.on("disconnect", (reason) => {
    status("reconnecting");
    // The server cut us (a revoked key, or a node shutting down): ask again; a revoked key is
    // then refused with invalid_overlay_key and the overlay stops.
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", (error) => {
    status(error?.data?.type === "invalid_overlay_key" ? "revoked" : "reconnecting");
    if (error?.data?.type === "invalid_overlay_key") {
      socket.disconnect();
      const help = document.getElementById("overlay-help");
      help.textContent = "This overlay key was revoked: copy the new overlay URL from your dashboard.";
      help.hidden = false;
    }
  });
  socket.on("tip.alert", (alert) => {
    const id = alert?.data?.tip_id;
    if (id === undefined || shown.has(id)) return; // never the same tip twice
    shown.add(id);
    queue.push(alert);
    play();
  });
}
