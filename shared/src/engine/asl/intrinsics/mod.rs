//! Intrinsic functions (`States.Format(…)` and friends) used as `.$` values.
//!
//! Calls are parsed once, with the definition, so that a malformed call is a validation error
//! rather than a surprise halfway through a run; evaluation errors are `States.IntrinsicFailure`
//! (a path argument that matches nothing is `States.Runtime`, like any other `.$` path).

mod functions;

use super::context::ContextObject;
use super::error::StatesError;
use super::path::Path;
use serde_json::Value;
use std::fmt;

/// How deeply calls may nest, as in AWS.
const MAX_DEPTH: usize = 10;

/// A parsed intrinsic call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    func: Func,
    args: Vec<Arg>,
}

#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Literal(Value),
    /// A quoted string: its value, and its text with escapes kept (`States.Format` needs to tell
    /// `\{` from `{`).
    Str {
        value: String,
        raw: String,
    },
    Path(Path),
    Call(Box<Call>),
}

macro_rules! funcs {
    ($($variant:ident = $name:literal, $min:literal ..= $max:expr;)*) => {
        /// The intrinsic functions we implement.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Func { $($variant,)* }

        impl Func {
            fn from_name(name: &str) -> Option<Func> {
                match name { $($name => Some(Func::$variant),)* _ => None }
            }

            /// The full name, e.g. `States.Format`.
            pub(crate) fn name(self) -> &'static str {
                match self { $(Func::$variant => concat!("States.", $name),)* }
            }

            fn arity(self) -> (usize, usize) {
                match self { $(Func::$variant => ($min, $max),)* }
            }
        }
    };
}

funcs! {
    Format = "Format", 1..=usize::MAX;
    StringToJson = "StringToJson", 1..=1;
    JsonToString = "JsonToString", 1..=1;
    Array = "Array", 0..=usize::MAX;
    ArrayPartition = "ArrayPartition", 2..=2;
    ArrayContains = "ArrayContains", 2..=2;
    ArrayRange = "ArrayRange", 3..=3;
    ArrayGetItem = "ArrayGetItem", 2..=2;
    ArrayLength = "ArrayLength", 1..=1;
    ArrayUnique = "ArrayUnique", 1..=1;
    Base64Encode = "Base64Encode", 1..=1;
    Base64Decode = "Base64Decode", 1..=1;
    Hash = "Hash", 2..=2;
    JsonMerge = "JsonMerge", 3..=3;
    MathRandom = "MathRandom", 2..=3;
    MathAdd = "MathAdd", 2..=2;
    StringSplit = "StringSplit", 2..=2;
    Uuid = "UUID", 0..=0;
}

/// A malformed intrinsic call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid intrinsic function {text:?}: {message}")]
pub struct IntrinsicSyntaxError {
    /// The text that was parsed.
    pub text: String,
    /// What is wrong with it.
    pub message: String,
}

impl Call {
    /// Whether `text` looks like an intrinsic call (as opposed to a path).
    pub fn looks_like_call(text: &str) -> bool {
        text.trim_start().starts_with("States.")
    }

    /// Parses a call such as `States.Format('{} {}', $.a, States.UUID())`.
    pub fn parse(text: &str) -> Result<Call, IntrinsicSyntaxError> {
        let mut p = Parser {
            text,
            chars: text.chars().collect(),
            pos: 0,
        };
        p.skip_ws();
        let call = p.call(1)?;
        p.skip_ws();
        if p.pos != p.chars.len() {
            return Err(p.error("unexpected text after the call"));
        }
        Ok(call)
    }

    /// Evaluates the call; `$` is `input` and `$$` comes from `context`.
    pub fn eval(&self, input: &Value, context: &ContextObject<'_>) -> Result<Value, StatesError> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(match arg {
                Arg::Literal(v) => v.clone(),
                Arg::Str { value, .. } => Value::String(value.clone()),
                Arg::Path(path) => context.select(path, input).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The JsonPath argument '{path}' of {} could not be found in the input '{}'",
                        self.func.name(),
                        serde_json::to_string(input).unwrap_or_default()
                    ))
                })?,
                Arg::Call(call) => call.eval(input, context)?,
            });
        }
        let template_raw = match self.args.first() {
            Some(Arg::Str { raw, .. }) => Some(raw.as_str()),
            _ => None,
        };
        functions::apply(self.func, values, template_raw)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.func.name())?;
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match arg {
                Arg::Literal(v) => write!(f, "{v}")?,
                Arg::Str { raw, .. } => write!(f, "'{raw}'")?,
                Arg::Path(p) => write!(f, "{p}")?,
                Arg::Call(c) => write!(f, "{c}")?,
            }
        }
        f.write_str(")")
    }
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> IntrinsicSyntaxError {
        IntrinsicSyntaxError {
            text: self.text.to_owned(),
            message: format!("{message} at position {}", self.pos),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        self.chars[self.pos..]
            .iter()
            .take(s.len())
            .copied()
            .eq(s.chars())
    }

    fn call(&mut self, depth: usize) -> Result<Call, IntrinsicSyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("intrinsic functions may nest at most 10 deep"));
        }
        if !self.rest_starts_with("States.") {
            return Err(self.error("expected a function name starting with 'States.'"));
        }
        self.pos += "States.".len();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let func = Func::from_name(&name)
            .ok_or_else(|| self.error(&format!("unknown intrinsic function 'States.{name}'")))?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error("expected '('"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or ')'")),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(self.error(&format!(
                "{} takes {expected} argument(s), got {}",
                func.name(),
                args.len()
            )));
        }
        if func == Func::Format && matches!(args[0], Arg::Literal(_)) {
            return Err(self.error("the first argument of States.Format must be a string"));
        }
        Ok(Call { func, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, IntrinsicSyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => self.path(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some('S') if self.rest_starts_with("States.") => {
                Ok(Arg::Call(Box::new(self.call(depth + 1)?)))
            }
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.rest_starts_with(word) {
                        self.pos += word.len();
                        return Ok(Arg::Literal(value));
                    }
                }
                Err(self.error("expected a string, number, boolean, null, path or call"))
            }
        }
    }

    fn string(&mut self) -> Result<Arg, IntrinsicSyntaxError> {
        self.pos += 1;
        let (mut value, mut raw) = (String::new(), String::new());
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Arg::Str { value, raw });
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('\'' | '{' | '}' | '\\')) => {
                            value.push(c);
                            raw.push('\\');
                            raw.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(self.error("open escape '\\' in a string")),
                    }
                }
                Some(c) => {
                    value.push(c);
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Arg, IntrinsicSyntaxError> {
        let number;
        (self.pos, number) = super::path::scan_number(&self.chars, self.pos);
        number
            .map(|n| Arg::Literal(Value::Number(n)))
            .map_err(|e| self.error(&e))
    }

    /// A path runs to the next `,` or `)` outside brackets and quotes.
    fn path(&mut self) -> Result<Arg, IntrinsicSyntaxError> {
        let start = self.pos;
        let (mut depth, mut quote) = (0usize, None::<char>);
        while let Some(c) = self.peek() {
            match (quote, c) {
                (Some(_), '\\') => self.pos += 1,
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ')') if depth > 0 => depth -= 1,
                (None, ',' | ')') => break,
                _ => {}
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos.min(self.chars.len())]
            .iter()
            .collect();
        Path::parse(text.trim_end())
            .map(Arg::Path)
            .map_err(|e| self.error(&e.to_string()))
    }
}

#[cfg(test)]
mod tests;
