//! `mw trace <run_id|job code|trace id>`: the run tree — the graph span, a
//! child per persona step and gate wait, under each persona its LLM and tool
//! calls — with durations, status and errors; spans still open are marked
//! with how long they have been open, so a stuck run shows where it is stuck.
//! A chat turn's trace id (what `POST /v1/chat/brendan` answers) shows the
//! `brendan-chat` tree and the runs the turn started.
use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use myloware::domain::{Span, SpanId, SpanStatus, TraceId};
use myloware::pipeline::cost::SpanCost;
use myloware::pipeline::ChatTree;

use crate::cli::RunArgs;
use crate::connect::Reader;
use crate::output::{outln, print_json};

pub async fn run(args: RunArgs, reader: &Reader) -> anyhow::Result<ExitCode> {
    let tree = match (
        reader.run_tree(&args.run).await,
        args.run.parse::<TraceId>(),
    ) {
        (Ok(tree), _) => tree,
        // Not a run's: a chat turn's trace.
        (Err(_), Ok(trace_id)) => return chat(reader.chat_tree(trace_id).await?, args.json),
        (Err(e), Err(_)) => return Err(e),
    };
    if args.json {
        print_json(&tree)?;
        return Ok(ExitCode::SUCCESS);
    }
    let run = &tree.run;
    outln!(
        "run {} ({})  {}  trace {}",
        run.job_code,
        run.run_id,
        run.status,
        tree.trace_id
    );
    for line in tree.lineage.lines() {
        outln!("  {line}");
    }
    if tree.spans.is_empty() {
        outln!("no spans recorded for this run");
    } else {
        outln!(
            "{}",
            render(&tree.spans, &tree.costs, Utc::now()).trim_end()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn chat(tree: ChatTree, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&tree)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("chat turn  trace {}", tree.trace_id);
    outln!("{}", render(&tree.spans, &[], Utc::now()).trim_end());
    for run in &tree.runs {
        outln!(
            "started run {} ({})  {}  (mw trace {})",
            run.job_code,
            run.run_id,
            run.status,
            run.job_code
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The spans as an indented tree, children under their parent in start
/// order; a span whose parent is not among them is a root.
pub fn render(spans: &[Span], costs: &[SpanCost], now: DateTime<Utc>) -> String {
    let costs: HashMap<SpanId, &SpanCost> = costs.iter().map(|c| (c.span_id, c)).collect();
    let ids: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: HashMap<Option<SpanId>, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        let parent = span
            .parent_span_id
            .filter(|p| ids.contains_key(p) && *p != span.span_id);
        children.entry(parent).or_default().push(i);
    }
    let mut out = String::new();
    let roots = children.get(&None).cloned().unwrap_or_default();
    for (n, &root) in roots.iter().enumerate() {
        walk(
            spans,
            &costs,
            &children,
            root,
            "",
            n + 1 == roots.len(),
            true,
            now,
            &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn walk(
    spans: &[Span],
    costs: &HashMap<SpanId, &SpanCost>,
    children: &HashMap<Option<SpanId>, Vec<usize>>,
    at: usize,
    prefix: &str,
    last: bool,
    root: bool,
    now: DateTime<Utc>,
    out: &mut String,
) {
    let span = &spans[at];
    let (branch, next_prefix) = if root {
        (String::new(), String::new())
    } else if last {
        (format!("{prefix}└─ "), format!("{prefix}   "))
    } else {
        (format!("{prefix}├─ "), format!("{prefix}│  "))
    };
    let cost = costs
        .get(&span.span_id)
        .map(|c| format!("  {}", c.label()))
        .unwrap_or_default();
    out.push_str(&format!("{branch}{}{cost}\n", line(span, now)));
    if let Some(error) = &span.error {
        let first = error.lines().next().unwrap_or_default();
        let first: String = first.chars().take(200).collect();
        out.push_str(&format!("{next_prefix}   error: {first}\n"));
    }
    let kids = children
        .get(&Some(span.span_id))
        .cloned()
        .unwrap_or_default();
    for (n, &kid) in kids.iter().enumerate() {
        walk(
            spans,
            costs,
            children,
            kid,
            &next_prefix,
            n + 1 == kids.len(),
            false,
            now,
            out,
        );
    }
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "{:.1}s",
        (to - from).num_milliseconds().max(0) as f64 / 1000.0
    )
}

/// `name  status  duration  [tokens in/out]`; open spans show `… open Ns`.
fn line(span: &Span, now: DateTime<Utc>) -> String {
    let timing = match (span.status, span.end_time) {
        (SpanStatus::Open, _) | (_, None) => format!("… open {}", seconds(span.start_time, now)),
        (status, Some(end)) => format!("{status}  {}", seconds(span.start_time, end)),
    };
    let tokens = match (
        span.attributes.get("gen_ai.usage.input_tokens"),
        span.attributes.get("gen_ai.usage.output_tokens"),
    ) {
        (Some(i), Some(o)) => format!("  tokens {i}/{o}"),
        _ => String::new(),
    };
    let origin = match myloware::telemetry::otlp::started_from(span) {
        Some(turn) => format!(
            "  started from chat turn {} (trace {})",
            turn.span_id, turn.trace_id
        ),
        None => String::new(),
    };
    format!("{}  {timing}{tokens}{origin}", span.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use myloware::domain::{NewSpan, RunId, SpanEnd};

    #[test]
    fn the_tree_nests_children_and_marks_open_spans() {
        let run = RunId::new();
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let graph = Span::opened(
            NewSpan::in_run(run, "aismr-graph")
                .id(SpanId::graph(run))
                .started_at(at(0)),
        );
        let iggy = Span::opened(
            NewSpan::in_run(run, "aismr:iggy")
                .parent(SpanId::graph(run))
                .started_at(at(1)),
        )
        .closed(SpanEnd::ok(None).ended_at(at(3)));
        let tool = Span::opened(
            NewSpan::in_run(run, "execute_tool record_ideas")
                .parent(iggy.span_id)
                .started_at(at(2)),
        )
        .closed(SpanEnd::error("bad args").ended_at(at(2)));
        let gate = Span::opened(
            NewSpan::in_run(run, "aismr:gate:ideate")
                .parent(SpanId::graph(run))
                .started_at(at(4)),
        );
        let cost = SpanCost {
            span_id: tool.span_id,
            units: 12.0,
            unit: "clips".into(),
            usd: 3.6,
            priced: true,
        };
        let text = render(&[graph, iggy, tool, gate], &[cost], at(10));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "aismr-graph  … open 10.0s",
                "├─ aismr:iggy  ok  2.0s",
                "│  └─ execute_tool record_ideas  error  0.0s  12 clips $3.60",
                "│        error: bad args",
                "└─ aismr:gate:ideate  … open 6.0s",
            ]
        );
    }
}
