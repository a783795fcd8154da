//! From JSON to the model: the states that contain other states (Parallel branches and Map
//! item processors), each parsed as its own scope.

use super::diagnostics::Fields;
use super::parse::Builder;
use super::{MapState, MaxConcurrency, ParallelState, ScopeId, Seconds};
use serde_json::Value;

impl Builder {
    pub(super) fn parallel(&mut self, f: &Fields<'_>) -> Option<ParallelState> {
        let mut branches = Vec::new();
        match f.get("Branches") {
            Some(Value::Array(items)) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    let location = format!("{} > branch {i}", f.location);
                    match item.as_object() {
                        Some(obj) => branches.push(self.scope(obj, &location, &location, &[])),
                        None => self.diag.push(&location, "a branch must be an object"),
                    }
                }
            }
            Some(_) => self
                .diag
                .push(f.location, "Branches must be a non-empty array"),
            None => self.diag.push(f.location, "Branches is missing"),
        }
        Some(ParallelState {
            input_path: self.field_path(f, "InputPath"),
            parameters: self.template(f, "Parameters"),
            branches,
            handling: self.result_handling(f),
            transition: self.transition(f)?,
        })
    }

    pub(super) fn map(&mut self, f: &Fields<'_>) -> Option<MapState> {
        let processor = match (f.get("ItemProcessor"), f.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.diag.push(
                    f.location,
                    "a Map state cannot have both ItemProcessor and Iterator",
                );
                None
            }
            (None, None) => {
                self.diag.push(
                    f.location,
                    "a Map state needs an ItemProcessor (or Iterator)",
                );
                None
            }
            (Some(v), None) => self.processor(f, v, "ItemProcessor"),
            (None, Some(v)) => self.processor(f, v, "Iterator"),
        };
        if f.has("ItemSelector") && f.has("Parameters") {
            self.diag.push(
                f.location,
                "a Map state cannot have both ItemSelector and Parameters",
            );
        }
        let item_selector = match self.template(f, "ItemSelector") {
            Some(t) => Some(t),
            None => self.template(f, "Parameters"),
        };
        let max_concurrency = match self.seconds(f, "MaxConcurrency", 0) {
            None => MaxConcurrency::Fixed(0),
            Some(Seconds::Fixed(n)) => MaxConcurrency::Fixed(n),
            Some(Seconds::Path(p)) => MaxConcurrency::Path(p),
        };
        let items_path = if f.has("ItemsPath") {
            Some(self.reference_path(f, "ItemsPath")?)
        } else {
            None
        };
        Some(MapState {
            input_path: self.field_path(f, "InputPath"),
            items_path,
            item_selector,
            max_concurrency,
            handling: self.result_handling(f),
            transition: self.transition(f)?,
            processor: processor?,
        })
    }

    fn processor(&mut self, f: &Fields<'_>, value: &Value, key: &str) -> Option<ScopeId> {
        let Some(obj) = value.as_object() else {
            self.diag
                .push(f.location, format!("{key} must be an object"));
            return None;
        };
        if let Some(config) = obj.get("ProcessorConfig") {
            let mode = config
                .get("Mode")
                .and_then(Value::as_str)
                .unwrap_or("INLINE");
            if mode != "INLINE" {
                self.diag.push(
                    f.location,
                    format!("{key}.ProcessorConfig.Mode {mode:?} is not supported (only INLINE)"),
                );
            }
        }
        let extra: &[&str] = if key == "ItemProcessor" {
            &["ProcessorConfig"]
        } else {
            &[]
        };
        Some(self.scope(obj, &format!("{} > {key}", f.location), f.location, extra))
    }
}
