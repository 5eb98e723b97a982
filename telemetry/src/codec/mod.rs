//! The v1 JSON payload of a reading.
//!
//! `decode` checks every field itself rather than deriving, so a rejection names the field and
//! says what was wrong with it; ingest puts that sentence on the dead-letter topic.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use crate::reading::{Reading, Value};
use crate::PAYLOAD_VERSION;

/// Longest id (gateway, device) accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest point name accepted, in bytes.
pub const MAX_POINT_NAME_LEN: usize = 128;
/// Longest equipment kind accepted, in bytes.
pub const MAX_KIND_LEN: usize = 64;

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a JSON object")]
    NotObject,
    #[error("field `{field}` is missing")]
    Missing { field: String },
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("field `v`: payload version {found} is not supported (this ingest speaks {PAYLOAD_VERSION})")]
    UnsupportedVersion { found: String },
    /// An id, kind or point name longer than the format allows (a receiver may allow less).
    #[error("field `{field}`: {len} bytes is too long (at most {max} bytes)")]
    TooLong { field: String, len: usize, max: usize },
}

impl PayloadError {
    /// The field at fault, if the payload got as far as having fields.
    pub fn field(&self) -> Option<&str> {
        match self {
            PayloadError::Missing { field }
            | PayloadError::WrongType { field, .. }
            | PayloadError::Invalid { field, .. }
            | PayloadError::TooLong { field, .. } => Some(field),
            PayloadError::UnsupportedVersion { .. } => Some("v"),
            PayloadError::NotJson(_) | PayloadError::NotObject => None,
        }
    }
}

fn finite(v: &Value) -> bool {
    !matches!(v, Value::Float(f) if !f.is_finite())
}

struct JsonValue<'a>(&'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

/// The finite values, in key order, written straight from their owner (no copy of the keys:
/// gateways encode a thousand readings a second).
struct Values<I>(I);

impl<'a, I: Iterator<Item = (&'a str, &'a Value)> + Clone> Serialize for Values<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.clone().filter(|(_, v)| finite(v)) {
            m.serialize_entry(k, &JsonValue(v))?;
        }
        m.end()
    }
}

/// A reading's fields, borrowed from wherever they live: a [`Reading`], or a gateway's poll
/// that keeps its values by point and never builds one. `values` yields each value once, in
/// ascending key order (the order of a `BTreeMap<String, _>`).
#[derive(Clone, Debug)]
pub struct Parts<'a, I> {
    pub gateway: &'a str,
    pub device: &'a str,
    pub kind: &'a str,
    pub session: u64,
    pub seq: u64,
    pub ts_ms: i64,
    pub values: I,
    pub errors: &'a BTreeMap<String, String>,
    pub replay: bool,
}

struct Wire<'p, 'a, I>(&'p Parts<'a, I>);

impl<'a, I: Iterator<Item = (&'a str, &'a Value)> + Clone> Serialize for Wire<'_, 'a, I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("v", &PAYLOAD_VERSION)?;
        m.serialize_entry("gw", r.gateway)?;
        m.serialize_entry("dev", r.device)?;
        m.serialize_entry("kind", r.kind)?;
        m.serialize_entry("sid", &r.session)?;
        m.serialize_entry("seq", &r.seq)?;
        m.serialize_entry("ts", &r.ts_ms)?;
        m.serialize_entry("values", &Values(r.values.clone()))?;
        // JSON has no NaN or infinity: such a value travels as a point error, not as null.
        if r.values.clone().all(|(_, v)| finite(v)) {
            if !r.errors.is_empty() {
                m.serialize_entry("errors", r.errors)?;
            }
        } else {
            let mut errors: BTreeMap<&str, &str> =
                r.errors.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for (k, v) in r.values.clone() {
                if !finite(v) {
                    errors.entry(k).or_insert("not a finite number");
                }
            }
            m.serialize_entry("errors", &errors)?;
        }
        m.serialize_entry("replay", &r.replay)?;
        m.end()
    }
}

fn parts(r: &Reading) -> Parts<'_, impl Iterator<Item = (&str, &Value)> + Clone> {
    Parts {
        gateway: &r.gateway,
        device: &r.device,
        kind: &r.kind,
        session: r.session,
        seq: r.seq,
        ts_ms: r.ts_ms,
        values: r.values.iter().map(|(k, v)| (k.as_str(), v)),
        errors: &r.errors,
        replay: r.replay,
    }
}

/// The v1 JSON payload of `reading`.
pub fn encode(reading: &Reading) -> Vec<u8> {
    encode_with_capacity(reading, 0)
}

/// The same bytes as [`encode`], in a buffer of `capacity` bytes to begin with (the size of the
/// device's last payload, say), so a hot path does not grow it step by step.
pub fn encode_with_capacity(reading: &Reading, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    encode_parts(&parts(reading), &mut out);
    out
}

/// Appends the v1 JSON payload of a reading given by its parts to `out`: the bytes [`encode`]
/// writes for the same reading.
pub fn encode_parts<'a, I>(parts: &Parts<'a, I>, out: &mut Vec<u8>)
where
    I: Iterator<Item = (&'a str, &'a Value)> + Clone,
{
    serde_json::to_writer(out, &Wire(parts)).expect("a map of strings and numbers always serializes");
}

