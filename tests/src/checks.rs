//! What the end-to-end tests assert on: readings and alerts recorded from the broker, and
//! what VictoriaMetrics holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use telemetry::{AlertMessage, AlertStatus, Reading};

use crate::{Message, Victoria};

pub const KINDS: [&str; 4] = ["elevator", "boiler", "water_meter", "charging_pile"];

/// The readings among recorded messages.
pub fn readings(messages: &[Message]) -> Vec<Reading> {
    messages
        .iter()
        .filter(|m| m.topic.starts_with("telemetry/"))
        .map(|m| telemetry::decode(&m.payload).expect("the gateway publishes valid payloads"))
        .collect()
}

/// The alert transitions among recorded messages (`events/alerts`).
pub fn alerts(messages: &[Message]) -> Vec<AlertMessage> {
    messages
        .iter()
        .filter(|m| m.topic == "events/alerts")
        .map(|m| serde_json::from_slice(&m.payload).expect("alert JSON"))
        .collect()
}

/// (rule, device) pairs that fired and later resolved.
pub fn fired_and_resolved(alerts: &[AlertMessage]) -> BTreeSet<(String, String)> {
    let mut fired = BTreeSet::new();
    let mut both = BTreeSet::new();
    for a in alerts {
        let key = (a.rule.clone(), a.device.clone());
        match a.status {
            AlertStatus::Firing => {
                fired.insert(key);
            }
            AlertStatus::Resolved if fired.contains(&key) => {
                both.insert(key);
            }
            _ => {}
        }
    }
    both
}

/// `{series name → {(device, ts) → value}}` for every kind, from a VictoriaMetrics export.
pub fn stored(vm: &Victoria) -> BTreeMap<String, BTreeMap<(String, i64), f64>> {
    let mut out: BTreeMap<String, BTreeMap<(String, i64), f64>> = BTreeMap::new();
    for kind in KINDS {
        for series in vm.export(&format!("{kind}_.*")) {
            let name = series["metric"]["__name__"].as_str().unwrap_or_default().to_string();
            let device = series["metric"]["device"].as_str().unwrap_or_default().to_string();
            let points = out.entry(name).or_default();
            let values = series["values"].as_array().cloned().unwrap_or_default();
            let stamps = series["timestamps"].as_array().cloned().unwrap_or_default();
            for (v, t) in values.iter().zip(stamps.iter()) {
                points
                    .insert((device.clone(), t.as_i64().unwrap_or_default()), v.as_f64().unwrap_or(f64::NAN));
            }
        }
    }
    out
}

/// Waits until every value of every reading is in VictoriaMetrics, and checks each value equals
/// the published one. Panics naming a few missing points after `limit`.
pub fn assert_readings_stored(vm: &Victoria, published: &[Reading], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let store = stored(vm);
        let mut missing = Vec::new();
        for r in published {
            for (field, value) in &r.values {
                let series = format!("{}_{field}", r.kind);
                match store.get(&series).and_then(|s| s.get(&(r.device.clone(), r.ts_ms))) {
                    None => missing.push(format!("{series}{{device={}}} @{}", r.device, r.ts_ms)),
                    Some(got) => {
                        let want = value.as_f64().expect("numeric point");
                        assert!(
                            (got - want).abs() <= want.abs() * 1e-12,
                            "{series}{{device={}}} @{}: stored {got}, published {want}",
                            r.device,
                            r.ts_ms
                        );
                    }
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} published points are not in VictoriaMetrics, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
