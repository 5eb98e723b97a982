//! All rules over all devices. `process` takes one reading and returns the alert transitions
//! it causes, stamped with the reading's time.

use std::collections::{BTreeMap, HashMap};

use telemetry::{AlertMessage, AlertStatus, Reading, Value};

use crate::alert::{step, Alert, AlertState, Transition};
use crate::expr::Evaluator;
use crate::rule_file::{Rule, RuleSet};

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub readings: u64,
    pub evaluations: u64,
    /// Conditions that gave no answer (a point missing from the reading, a type mismatch).
    pub eval_errors: u64,
}

#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    evaluator: Evaluator,
    /// By (rule id, device).
    alerts: HashMap<(String, String), Alert>,
    attributes: HashMap<String, BTreeMap<String, Value>>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        Engine {
            rules,
            evaluator: Evaluator::new(),
            alerts: HashMap::new(),
            attributes: HashMap::new(),
            stats: EngineStats::default(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules.rules
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Sets a device's registry attributes (`device.rated_pressure_mpa` in conditions).
    pub fn set_attributes(&mut self, device: &str, attributes: BTreeMap<String, Value>) {
        self.attributes.insert(device.to_string(), attributes);
    }

    /// The current state of one alert.
    pub fn state(&self, rule: &str, device: &str) -> AlertState {
        self.alerts.get(&(rule.to_string(), device.to_string())).map_or(AlertState::Inactive, |a| a.state)
    }

    /// Evaluates every rule of the reading's kind and returns the transitions.
    pub fn process(&mut self, reading: &Reading) -> Vec<AlertMessage> {
        self.stats.readings += 1;
        let attributes = self.attributes.get(&reading.device);
        let mut out = Vec::new();
        for rule in self.rules.rules.iter().filter(|r| r.applies_to(&reading.kind)) {
            let key = (rule.id.clone(), reading.device.clone());
            let alert = self.alerts.entry(key).or_default();
            let firing = matches!(alert.state, AlertState::Firing { .. });
            self.stats.evaluations += 1;
            let observed = match (&rule.clear, firing) {
                (Some(clear), true) => self.evaluator.eval(clear, reading, attributes).map(|c| (!c, c)),
                _ => self.evaluator.eval(&rule.when, reading, attributes).map(|m| (m, !m)),
            };
            let Ok((matched, cleared)) = observed else {
                // No answer is not an answer: the alert stays as it is.
                self.stats.eval_errors += 1;
                continue;
            };
            let hold_for_ms = rule.hold_for.as_millis() as i64;
            if let Some(t) = step(alert, matched, cleared, hold_for_ms, reading.ts_ms) {
                out.push(message(rule, reading, attributes, t));
            }
        }
        out
    }
}

fn message(
    rule: &Rule,
    reading: &Reading,
    attributes: Option<&BTreeMap<String, Value>>,
    t: Transition,
) -> AlertMessage {
    let (status, active_at, fired_at, resolved_at) = match t {
        Transition::Fired { active_at, fired_at } => (AlertStatus::Firing, active_at, fired_at, None),
        Transition::Resolved { active_at, fired_at, resolved_at } => {
            (AlertStatus::Resolved, active_at, fired_at, Some(resolved_at))
        }
    };
    AlertMessage {
        rule: rule.id.clone(),
        device: reading.device.clone(),
        gateway: reading.gateway.clone(),
        kind: reading.kind.clone(),
        status,
        severity: rule.severity.as_str().to_string(),
        summary: rule.summary.render(reading, attributes),
        active_at,
        fired_at: Some(fired_at),
        resolved_at,
        ts: reading.ts_ms,
        source: rule.source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > 1.25"
clear = "pressure_mpa < 1.19"
for = "2s"
severity = "critical"
summary = "{device.id} over pressure {pressure_mpa} MPa"
"#;

    fn boiler(dev: &str, ts: i64, p: f64) -> Reading {
        Reading::new("gw", dev, "boiler", 1, ts as u64, ts).with_value("pressure_mpa", p)
    }

    #[test]
    fn fires_and_resolves_per_device_with_hysteresis() {
        let mut e = Engine::new(RuleSet::parse("r.toml", RULES).unwrap());
        let series = [(0, 1.0), (1_000, 1.3), (2_000, 1.3), (3_000, 1.3), (4_000, 1.22), (5_000, 1.1)];
        let mut seen = Vec::new();
        for (ts, p) in series {
            for m in e.process(&boiler("b1", ts, p)) {
                seen.push((m.ts, m.status, m.summary));
            }
            assert!(e.process(&boiler("b2", ts, 1.0)).is_empty(), "another device is not affected");
        }
        assert_eq!(
            seen,
            vec![
                (3_000, AlertStatus::Firing, "b1 over pressure 1.3 MPa".to_string()),
                (5_000, AlertStatus::Resolved, "b1 over pressure 1.1 MPa".to_string()),
            ]
        );
    }

    #[test]
    fn readings_of_other_kinds_and_missing_points_change_nothing() {
        let mut e = Engine::new(RuleSet::parse("r.toml", RULES).unwrap());
        e.process(&boiler("b1", 0, 2.0));
        e.process(&boiler("b1", 5_000, 2.0));
        assert!(matches!(e.state("boiler.over_pressure", "b1"), AlertState::Firing { .. }));
        let no_pressure =
            Reading::new("gw", "b1", "boiler", 1, 9, 6_000).with_error("pressure_mpa", "timeout");
        assert!(e.process(&no_pressure).is_empty(), "a missing point never resolves");
        assert!(matches!(e.state("boiler.over_pressure", "b1"), AlertState::Firing { .. }));
        assert_eq!(e.stats().eval_errors, 1);
        let elevator = Reading::new("gw", "b1", "elevator", 1, 9, 7_000).with_value("pressure_mpa", 0.0);
        assert!(e.process(&elevator).is_empty());
    }
}
