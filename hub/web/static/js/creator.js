// The creator dashboard: live tip alerts (with sound and Web Push), earnings, recent tips,
// payouts and the overlay URL.
import {
  amountExample, amountPreview, api, Balances, beforeSignOut, chime, currencyOptions, draftKey, el, formatMoney, live, onSubmit, pageConfig,
  parseAmount, platformNotices, registerServiceWorker, requireUser, settled, show, statusIndicator, when, wireSignOut,
} from "/app/static/js/common.js";

wireSignOut();
registerServiceWorker();
const me = await requireUser("creator");
const config = await pageConfig();
document.getElementById("who").textContent = me.name || me.id;

// ---- tips: one entry per tip id, whether it came over HTTP, live, or replayed ----------------
const tips = new Map();
const tipList = document.getElementById("tips");
const alertBox = document.getElementById("alert");
const sound = document.getElementById("sound");
sound.checked = localStorage.getItem("hub:sound") === "on";
sound.addEventListener("change", () => {
  localStorage.setItem("hub:sound", sound.checked ? "on" : "off");
  if (sound.checked) chime();
});

function renderTips() {
  const newest = [...tips.values()].sort((a, b) => b.id - a.id).slice(0, 50);
  tipList.replaceChildren(...(newest.length ? newest.map((tip) =>
    el("li", { "data-tip-id": tip.id },
      el("strong", {}, tip.name || "Someone"), " tipped ",
      el("span", { class: "amount" }, formatMoney(tip.amount, tip.currency)),
      tip.message ? el("span", { class: "message" }, tip.message) : null,
      el("span", { class: "muted" }, when(tip.created_at)))) : [el("li", { class: "muted" }, "No tips yet.")]));
}

function showAlert(tip) {
  alertBox.replaceChildren(el("div", { class: "tip-alert", "data-tip-id": tip.id },
    el("strong", { class: "who" }, `${tip.name || "Someone"} tipped`),
    el("span", { class: "amount" }, formatMoney(tip.amount, tip.currency)),
    tip.message ? el("span", { class: "message" }, tip.message) : null));
  if (sound.checked) chime();
}

function addTip(tip, { alert }) {
  if (tips.has(tip.id)) return;
  tips.set(tip.id, tip);
  renderTips();
  if (alert) showAlert(tip);
}

async function loadTips() {
  const page = await api("/api/v1/tips?direction=received&limit=20");
  for (const t of page.data) {
    addTip({ id: t.id, name: t.fan_name, amount: t.amount.amount, currency: t.amount.currency,
      message: t.message, created_at: t.created_at }, { alert: false });
  }
}

// ---- earnings ---------------------------------------------------------------------------------
const earnings = new Balances((accounts) => {
  document.getElementById("earnings").replaceChildren(...accounts
    .filter((a) => a.kind === "earnings")
    .sort((a, b) => a.currency.localeCompare(b.currency))
    .map((a) => el("li", { "data-currency": a.currency },
      el("span", { class: "muted" }, a.currency),
      el("span", { class: "amount" }, formatMoney(a.balance, a.currency)),
      el("span", { class: "muted" }, `${formatMoney(a.available, a.currency)} available`))));
});

// ---- activity: payouts and sales ---------------------------------------------------------------
const activity = document.getElementById("activity");
function note(text) {
  activity.prepend(el("li", {}, text));
  while (activity.children.length > 10) activity.lastChild.remove();
}

const fromPlatform = platformNotices(document.getElementById("platform"));
// ---- the live connection -------------------------------------------------------------------------
live({
  user: me.id,
  onStatus: statusIndicator(document.getElementById("status"), document.getElementById("reconnecting")),
  async onResync() {
    await Promise.all([earnings.load(), loadTips()]);
  },
  onEvent(type, event) {
    const data = event.data;
    if (fromPlatform(type, event)) return;
    if (type === "tip.received") {
      addTip({ id: data.tip_id, name: data.fan_name, amount: data.amount, currency: data.currency,
        message: data.message, created_at: event.occurred_at }, { alert: true });
    } else if (type === "balance.updated") {
      earnings.apply(data);
    } else if (type === "payout.requested") {
      note(`Payout ${formatMoney(data.amount.amount, data.amount.currency)} requested`);
    } else if (type === "payout.paid") {
      note(`Payout ${formatMoney(data.amount.amount, data.amount.currency)} paid`);
    } else if (type === "payout.failed") {
      note(`Payout ${formatMoney(data.amount.amount, data.amount.currency)} failed: ${data.failure_reason || "the provider refused it"} (the money is back in your earnings)`);
    } else if (type === "ppv.sold") {
      note(`“${data.title}” sold for ${formatMoney(data.amount, data.currency)}`);
    }
  },
});

// ---- payouts ---------------------------------------------------------------------------------------
const payoutForm = document.getElementById("payout-form");
const payoutNotice = document.getElementById("payout-notice");
currencyOptions(document.getElementById("payout-currency"), config.currencies);
const payoutPreview = amountPreview(payoutForm, "You request");
onSubmit(payoutForm, payoutNotice, async (form) => {
  const currency = form.get("currency");
  const amount = parseAmount(form.get("amount"), currency);
  if (amount === null) {
    show(payoutNotice, `Write the amount like ${amountExample(currency)}.`, "error");
    return;
  }
  const payout = await api("/api/v1/payouts", { method: "POST", body: { amount, currency }, key: draftKey(payoutForm) });
  settled(payoutForm);
  payoutForm.reset();
  payoutPreview();
  show(payoutNotice, `Payout of ${formatMoney(payout.amount.amount, payout.amount.currency)} requested: it is held from your earnings until the provider pays it.`, "ok");
});

