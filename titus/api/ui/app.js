// The titus dashboard: one page over the API's own REST endpoints and its observe stream.
// No build step and no third-party code: plain DOM, fetch and EventSource. Every value from
// the API is set as text (never as HTML), so a job's name cannot inject markup.
"use strict";

const API = "/api/v3";
const state = { jobs: new Map(), tasks: new Map(), live: false };
const main = document.getElementById("main");

// ---- small helpers ----------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function table(headers, rows, caption) {
  return h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((t) =>
      h("th", { scope: "col", class: /^(cpu|memory|tasks|count|hosts|p50|p95|used|reserved|free|launches|finishes|seconds|value|queued)/i.test(t) ? "num" : null }, t)))),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "none"))]));
}

function row(...cells) {
  return h("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))));
}

const num = (v) => h("td", { class: "num" }, v);
const fmt = (n, digits = 1) => (Number.isFinite(n) ? Number(n.toFixed(digits)).toString() : "–");
const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");

function token() { return sessionStorage.getItem("titus-token") || ""; }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (token()) headers.authorization = `Bearer ${token()}`;
  const r = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new Error((data && data.message) || `${r.status} ${r.statusText}`);
  return data;
}

async function listAll(path, params) {
  const q = new URLSearchParams({ pageSize: "1000", ...params });
  return (await api(`${path}?${q}`)).items;
}

function message(text, kind = "ok") {
  const el = document.getElementById("message");
  if (el) { el.className = kind; el.textContent = text; }
}

// ---- the live model: the observe stream keeps every active job and task -------------------

// The stream is read with fetch, not EventSource, so that it carries the API token: with
// reads behind auth the live model needs it as much as the changes do.
let observing = null;
const handlers = {
  job: (data) => take("job", data),
  task: (data) => take("task", data),
  SnapshotEnd: () => { state.live = true; schedule(); },
  dropped: () => { state.jobs.clear(); state.tasks.clear(); state.live = false; },
};

function take(kind, data) {
  const item = data[kind];
  const map = kind === "job" ? state.jobs : state.tasks;
  if (data.op === "archive") map.delete(item.id); else map.set(item.id, item);
  if (state.live) schedule();
}

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  const handler = handlers[event];
  if (handler) handler(data.length ? JSON.parse(data.join("\n")) : null);
}

async function connect() {
  const live = document.getElementById("live");
  if (observing) observing.abort();
  const mine = new AbortController();
  observing = mine;
  handlers.dropped();
  const headers = token() ? { authorization: `Bearer ${token()}` } : {};
  try {
    const r = await fetch(`${API}/jobs/observe`, { headers, signal: mine.signal });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      live.textContent = `observe stream refused: ${body.message || r.status}`;
    } else {
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
          dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
      live.textContent = "reconnecting to the observe stream…";
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    live.textContent = "reconnecting to the observe stream…";
  }
  if (observing === mine) setTimeout(connect, 2000);
}

let pending = null;
function schedule() {
  // many changes in a burst redraw once; views reading the live model redraw on change
  if (pending) return;
  pending = setTimeout(async () => {
    pending = null;
    if (current && current.live) await current.render().catch(() => null);
    // said once the view shows what the stream has, so "live" is true when it reads so
    if (state.live) document.getElementById("live").textContent = `live: ${state.jobs.size} jobs, ${state.tasks.size} tasks`;
  }, 500);
}

// ---- views --------------------------------------------------------------------------------

function jobOf(task) { return state.jobs.get(task.jobId); }
function resources(job) { return job.jobDescriptor.container.resources; }

function historyAt(task, wanted) {
  for (const s of [...(task.statusHistory || []), task.status]) if (s.state === wanted) return s.timestamp;
  return null;
}

