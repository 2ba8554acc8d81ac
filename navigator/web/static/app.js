// Navigator dashboard: plain JavaScript, no build step, no third-party code.
//
// Every listing is paged by the manager (limit + continue token): the page never downloads
// more than one page of objects, whatever the fleet's size. The change feed is read with
// fetch() from /api/v1/events (Server-Sent Events): unlike EventSource, fetch can send the
// reader's token in the Authorization header, so no token ever appears in a URL.
"use strict";

const TOKEN_KEY = "navigator-token";
const PAGE = 50;
const OVERVIEW_REFRESH_MS = 2000;

const view = document.getElementById("view");
const errorBanner = document.getElementById("error");
const liveDot = document.getElementById("live");

// Whatever the current page runs (timers, streams) is stopped when the page changes.
let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }
function leave() { cleanups.forEach((fn) => fn()); cleanups = []; setLive(false); }

// -- small DOM helpers ----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(text, cls) { return el("span", { class: `badge ${cls || text}` }, text); }

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? (s % 60) + "s" : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

function since(rfc3339) {
  if (!rfc3339) return "never";
  return age((Date.now() - Date.parse(rfc3339)) / 1000) + " ago";
}

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label || h)))),
    el("tbody", {}, rows));
}

function showError(message) {
  errorBanner.textContent = message;
  errorBanner.hidden = !message;
}

function setLive(on) { liveDot.classList.toggle("on", !!on); }

// -- the API: the reader's token, 401 -> ask for one ----------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function headers() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

class Unauthorized extends Error {}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function api(path, params, signal) {
  const response = await fetch(url(path, params), { headers: headers(), signal });
  if (response.status === 401) { askForToken(token() ? "The token was refused." : ""); throw new Unauthorized(); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.detail && body.detail.message ? body.detail.message : JSON.stringify(body.detail || body);
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function askForToken(message) {
  leave();
  view.replaceChildren();
  const form = document.getElementById("token-form");
  const error = document.getElementById("token-error");
  form.hidden = false;
  error.textContent = message || "";
  error.hidden = !message;
  document.getElementById("token-input").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  event.target.hidden = true;
  route();
});

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});

// -- the change feed: Server-Sent Events over fetch ------------------------------------------

