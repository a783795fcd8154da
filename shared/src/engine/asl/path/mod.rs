//! The JSONPath subset Step Functions accepts in `InputPath`, `OutputPath`, `ItemsPath`,
//! `Parameters` `.$` values and Choice `Variable`s, and the stricter *reference paths* of
//! `ResultPath`.
//!
//! AWS evaluates paths with Jayway JsonPath: a *definite* path (names and single indices only)
//! yields one value or fails; an *indefinite* one (wildcards, `..`, slices, unions, filters)
//! always yields an array, possibly empty. We keep that distinction, because whether a missing
//! value is an error (`States.Runtime`) or an empty list depends on it.

mod fields;
mod parse;
mod select;

pub use fields::{FieldPath, PathFieldError, ReferencePath, ResultPath};
pub(crate) use parse::scan_number;
pub(crate) use select::compare_numbers;

use std::fmt;

/// Which document a path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// `$`: the effective input.
    Input,
    /// `$$`: the context object.
    Context,
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
    definite: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Segment {
    Child(Selector),
    Descendant(Selector),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Selector {
    Name(String),
    Names(Vec<String>),
    Wildcard,
    Index(i64),
    Indices(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
    Filter(Box<Filter>),
}

/// A filter expression, `[?(…)]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    /// `@…`: relative to the element under test.
    Current(Vec<Segment>),
    /// `$…`: relative to the document root.
    Root(Vec<Segment>),
    Literal(serde_json::Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A path that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {message}")]
pub struct PathSyntaxError {
    /// The text that was parsed.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl Path {
    /// Parses a path starting with `$` or `$$`.
    pub fn parse(text: &str) -> Result<Path, PathSyntaxError> {
        let (root, segments) = parse::parse(text)?;
        let definite = segments.iter().all(Segment::is_definite);
        Ok(Path {
            text: text.to_owned(),
            root,
            segments,
            definite,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The document the path reads.
    pub fn root(&self) -> Root {
        self.root
    }

    /// Whether the path can only ever identify one node (and so fails when it is absent).
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// Whether the path is `$` (or `$$`) itself.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path in Jayway's normalised bracket form, as AWS quotes it in error causes:
    /// `$['a']['b'][0]`.
    pub fn normalized(&self) -> String {
        let mut out = String::from(match self.root {
            Root::Input => "$",
            Root::Context => "$$",
        });
        for segment in &self.segments {
            match segment {
                Segment::Child(sel) => sel.write_normalized(&mut out),
                Segment::Descendant(sel) => {
                    out.push_str("..");
                    sel.write_normalized(&mut out);
                }
            }
        }
        out
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Segment {
    fn is_definite(&self) -> bool {
        match self {
            Segment::Descendant(_) => false,
            Segment::Child(sel) => matches!(sel, Selector::Name(_) | Selector::Index(_)),
        }
    }
}

impl Selector {
    fn write_normalized(&self, out: &mut String) {
        use std::fmt::Write as _;
        let quoted = |n: &str| format!("'{}'", n.replace('\'', "\\'"));
        match self {
            Selector::Name(n) => {
                let _ = write!(out, "[{}]", quoted(n));
            }
            Selector::Names(ns) => {
                let list: Vec<String> = ns.iter().map(|n| quoted(n)).collect();
                let _ = write!(out, "[{}]", list.join(","));
            }
            Selector::Wildcard => out.push_str("[*]"),
            Selector::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Selector::Indices(is) => {
                let list: Vec<String> = is.iter().map(i64::to_string).collect();
                let _ = write!(out, "[{}]", list.join(","));
            }
            Selector::Slice(a, b) => {
                let show = |v: &Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
                let _ = write!(out, "[{}:{}]", show(a), show(b));
            }
            Selector::Filter(_) => out.push_str("[?]"),
        }
    }
}
