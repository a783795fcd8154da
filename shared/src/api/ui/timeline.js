// The persona timeline: a Gantt of each state's visit (entered, task
// scheduled → settled, from the run graph's steps) with the provider jobs under the visit of the
// persona that submitted them (created → settled).
import { el, seconds, short, TERMINAL } from "./dom.js";
import { taskOf } from "./graph.js";

export function renderTimeline(box, run, graph, jobs) {
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
      // Entered → task scheduled (queued, light), scheduled → settled.
      el("div", { class: "track" },
        step.scheduled_at ? bar(step.entered_at, step.scheduled_at, "queued", `${step.state}: entered, task not yet scheduled`) : null,
        bar(step.scheduled_at || step.entered_at, step.ended_at, cls, title))));
    for (const job of jobsOf.get(i) || []) rows.push(jobRow(job));
  });
  for (const job of unplaced) rows.push(jobRow(job));
  if (!rows.length) rows.push(el("p", { class: "muted", text: "No steps yet." }));
  const axis = el("div", { class: "axis" },
    ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { text: `+${seconds(span * f)}` })));
  box.replaceChildren(...rows, axis);
}
