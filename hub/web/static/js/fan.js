// The fan page: a live wallet balance, top-up through the provider's checkout, tips, and
// pay-per-view content.
import {
  amountExample, amountPreview, api, ApiError, Balances, currencyOptions, draftKey, el, formatMoney, live, newKey, onSubmit, pageConfig,
  parseAmount, platformNotices, registerServiceWorker, requireUser, settled, show, statusIndicator, when, wireSignOut,
} from "/app/static/js/common.js";

wireSignOut();
registerServiceWorker();
const me = await requireUser("fan", "creator");
const config = await pageConfig();
document.getElementById("who").textContent = me.name || me.id;
const params = new URLSearchParams(location.search);

// ---- balances -----------------------------------------------------------------------------------
const balances = new Balances((accounts) => {
  const wallets = accounts.filter((a) => a.kind === "wallet").sort((a, b) => a.currency.localeCompare(b.currency));
  document.getElementById("balances").replaceChildren(...wallets.map((a) =>
    el("li", { "data-currency": a.currency },
      el("span", { class: "muted" }, a.currency),
      el("span", { class: "amount" }, formatMoney(a.available, a.currency)))));
});

// ---- activity: the wallet's ledger entries, read again whenever the balance moves ------------------
const activity = document.getElementById("activity");
const KINDS = { topup: "Top-up", purchase: "Pay-per-view", refund: "Refund", dev_funding: "Demo funding" };

function entryItem(entry, tip) {
  const { amount, currency } = entry.amount;
  const label = entry.kind === "tip"
    ? `Tip to ${tip?.creator_name || entry.details?.creator_id || "a creator"}`
    : KINDS[entry.kind] || entry.kind;
  return el("li", { "data-entry-id": entry.id },
    el("strong", {}, label), " ",
    el("span", { class: "amount" }, `${amount < 0 ? "−" : "+"}${formatMoney(Math.abs(amount), currency)}`),
    tip?.message ? el("span", { class: "message" }, tip.message) : null,
    el("span", { class: "muted" }, when(entry.created_at)));
}

let activityTimer;
async function loadActivity() {
  const [entries, sent] = await Promise.all([
    api("/api/v1/transactions?account=wallet&limit=15"),
    api("/api/v1/tips?direction=sent&limit=50"),
  ]);
  const tips = new Map(sent.data.map((tip) => [tip.id, tip]));
  activity.replaceChildren(...(entries.data.length
    ? entries.data.map((entry) => entryItem(entry, entry.kind === "tip" ? tips.get(entry.transfer_id) : null))
    : [el("li", { class: "muted" }, "Nothing yet.")]));
}
function refreshActivity() {
  clearTimeout(activityTimer);
  activityTimer = setTimeout(() => loadActivity().catch(() => {}), 150);
}

// ---- a top-up on its way back from the provider's checkout ---------------------------------------
const pendingBanner = document.getElementById("topup-pending");
const returning = Number(params.get("topup")) || null; // the payment's id
if (returning) {
  pendingBanner.textContent = "Your payment is being confirmed by the provider; your balance updates by itself as soon as it is.";
  pendingBanner.hidden = false;
  history.replaceState(null, "", location.pathname + (params.get("creator") ? `?creator=${encodeURIComponent(params.get("creator"))}` : ""));
}

// The payment this page came back with: settled already (its event may predate this tab), or
// settling now (its event arrives on the socket).
function paymentSettled(payment) {
  if (!returning || payment.id !== returning || payment.status === "pending") return;
  pendingBanner.hidden = true;
  if (payment.status === "failed") {
    show(document.getElementById("topup-notice"), `Payment of ${formatMoney(payment.amount.amount, payment.amount.currency)} failed: ${payment.failure_reason || "declined"}. Nothing was taken from your wallet.`, "error");
  }
}

async function checkReturningPayment() {
  if (returning && !pendingBanner.hidden) paymentSettled(await api(`/api/v1/payments/${returning}`));
}

// ---- live ------------------------------------------------------------------------------------------
const fromPlatform = platformNotices(document.getElementById("platform"));

// ---- the creator's public channel (?creator=): live state, goal, a ticker of their tips -----------
const viewing = params.get("creator") || null;
const channel = { goal: null, live: null };
const ticker = document.getElementById("ticker");

