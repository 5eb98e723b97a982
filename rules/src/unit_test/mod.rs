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
//! [`run`] is pure: value `i` of a series is a reading at `i × interval` (a step whose values
//! are all `_` sends none). At each time the runner feeds that time's readings in series
//! order, then ticks, then checks the expectations at that time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use telemetry::{AlertMessage, AlertStatus, Reading, Value};
use toml::Spanned;

use crate::rule_file::{self, content_start, line_col, Diagnostic};
use crate::{Engine, RuleSet};

pub mod series;
#[cfg(test)]
mod tests;

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
}

/// A parsed test file.
#[derive(Debug)]
pub struct UnitTest {
    pub file: String,
    /// As written: relative to the test file.
    pub rule_files: Vec<String>,
    pub tick_ms: i64,
    pub series: Vec<Series>,
    pub expect: Vec<Expectation>,
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
    series: Vec<Spanned<RawSeries>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpect>>,
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
struct RawExpect {
    at: Spanned<String>,
    #[serde(default)]
    firing: Option<Vec<AlertMatch>>,
    #[serde(default)]
    fired: Option<Vec<AlertMatch>>,
    #[serde(default)]
    resolved: Option<Vec<AlertMatch>>,
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
            expect.push(Expectation { at_ms, line, firing: e.firing, fired: e.fired, resolved: e.resolved });
        }
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        Ok(UnitTest {
            file: file.to_string(),
            rule_files: raw.rule_files.into_inner(),
            tick_ms: tick_ms.unwrap_or(1_000),
            series,
            expect,
        })
    }
}

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub at_ms: i64,
    pub problems: Vec<String>,
    /// How many of the outcome's transitions had happened by then.
    pub seen: usize,
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub file: String,
    /// Expectations checked.
    pub checked: usize,
    pub failures: Vec<Failure>,
    /// Every transition, with the virtual time it happened at.
    pub transitions: Vec<(i64, AlertMessage)>,
}

fn describe(m: &AlertMessage) -> String {
    format!("{} on {} [{}] \"{}\"", m.rule, m.device, m.severity, m.summary)
}

/// Problems with `actual` against `expected`, one line each, labelled.
fn compare(label: &str, expected: &[AlertMatch], actual: Vec<&AlertMessage>) -> Vec<String> {
    let mut left = actual;
    let mut problems = Vec::new();
    for m in expected {
        if let Some(i) = left.iter().position(|a| m.matches(a)) {
            left.remove(i);
        } else if let Some(i) = left.iter().position(|a| a.rule == m.rule && a.device == m.device) {
            let a = left.remove(i);
            let mut want = Vec::new();
            want.extend(m.severity.as_ref().map(|s| format!("[{s}]")));
            want.extend(m.summary.as_ref().map(|s| format!("\"{s}\"")));
            problems.push(format!(
                "{label}: wanted {} on {} {}, got {}",
                m.rule,
                m.device,
                want.join(" "),
                describe(a)
            ));
        } else {
            problems.push(format!("{label}: missing {} on {}", m.rule, m.device));
        }
    }
    problems.extend(left.into_iter().map(|a| format!("{label}: unexpected {}", describe(a))));
    problems
}

