//! One poll's values kept by point rather than by name, for the hot path: the bus decodes a
//! device's registers into [`Values`] (one slot per value a profile can publish, laid out once
//! per profile by [`Layout`]) and the payload is written from the slots in key order
//! ([`telemetry::codec::encode_parts`]), the same bytes a [`telemetry::Reading`] of those
//! values encodes to, without a map or a key allocated per value. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use telemetry::codec::Parts;
use telemetry::{Reading, Value};

use crate::profile::Profile;
use crate::register::Sink;

/// Where each value of a profile goes: every name a poll can publish (points and their named
/// bits) in payload order, and each point's slots.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    names: Vec<String>,
    /// Per point: the slot of its own value, then those of its named bits in bit order.
    slots: Vec<Vec<usize>>,
}

impl Layout {
    pub fn new(profile: &Profile) -> Layout {
        let mut names: Vec<&str> = profile
            .points
            .iter()
            .flat_map(|p| std::iter::once(p.name.as_str()).chain(p.bits.values().map(String::as_str)))
            .collect();
        names.sort_unstable();
        // A name used twice (a profile that was never validated) shares one slot: the last
        // value decoded wins, as in a map.
        names.dedup();
        let slot = |name: &str| names.binary_search(&name).expect("every name was collected");
        let slots = profile
            .points
            .iter()
            .map(|p| std::iter::once(&p.name).chain(p.bits.values()).map(|n| slot(n)).collect())
            .collect();
        Layout { names: names.into_iter().map(str::to_string).collect(), slots }
    }
}

/// One poll's values and point errors. Cleared and filled again at every poll of a device, so
/// its slots are allocated once.
#[derive(Debug)]
pub struct Values {
    layout: Arc<Layout>,
    slots: Vec<Option<Value>>,
    filled: usize,
    /// Points that could not be read this poll, with the reason.
    pub errors: BTreeMap<String, String>,
}

impl Values {
    pub fn new(layout: Arc<Layout>) -> Values {
        Values { slots: vec![None; layout.names.len()], layout, filled: 0, errors: BTreeMap::new() }
    }

    pub fn clear(&mut self) {
        if self.filled > 0 {
            self.slots.iter_mut().for_each(|s| *s = None);
            self.filled = 0;
        }
        self.errors.clear();
    }

    /// Whether no value was read.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Whether point `point` (an index into the profile's points) has its value.
    pub fn has_point(&self, point: usize) -> bool {
        self.layout.slots.get(point).is_some_and(|s| self.slots[s[0]].is_some())
    }

    /// The values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + Clone {
        self.layout.names.iter().zip(&self.slots).filter_map(|(n, v)| v.as_ref().map(|v| (n.as_str(), v)))
    }

    /// The payload fields of these values as a reading of `device`.
    pub fn parts<'a>(
        &'a self,
        gateway: &'a str,
        device: &'a str,
        kind: &'a str,
        (session, seq, ts_ms): (u64, u64, i64),
    ) -> Parts<'a, impl Iterator<Item = (&'a str, &'a Value)> + Clone> {
        Parts {
            gateway,
            device,
            kind,
            session,
            seq,
            ts_ms,
            values: self.iter(),
            errors: &self.errors,
            replay: false,
        }
    }

    /// The values and errors copied into `reading`.
    pub fn copy_into(&self, reading: &mut Reading) {
        for (name, value) in self.iter() {
            reading.values.insert(name.to_string(), value.clone());
        }
        for (name, why) in &self.errors {
            reading.errors.insert(name.clone(), why.clone());
        }
    }
}

impl Sink for Values {
    fn value(&mut self, point: usize, k: usize, _name: &str, value: Value) {
        let slot = &mut self.slots[self.layout.slots[point][k]];
        if slot.is_none() {
            self.filled += 1;
        }
        *slot = Some(value);
    }

    fn error(&mut self, name: &str, why: String) {
        self.errors.insert(name.to_string(), why);
    }

    fn error_unless_known(&mut self, name: &str, why: impl FnOnce() -> String) {
        if !self.errors.contains_key(name) {
            self.errors.insert(name.to_string(), why());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::plan;
    use crate::register::{decode_into, encode_registers};
    use crate::sim::model::synthetic_profile;

    #[test]
    fn slots_encode_to_the_bytes_of_a_reading_with_the_same_values() {
        let mut profile = synthetic_profile("synthetic-40", 40);
        profile.points[0].bits = BTreeMap::from([(0, "a_bit".to_string()), (3, "zz_bit".to_string())]);
        let layout = Arc::new(Layout::new(&profile));
        let mut values = Values::new(layout);
        let mut reading = Reading::new("gw", "dev-1", "synthetic", 7, 3, 1_795_000_000_000);
        for (round, req) in plan(&profile).iter().enumerate() {
            let mut words = vec![0u16; req.count as usize];
            for &i in &req.points {
                let p = &profile.points[i];
                let at = (p.address - req.start) as usize;
                for (k, w) in encode_registers(p, 9.0 + i as f64 + round as f64).into_iter().enumerate() {
                    words[at + k] = w;
                }
            }
            decode_into(&profile, req, &words, &mut values);
            decode_into(&profile, req, &words, &mut reading);
        }
        values.error("p999", "exception 2: illegal data address".into());
        reading.errors.insert("p999".into(), "exception 2: illegal data address".into());
        assert!(reading.values.contains_key("a_bit") && reading.values.contains_key("zz_bit"));
        assert!(values.has_point(0) && !values.is_empty());

        let mut out = Vec::new();
        telemetry::codec::encode_parts(
            &values.parts("gw", "dev-1", "synthetic", (7, 3, 1_795_000_000_000)),
            &mut out,
        );
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(telemetry::encode(&reading)).unwrap());
        let mut copied = Reading::new("gw", "dev-1", "synthetic", 7, 3, 1_795_000_000_000);
        values.copy_into(&mut copied);
        assert_eq!(copied, reading);

        values.clear();
        assert!(values.is_empty() && !values.has_point(0) && values.errors.is_empty());
        assert_eq!(values.iter().count(), 0);
    }
}
