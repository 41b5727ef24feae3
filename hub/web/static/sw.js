// Hub's service worker: an offline shell for the pages, and Web Push tip alerts.
// __VERSION__ is a digest of the static files, filled in by the server: a new release installs
// a new cache and drops the old one.
const CACHE = "hub-shell-__VERSION__";
const SHELL = [
  "/app/",
  "/app/creator",
  "/app/fan",
  "/app/admin",
  "/app/manifest.webmanifest",
  "/app/vendor/socket.io.esm.min.js",
  "/app/static/css/app.css",
  "/app/static/js/common.js",
  "/app/static/js/signin.js",
  "/app/static/js/creator.js",
  "/app/static/js/fan.js",
  "/app/static/js/admin.js",
  "/app/static/icons/icon-192.png",
  "/app/static/icons/icon-512.png",
];

self.addEventListener("install", (event) => {
  // `reload`: straight from the hub, never a file the browser's HTTP cache kept from before.
  const fresh = SHELL.map((url) => new Request(url, { cache: "reload" }));
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(fresh)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("hub-shell-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// Everything under /app/: the network first (so a page and its scripts always come from the same
// release), and what was cached when offline; what the network gave is kept for that. The API
// and the socket are never cached: balances and tips come from Hub or not at all.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/app/")) return;
  if (url.pathname.startsWith("/app/dev/") || url.pathname === "/app/config.json") return;
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.ok && SHELL.includes(url.pathname)) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)));
      }
      return response;
    } catch (error) {
      const cached = await caches.match(url.pathname, { ignoreSearch: true });
      if (cached) return cached;
      if (request.mode === "navigate") return caches.match("/app/");
      throw error;
    }
  })());
});

function money(amount, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency, currencyDisplay: "narrowSymbol" });
    const digits = format.resolvedOptions().maximumFractionDigits;
    const units = String(amount).padStart(digits + 1, "0");
    return format.format(digits ? `${units.slice(0, -digits)}.${units.slice(-digits)}` : units);
  } catch {
    return `${amount} ${currency}`;
  }
}

self.addEventListener("push", (event) => {
  let payload = null;
  try {
    payload = event.data ? event.data.json() : null;
  } catch { /* not ours */ }
  if (!payload || payload.type !== "tip.received") return;
  const tip = payload.tip;
  event.waitUntil(self.registration.showNotification(`${tip.name || "Someone"} tipped ${money(tip.amount, tip.currency)}`, {
    body: tip.message || "",
    tag: `tip-${tip.id}`, // the same tip twice replaces, never stacks
    icon: "/app/static/icons/icon-192.png",
    badge: "/app/static/icons/icon-192.png",
    data: { url: payload.url || "/app/creator" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  let target = new URL(event.notification.data?.url || "/app/creator", location.origin);
  if (target.origin !== location.origin) target = new URL("/app/creator", location.origin); // only our pages
  target = target.href;
  event.waitUntil((async () => {
    for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
      if (client.url === target && "focus" in client) return client.focus();
    }
    return self.clients.openWindow(target);
  })());
});
