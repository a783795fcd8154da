//! The JSON log line: one object per event with `timestamp`, `level`,
//! `message`, the fields of every span in scope (outermost first, so an
//! inner span's field wins), the event's own fields (which win over all),
//! `target`, and `span` (the innermost span's name, unless the event has a
//! `span` field of its own).
//!
//! tracing-subscriber's own JSON format nests span fields under `span` and
//! `spans`; a run's context (`run_id`, `persona`, …) belongs at the top level,
//! where `mw logs` and CloudWatch Logs Insights filter. Span fields are read
//! as the `JsonFields` formatter stored them, so the layer using this format
//! must be built with `.fmt_fields(JsonFields::new())`.
use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of the JSON log lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::from(meta.level().as_str()));
        // Keeps `message` third; filled (or dropped) with the event's fields.
        line.insert("message".into(), Value::Null);
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>() {
                    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                        line.extend(fields);
                    }
                }
                innermost = Some(span.name());
            }
        }
        event.record(&mut EventFields(&mut line));
        if line.get("message").is_some_and(Value::is_null) {
            line.remove("message");
        }
        line.insert("target".into(), Value::from(meta.target()));
        if let Some(name) = innermost {
            line.entry("span").or_insert_with(|| Value::from(name));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values.
struct EventFields<'a>(&'a mut Map<String, Value>);

impl EventFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // `log` records bridged into tracing carry their origin as
        // `log.target`, `log.file`, …: noise on a line.
        if !name.starts_with("log.") {
            self.0.insert(name.to_owned(), value);
        }
    }
}

impl Visit for EventFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        String::from_utf8(captured.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn span_fields_land_at_the_top_level_and_the_innermost_wins() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(captured.clone())
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(a = 1, "outside");
            let run = tracing::error_span!(
                "run",
                run_id = "r-1",
                project = "aismr",
                state = "running",
                persona = tracing::field::Empty
            );
            let _run = run.enter();
            run.record("persona", "riley");
            let job = tracing::info_span!("submit", state = "submitting", provider = "kieai");
            let _job = job.enter();
            tracing::warn!(provider_job_id = %"job-9", ok = true, n = 3_u64, "clip job submitted");
            tracing::info!(state = "event-wins", "overridden");
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 3, "{lines:?}");

        let outside = &lines[0];
        assert_eq!(outside["message"], "outside");
        assert_eq!(outside["a"], 1);
        assert_eq!(outside["level"], "INFO");
        assert!(outside.get("run_id").is_none() && outside.get("span").is_none());

        let inside = &lines[1];
        let keys: Vec<&str> = inside
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&keys[..3], ["timestamp", "level", "message"], "{inside}");
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["message"], "clip job submitted");
        assert_eq!(inside["run_id"], "r-1");
        assert_eq!(inside["project"], "aismr");
        assert_eq!(inside["persona"], "riley", "recorded after the span opened");
        assert_eq!(inside["provider"], "kieai");
        assert_eq!(inside["state"], "submitting", "the inner span wins");
        assert_eq!(inside["provider_job_id"], "job-9");
        assert_eq!(inside["ok"], true);
        assert_eq!(inside["n"], 3);
        assert_eq!(inside["span"], "submit");
        assert!(inside.get("spans").is_none(), "nothing nested: {inside}");
        chrono::DateTime::parse_from_rfc3339(inside["timestamp"].as_str().unwrap())
            .expect("an RFC 3339 timestamp");

        assert_eq!(lines[2]["state"], "event-wins", "the event's field wins");
    }
}
