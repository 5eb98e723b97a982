//! Running a parsed test on the virtual clock, and the report of what happened.

use std::collections::{BTreeMap, BTreeSet};

use telemetry::{AlertMessage, AlertStatus, Reading};

use super::{format_ms, AlertMatch, UnitTest};
use crate::engine::Silence;
use crate::registry::Registry;
use crate::{Engine, RuleSet};

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
    let start = test.start_ms;
    let mut registry_at: BTreeMap<i64, Vec<&Registry>> = BTreeMap::new();
    for step in &test.registry {
        registry_at.entry(step.at_ms).or_default().extend(step.rows.as_ref());
    }
    let mut registry = Registry::default();
    let mut readings: BTreeMap<i64, Vec<Reading>> = BTreeMap::new();
    for s in &test.series {
        if !s.attributes.is_empty() {
            engine.set_attributes(&s.device, s.attributes.clone());
        }
        let steps = s.values.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let mut seq = 0;
        for i in 0..steps {
            let ts = i as i64 * s.interval_ms;
            let mut reading = Reading::new(&s.gateway, &s.device, &s.kind, 1, seq, start + ts);
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
    let mut times: BTreeSet<i64> = readings
        .keys()
        .copied()
        .chain(test.expect.iter().map(|e| e.at_ms))
        .chain(registry_at.keys().copied())
        .collect();
    if let (Some(end), true) = (end, test.tick_ms > 0) {
        times.extend((0..=end / test.tick_ms).map(|k| k * test.tick_ms));
    }
    let mut outcome =
        Outcome { file: test.file.clone(), checked: 0, failures: Vec::new(), transitions: Vec::new() };
    let mut firing: BTreeMap<(String, String), AlertMessage> = BTreeMap::new();
    let mut expect = test.expect.iter().peekable();
    let times: BTreeSet<i64> = times
        .into_iter()
        .chain(test.silences.iter().map(|s| s.starts_ms))
        .chain(test.acks.iter().map(|a| a.at_ms))
        .collect();
    let (mut since, mut since_ms) = (0, None::<i64>);
    for t in times {
        if let Some(rows) = registry_at.get(&t) {
            for rows in rows {
                registry = registry.updated(rows);
            }
            engine.set_registry(registry.clone());
        }
        for s in test.silences.iter().filter(|s| s.starts_ms == t) {
            let silence = Silence { starts_ms: start + s.starts_ms, ends_ms: start + s.ends_ms, ..s.clone() };
            // Checked when parsed: a silence here is valid.
            let _ = engine.add_silence(silence);
        }
        let mut happened = Vec::new();
        for reading in readings.get(&t).into_iter().flatten() {
            happened.extend(engine.process(reading));
        }
        for a in test.acks.iter().filter(|a| a.at_ms == t) {
            match engine.acknowledge(&a.rule, &a.device, &a.who, &a.comment, start + t) {
                Ok(m) => happened.push(m),
                Err(e) => {
                    let problems = vec![format!("ack: {e}")];
                    let seen = outcome.transitions.len();
                    outcome.failures.push(Failure { line: a.line, at_ms: t, problems, seen });
                }
            }
        }
        if test.tick_ms > 0 && t % test.tick_ms == 0 {
            happened.extend(engine.tick(start + t));
        }
        for m in happened {
            let key = (m.rule.clone(), m.device.clone());
            match m.status {
                AlertStatus::Firing | AlertStatus::Silenced => {
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
            if let Some(want) = &e.silenced {
                problems.extend(compare(&label("silenced"), want, of(AlertStatus::Silenced).collect()));
            }
            if let Some(want) = &e.acknowledged {
                problems.extend(compare(
                    &label("acknowledged"),
                    want,
                    of(AlertStatus::Acknowledged).collect(),
                ));
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
