// The ztmesh dashboard: reads the controller's viz API (same origin) and
// draws it. Plain JS and SVG; nothing is fetched from anywhere else.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function namespace() { return $("#namespace").value; }

function withNs(path) {
  const ns = namespace();
  if (!ns) return path;
  return path + (path.includes("?") ? "&" : "?") + "namespace=" + encodeURIComponent(ns);
}

// GET path as JSON; a failure is an Error carrying what the API said.
async function api(path) {
  const rsp = await fetch(path, { cache: "no-store" });
  const text = await rsp.text();
  if (!rsp.ok) throw new Error(path.split("?")[0] + ": " + rsp.status + " " + text.trim());
  return JSON.parse(text);
}

const pct = (v) => (v == null ? "-" : (v * 100).toFixed(2) + "%");
const ms = (v) => (v == null ? "-" : v >= 10 ? v.toFixed(0) + "ms" : v >= 1 ? v.toFixed(1) + "ms" : v.toFixed(2) + "ms");
const num = (v, d) => (v == null ? "-" : Number(v).toFixed(d));

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// Workloads and their golden signals.
async function workloads() {
  const note = $("#workloads-note");
  try {
    const rows = await api(withNs("/stat?output=json&window=2"));
    fill($("#workloads-table tbody"), rows.map((r) => {
      const success = r.success_rate == null ? "" : r.success_rate >= 0.95 ? "ok" : "bad";
      // The stat row's own DENIED figure when it has one, else the
      // denials counted by the proxy (since it started).
      const denied = r.denied != null ? r.denied : denialTotals.get(r.namespace + "/" + r.name);
      return el("tr", { class: "workload", "data-name": r.namespace + "/" + r.name },
        el("td", {}, r.namespace), el("td", {}, r.name),
        el("td", {}, r.meshed ? "yes" : "no"),
        el("td", { class: success }, pct(r.success_rate)), el("td", {}, num(r.rps, 1)),
        el("td", {}, ms(r.latency_ms_p50)), el("td", {}, ms(r.latency_ms_p95)), el("td", {}, ms(r.latency_ms_p99)),
        el("td", {}, pct(r.tls_share)), el("td", { class: denied ? "bad" : "" }, denied == null ? "-" : num(denied, denied % 1 ? 1 : 0)),
        el("td", {}, num(r.tcp_connections, 0)));
    }));
    const select = $("#namespace");
    const known = new Set([...select.options].map((o) => o.value));
    for (const ns of new Set(rows.map((r) => r.namespace))) {
      if (!known.has(ns)) select.append(el("option", { value: ns }, ns));
    }
    note.textContent = "";
  } catch (e) {
    note.textContent = e.message;
  }
}

// The edge graph: workloads on a circle, each edge an arrow, green for
// mTLS and dashed red for plaintext, its identities or reason as a tooltip.
// An identity as SA.NS (the rest is the trust domain's).
const short = (id) => (id ? id.split(".").slice(0, 2).join(".") : "-");

