//! `rules test`: rule unit tests after Prometheus's promtool, on a virtual clock.
//!
//! A test file (TOML) names rule files, input series per device in series notation
//! ([`series`]), and expectations: which alerts fire at a time, and optionally which fired and
//! resolved since the previous expectation.
//!
//! ```toml
//! rule_files = ["../boiler.toml"]     # files or folders, relative to this file
//! interval = "1s"                     # time between two values of a series (default 1s)
//! tick = "1s"                         # how often Engine::tick runs (default: interval; "0s": never)
//! start = "2026-01-01"                # optional: time 0 is this day's midnight, UTC+8 (default
//!                                     # the epoch); for inspection rules
//!
//! [[registry]]                        # optional: registry rows from `at` (default 0s) on;
//! at = "0s"                           # later entries update rows by device
//! file = "registry.csv"               # relative to this file; or inline: csv = """…"""
//!
//! [[series]]
//! device = "boiler-0001"
//! kind = "boiler"
//! gateway = "gw-test"                 # optional (default gw-test), as `interval` and `attributes`
//! values = { pressure_mpa = "1.0 1.0 1.3x10 1.0", over_pressure = "false x13" }
//!
//! [[expect]]
//! at = "5s"
//! firing = [{ rule = "boiler.over_pressure", device = "boiler-0001" }]
//!
//! [[expect]]
//! at = "14s"
//! firing = []
//! resolved = [{ rule = "boiler.over_pressure", device = "boiler-0001", summary = "…" }]
//! ```
//!
//! Alert lifecycle steps, at a time of the test:
//!
//! ```toml
//! [[silence]]
//! at = "10s"                          # added then, active from then on
//! ends = "1m"                         # until then (virtual time)
//! device = "elev-1"                   # matchers: device, gateway, rule, town, kind
//! who = "ops"                         # optional, as `comment`
//!
//! [[ack]]
//! at = "30s"
//! rule = "elevator.passenger_trapped"
//! device = "elev-1"
//! who = "li"
//! comment = "on site"                 # optional
//! ```
//!
//! Expectations may check `silenced` and `acknowledged` transitions too; `firing` counts a
//! silenced alert (it fires in the engine).
//!
//! [`run`] is pure: value `i` of a series is a reading at `i × interval` (a step whose values
//! are all `_` sends none). At each time the runner sets the registry rows due then, feeds
//! that time's readings in series order, then ticks, then checks the expectations at that
//! time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use telemetry::{AlertMessage, Value};
use toml::Spanned;

use crate::date::{Date, CHINA_UTC_OFFSET_MS};
use crate::engine::{Matchers, Silence};
use crate::registry::Registry;
use crate::rule_file::{self, content_start, line_col, Diagnostic};
use crate::RuleSet;

mod run;
pub mod series;
#[cfg(test)]
mod tests;

pub use run::{run, Failure, Outcome};

/// An expected alert. `severity` and `summary` are checked only when given.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatch {
    pub rule: String,
    pub device: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
}

impl AlertMatch {
    fn matches(&self, m: &AlertMessage) -> bool {
        self.rule == m.rule
            && self.device == m.device
            && self.severity.as_ref().is_none_or(|s| *s == m.severity)
            && self.summary.as_ref().is_none_or(|s| *s == m.summary)
    }
}

#[derive(Debug)]
pub struct Series {
    pub device: String,
    pub kind: String,
    pub gateway: String,
    pub interval_ms: i64,
    pub attributes: BTreeMap<String, Value>,
    /// Per point, one optional value per step.
    pub values: Vec<(String, Vec<Option<Value>>)>,
}

#[derive(Debug)]
pub struct Expectation {
    pub at_ms: i64,
    /// Line of its `[[expect]]`, for reports.
    pub line: usize,
    /// The alerts firing at `at`, exactly; not checked when absent.
    pub firing: Option<Vec<AlertMatch>>,
    /// The alerts that fired since the previous expectation, exactly.
    pub fired: Option<Vec<AlertMatch>>,
    /// The alerts that resolved since the previous expectation, exactly.
    pub resolved: Option<Vec<AlertMatch>>,
    /// `Silenced` transitions since the previous expectation, exactly.
    pub silenced: Option<Vec<AlertMatch>>,
    /// `Acknowledged` transitions since the previous expectation, exactly.
    pub acknowledged: Option<Vec<AlertMatch>>,
}

/// An acknowledgement at a time of the test.
#[derive(Debug)]
pub struct AckStep {
    pub at_ms: i64,
    pub line: usize,
    pub rule: String,
    pub device: String,
    pub who: String,
    pub comment: String,
}

/// Registry rows that take effect at a time of the test.
#[derive(Debug)]
pub struct RegistryStep {
    pub at_ms: i64,
    /// The CSV file named, relative to the test file; its rows once [`UnitTest::load`] read it.
    pub file: Option<String>,
    pub rows: Option<Registry>,
}

