// What every page shares: the session's token, the HTTP API, money formatting, safe DOM
// building, and the live Socket.IO connection with recovery and de-duplication.
import { io } from "/app/vendor/socket.io.esm.min.js";

const TOKEN = "hub:token";
const REQUEST_TIMEOUT_MS = 20_000; // then the button works again, with the same key

// The token lives in sessionStorage: one tab's sign-in, gone when the tab closes, never in a URL.
export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  signIn: (token) => sessionStorage.setItem(TOKEN, token),
  signOut() {
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith("hub:")) sessionStorage.removeItem(key);
    }
  },
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.type = error?.type || "http_error";
    this.param = error?.param ?? null;
    this.fromHub = Boolean(error?.type); // a proxy's error page is not Hub's answer
  }

  // Hub answered, and the answer is final for this key (a refusal such as insufficient funds is
  // kept with it): the next press must be a new attempt. Anything else (no answer, a proxy's
  // error, a 5xx, "still in flight") may not have reached Hub or may still run: same key.
  get settles() {
    return this.fromHub && this.status < 500 && this.type !== "idempotency_in_flight";
  }
}

export function newKey() {
  return crypto.randomUUID();
}

// One call to the HTTP API. A money-moving call passes its Idempotency-Key: the caller makes one
// key per user action and reuses it if it retries that action.
export async function api(path, { method = "GET", body, key, token = session.token() } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    offline(true);
    throw error;
  }
  offline(false);
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && token && token === session.token()) expired();
    throw new ApiError(response.status, payload?.error);
  }
  return payload;
}

function expired() {
  session.signOut();
  location.assign("/app/?expired=1");
}

// The signed-in user, or back to sign-in. A page for another role says so and links home.
export async function requireUser(...roles) {
  if (!session.token()) {
    location.assign("/app/");
    throw new Error("not signed in");
  }
  let me;
  try {
    me = await api("/api/v1/me");
  } catch (error) {
    if (!(error instanceof ApiError)) startedOffline = true;
    throw error;
  }
  if (roles.length && !roles.includes(me.role)) {
    document.body.replaceChildren(
      el("main", { class: "narrow" },
        el("h1", {}, "Not for this account"),
        el("p", {}, `You are signed in as ${me.name || me.id} (${me.role}); this page is for ${roles.join(" or ")}s.`),
        el("p", {}, el("a", { href: home(me.role) }, "Go to your page"), " · ",
          el("a", { href: "/app/", "data-action": "sign-out" }, "Sign in as someone else"))));
    wireSignOut();
    throw new Error("wrong role");
  }
  return me;
}

export function home(role) {
  return { creator: "/app/creator", fan: "/app/fan", admin: "/app/admin" }[role] || "/app/";
}

// What a page must undo before its user leaves (the dashboard's Web Push subscription).
const signOutSteps = [];
export function beforeSignOut(step) {
  signOutSteps.push(step);
}

export function wireSignOut() {
  for (const link of document.querySelectorAll("[data-action=sign-out]")) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const timeout = new Promise((done) => setTimeout(done, 3000));
      await Promise.race([Promise.allSettled(signOutSteps.map((step) => step())), timeout]);
      session.signOut();
      location.assign(link.href);
    });
  }
}

let configPromise;
export function pageConfig() {
  configPromise ??= fetch("/app/config.json", { cache: "no-store" }).then((r) => r.json());
  return configPromise;
}

// ---- DOM: text goes in as text nodes, never as HTML ------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(node, message, kind = "info") {
  node.textContent = message;
  node.dataset.kind = kind;
  node.hidden = !message;
}

// ---- money: integer minor units in, the currency's usual format out ---------------------------

const formats = new Map();
function currencyFormat(currency) {
  if (!formats.has(currency)) {
    formats.set(currency, new Intl.NumberFormat(undefined, {
      style: "currency", currency, currencyDisplay: "narrowSymbol",
    }));
  }
  return formats.get(currency);
}

export function minorDigits(currency) {
  return currencyFormat(currency).resolvedOptions().maximumFractionDigits;
}

// Exact for any amount: the number goes to Intl as a decimal string, never through a float.
export function formatMoney(amount, currency) {
  const digits = minorDigits(currency);
  const negative = amount < 0;
  const units = String(Math.abs(amount)).padStart(digits + 1, "0");
  const whole = units.slice(0, units.length - digits) || "0";
  const decimal = digits ? `${whole}.${units.slice(units.length - digits)}` : whole;
  return currencyFormat(currency).format(`${negative ? "-" : ""}${decimal}`);
}

// The person's own way of writing numbers ("1,500.50" in en, "1.500,50" in de, "1 500,50" in fr).
const separators = Object.fromEntries(
  new Intl.NumberFormat().formatToParts(12345.6).map((part) => [part.type, part.value]));
const DECIMAL = separators.decimal || ".";
const GROUP = (separators.group || ",").replace(/\s/g, "");
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const GROUPED = new RegExp(`^\\d{1,3}(?:${escape(GROUP || ",")}\\d{3})+$`);