// Calls onEvent(row) per change and onReady() once subscribed; reconnects after a drop (the
// dashboard reloads what it shows on every `ready`, so nothing missed meanwhile stays missed).
function follow(params, onEvent, onReady) {
  const controller = new AbortController();
  let stopped = false;
  onLeave(() => { stopped = true; controller.abort(); });

  async function once() {
    const response = await fetch(url("/api/v1/events", params), { headers: headers(), signal: controller.signal });
    if (response.status === 401) { askForToken("The token was refused."); stopped = true; return; }
    if (!response.ok || !response.body) throw new Error(`change feed: HTTP ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trim());
        }
        if (!data.length) continue;
        if (name === "ready") { setLive(true); onReady && onReady(); }
        else if (name === "change") onEvent(JSON.parse(data.join("\n")));
        else if (name === "error") throw new Error(`change feed: ${JSON.parse(data.join("\n")).message}`);
      }
    }
  }

  (async () => {
    let delay = 500;
    while (!stopped) {
      try { await once(); delay = 500; } catch (error) {
        if (stopped) return;
        console.warn(error);
      }
      setLive(false);
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
}

// Runs fn at most once per `ms`, the last call winning: a burst of changes reloads once.
function debounce(fn, ms) {
  let timer = null;
  const wrapped = () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  onLeave(() => clearTimeout(timer));
  return wrapped;
}

// -- pages ----------------------------------------------------------------------------------

const KIND_ORDER = ["services", "endpointslices", "pods"];

function kinds(clusters) {
  const found = new Set();
  clusters.forEach((c) => Object.keys(c.counts).forEach((k) => found.add(k)));
  return [...KIND_ORDER.filter((k) => found.has(k)), ...[...found].filter((k) => !KIND_ORDER.includes(k)).sort()];
}

async function overview() {
  const heading = el("h1", {}, "Clusters");
  const sub = el("p", { class: "sub" }, "loading…");
  const summary = el("div", { class: "summary" });
  const holder = el("div", {});
  view.replaceChildren(heading, sub, summary, holder);
  let timer = null;
  let stopped = false;
  onLeave(() => { stopped = true; clearTimeout(timer); });

  async function refresh() {
    try {
      const { items } = await api("/api/v1/clusters");
      if (stopped) return;
      render(items);
      showError("");
      setLive(true);
    } catch (error) {
      if (error instanceof Unauthorized) return;
      setLive(false);
      showError(error.message);
    }
    if (!stopped) timer = setTimeout(refresh, OVERVIEW_REFRESH_MS);
  }

  function render(items) {
    const byStatus = {};
    items.forEach((c) => { byStatus[c.status] = (byStatus[c.status] || 0) + 1; });
    const ks = kinds(items);
    const totals = Object.fromEntries(ks.map((k) => [k, items.reduce((n, c) => n + (c.counts[k] || 0), 0)]));
    summary.replaceChildren(
      el("div", { class: "tile" }, el("b", {}, items.length), el("span", {}, "clusters")),
      ...["HEALTHY", "INITIALIZING", "STALE", "DISCONNECTED"].filter((s) => byStatus[s]).map((s) =>
        el("div", { class: "tile" }, el("b", {}, byStatus[s]), badge(s))),
      ...ks.map((k) => el("div", { class: "tile" }, el("b", {}, totals[k].toLocaleString()), el("span", {}, k))),
    );
    sub.textContent = `updated ${new Date().toLocaleTimeString()} · refreshed every ${OVERVIEW_REFRESH_MS / 1000}s`;
    const headersRow = [
      "Cluster", "Status", "Connected", "Last sync", { label: "Copy age", num: true },
      ...ks.map((k) => ({ label: k, num: true })), "Metadata", "Errors",
    ];
    const rows = items.map((c) => el("tr", { dataset: { cluster: c.cluster } },
      el("td", {}, el("a", { href: `#/search?cluster=${encodeURIComponent(c.cluster)}&kind=pods` }, c.cluster)),
      el("td", { class: "status" }, badge(c.status), c.status_reason ? el("div", { class: "reason" }, c.status_reason) : null),
      el("td", {}, c.connected ? "yes" : "no"),
      el("td", {}, since(c.last_sync)),
      el("td", { class: "num" }, age(c.age_seconds)),
      ...ks.map((k) => el("td", { class: "num" }, (c.counts[k] || 0).toLocaleString())),
      el("td", { class: "mono" }, Object.entries(c.metadata).map(([k, v]) => `${k}=${v}`).join(" ")),
      el("td", { class: "errors" }, c.errors.map((e) => el("div", {}, `${e.kind}: ${e.message}${e.cached ? " (cached)" : ""}`))),
    ));
    holder.replaceChildren(rows.length
      ? table(headersRow, rows, { id: "clusters" })
      : el("p", { class: "empty" }, "No cluster has connected yet."));
  }

  await refresh();
}

const SEARCH_KINDS = ["pods", "services", "endpointslices", "resources"];

function columns(kind) {
  const common = [
    { label: "Cluster", cell: (r) => r.cluster },
    { label: "Namespace", cell: (r) => r.namespace },
  ];
  if (kind === "pods") {
    return [...common,
      { label: "Name", cell: (r) => r.name },
      { label: "Phase", cell: (r) => r.phase || "" },
      { label: "Ready", cell: (r) => (r.ready ? badge("ready", "ok") : badge("not ready", "bad")) },
      { label: "IP", cell: (r) => r.pod_ip || "" },
      { label: "Node", cell: (r) => r.node_name || "" },
      { label: "Labels", cell: (r) => labels(r.labels) }];
  }
  if (kind === "services") {
    return [...common,
      { label: "Name", cell: (r) => el("a", { href: `#/service/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}` }, r.name) },
      { label: "Type", cell: (r) => r.type || "" },
      { label: "Cluster IP", cell: (r) => r.cluster_ip || "" },
      { label: "Ports", cell: (r) => (r.ports || []).map((p) => `${p.port}/${p.protocol || "TCP"}`).join(", ") },
      { label: "Selector", cell: (r) => labels(r.selector || {}) }];
  }
  if (kind === "endpointslices") {
    return [...common,
      { label: "Name", cell: (r) => r.name },
      { label: "Service", cell: (r) => (r.service ? el("a", { href: `#/service/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.service)}` }, r.service) : "") },
      { label: "Ready", cell: (r) => { const eps = r.endpoints || []; return `${eps.filter((e) => e.ready).length}/${eps.length}`; } }];
  }
  return [...common,
    { label: "Kind", cell: (r) => r.kind },
    { label: "Name", cell: (r) => r.name },
    { label: "Labels", cell: (r) => labels(r.labels) }];
}

function labels(map) {
  return el("span", { class: "mono" }, Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join(", "));
}

