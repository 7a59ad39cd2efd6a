// The Xingqu console: sign-in, the operator's campaign overview and the merchant's shop page.
// Plain JavaScript over the JSON API with `Authorization: Bearer`; the token lives in
// sessionStorage (this tab only, gone when it closes). Charts are Chart.js, served with the page.
"use strict";

const TOKEN_KEY = "xingqu.token";
const DAY_MS = 86400000;

// ---- API and session ---------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401 && !options.noRedirect) {
    toLogin();
    throw new ApiError(401, null);
  }
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, isJson ? body : null);
  return body;
}

function toLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  const next = encodeURIComponent(location.pathname + location.search);
  location.replace(`/console/login?next=${next}`);
}

const HOME = { operator: "/console/operator", merchant_staff: "/console/merchant" };

/** The signed-in user, or a redirect to the sign-in page (pages call this first). */
async function requireUser(role) {
  if (!token()) {
    toLogin();
    return null;
  }
  const me = await api("/v1/me");
  if (role && me.role !== role) {
    location.replace(HOME[me.role] || "/console/");
    return null;
  }
  const who = document.getElementById("who");
  if (who) who.textContent = `${me.display_name} · ${me.email}`;
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      try {
        await api("/v1/auth/logout", { method: "POST", body: {}, noRedirect: true });
      } finally {
        toLogin();
      }
    });
  }
  return me;
}

// ---- Formatting and DOM helpers ----------------------------------------------------------

function yuan(fen) {
  return `¥${(fen / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** Replaces a table's rows; `row` maps an item to a <tr>. */
function fillTable(id, items, row, emptyText) {
  const body = document.querySelector(`#${id} tbody`);
  const columns = document.querySelectorAll(`#${id} thead th`).length;
  body.replaceChildren(...(items.length ? items.map(row) : [el("tr", {}, el("td", { class: "empty", colSpan: columns }, emptyText))]));
}

function cells(values) {
  return values.map((v) => el("td", {}, v === null || v === undefined ? "—" : v));
}