/// A parsed test file.
#[derive(Debug)]
pub struct UnitTest {
    pub file: String,
    /// As written: relative to the test file.
    pub rule_files: Vec<String>,
    pub tick_ms: i64,
    /// Time 0 of the virtual clock, in ms since the epoch.
    pub start_ms: i64,
    pub registry: Vec<RegistryStep>,
    pub series: Vec<Series>,
    pub expect: Vec<Expectation>,
    /// Silences added at a time (their `starts_ms`), relative to the start.
    pub silences: Vec<Silence>,
    pub acks: Vec<AckStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    rule_files: Spanned<Vec<String>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    tick: Option<Spanned<String>>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    registry: Vec<Spanned<RawRegistry>>,
    #[serde(default)]
    series: Vec<Spanned<RawSeries>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpect>>,
    #[serde(default)]
    silence: Vec<Spanned<RawSilence>>,
    #[serde(default)]
    ack: Vec<Spanned<RawAck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    at: Spanned<String>,
    ends: Spanned<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    town: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    who: String,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAck {
    at: Spanned<String>,
    rule: String,
    device: String,
    who: String,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    device: String,
    kind: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, toml::Value>,
    values: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    at: Option<Spanned<String>>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    csv: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    at: Spanned<String>,
    #[serde(default)]
    firing: Option<Vec<AlertMatch>>,
    #[serde(default)]
    fired: Option<Vec<AlertMatch>>,
    #[serde(default)]
    resolved: Option<Vec<AlertMatch>>,
    #[serde(default)]
    silenced: Option<Vec<AlertMatch>>,
    #[serde(default)]
    acknowledged: Option<Vec<AlertMatch>>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A time of the virtual clock as written in reports: `1m 30s`.
pub fn format_ms(ms: i64) -> String {
    let text = humantime::format_duration(Duration::from_millis(ms.unsigned_abs())).to_string();
    if ms < 0 {
        format!("-{text}")
    } else {
        text
    }
}

impl UnitTest {
    /// Parses a test file's text; every problem as `file:line:column`.
    pub fn parse(file: &str, text: &str) -> Result<UnitTest, Vec<Diagnostic>> {
        let mut diagnostics = Vec::new();
        let mut at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            diagnostics.push(Diagnostic { file: file.to_string(), line, column, message });
        };
        let raw: RawTest = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                at(e.span().map_or(0, |s| s.start), e.message().trim_end().to_string());
                return Err(diagnostics);
            }
        };
        let duration = |s: &Spanned<String>, key: &str, at: &mut dyn FnMut(usize, String)| {
            humantime::parse_duration(s.get_ref())
                .map(ms)
                .map_err(|e| at(s.span().start, format!("{key}: `{}`: {e}", s.get_ref())))
                .ok()
        };
        let interval_ms = raw.interval.as_ref().map_or(Some(1_000), |s| duration(s, "interval", &mut at));
        let tick_ms = raw.tick.as_ref().map_or(interval_ms, |s| duration(s, "tick", &mut at));
        let start_ms = match &raw.start {
            None => 0,
            Some(s) => match Date::parse(s.get_ref()) {
                Some(d) => d.start_ms(CHINA_UTC_OFFSET_MS),
                None => {
                    at(s.span().start, format!("start: `{}` is not a date (YYYY-MM-DD)", s.get_ref()));
                    0
                }
            },
        };
        let mut registry = Vec::new();
        let mut inline_problems = Vec::new();
        for step in &raw.registry {
            let start = step.span().start;
            let step = step.get_ref();
            let at_ms = step.at.as_ref().map_or(Some(0), |s| duration(s, "at", &mut at)).unwrap_or(0);
            let rows = match (&step.file, &step.csv) {
                (Some(_), None) => None,
                (None, Some(csv)) => {
                    // Problems in inline rows are shown at their lines in the test file.
                    let offset = content_start(text, csv.span());
                    let first_line = line_col(text, offset).0 + usize::from(text[offset..].starts_with('\n'));
                    let (rows, problems) = Registry::parse(file, csv.get_ref());
                    for p in problems {
                        let line = first_line + p.line.saturating_sub(1);
                        inline_problems.push(Diagnostic { line, ..p });
                    }
                    Some(rows)
                }
                _ => {
                    at(start, "a [[registry]] entry takes `file` or `csv`, one of them".into());
                    None
                }
            };
            registry.push(RegistryStep { at_ms, file: step.file.clone(), rows });
        }
        registry.sort_by_key(|s| s.at_ms);
        if raw.rule_files.get_ref().is_empty() {
            at(raw.rule_files.span().start, "rule_files must name at least one rule file or folder".into());
        }
        let mut series = Vec::new();
        for s in &raw.series {
            let start = s.span().start;
            let s = s.get_ref();
            if !telemetry::codec::is_kind(&s.kind) {
                at(start, format!("kind `{}` is not a kind name", s.kind));
            }
            if let Err(why) = telemetry::codec::check_id(&s.device) {
                at(start, format!("device `{}`: {why}", s.device));
            }
            let interval_ms = match &s.interval {
                Some(i) => duration(i, "interval", &mut at),
                None => interval_ms,
            };
            if interval_ms == Some(0) {
                at(start, "interval must be longer than 0".into());
            }
            let mut attributes = BTreeMap::new();
            for (name, v) in &s.attributes {
                let value = match v {
                    toml::Value::Integer(i) => Value::Int(*i),
                    toml::Value::Float(f) => Value::Float(*f),
                    toml::Value::Boolean(b) => Value::Bool(*b),
                    toml::Value::String(t) => Value::Text(t.clone()),
                    _ => {
                        at(start, format!("attribute `{name}` must be a number, boolean or string"));
                        continue;
                    }
                };
                attributes.insert(name.clone(), value);
            }
            let mut values = Vec::new();
            for (point, notation) in &s.values {
                match series::parse(notation.get_ref()) {
                    Ok(v) => values.push((point.clone(), v)),
                    Err(e) => {
                        at(content_start(text, notation.span()) + e.offset, format!("{point}: {}", e.message))
                    }
                }
            }
            series.push(Series {
                device: s.device.clone(),
                kind: s.kind.clone(),
                gateway: s.gateway.clone().unwrap_or_else(|| "gw-test".to_string()),
                interval_ms: interval_ms.unwrap_or(1_000),
                attributes,
                values,
            });
        }
        let mut expect: Vec<Expectation> = Vec::new();
        for e in raw.expect {
            let line = line_col(text, e.span().start).0;
            let e = e.into_inner();
            let Some(at_ms) = duration(&e.at, "at", &mut at) else { continue };
            if let Some(previous) = expect.last().filter(|p| p.at_ms >= at_ms) {
                let message = format!(
                    "at: {} is not after the previous expectation's {}",
                    format_ms(at_ms),
                    format_ms(previous.at_ms)
                );
                at(e.at.span().start, message);
            }
            expect.push(Expectation {
                at_ms,
                line,
                firing: e.firing,
                fired: e.fired,
                resolved: e.resolved,
                silenced: e.silenced,
                acknowledged: e.acknowledged,
            });
        }
        let mut silences = Vec::new();
        for (n, s) in raw.silence.into_iter().enumerate() {
            let start = s.span().start;
            let s = s.into_inner();
            let (Some(starts_ms), Some(ends_ms)) =
                (duration(&s.at, "at", &mut at), duration(&s.ends, "ends", &mut at))
            else {
                continue;
            };
            let matchers =
                Matchers { device: s.device, gateway: s.gateway, rule: s.rule, town: s.town, kind: s.kind };
            if ends_ms <= starts_ms || matchers == Matchers::default() {
                at(start, "a [[silence]] needs `ends` after `at` and at least one matcher".into());
            }
            let (who, comment) = (s.who, s.comment);
            let id = format!("test-{}", n + 1);
            silences.push(Silence { id, matchers, starts_ms, ends_ms, who, comment });
        }
        let mut acks = Vec::new();
        for a in raw.ack {
            let line = line_col(text, a.span().start).0;
            let a = a.into_inner();
            let Some(at_ms) = duration(&a.at, "at", &mut at) else { continue };
            let (rule, device, who, comment) = (a.rule, a.device, a.who, a.comment);
            acks.push(AckStep { at_ms, line, rule, device, who, comment });
        }
        diagnostics.extend(inline_problems);
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        Ok(UnitTest {
            file: file.to_string(),
            rule_files: raw.rule_files.into_inner(),
            tick_ms: tick_ms.unwrap_or(1_000),
            start_ms,
            registry,
            series,
            expect,
            silences,
            acks,
        })
    }
}

impl UnitTest {
    /// Reads the registry files the test names, relative to `dir`.
    pub fn load(&mut self, dir: &Path) -> Result<(), Vec<Diagnostic>> {
        let mut diagnostics = Vec::new();
        for step in self.registry.iter_mut().filter(|s| s.rows.is_none()) {
            let Some(name) = &step.file else { continue };
            let path = dir.join(name);
            let shown = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let (rows, problems) = Registry::parse(&shown, &text);
                    diagnostics.extend(problems);
                    step.rows = Some(rows);
                }
                Err(e) => diagnostics.push(Diagnostic::cannot_read(shown, &e)),
            }
        }
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(diagnostics)
        }
    }
}

/// Reads a test file, the rule files and registry files it names, and runs it.
pub fn run_file(path: &Path) -> Result<Outcome, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![Diagnostic::cannot_read(file.clone(), &e)])?;
    let mut test = UnitTest::parse(&file, &text)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    test.load(dir)?;
    let named: Vec<_> = test.rule_files.iter().map(|f| dir.join(f)).collect();
    let rules = RuleSet::load(&rule_file::expand(&named))?;
    Ok(run(&test, rules))
}