async function search(params) {
  const kind = SEARCH_KINDS.includes(params.get("kind")) ? params.get("kind") : "pods";
  const field = (name, placeholder) => el("label", {}, name,
    el("input", { name, value: params.get(name) || "", placeholder, autocomplete: "off" }));
  const form = el("form", { class: "search", id: "search" },
    el("label", {}, "kind", el("select", { name: "kind" },
      SEARCH_KINDS.map((k) => el("option", { value: k, selected: k === kind }, k)))),
    field("selector", "app=web,tier!=db"),
    field("namespace", "any"),
    field("cluster", "any"),
    field("name", "any"),
    el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.hash = `#/search?${next}`;
  });
  const status = el("p", { class: "sub" });
  const results = el("div", { id: "results" });
  const pager = el("div", { class: "pager" });
  view.replaceChildren(el("h1", {}, "Search"), form, status, results, pager);

  const filters = {
    selector: params.get("selector"), namespace: params.get("namespace"),
    cluster: params.get("cluster"), name: params.get("name"),
  };
  const tokens = [null]; // the continue token of each page shown so far
  const controller = new AbortController();
  onLeave(() => controller.abort());

  async function load(index) {
    status.textContent = "searching…";
    try {
      const page = await api(`/api/v1/${kind}`, { ...filters, limit: PAGE, continue: tokens[index] }, controller.signal);
      tokens[index + 1] = page.continue;
      const cols = columns(kind);
      const clusters = new Set(page.items.map((r) => r.cluster));
      status.textContent = page.items.length
        ? `${page.items.length} ${kind} on page ${index + 1} from ${clusters.size} cluster${clusters.size === 1 ? "" : "s"}${page.continue ? " · more on the next page" : ""}`
        : "";
      results.replaceChildren(page.items.length
        ? table(cols.map((c) => c.label), page.items.map((r) =>
          el("tr", { dataset: { cluster: r.cluster, name: r.name } }, cols.map((c) => el("td", {}, c.cell(r))))))
        : el("p", { class: "empty" }, "Nothing matches."));
      pager.replaceChildren(
        el("button", { type: "button", disabled: index === 0, onclick: () => load(index - 1) }, "‹ Previous"),
        el("span", {}, `page ${index + 1}`),
        el("button", { type: "button", disabled: !page.continue, onclick: () => load(index + 1) }, "Next ›"));
      showError("");
    } catch (error) {
      if (error instanceof Unauthorized || error.name === "AbortError") return;
      status.textContent = "";
      showError(error.message);
    }
  }

  await load(0);
}

async function servicePage(namespace, name) {
  const heading = el("h1", {}, `Service ${namespace}/${name}`);
  const sub = el("p", { class: "sub" }, "loading…");
  const cards = el("div", { class: "cards", id: "service" });
  view.replaceChildren(heading, sub, cards);
  let stopped = false;
  onLeave(() => { stopped = true; });

  async function load() {
    try {
      const data = await api(`/api/v1/services/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`);
      if (stopped) return;
      render(data.clusters);
      showError("");
    } catch (error) {
      if (error instanceof Unauthorized) return;
      if (error.status === 404) { sub.textContent = "No cluster has this service."; cards.replaceChildren(); return; }
      showError(error.message);
    }
  }

  function render(clusters) {
    const ready = clusters.reduce((n, c) => n + c.ready_endpoints, 0);
    const total = clusters.reduce((n, c) => n + c.total_endpoints, 0);
    sub.textContent = `in ${clusters.length} cluster${clusters.length === 1 ? "" : "s"} · ${ready}/${total} endpoints ready · updated ${new Date().toLocaleTimeString()}`;
    cards.replaceChildren(...clusters.map((c) => {
      const state = c.total_endpoints === 0 ? "bad" : c.ready_endpoints === c.total_endpoints ? "ok" : c.ready_endpoints ? "partial" : "bad";
      const slices = table(
        ["Endpoint slice", { label: "Ready", num: true }, { label: "Serving", num: true }, { label: "Terminating", num: true }, { label: "Endpoints", num: true }],
        c.endpointslices.map((s) => el("tr", {},
          el("td", { class: "mono" }, s.name), el("td", { class: "num" }, s.ready), el("td", { class: "num" }, s.serving),
          el("td", { class: "num" }, s.terminating), el("td", { class: "num" }, s.endpoints))));
      const endpointOf = Object.fromEntries(c.endpoints.filter((e) => e.pod).map((e) => [e.pod, e]));
      const pods = table(["Pod", "Phase", "Ready", "IP", "Node", "Endpoint"],
        c.pods.map((p) => el("tr", { class: "pod", dataset: { pod: p.name } },
          el("td", { class: "mono" }, p.name), el("td", {}, p.phase || ""),
          el("td", {}, p.ready ? badge("ready", "ok") : badge("not ready", "bad")),
          el("td", { class: "mono" }, p.pod_ip || ""), el("td", {}, p.node_name || ""),
          el("td", {}, endpointOf[p.name] ? (endpointOf[p.name].ready ? "ready" : endpointOf[p.name].terminating ? "terminating" : "not ready") : "—"))));
      return el("section", { class: "card service-cluster", dataset: { cluster: c.cluster } },
        el("h3", {}, c.cluster, badge(`${c.ready_endpoints}/${c.total_endpoints} ready`, state)),
        el("div", { class: "reason mono" },
          `${c.type || ""} ${c.cluster_ip || ""} · ports ${(c.ports || []).map((p) => p.port).join(", ")} · selector ${Object.entries(c.selector || {}).map(([k, v]) => `${k}=${v}`).join(",")}`),
        slices,
        el("details", { open: clusters.length <= 6 },
          el("summary", {}, `${c.pods.length}${c.pods_truncated ? "+" : ""} pods`), pods));
    }));
  }

  const reload = debounce(load, 150);
  // Only this namespace's changes; a reload takes the service's whole state, so one stream serves all kinds.
  follow({ namespace }, (change) => {
    if (change.kind === "pods" || change.kind === "endpointslices" || (change.kind === "services" && change.name === name)) reload();
  }, reload);
  await load();
}

