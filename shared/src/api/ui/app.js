// The run dashboard: a list of runs and a page per run, drawn from the JSON
// API and polled while runs move. No framework and no build step: the file is
// served as written, as ES modules (dom.js, graph.js, timeline.js, tree.js, cost.js). Data goes
// into the page as text nodes only, never as HTML, so nothing a run records
// can run here.
import { TERMINAL, ago, badge, dateTime, el, safeUrl, short, time } from "./dom.js";
import { renderCost } from "./cost.js";
import { renderGraph } from "./graph.js";
import { renderTimeline } from "./timeline.js";
import { STARTED_FROM_TRACE, renderTree } from "./tree.js";

const KEY = "myloware.apiKey";
const POLL_MS = 1000;
const IDLE_POLL_MS = 5000;
const PAGE_SIZE = 25;
const $ = (id) => document.getElementById(id);

function show(view) {
  for (const id of ["login-view", "runs-view", "run-view", "trace-view"]) $(id).hidden = id !== view;
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
// The loop on screen, asked to refresh at once when the tab shows again.
let visible = null;
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && visible) visible();
});

/// Runs `step` now and again after the delay it returns, until the view
/// changes; one request at a time, none while the tab is hidden. An error
/// shows in `errorBox` and the loop goes on.
function poll(step, errorBox) {
  const mine = ++generation;
  let timer = null;
  let busy = false;
  let again = false;
  const tick = async () => {
    if (mine !== generation) return;
    if (document.hidden) {
      clearTimeout(timer);
      timer = setTimeout(tick, POLL_MS);
      return;
    }
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
  visible = tick;
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
  $("run-redrive").hidden = run.status !== "failed";
  renderLineage(evidence.lineage || {});
  renderGates(run, evidence.hitl_requests);
  renderTimeline($("gantt"), run, graph, evidence.provider_jobs);
  $("graph-name").textContent = graph.state_machine;
  renderGraph($("graph"), graph);
  renderCost($("cost"), evidence.cost);
  renderTree($("run-tree"), evidence.spans || []);
  renderOrigin(evidence.spans || []);
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
      const comment = el("textarea", { id: `comment-${request.gate}`, rows: "2", maxlength: "2000",
        placeholder: "Comment (optional): kept with the decision and passed to the next persona" });
      const review = el("div", { class: "review", id: `review-${request.gate}` });
      const decide = async (verb) => {
        if (verb === "reject" && !confirm(`Reject gate ${request.gate}? The run ends rejected.`)) return;
        approve.disabled = reject.disabled = true;
        try {
          // The API key is enough for the gate routes; no approval token
          // (which would travel in a URL) is needed here.
          await api(`/v1/hitl/${verb}/${encodeURIComponent(run.run_id)}/${encodeURIComponent(request.gate)}`, {
            method: "POST",
            body: JSON.stringify({ by: "dashboard", comment: comment.value }),
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
          el("span", { class: "actions" }, approve, reject),
          review,
          comment),
      );
      showReview(review, run, request.gate);
    }
  }
}

// What a waiting gate asks to approve: the ideas, or the video and its clips.
async function showReview(box, run, gate) {
  let page;
  try {
    page = await api(`/v1/hitl/approve/${encodeURIComponent(run.run_id)}/${encodeURIComponent(gate)}`);
  } catch (e) {
    box.textContent = `Could not load what the gate is about: ${e.message}`;
    return;
  }
  const r = page.review || {};
  const video = safeUrl(r.render_url);
  const clips = (r.clips || []).map(safeUrl).filter(Boolean);
  box.replaceChildren(...[
    r.title ? el("strong", { class: "title", text: r.title }) : null,
    r.ideas && r.ideas.length ? el("ol", { class: "ideas" }, ...r.ideas.map((idea) => el("li", { text: idea }))) : null,
    r.hook ? el("p", { class: "muted", text: `Hook: ${r.hook}` }) : null,
    video ? el("video", { class: "render", controls: "", preload: "metadata", src: video }) : null,
    clips.length
      ? el("details", {}, el("summary", { text: `${clips.length} clips` }),
        el("ol", {}, ...clips.map((url) => el("li", {}, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: short(url, 80) })))))
      : null,
    r.caption ? el("p", { class: "caption", text: r.caption }) : null,
    r.next && r.next.length ? el("p", { class: "muted", text: `Next: ${r.next.join(" → ")}` }) : null,
  ].filter(Boolean));
}

