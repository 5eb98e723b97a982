//! The rules engine, with no I/O and no clock: readings go in with their own timestamps,
//! alert transitions come out. Ingest hosts it; the `rules` CLI checks rule files and registries
//! offline.
//!
//! Module map, in the order data flows:
//! - [`rule_file`]: TOML rule files to validated [`Rule`]s of each type (threshold, fault_code,
//!   bits, no_data, gateway_no_data, inspection); every problem as `file:line:col`.
//! - [`expr`]: CEL conditions, compiled once, evaluated over a reading's values and the
//!   `device` map, with helpers for Modbus data (`bit(x, n)`).
//! - [`window`]: `avg`, `max`, `min`, `delta`, `rate` over a device's recent readings: calls
//!   rewritten into variables at parse time, per-device sample series, aggregates.
//! - [`alert`]: one alert's state machine (inactive, pending, firing), stepped at reading time.
//! - [`registry`]: the equipment registry (CSV) to units and their `device.…` attributes; the
//!   overdue rate; a synthetic city-sized registry. [`unit`]: one registered device (a row).
//! - [`inspection`]: inspection, verification and service-life due dates per kind and
//!   regulation, and where a due date stands on a day ([`date`]: civil-date arithmetic).
//! - [`engine`]: all rules over all devices: picks the rules of a reading's kind, steps their
//!   alerts, renders messages ([`template`]; numbers to their unit's decimals: [`number`]) and returns the transitions; `tick` gives it the
//!   host's time for the no-data rules and, over the registry, the inspection rules.
//! - [`engine`] also holds the alert lifecycle (acknowledge, silences, maintenance inhibition,
//!   reminders, flapping), state snapshots, `replace_rules` for hot reload, forgetting idle
//!   devices that no alert needs, and each rule's evaluation errors (`rule_errors`).
//! - [`backtest`]: recorded readings (line protocol, JSON lines) replayed on a virtual clock.
//! - [`profiles`]: `rules check`: the point names and kinds rules use against gateway profiles
//!   (the built-in ones of `telemetry`, or a folder).
//! - [`unit_test`]: `rules test` files (series notation and registry rows on a virtual clock,
//!   expected alerts), run against an engine.

pub mod alert;
pub mod backtest;
pub mod date;
pub mod engine;
pub mod expr;
pub mod inspection;
pub mod number;
pub mod profiles;
pub mod registry;
pub mod rule_file;
pub mod template;
#[cfg(test)]
mod test_support;
pub mod unit;
pub mod unit_test;
pub mod window;

pub use alert::{AlertState, Transition};
pub use date::Date;
pub use engine::Engine;
pub use registry::{OverdueReport, Registry, Unit};
pub use rule_file::{Codes, Diagnostic, InspectionRule, Rule, RuleSet, RuleType, Severity};

/// The default rule pack shipped in `deploy/rules/`, compiled in for the demo and for ingest without `[rules] files`.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    ("deploy/rules/elevator.toml", include_str!("../../deploy/rules/elevator.toml")),
    ("deploy/rules/boiler.toml", include_str!("../../deploy/rules/boiler.toml")),
    ("deploy/rules/water_meter.toml", include_str!("../../deploy/rules/water_meter.toml")),
    ("deploy/rules/charging_pile.toml", include_str!("../../deploy/rules/charging_pile.toml")),
    ("deploy/rules/gateway.toml", include_str!("../../deploy/rules/gateway.toml")),
    ("deploy/rules/inspection.toml", include_str!("../../deploy/rules/inspection.toml")),
];

/// The default rule pack, parsed.
pub fn default_pack() -> Result<RuleSet, Vec<Diagnostic>> {
    RuleSet::merge(DEFAULT_PACK)
}

