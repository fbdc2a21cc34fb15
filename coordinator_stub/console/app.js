// The marketplace console: one page, served by the coordinator, speaking its JSON API.
// No framework and no CDN: what ships in the package is all it loads. The API key stays in
// this browser (localStorage) and travels only in the X-Api-Key header, never in a URL.
"use strict";

const KEY_STORE = "aitbc.apiKey";
const state = { key: localStorage.getItem(KEY_STORE) || "", me: null, keyError: null, stream: null };
const $ = (sel, root = document) => root.querySelector(sel);

// ---- the API --------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, detail) {
    super(`${status} ${statusText(status)}: ${detail}`);
    this.status = status;
  }
}
function statusText(code) {
  return { 400: "bad request", 401: "unauthorized", 402: "insufficient balance",
    403: "forbidden", 404: "not found", 409: "conflict", 422: "invalid input",
    429: "too many requests" }[code] || "error";
}
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.key) headers["X-Api-Key"] = state.key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    let detail = data && data.detail !== undefined ? data.detail : text;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    throw new ApiError(resp.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

// ---- small helpers --------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return el;
}
function showError(err) {
  const box = $("#error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}
function clearError() { $("#error").hidden = true; }
function badge(status) { return h("span", { class: `badge ${status}`, "data-status": status, text: status }); }
function money(v) { return v === null || v === undefined ? "—" : `${Number(v).toFixed(4)} AITBC`; }
function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
async function guarded(fn) {
  clearError();
  try { await fn(); } catch (err) { showError(err); }
}
function render(...nodes) {
  const main = $("#main");
  main.replaceChildren(...nodes);
}

// ---- who am I -------------------------------------------------------------------------
async function identify() {
  state.me = null;
  state.keyError = null;
  if (state.key) {
    try { state.me = await api("GET", "/v1/accounts/me"); }
    catch (err) { state.keyError = err; }
  }
  const role = state.me ? state.me.role : "visitor";
  $("#who").textContent = state.me ? `${state.me.subject} (${role})` : "visitor";
  document.body.dataset.role = role;
  for (const a of document.querySelectorAll("#nav a[data-role]")) {
    a.hidden = !(role === a.dataset.role || role === "admin");
  }
}

// ---- live status: server-sent events --------------------------------------------------
function watch(ids, onGpu) {
  if (state.stream) state.stream.close();
  state.stream = null;
  if (!ids.length) return;
  const es = new EventSource(`/v1/marketplace/gpu/stream?ids=${encodeURIComponent(ids.join(","))}`);
  es.addEventListener("gpu", (ev) => onGpu(JSON.parse(ev.data)));
  state.stream = es;
}

// ---- the GPU list ---------------------------------------------------------------------
const FILTERS = [
  ["model", "Model", "text", "e.g. H100"],
  ["memory_min", "Memory at least (GB)", "number", ""],
  ["region", "Region", "text", "e.g. eu-west"],
  ["price_max", "Price at most (AITBC/h)", "number", ""],
];
async function listView(params) {
  const form = h("form", { class: "filters", "aria-label": "Filter GPUs" },
    FILTERS.map(([name, label, type, placeholder]) => h("label", {},
      label, h("input", { name, type, placeholder, value: params.get(name) || "", step: type === "number" ? "any" : null, min: type === "number" ? "0" : null }))),
    h("label", {}, "Status", h("select", { name: "status" },
      ["", "available", "booked", "offline"].map((s) => h("option", { value: s, selected: params.get("status") === s }, s || "any")))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "verified", checked: params.get("verified") === "true" }), "verified only"),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, k === "verified" ? "true" : v);
    location.hash = `#/?${q}`;
  });
  const q = new URLSearchParams();
  for (const [k] of FILTERS) if (params.get(k)) q.set(k, params.get(k));
  for (const k of ["status", "verified"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", "100");
  const gpus = await api("GET", `/v1/marketplace/gpu/list?${q}`);
  const rows = gpus.map((g) => h("tr", { "data-gpu-id": g.id },
    h("td", { "data-label": "Model" }, h("a", { href: `#/gpu/${g.id}` }, g.model)),
    h("td", { class: "num", "data-label": "Memory" }, `${g.memory_gb} GB`),
    h("td", { "data-label": "Region" }, g.region || "—"),
    h("td", { class: "num", "data-label": "AITBC/h" }, `${g.price_per_hour}`),
    h("td", { class: "status", "data-label": "Status" }, badge(g.status)),
    h("td", { "data-label": "Proof" }, g.verified ? h("span", { class: "verified", title: "attestation passed" }, "✔ verified") : h("span", { class: "unverified" }, g.attestation.status === "failed" ? "✘ failed" : "—"))));
  const table = h("table", { class: "gpus" },
    h("caption", {}, `${gpus.length} GPU${gpus.length === 1 ? "" : "s"}`),
    h("thead", {}, h("tr", {}, ["Model", "Memory", "Region", "AITBC/h", "Status", "Proof"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
  render(h("h1", {}, "GPUs"), form, gpus.length ? table : h("p", { class: "empty" }, "No GPU matches."));
  watch(gpus.map((g) => g.id), (g) => {
    const cell = $(`tr[data-gpu-id="${g.id}"] td.status`);
    if (cell) cell.replaceChildren(badge(g.status));
  });
}

// ---- one GPU ----------------------------------------------------------------------------
function sparkline(label, values, max) {
  const w = 160, hgt = 36;
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${hgt - (Math.min(v, max) / max) * hgt}`).join(" ");
  const last = values.length ? values[values.length - 1] : null;
  return h("figure", { class: "spark" },
    h("figcaption", {}, `${label}: ${last === null ? "—" : Math.round(last)}`),
    (() => {
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `${label} over the last minutes`);
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", pts);
      svg.append(line);
      return svg;
    })());
}
async function gpuView(id) {
  const [g, reviews] = await Promise.all([
    api("GET", `/v1/marketplace/gpu/${encodeURIComponent(id)}`),
    api("GET", `/v1/marketplace/gpu/${encodeURIComponent(id)}/reviews`),
  ]);
  const series = { util: [], temp: [] };
  const push = (m) => {
    if (m && m.utilization_pct !== null) series.util.push(m.utilization_pct);
    if (m && m.temperature_c !== null) series.temp.push(m.temperature_c);
    for (const s of Object.values(series)) if (s.length > 60) s.shift();
  };
  push(g.metrics);
  const sparks = h("div", { class: "sparks" });
  const drawSparks = () => sparks.replaceChildren(sparkline("Utilisation %", series.util, 100), sparkline("Temperature °C", series.temp, 100));
  drawSparks();
  const statusCell = h("dd", { id: "gpu-status" }, badge(g.status));
  const att = g.attestation;
  const specs = h("dl", { class: "specs" }, [
    ["Status", statusCell],
    ["Memory", `${g.memory_gb} GB`], ["Compute capability", g.compute_capability || "—"],
    ["Driver / CUDA", `${g.driver_version || "—"} / ${g.cuda_version || "—"}`],
    ["Region", g.region || "—"], ["List price", `${g.price_per_hour} AITBC/h`],
    ["Health", g.health + (g.health_reason ? ` (${g.health_reason})` : "")],
    ["Proof of hardware", g.verified ? `verified ${when(att.attested_at)} · ${att.fp32_tflops} TFLOPS · ${att.memory_tbps} TB/s` : att.status === "failed" ? `failed: ${att.reason}` : "not attested"],
    ["Rating", `${g.average_rating} (${g.total_reviews} reviews)`],
    ["Miner", g.miner_id], ["UUID", g.uuid || "—"],
  ].flatMap(([k, v]) => v instanceof Node ? [h("dt", {}, k), v] : [h("dt", {}, k), h("dd", {}, v)]));

  const quoteOut = h("output", { id: "quote", "aria-live": "polite" });
  const hours = h("input", { id: "hours", type: "number", min: "0.05", step: "any", value: "1" });
  const quote = () => guarded(async () => {
    const q = await api("GET", `/v1/marketplace/gpu/${id}/quote?duration_hours=${encodeURIComponent(hours.value)}`);
    quoteOut.textContent = `${q.total_cost} AITBC (${q.price_per_hour} AITBC/h now)`;
  });
  const actions = h("form", { class: "book", "aria-label": "Quote and book" },
    h("label", { for: "hours" }, "Hours"), hours,
    h("button", { type: "button", onclick: quote }, "Quote"), quoteOut);
  const role = state.me ? state.me.role : null;
  const booking = g.current_booking;
  if ((role === "client" || role === "admin") && g.status === "available") {
    actions.append(h("button", { type: "submit", id: "book" }, "Book"));
    actions.addEventListener("submit", (ev) => {
      ev.preventDefault();
      guarded(async () => {
        await api("POST", `/v1/marketplace/gpu/${id}/book`, { duration_hours: Number(hours.value) });
        await gpuView(id);
      });
    });
  }
  const mine = booking && state.me && (booking.client_id === state.me.subject || role === "admin" || (role === "miner" && g.miner_id === state.me.subject));
  if (mine) {
    actions.append(h("button", { type: "button", id: "release", onclick: () => guarded(async () => {
      const r = await api("POST", `/v1/marketplace/gpu/${id}/release`);
      await gpuView(id);
      $("#notice").textContent = `Released; refund ${r.refund ?? "0"} AITBC.`;
    }) }, "Release"));
  }
  const bookingInfo = booking ? h("p", { class: "booking" }, `Booked by ${booking.client_id} until ${when(booking.end_time)} · lease ${booking.lease_state}`) : null;
  const reviewList = h("ul", { class: "reviews" }, reviews.reviews.map((r) => h("li", {}, h("strong", {}, "★".repeat(r.rating)), ` ${r.comment || ""} — ${r.user}, ${when(r.date)}`)));
  let reviewForm = null;
  if (role === "client") {
    const orders = await api("GET", "/v1/marketplace/orders?limit=100");
    if (orders.some((o) => o.gpu_id === id)) {
      reviewForm = h("form", { class: "review", "aria-label": "Review this GPU" },
        h("label", {}, "Rating", h("select", { name: "rating" }, [5, 4, 3, 2, 1].map((n) => h("option", { value: n }, `${n} ★`)))),
        h("label", {}, "Comment", h("input", { name: "comment", maxlength: "2000" })),
        h("button", { type: "submit" }, "Post review"));
      reviewForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const f = new FormData(reviewForm);
        guarded(async () => {
          await api("POST", `/v1/marketplace/gpu/${id}/reviews`, { rating: Number(f.get("rating")), comment: f.get("comment") || null });
          await gpuView(id);
        });
      });
    }
  }
  render(h("p", {}, h("a", { href: "#/" }, "← all GPUs")), h("h1", {}, g.model), h("p", { id: "notice", "aria-live": "polite" }),
    specs, sparks, bookingInfo, actions, h("h2", {}, "Reviews"), reviews.reviews.length ? reviewList : h("p", {}, "No reviews yet."), reviewForm);
  watch([id], (live) => {
    statusCell.replaceChildren(badge(live.status));
    push(live.metrics);
    drawSparks();
  });
}

// ---- renter: orders -------------------------------------------------------------------
async function ordersView() {
  const orders = await api("GET", "/v1/marketplace/orders?limit=100");
  render(h("h1", {}, "My orders"), orders.length ? h("table", {},
    h("thead", {}, h("tr", {}, ["Booked", "GPU", "Hours", "Cost", "Refund", "Status", "Lease"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, orders.map((o) => h("tr", {},
      h("td", {}, when(o.created_at)), h("td", {}, h("a", { href: `#/gpu/${o.gpu_id}` }, o.gpu_model)),
      h("td", { class: "num" }, o.duration_hours), h("td", { class: "num" }, o.total_cost),
      h("td", { class: "num" }, o.refund ?? "—"), h("td", {}, o.status), h("td", {}, o.lease_state))))) : h("p", {}, "No orders yet."));
}