// The chat turn that started the run, linked from its graph span.
function renderOrigin(spans) {
  const graph = spans.find((s) => !s.parent_span_id && s.attributes && s.attributes[STARTED_FROM_TRACE]);
  const box = $("run-origin");
  if (!graph) return box.replaceChildren();
  const trace = graph.attributes[STARTED_FROM_TRACE];
  if (box.dataset.trace === trace) return;
  box.dataset.trace = trace;
  box.replaceChildren("started from ", el("a", { id: "chat-link", href: `#/traces/${encodeURIComponent(trace)}`, text: "a chat turn" }));
}

// ---- a chat turn: #/traces/<trace id> ---------------------------------

async function showTrace(traceId) {
  show("trace-view");
  page.id = null;
  generation++;
  $("trace-title").textContent = traceId;
  $("trace-error").textContent = "";
  try {
    const tree = await api(`/v1/traces/${encodeURIComponent(traceId)}`);
    renderTree($("trace-tree"), tree.spans);
    $("trace-runs").replaceChildren(...tree.runs.map((run) =>
      el("li", { "data-run-id": run.run_id },
        el("a", { href: `#/runs/${encodeURIComponent(run.run_id)}`, text: run.job_code }), " ", badge(run.status))));
  } catch (e) {
    if (e instanceof AuthError) return signIn("The API key was refused; enter it again.");
    $("trace-error").textContent = `Could not load the chat turn: ${e.message}`;
  }
}

// ---- the state machine, laid out in ranks ------------------------------

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

// "replay of TVG-… from Quinn", "replayed as …", "redriven from Alex": each
// other run a link to it.
function renderLineage(lineage) {
  const runLink = (link) => el("a", { href: `#/runs/${link.run_id}`, text: link.job_code });
  const parts = [];
  if (lineage.replay_of) parts.push(["replay of ", runLink(lineage.replay_of), ` from ${lineage.replay_of.from}`]);
  for (const r of lineage.replays || []) parts.push(["replayed as ", runLink(r), ` from ${r.from}`]);
  for (const r of lineage.redrives || []) parts.push([`redriven from ${r.from || "the start"}`]);
  const line = $("run-lineage");
  line.replaceChildren(...parts.flatMap((p, i) => (i ? [" · ", ...p] : p)));
  line.hidden = parts.length === 0;
}

$("run-redrive").addEventListener("click", async () => {
  if (!page.id) return;
  const button = $("run-redrive");
  button.disabled = true;
  try {
    await api(`/v1/runs/${encodeURIComponent(page.id)}/redrive`, { method: "POST", body: JSON.stringify({ by: "dashboard" }) });
    $("run-error").textContent = "";
    page.loop && page.loop.now();
  } catch (e) {
    $("run-error").textContent = `Redrive failed: ${e.message}`;
  } finally {
    button.disabled = false;
  }
});

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

// ---- routes: #/, #/runs/<id> and #/traces/<trace id> ---------------------

function route() {
  if (!sessionStorage.getItem(KEY)) return signIn();
  const match = location.hash.match(/^#\/runs\/([^/?#]+)/);
  const trace = location.hash.match(/^#\/traces\/([0-9a-fA-F]{32})$/);
  if (match) showRun(decodeURIComponent(match[1]));
  else if (trace) showTrace(trace[1]);
  else showRuns();
}

window.addEventListener("hashchange", route);
route();
