//! Evaluating a parsed path against a document (Jayway semantics, see the parent module).

use super::{CmpOp, Filter, Operand, Path, Root, Segment, Selector};
use serde_json::Value;
use std::cmp::Ordering;

impl Path {
    /// Selects from `input` (for `$`) or `context` (for `$$`; `None` when there is none).
    ///
    /// A definite path yields the single node or `None` when it is absent; an indefinite path
    /// always yields an array of the matches (possibly empty).
    pub fn select(&self, input: &Value, context: Option<&Value>) -> Option<Value> {
        let root = match self.root {
            Root::Input => input,
            Root::Context => context?,
        };
        let nodes = eval(&self.segments, root, root);
        if self.definite {
            match nodes.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            }
        } else {
            Some(Value::Array(nodes.into_iter().cloned().collect()))
        }
    }
}

fn eval<'v>(segments: &[Segment], start: &'v Value, root: &'v Value) -> Vec<&'v Value> {
    let mut nodes = vec![start];
    for segment in segments {
        let mut next = Vec::new();
        for node in nodes {
            match segment {
                Segment::Child(sel) => apply(sel, node, root, &mut next),
                Segment::Descendant(sel) => descend(sel, node, root, &mut next),
            }
        }
        nodes = next;
    }
    nodes
}

fn descend<'v>(sel: &Selector, node: &'v Value, root: &'v Value, out: &mut Vec<&'v Value>) {
    apply(sel, node, root, out);
    match node {
        Value::Object(map) => map.values().for_each(|v| descend(sel, v, root, out)),
        Value::Array(items) => items.iter().for_each(|v| descend(sel, v, root, out)),
        _ => {}
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

fn apply<'v>(sel: &Selector, node: &'v Value, root: &'v Value, out: &mut Vec<&'v Value>) {
    match (sel, node) {
        (Selector::Name(n), Value::Object(map)) => out.extend(map.get(n)),
        (Selector::Names(ns), Value::Object(map)) => {
            out.extend(ns.iter().filter_map(|n| map.get(n)))
        }
        (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Selector::Index(i), Value::Array(items)) => {
            out.extend(resolve_index(*i, items.len()).map(|i| &items[i]))
        }
        (Selector::Indices(is), Value::Array(items)) => out.extend(
            is.iter()
                .filter_map(|i| resolve_index(*i, items.len()).map(|i| &items[i])),
        ),
        (Selector::Slice(a, b), Value::Array(items)) => {
            let len = items.len() as i64;
            let clamp = |v: i64| (if v < 0 { len + v } else { v }).clamp(0, len) as usize;
            let from = a.map_or(0, clamp);
            let to = b.map_or(items.len(), clamp);
            if from < to {
                out.extend(items[from..to].iter());
            }
        }
        (Selector::Filter(f), Value::Array(items)) => {
            out.extend(items.iter().filter(|item| test(f, item, root)))
        }
        (Selector::Filter(f), Value::Object(map)) => {
            out.extend(map.values().filter(|item| test(f, item, root)))
        }
        _ => {}
    }
}

fn operand<'v>(op: &'v Operand, current: &'v Value, root: &'v Value) -> Option<&'v Value> {
    match op {
        Operand::Literal(v) => Some(v),
        Operand::Current(segs) => eval(segs, current, root).into_iter().next(),
        Operand::Root(segs) => eval(segs, root, root).into_iter().next(),
    }
}

fn test(filter: &Filter, current: &Value, root: &Value) -> bool {
    match filter {
        Filter::Or(parts) => parts.iter().any(|f| test(f, current, root)),
        Filter::And(parts) => parts.iter().all(|f| test(f, current, root)),
        Filter::Not(inner) => !test(inner, current, root),
        Filter::Exists(op) => operand(op, current, root).is_some(),
        Filter::Compare(l, op, r) => {
            let (Some(l), Some(r)) = (operand(l, current, root), operand(r, current, root)) else {
                return false;
            };
            match op {
                CmpOp::Eq => json_eq(l, r),
                CmpOp::Ne => !json_eq(l, r),
                CmpOp::Lt => compare(l, r) == Some(Ordering::Less),
                CmpOp::Le => matches!(compare(l, r), Some(Ordering::Less | Ordering::Equal)),
                CmpOp::Gt => compare(l, r) == Some(Ordering::Greater),
                CmpOp::Ge => matches!(compare(l, r), Some(Ordering::Greater | Ordering::Equal)),
            }
        }
    }
}

