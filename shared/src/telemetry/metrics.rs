//! Counters and sums the process keeps, rendered as Prometheus text at
//! `/metrics`. One registry per process (the API server, each function);
//! label values come from closed sets (providers, statuses), never from
//! user input, so the series stay few.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// A metric family: its help text, type and samples by label set.
#[derive(Debug, Default)]
struct Family {
    help: &'static str,
    kind: &'static str,
    samples: BTreeMap<String, f64>,
}

fn registry() -> &'static Mutex<BTreeMap<&'static str, Family>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<&'static str, Family>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn add(
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    pairs: &[(&str, &str)],
    value: f64,
) {
    let mut registry = registry().lock().expect("metrics lock");
    let family = registry.entry(name).or_insert_with(|| Family {
        help,
        kind,
        samples: BTreeMap::new(),
    });
    *family.samples.entry(labels(pairs)).or_insert(0.0) += value;
}

/// Adds one to a counter.
pub fn count(name: &'static str, help: &'static str, pairs: &[(&str, &str)]) {
    add(name, help, "counter", pairs, 1.0);
}

/// Adds `n` to a counter.
pub fn count_n(name: &'static str, help: &'static str, pairs: &[(&str, &str)], n: u64) {
    add(name, help, "counter", pairs, n as f64);
}

/// Sets a gauge to `value`.
pub fn gauge(name: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
    let mut registry = registry().lock().expect("metrics lock");
    let family = registry.entry(name).or_insert_with(|| Family {
        help,
        kind: "gauge",
        samples: BTreeMap::new(),
    });
    family.samples.insert(labels(pairs), value);
}

/// Records one observation of a duration (as `_seconds_sum` and `_count`).
pub fn observe_seconds(
    name: &'static str,
    help: &'static str,
    pairs: &[(&str, &str)],
    seconds: f64,
) {
    add(name, help, "summary", pairs, seconds);
    let mut registry = registry().lock().expect("metrics lock");
    if let Some(family) = registry.get_mut(name) {
        *family
            .samples
            .entry(format!("#count{}", labels(pairs)))
            .or_insert(0.0) += 1.0;
    }
}

/// Every metric in the Prometheus text exposition format.
pub fn render() -> String {
    let registry = registry().lock().expect("metrics lock");
    let mut out = String::new();
    for (name, family) in registry.iter() {
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {}", family.kind);
        for (labels, value) in &family.samples {
            match labels.strip_prefix("#count") {
                Some(labels) => {
                    let _ = writeln!(out, "{name}_count{labels} {value}");
                }
                None if family.kind == "summary" => {
                    let _ = writeln!(out, "{name}_sum{labels} {value}");
                }
                None => {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            }
        }
    }
    out
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
}