/// Parses and validates a v1 payload. Unknown fields are ignored.
pub fn decode(bytes: &[u8]) -> Result<Reading, PayloadError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Json::Object(obj) = json else {
        return Err(PayloadError::NotObject);
    };
    let get = |field: &str| obj.get(field).ok_or_else(|| PayloadError::Missing { field: field.into() });

    match get("v")? {
        Json::Number(n) if n.as_u64() == Some(PAYLOAD_VERSION) => {}
        other => return Err(PayloadError::UnsupportedVersion { found: other.to_string() }),
    }
    let gateway = id_field("gw", get("gw")?)?;
    let device = id_field("dev", get("dev")?)?;
    let kind = string_field("kind", get("kind")?)?;
    too_long("kind", &kind, MAX_KIND_LEN)?;
    if !is_kind(&kind) {
        return Err(invalid("kind", "must be lower-case letters, digits and `_`, starting with a letter"));
    }
    let session = u64_field("sid", get("sid")?)?;
    let seq = u64_field("seq", get("seq")?)?;
    let ts = u64_field("ts", get("ts")?)?;
    if ts == 0 || ts > i64::MAX as u64 {
        return Err(invalid("ts", "must be milliseconds since the epoch, above 0"));
    }

    let Json::Object(raw_values) = get("values")? else {
        return Err(wrong_type("values", "an object", get("values")?));
    };
    let mut values = BTreeMap::new();
    for (name, v) in raw_values {
        let field = || format!("values.{name}");
        too_long(&field(), name, MAX_POINT_NAME_LEN)?;
        if !is_point_name(name) {
            return Err(PayloadError::Invalid {
                field: field(),
                reason: "a point name must be letters, digits and `_`, not starting with a digit".into(),
            });
        }
        let value = match v {
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                // serde_json refuses numbers beyond f64, so this is always finite.
                None => Value::Float(n.as_f64().unwrap_or_default()),
            },
            Json::String(s) => Value::Text(s.clone()),
            other => {
                return Err(PayloadError::WrongType {
                    field: field(),
                    expected: "a number, a boolean or a string",
                    found: type_name(other),
                })
            }
        };
        values.insert(name.clone(), value);
    }

    let mut errors = BTreeMap::new();
    match obj.get("errors") {
        None | Some(Json::Null) => {}
        Some(Json::Object(raw)) => {
            for (name, why) in raw {
                let Json::String(why) = why else {
                    return Err(PayloadError::WrongType {
                        field: format!("errors.{name}"),
                        expected: "a string",
                        found: type_name(why),
                    });
                };
                errors.insert(name.clone(), why.clone());
            }
        }
        Some(other) => return Err(wrong_type("errors", "an object", other)),
    }

    let replay = match obj.get("replay") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("replay", "a boolean", other)),
    };

    Ok(Reading { gateway, device, kind, session, seq, ts_ms: ts as i64, values, errors, replay })
}

fn invalid(field: &str, reason: &str) -> PayloadError {
    PayloadError::Invalid { field: field.into(), reason: reason.into() }
}

fn wrong_type(field: &str, expected: &'static str, found: &Json) -> PayloadError {
    PayloadError::WrongType { field: field.into(), expected, found: type_name(found) }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a fractional number",
        Json::Number(n) if n.is_i64() && n.as_i64() < Some(0) => "a negative number",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn string_field(field: &str, v: &Json) -> Result<String, PayloadError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        other => Err(wrong_type(field, "a string", other)),
    }
}

fn u64_field(field: &str, v: &Json) -> Result<u64, PayloadError> {
    match v {
        Json::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or_default()),
        other => Err(wrong_type(field, "an unsigned integer", other)),
    }
}

fn too_long(field: &str, s: &str, max: usize) -> Result<(), PayloadError> {
    if s.len() > max {
        return Err(PayloadError::TooLong { field: field.into(), len: s.len(), max });
    }
    Ok(())
}

fn id_field(field: &str, v: &Json) -> Result<String, PayloadError> {
    let s = string_field(field, v)?;
    too_long(field, &s, MAX_ID_LEN)?;
    check_id(&s).map_err(|reason| invalid(field, reason))?;
    Ok(s)
}

/// Checks a gateway or device id: it becomes a topic level and a TSDB tag, so it must be
/// non-empty, short, and free of MQTT wildcards, separators and white space.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("must not be empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("must be at most 128 bytes");
    }
    if id
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#' | ',' | '=' | '"' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err("must not contain `/`, `+`, `#`, `,`, `=`, quotes, backslashes or white space");
    }
    Ok(())
}

/// An equipment kind: `elevator`, `water_meter`, ...
pub fn is_kind(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= MAX_KIND_LEN
}

/// A point name: usable as a CEL identifier and as a line-protocol field key.
pub fn is_point_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= MAX_POINT_NAME_LEN
}

#[cfg(test)]
mod tests;
