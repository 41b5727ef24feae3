// The admin page: users online, the platform fee, revenue by day/week/month, top creators.
import { api, currencyOptions, el, formatMoney, onSubmit, pageConfig, registerServiceWorker, requireUser, show, wireSignOut } from "/app/static/js/common.js";

wireSignOut();
registerServiceWorker();
const me = await requireUser("admin");
const config = await pageConfig();
document.getElementById("who").textContent = me.name || me.id;

async function refreshOnline() {
  try {
    const presence = await api("/api/v1/presence");
    document.getElementById("online").textContent = presence.connected_users.toLocaleString();
  } catch {
    document.getElementById("online").textContent = "?";
  }
}
refreshOnline();
setInterval(refreshOnline, 5000);

// ---- fee ----------------------------------------------------------------------------------------
const percent = (bps) => `${(bps / 100).toLocaleString(undefined, { maximumFractionDigits: 2 })} %`;
async function loadFee() {
  const fee = await api("/api/v1/admin/platform-fee");
  document.getElementById("fee-now").textContent = percent(fee.bps);
  document.getElementById("fee-percent").value = String(fee.bps / 100);
}
const feeNotice = document.getElementById("fee-notice");
onSubmit(document.getElementById("fee-form"), feeNotice, async (form) => {
  const match = /^(\d{1,2})(?:\.(\d{1,2}))?$/.exec(form.get("percent").trim());
  const bps = match ? Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0")) : NaN;
  if (!match || bps > 5000) {
    show(feeNotice, "Enter a percentage from 0 to 50, such as 7.5.", "error");
    return;
  }
  const fee = await api("/api/v1/admin/platform-fee", { method: "PUT", body: { bps } });
  document.getElementById("fee-now").textContent = percent(fee.bps);
  show(feeNotice, `Saved: new tips and sales keep ${percent(fee.bps)} on every node.`, "ok");
});

// ---- revenue --------------------------------------------------------------------------------------
const revenueForm = document.getElementById("revenue-form");
currencyOptions(document.getElementById("revenue-currency"), config.currencies);
const DAYS = { day: 29, week: 7 * 12 - 1, month: 365 };
const iso = (date) => date.toISOString().slice(0, 10);

function chart(rows, currency) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 720, height = 220, pad = 28;
  const max = Math.max(1, ...rows.map((r) => r.gross));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  const slot = Math.min((width - pad) / Math.max(rows.length, 1), 64); // a few bars stay bars
  rows.forEach((row, i) => {
    const x = pad + i * slot;
    for (const [value, cls, offset] of [[row.gross, "gross", 0.1], [row.platform_fees, "fees", 0.5]]) {
      const h = ((height - pad) * value) / max;
      const bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", x + slot * offset);
      bar.setAttribute("y", height - pad - h);
      bar.setAttribute("width", Math.max(slot * 0.38, 1));
      bar.setAttribute("height", h);
      bar.setAttribute("class", cls);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${row.period_start}: ${formatMoney(value, currency)}`;
      bar.append(title);
      svg.append(bar);
    }
    if (rows.length <= 12 || i % Math.ceil(rows.length / 10) === 0) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", x + slot * 0.1);
      label.setAttribute("y", height - 8);
      label.textContent = row.period_start.slice(5);
      svg.append(label);
    }
  });
  const top = document.createElementNS(ns, "text");
  top.setAttribute("x", 0);
  top.setAttribute("y", 12);
  top.textContent = formatMoney(max, currency);
  svg.append(top);
  return svg;
}

async function loadRevenue() {
  const form = new FormData(revenueForm);
  const period = form.get("period");
  const currency = form.get("currency");
  const to = new Date();
  const from = new Date(to.getTime() - DAYS[period] * 86400000);
  const notice = document.getElementById("revenue-notice");
  try {
    const report = await api(`/api/v1/admin/analytics/revenue?period=${period}&currency=${currency}&from=${iso(from)}&to=${iso(to)}`);
    const rows = report.data;
    document.getElementById("revenue-chart").replaceChildren(rows.length ? chart(rows, currency) : el("p", { class: "muted" }, "No revenue in this range yet (figures are rolled up by the workers every few minutes)."));
    document.getElementById("revenue-rows").replaceChildren(...rows.map((r) => el("tr", {},
      el("td", {}, r.period_start), el("td", { class: "num" }, formatMoney(r.gross, currency)),
      el("td", { class: "num" }, formatMoney(r.platform_fees, currency)),
      el("td", { class: "num" }, r.tips.toLocaleString()), el("td", { class: "num" }, r.sales.toLocaleString()))));
    show(notice, "");
  } catch (error) {
    show(notice, error.message, "error");
  }
  try {
    const top = await api(`/api/v1/admin/analytics/top-creators?currency=${currency}&limit=10`);
    document.getElementById("top-rows").replaceChildren(...(top.data.length ? top.data.map((r) => el("tr", {},
      el("td", {}, r.creator_id), el("td", { class: "num" }, formatMoney(r.earnings, currency)))) : [el("tr", {}, el("td", { colspan: 2, class: "muted" }, "No earnings yet."))]));
  } catch (error) {
    show(notice, error.message, "error");
  }
}
revenueForm.addEventListener("change", loadRevenue);

await Promise.all([loadFee(), loadRevenue()]);
