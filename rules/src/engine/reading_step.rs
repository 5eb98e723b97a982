//! One reading through the engine, in steps that each touch one part of the state:
//! [`DeviceState::admit`] (is it newer, what changed), [`push_windows`] and [`aggregates`] (the
//! window series), [`Checks`] (conditions over the reading, counted), [`note_maintenance`]
//! (latest `inhibit_when` answers), then one step per rule type: [`step_threshold`],
//! [`step_codes`], [`resolve_no_data`] and [`resolve_gateway_no_data`]. Every step takes its
//! time as an argument: the reading's `ts`, or `now`, the host's time as far as the engine
//! knows it ([`host_time`]). [`Engine::step_reading`] only wires them together and renders
//! the transitions as messages.

use std::cell::OnceCell;
use std::sync::Arc;

use telemetry::{AlertMessage, Reading, Value};

use super::plan::KindPlan;
use super::rule_errors::{no_answer, ErrorsByRule};
use super::{after, attribute_map, message, no_data, slot, step_slot, DeviceState, Engine, EngineStats};
use super::{AlertKey, Names, Slots};
use crate::alert::{AlertState, Transition, Ts};
use crate::expr::{Bindings, Condition, Evaluator};
use crate::rule_file::{Codes, Rule, RuleType};
use crate::window::Series;

#[cfg(test)]
mod tests;

impl DeviceState {
    /// The state of a device first seen in `reading`, at the host's time `host_now`.
    fn first_seen(reading: &Reading, plan: &KindPlan, names: &mut Names, host_now: Ts) -> DeviceState {
        DeviceState {
            kind: names.get(&reading.kind),
            gateway: names.get(&reading.gateway),
            last_seen: Ts::MIN,
            // Seen now: with no values ever, it has sent no data since.
            last_data: reading.ts_ms,
            active_at: host_now,
            windows: vec![Series::default(); plan.windows.len()].into(),
            alerts: Vec::new(),
            maintenance: Vec::new(),
        }
    }

    /// Records a reading that arrived at the host's time `host_now`. Returns false, changing
    /// only when the device was last active, for a reading no newer than the device's newest.
    /// A reading of another kind starts the window series afresh.
    fn admit(&mut self, reading: &Reading, plan: &KindPlan, names: &mut Names, host_now: Ts) -> bool {
        let ts = reading.ts_ms;
        self.active_at = host_now;
        if ts <= self.last_seen {
            return false;
        }
        self.last_seen = ts;
        if !reading.values.is_empty() {
            self.last_data = ts;
        }
        if *self.kind != *reading.kind {
            self.kind = names.get(&reading.kind);
            self.windows = vec![Series::default(); plan.windows.len()].into();
        }
        if *self.gateway != *reading.gateway {
            self.gateway = names.get(&reading.gateway);
        }
        true
    }
}

/// The host's time as far as the engine knows it: the newest tick's, or the reading's if newer
/// (or if no tick came yet).
fn host_time(tick: Option<Ts>, ts: Ts) -> Ts {
    tick.map_or(ts, |n| n.max(ts))
}

/// Adds the reading's values to the window series of its kind's plan.
fn push_windows(plan: &KindPlan, windows: &mut [Series], reading: &Reading) {
    for (((point, keep_ms), spacing), series) in plan.windows.iter().zip(&plan.spacing).zip(windows) {
        if let Some(v) = reading.values.get(point).and_then(Value::as_f64) {
            series.push_spaced(reading.ts_ms, v, *keep_ms, *spacing);
        }
    }
}

/// The plan's aggregates at the reading's time, by variable. An aggregate has a value only when
/// this reading carries its point and its window holds enough samples.
fn aggregates<'p>(plan: &'p KindPlan, windows: &[Series], reading: &Reading) -> Vec<(&'p str, f64)> {
    plan.aggregates
        .iter()
        .filter(|a| reading.values.get(&plan.windows[a.window].0).and_then(Value::as_f64).is_some())
        .filter_map(|a| {
            let v = windows[a.window].aggregate(a.func, a.window_ms, reading.ts_ms)?;
            Some((a.variable.as_str(), v))
        })
        .collect()
}

