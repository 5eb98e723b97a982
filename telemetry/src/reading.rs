//! One reading: every point of one device from one poll.

use std::collections::BTreeMap;
use std::fmt;

/// The value of one point. Integers stay integers so counters and fault codes are exact.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value as a number, if it is one (`true` is 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

/// One message on `telemetry/{partition}/{gateway}/{device}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Gateway id (`gw`).
    pub gateway: String,
    /// Device id (`dev`).
    pub device: String,
    /// Equipment kind: `elevator`, `boiler`, `water_meter`, `charging_pile`, ...
    pub kind: String,
    /// The gateway's session (`sid`): its start time in ms, so `seq` restarts are told apart.
    pub session: u64,
    /// Counts per device within a session.
    pub seq: u64,
    /// Poll time, milliseconds since the epoch.
    pub ts_ms: i64,
    pub values: BTreeMap<String, Value>,
    /// Points that could not be read this poll, with the reason.
    pub errors: BTreeMap<String, String>,
    /// Sent from the gateway's spool after an outage.
    pub replay: bool,
}

impl Reading {
    pub fn new(gateway: &str, device: &str, kind: &str, session: u64, seq: u64, ts_ms: i64) -> Self {
        Reading {
            gateway: gateway.to_string(),
            device: device.to_string(),
            kind: kind.to_string(),
            session,
            seq,
            ts_ms,
            values: BTreeMap::new(),
            errors: BTreeMap::new(),
            replay: false,
        }
    }

    pub fn with_value(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.values.insert(name.to_string(), value.into());
        self
    }

    pub fn with_error(mut self, name: &str, reason: &str) -> Self {
        self.errors.insert(name.to_string(), reason.to_string());
        self
    }
}