const cluster = {
  live: true,
  async render() {
    const groups = await api("/api/v2/management/applications");
    const tierOf = new Map(groups.map((g) => [g.appName, g.tier]));
    const used = new Map();
    const queued = new Map();
    for (const t of state.tasks.values()) {
      const job = jobOf(t);
      if (!job) continue;
      const group = job.jobDescriptor.capacityGroup || "DEFAULT";
      const tier = tierOf.get(group) || "Flex";
      const s = t.status.state;
      if (s === "Accepted") queued.set(tier, (queued.get(tier) || 0) + 1);
      else if (s !== "Finished") {
        const u = used.get(group) || { cpu: 0, memoryMB: 0, tasks: 0 };
        u.cpu += resources(job).cpu; u.memoryMB += resources(job).memoryMB; u.tasks += 1;
        used.set(group, u);
      }
    }
    const minuteAgo = Date.now() - 60000;
    let launches = 0, finishes = 0;
    for (const t of state.tasks.values()) {
      if ((historyAt(t, "Launched") || 0) > minuteAgo) launches += 1;
      if ((historyAt(t, "Finished") || 0) > minuteAgo) finishes += 1;
    }
    const tiers = ["Critical", "Flex"];
    main.replaceChildren(
      h("h2", {}, "Cluster"),
      h("div", { class: "cards" },
        card(state.jobs.size, "active jobs"), card(state.tasks.size, "active tasks"),
        tiers.map((tier) => card(queued.get(tier) || 0, `queued in ${tier}`)),
        card(launches, "launches in the last minute"), card(finishes, "finishes in the last minute")),
      h("section", {}, h("h3", {}, "Capacity groups"),
        table(["Group", "Tier", "Reserved CPU", "Used CPU", "Reserved memory MB", "Used memory MB", "Tasks"],
          groups.map((g) => {
            const u = used.get(g.appName) || { cpu: 0, memoryMB: 0, tasks: 0 };
            return row(g.appName, g.tier, num(fmt(g.instanceCPU * g.instanceCount)), num(fmt(u.cpu)),
              num(g.instanceMemoryMB * g.instanceCount), num(u.memoryMB), num(u.tasks));
          }))));
  },
};

function card(n, label) { return h("div", { class: "card" }, h("span", { class: "n" }, n), h("span", { class: "l" }, label)); }

const SEARCH = ["applicationName", "owner", "capacityGroup", "imageName"];

const jobs = {
  async render(params) {
    const form = h("form", { class: "search", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
      location.hash = `#/jobs?${q}`;
    } },
    SEARCH.map((f) => h("label", {}, f, h("input", { name: f, value: params.get(f) || "" }))),
    h("label", {}, "jobType", select("jobType", ["", "SERVICE", "BATCH"], params.get("jobType"))),
    h("label", {}, "jobState", select("jobState", ["", "Accepted", "KillInitiated", "Finished"], params.get("jobState"))),
    h("button", { type: "submit" }, "Search"));
    const query = Object.fromEntries([...params].filter(([k]) => SEARCH.includes(k) || k === "jobType" || k === "jobState"));
    const items = await listAll(`${API}/jobs`, query);
    const count = (id) => [...state.tasks.values()].filter((t) => t.jobId === id && t.status.state === "Started").length;
    main.replaceChildren(h("h2", {}, "Jobs"), form, h("p", { class: "muted" }, `${items.length} jobs`),
      table(["Job", "Application", "Type", "State", "Capacity group", "Running tasks"], items.map((j) =>
        row(h("a", { href: `#/job/${j.id}` }, j.id), j.jobDescriptor.applicationName,
          j.jobDescriptor.service ? "service" : "batch", j.status.state,
          j.jobDescriptor.capacityGroup || "DEFAULT", num(count(j.id))))));
  },
};

function select(name, options, chosen) {
  return h("select", { name }, options.map((o) => h("option", { value: o, selected: o === chosen }, o || "any")));
}

const job = {
  async render(params, id) {
    const j = await api(`${API}/jobs/${encodeURIComponent(id)}`);
    const tasks = await listAll(`${API}/tasks`, { jobIds: id });
    const d = j.jobDescriptor;
    const act = (label, fn, cls) => h("button", { type: "button", class: cls, onclick: async () => {
      try { await fn(); message(`${label}: done`); setTimeout(() => route(), 600); } catch (e) { message(`${label}: ${e.message}`, "bad"); }
    } }, label);
    const base = `${API}/jobs/${encodeURIComponent(id)}`;
    const cap = d.service ? d.service.capacity : null;
    const inputs = cap ? ["min", "desired", "max"].map((k) => h("label", {}, `${k} `, h("input", { id: `cap-${k}`, type: "number", min: "0", value: cap[k] }))) : [];
    const logs = h("pre", { class: "logs", id: "logs", "aria-live": "off", hidden: true });
    main.replaceChildren(
      h("p", {}, h("a", { href: "#/jobs" }, "← all jobs")),
      h("h2", {}, `${d.applicationName} · ${j.id}`),
      h("p", {}, `${d.service ? "Service" : "Batch"} job, ${j.status.state}`,
        d.service ? (d.service.enabled ? ", enabled" : ", disabled") : "",
        `, image ${d.container.image.name}:${d.container.image.tag || ""}, ${d.container.resources.cpu} CPU, ${d.container.resources.memoryMB} MB, owner ${d.owner.teamEmail}`),
      h("div", { class: "actions" },
        cap ? [inputs, act("Resize", () => api(`${base}/instances`, { method: "PUT", body: {
          min: +document.getElementById("cap-min").value, desired: +document.getElementById("cap-desired").value,
          max: +document.getElementById("cap-max").value } }))] : null,
        d.service ? act("Enable", () => api(`${base}/enable`, { method: "POST" }), "plain") : null,
        d.service ? act("Disable", () => api(`${base}/disable`, { method: "POST" }), "plain") : null,
        act("Kill job", () => api(base, { method: "DELETE" }), "danger")),
      h("p", { id: "message", role: "status" }),
      h("section", {}, h("h3", {}, `Tasks (${tasks.length})`),
        table(["Task", "State", "Host", "State history", "Output"], tasks.map((t) => row(
          t.id, t.status.state + (t.status.reasonCode && t.status.state === "Finished" ? ` (${t.status.reasonCode})` : ""),
          t.taskContext["agent.id"] || "",
          h("span", { class: "history" }, [...(t.statusHistory || []), t.status].map((s) => `${s.state} ${when(s.timestamp)}`).join(" → ")),
          h("button", { type: "button", class: "plain", onclick: () => follow(t.id, logs) }, "Live logs"))))),
      logs);
  },
};