async function changesPage(params) {
  const field = (name, placeholder) => el("label", {}, name,
    el("input", { name, value: params.get(name) || "", placeholder, autocomplete: "off" }));
  const form = el("form", { class: "search" },
    field("kind", "any"), field("cluster", "any"), field("namespace", "any"), field("selector", "any"),
    el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.hash = `#/changes?${next}`;
  });
  const sub = el("p", { class: "sub" }, "connecting to the live feed…");
  const body = el("tbody", {});
  const feed = el("table", { id: "feed" },
    el("thead", {}, el("tr", {}, ["Applied", "Change", "Cluster", "Kind", "Namespace", "Name", "Fields"].map((h) => el("th", {}, h)))),
    body);
  view.replaceChildren(el("h1", {}, "Changes"), form, sub, feed);
  const filters = { kind: params.get("kind"), cluster: params.get("cluster"), namespace: params.get("namespace"), selector: params.get("selector") };
  const KEEP = 200;

  function row(change, fresh) {
    const when = change.applied_at ? new Date(change.applied_at).toLocaleTimeString() : "";
    return el("tr", { class: fresh ? "flash" : null, dataset: { type: change.type, name: change.name } },
      el("td", {}, when), el("td", {}, badge(change.type)), el("td", {}, change.cluster), el("td", {}, change.kind),
      el("td", {}, change.namespace), el("td", { class: "mono" }, change.name),
      el("td", { class: "mono" }, (change.changed_fields || []).join(", ")));
  }

  try {
    const recent = await api("/api/v1/changes", { ...filters, since: "15m", limit: PAGE });
    body.append(...recent.items.map((c) => row(c, false)));
  } catch (error) {
    if (error instanceof Unauthorized) return;
    if (error.status !== 409) showError(error.message); // 409: history is off; the live feed still works
  }
  let seen = 0;
  follow(filters, (change) => {
    seen += 1;
    body.prepend(row(change, true));
    while (body.children.length > KEEP) body.lastChild.remove();
    sub.textContent = `live · ${seen} change${seen === 1 ? "" : "s"} since this page opened · the latest ${KEEP} kept`;
  }, () => { if (!seen) sub.textContent = "live · waiting for changes"; });
}

// -- routing --------------------------------------------------------------------------------

async function route() {
  leave();
  showError("");
  document.getElementById("token-form").hidden = true;
  document.getElementById("sign-out").hidden = !token();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "overview";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (page === "service" ? "search" : page)));
  try {
    if (page === "search") await search(params);
    else if (page === "service" && parts.length === 3) await servicePage(parts[1], parts[2]);
    else if (page === "changes") await changesPage(params);
    else await overview();
  } catch (error) {
    if (!(error instanceof Unauthorized)) showError(error.message);
  }
}

window.addEventListener("hashchange", route);
route();
