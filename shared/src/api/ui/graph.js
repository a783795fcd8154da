// The state machine drawn as SVG from its ASL definition: ranks follow the
// normal transitions from StartAt, states only a Catch reaches get a column
// beside the state that catches; the current state, the states passed and the
// transitions taken are marked.
import { svg } from "./dom.js";

/// What each state sends to the worker: `{task: "persona"|"gate", persona|gate}`.
export function taskOf(definition, stateName) {
  const state = definition && definition.States && definition.States[stateName];
  const body = state && state.Parameters && state.Parameters.MessageBody;
  if (!body || typeof body !== "object") return null;
  return { task: body.task, persona: body.persona, gate: body.gate };
}

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

export function renderGraph(box, graph) {
  const definition = graph.definition || {};
  const states = definition.States || {};
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
  box.replaceChildren(root);
}
