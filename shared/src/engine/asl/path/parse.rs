//! A small recursive-descent parser for the JSONPath subset (see the parent module).

use super::{CmpOp, Filter, Operand, PathSyntaxError, Root, Segment, Selector};
use serde_json::Value;

pub(super) fn parse(text: &str) -> Result<(Root, Vec<Segment>), PathSyntaxError> {
    let mut c = Cursor::new(text);
    if !c.eat('$') {
        return Err(c.error("a path must start with '$'"));
    }
    let root = if c.eat('$') {
        Root::Context
    } else {
        Root::Input
    };
    let segments = c.segments()?;
    if let Some(ch) = c.peek() {
        return Err(c.error(&format!("unexpected character {ch:?}")));
    }
    Ok((root, segments))
}

/// The JSON number whose first character is `chars[start]` (taken as
/// given: a digit or `-`), as paths and intrinsic calls both write numbers:
/// where it ends, and the number or why the text is not one.
pub(crate) fn scan_number(
    chars: &[char],
    start: usize,
) -> (usize, Result<serde_json::Number, String>) {
    let mut end = start + 1;
    while chars
        .get(end)
        .is_some_and(|c| c.is_ascii_digit() || ".eE+-".contains(*c))
    {
        end += 1;
    }
    let s: String = chars[start..end].iter().collect();
    let number = serde_json::from_str(&s).map_err(|_| format!("invalid number {s:?}"));
    (end, number)
}

struct Cursor<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

/// Characters that end a dot-notation name.
fn ends_name(ch: char) -> bool {
    ch.is_whitespace() || ".[]()<>=!&|,'\"".contains(ch)
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            text,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn error(&self, message: &str) -> PathSyntaxError {
        PathSyntaxError {
            path: self.text.to_owned(),
            message: format!("{message} at position {}", self.pos),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn eat(&mut self, ch: char) -> bool {
        if self.peek() == Some(ch) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars[self.pos..].iter().take(n).copied().eq(s.chars()) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, ch: char) -> Result<(), PathSyntaxError> {
        if self.eat(ch) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {ch:?}")))
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Segments until something that cannot start one.
    fn segments(&mut self) -> Result<Vec<Segment>, PathSyntaxError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.pos += 2;
                    let sel = if self.eat('[') {
                        self.bracket()?
                    } else {
                        self.dot_selector()?
                    };
                    out.push(Segment::Descendant(sel));
                }
                Some('.') => {
                    self.pos += 1;
                    out.push(Segment::Child(self.dot_selector()?));
                }
                Some('[') => {
                    self.pos += 1;
                    out.push(Segment::Child(self.bracket()?));
                }
                _ => return Ok(out),
            }
        }
    }

    fn dot_selector(&mut self) -> Result<Selector, PathSyntaxError> {
        if self.eat('*') {
            return Ok(Selector::Wildcard);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| !ends_name(c)) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a field name"));
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if self.peek() == Some('(') {
            return Err(self.error("JSONPath functions are not supported"));
        }
        Ok(Selector::Name(name))
    }

    /// After `[`: the bracket's contents and the closing `]`.
    fn bracket(&mut self) -> Result<Selector, PathSyntaxError> {
        self.skip_ws();
        let sel = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect('(')?;
                let filter = self.filter_or()?;
                self.skip_ws();
                self.expect(')')?;
                Selector::Filter(Box::new(filter))
            }
            Some('\'' | '"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Selector::Name(names.remove(0))
                } else {
                    Selector::Names(names)
                }
            }
            Some(c) if c == '-' || c == ':' || c.is_ascii_digit() => self.index_or_slice()?,
            _ => return Err(self.error("expected '*', '?(', a quoted name or an index")),
        };
        self.skip_ws();
        self.expect(']')?;
        Ok(sel)
    }

    fn index_or_slice(&mut self) -> Result<Selector, PathSyntaxError> {
        let first = self.opt_int()?;
        self.skip_ws();
        if self.eat(':') {
            self.skip_ws();
            let second = self.opt_int()?;
            return Ok(Selector::Slice(first, second));
        }
        let first = first.ok_or_else(|| self.error("expected an index"))?;
        let mut list = vec![first];
        while self.eat(',') {
            self.skip_ws();
            list.push(
                self.opt_int()?
                    .ok_or_else(|| self.error("expected an index"))?,
            );
            self.skip_ws();
        }
        Ok(if list.len() == 1 {
            Selector::Index(first)
        } else {
            Selector::Indices(list)
        })
    }

    fn opt_int(&mut self) -> Result<Option<i64>, PathSyntaxError> {
        let start = self.pos;
        self.eat('-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(None);
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        s.parse()
            .map(Some)
            .map_err(|_| self.error(&format!("invalid index {s:?}")))
    }

    fn quoted(&mut self) -> Result<String, PathSyntaxError> {
        let quote = self.peek().ok_or_else(|| self.error("expected a quote"))?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some('\\') => {
                    self.pos += 1;
                    let ch = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    out.push(ch);
                    self.pos += 1;
                }
                Some(ch) if ch == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(ch) => {
                    out.push(ch);
                    self.pos += 1;
                }
            }
        }
    }

    fn filter_or(&mut self) -> Result<Filter, PathSyntaxError> {
        let mut parts = vec![self.filter_and()?];
        loop {
            self.skip_ws();
            if !self.eat_str("||") {
                break;
            }
            parts.push(self.filter_and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn filter_and(&mut self) -> Result<Filter, PathSyntaxError> {
        let mut parts = vec![self.filter_unary()?];
        loop {
            self.skip_ws();
            if !self.eat_str("&&") {
                break;
            }
            parts.push(self.filter_unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn filter_unary(&mut self) -> Result<Filter, PathSyntaxError> {
        self.skip_ws();
        if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.filter_unary()?)));
        }
        if self.eat('(') {
            let inner = self.filter_or()?;
            self.skip_ws();
            self.expect(')')?;
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.eat_str("==") {
            CmpOp::Eq
        } else if self.eat_str("!=") {
            CmpOp::Ne
        } else if self.eat_str("<=") {
            CmpOp::Le
        } else if self.eat_str(">=") {
            CmpOp::Ge
        } else if self.eat('<') {
            CmpOp::Lt
        } else if self.eat('>') {
            CmpOp::Gt
        } else {
            return match left {
                Operand::Literal(_) => Err(self.error("a filter needs a comparison")),
                path => Ok(Filter::Exists(path)),
            };
        };
        self.skip_ws();
        let right = self.operand()?;
        Ok(Filter::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, PathSyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                Ok(Operand::Current(self.segments()?))
            }
            Some('$') => {
                self.pos += 1;
                Ok(Operand::Root(self.segments()?))
            }
            Some('\'' | '"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let number;
                (self.pos, number) = scan_number(&self.chars, self.pos);
                number
                    .map(|n| Operand::Literal(Value::Number(n)))
                    .map_err(|e| self.error(&e))
            }
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.eat_str(word) {
                        return Ok(Operand::Literal(value));
                    }
                }
                Err(self.error("expected '@', '$' or a literal in the filter"))
            }
        }
    }
}
