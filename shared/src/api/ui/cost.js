// A run's cost panel: the total, then a row per persona (tokens), provider
// (clips, render minutes, posts) and AWS line, from the evidence's `cost`.
// Text nodes only, as everywhere on the page.
import { el } from "./dom.js";

export function usd(amount) {
  return amount !== 0 && Math.abs(amount) < 0.01 ? `$${amount.toFixed(4)}` : `$${amount.toFixed(2)}`;
}

function units(n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export function renderCost(box, cost) {
  if (!cost) {
    box.replaceChildren(el("p", { class: "muted", text: "No cost recorded." }));
    return;
  }
  const rows = [];
  for (const p of cost.personas) {
    rows.push(el("tr", { "data-kind": "llm" },
      el("td", { text: p.persona }),
      el("td", { text: `${p.prompt_tokens} + ${p.completion_tokens} tokens · ${p.calls} calls · ${p.model}` }),
      el("td", { class: "num", text: p.priced ? usd(p.usd) : "unpriced" })));
  }
  for (const p of cost.providers) {
    const credits = p.credits !== undefined && p.credits !== null ? ` · ${p.credits} credits` : "";
    rows.push(el("tr", { "data-kind": p.provider },
      el("td", { text: p.provider }),
      el("td", { text: `${units(p.units)} ${p.unit} of ${p.jobs} jobs${credits}` }),
      el("td", { class: "num", text: p.priced ? usd(p.usd) : "unpriced" })));
  }
  for (const line of cost.aws.lines) {
    rows.push(el("tr", { "data-kind": "aws", class: "muted" },
      el("td", { text: `AWS ${line.service}` }),
      el("td", { text: `${units(line.units)} ${line.unit} (${cost.aws.basis})` }),
      el("td", { class: "num", text: usd(line.usd) })));
  }
  box.replaceChildren(
    el("p", { id: "cost-total" },
      el("strong", { text: usd(cost.total_usd) }),
      el("span", { class: "muted", text: ` at the prices of ${cost.prices_dated}; AWS ${cost.aws.basis}: ${usd(cost.aws.usd)}` })),
    el("table", { class: "list" }, el("tbody", {}, rows)),
  );
}