/// Conditions over one reading's bindings, each counted as an evaluation, and as an error of
/// its rule, with why, when it gives no answer.
struct Checks<'a> {
    evaluator: &'a Evaluator,
    bindings: &'a Bindings<'a>,
    reading: &'a Reading,
    stats: &'a mut EngineStats,
    errors: &'a mut ErrorsByRule,
}

impl Checks<'_> {
    /// Rule `rule`'s `condition`.
    fn check(&mut self, rule: usize, condition: &Condition) -> Option<bool> {
        let answer = self.evaluator.check(condition, self.bindings);
        let (evaluator, reading, bindings) = (self.evaluator, self.reading, self.bindings);
        self.count(rule, answer.is_some(), || no_answer(evaluator, reading, condition, bindings));
        answer
    }

    /// One evaluation of rule `rule`; `why` is the error's text when it had no answer (built
    /// only when the rule's newest text is due).
    fn count(&mut self, rule: usize, answered: bool, why: impl FnOnce() -> String) {
        self.stats.evaluations += 1;
        if !answered {
            self.stats.eval_errors += 1;
            self.errors.record(rule, self.reading.ts_ms, why);
        }
    }

    /// A threshold rule's (matched, cleared): its `clear` condition while it fires, if it has
    /// one, else its `when`.
    fn threshold(
        &mut self,
        rule: usize,
        when: &Condition,
        clear: Option<&Condition>,
        firing: bool,
    ) -> Option<(bool, bool)> {
        match (clear, firing) {
            (Some(clear), true) => self.check(rule, clear).map(|c| (!c, c)),
            _ => self.check(rule, when).map(|m| (m, !m)),
        }
    }
}

/// Records the latest answer `on` of the `inhibit_when` condition `source`, seen at `ts`.
fn note_maintenance(
    maintenance: &mut Vec<(Arc<str>, bool, Ts)>,
    source: &str,
    on: bool,
    ts: Ts,
    names: &mut Names,
) {
    match maintenance.iter_mut().find(|m| *m.0 == *source) {
        Some(latest) => (latest.1, latest.2) = (on, ts),
        None => {
            maintenance.reserve_exact(1);
            maintenance.push((names.get(source), on, ts));
        }
    }
}

/// Whether `rule` is inhibited: the latest answer of its `inhibit_when` condition is true.
fn in_maintenance(maintenance: &[(Arc<str>, bool, Ts)], rule: &Rule) -> bool {
    let source = rule.lifecycle.inhibit_when.as_ref().map(|c| c.source.as_str());
    source.is_some_and(|s| maintenance.iter().any(|(m, on, _)| **m == *s && *on))
}

/// Steps threshold rule `i` with its observation at `ts`. In maintenance nothing new goes
/// pending or fires; a firing alert may clear.
fn step_threshold(
    alerts: &mut Slots<AlertKey>,
    i: usize,
    rule: &Rule,
    (matched, cleared): (bool, bool),
    inhibited: bool,
    ts: Ts,
) -> Option<Transition> {
    step_slot(alerts, (i, None), matched && !inhibited, cleared, rule, ts, None).map(|(t, _)| t)
}

/// A transition of a fault-code or bits rule, with the code (or codes, comma-separated) and
/// name(s) its message shows.
#[derive(Debug, PartialEq)]
struct CodeTransition {
    transition: Transition,
    /// `Some` for a per_code rule: the alert's own code name, which its id ends with.
    per_code: Option<String>,
    code: String,
    code_name: String,
}