function renderChannel() {
  const liveLine = document.getElementById("channel-live");
  liveLine.textContent = channel.live ? `Live now${channel.live.title ? `: ${channel.live.title}` : ""}` : "Offline";
  liveLine.dataset.live = channel.live ? "true" : "false";
  const box = document.getElementById("channel-goal");
  box.hidden = !channel.goal;
  if (channel.goal) {
    const { title, target, raised, currency } = channel.goal;
    document.getElementById("goal-title").textContent = `Goal: ${title}`;
    const bar = document.getElementById("goal-progress");
    bar.max = target;
    bar.value = Math.min(raised, target);
    document.getElementById("goal-figures").textContent = `${formatMoney(raised, currency)} of ${formatMoney(target, currency)}`;
  }
}

async function loadChannel() {
  const profile = await api(`/api/v1/creators/${encodeURIComponent(viewing)}`);
  channel.goal = profile.goal;
  channel.live = profile.live;
  renderChannel();
}

function onChannel(type, event) {
  const data = event.data;
  if (type === "public.tip") {
    if (ticker.querySelector(".muted")) ticker.replaceChildren();
    ticker.prepend(el("li", { "data-event-id": event.id },
      el("strong", {}, `${data.name} tipped ${formatMoney(data.amount, data.currency)}`),
      data.message ? el("span", { class: "message" }, ` “${data.message}”`) : null));
    while (ticker.children.length > 10) ticker.lastElementChild.remove();
    if (channel.goal && channel.goal.currency === data.currency) channel.goal.raised += data.amount;
  } else if (type === "public.goal") {
    channel.goal = data.goal;
  } else if (type === "public.live") {
    channel.live = data.live ? { since: data.since, title: data.title } : null;
  } else {
    fromPlatform(type, event);
    return;
  }
  renderChannel();
}

if (viewing) {
  document.getElementById("channel").hidden = false;
  loadChannel().catch(() => {});
}

live({
  user: me.id,
  viewing,
  onPublic: onChannel,
  onPublicResync: () => loadChannel().catch(() => {}),
  onStatus: statusIndicator(document.getElementById("status"), document.getElementById("reconnecting")),
  async onResync() {
    await Promise.all([balances.load(), loadActivity(), checkReturningPayment()]);
  },
  onEvent(type, event) {
    const data = event.data;
    if (fromPlatform(type, event)) return;
    if (type === "balance.updated") {
      balances.apply(data);
      if (data.kind === "wallet") refreshActivity();
    } else if (type === "payment.succeeded" || type === "payment.failed") {
      paymentSettled(data);
      if (type === "payment.failed" && data.id !== returning) {
        show(document.getElementById("topup-notice"), `Payment of ${formatMoney(data.amount.amount, data.amount.currency)} failed: ${data.failure_reason || "declined"}. Nothing was taken from your wallet.`, "error");
      }
    } else if (type === "tip.received") {
      // A creator using this page: the tip shows here too (while any page of theirs is open,
      // no Web Push is sent for it).
      const incoming = document.getElementById("incoming");
      incoming.replaceChildren(
        el("strong", {}, `${data.fan_name || "Someone"} tipped you ${formatMoney(data.amount, data.currency)}`),
        data.message ? el("span", { class: "message" }, ` “${data.message}”`) : null);
      incoming.hidden = false;
    } else if (type === "ppv.unlocked") {
      loadContent();
    }
  },
});

// ---- top-up -----------------------------------------------------------------------------------------
const topupForm = document.getElementById("topup-form");
const topupNotice = document.getElementById("topup-notice");
currencyOptions(document.getElementById("topup-currency"), config.currencies);
const PROVIDERS = { paystack: "Paystack", stripe: "Stripe", sandbox: "Sandbox" };
document.getElementById("topup-provider").replaceChildren(...config.providers.map((p) => el("option", { value: p }, PROVIDERS[p] || p)));
if (!config.providers.length) show(topupNotice, "No payment provider is configured on this Hub.", "error");
amountPreview(topupForm, "You pay");
onSubmit(topupForm, topupNotice, async (form) => {
  const currency = form.get("currency");
  const amount = parseAmount(form.get("amount"), currency);
  if (amount === null) {
    show(topupNotice, `Write the amount like ${amountExample(currency)}.`, "error");
    return;
  }
  const payment = await api("/api/v1/payments", {
    method: "POST", body: { amount, currency, provider: form.get("provider") }, key: draftKey(topupForm),
  });
  settled(topupForm);
  show(topupNotice, "Taking you to the checkout…", "ok");
  location.assign(payment.checkout_url);
});

