//! InfluxDB line protocol: the one encoder every writer uses, and the parser `rules backtest`
//! reads recorded files with.
//!
//! `measurement[,tag=value…] field=value[,field=value…] [timestamp]`, escaped as the InfluxDB
//! reference says:
//! - measurement: `,` and space are escaped with `\`;
//! - tag keys, tag values and field keys: `,`, `=` and space;
//! - string field values: `"` and `\`, inside double quotes.
//!
//! Choices the reference leaves to the writer, made once here:
//! - **Newlines**: line protocol has no newline in tags or fields, so `\n` and `\r` are written
//!   as spaces everywhere (a `\n` escape would read back as a backslash and an `n`).
//! - **A backslash that would read as an escape** in a name (the last character, or before a
//!   character that gets escaped) is written as `/`; any other backslash is written as is.
//! - A tag with an empty key or value and a field with an empty key are left out (InfluxDB
//!   rejects them); a float field that is not finite is left out; a line with no fields is not
//!   written at all.
//! - The timestamp is written as given: its unit is the precision the write names (ingest and
//!   the rules' reports write milliseconds).
//! - Floats keep a decimal point or exponent (`1.0`, `1e300`), so they stay floats.

use std::borrow::Cow;
use std::fmt::{self, Write};

use crate::Value;

/// A field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

impl<'a> From<&'a Value> for FieldValue<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Bool(b) => FieldValue::Bool(*b),
            Value::Int(i) => FieldValue::Int(*i),
            Value::Float(f) => FieldValue::Float(*f),
            Value::Text(s) => FieldValue::Str(Cow::Borrowed(s)),
        }
    }
}

impl<'a> From<&'a str> for FieldValue<'a> {
    fn from(s: &'a str) -> Self {
        FieldValue::Str(Cow::Borrowed(s))
    }
}

/// Where a name stands in the line, which decides what it escapes.
#[derive(Clone, Copy)]
enum Name {
    Measurement,
    /// Tag key, tag value or field key.
    Key,
}

impl Name {
    fn escapes(self, c: char) -> bool {
        match self {
            Name::Measurement => matches!(c, ',' | ' '),
            Name::Key => matches!(c, ',' | '=' | ' '),
        }
    }
}

fn without_newline(c: char) -> char {
    if matches!(c, '\n' | '\r') {
        ' '
    } else {
        c
    }
}

fn push_name(out: &mut String, s: &str, kind: Name) {
    let mut chars = s.chars().map(without_newline).peekable();
    while let Some(c) = chars.next() {
        if kind.escapes(c) {
            out.push('\\');
            out.push(c);
        } else if c == '\\' && chars.peek().is_none_or(|&next| kind.escapes(next)) {
            out.push('/');
        } else {
            out.push(c);
        }
    }
}

fn push_field_value(out: &mut String, value: &FieldValue<'_>) {
    match value {
        FieldValue::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        FieldValue::Int(i) => {
            let _ = write!(out, "{i}i");
        }
        FieldValue::UInt(u) => {
            let _ = write!(out, "{u}u");
        }
        FieldValue::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        FieldValue::Str(s) => {
            out.push('"');
            for c in s.chars().map(without_newline) {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
}

/// Starts a line in `out`: add tags, then fields, then [`Fields::end`] it with a timestamp; a
/// line dropped unended is taken back out.
pub fn line<'a>(out: &'a mut String, measurement: &str) -> Tags<'a> {
    let start = out.len();
    push_name(out, measurement, Name::Measurement);
    let empty = out.len() == start;
    Tags { line: Fields { out, start, fields: 0, empty, ended: false } }
}

/// A line taking tags.
pub struct Tags<'a> {
    line: Fields<'a>,
}

impl<'a> Tags<'a> {
    pub fn tag(self, key: &str, value: &str) -> Self {
        if !key.is_empty() && !value.is_empty() {
            let out = &mut *self.line.out;
            out.push(',');
            push_name(out, key, Name::Key);
            out.push('=');
            push_name(out, value, Name::Key);
        }
        self
    }

    pub fn field<'v>(self, key: &str, value: impl Into<FieldValue<'v>>) -> Fields<'a> {
        self.line.field(key, value)
    }
}

/// A line taking fields.
pub struct Fields<'a> {
    out: &'a mut String,
    start: usize,
    fields: usize,
    empty: bool,
    ended: bool,
}