/// Steps fault-code or bits rule `i` (`codes`) with its point's `value` at `ts`: one alert per
/// listed code for a per_code rule, else one alert that holds while any listed code is active.
fn step_codes(
    alerts: &mut Slots<AlertKey>,
    i: usize,
    rule: &Rule,
    codes: &Codes,
    value: i64,
    inhibited: bool,
    ts: Ts,
) -> Vec<CodeTransition> {
    let active = active(codes, matches!(rule.rule_type, RuleType::Bits(_)), value);
    let mut out = Vec::new();
    if codes.per_code {
        for (&code, name) in &codes.names {
            let matched = active.iter().any(|&(c, _)| c == code);
            let raised = matched && !inhibited;
            if let Some((transition, _)) =
                step_slot(alerts, (i, Some(code)), raised, !matched, rule, ts, None)
            {
                let (code, code_name) = (code.to_string(), name.clone());
                out.push(CodeTransition { transition, per_code: Some(name.clone()), code, code_name });
            }
        }
    } else {
        let matched = !active.is_empty();
        let detail = matched.then(|| {
            let codes: Vec<String> = active.iter().map(|(c, _)| c.to_string()).collect();
            let names: Vec<&str> = active.iter().map(|(_, n)| *n).collect();
            (codes.join(","), names.join(","))
        });
        if let Some((transition, detail)) =
            step_slot(alerts, (i, None), matched && !inhibited, !matched, rule, ts, detail)
        {
            let (code, code_name) = detail.unwrap_or_default();
            out.push(CodeTransition { transition, per_code: None, code, code_name });
        }
    }
    out
}

/// The value of a fault-code or alarm-word point as an integer.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(*f as i64),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// The listed codes active in `value`: the value itself, or each set bit of an alarm word.
fn active(codes: &Codes, bits: bool, value: i64) -> Vec<(i64, &str)> {
    codes
        .names
        .iter()
        .filter(|(&c, _)| if bits { (value >> c) & 1 == 1 } else { value == c })
        .map(|(&c, n)| (c, n.as_str()))
        .collect()
}

/// A reading resolves no_data rule `i` at `now` when the device's newest data (`last_data`) is
/// younger than the rule's `after`: data is back, unless the reading is itself older than
/// `after` (a replay). Only `tick` fires it.
fn resolve_no_data(
    alerts: &mut Slots<AlertKey>,
    i: usize,
    rule: &Rule,
    last_data: Ts,
    now: Ts,
) -> Option<Transition> {
    let (_, after_ms) = after(rule);
    if now.saturating_sub(last_data) >= after_ms {
        return None;
    }
    step_slot(alerts, (i, None), false, true, rule, now, None).map(|(t, _)| t)
}

/// A reading at `ts` resolves gateway_no_data rule `i` of its gateway at `now` the same way.
fn resolve_gateway_no_data(
    alerts: &mut Slots<usize>,
    i: usize,
    rule: &Rule,
    ts: Ts,
    now: Ts,
) -> Option<Transition> {
    let (_, after_ms) = after(rule);
    if now.saturating_sub(ts) >= after_ms {
        return None;
    }
    step_slot(alerts, i, false, true, rule, now, None).map(|(t, _)| t)
}