// Typed amount → minor units, read the way the page shows numbers: "1,500.50" → 150050 for NGN
// in English, "1.500,50" in German. Anything ambiguous ("12,50" in English, "1.005" for a
// two-decimal currency) is refused rather than guessed: a misread amount moves real money.
export function parseAmount(text, currency) {
  const digits = minorDigits(currency);
  const cleaned = String(text).replace(/\s/g, "");
  const [whole, fraction = "", extra] = cleaned.split(DECIMAL);
  if (extra !== undefined || !whole) return null;
  const plain = /^\d+$/.test(whole) ? whole : GROUP && GROUPED.test(whole) ? whole.split(GROUP).join("") : null;
  if (plain === null || !new RegExp(`^\\d{0,${digits}}$`).test(fraction)) return null;
  if (!digits && cleaned.includes(DECIMAL)) return null;
  const minor = Number(plain + fraction.padEnd(digits, "0"));
  return Number.isSafeInteger(minor) && minor > 0 ? minor : null;
}

// "1,500.50" or "1.500,50": how to write an amount in this currency, the person's way.
export function amountExample(currency) {
  const digits = minorDigits(currency);
  return new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(1500.5);
}

// Under a form's amount, what it will do in the currency's format ("You send ₦12.50"), or how to
// write an amount: the person sees the reading before any money moves.
export function amountPreview(form, verb) {
  const input = form.querySelector("input[name=amount]");
  const select = form.querySelector("select[name=currency]");
  const preview = form.querySelector(".preview");
  const update = () => {
    const currency = select.value;
    input.placeholder = amountExample(currency);
    if (!input.value.trim()) {
      preview.textContent = "";
      return;
    }
    const amount = parseAmount(input.value, currency);
    preview.textContent = amount === null
      ? `Write the amount like ${amountExample(currency)}`
      : `${verb} ${formatMoney(amount, currency)}`;
  };
  input.addEventListener("input", update);
  select.addEventListener("change", update);
  update();
  return update;
}

export function currencyOptions(select, currencies, preferred) {
  select.replaceChildren(...currencies.map((c) => el("option", { value: c }, c)));
  if (preferred && currencies.includes(preferred)) select.value = preferred;
}

export function when(iso) {
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// ---- the live connection -----------------------------------------------------------------------

// Status shown to the person: "connecting", "live" or "reconnecting" (with the reason) in the
// badge, and while reconnecting the page's banner, if it has one.
export function statusIndicator(node, banner) {
  const labels = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    ended: "Disconnected by the platform",
  };
  return (state, detail) => {
    node.dataset.state = state;
    node.textContent = labels[state] || state;
    node.title = detail || "";
    document.body.dataset.live = state;
    if (banner) banner.hidden = state !== "reconnecting";
  };
}

// Connects with the token in the auth payload and the last event id this tab has seen, so a
// reconnect (after a network blip, a server restart, or a reload) replays exactly what was
// missed. Events are handed on once: an id already seen is dropped (delivery is at least once).
// `onResync` runs when the server cannot replay the gap (recovered: false) and on first connect
// after the position is known: the page then reads its state over HTTP.
//
// With `viewing` (a creator's id), the socket also follows that creator's public channel: its
// events go to `onPublic`, its cursor is kept apart, and `onPublicResync` runs when the channel
// cannot replay what was missed.
export function live({ user, onEvent, onResync, onStatus, viewing, onPublic, onPublicResync }) {
  const positionKey = `hub:last-event:${user}`;
  let lastEventId = sessionStorage.getItem(positionKey);
  const publicKey = viewing ? `hub:last-public:${user}:${viewing}` : null;
  let lastPublicId = publicKey ? sessionStorage.getItem(publicKey) : null;
  const rememberPublic = (id) => {
    lastPublicId = String(id);
    sessionStorage.setItem(publicKey, lastPublicId);
  };
  let synced = false;
  const seen = new Set();
  const remember = (id) => {
    lastEventId = String(id);
    sessionStorage.setItem(positionKey, lastEventId);
  };

  // The page's state over HTTP; a failure (a blip, a 5xx) is tried again, or the page would
  // show stale earnings until a reload.
  let resyncing = false;
  async function resyncUntilDone(delay = 1000) {
    if (resyncing || !onResync) return;
    resyncing = true;
    try {
      await onResync();
      resyncing = false;
    } catch {
      resyncing = false;
      setTimeout(() => resyncUntilDone(Math.min(delay * 2, 30_000)), delay);
    }
  }

  onStatus("connecting");
  const socket = io(location.origin, {
    transports: ["websocket"],
    reconnectionDelayMax: 5000,
    auth: (cb) => {
      const auth = { token: session.token() };
      if (lastEventId !== null) auth.last_event_id = Number(lastEventId);
      if (viewing) {
        auth.viewing = viewing;
        if (lastPublicId !== null) auth.viewing_last_event_id = Number(lastPublicId);
      }
      cb(auth);
    },
  });
  // The platform ended this session (POST /api/v1/users/{id}/disconnect, or a ban): stay away.
  let ended = null;
  socket.on("hub.error", (event) => {
    const type = event?.error?.type;
    if (type === "disconnected" || type === "banned") ended = event.error.message;
  });
  socket.on("connect", () => onStatus("live"));
  socket.on("disconnect", (reason) => {
    if (ended !== null) {
      onStatus("ended", ended);
      return;
    }
    onStatus("reconnecting", reason);
    if (reason === "io server disconnect") socket.connect(); // the server closed it: come back
  });
  socket.on("connect_error", (error) => {
    const type = error?.data?.type;
    if (type === "token_expired" || type === "invalid_token" || type === "missing_token") {
      expired();
      return;
    }
    if (type === "user_banned") { // no use trying again before the ban ends
      socket.disconnect();
      onStatus("ended", error.data.message);
      return;
    }
    onStatus("reconnecting", error?.data?.message || error.message);
  });
  socket.onAny((type, event) => {
    if (type === "public.recovered") {
      if (!event.recovered || lastPublicId === null) rememberPublic(event.last_event_id ?? 0);
      if (!event.recovered && onPublicResync) onPublicResync();
      return;
    }
    if (viewing && event?.channel === viewing) { // the creator's channel (it names itself)
      if (seen.has(event.id)) return;
      seen.add(event.id);
      rememberPublic(event.id);
      onPublic?.(type, event);
      return;
    }
    if (type === "recovered") {
      const resync = !event.recovered || !synced;
      if (!event.recovered || lastEventId === null) remember(event.last_event_id ?? 0);
      synced = true;
      if (resync) resyncUntilDone();
      return;
    }
    if (!event || event.id === undefined) return;
    if (seen.has(event.id)) return;
    seen.add(event.id);
    remember(event.id);
    onEvent(type, event);
  });
  return socket;
}