let following = null;
async function follow(taskId, pre) {
  if (following) following.abort();
  following = new AbortController();
  pre.hidden = false;
  pre.textContent = "";
  pre.setAttribute("aria-label", `output of ${taskId}`);
  const headers = token() ? { authorization: `Bearer ${token()}` } : {};
  try {
    const r = await fetch(`${API}/tasks/${encodeURIComponent(taskId)}/logs?follow=true`, { headers, signal: following.signal });
    if (!r.ok) { pre.textContent = `no output: ${(await r.json()).message}`; return; }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, { stream: true });
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    if (e.name !== "AbortError") pre.textContent += `\n[${e.message}]`;
  }
}

async function mapLimited(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i]).catch(() => null); }
  }));
  return out;
}

const pendingView = {
  async render() {
    const waiting = (await listAll(`${API}/tasks`, { taskStates: "Accepted" })).slice(0, 500);
    const results = await mapLimited(waiting, 8, (t) => api(`${API}/scheduler/results/${encodeURIComponent(t.id)}`));
    const groups = new Map();
    for (const r of results) {
      if (!r) continue;
      const key = r.placed ? "placed" : r.message || (r.pending ? "not tried yet" : "unknown");
      const g = groups.get(key) || { tasks: 0, refusedBy: r.refusedBy || {}, hosts: r.hostsConsidered || 0, jobs: new Set() };
      g.tasks += 1; g.jobs.add(r.jobId);
      groups.set(key, g);
    }
    const sorted = [...groups.entries()].sort((a, b) => b[1].tasks - a[1].tasks);
    main.replaceChildren(h("h2", {}, "Pending"),
      h("p", {}, `${waiting.length} tasks wait for placement`),
      table(["Why pending", "Tasks", "Jobs", "Hosts considered", "Hosts refused per rule"], sorted.map(([why, g]) => row(
        why, num(g.tasks), num(g.jobs.size), num(g.hosts),
        Object.entries(g.refusedBy).map(([rule, n]) => `${rule}: ${n}`).join(", ")))));
  },
};

const hosts = {
  live: true,
  async render() {
    const [agents, groups] = await Promise.all([api(`${API}/agents`), api(`${API}/instanceGroups`)]);
    const lifecycle = (name, to, label) => h("button", { type: "button", class: to === "active" ? "plain" : "danger", onclick: async () => {
      try { await api(`${API}/instanceGroups/${encodeURIComponent(name)}/lifecycle`, { method: "PUT", body: { state: to } }); message(`${name}: ${to}`); hosts.render(); }
      catch (e) { message(`${name}: ${e.message}`, "bad"); }
    } }, label);
    const pct = (u, r) => (r ? `${fmt(u)} / ${fmt(r)}` : "–");
    main.replaceChildren(h("h2", {}, "Hosts"), h("p", { id: "message", role: "status" }),
      h("section", {}, h("h3", {}, "Instance groups"),
        table(["Group", "Lifecycle", "Hosts", "Change"], groups.items.map((g) => row(
          g.id, g.lifecycleState, num(g.hosts),
          g.lifecycleState === "active" ? lifecycle(g.id, "phasedOut", `Phase out ${g.id}`) : lifecycle(g.id, "active", `Activate ${g.id}`))))),
      h("section", {}, h("h3", {}, "Hosts"),
        table(["Host", "Group", "Lifecycle", "Health", "CPU used", "Memory MB used", "Tasks"], agents.items.map((a) => row(
          a.id, a.instanceGroup, a.lifecycleState,
          h("span", { class: a.healthy ? "ok" : "bad" }, a.healthy ? "healthy" : `unhealthy: ${a.healthReasons.join("; ")}`),
          num(pct(a.usage.cpu, a.resources.cpu)), num(pct(a.usage.memoryMB, a.resources.memoryMB)), num(a.tasks.length))))));
  },
};

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const p of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

