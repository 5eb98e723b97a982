//! The rules engine, with no I/O and no clock: readings go in with their own timestamps,
//! alert transitions come out. Ingest hosts it; the `rules` CLI checks rule files offline.
//!
//! Module map, in the order data flows:
//! - [`rule_file`]: TOML rule files to validated [`Rule`]s; every problem as `file:line:col`.
//! - [`expr`]: CEL conditions, compiled once, evaluated over a reading's values and the
//!   `device` map, with helpers for Modbus data (`bit(x, n)`).
//! - [`alert`]: one alert's state machine (inactive, pending, firing), stepped at reading time.
//! - [`engine`]: all rules over all devices: picks the rules of a reading's kind, steps their
//!   alerts, renders messages ([`template`]) and returns the transitions.

pub mod alert;
pub mod engine;
pub mod expr;
pub mod rule_file;
pub mod template;

pub use alert::{AlertState, Transition};
pub use engine::Engine;
pub use rule_file::{Diagnostic, Rule, RuleSet, Severity};

/// The default rule pack shipped in `deploy/rules/`, compiled in for `ingest demo`.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    ("deploy/rules/elevator.toml", include_str!("../../deploy/rules/elevator.toml")),
    ("deploy/rules/boiler.toml", include_str!("../../deploy/rules/boiler.toml")),
    ("deploy/rules/water_meter.toml", include_str!("../../deploy/rules/water_meter.toml")),
    ("deploy/rules/charging_pile.toml", include_str!("../../deploy/rules/charging_pile.toml")),
];

/// The default rule pack, parsed.
pub fn default_pack() -> Result<RuleSet, Vec<Diagnostic>> {
    RuleSet::merge(DEFAULT_PACK)
}

#[cfg(test)]
mod pack_tests {
    #[test]
    fn the_default_pack_parses_and_covers_every_simulated_kind() {
        let set = super::default_pack().unwrap_or_else(|d| panic!("{d:?}"));
        for kind in ["elevator", "boiler", "water_meter", "charging_pile"] {
            assert!(set.rules.iter().any(|r| r.applies_to(kind)), "{kind}");
        }
        let on_disk: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/rules"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .collect();
        assert_eq!(on_disk.len(), super::DEFAULT_PACK.len(), "every file in deploy/rules is in the pack");
    }
}
