//! Counters, gauges and summaries the process keeps, rendered as Prometheus
//! text at `/metrics` and, in Lambda, as CloudWatch embedded-metric-format
//! (EMF) lines on stdout after each invocation (`emf_lines`). One registry
//! per process (the API server, each function); label values come from
//! closed sets (providers, statuses), never from user input, so the series
//! stay few.
//!
//! EMF (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! one JSON object per series that changed since the last flush, in the
//! namespace `MyloWare`, its dimensions the series' labels plus the
//! caller's (the function). CloudWatch sums what it is sent, so a counter
//! is sent as its increase since the last flush, a summary as the
//! observations made since then (at most `MAX_EMF_VALUES` of them, the
//! format's limit), a gauge as its value when it changed.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of the EMF lines.
pub const EMF_NAMESPACE: &str = "MyloWare";

/// The most values one EMF metric may carry.
pub const MAX_EMF_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    fn prometheus(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }

    fn emf_unit(self) -> &'static str {
        match self {
            Kind::Counter => "Count",
            Kind::Gauge => "None",
            Kind::Summary => "Seconds",
        }
    }
}

type Labels = Vec<(String, String)>;

/// One label set of a family.
#[derive(Debug, Default)]
struct Series {
    /// The running total (counter), the value (gauge) or the sum (summary).
    value: f64,
    /// Observations (summary).
    count: u64,
    /// The value last sent as EMF (counters and gauges).
    flushed: Option<f64>,
    /// Observations not yet sent as EMF (summary).
    pending: Vec<f64>,
}

/// A metric family: its help text, kind and series by label set.
#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    series: BTreeMap<Labels, Series>,
}

/// A set of metric families.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Registry {
    fn update(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        pairs: &[(&str, &str)],
        change: impl FnOnce(&mut Series),
    ) {
        let mut families = self.families.lock().expect("metrics lock");
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        let labels = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        change(family.series.entry(labels).or_default());
    }

    /// Adds `n` to a counter.
    pub fn count_n(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], n: u64) {
        self.update(name, help, Kind::Counter, pairs, |s| s.value += n as f64);
    }

    /// Adds `amount` (not negative: a counter only grows) to a counter.
    pub fn add(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], amount: f64) {
        let amount = amount.max(0.0);
        self.update(name, help, Kind::Counter, pairs, |s| s.value += amount);
    }

    /// Sets a gauge to `value`.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&str, &str)],
        value: f64,
    ) {
        self.update(name, help, Kind::Gauge, pairs, |s| s.value = value);
    }

    /// Records one observation of a duration.
    pub fn observe_seconds(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&str, &str)],
        seconds: f64,
    ) {
        self.update(name, help, Kind::Summary, pairs, |s| {
            s.value += seconds;
            s.count += 1;
            if s.pending.len() < MAX_EMF_VALUES {
                s.pending.push(seconds);
            }
        });
    }

    /// Every metric in the Prometheus text exposition format (a summary as
    /// `_sum` and `_count`).
    pub fn render(&self) -> String {
        let families = self.families.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.prometheus());
            for (labels, series) in &family.series {
                let labels = prometheus_labels(labels);
                let value = series.value;
                if family.kind == Kind::Summary {
                    let _ = writeln!(out, "{name}_sum{labels} {value}");
                    let _ = writeln!(out, "{name}_count{labels} {}", series.count);
                } else {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            }
        }
        out
    }

    /// The EMF lines of what changed since the last call, and marks it sent.
    /// `dimensions` are added to every line's labels (e.g. the function).
    pub fn emf(
        &self,
        namespace: &str,
        dimensions: &[(&str, &str)],
        timestamp_ms: i64,
    ) -> Vec<String> {
        let mut families = self.families.lock().expect("metrics lock");
        let mut lines = Vec::new();
        for (name, family) in families.iter_mut() {
            for (labels, series) in family.series.iter_mut() {
                let value = match family.kind {
                    Kind::Counter => {
                        let delta = series.value - series.flushed.unwrap_or(0.0);
                        series.flushed = Some(series.value);
                        if delta <= 0.0 {
                            continue;
                        }
                        Value::from(delta)
                    }
                    Kind::Gauge => {
                        if series.flushed == Some(series.value) {
                            continue;
                        }
                        series.flushed = Some(series.value);
                        Value::from(series.value)
                    }
                    Kind::Summary => match std::mem::take(&mut series.pending).as_slice() {
                        [] => continue,
                        [one] => Value::from(*one),
                        many => Value::from(many.to_vec()),
                    },
                };
                let mut line = Map::new();
                let mut names: Vec<&str> = Vec::new();
                let pairs = dimensions
                    .iter()
                    .copied()
                    .chain(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                for (k, v) in pairs {
                    if !names.contains(&k) {
                        names.push(k);
                    }
                    line.insert(k.to_owned(), Value::from(v));
                }
                let aws = json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [names],
                        "Metrics": [{ "Name": name, "Unit": family.kind.emf_unit() }],
                    }],
                });
                let mut object = Map::new();
                object.insert("_aws".into(), aws);
                object.extend(line);
                object.insert((*name).to_owned(), value);
                lines.push(Value::Object(object).to_string());
            }
        }
        lines
    }
}

fn prometheus_labels(pairs: &Labels) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The process's registry.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Adds one to a counter.
pub fn count(name: &'static str, help: &'static str, pairs: &[(&str, &str)]) {
    registry().count_n(name, help, pairs, 1);
}

/// Adds `n` to a counter.
pub fn count_n(name: &'static str, help: &'static str, pairs: &[(&str, &str)], n: u64) {
    registry().count_n(name, help, pairs, n);
}