// ---- tips ---------------------------------------------------------------------------------------------
const tipForm = document.getElementById("tip-form");
const tipNotice = document.getElementById("tip-notice");
const creatorInput = document.getElementById("tip-creator");
currencyOptions(document.getElementById("tip-currency"), config.currencies);
creatorInput.value = params.get("creator") || localStorage.getItem("hub:creator") || "";
amountPreview(tipForm, "You send");

let creatorLookup = 0;
async function chooseCreator() {
  const id = creatorInput.value.trim();
  const lookup = ++creatorLookup;
  const label = document.getElementById("creator-name");
  if (!id) {
    label.textContent = "";
    return;
  }
  try {
    const creator = await api(`/api/v1/creators/${encodeURIComponent(id)}`);
    if (lookup !== creatorLookup) return;
    label.textContent = `Tipping ${creator.name || creator.id}`;
    localStorage.setItem("hub:creator", id);
  } catch (error) {
    if (lookup !== creatorLookup) return;
    label.textContent = error instanceof ApiError && error.status === 404 ? "No creator with this id." : "";
  }
  loadContent();
}
creatorInput.addEventListener("change", chooseCreator);

onSubmit(tipForm, tipNotice, async (form) => {
  const currency = form.get("currency");
  const amount = parseAmount(form.get("amount"), currency);
  if (amount === null) {
    show(tipNotice, `Write the amount like ${amountExample(currency)}.`, "error");
    return;
  }
  const message = form.get("message").trim() || null;
  const tip = await api("/api/v1/tips", {
    method: "POST",
    body: { creator_id: form.get("creator_id").trim(), amount, currency, message },
    key: draftKey(tipForm),
  });
  settled(tipForm);
  document.getElementById("tip-message").value = "";
  document.getElementById("tip-amount").value = "";
  document.getElementById("tip-amount").dispatchEvent(new Event("input"));
  show(tipNotice, `Sent ${formatMoney(tip.amount.amount, tip.amount.currency)}. Thank you!`, "ok");
});

// ---- pay-per-view ---------------------------------------------------------------------------------------
const contentList = document.getElementById("content");
const contentNotice = document.getElementById("content-notice");

function opened(item) {
  const body = item.body ?? "";
  let link = null;
  try {
    const url = new URL(body);
    if (url.protocol === "https:" || url.protocol === "http:") link = el("a", { href: url.href, rel: "noopener noreferrer", target: "_blank" }, "Open");
  } catch { /* not a link: shown as text */ }
  return link || el("p", { class: "message" }, body);
}

function contentItem(item) {
  const li = el("li", { "data-content-id": item.id },
    el("strong", {}, item.title), " ",
    el("span", { class: "amount" }, formatMoney(item.price.amount, item.price.currency)));
  if (item.has_access) {
    const open = el("button", { type: "button", class: "secondary", "aria-label": `Open ${item.title}` }, "Open");
    open.addEventListener("click", () => open.replaceWith(opened(item)));
    li.append(" ", open);
  } else {
    const buy = el("button", { type: "button", "aria-label": `Buy ${item.title} for ${formatMoney(item.price.amount, item.price.currency)}` }, "Buy");
    let key = newKey(); // kept while no answer came back: pressing again is the same purchase
    buy.addEventListener("click", async () => {
      buy.disabled = true;
      show(contentNotice, "");
      try {
        await api(`/api/v1/content/${item.id}/purchase`, { method: "POST", body: { source: "wallet" }, key });
        await loadContent();
      } catch (error) {
        if (error instanceof ApiError && error.settles) key = newKey();
        if (error instanceof ApiError && error.type === "already_purchased") await loadContent();
        else show(contentNotice, error instanceof ApiError ? error.message : `Could not reach Hub (${error.message})`, "error");
        buy.disabled = false;
      }
    });
    li.append(" ", buy);
  }
  return li;
}

async function loadContent() {
  const id = creatorInput.value.trim();
  document.getElementById("content-hint").hidden = Boolean(id);
  if (!id) {
    contentList.replaceChildren();
    return;
  }
  try {
    const page = await api(`/api/v1/creators/${encodeURIComponent(id)}/content?limit=50`);
    contentList.replaceChildren(...(page.data.length ? page.data.map(contentItem) : [el("li", { class: "muted" }, "Nothing for sale yet.")]));
  } catch (error) {
    contentList.replaceChildren();
    if (!(error instanceof ApiError && error.status === 404)) show(contentNotice, error.message, "error");
  }
}

chooseCreator();