impl Fields<'_> {
    pub fn field<'v>(mut self, key: &str, value: impl Into<FieldValue<'v>>) -> Self {
        let value = value.into();
        if key.is_empty() || matches!(value, FieldValue::Float(f) if !f.is_finite()) {
            return self;
        }
        self.out.push(if self.fields == 0 { ' ' } else { ',' });
        push_name(self.out, key, Name::Key);
        self.out.push('=');
        push_field_value(self.out, &value);
        self.fields += 1;
        self
    }

    /// Ends the line with `ts` and a newline. A line without fields (or measurement) is taken
    /// back out of the buffer; returns whether the line was written.
    pub fn end(mut self, ts: i64) -> bool {
        if self.fields == 0 || self.empty {
            return false;
        }
        let _ = writeln!(self.out, " {ts}");
        self.ended = true;
        true
    }
}

/// A line dropped before [`Fields::end`] is taken back out of the buffer.
impl Drop for Fields<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.out.truncate(self.start);
        }
    }
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue<'static>)>,
    pub timestamp: Option<i64>,
}

/// Why a line is not line protocol; says which part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn error(message: impl Into<String>) -> ParseError {
    ParseError(message.into())
}

/// The index of the first `stop` character not escaped with `\`, or the length.
fn scan(s: &str, stop: impl Fn(char) -> bool) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if stop(c) => return i,
            _ => {}
        }
    }
    s.len()
}

/// Undoes [`push_name`]: `\` before an escaped character drops; any other `\` stays.
fn unescape(s: &str, kind: Name) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next)) if kind.escapes(next) => {
                out.push(next);
                chars.next();
            }
            ('\\', Some(next)) => {
                out.extend(['\\', next]);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn parse_field_value(raw: &str) -> Result<FieldValue<'static>, ParseError> {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut text = String::with_capacity(quoted.len());
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('\\', Some(next @ ('"' | '\\'))) => {
                    text.push(next);
                    chars.next();
                }
                _ => text.push(c),
            }
        }
        return Ok(FieldValue::Str(Cow::Owned(text)));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Bool(false)),
        _ => {}
    }
    if let Some(int) = raw.strip_suffix('i') {
        return int.parse().map(FieldValue::Int).map_err(|_| error(format!("`{raw}` is not an integer")));
    }
    if let Some(uint) = raw.strip_suffix('u') {
        return uint
            .parse()
            .map(FieldValue::UInt)
            .map_err(|_| error(format!("`{raw}` is not an unsigned integer")));
    }
    match raw.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(FieldValue::Float(f)),
        _ => Err(error(format!("`{raw}` is not a value"))),
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<ParsedLine, ParseError> {
    let head_end = scan(line, |c| c == ' ');
    let (head, mut rest) = (&line[..head_end], line.get(head_end + 1..).unwrap_or_default());
    let measurement_end = scan(head, |c| c == ',');
    let measurement = unescape(&head[..measurement_end], Name::Measurement);
    if measurement.is_empty() {
        return Err(error("no measurement"));
    }
    let mut tags = Vec::new();
    let mut tag_set = head.get(measurement_end + 1..);
    while let Some(set) = tag_set {
        let end = scan(set, |c| c == ',');
        let tag = &set[..end];
        let eq = scan(tag, |c| c == '=');
        if eq == tag.len() {
            return Err(error(format!("tag `{tag}` has no `=`")));
        }
        tags.push((unescape(&tag[..eq], Name::Key), unescape(&tag[eq + 1..], Name::Key)));
        tag_set = set.get(end + 1..);
    }
    let mut fields = Vec::new();
    loop {
        let eq = scan(rest, |c| matches!(c, '=' | ' ' | ','));
        if !rest[eq..].starts_with('=') {
            return Err(error(format!("field `{}` has no `=`", &rest[..eq])));
        }
        let key = unescape(&rest[..eq], Name::Key);
        let value = &rest[eq + 1..];
        let value_end = match value.strip_prefix('"') {
            Some(quoted) => {
                let close = scan(quoted, |c| c == '"');
                if close == quoted.len() {
                    return Err(error(format!("field `{key}`: string has no closing `\"`")));
                }
                close + 2
            }
            None => value.find([',', ' ']).unwrap_or(value.len()),
        };
        fields.push((key, parse_field_value(&value[..value_end])?));
        rest = &value[value_end..];
        match rest.chars().next() {
            Some(',') => rest = &rest[1..],
            _ => break,
        }
    }
    let timestamp = match rest.strip_prefix(' ') {
        Some(ts) => Some(ts.parse().map_err(|_| error(format!("timestamp `{ts}` is not an integer")))?),
        None if rest.is_empty() => None,
        None => return Err(error(format!("unexpected `{rest}` after the fields"))),
    };
    Ok(ParsedLine { measurement, tags, fields, timestamp })
}

#[cfg(test)]
mod tests;