/// Adds `amount` to a counter (dollars, minutes: counts that need not be whole).
pub fn add(name: &'static str, help: &'static str, pairs: &[(&str, &str)], amount: f64) {
    registry().add(name, help, pairs, amount);
}

/// Sets a gauge to `value`.
pub fn gauge(name: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
    registry().gauge(name, help, pairs, value);
}

/// Records one observation of a duration (as `_seconds_sum` and `_count`).
pub fn observe_seconds(
    name: &'static str,
    help: &'static str,
    pairs: &[(&str, &str)],
    seconds: f64,
) {
    registry().observe_seconds(name, help, pairs, seconds);
}

/// Every metric of the process in the Prometheus text exposition format.
pub fn render() -> String {
    registry().render()
}

/// The process's EMF lines (namespace `MyloWare`) of what changed since the
/// last call, with `function` as an extra dimension.
pub fn emf_lines(function: &str) -> Vec<String> {
    registry().emf(
        EMF_NAMESPACE,
        &[("function", function)],
        chrono::Utc::now().timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_summaries_render_as_prometheus_text() {
        count("mw_test_things_total", "Things.", &[("kind", "a\"b")]);
        count("mw_test_things_total", "Things.", &[("kind", "a\"b")]);
        observe_seconds("mw_test_wait_seconds", "Waits.", &[("gate", "ideate")], 1.5);
        gauge("mw_test_depth", "Depth.", &[("queue", "tasks")], 3.0);
        gauge("mw_test_depth", "Depth.", &[("queue", "tasks")], 2.0);
        count_n("mw_test_steps_total", "Steps.", &[], 5);
        let text = render();
        assert!(
            text.contains("# TYPE mw_test_things_total counter"),
            "{text}"
        );
        assert!(
            text.contains("mw_test_things_total{kind=\"a\\\"b\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("mw_test_wait_seconds_sum{gate=\"ideate\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("mw_test_wait_seconds_count{gate=\"ideate\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE mw_test_depth gauge"), "{text}");
        assert!(
            text.contains("mw_test_depth{queue=\"tasks\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("mw_test_steps_total 5\n"), "{text}");
    }

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
            .collect()
    }

    /// The line carrying metric `name`, if any.
    fn line<'a>(lines: &'a [Value], name: &str) -> Option<&'a Value> {
        lines.iter().find(|l| {
            l.pointer("/_aws/CloudWatchMetrics/0/Metrics/0/Name") == Some(&Value::from(name))
        })
    }

    #[test]
    fn emf_lines_follow_the_spec_and_send_what_changed_since_the_last_flush() {
        let registry = Registry::default();
        let ended = &[("project", "aismr"), ("status", "published")];
        registry.count_n("mw_runs_ended_total", "Ended.", ended, 2);
        registry.observe_seconds("mw_gate_wait_seconds", "Waits.", &[("gate", "ideate")], 1.5);
        registry.observe_seconds("mw_gate_wait_seconds", "Waits.", &[("gate", "ideate")], 0.5);
        registry.gauge("mw_queue_messages", "Depth.", &[("queue", "tasks")], 3.0);

        let first = parse(&registry.emf("MyloWare", &[("function", "worker")], 1_700_000_000_000));
        assert_eq!(first.len(), 3, "{first:?}");
        let ended_line = line(&first, "mw_runs_ended_total").expect("the counter");
        let aws = &ended_line["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000_i64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "MyloWare");
        assert_eq!(
            directive["Dimensions"],
            json!([["function", "project", "status"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{ "Name": "mw_runs_ended_total", "Unit": "Count" }])
        );
        // Every dimension and the metric itself are members of the object.
        assert_eq!(ended_line["function"], "worker");
        assert_eq!(ended_line["project"], "aismr");
        assert_eq!(ended_line["status"], "published");
        assert_eq!(ended_line["mw_runs_ended_total"], 2.0);
        let waits = line(&first, "mw_gate_wait_seconds").expect("the summary");
        assert_eq!(waits["mw_gate_wait_seconds"], json!([1.5, 0.5]));
        assert_eq!(
            waits.pointer("/_aws/CloudWatchMetrics/0/Metrics/0/Unit"),
            Some(&Value::from("Seconds"))
        );
        assert_eq!(
            line(&first, "mw_queue_messages").unwrap()["mw_queue_messages"],
            3.0
        );

        // Nothing changed: nothing is sent.
        assert!(registry
            .emf("MyloWare", &[("function", "worker")], 1)
            .is_empty());

        // A counter is sent as its increase, not its running total; a gauge
        // only when it moved; a summary with the new observations only.
        registry.count_n("mw_runs_ended_total", "Ended.", ended, 1);
        registry.gauge("mw_queue_messages", "Depth.", &[("queue", "tasks")], 3.0);
        registry.observe_seconds("mw_gate_wait_seconds", "Waits.", &[("gate", "ideate")], 4.0);
        let second = parse(&registry.emf("MyloWare", &[("function", "worker")], 2));
        assert_eq!(second.len(), 2, "{second:?}");
        assert_eq!(
            line(&second, "mw_runs_ended_total").unwrap()["mw_runs_ended_total"],
            1.0
        );
        assert_eq!(
            line(&second, "mw_gate_wait_seconds").unwrap()["mw_gate_wait_seconds"],
            4.0
        );
        assert!(line(&second, "mw_queue_messages").is_none());
        // The Prometheus view still shows the running totals.
        let text = registry.render();
        assert!(
            text.contains("mw_runs_ended_total{project=\"aismr\",status=\"published\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("mw_gate_wait_seconds_count{gate=\"ideate\"} 3\n"),
            "{text}"
        );
    }
}