impl Engine {
    /// The state machine's transitions of one reading.
    pub(super) fn step_reading(&mut self, reading: &Reading) -> Vec<AlertMessage> {
        self.stats.readings += 1;
        let ts = reading.ts_ms;
        let host_now = self.now.unwrap_or(ts);
        if !self.plans.contains_key(&reading.kind) {
            self.plans.insert(reading.kind.clone(), KindPlan::new(&self.rules.rules, &reading.kind));
        }
        let plan = &self.plans[&reading.kind];
        if !self.devices.contains_key(reading.device.as_str()) {
            let state = DeviceState::first_seen(reading, plan, &mut self.names, host_now);
            self.devices.insert(reading.device.as_str().into(), state);
        }
        let device = self.devices.get_mut(reading.device.as_str()).expect("inserted above");
        if !device.admit(reading, plan, &mut self.names, host_now) {
            return Vec::new();
        }
        push_windows(plan, &mut device.windows, reading);
        let aggregates = aggregates(plan, &device.windows, reading);
        let resolved = OnceCell::new();
        let attributes = || {
            let unit = self.registry.get(&reading.device);
            resolved.get_or_init(|| attribute_map(unit, self.attributes.get(&reading.device))).as_deref()
        };
        let with_device = plan.reads_device;
        let bindings =
            Bindings::new(reading, if with_device { attributes() } else { None }, with_device, &aggregates);
        let mut checks = Checks {
            evaluator: &self.evaluator,
            bindings: &bindings,
            reading,
            stats: &mut self.stats,
            errors: &mut self.rule_errors,
        };
        let rules = &self.rules.rules;
        for &i in &plan.signals {
            let RuleType::Inspection(rule) = &rules[i].rule_type else { continue };
            let Some(signal) = &rule.signal else { continue };
            let maintained = checks.check(i, signal);
            self.schedules.saw(&reading.device, ts, maintained == Some(true));
        }
        for &i in &plan.inhibits {
            let Some(inhibit) = &rules[i].lifecycle.inhibit_when else { continue };
            // A reading without the signal: the latest answer stands.
            if let Some(on) = checks.check(i, inhibit) {
                note_maintenance(&mut device.maintenance, &inhibit.source, on, ts, &mut self.names);
            }
        }
        let now = host_time(self.now, ts);
        let mut out = Vec::new();
        for &i in &plan.rules {
            let rule = &rules[i];
            let inhibited = in_maintenance(&device.maintenance, rule);
            match &rule.rule_type {
                RuleType::Threshold { when, clear } => {
                    let firing = slot(&device.alerts, &(i, None))
                        .is_some_and(|s| matches!(s.alert.state, AlertState::Firing { .. }));
                    // No answer is not an answer: the alert stays as it is.
                    let Some(observed) = checks.threshold(i, when, clear.as_ref(), firing) else { continue };
                    if let Some(t) = step_threshold(&mut device.alerts, i, rule, observed, inhibited, ts) {
                        out.push(message(rule, rule.id.clone(), reading, attributes(), &[], t, ts));
                    }
                }
                RuleType::FaultCode(codes) | RuleType::Bits(codes) => {
                    let value = reading.values.get(&codes.point).and_then(integer);
                    let why =
                        || format!("{}: `{}` is missing or not an integer", reading.device, codes.point);
                    checks.count(i, value.is_some(), why);
                    let Some(value) = value else { continue };
                    for c in step_codes(&mut device.alerts, i, rule, codes, value, inhibited, ts) {
                        let extra = [("code", c.code.as_str()), ("code_name", c.code_name.as_str())];
                        let id =
                            c.per_code.map_or_else(|| rule.id.clone(), |name| format!("{}.{name}", rule.id));
                        out.push(message(rule, id, reading, attributes(), &extra, c.transition, ts));
                    }
                }
                RuleType::NoData { .. } => {
                    if let Some(t) = resolve_no_data(&mut device.alerts, i, rule, device.last_data, now) {
                        let (after, _) = after(rule);
                        let extra = [("after", after.as_str())];
                        out.push(message(rule, rule.id.clone(), reading, attributes(), &extra, t, now));
                    }
                }
                RuleType::GatewayNoData { .. } | RuleType::Inspection(_) => {}
            }
        }
        for &i in &plan.gateway {
            let rule = &rules[i];
            let Some(gateway) = self.gateways.get_mut(&reading.gateway) else { break };
            if let Some(t) = resolve_gateway_no_data(&mut gateway.alerts, i, rule, ts, now) {
                let (after, _) = after(rule);
                let origin = no_data::gateway_reading(&reading.gateway, now);
                out.push(message(rule, rule.id.clone(), &origin, None, &[("after", &after)], t, now));
            }
        }
        out
    }
}