function histogramQuantile(samples, name, q) {
  const buckets = samples.filter((s) => s.name === `${name}_bucket`).map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : +s.labels.le, n: s.value })).sort((a, b) => a.le - b.le);
  const total = buckets.length ? buckets[buckets.length - 1].n : 0;
  if (!total) return NaN;
  let prevLe = 0, prevN = 0;
  for (const b of buckets) {
    if (b.n >= q * total) {
      if (b.le === Infinity) return prevLe;
      return prevLe + (b.le - prevLe) * ((q * total - prevN) / Math.max(b.n - prevN, 1e-9));
    }
    prevLe = b.le; prevN = b.n;
  }
  return NaN;
}

function quantile(values, q) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const slos = {
  live: true,
  async render() {
    const [health, text] = await Promise.all([api("/health"), fetch("/metrics").then((r) => r.text())]);
    const samples = parseMetrics(text);
    const starts = [];
    const failures = new Map();
    for (const t of state.tasks.values()) {
      const a = historyAt(t, "Accepted"), s = historyAt(t, "Started");
      if (a && s) starts.push((s - a) / 1000);
      if (t.status.state === "Finished" && t.status.reasonCode !== "normal") failures.set(t.status.reasonCode, (failures.get(t.status.reasonCode) || 0) + 1);
    }
    const hasMaster = samples.some((s) => s.name.startsWith("titus_master_"));
    const metric = (name) => samples.filter((s) => s.name === name);
    const failover = metric("titus_master_failover_seconds")[0];
    const lost = metric("titus_coord_leaderships_lost_total").reduce((a, s) => a + s.value, 0);
    const byReason = metric("titus_task_failures_total").filter((s) => s.value > 0);
    main.replaceChildren(h("h2", {}, "SLOs"),
      h("p", {}, `Leader: ${health.leader ? "known" : "none"} · store ${health.store} · ${health.healthyAgents}/${health.agents} hosts healthy`),
      h("section", {}, h("h3", {}, "Submit to start"),
        table(["Measured over", "Tasks", "p50 seconds", "p95 seconds"], [
          row("active tasks (observe stream)", num(starts.length), num(fmt(quantile(starts, 0.5), 2)), num(fmt(quantile(starts, 0.95), 2))),
          hasMaster ? row("every start since the master began (histogram)",
            num(metric("titus_task_submit_to_start_seconds_count").reduce((a, s) => a + s.value, 0)),
            num(fmt(histogramQuantile(samples, "titus_task_submit_to_start_seconds", 0.5), 2)),
            num(fmt(histogramQuantile(samples, "titus_task_submit_to_start_seconds", 0.95), 2))) : null])),
      h("section", {}, h("h3", {}, "Failovers"),
        hasMaster ? table(["Measure", "Value"], [
          row("last failover (elected to ready), seconds", num(failover ? fmt(failover.value, 3) : "–")),
          row("leaderships lost", num(lost))])
          : h("p", { class: "muted" }, "The master runs in another process: its failover figures are on its own /metrics.")),
      h("section", {}, h("h3", {}, "Task failures by reason"),
        table(["Reason", "Count"], (hasMaster ? byReason.map((s) => [s.labels.reason, s.value]) : [...failures.entries()])
          .sort((a, b) => b[1] - a[1]).map(([r, n]) => row(r, num(n))))));
  },
};

// ---- routing ------------------------------------------------------------------------------

const VIEWS = { cluster, jobs, job, pending: pendingView, hosts, slos };
let current = null;

async function route() {
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "cluster").split("?");
  const [name, ...rest] = path.split("/");
  const view = VIEWS[name] || cluster;
  current = view;
  for (const a of document.querySelectorAll("nav a")) {
    const target = a.getAttribute("href").slice(2);
    if (target === name || (name === "job" && target === "jobs")) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try {
    await view.render(new URLSearchParams(query || ""), decodeURIComponent(rest.join("/")));
  } catch (e) {
    main.replaceChildren(h("h2", {}, "Could not load this view"), h("p", { class: "bad" }, e.message));
  }
  document.title = `titus · ${main.querySelector("h2")?.textContent || ""}`;
}

window.addEventListener("hashchange", () => { route().then(() => main.focus()); });
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("titus-token", document.getElementById("token").value);
  document.getElementById("token").value = "";
  document.getElementById("live").textContent = "token set";
  connect();  // the stream again, as this caller
  route();
});
connect();
route();
