//! Fixtures shared by the unit tests: rule-file texts, an engine built from one, readings, alert rows.

use telemetry::{AlertMessage, AlertStatus, Reading};

use crate::alert::Ts;
use crate::{Engine, RuleSet};

// Each rule text starts and ends with a newline, so that texts joined with `concat` keep one
// blank line between rules and the line numbers tests expect in diagnostics.

/// `boiler.over_pressure`: a threshold rule with a `clear` condition (hysteresis), held for 2 s.
pub(crate) const OVER_PRESSURE_RULE: &str = r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > 1.25"
clear = "pressure_mpa < 1.19"
for = "2s"
severity = "critical"
summary = "{device.id} over pressure {pressure_mpa} MPa"
source = "TSG 11-2020"
"#;

/// `elevator.passenger_trapped`, a fault_code rule (codes 5 and 8, held for 1 s), then
/// `boiler.alarm`, a per_code bits rule (bits 0 and 5).
pub(crate) const FAULT_CODE_AND_BITS_RULES: &str = r#"
[[rule]]
id = "elevator.passenger_trapped"
kinds = ["elevator"]
type = "fault_code"
point = "fault_code"
codes = { 5 = "passenger_trapped", 8 = "trapped_outside_door_zone" }
for = "1s"
severity = "critical"
summary = "{device.id} {code_name} ({code}) at floor {floor}"

[[rule]]
id = "boiler.alarm"
kinds = ["boiler"]
type = "bits"
point = "alarm_bits"
bits = { 0 = "over_pressure", 5 = "burner_fault" }
per_code = true
severity = "major"
summary = "{device.id} {code_name} (bit {code})"
"#;

/// `elevator.no_data`: an elevator that sent no values for 2 min.
pub(crate) const ELEVATOR_NO_DATA_RULE: &str = r#"
[[rule]]
id = "elevator.no_data"
kinds = ["elevator"]
type = "no_data"
after = "2m"
severity = "major"
summary = "{device.id} on {device.gateway} sent nothing for {after}"
"#;

/// `gateway.no_data`: a gateway that sent nothing for 2 min, whatever the kind of its devices.
pub(crate) const GATEWAY_NO_DATA_RULE: &str = r#"
[[rule]]
id = "gateway.no_data"
kinds = ["*"]
type = "gateway_no_data"
after = "2m"
severity = "major"
summary = "{device.gateway} sent nothing for {after}"
"#;

/// An engine running the rules of one rule file's text; panics on its diagnostics.
pub(crate) fn engine(rules: &str) -> Engine {
    Engine::new(RuleSet::parse("r.toml", rules).unwrap_or_else(|d| panic!("{d:?}")))
}

/// A reading with no values yet, its sequence number its timestamp.
pub(crate) fn reading(gateway: &str, device: &str, kind: &str, ts: Ts) -> Reading {
    Reading::new(gateway, device, kind, 1, ts as u64, ts)
}

/// A boiler's reading on gateway `gw`, with its pressure.
pub(crate) fn boiler(device: &str, ts: Ts, pressure_mpa: f64) -> Reading {
    reading("gw", device, "boiler", ts).with_value("pressure_mpa", pressure_mpa)
}

/// An elevator's reading, with its fault code.
pub(crate) fn elevator(gateway: &str, device: &str, ts: Ts, fault_code: i64) -> Reading {
    reading(gateway, device, "elevator", ts).with_value("fault_code", fault_code)
}

/// An alert message as (ts, status, rule, device, summary).
pub(crate) type Row = (Ts, AlertStatus, String, String, String);

pub(crate) fn rows(messages: Vec<AlertMessage>) -> Vec<Row> {
    messages.into_iter().map(|m| (m.ts, m.status, m.rule, m.device, m.summary)).collect()
}

pub(crate) fn row(ts: Ts, status: AlertStatus, rule: &str, device: &str, summary: &str) -> Row {
    (ts, status, rule.into(), device.into(), summary.into())
}
