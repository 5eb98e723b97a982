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

/// Splits at `sep` outside quotes and not escaped with `\`.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn field_value(raw: &str) -> Result<Value, String> {
    if let Some(text) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Ok(Value::Text(unescape(text)));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(int) = raw.strip_suffix('i').or_else(|| raw.strip_suffix('u')) {
        return int.parse().map(Value::Int).map_err(|_| format!("`{raw}` is not an integer"));
    }
    raw.parse().map(Value::Float).map_err(|_| format!("`{raw}` is not a value"))
}

/// One line of line protocol with a millisecond timestamp; `None` for the measurements ingest
/// writes besides readings (`alert`, `inspection`).
pub fn line_protocol(line: &str) -> Result<Option<Reading>, String> {
    let sections = split_unescaped(line, ' ');
    let [head, fields, ts] = sections.as_slice() else {
        return Err("expected `kind,tags fields timestamp_ms`".into());
    };
    let mut head = split_unescaped(head, ',').into_iter();
    let kind = unescape(head.next().unwrap_or_default());
    if kind == "alert" || kind == "inspection" {
        return Ok(None);
    }
    let (mut device, mut gateway) = (None, String::new());
    for tag in head {
        let Some((k, v)) = tag.split_once('=') else { return Err(format!("tag `{tag}` has no `=`")) };
        match k {
            "device" => device = Some(unescape(v)),
            "gateway" => gateway = unescape(v),
            _ => {}
        }
    }
    let device = device.ok_or("no device tag")?;
    let ts: i64 = ts.parse().map_err(|_| format!("timestamp `{ts}` is not an integer (ms)"))?;
    let mut reading = Reading::new(&gateway, &device, &kind, 0, 0, ts);
    for field in split_unescaped(fields, ',') {
        let Some((k, v)) = field.split_once('=') else { return Err(format!("field `{field}` has no `=`")) };
        reading.values.insert(unescape(k), field_value(v)?);
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
