// The run dashboard: a list of runs and a page per run, drawn from the JSON
// API and polled while runs move. No framework and no build step: the file is
// served as written. Data goes into the page as text nodes only, never as
// HTML, so nothing a run records can run here.
"use strict";

(() => {
  const KEY = "myloware.apiKey";
  const POLL_MS = 1000;
  const IDLE_POLL_MS = 5000;
  const PAGE_SIZE = 25;
  const TERMINAL = new Set(["published", "failed", "rejected", "cancelled", "timed_out"]);
  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") Object.assign(node.style, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  function badge(status) {
    return el("span", { class: `status ${status || ""}`, text: status || "—" });
  }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function dateTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
  }

  function ago(iso) {
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${Math.round(s)}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    if (s < 86400) return `${Math.round(s / 3600)}h ago`;
    return dateTime(iso);
  }

  function seconds(ms) {
    const s = ms / 1000;
    return s < 10 ? `${s.toFixed(1)}s` : s < 600 ? `${Math.round(s)}s` : `${(s / 60).toFixed(1)}m`;
  }

  function short(value, max) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (!text) return "";
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function safeUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function show(view) {
    for (const id of ["login-view", "runs-view", "run-view"]) $(id).hidden = id !== view;
    document.body.dataset.view = view;
    $("signout").hidden = view === "login-view";
  }

  // ---- the API -----------------------------------------------------------

  class AuthError extends Error {}

  let lastHeard = 0;

  async function api(path, options = {}) {
    const headers = Object.assign(
      { accept: "application/json", "x-api-key": sessionStorage.getItem(KEY) || "" },
      options.body ? { "content-type": "application/json" } : {},
      options.headers || {},
    );
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401) throw new AuthError((body && body.error && body.error.message) || "unauthorized");
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    lastHeard = Date.now();
    return body;
  }

  setInterval(() => {
    const live = $("live");
    if (!lastHeard) return;
    const stale = Date.now() - lastHeard > 5000;
    live.classList.toggle("stale", stale);
    live.textContent = stale ? `no answer since ${time(new Date(lastHeard).toISOString())}` : `live · ${time(new Date(lastHeard).toISOString())}`;
  }, 500);

  // ---- polling: one loop for the view on screen --------------------------

  let generation = 0;

  /// Runs `step` now and again after the delay it returns, until the view
  /// changes; one request at a time. An error shows in `errorBox` and the
  /// loop goes on.
  function poll(step, errorBox) {
    const mine = ++generation;
    let timer = null;
    let busy = false;
    let again = false;
    const tick = async () => {
      if (mine !== generation) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      clearTimeout(timer);
      let delay = POLL_MS;
      try {
        delay = (await step()) || POLL_MS;
        errorBox.textContent = "";
      } catch (e) {
        if (mine === generation && e instanceof AuthError) {
          busy = false;
          return signIn("The API key was refused; enter it again.");
        }
        if (mine === generation) errorBox.textContent = `Could not refresh: ${e.message}`;
      }
      busy = false;
      if (mine !== generation) return;
      if (again) {
        again = false;
        tick();
      } else {
        timer = setTimeout(tick, delay);
      }
    };
    tick();
    return { now: tick };
  }

  // ---- sign in -----------------------------------------------------------

  function signIn(message) {
    generation++;
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = message || "";
    $("api-key").value = "";
    show("login-view");
    $("api-key").focus();
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("login-submit").disabled = true;
    try {
      await api("/v1/runs?limit=1");
      $("api-key").value = "";
      route();
    } catch (e) {
      signIn(e instanceof AuthError ? "That key was refused." : `The API did not answer: ${e.message}`);
    } finally {
      $("login-submit").disabled = false;
    }
  });

  $("signout").addEventListener("click", () => signIn("The key was forgotten."));

  // ---- the runs list -----------------------------------------------------

  const list = { older: [], cursor: null, firstNext: null, loop: null };

  function runsQuery(after) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if ($("status-filter").value) q.set("status", $("status-filter").value);
    if ($("project-filter").value) q.set("project", $("project-filter").value);
    if (after) q.set("after", after);
    return `/v1/runs?${q}`;
  }

  async function refreshRuns() {
    const page = await api(runsQuery(null));
    const seen = new Set(page.runs.map((r) => r.run_id));
    const runs = page.runs.concat(list.older.filter((r) => !seen.has(r.run_id)));
    if (!list.older.length) list.cursor = page.next;
    const tbody = $("runs-table").querySelector("tbody");
    tbody.replaceChildren(
      ...runs.map((run) =>
        el(
          "tr",
          { class: "link", "data-run-id": run.run_id, onclick: () => (location.hash = `#/runs/${run.run_id}`) },
          el("td", {}, el("a", { href: `#/runs/${run.run_id}`, text: run.job_code })),
          el("td", { text: run.project }),
          el("td", {}, badge(run.status)),
          el("td", { title: run.created_at, text: ago(run.created_at) }),
          el("td", { title: run.updated_at, text: ago(run.updated_at) }),
          el("td", { class: "mono muted", text: run.run_id }),
        ),
      ),
    );
    $("runs-empty").hidden = runs.length > 0;
    $("runs-more").hidden = !list.cursor;
    return POLL_MS * 2;
  }

  function resetList() {
    list.older = [];
    list.cursor = null;
  }

  $("status-filter").addEventListener("change", () => { resetList(); list.loop && list.loop.now(); });
  $("project-filter").addEventListener("change", () => { resetList(); list.loop && list.loop.now(); });
  $("runs-more").addEventListener("click", async () => {
    if (!list.cursor) return;
    try {
      const page = await api(runsQuery(list.cursor));
      list.older = list.older.concat(page.runs);
      list.cursor = page.next;
      list.loop && list.loop.now();
    } catch (e) {
      $("runs-error").textContent = `Could not load older runs: ${e.message}`;
    }
  });

  async function loadProjects() {
    try {
      const response = await fetch("/health", { cache: "no-store" });
      const health = await response.json();
      const select = $("project-filter");
      if (select.options.length > 1) return;
      for (const p of (health.projects || []).slice().sort()) select.append(el("option", { text: p }));
    } catch (_) {
      // The filter stays at "any".
    }
  }

  function showRuns() {
    show("runs-view");
    document.title = "MyloWare · runs";
    loadProjects();
    list.loop = poll(refreshRuns, $("runs-error"));
  }

  // ---- a run -------------------------------------------------------------

  const page = { id: null, gates: "", loop: null };

  /// What each state sends to the worker: `{task: "persona"|"gate", persona|gate}`.
  function taskOf(definition, stateName) {
    const state = definition && definition.States && definition.States[stateName];
    const body = state && state.Parameters && state.Parameters.MessageBody;
    if (!body || typeof body !== "object") return null;
    return { task: body.task, persona: body.persona, gate: body.gate };
  }

  async function refreshRun() {
    const shown = page.id;
    const id = encodeURIComponent(shown);
    const [evidence, graph] = await Promise.all([api(`/v1/runs/${id}/evidence`), api(`/v1/runs/${id}/graph`)]);
    if (shown !== page.id) return POLL_MS;
    const run = evidence.run;
    document.title = `MyloWare · ${run.job_code} · ${run.status}`;
    $("run-title").textContent = `${run.job_code}`;
    const status = $("run-status");
    status.textContent = run.status;
    status.className = `status ${run.status}`;
    status.dataset.status = run.status;
    $("run-meta").textContent = `${run.project} · ${run.providers_mode} · started ${dateTime(run.created_at)} · ${run.run_id}`;
    $("run-cancel").hidden = TERMINAL.has(run.status);
    renderGates(run, evidence.hitl_requests);
    renderGantt(run, graph, evidence.provider_jobs);
    renderGraph(graph);
    renderArtifacts(evidence.artifacts);
    renderWebhooks(evidence.webhook_events);
    const result = run.result !== null && run.result !== undefined ? run.result : run.error ? { error: run.error } : null;
    $("run-result").textContent = result ? JSON.stringify(result, null, 2) : "Not finished yet.";
    return TERMINAL.has(run.status) ? IDLE_POLL_MS : POLL_MS;
  }

  function renderGates(run, requests) {
    const signature = JSON.stringify([run.status, requests.map((r) => [r.gate, r.decision])]);
    if (signature === page.gates) return;
    page.gates = signature;
    const box = $("gates");
    box.replaceChildren();
    for (const request of requests) {
      if (request.decision) {
        box.append(
          el("p", { class: "muted", "data-gate": request.gate },
            "Gate ", el("code", { text: request.gate }), " ", badge(request.decision),
            ` by ${request.decided_by || "?"} at ${time(request.decided_at)}`,
            request.comment ? ` — ${request.comment}` : ""),
        );
      } else if (!TERMINAL.has(run.status)) {
        const approve = el("button", { id: `approve-${request.gate}`, class: "approve", type: "button", text: "Approve" });
        const reject = el("button", { id: `reject-${request.gate}`, class: "danger", type: "button", text: "Reject" });
        const outcome = el("span", { class: "error" });
        const decide = async (verb) => {
          if (verb === "reject" && !confirm(`Reject gate ${request.gate}? The run ends rejected.`)) return;
          approve.disabled = reject.disabled = true;
          try {
            // The API key is enough for the gate routes; no approval token
            // (which would travel in a URL) is needed here.
            await api(`/v1/hitl/${verb}/${encodeURIComponent(run.run_id)}/${encodeURIComponent(request.gate)}`, {
              method: "POST",
              body: JSON.stringify({ by: "dashboard" }),
            });
            page.loop && page.loop.now();
          } catch (e) {
            outcome.textContent = `${verb} failed: ${e.message}`;
            approve.disabled = reject.disabled = false;
          }
        };
        approve.addEventListener("click", () => decide("approve"));
        reject.addEventListener("click", () => decide("reject"));
        box.append(
          el("div", { class: "gate", "data-gate": request.gate },
            el("strong", {}, "Gate ", el("code", { text: request.gate }), " is waiting for a decision"),
            el("span", { class: "muted", text: `since ${time(request.requested_at)}` }),
            outcome,
            el("span", { class: "actions" }, approve, reject)),
        );
      }
    }
  }

  function renderGantt(run, graph, jobs) {
    const box = $("gantt");
    const steps = graph.steps.filter((s) => s.state_type !== "Succeed");
    const start = new Date(run.created_at).getTime();
    const times = [Date.now()];
    if (TERMINAL.has(run.status)) {
      times.length = 0;
      times.push(new Date(run.updated_at).getTime());
      for (const s of steps) if (s.ended_at) times.push(new Date(s.ended_at).getTime());
      for (const j of jobs) if (j.settled_at) times.push(new Date(j.settled_at).getTime());
    }
    const end = Math.max(start + 1000, ...times);
    const span = end - start;
    const pct = (iso) => Math.min(100, Math.max(0, ((new Date(iso).getTime() - start) / span) * 100));
    const bar = (from, to, cls, title) => {
      const left = pct(from);
      const right = to ? pct(to) : 100;
      return el("div", { class: `span ${cls}`, title, style: { left: `${left}%`, width: `${Math.max(0, right - left)}%` } });
    };

    // Each provider job goes under the visit of its persona's state that
    // was open when the job was created.
    const personaOf = (step) => (taskOf(graph.definition, step.state) || {}).persona;
    const jobsOf = new Map();
    const unplaced = [];
    for (const job of jobs) {
      const created = new Date(job.created_at).getTime();
      let home = -1;
      steps.forEach((s, i) => {
        if (personaOf(s) !== job.persona) return;
        if (new Date(s.entered_at).getTime() <= created) home = i;
      });
      if (home < 0) unplaced.push(job);
      else jobsOf.set(home, (jobsOf.get(home) || []).concat(job));
    }

    const rows = [];
    const jobRow = (job) => {
      const label = `${job.provider} ${short(job.job_id, 14)}`;
      const took = job.settled_at ? ` · ${seconds(new Date(job.settled_at) - new Date(job.created_at))}` : "";
      return el("div", { class: "row job", "data-job": job.job_id },
        el("div", { class: "label", title: `${job.provider} job ${job.job_id} (${job.persona}) ${job.status}`, text: label }),
        el("div", { class: "track" }, bar(job.created_at, job.settled_at, job.status, `${label}: ${job.status}${took}`)));
    };
    steps.forEach((step, i) => {
      const task = taskOf(graph.definition, step.state) || {};
      const cls = step.status === "running" && task.task === "gate" ? "waiting" : step.status;
      const what = task.persona ? `persona ${task.persona}` : task.gate ? `gate ${task.gate}` : step.state_type;
      const took = step.ended_at ? seconds(new Date(step.ended_at) - new Date(step.entered_at)) : "so far";
      const title = `${step.state} (${what}): ${step.status}, ${took}` +
        (step.attempts > 1 ? `, ${step.attempts} attempts` : "") + (step.error ? `, ${step.error}` : "");
      rows.push(el("div", { class: "row step", "data-state": step.state, "data-status": step.status },
        el("div", { class: "label", title, text: step.state }),
        el("div", { class: "track" }, bar(step.entered_at, step.ended_at, cls, title))));
      for (const job of jobsOf.get(i) || []) rows.push(jobRow(job));
    });
    for (const job of unplaced) rows.push(jobRow(job));
    if (!rows.length) rows.push(el("p", { class: "muted", text: "No steps yet." }));
    const axis = el("div", { class: "axis" },
      ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { text: `+${seconds(span * f)}` })));
    box.replaceChildren(...rows, axis);
  }

  // ---- the state machine, laid out in ranks ------------------------------

  function edgesOf(state) {
    const out = [];
    if (state.Next) out.push({ to: state.Next, kind: "next" });
    if (state.Default) out.push({ to: state.Default, kind: "next" });
    for (const c of state.Choices || []) if (c.Next) out.push({ to: c.Next, kind: "next" });
    for (const c of state.Catch || []) if (c.Next) out.push({ to: c.Next, kind: "catch" });
    return out;
  }

  /// Ranks (rows) follow the normal transitions from StartAt; states only a
  /// Catch reaches start a column beside the state that catches.
  function layout(definition) {
    const states = definition.States || {};
    const names = Object.keys(states);
    const place = new Map();
    const taken = new Set();
    const put = (name, rank, column) => {
      let col = column;
      while (taken.has(`${rank}:${col}`)) col++;
      taken.add(`${rank}:${col}`);
      place.set(name, { rank, col });
    };
    const walk = (first, rank, column) => {
      const queue = [[first, rank, column]];
      while (queue.length) {
        const [name, r, c] = queue.shift();
        if (place.has(name) || !states[name]) continue;
        put(name, r, c);
        const at = place.get(name);
        for (const e of edgesOf(states[name])) if (e.kind === "next") queue.push([e.to, at.rank + 1, at.col]);
      }
    };
    if (definition.StartAt) walk(definition.StartAt, 0, 0);
    for (let changed = true; changed;) {
      changed = false;
      const placed = [...place.entries()].sort((a, b) => a[1].rank - b[1].rank || a[1].col - b[1].col);
      for (const [name, at] of placed) {
        for (const e of edgesOf(states[name])) {
          if (e.kind === "catch" && !place.has(e.to) && states[e.to]) {
            walk(e.to, at.rank + 1, at.col + 1);
            changed = true;
          }
        }
      }
    }
    let last = Math.max(0, ...[...place.values()].map((p) => p.rank));
    for (const name of names) if (!place.has(name)) put(name, ++last, 0);
    return place;
  }

  function renderGraph(graph) {
    const definition = graph.definition || {};
    const states = definition.States || {};
    $("graph-name").textContent = graph.state_machine;
    const place = layout(definition);
    const W = 132, H = 36, GX = 28, GY = 26, PAD = 14;
    const cols = Math.max(1, ...[...place.values()].map((p) => p.col + 1));
    const ranks = Math.max(1, ...[...place.values()].map((p) => p.rank + 1));
    const width = PAD * 2 + cols * W + (cols - 1) * GX;
    const height = PAD * 2 + ranks * H + (ranks - 1) * GY;
    const x = (p) => PAD + p.col * (W + GX);
    const y = (p) => PAD + p.rank * (H + GY);

    const lastStep = new Map();
    for (const s of graph.steps) lastStep.set(s.state, s);
    const current = new Set(graph.current);
    const takenEdges = new Set();
    for (let i = 1; i < graph.steps.length; i++) takenEdges.add(`${graph.steps[i - 1].state}→${graph.steps[i].state}`);

    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `state machine ${graph.state_machine}` });
    root.append(svg("defs", {},
      svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));

    const edgeLayer = svg("g", { class: "edges" });
    for (const [name, state] of Object.entries(states)) {
      const from = place.get(name);
      for (const e of edgesOf(state)) {
        const to = place.get(e.to);
        if (!from || !to) continue;
        let d;
        if (to.rank > from.rank && to.col === from.col) {
          d = `M ${x(from) + W / 2} ${y(from) + H} L ${x(to) + W / 2} ${y(to)}`;
        } else if (to.rank > from.rank) {
          const sx = to.col > from.col ? x(from) + W : x(from);
          const sy = y(from) + H / 2;
          const tx = x(to) + W / 2, ty = y(to);
          d = `M ${sx} ${sy} C ${tx} ${sy}, ${tx} ${sy}, ${tx} ${ty}`;
        } else {
          const sx = x(from) + W, sy = y(from) + H / 2;
          const tx = x(to) + W, ty = y(to) + H / 2;
          const bend = Math.max(sx, tx) + GX;
          d = `M ${sx} ${sy} C ${bend} ${sy}, ${bend} ${ty}, ${tx} ${ty}`;
        }
        const cls = `edge ${e.kind}` + (takenEdges.has(`${name}→${e.to}`) ? " taken" : "");
        edgeLayer.append(svg("path", { class: cls, d, "marker-end": "url(#arrow)", "data-from": name, "data-to": e.to }));
      }
    }
    root.append(edgeLayer);

    for (const [name, state] of Object.entries(states)) {
      const p = place.get(name);
      const step = lastStep.get(name);
      const task = taskOf(definition, name);
      const cls = ["node", step ? step.status : "", current.has(name) ? "current" : ""].join(" ").trim();
      const kind = task && task.persona ? `persona ${task.persona}` : task && task.gate ? `gate ${task.gate}` : state.Type;
      root.append(svg("g", { class: cls, "data-state": name, transform: `translate(${x(p)} ${y(p)})` },
        svg("title", { text: `${name} (${kind})${step ? `: ${step.status}` : ""}` }),
        svg("rect", { width: W, height: H, rx: state.Type === "Choice" ? 14 : 6 }),
        svg("text", { x: W / 2, y: H / 2 - 5, text: name }),
        svg("text", { class: "kind", x: W / 2, y: H / 2 + 9, text: kind })));
    }
    $("graph").replaceChildren(root);
  }

  function renderArtifacts(artifacts) {
    const tbody = $("artifacts").querySelector("tbody");
    tbody.replaceChildren(
      ...artifacts.map((a) => {
        const url = safeUrl(a.url);
        return el("tr", { "data-type": a.type },
          el("td", { title: a.created_at, text: time(a.created_at) }),
          el("td", {}, el("code", { text: a.type })),
          el("td", { text: a.persona || "" }),
          el("td", { text: a.provider || "" }),
          el("td", { class: "detail" },
            url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: short(url, 80) }) : null,
            url ? el("br") : null,
            el("span", { class: "mono muted", title: JSON.stringify(a.metadata), text: short(a.metadata, 220) })),
        );
      }),
    );
  }

  function renderWebhooks(events) {
    const tbody = $("webhooks").querySelector("tbody");
    tbody.replaceChildren(
      ...events.map((w) =>
        el("tr", { "data-signature": w.signature_status },
          el("td", { title: w.created_at, text: time(w.created_at) }),
          el("td", { text: w.provider }),
          el("td", { class: "mono", text: w.provider_job_id || "" }),
          el("td", {}, badge(w.signature_status)),
          el("td", {}, badge(w.status)),
          el("td", { class: "error", text: w.error || "" })),
      ),
    );
    $("webhooks-empty").hidden = events.length > 0;
  }

  $("run-cancel").addEventListener("click", async () => {
    if (!page.id || !confirm("Cancel this run?")) return;
    try {
      await api(`/v1/runs/${encodeURIComponent(page.id)}/cancel`, { method: "POST", body: JSON.stringify({ by: "dashboard" }) });
      page.loop && page.loop.now();
    } catch (e) {
      $("run-error").textContent = `Cancel failed: ${e.message}`;
    }
  });

  function showRun(id) {
    show("run-view");
    if (page.id !== id) {
      page.gates = "";
      for (const box of ["gates", "gantt", "graph"]) $(box).replaceChildren();
      $("run-title").textContent = id;
      $("run-status").textContent = "";
    }
    page.id = id;
    page.loop = poll(refreshRun, $("run-error"));
  }

  // ---- routes: #/ and #/runs/<id> ----------------------------------------

  function route() {
    if (!sessionStorage.getItem(KEY)) return signIn();
    const match = location.hash.match(/^#\/runs\/([^/?#]+)/);
    if (match) showRun(decodeURIComponent(match[1]));
    else showRuns();
  }

  window.addEventListener("hashchange", route);
  route();
})();