fn json_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b) == Some(Ordering::Equal),
        _ => l == r,
    }
}

fn compare(l: &Value, r: &Value) -> Option<Ordering> {
    match (l, r) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Numeric ordering that stays exact for integers.
pub(crate) fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

#[cfg(test)]
mod tests {
    use super::super::Path;
    use serde_json::{json, Value};

    fn sel(path: &str, doc: &Value) -> Option<Value> {
        Path::parse(path).unwrap().select(doc, None)
    }

    fn store() -> Value {
        json!({
            "a": {"b": 1, "c": [10, 20, 30], "d e": "space"},
            "items": [
                {"x": 1, "name": "one", "tags": ["t"]},
                {"x": 2, "name": "two"},
                {"x": 3, "name": "three"}
            ]
        })
    }

    #[test]
    fn definite_paths() {
        let doc = store();
        assert_eq!(sel("$", &doc), Some(doc.clone()));
        assert_eq!(sel("$.a.b", &doc), Some(json!(1)));
        assert_eq!(sel("$['a']['d e']", &doc), Some(json!("space")));
        assert_eq!(sel("$.a.c[0]", &doc), Some(json!(10)));
        assert_eq!(sel("$.a.c[-1]", &doc), Some(json!(30)));
        assert_eq!(sel("$.a.c[5]", &doc), None);
        assert_eq!(sel("$.missing", &doc), None);
        assert_eq!(sel("$.a.b.c", &doc), None);
        assert!(Path::parse("$.a.c[0]").unwrap().is_definite());
    }

    #[test]
    fn indefinite_paths() {
        let doc = store();
        assert_eq!(sel("$.items[*].x", &doc), Some(json!([1, 2, 3])));
        assert_eq!(sel("$.a.c[0:2]", &doc), Some(json!([10, 20])));
        assert_eq!(sel("$.a.c[1:]", &doc), Some(json!([20, 30])));
        assert_eq!(sel("$.a.c[-2:]", &doc), Some(json!([20, 30])));
        assert_eq!(sel("$.a.c[0,2]", &doc), Some(json!([10, 30])));
        assert_eq!(sel("$..x", &doc), Some(json!([1, 2, 3])));
        assert_eq!(sel("$.items[*].nope", &doc), Some(json!([])));
        assert_eq!(sel("$.a['b','d e']", &doc), Some(json!([1, "space"])));
        assert!(!Path::parse("$..x").unwrap().is_definite());
    }

    #[test]
    fn filters() {
        let doc = store();
        assert_eq!(sel("$.items[?(@.x == 2)].name", &doc), Some(json!(["two"])));
        assert_eq!(
            sel("$.items[?(@.x > 1)].name", &doc),
            Some(json!(["two", "three"]))
        );
        assert_eq!(sel("$.items[?(@.x < 2)].name", &doc), Some(json!(["one"])));
        assert_eq!(
            sel("$.items[?(@.name == 'three')].x", &doc),
            Some(json!([3]))
        );
        assert_eq!(sel("$.items[?(@.tags)].x", &doc), Some(json!([1])));
        assert_eq!(
            sel("$.items[?(@.x >= 2 && @.name != 'three')].x", &doc),
            Some(json!([2]))
        );
        assert_eq!(
            sel("$.items[?(@.x == 1 || @.x == 3)].x", &doc),
            Some(json!([1, 3]))
        );
        assert_eq!(sel("$.items[?(!@.tags)].x", &doc), Some(json!([2, 3])));
        assert_eq!(
            sel("$.items[?(@.x == $.a.b)].name", &doc),
            Some(json!(["one"]))
        );
        assert_eq!(
            sel("$.items[?(@.name > 'p')].name", &doc),
            Some(json!(["two", "three"]))
        );
    }

    #[test]
    fn context_root() {
        let p = Path::parse("$$.Execution.Id").unwrap();
        let ctx = json!({"Execution": {"Id": "e1"}});
        assert_eq!(p.select(&json!({}), Some(&ctx)), Some(json!("e1")));
        assert_eq!(p.select(&json!({}), None), None);
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            "a.b",
            "$.",
            "$.a[",
            "$.a[x]",
            "$['a",
            "$.a.length()",
            "$ .a",
            "$.a[?(@.x ==)]",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn normalized_form() {
        assert_eq!(
            Path::parse("$.a.b[0]").unwrap().normalized(),
            "$['a']['b'][0]"
        );
        assert_eq!(
            Path::parse("$$.Map.Item").unwrap().normalized(),
            "$$['Map']['Item']"
        );
    }
}
