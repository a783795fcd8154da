// A trace as a tree, like `mw trace`: each span under its parent in start
// order, with its status, duration and error; a span opens to show its
// input and output. Spans still open say since when.
import { badge, el, seconds, short, time } from "./dom.js";

export const STARTED_FROM_TRACE = "myloware.started_from.trace_id";

function duration(span) {
  if (!span.end_time) return `open since ${time(span.start_time)}`;
  return seconds(new Date(span.end_time).getTime() - new Date(span.start_time).getTime());
}

function node(span, children) {
  const detail = [];
  if (span.input !== null && span.input !== undefined) detail.push(el("div", { class: "mono muted", text: `in: ${short(span.input, 600)}` }));
  if (span.output !== null && span.output !== undefined) detail.push(el("div", { class: "mono muted", text: `out: ${short(span.output, 600)}` }));
  const head = el("summary", {},
    el("span", { class: "name", text: span.name }), " ", badge(span.status), " ",
    el("span", { class: "muted", text: duration(span) }),
    span.error ? el("span", { class: "error", text: ` ${short(span.error, 200)}` }) : null);
  const kids = children(span.span_id);
  return el("li", { "data-span": span.name, "data-status": span.status },
    el("details", { open: kids.length > 0 && span.status !== "ok" ? "" : null }, head, ...detail),
    kids.length ? el("ul", {}, ...kids.map((k) => node(k, children))) : null);
}

// Draws `spans` into `box` (a redraw only when a span changed).
export function renderTree(box, spans) {
  const signature = JSON.stringify(spans.map((s) => [s.span_id, s.status, s.end_time]));
  if (box.dataset.signature === signature) return;
  box.dataset.signature = signature;
  const ids = new Set(spans.map((s) => s.span_id));
  const byParent = new Map();
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) && span.parent_span_id !== span.span_id ? span.parent_span_id : null;
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(span);
  }
  const children = (id) => byParent.get(id) || [];
  box.replaceChildren(spans.length ? el("ul", { class: "tree" }, ...children(null).map((s) => node(s, children))) : el("p", { class: "muted", text: "No spans recorded." }));
}