// ---- overlay URLs --------------------------------------------------------------------------------
const overlayNotice = document.getElementById("overlay-notice");
const overlayUrl = document.getElementById("overlay-url");

function revealOverlay(key) {
  overlayUrl.value = `${location.origin}/app/overlay#key=${encodeURIComponent(key)}`;
  document.getElementById("new-overlay").hidden = false;
  overlayUrl.select();
}

async function loadOverlayKeys() {
  const keys = (await api("/api/v1/overlay-keys")).data.filter((k) => !k.revoked_at);
  document.getElementById("overlay-keys").replaceChildren(...keys.map((k) => {
    const name = k.label || "Overlay";
    const rotate = confirmButton("Rotate", `Rotate ${name}`, "secondary",
      () => overlayAction(() => api(`/api/v1/overlay-keys/${k.id}/rotate`, { method: "POST" }), "Rotated: the old URL stopped working; use the new one."));
    const revoke = confirmButton("Revoke", `Revoke ${name}`, "danger",
      () => overlayAction(() => api(`/api/v1/overlay-keys/${k.id}`, { method: "DELETE" }), "Revoked: overlays using it went dark."));
    return el("li", { "data-key-id": k.id },
      el("strong", {}, k.label || "Overlay"), " ", el("span", { class: "muted" }, `since ${when(k.created_at)}`),
      el("div", { class: "row" }, rotate, revoke));
  }));
}

// Cutting a live overlay mid-stream takes two presses: the first asks, the second does it.
function confirmButton(label, ariaLabel, kind, action) {
  const button = el("button", { type: "button", class: kind, "aria-label": ariaLabel }, label);
  let armed;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = `Press again to ${label.toLowerCase()}`;
      armed = setTimeout(() => { armed = undefined; button.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    button.disabled = true;
    await action();
  });
  return button;
}

async function overlayAction(request, message) {
  show(overlayNotice, "");
  try {
    const answer = await request();
    if (answer?.key) revealOverlay(answer.key);
    else document.getElementById("new-overlay").hidden = true;
    show(overlayNotice, message, "ok");
    await loadOverlayKeys();
  } catch (error) {
    show(overlayNotice, error.message, "error");
  }
}

onSubmit(document.getElementById("overlay-form"), overlayNotice, async (form) => {
  const label = form.get("label").trim() || null;
  await overlayAction(() => api("/api/v1/overlay-keys", { method: "POST", body: { label } }), "New overlay URL made.");
  document.getElementById("overlay-form").reset();
});
document.getElementById("copy-overlay").addEventListener("click", async () => {
  overlayUrl.select();
  try {
    await navigator.clipboard.writeText(overlayUrl.value);
    show(overlayNotice, "Copied.", "ok");
  } catch {
    show(overlayNotice, "Select the URL and copy it.", "info");
  }
});
loadOverlayKeys().catch((error) => show(overlayNotice, error.message, "error"));

// ---- Web Push: tip alerts on this device when no dashboard is open ---------------------------------
async function setUpPush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
  const push = await api("/api/v1/push/config").catch(() => null);
  if (!push?.enabled) return;
  const toggle = document.getElementById("push-toggle");
  const notice = document.getElementById("push-notice");
  const registration = await navigator.serviceWorker.ready;
  const key = base64UrlBytes(push.public_key);
  let current = await registration.pushManager.getSubscription();
  if (current && !sameKey(current.options.applicationServerKey, key)) {
    // The hub's VAPID key was rotated: this subscription can no longer be used. Drop it and
    // make a new one with the new key (permission was given before).
    await api("/api/v1/push/subscriptions", { method: "DELETE", body: { endpoint: current.endpoint } }).catch(() => {});
    await current.unsubscribe();
    current = Notification.permission === "granted"
      ? await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
      : null;
  }
  // This browser's subscription belongs to whoever is signed in now (on a shared device the
  // previous creator's alerts must stop): registering it again moves it to this creator.
  if (current) await api("/api/v1/push/subscriptions", { method: "POST", body: current.toJSON() });
  beforeSignOut(async () => {
    const subscription = await registration.pushManager.getSubscription();
    if (!subscription) return;
    await api("/api/v1/push/subscriptions", { method: "DELETE", body: { endpoint: subscription.endpoint } }).catch(() => {});
    await subscription.unsubscribe();
  });
  toggle.checked = Boolean(current);
  document.getElementById("push").hidden = false;
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    show(notice, "");
    try {
      if (toggle.checked) {
        if ((await Notification.requestPermission()) !== "granted") throw new Error("notifications are blocked for this site");
        const subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: key,
        });
        await api("/api/v1/push/subscriptions", { method: "POST", body: subscription.toJSON() });
        show(notice, "This device will be notified of tips while no dashboard is open.", "ok");
      } else {
        const subscription = await registration.pushManager.getSubscription();
        if (subscription) {
          await api("/api/v1/push/subscriptions", { method: "DELETE", body: { endpoint: subscription.endpoint } }).catch(() => {});
          await subscription.unsubscribe();
        }
        show(notice, "Notifications off for this device.", "ok");
      }
    } catch (error) {
      toggle.checked = !toggle.checked;
      show(notice, `Could not change notifications: ${error.message}`, "error");
    } finally {
      toggle.disabled = false;
    }
  });
}

function sameKey(buffer, bytes) {
  const mine = new Uint8Array(buffer || []);
  return mine.length === bytes.length && mine.every((byte, i) => byte === bytes[i]);
}

function base64UrlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

setUpPush().catch(() => {});