function card(label, value, testId) {
  return el("div", { class: "card", "data-testid": testId }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function windowParams() {
  const days = Number(document.getElementById("window-select").value || 1);
  const to = Date.now();
  return `from_ms=${to - days * DAY_MS}&to_ms=${to}`;
}

// ---- Charts ------------------------------------------------------------------------------

const charts = {};

/** Draws (or redraws) a chart on a canvas; no animation, so what is drawn is final at once. */
function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
  const canvas = document.getElementById(id);
  canvas.parentElement.style.height = "260px";
  charts[id] = new Chart(canvas, config);
  canvas.dataset.rendered = "true";
}

function label(ms, bucketMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return bucketMs >= DAY_MS ? day : `${day} ${pad(d.getHours())}:00`;
}

function drawGmv(overview) {
  const points = overview.series.points;
  chart("gmv-chart", {
    type: "line",
    data: {
      labels: points.map((p) => label(p.start_ms, overview.series.bucket_ms)),
      datasets: [
        { label: "GMV", data: points.map((p) => p.gmv_fen / 100), borderColor: "#9ca3af", backgroundColor: "#9ca3af" },
        { label: "Quality GMV", data: points.map((p) => p.quality_gmv_fen / 100), borderColor: "#e8453c", backgroundColor: "#e8453c" },
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
}

function overviewCards(o) {
  const share = o.domestic_brands.share_bps === null ? "—" : `${(o.domestic_brands.share_bps / 100).toFixed(2)}%`;
  const farm = o.farm_specialty.gmv_ratio === null ? "no sales a year ago" : `${o.farm_specialty.gmv_ratio.toFixed(2)}× a year ago`;
  document.getElementById("cards").replaceChildren(
    card("GMV", yuan(o.gmv.gmv_fen), "gmv"),
    card("Quality GMV", yuan(o.gmv.quality_gmv_fen), "quality-gmv"),
    card("Orders paid", o.gmv.orders, "orders"),
    card("Refunds / banned / sanctioned / brushing", `${yuan(o.gmv.refunds_fen)} / ${yuan(o.gmv.banned_fen)} / ${yuan(o.gmv.sanctioned_fen)} / ${yuan(o.gmv.brushing_fen)}`, "excluded"),
    card("Domestic brands in top 100", share, "domestic-share"),
    card(`Farm specialties (${farm})`, yuan(o.farm_specialty.current.gmv_fen), "farm"),
    card("People served by 安心购", o.assured_purchase.buyers_served, "assured"),
  );
}

/** The running campaign's zones: quality GMV and likes per zone, and the hot list's zone filter. */
function drawZones(zones) {
  chart("zones-chart", {
    type: "bar",
    data: {
      labels: zones.items.map((z) => z.name),
      datasets: [
        { label: "GMV (元)", data: zones.items.map((z) => z.gmv_fen / 100), backgroundColor: "#9ca3af" },
        { label: "Quality GMV (元)", data: zones.items.map((z) => z.quality_gmv_fen / 100), backgroundColor: "#e8453c" },
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  fillTable(
    "zones",
    zones.items,
    (z) => el("tr", { "data-zone": z.zone_id }, ...cells([z.name, `${(z.traffic_target_bp / 100).toFixed(1)}%`, z.entries, z.orders, yuan(z.quality_gmv_fen), z.likes])),
    "No campaign zones",
  );
  const select = document.getElementById("hot-zone");
  if (select && select.options.length === 1) {
    for (const z of zones.items) select.append(el("option", { value: z.zone_id }, z.name));
  }
}

async function campaignName(campaignId) {
  if (campaignId === null) return;
  const campaign = await api(`/v1/campaigns/${campaignId}`);
  const themes = campaign.theme_days.map((d) => `${d.day.slice(5, 10)} ${d.title}`).join(" · ");
  document.getElementById("campaign-name").textContent = themes ? `${campaign.name} (${themes})` : campaign.name;
}

// ---- Shared tables -----------------------------------------------------------------------

async function loadAfterSales(merchantId) {
  const query = merchantId ? `?merchant_id=${merchantId}&limit=50` : "?limit=50";
  const queue = await api(`/v1/after-sales${query}`);
  fillTable(
    "after-sales",
    queue.items,
    (a) => el("tr", { "data-order": a.order_id }, ...cells([a.id, a.order_id, a.kind, a.status, a.units, yuan(a.amount_fen), a.reason])),
    "No open after-sales",
  );
}

// ---- Pages -------------------------------------------------------------------------------

async function loginPage() {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const session = await api("/v1/auth/login", {
        method: "POST",
        body: { email: form.email.value, password: form.password.value },
        noRedirect: true,
      });
      sessionStorage.setItem(TOKEN_KEY, session.token);
      const next = new URLSearchParams(location.search).get("next");
      const home = HOME[session.user.role];
      if (!home) {
        // Not a console user: give the session back rather than leave it in the tab.
        await api("/v1/auth/logout", { method: "POST", body: {}, noRedirect: true }).catch(() => {});
        sessionStorage.removeItem(TOKEN_KEY);
        throw new Error("the console is for operators and shop staff");
      }
      // Only a console path of this site, never another origin.
      location.replace(next && next.startsWith("/console/") && next !== "/console/login" ? next : home);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
}

async function indexPage() {
  const me = await requireUser(null);
  if (!me) return;
  if (HOME[me.role]) location.replace(HOME[me.role]);
  else document.getElementById("status").textContent = "The console is for operators and shop staff.";
}

async function operatorPage() {
  const me = await requireUser("operator");
  if (!me) return;
  const refresh = async () => {
    const o = await api(`/v1/analytics/overview?${windowParams()}`);
    overviewCards(o);
    drawGmv(o);
    chart("regions-chart", {
      type: "bar",
      data: {
        labels: o.regions.map((r) => r.region_code),
        datasets: [{ label: "Orders", data: o.regions.map((r) => r.orders), backgroundColor: "#e8453c" }],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
    const d = o.domestic_brands;
    chart("domestic-chart", {
      type: "doughnut",
      data: {
        labels: ["Domestic brands (国货)", "Other"],
        datasets: [{ data: d.ranked_skus ? [d.domestic_skus, d.ranked_skus - d.domestic_skus] : [0, 1], backgroundColor: ["#e8453c", "#d1d5db"] }],
      },
    });
    drawZones(o.zones);
    fillTable(
      "shipping-points",
      o.shipping_points,
      (p) => el("tr", {}, ...cells([p.region_code, p.shipped_orders, p.per_day.toFixed(1), p.baseline_per_day.toFixed(2), p.ratio === null ? null : p.ratio.toFixed(1)])),
      "Nothing shipped in this window",
    );
    await campaignName(o.zones.campaign_id);
    await loadAfterSales(null);
    const suspects = await api("/v1/hot-lists/suspects");
    fillTable(
      "suspects",
      suspects.items.slice().reverse(),
      (s) => el("tr", {}, ...cells([s.order_id, s.buyer_user_id, s.sku_id, s.units, s.rule, s.at])),
      "No suspected brushing",
    );
  };
  document.getElementById("window-select").addEventListener("change", refresh);
  document.querySelectorAll("[data-csv]").forEach((link) =>
    link.addEventListener("click", (event) => {
      event.preventDefault();
      downloadCsv(link.dataset.csv);
    }),
  );
  // A changed hot list means new sales: the figures follow a moment later (one refresh per burst).
  let pending = null;
  document.addEventListener("hot-list-changed", () => {
    clearTimeout(pending);
    pending = setTimeout(() => refresh().catch(() => {}), 1000);
  });
  liveHotList();
  document.getElementById("hot-window").addEventListener("change", liveHotList);
  document.getElementById("hot-measure").addEventListener("change", liveHotList);
  document.getElementById("hot-zone").addEventListener("change", liveHotList);
  await refresh();
  // Figures other than the live list refresh every half minute.
  setInterval(() => refresh().catch(() => {}), 30000);
}

/** CSV needs the bearer token, so it is fetched and handed over as a file. */
async function downloadCsv(section) {
  const text = await api(`/v1/analytics/overview.csv?section=${section}&${windowParams()}`, { headers: { Accept: "text/csv" } });
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = el("a", { href: url, download: `xingqu-${section}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

let hotStream = null;

/** The hot list, kept current by the server's event stream (no polling, no reload). */
function liveHotList() {
  if (hotStream) hotStream.close();
  const window_ = document.getElementById("hot-window").value;
  const measure = document.getElementById("hot-measure").value;
  const zoneSelect = document.getElementById("hot-zone");
  const zone = zoneSelect && zoneSelect.value ? `&zone_id=${zoneSelect.value}` : "";
  const status = document.getElementById("hot-status");
  hotStream = new EventSource(`/v1/hot-lists/stream?window=${window_}&measure=${measure}&limit=20${zone}`);
  hotStream.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "badge live";
  });
  hotStream.addEventListener("error", () => {
    status.textContent = "reconnecting";
    status.className = "badge";
  });
  hotStream.addEventListener("hot_list", (event) => {
    const list = JSON.parse(event.data);
    const value = (v) => (list.measure === "gmv" ? yuan(v) : v);
    fillTable(
      "hot-list",
      list.items,
      (i) => el("tr", { "data-sku": i.sku_id, "data-value": i.value }, ...cells([i.rank, i.sku_id, i.title, value(i.value)])),
      "Nothing sold in this window yet",
    );
    const table = document.getElementById("hot-list");
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
    document.dispatchEvent(new Event("hot-list-changed"));
  });
}

async function merchantPage() {
  const me = await requireUser("merchant_staff");
  if (!me) return;
  document.body.dataset.merchantId = me.merchant_id;
  api(`/v1/merchants/${me.merchant_id}`)
    .then((shop) => {
      document.getElementById("shop-name").textContent = `· ${shop.shop_name}`;
    })
    .catch(() => {});
  const refresh = async () => {
    const o = await api(`/v1/analytics/overview?${windowParams()}`);
    document.getElementById("cards").dataset.merchantId = o.merchant_id;
    overviewCards(o);
    drawGmv(o);
    const orders = await api(`/v1/orders?merchant_id=${me.merchant_id}&limit=50`);
    fillTable(
      "orders",
      orders.items,
      (order) =>
        el("tr", { "data-order": order.id, "data-merchant": order.merchant_id }, ...cells([order.id, order.status, yuan(order.goods_list_fen), yuan(order.paid_fen), yuan(order.refunded_fen), order.created_at])),
      "No orders yet",
    );
    await loadAfterSales(me.merchant_id);
  };
  document.getElementById("window-select").addEventListener("change", refresh);
  await refresh();
  setInterval(() => refresh().catch(() => {}), 30000);
}

const PAGES = { login: loginPage, index: indexPage, operator: operatorPage, merchant: merchantPage };

document.addEventListener("DOMContentLoaded", () => {
  const page = PAGES[document.body.dataset.page];
  if (page) {
    page()
      .then(() => {
        document.body.dataset.ready = "true";
      })
      .catch((e) => {
        if (e instanceof ApiError && e.status === 401) return;
        const main = document.querySelector("main");
        main.prepend(el("p", { class: "error", role: "alert" }, `Could not load: ${e.message}`));
      });
  }
});
