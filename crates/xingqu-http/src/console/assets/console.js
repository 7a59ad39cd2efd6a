// The Xingqu console: sign-in, the operator's campaign overview (with experience scores and the
// 安心购 queue), the operator's campaign editor and entry review, and the merchant's shop page
// (with its campaign entries).
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
    this.field = body && body.error && body.error.field;
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

/** A score in basis points (0–10,000) as points out of 100. */
function points(bp) {
  return bp === null || bp === undefined ? "—" : (bp / 100).toFixed(2);
}

/** An RFC 3339 time as China local time, minutes only ("2026-11-11 20:00"). */
function chinaTime(rfc3339) {
  if (!rfc3339) return null;
  const d = new Date(Date.parse(rfc3339) + 8 * 3600000);
  return d.toISOString().slice(0, 16).replace("T", " ");
}

function button(text, onClick, attrs = {}) {
  const b = el("button", Object.assign({ type: "button", class: "small" }, attrs), text);
  b.addEventListener("click", onClick);
  return b;
}

// ---- Forms: what the API refused is shown next to the form, never swallowed ---------------

/** Shows an error in `target` (a form's `.error`, or an element): the API's code, message and field. */
function showError(target, e) {
  const box = target.tagName === "FORM" ? target.querySelector(".error") : target;
  const field = e.field ? ` (${e.field})` : "";
  box.textContent = e.code ? `${e.code}: ${e.message}${field}` : e.message;
  box.dataset.code = e.code || "client";
  box.hidden = false;
}

function clearError(target) {
  const box = target.tagName === "FORM" ? target.querySelector(".error") : target;
  box.hidden = true;
  box.textContent = "";
  delete box.dataset.code;
}

/** Runs `submit(form)` on submit; a rejection (API or input) is shown by the form. */
function onSubmit(form, submit) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(form);
    const sent = form.querySelector("button[type=submit]");
    sent.disabled = true;
    try {
      await submit(form);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      showError(form, e);
    } finally {
      sent.disabled = false;
    }
  });
}

/** An input the user typed wrongly: shown like the API's errors, never sent. */
function inputError(field, message) {
  const e = new Error(message);
  e.code = "invalid_input";
  e.field = field;
  return e;
}

/** 元 typed in a form as integer 分 (null when empty). */
function fenOf(form, name) {
  const raw = form.elements[name].value.trim();
  if (raw === "") return null;
  if (!/^\d+(\.\d{1,2})?$/.test(raw)) throw inputError(name, "an amount in 元 with at most two decimals");
  const [whole, cents = ""] = raw.split(".");
  return Number(whole) * 100 + Number(cents.padEnd(2, "0"));
}

/** A list of ids typed as "3, 7". */
function idsOf(form, name) {
  const parts = form.elements[name].value.split(/[\s,，]+/).filter(Boolean);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw inputError(name, `"${p}" is not an id`);
    return Number(p);
  });
}