#[cfg(test)]
mod pack_tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use telemetry::AlertStatus;

    const DEPLOY_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/rules");

    #[test]
    fn the_default_pack_parses_and_covers_every_simulated_kind() {
        let set = super::default_pack().unwrap_or_else(|d| panic!("{d:?}"));
        for kind in ["elevator", "boiler", "water_meter", "charging_pile", "charging_pile_ac"] {
            assert!(set.rules.iter().any(|r| r.applies_to(kind)), "{kind}");
        }
        let on_disk: Vec<_> = std::fs::read_dir(DEPLOY_RULES)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .collect();
        assert_eq!(on_disk.len(), super::DEFAULT_PACK.len(), "every file in deploy/rules is in the pack");
    }

    /// `rules test deploy/rules/tests`, as part of `cargo test`: every test file passes, and
    /// every rule of the default pack fires and resolves in them (a per_code rule: one of its
    /// codes at least).
    #[test]
    fn the_pack_tests_pass_and_fire_and_resolve_every_rule() {
        let files = super::rule_file::expand(&[Path::new(DEPLOY_RULES).join("tests")]);
        assert!(files.len() >= 5, "{files:?}");
        let mut fired = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for file in &files {
            let outcome = super::unit_test::run_file(file).unwrap_or_else(|d| panic!("{d:?}"));
            assert!(outcome.passed(), "{}", outcome.render());
            for (_, m) in &outcome.transitions {
                match m.status {
                    AlertStatus::Firing => fired.insert(m.rule.clone()),
                    AlertStatus::Resolved => resolved.insert(m.rule.clone()),
                    _ => false,
                };
            }
        }
        let pack = super::default_pack().unwrap();
        let untested: Vec<&str> = pack
            .rules
            .iter()
            .filter(|r| !r.alert_ids().iter().any(|id| fired.contains(id) && resolved.contains(id)))
            .map(|r| r.id.as_str())
            .collect();
        assert!(untested.is_empty(), "rules that no test fires and resolves: {untested:?}");
    }

    /// The simulator's scripted faults (gateway/src/sim/model.rs) fire and resolve under the
    /// plain rule ids the demo and the end-to-end test look for.
    #[test]
    fn the_simulated_faults_fire_and_resolve_under_their_rule_ids() {
        use telemetry::Reading;
        type Values = &'static [(&'static str, f64)];
        let cases: [(&str, &str, Values, Values); 5] = [
            (
                "elevator",
                "elevator.passenger_trapped",
                &[("fault_code", 5.0), ("floor", 3.0)],
                &[("fault_code", 0.0)],
            ),
            (
                "boiler",
                "boiler.over_pressure",
                &[("pressure_mpa", 1.35), ("alarm_bits", 1.0), ("over_pressure", 1.0)],
                &[("pressure_mpa", 0.9), ("alarm_bits", 0.0), ("over_pressure", 0.0)],
            ),
            (
                "water_meter",
                "water_meter.leak",
                &[("status_bits", 1.0), ("leak", 1.0)],
                &[("status_bits", 0.0), ("leak", 0.0)],
            ),
            (
                "charging_pile",
                "charging_pile.insulation_fault",
                &[("fault_code", 5.0)],
                &[("fault_code", 0.0)],
            ),
            (
                "charging_pile_ac",
                "charging_pile_ac.pe_break",
                &[("fault_code", 15.0)],
                &[("fault_code", 0.0)],
            ),
        ];
        for (kind, rule, fault, normal) in cases {
            let mut engine = super::Engine::new(super::default_pack().unwrap());
            let mut seen = Vec::new();
            for s in 0..40 {
                let ts = s * 1_000;
                let values = if (5..25).contains(&s) { fault } else { normal };
                let mut r = Reading::new("gw-sim", "dev-1", kind, 1, s as u64, ts);
                for &(name, v) in values {
                    // As the gateway publishes them: integers, booleans for named bits, floats.
                    let value = match name {
                        "over_pressure" | "leak" => telemetry::Value::Bool(v != 0.0),
                        "pressure_mpa" => telemetry::Value::Float(v),
                        _ => telemetry::Value::Int(v as i64),
                    };
                    r.values.insert(name.to_string(), value);
                }
                seen.extend(engine.process(&r).into_iter().map(|m| (m.rule, m.device, m.status)));
            }
            let want = [
                (rule.to_string(), "dev-1".to_string(), AlertStatus::Firing),
                (rule.to_string(), "dev-1".to_string(), AlertStatus::Resolved),
            ];
            assert_eq!(seen, want, "{kind}");
        }
    }
}