function drawEdges(rows) {
  const graph = $("#edge-graph");
  const names = [...new Set(rows.flatMap((r) => [r.src, r.dst]))].sort();
  const [w, h] = [640, 360];
  const radius = Math.min(w, h) / 2 - 50;
  const at = new Map(names.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(names.length, 1) - Math.PI / 2;
    return [n, [w / 2 + radius * Math.cos(a), h / 2 + radius * Math.sin(a)]];
  }));
  const defs = svg("defs", {},
    ...["mtls", "plaintext"].map((k) => svg("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: k === "mtls" ? "#1e8e3e" : "#d93025" }))));
  const edges = rows.map((r) => {
    const [x1, y1] = at.get(r.src);
    const [x2, y2] = at.get(r.dst);
    const len = Math.hypot(x2 - x1, y2 - y1) || 1;
    const [dx, dy] = [(x2 - x1) / len, (y2 - y1) / len];
    const kind = r.tls ? "mtls" : "plaintext";
    const why = r.tls ? (r.src_identity || "?") + " → " + (r.dst_identity || "?") : "plaintext: " + (r.no_tls_reason || "no TLS");
    return svg("line", {
      class: "edge " + kind, "data-src": r.src, "data-dst": r.dst, "data-tls": String(!!r.tls),
      x1: x1 + dx * 28, y1: y1 + dy * 28, x2: x2 - dx * 30, y2: y2 - dy * 30, "marker-end": "url(#arrow-" + kind + ")",
    }, svg("title", {}, r.src + " → " + r.dst + ": " + why));
  });
  const nodes = names.map((n) => {
    const [x, y] = at.get(n);
    const label = n.replace(/^[^/]+\/(externalworkload\/)?/, "");
    return svg("g", { class: "node", "data-name": n }, svg("circle", { cx: x, cy: y, r: 26 }), svg("text", { x, y: y + 4 }, label), svg("title", {}, n));
  });
  graph.replaceChildren(defs, ...edges, ...nodes);
  fill($("#edges-table tbody"), rows.map((r) => el("tr", { class: "edge-row" },
    el("td", {}, r.src), el("td", {}, r.dst),
    el("td", { class: r.tls ? "ok" : "bad" }, r.tls ? "mTLS" : "no"),
    el("td", { class: "wrap", title: (r.src_identity || "-") + " → " + (r.dst_identity || "-") },
      r.tls ? short(r.src_identity) + " → " + short(r.dst_identity) : r.no_tls_reason || "-"))));
}

async function edges() {
  const note = $("#edges-note");
  try {
    drawEdges(await api(withNs("/edges?output=json")));
    note.textContent = "";
  } catch (e) {
    note.textContent = e.message;
  }
}

// Per-route stats, whatever columns the rows have.
async function routes() {
  const note = $("#routes-note");
  try {
    const rows = await api(withNs("/routes?output=json"));
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    $("#routes-table thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c.replace(/_/g, " ")))));
    fill($("#routes-table tbody"), rows.map((r) => el("tr", { class: "route" }, ...cols.map((c) => {
      const v = r[c];
      const text = v == null ? "-" : c.includes("rate") ? pct(v) : typeof v === "number" ? num(v, v % 1 ? 2 : 0) : String(v);
      return el("td", {}, text);
    }))));
    note.textContent = rows.length ? "" : "no routes seen yet";
  } catch (e) {
    note.textContent = e.message;
  }
}

// Denials: the counts, and what grew since the last look.
let lastDenials = new Map();
let denialTotals = new Map();
async function denials() {
  const note = $("#denials-note");
  try {
    const rows = await api(withNs("/denials"));
    const seen = new Map();
    fill($("#denials-table tbody"), rows.map((r) => {
      const key = [r.workload, r.kind, r.server, r.route, r.client, r.target_addr].join("|");
      seen.set(key, r.count);
      const recent = lastDenials.has(key) ? r.count - lastDenials.get(key) : null;
      return el("tr", { class: "denial" + (recent ? " fresh" : "") },
        el("td", {}, r.workload), el("td", {}, r.kind), el("td", { class: "wrap" }, r.client),
        el("td", { class: "bad" }, num(r.count, 0)), el("td", {}, recent == null ? "-" : "+" + recent),
        el("td", { class: "wrap reason" }, r.reason));
    }));
    lastDenials = seen;
    denialTotals = new Map();
    for (const r of rows) denialTotals.set(r.workload, (denialTotals.get(r.workload) || 0) + r.count);
    note.textContent = rows.length ? "" : "no denials";
  } catch (e) {
    note.textContent = e.message;
  }
}

// The compliance report, rendered from its JSON whatever its checks.
async function compliance() {
  const box = $("#compliance-report");
  try {
    const report = await api("/compliance");
    const s = report.summary || {};
    $("#compliance-summary").textContent = Object.entries(s).map(([k, v]) => k + " " + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ");
    const list = (title, items) => !items || !items.length ? "" :
      el("div", {}, el("span", { class: "muted" }, title), el("ul", {}, ...items.map((i) => el("li", {}, typeof i === "string" ? i : JSON.stringify(i)))));
    box.replaceChildren(...(report.checks || []).map((c) => {
      const status = String(c.status || "").toLowerCase();
      return el("div", { class: "check", "data-id": c.id || "", "data-status": status },
        el("span", { class: "badge " + status }, status.toUpperCase()),
        el("span", { class: "title" }, (c.id ? c.id + " " : "") + (c.title || "")),
        c.group ? el("span", { class: "muted" }, " · " + c.group) : "",
        c.detail ? el("div", {}, c.detail) : "",
        c.fix && status !== "pass" ? el("div", { class: "fix" }, "fix: " + c.fix) : "",
        list("offenders", c.offenders), list("evidence", c.evidence));
    }));
  } catch (e) {
    box.replaceChildren(el("p", { class: "note" }, e.message));
  }
}

// The live tap: one streaming GET /tap, a row per request, its status and
// latency filled in when the response comes; restarted when it ends.
const tap = { controller: null, paused: false, rows: new Map() };

function tapEvent(e) {
  const key = e.workload + "|" + e.direction + "|" + e.id;
  const tbody = $("#tap-table tbody");
  if (e.kind === "req") {
    // A peer by its identity's SA.NS, else its address; the tapped
    // workload's own side by its name.
    const peer = (id, addr) => (id ? id.split(".").slice(0, 2).join(".") : addr);
    const own = e.workload.replace(/^[^/]+\/(externalworkload\/)?/, "");
    const inbound = e.direction === "inbound";
    const src = inbound ? peer(e.src_id, e.src) : own;
    const dst = inbound ? own : e.dst_id ? peer(e.dst_id, e.dst) : e.authority || e.dst;
    const row = el("tr", { class: "tap-row fresh", "data-workload": e.workload, "data-path": e.path || "" },
      el("td", {}, new Date().toLocaleTimeString()), el("td", {}, e.direction),
      el("td", {}, e.workload), el("td", { title: e.src }, src), el("td", { title: e.dst }, dst),
      el("td", {}, e.method || "-"), el("td", {}, e.authority || "-"), el("td", {}, e.path || "-"),
      el("td", { class: "status" }, "…"), el("td", { class: "latency" }, "-"));
    tap.rows.set(key, row);
    tbody.prepend(row);
    while (tbody.children.length > 100) {
      const last = tbody.lastElementChild;
      for (const [k, r] of tap.rows) if (r === last) tap.rows.delete(k);
      last.remove();
    }
  } else if (e.kind === "rsp") {
    const row = tap.rows.get(key);
    if (!row) return;
    const status = row.querySelector(".status");
    status.textContent = e.status;
    status.className = "status " + (e.status >= 500 || e.status === 403 ? "bad" : e.status >= 400 ? "warn" : "ok");
    row.querySelector(".latency").textContent = ms(e.latency_ms);
  }
}

async function tapStream() {
  if (tap.paused) return;
  const ns = namespace();
  tap.controller = new AbortController();
  $("#tap-status").textContent = "tapping " + (ns || "all namespaces") + "…";
  try {
    const rsp = await fetch(withNs("/tap?limit=100000&max_wait=3600"), { signal: tap.controller.signal, cache: "no-store" });
    if (!rsp.ok) throw new Error("/tap: " + rsp.status + " " + (await rsp.text()).trim());
    const reader = rsp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const item = JSON.parse(line);
        if (item.error) $("#tap-status").textContent = item.workload + ": " + item.error;
        else tapEvent(item);
      }
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    $("#tap-status").textContent = e.message;
  }
  setTimeout(tapStream, 2000);
}

function restartTap() {
  if (tap.controller) tap.controller.abort();
  tap.controller = null;
  setTimeout(tapStream, 0);
}

$("#tap-toggle").addEventListener("click", () => {
  tap.paused = !tap.paused;
  $("#tap-toggle").textContent = tap.paused ? "Resume" : "Pause";
  if (tap.paused) {
    if (tap.controller) tap.controller.abort();
    $("#tap-status").textContent = "paused";
  } else restartTap();
});

async function refresh() {
  await Promise.all([workloads(), edges(), routes(), denials()]);
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function every(ms, f) {
  const loop = async () => {
    await f();
    setTimeout(loop, ms);
  };
  loop();
}

$("#namespace").addEventListener("change", () => {
  lastDenials = new Map();
  refresh();
  restartTap();
});

every(3000, refresh);
every(15000, compliance);
tapStream();