function wordsOf(form, name) {
  return form.elements[name].value.split(/[\s,，]+/).filter(Boolean);
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

/** Experience scores of the shops with orders in the window, best first. */
async function loadScores() {
  const scores = await api(`/v1/analytics/scores?${windowParams()}`);
  fillTable(
    "scores",
    scores.items,
    (s) =>
      el("tr", { "data-merchant": s.merchant_id, "data-overall": s.overall_bp === null ? "" : s.overall_bp },
        ...cells([s.rank, s.shop_name, s.orders, points(s.overall_bp), points(s.product_bp), points(s.logistics_bp), points(s.service_bp)])),
    "No orders in this window",
  );
  document.getElementById("scores").dataset.loaded = "true";
}

/** Shops' 安心购 requests waiting for a decision, with approve and reject (a reason) buttons. */
async function loadAssurance() {
  const box = document.getElementById("assurance-error");
  const queue = await api("/v1/assurance/requests?status=pending");
  const decide = async (merchantId, decision, reason) => {
    clearError(box);
    try {
      await api(`/v1/merchants/${merchantId}/assurance/decision`, { method: "POST", body: { decision, reason } });
      await loadAssurance();
    } catch (e) {
      showError(box, e);
    }
  };
  fillTable(
    "assurance-queue",
    queue.items,
    (r) => {
      const reason = el("input", { class: "reason", placeholder: "reason to reject" });
      return el("tr", { "data-merchant": r.merchant_id },
        ...cells([r.shop_name, r.services.join(", "), `${yuan(r.insurance_premium_fen)} / ${yuan(r.insurance_cap_fen)}`, chinaTime(r.requested_at)]),
        el("td", {}, button("Approve", () => decide(r.merchant_id, "approve", ""), { "data-action": "approve" }), " ", reason, " ",
          button("Reject", () => decide(r.merchant_id, "reject", reason.value), { "data-action": "reject", class: "small secondary" })));
    },
    "No requests waiting",
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
    await loadScores();
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
  // The 安心购 queue reloads after each decision, not with the figures (a half-typed reason stays).
  await loadAssurance();
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

// ---- Campaigns: the operator's editor and entry review ------------------------------------

const TAG_NAMES = { farm_specialty: "农特产", geographic_indication: "地理标志", intangible_heritage: "非遗", domestic_brand: "国货" };

/** A zone's eligibility rule in words: every criterion given must hold, any item of a list will do. */
function ruleText(rule) {
  const parts = [];
  if (rule.tags.length) parts.push(`tags ${rule.tags.map((t) => TAG_NAMES[t] || t).join("/")}`);
  if (rule.category_ids.length) parts.push(`categories ${rule.category_ids.join("/")}`);
  if (rule.region_prefixes.length) parts.push(`from ${rule.region_prefixes.join("/")}`);
  if (rule.merchant_ids.length) parts.push(`shops ${rule.merchant_ids.join("/")}`);
  if (rule.min_price_fen !== null || rule.max_price_fen !== null) {
    parts.push(`price ${rule.min_price_fen === null ? "0" : yuan(rule.min_price_fen)}–${rule.max_price_fen === null ? "any" : yuan(rule.max_price_fen)}`);
  }
  return parts.length ? parts.join("; ") : "any listed product";
}

/** The rule and traffic target typed in the zone form, as the API takes them. */
function zoneBody(form) {
  const percent = form.elements.traffic_target.value.trim();
  if (!/^\d+(\.\d{1,2})?$/.test(percent || "0")) throw inputError("traffic_target", "a percentage with at most two decimals");
  const rule = {
    tags: [...form.querySelectorAll("input[name=tags]:checked")].map((c) => c.value),
    category_ids: idsOf(form, "category_ids"),
    region_prefixes: wordsOf(form, "region_prefixes"),
    merchant_ids: idsOf(form, "merchant_ids"),
    min_price_fen: fenOf(form, "min_price"),
    max_price_fen: fenOf(form, "max_price"),
  };
  return { rule, traffic_target_bp: Math.round(Number(percent || "0") * 100) };
}

function fillZoneForm(form, zone) {
  form.reset();
  clearError(form);
  form.elements.zone_id.value = zone ? zone.id : "";
  form.elements.name.value = zone ? zone.name : "";
  form.elements.name.disabled = Boolean(zone);
  if (zone) {
    const r = zone.rule;
    form.querySelectorAll("input[name=tags]").forEach((c) => {
      c.checked = r.tags.includes(c.value);
    });
    form.elements.category_ids.value = r.category_ids.join(", ");
    form.elements.region_prefixes.value = r.region_prefixes.join(", ");
    form.elements.merchant_ids.value = r.merchant_ids.join(", ");
    form.elements.min_price.value = r.min_price_fen === null ? "" : (r.min_price_fen / 100).toFixed(2);
    form.elements.max_price.value = r.max_price_fen === null ? "" : (r.max_price_fen / 100).toFixed(2);
    form.elements.traffic_target.value = (zone.traffic_target_bp / 100).toFixed(2);
  }
  document.getElementById("zone-form-title").textContent = zone ? `Edit zone ${zone.name}` : "Add a zone";
  document.getElementById("zone-submit").textContent = zone ? "Save zone" : "Add zone";
  document.getElementById("zone-cancel").hidden = !zone;
}

async function campaignsPage() {
  const me = await requireUser("operator");
  if (!me) return;
  let current = null;
  const zoneForm = document.getElementById("zone-form");

  const loadList = async () => {
    const list = await api("/v1/campaigns");
    if (current === null && list.items.length) current = list.items[0].id;
    fillTable(
      "campaigns",
      list.items,
      (c) =>
        el("tr", { "data-campaign": c.id, class: c.id === current ? "chosen" : "" },
          ...cells([c.id, c.name, chinaTime(c.starts_at), chinaTime(c.ends_at)]),
          el("td", {}, button("Open", () => choose(c.id)))),
      "No campaigns yet",
    );
  };

  const loadCampaign = async () => {
    if (current === null) return;
    const c = await api(`/v1/campaigns/${current}`);
    document.getElementById("campaign-title").textContent = `${c.name} (${chinaTime(c.starts_at)} – ${chinaTime(c.ends_at)})`;
    document.body.dataset.campaignId = c.id;
    const zoneName = (id) => (c.zones.find((z) => z.id === id) || { name: id === null ? "—" : `#${id}` }).name;
    fillTable(
      "zones",
      c.zones,
      (z) =>
        el("tr", { "data-zone": z.id },
          ...cells([z.id, z.name, ruleText(z.rule), `${(z.traffic_target_bp / 100).toFixed(2)}%`]),
          el("td", {}, button("Edit", () => fillZoneForm(zoneForm, z), { "data-action": "edit" }))),
      "No zones yet",
    );
    document.querySelectorAll("select[data-zone-select]").forEach((select) => {
      const keep = select.value;
      select.replaceChildren(select.options[0], ...c.zones.map((z) => el("option", { value: z.id }, z.name)));
      select.value = keep;
    });
    fillTable("theme-days", c.theme_days, (d) => el("tr", {}, ...cells([d.day.slice(0, 10), d.title, d.zone_id === null ? "—" : zoneName(d.zone_id)])), "No theme days");
    fillTable(
      "pools",
      c.subsidy_pools,
      (p) => {
        const rate = p.per_unit_fen !== null ? `${yuan(p.per_unit_fen)} / unit` : `${(p.percent_bp / 100).toFixed(2)}%${p.cap_per_unit_fen === null ? "" : ` ≤ ${yuan(p.cap_per_unit_fen)}`}`;
        return el("tr", { "data-pool": p.id }, ...cells([p.name, p.zone_id === null ? "every zone" : zoneName(p.zone_id), rate, yuan(p.budget_fen), yuan(p.spent_fen), yuan(p.left_fen)]));
      },
      "No subsidy pools",
    );
    await loadReviewQueue(c);
  };

  const loadReviewQueue = async (c) => {
    const box = document.getElementById("review-error");
    const pending = [];
    for (const z of c.zones) {
      const entries = await api(`/v1/zones/${z.id}/entries?status=pending`);
      for (const e of entries.items) pending.push({ zone: z.name, entry: e });
    }
    const review = async (id, approve, reason) => {
      clearError(box);
      try {
        await api(`/v1/zone-entries/${id}/review`, { method: "POST", body: { approve, reason } });
        await loadReviewQueue(c);
      } catch (e) {
        showError(box, e);
      }
    };
    fillTable(
      "review-queue",
      pending,
      ({ zone, entry: e }) => {
        const reason = el("input", { class: "reason", placeholder: "reason to reject" });
        return el("tr", { "data-entry": e.id, "data-sku": e.sku_id },
          ...cells([e.id, zone, e.merchant_id, e.sku_id, yuan(e.campaign_price_fen), yuan(e.reference_price_fen), chinaTime(e.applied_at)]),
          el("td", {}, button("Approve", () => review(e.id, true, ""), { "data-action": "approve" }), " ", reason, " ",
            button("Reject", () => review(e.id, false, reason.value), { "data-action": "reject", class: "small secondary" })));
      },
      "Nothing waiting for review",
    );
    document.getElementById("review-queue").dataset.loaded = "true";
  };

  const choose = async (id) => {
    current = id;
    fillZoneForm(zoneForm, null);
    await loadList();
    await loadCampaign();
  };

  onSubmit(document.getElementById("campaign-form"), async (form) => {
    const at = (name) => {
      const v = form.elements[name].value;
      if (!v) throw inputError(name, "a date and time");
      return `${v.length === 16 ? `${v}:00` : v}+08:00`;
    };
    const created = await api("/v1/campaigns", { method: "POST", body: { name: form.elements.name.value, starts_at: at("starts_at"), ends_at: at("ends_at") } });
    form.reset();
    await choose(created.id);
  });

  onSubmit(zoneForm, async (form) => {
    if (current === null) throw inputError("campaign", "create or open a campaign first");
    const body = zoneBody(form);
    const editing = form.elements.zone_id.value;
    if (editing) {
      await api(`/v1/zones/${editing}`, { method: "PUT", body });
    } else {
      await api(`/v1/campaigns/${current}/zones`, { method: "POST", body: Object.assign({ name: form.elements.name.value }, body) });
    }
    fillZoneForm(form, null);
    await loadCampaign();
  });
  document.getElementById("zone-cancel").addEventListener("click", () => fillZoneForm(zoneForm, null));

  onSubmit(document.getElementById("theme-form"), async (form) => {
    if (current === null) throw inputError("campaign", "create or open a campaign first");
    const zone = form.elements.zone_id.value;
    const body = { day: `${form.elements.day.value}T00:00:00+08:00`, title: form.elements.title.value, zone_id: zone ? Number(zone) : null };
    await api(`/v1/campaigns/${current}/theme-days`, { method: "POST", body });
    form.reset();
    await loadCampaign();
  });

  onSubmit(document.getElementById("pool-form"), async (form) => {
    if (current === null) throw inputError("campaign", "create or open a campaign first");
    const zone = form.elements.zone_id.value;
    const percent = form.elements.percent.value.trim();
    if (percent && !/^\d+(\.\d{1,2})?$/.test(percent)) throw inputError("percent", "a percentage with at most two decimals");
    const body = {
      name: form.elements.name.value,
      zone_id: zone ? Number(zone) : null,
      budget_fen: fenOf(form, "budget"),
      per_unit_fen: fenOf(form, "per_unit"),
      percent_bp: percent ? Math.round(Number(percent) * 100) : null,
      cap_per_unit_fen: fenOf(form, "cap"),
    };
    await api(`/v1/campaigns/${current}/subsidy-pools`, { method: "POST", body });
    form.reset();
    await loadCampaign();
  });

  await loadList();
  await loadCampaign();
}

// ---- The merchant's campaign entries -------------------------------------------------------

/** The campaign running now, else the next one (the list puts running and coming ones first). */
async function runningCampaign() {
  const list = await api("/v1/campaigns");
  const now = Date.now();
  const summary = list.items.find((c) => Date.parse(c.starts_at) <= now && now < Date.parse(c.ends_at)) || list.items[0];
  return summary ? api(`/v1/campaigns/${summary.id}`) : null;
}

/** The shop's entries in every zone of the campaign, with their status and the review's reason. */
async function loadEntries(campaign) {
  const rows = [];
  for (const z of campaign ? campaign.zones : []) {
    const entries = await api(`/v1/zones/${z.id}/entries`);
    for (const e of entries.items) rows.push({ zone: z.name, entry: e });
  }
  rows.sort((a, b) => b.entry.id - a.entry.id);
  fillTable(
    "entries",
    rows,
    ({ zone, entry: e }) =>
      el("tr", { "data-entry": e.id, "data-sku": e.sku_id, "data-status": e.status },
        ...cells([e.id, zone, e.sku_id, yuan(e.campaign_price_fen), yuan(e.reference_price_fen), e.status, e.review_reason || null])),
    campaign ? "No entries yet" : "No campaign running",
  );
  document.getElementById("entries").dataset.loaded = "true";
}

/** The form's choices: the campaign's zones and the shop's SKUs (with their list price). */
async function entryForm(me, campaign) {
  const form = document.getElementById("entry-form");
  document.getElementById("entry-campaign").textContent = campaign ? campaign.name : "no campaign running";
  form.elements.zone_id.replaceChildren(...(campaign ? campaign.zones : []).map((z) => el("option", { value: z.id }, z.name)));
  const products = await api(`/v1/products?merchant_id=${me.merchant_id}&limit=100`);
  const options = [];
  for (const summary of products.items) {
    const product = await api(`/v1/products/${summary.id}`);
    for (const sku of product.skus || []) {
      const spec = Object.values(sku.spec || {}).join("/");
      options.push(el("option", { value: sku.id, "data-price": sku.price_fen }, `${product.title} ${spec} · ${yuan(sku.price_fen)} (SKU ${sku.id})`));
    }
  }
  form.elements.sku_id.replaceChildren(...options);
  form.dataset.ready = "true";
  onSubmit(form, async (f) => {
    if (!campaign) throw inputError("zone_id", "no campaign is running");
    const price = fenOf(f, "price");
    if (price === null) throw inputError("price", "a campaign price");
    await api(`/v1/zones/${f.elements.zone_id.value}/entries`, { method: "POST", body: { sku_id: Number(f.elements.sku_id.value), campaign_price_fen: price } });
    f.elements.price.value = "";
    await loadEntries(campaign);
  });
}

// ---- The merchant's flash sales ---------------------------------------------------------------

/** The shop's flash sales, newest first; a running or coming one can be ended early, with a reason
 * (loaded once and after each end, not with the figures, so a reason being typed is kept). */
async function loadFlashSales(merchantId) {
  const box = document.getElementById("flash-error");
  const sales = await api(`/v1/flash-sales?merchant_id=${merchantId}&limit=50`);
  const end = async (id, reason) => {
    clearError(box);
    try {
      await api(`/v1/flash-sales/${id}/end`, { method: "POST", body: { reason } });
      await loadFlashSales(merchantId);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      showError(box, e);
    }
  };
  fillTable(
    "flash-sales",
    sales.items,
    (s) => {
      const reason = el("input", { class: "reason", placeholder: "why (a wrong price, a recall)" });
      const action =
        s.status === "running" || s.status === "upcoming"
          ? el("td", {}, reason, " ", button("End", () => end(s.id, reason.value), { "data-action": "end", class: "small secondary" }))
          : el("td", {}, s.ended_early ? s.ended_early.reason : "—");
      return el("tr", { "data-flash-sale": s.id, "data-status": s.status },
        ...cells([s.id, s.sku_id, yuan(s.price_fen), `${s.remaining_units} / ${s.pool_units}`, chinaTime(s.starts_at), chinaTime(s.ends_at), s.status]),
        action);
    },
    "No flash sales",
  );
  document.getElementById("flash-sales").dataset.loaded = "true";
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
    await loadEntries(campaign);
  };
  const campaign = await runningCampaign();
  await entryForm(me, campaign);
  await loadFlashSales(me.merchant_id);
  document.getElementById("window-select").addEventListener("change", refresh);
  await refresh();
  setInterval(() => refresh().catch(() => {}), 30000);
}

const PAGES = { login: loginPage, index: indexPage, operator: operatorPage, merchant: merchantPage, campaigns: campaignsPage };

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
