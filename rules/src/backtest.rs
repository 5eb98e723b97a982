//! `rules backtest`: replay recorded readings through an engine on a virtual clock and report
//! what would have fired. Pure: the CLI reads the files and prints.
//!
//! Inputs: ingest's line-protocol files (`kind,device=…,gateway=… field=value,… ts_ms`, the
//! `alert` and `inspection` measurements skipped) or JSON lines of v1 reading payloads.
//! Readings are replayed in timestamp order (a stable sort: equal times keep file order); the
//! clock ticks every `tick_ms` from the first reading's time, after that time's readings, as
//! in `rules test`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use telemetry::line_protocol::{parse_line, FieldValue};
use telemetry::{AlertMessage, AlertStatus, Reading, Value};

use crate::Engine;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    LineProtocol,
    JsonLines,
}

/// A line of the input that is not a reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub message: String,
}

/// What one rule (alert id) did over the replay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    pub rule: String,
    /// Times it started firing (or was silenced), over all devices.
    pub fired: usize,
    /// Total time firing, ms; an alert still firing counts up to the last reading or tick.
    pub firing_ms: i64,
    /// Still firing at the end.
    pub firing_at_end: usize,
    pub devices: BTreeSet<String>,
}

/// The result of a replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub readings: usize,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Every transition, in order; `ts` is when it happened on the virtual clock.
    pub transitions: Vec<AlertMessage>,
    pub rules: Vec<RuleSummary>,
}

/// Parses recorded readings; lines that are not readings are returned apart.
pub fn parse(text: &str, format: Format) -> (Vec<Reading>, Vec<BadLine>) {
    let mut readings = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = match format {
            Format::LineProtocol => line_protocol(line),
            Format::JsonLines => {
                telemetry::codec::decode(line.as_bytes()).map(Some).map_err(|e| e.to_string())
            }
        };
        match parsed {
            Ok(Some(mut r)) => {
                if format == Format::LineProtocol {
                    r.seq = readings.len() as u64;
                }
                readings.push(r);
            }
            Ok(None) => {}
            Err(message) => bad.push(BadLine { line: n + 1, message }),
        }
    }
    (readings, bad)
}

fn value(field: &FieldValue<'_>) -> Result<Value, String> {
    Ok(match field {
        FieldValue::Float(f) => Value::Float(*f),
        FieldValue::Int(i) => Value::Int(*i),
        FieldValue::UInt(u) => Value::Int(i64::try_from(*u).map_err(|_| format!("`{u}u` is too large"))?),
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::Str(s) => Value::Text(s.to_string()),
    })
}

/// One line of line protocol with a millisecond timestamp; `None` for the measurements ingest
/// writes besides readings (`alert`, `inspection`).
pub fn line_protocol(line: &str) -> Result<Option<Reading>, String> {
    let parsed = parse_line(line).map_err(|e| e.to_string())?;
    if parsed.measurement == "alert" || parsed.measurement == "inspection" {
        return Ok(None);
    }
    let tag = |name: &str| parsed.tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let device = tag("device").ok_or("no device tag")?;
    let ts = parsed.timestamp.ok_or("no timestamp (ms)")?;
    let mut reading = Reading::new(tag("gateway").unwrap_or_default(), device, &parsed.measurement, 0, 0, ts);
    for (k, v) in &parsed.fields {
        reading.values.insert(k.clone(), value(v)?);
    }
    Ok(Some(reading))
}

/// Replays `readings` through `engine`, ticking every `tick_ms` (0: never).
pub fn run(engine: &mut Engine, mut readings: Vec<Reading>, tick_ms: i64) -> Report {
    readings.sort_by_key(|r| r.ts_ms);
    let mut report = Report {
        readings: readings.len(),
        from_ms: readings.first().map(|r| r.ts_ms),
        to_ms: readings.last().map(|r| r.ts_ms),
        ..Report::default()
    };
    let mut next_tick = readings.first().map(|r| r.ts_ms);
    for reading in &readings {
        // As the unit-test runner: a time's readings, then its tick.
        while let Some(t) = next_tick.filter(|&t| tick_ms > 0 && t < reading.ts_ms) {
            report.transitions.extend(engine.tick(t));
            next_tick = Some(t + tick_ms);
        }
        report.transitions.extend(engine.process(reading));
    }
    if let (Some(end), true) = (report.to_ms, tick_ms > 0) {
        report.transitions.extend(engine.tick(end));
    }
    report.rules = summarize(&report.transitions, report.to_ms.unwrap_or(0));
    report
}

/// Per alert id: firings, time firing, devices.
fn summarize(transitions: &[AlertMessage], end_ms: i64) -> Vec<RuleSummary> {
    let mut rules: BTreeMap<&str, RuleSummary> = BTreeMap::new();
    let mut since: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for m in transitions {
        let key = (m.rule.as_str(), m.device.as_str());
        let summary = rules
            .entry(&m.rule)
            .or_insert_with(|| RuleSummary { rule: m.rule.clone(), ..Default::default() });
        match m.status {
            AlertStatus::Firing | AlertStatus::Silenced if !since.contains_key(&key) => {
                since.insert(key, m.ts);
                summary.fired += 1;
                summary.devices.insert(m.device.clone());
            }
            AlertStatus::Resolved => {
                if let Some(start) = since.remove(&key) {
                    summary.firing_ms += m.ts.saturating_sub(start);
                }
            }
            _ => {}
        }
    }
    let end = transitions.iter().map(|m| m.ts).max().unwrap_or(end_ms).max(end_ms);
    for ((rule, _), start) in since {
        let summary = rules.get_mut(rule).expect("seen above");
        summary.firing_ms += end.saturating_sub(start);
        summary.firing_at_end += 1;
    }
    rules.into_values().collect()
}

#[cfg(test)]
mod tests;