/// Runs `test` against `rules` on the virtual clock.
pub fn run(test: &UnitTest, rules: RuleSet) -> Outcome {
    let mut engine = Engine::new(rules);
    let mut readings: BTreeMap<i64, Vec<Reading>> = BTreeMap::new();
    for s in &test.series {
        if !s.attributes.is_empty() {
            engine.set_attributes(&s.device, s.attributes.clone());
        }
        let steps = s.values.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let mut seq = 0;
        for i in 0..steps {
            let ts = i as i64 * s.interval_ms;
            let mut reading = Reading::new(&s.gateway, &s.device, &s.kind, 1, seq, ts);
            for (point, values) in &s.values {
                if let Some(Some(v)) = values.get(i) {
                    reading.values.insert(point.clone(), v.clone());
                }
            }
            if !reading.values.is_empty() {
                seq += 1;
                readings.entry(ts).or_default().push(reading);
            }
        }
    }
    let end =
        readings.keys().next_back().copied().into_iter().chain(test.expect.last().map(|e| e.at_ms)).max();
    let mut times: BTreeSet<i64> =
        readings.keys().copied().chain(test.expect.iter().map(|e| e.at_ms)).collect();
    if let (Some(end), true) = (end, test.tick_ms > 0) {
        times.extend((0..=end / test.tick_ms).map(|k| k * test.tick_ms));
    }
    let mut outcome =
        Outcome { file: test.file.clone(), checked: 0, failures: Vec::new(), transitions: Vec::new() };
    let mut firing: BTreeMap<(String, String), AlertMessage> = BTreeMap::new();
    let mut expect = test.expect.iter().peekable();
    let (mut since, mut since_ms) = (0, None::<i64>);
    for t in times {
        let mut happened = Vec::new();
        for reading in readings.get(&t).into_iter().flatten() {
            happened.extend(engine.process(reading));
        }
        if test.tick_ms > 0 && t % test.tick_ms == 0 {
            happened.extend(engine.tick(t));
        }
        for m in happened {
            let key = (m.rule.clone(), m.device.clone());
            match m.status {
                AlertStatus::Firing => {
                    firing.insert(key, m.clone());
                }
                AlertStatus::Resolved => {
                    firing.remove(&key);
                }
                _ => {}
            }
            outcome.transitions.push((t, m));
        }
        while let Some(e) = expect.next_if(|e| e.at_ms == t) {
            let recent = &outcome.transitions[since..];
            let of =
                |status: AlertStatus| recent.iter().filter(move |(_, m)| m.status == status).map(|(_, m)| m);
            let label = |what: &str| match since_ms {
                Some(ms) => format!("{what} since {}", format_ms(ms)),
                None => what.to_string(),
            };
            let mut problems = Vec::new();
            if let Some(want) = &e.firing {
                problems.extend(compare("firing", want, firing.values().collect()));
            }
            if let Some(want) = &e.fired {
                problems.extend(compare(&label("fired"), want, of(AlertStatus::Firing).collect()));
            }
            if let Some(want) = &e.resolved {
                problems.extend(compare(&label("resolved"), want, of(AlertStatus::Resolved).collect()));
            }
            outcome.checked += 1;
            if !problems.is_empty() {
                let seen = outcome.transitions.len();
                outcome.failures.push(Failure { line: e.line, at_ms: e.at_ms, problems, seen });
            }
            (since, since_ms) = (outcome.transitions.len(), Some(t));
        }
    }
    outcome
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A report for people: each failed expectation, what was wrong, and every transition up to
    /// then with its time.
    pub fn render(&self) -> String {
        if self.passed() {
            return format!(
                "ok    {} ({} expectations, {} transitions)\n",
                self.file,
                self.checked,
                self.transitions.len()
            );
        }
        let mut out = format!(
            "FAIL  {} ({} of {} expectations failed)\n",
            self.file,
            self.failures.len(),
            self.checked
        );
        for f in &self.failures {
            out.push_str(&format!("  {}:{}: at {}\n", self.file, f.line, format_ms(f.at_ms)));
            for p in &f.problems {
                out.push_str(&format!("    {p}\n"));
            }
            out.push_str(&format!("    what happened up to {}:\n", format_ms(f.at_ms)));
            if f.seen == 0 {
                out.push_str("      nothing\n");
            }
            for (t, m) in &self.transitions[..f.seen] {
                let status = m.status.as_str().to_uppercase();
                out.push_str(&format!("      {:>8}  {status:<8}  {}\n", format_ms(*t), describe(m)));
            }
        }
        out
    }
}

/// Reads a test file and the rule files it names, and runs it.
pub fn run_file(path: &Path) -> Result<Outcome, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic { file: file.clone(), line: 0, column: 0, message: e.to_string() }])?;
    let test = UnitTest::parse(&file, &text)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let named: Vec<_> = test.rule_files.iter().map(|f| dir.join(f)).collect();
    let rules = RuleSet::load(&rule_file::expand(&named))?;
    Ok(run(&test, rules))
}
