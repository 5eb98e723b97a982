//! How many alerts are firing now, by severity: counted from the engine's state (devices,
//! gateways, inspections), so the figure is right after a restore and cannot drift.

use super::Engine;
use crate::alert::AlertState;
use crate::rule_file::{RuleType, Severity};

/// Firing alerts by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Firing {
    pub critical: u64,
    pub major: u64,
    pub warning: u64,
    pub info: u64,
}

impl Firing {
    fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::Major => self.major += 1,
            Severity::Warning => self.warning += 1,
            Severity::Info => self.info += 1,
        }
    }

    /// Every severity with its count, most severe first.
    pub fn by_severity(&self) -> [(Severity, u64); 4] {
        [
            (Severity::Critical, self.critical),
            (Severity::Major, self.major),
            (Severity::Warning, self.warning),
            (Severity::Info, self.info),
        ]
    }

    pub fn total(&self) -> u64 {
        self.critical + self.major + self.warning + self.info
    }
}

impl Engine {
    /// The alerts firing now, by severity: one pass over the state, no allocation.
    pub fn firing(&self) -> Firing {
        let mut count = Firing::default();
        let rules = &self.rules.rules;
        let firing = |state: &AlertState| matches!(state, AlertState::Firing { .. });
        for device in self.devices.values() {
            for ((i, _), slot) in &device.alerts {
                if firing(&slot.alert.state) {
                    count.add(rules[*i].severity);
                }
            }
        }
        for gateway in self.gateways.values() {
            for (i, slot) in &gateway.alerts {
                if firing(&slot.alert.state) {
                    count.add(rules[*i].severity);
                }
            }
        }
        for (i, stage) in self.schedules.firing() {
            let rule = &rules[i];
            match &rule.rule_type {
                RuleType::Inspection(ir) => count.add(ir.severity(stage, rule.severity)),
                _ => count.add(rule.severity),
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{boiler, engine, reading, GATEWAY_NO_DATA_RULE, OVER_PRESSURE_RULE};
    use crate::{Date, Registry};

    use super::*;

    const INSPECTION_RULE: &str = r#"
[[rule]]
id = "elevator.periodic_inspection"
kinds = ["elevator"]
type = "inspection"
check = "periodic_inspection"
severity = "major"
summary = "{device.id} due {due}"
"#;

    #[test]
    fn counts_firing_device_gateway_and_inspection_alerts_by_severity_and_survives_a_restore() {
        let rules = [OVER_PRESSURE_RULE, GATEWAY_NO_DATA_RULE, INSPECTION_RULE].concat();
        let mut e = engine(&rules);
        assert_eq!(e.firing(), Firing::default());
        for ts in [0, 1_000, 3_000] {
            e.process(&boiler("b1", ts, 1.3));
            e.process(&boiler("b2", ts, 1.0));
        }
        e.process(&boiler("b3", 0, 1.3));
        assert_eq!(e.firing(), Firing { critical: 1, ..Firing::default() }, "b3 pending, not firing");
        e.process(&reading("gw-2", "e1", "elevator", 0));
        let csv = "device,kind,name,town,commissioned,last_inspection,next_inspection\n\
                   e1,elevator,1号梯,东城街道,2015-01-10,2025-06-20,2026-06-30\n";
        let (registry, problems) = Registry::parse("registry.csv", csv);
        assert!(problems.is_empty(), "{problems:?}");
        e.set_registry(registry);
        let overdue = Date::parse("2026-07-01").unwrap().start_ms(8 * 3_600_000) + 36_000_000;
        let fired = e.tick(overdue);
        assert!(fired.iter().any(|m| m.rule == "gateway.no_data"), "{fired:?}");
        assert!(fired.iter().any(|m| m.rule == "elevator.periodic_inspection"), "{fired:?}");
        // Two silent gateways and the overdue inspection; b1's reminder is no new alert.
        let want = Firing { critical: 1, major: 3, ..Firing::default() };
        assert_eq!(e.firing(), want, "{fired:?}");
        assert_eq!(want.total(), 4);

        let mut restored = engine(&rules);
        restored.restore(e.snapshot()).unwrap();
        assert_eq!(restored.firing(), want, "the same count after a restart");

        e.process(&boiler("b1", overdue, 1.0));
        assert_eq!(e.firing().critical, 0, "resolved");
    }
}
