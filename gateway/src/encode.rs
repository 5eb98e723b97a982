//! The v1 JSON payload of a reading, byte for byte what [`telemetry::encode`] writes, without
//! its intermediate maps (a copy of every value's key, then of every error's) and into a
//! buffer sized for the reading: the pollers encode a thousand readings a second.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use telemetry::{Reading, Value, PAYLOAD_VERSION};

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

/// The finite values, in key order.
struct Values<'a>(&'a BTreeMap<String, Value>);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| finite(v)) {
            m.serialize_entry(k.as_str(), &JsonValue(v))?;
        }
        m.end()
    }
}

struct Wire<'a>(&'a Reading);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("v", &PAYLOAD_VERSION)?;
        m.serialize_entry("gw", &r.gateway)?;
        m.serialize_entry("dev", &r.device)?;
        m.serialize_entry("kind", &r.kind)?;
        m.serialize_entry("sid", &r.session)?;
        m.serialize_entry("seq", &r.seq)?;
        m.serialize_entry("ts", &r.ts_ms)?;
        m.serialize_entry("values", &Values(&r.values))?;
        // JSON has no NaN or infinity: such a value travels as a point error, not as null.
        if r.values.values().all(finite) {
            if !r.errors.is_empty() {
                m.serialize_entry("errors", &r.errors)?;
            }
        } else {
            let mut errors: BTreeMap<&str, &str> =
                r.errors.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for (k, v) in &r.values {
                if !finite(v) {
                    errors.entry(k.as_str()).or_insert("not a finite number");
                }
            }
            m.serialize_entry("errors", &errors)?;
        }
        m.serialize_entry("replay", &r.replay)?;
        m.end()
    }
}

/// The v1 payload of `reading` ([`telemetry::encode`]'s bytes), in a buffer of `capacity`
/// bytes to begin with (the size of the device's last payload, say).
pub fn encode(reading: &Reading, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, &Wire(reading)).expect("a map of strings and numbers always serializes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.0)].prop_map(Value::Float),
            "[a-z \"\\\\\u{e9}\n]{0,8}".prop_map(Value::Text),
        ]
    }

    proptest! {
        #[test]
        fn the_same_bytes_as_telemetry(
            values in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", value(), 0..12),
            errors in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", "[ -~]{0,12}", 0..4),
            replay in any::<bool>(),
            seq in any::<u64>(),
            capacity in 0usize..64,
        ) {
            let mut r = Reading::new("gw-1", "dev-\"x\"", "boiler", 1_700_000_000_000, seq, 1_700_000_000_123);
            r.values = values;
            r.errors = errors;
            r.replay = replay;
            prop_assert_eq!(encode(&r, capacity), telemetry::encode(&r));
        }
    }
}