// ---- operator ---------------------------------------------------------------------------
async function operatorView() {
  const me = state.me;
  const [gpus, pool] = await Promise.all([
    api("GET", `/v1/marketplace/gpu/list?miner_id=${encodeURIComponent(me.subject)}&limit=500`),
    api("GET", `/v1/staking/pools/${encodeURIComponent(me.subject)}`).catch(() => null),
  ]);
  const booked = await Promise.all(gpus.filter((g) => g.status === "booked").map((g) => api("GET", `/v1/marketplace/gpu/${g.id}`)));
  render(h("h1", {}, `Host ${me.subject}`),
    h("dl", { class: "specs" }, h("dt", {}, "Earnings (balance)"), h("dd", {}, money(me.balance)),
      h("dt", {}, "Staked on my pool"), h("dd", {}, pool ? `${money(pool.total_staked)} by ${pool.staker_count} stakers` : "—")),
    h("h2", {}, "GPUs"), h("table", {},
      h("thead", {}, h("tr", {}, ["GPU", "Status", "Health", "Proof", "Last heartbeat"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, gpus.map((g) => h("tr", { "data-gpu-id": g.id },
        h("td", {}, h("a", { href: `#/gpu/${g.id}` }, g.model)), h("td", { class: "status" }, badge(g.status)),
        h("td", {}, g.health), h("td", {}, g.verified ? "verified" : g.attestation.status), h("td", {}, when(g.last_heartbeat_at)))))),
    h("h2", {}, "Current leases"), booked.length ? h("ul", {}, booked.map((d) => h("li", {},
      `${d.model} · ${d.current_booking.client_id} until ${when(d.current_booking.end_time)} · lease ${d.current_booking.lease_state}`))) : h("p", {}, "None."));
}

// ---- admin ------------------------------------------------------------------------------
async function adminView() {
  const [keys, accounts] = await Promise.all([api("GET", "/v1/admin/api-keys"), api("GET", "/v1/admin/accounts?limit=200")]);
  const keyForm = h("form", { class: "inline", "aria-label": "Create a key" },
    h("label", {}, "Role", h("select", { name: "role" }, ["client", "miner", "admin"].map((r) => h("option", { value: r }, r)))),
    h("label", {}, "Subject", h("input", { name: "subject", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._@-]{0,127}" })),
    h("button", { type: "submit" }, "Create key"), h("output", { id: "new-key", "aria-live": "polite" }));
  keyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(keyForm);
    guarded(async () => {
      const k = await api("POST", "/v1/admin/api-keys", { role: f.get("role"), subject: f.get("subject") });
      await adminView();
      $("#new-key").textContent = `New key (shown once): ${k.api_key}`;
    });
  });
  const creditForm = h("form", { class: "inline", "aria-label": "Credit an account" },
    h("label", {}, "Subject", h("input", { name: "subject", required: true })),
    h("label", {}, "Amount", h("input", { name: "amount", required: true, inputmode: "decimal" })),
    h("button", { type: "submit" }, "Credit"));
  creditForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(creditForm);
    guarded(async () => { await api("POST", `/v1/admin/accounts/${encodeURIComponent(f.get("subject"))}/credit`, { amount: f.get("amount") }); await adminView(); });
  });
  render(h("h1", {}, "Admin"),
    h("h2", {}, "API keys"), keyForm, h("table", {},
      h("thead", {}, h("tr", {}, ["Key", "Role", "Subject", "Created", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, keys.map((k) => h("tr", {}, h("td", {}, k.key_id), h("td", {}, k.role), h("td", {}, k.subject),
        h("td", {}, when(k.created_at)), h("td", {}, when(k.last_used_at)),
        h("td", {}, k.revoked_at ? "revoked" : h("button", { type: "button", onclick: () => guarded(async () => { await api("DELETE", `/v1/admin/api-keys/${k.key_id}`); await adminView(); }) }, "Revoke")))))),
    h("h2", {}, "Accounts"), creditForm, h("table", {},
      h("thead", {}, h("tr", {}, ["Subject", "Balance", "Escrowed", "Staked"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, accounts.map((a) => h("tr", {}, h("td", {}, a.subject), h("td", { class: "num" }, a.balance), h("td", { class: "num" }, a.escrowed), h("td", { class: "num" }, a.staked))))));
}

// ---- routing ----------------------------------------------------------------------------
async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const role = state.me ? state.me.role : null;
  await guarded(async () => {
    if (path.startsWith("/gpu/")) return gpuView(decodeURIComponent(path.slice(5)));
    if (path === "/orders" && role) return ordersView();
    if (path === "/operator" && (role === "miner" || role === "admin")) return operatorView();
    if (path === "/admin" && role === "admin") return adminView();
    if (path !== "/") throw new Error("This page needs another API key (see the key field above).");
    return listView(params);
  });
  if (state.keyError) showError(state.keyError);  // a bad key stays said, whatever the page
  $("#main").focus({ preventScroll: true });
  performance.mark("console-ready");  // bench/bench_console_load.py reads it
  document.body.dataset.ready = location.hash || "#/";
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#api-key").value = state.key;
  $("#key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.key = $("#api-key").value.trim();
    if (state.key) localStorage.setItem(KEY_STORE, state.key); else localStorage.removeItem(KEY_STORE);
    clearError();
    await identify();
    await route();
  });
  $("#forget-key").addEventListener("click", async () => {
    state.key = ""; $("#api-key").value = ""; localStorage.removeItem(KEY_STORE);
    clearError();
    await identify(); await route();
  });
  window.addEventListener("hashchange", route);
  await identify();
  await route();
});