// The platform's own events (app.* to a user, public.app.* to a creator's channel): listed as
// they came, newest first, their data shown as text. Returns whether `type` was one of them.
export function platformNotices(list) {
  return (type, event) => {
    if (!type.startsWith("app.") && !type.startsWith("public.app.")) return false;
    if (list.querySelector(".muted")) list.replaceChildren();
    list.prepend(el("li", {}, el("strong", {}, type), " ", el("code", {}, JSON.stringify(event.data))));
    while (list.children.length > 20) list.lastElementChild.remove();
    return true;
  };
}

export function registerServiceWorker() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  }
}

// A short chime made on the spot (no audio file to fetch); browsers only play it after the page
// was clicked once, which the sound switch itself is.
let audio;
export function chime() {
  audio ??= new AudioContext();
  const now = audio.currentTime;
  for (const [offset, frequency] of [[0, 880], [0.12, 1320]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.4);
  }
}

// One Idempotency-Key per thing the person means to do: pressing the button again for the same
// form values (after a timeout, say) reuses the key, so the money moves at most once; changed
// values, or a finished request, start a new one.
export function draftKey(form) {
  const values = JSON.stringify([...new FormData(form).entries()]);
  if (form.dataset.values !== values || !form.dataset.key) {
    form.dataset.values = values;
    form.dataset.key = newKey();
  }
  return form.dataset.key;
}

export function settled(form) {
  delete form.dataset.key;
  delete form.dataset.values;
}

// Runs `action` on submit with the form's button disabled; errors land in `notice`.
export function onSubmit(form, notice, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    show(notice, "");
    try {
      await action(new FormData(form));
    } catch (error) {
      if (error instanceof ApiError && error.settles) settled(form);
      show(notice, error instanceof ApiError ? error.message : `Could not reach Hub (${error.message})`, "error");
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

// Balances by account, newest version wins: a late or replayed balance.updated never rolls the
// shown balance back.
export class Balances {
  constructor(render) {
    this.accounts = new Map();
    this.render = render;
  }

  apply(account) {
    const known = this.accounts.get(account.account_id ?? account.id);
    if (known && known.version >= account.version) return;
    this.accounts.set(account.account_id ?? account.id, {
      id: account.account_id ?? account.id,
      kind: account.kind,
      currency: account.currency,
      balance: account.balance,
      available: account.available,
      version: account.version,
    });
    this.render([...this.accounts.values()]);
  }

  async load() {
    const wallet = await api("/api/v1/wallet");
    wallet.balances.forEach((account) => this.apply(account));
  }
}

// Offline: the shell still opens (the service worker keeps it); say why nothing is live. A page
// that could not even read who is signed in starts again once the network is back.
let offlineBanner;
let startedOffline = false;

function offline(yes) {
  if (!yes) {
    offlineBanner?.remove();
    offlineBanner = undefined;
    return;
  }
  offlineBanner ??= el("p", { class: "banner", role: "alert", id: "offline" },
    "You are offline: balances and tips show again when the network is back.");
  if (!offlineBanner.isConnected) document.body.prepend(offlineBanner);
}

addEventListener("offline", () => offline(true));
addEventListener("online", () => {
  offline(false);
  if (startedOffline) location.reload();
});
if (!navigator.onLine) offline(true);
