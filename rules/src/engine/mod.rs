//! All rules over all devices. [`Engine::process`] takes one reading and returns the alert
//! transitions it causes, stamped with the reading's time; [`Engine::tick`] tells the engine the
//! host's time, for the no-data and inspection rules, since the engine has no clock of its own.
//! [`Engine::set_registry`] gives it the equipment registry: attributes and inspection units.
//! A reading goes through small steps, one per part of the state, in `reading_step`.
//!
//! State per device: its alerts, keyed by rule and code (the code or bit of a `per_code` rule,
//! none otherwise), and one window series per point its kind's rules aggregate. Per gateway:
//! the alerts of `gateway_no_data` rules. Every alert moves only through [`alert::step`].
//! A device costs a few hundred bytes besides its window samples: kinds, gateways and
//! maintenance sources are shared strings, and alerts and maintenance answers are short lists
//! that allocate only when used. Idle devices are forgotten ([`Engine::set_evict_idle_after`]).
//!
//! [`alert::step`]: crate::alert::step

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use telemetry::{AlertMessage, AlertStatus, Reading, Value};

use crate::alert::{step, Alert, AlertState, Transition, Ts};
use crate::date::CHINA_UTC_OFFSET_MS;
use crate::expr::Evaluator;
use crate::registry::{Registry, Unit};
use crate::rule_file::{Rule, RuleSet, RuleType};
use crate::window::Series;
use inspection::Schedules;
use lifecycle::Lifecycle;
use plan::KindPlan;

pub use census::Firing;
pub use inspection::REGISTRY_GATEWAY;
pub use inspection::{InspectionAlert, InspectionSnapshot};
pub use lifecycle::{
    Ack, LifecycleDefaults, LifecycleError, Matchers, Silence, Tracked, FLAPPING_MARK, REMINDER_MARK,
};
pub use rule_errors::{RuleErrors, ERROR_TEXT_EVERY_MS};
pub use snapshot::{
    AlertSnapshot, DeviceSnapshot, EngineSnapshot, FlapSnapshot, GatewaySnapshot, SnapshotError,
    WindowSnapshot, SNAPSHOT_VERSION,
};

mod census;
mod evict;
mod inspection;
mod lifecycle;
mod no_data;
mod plan;
mod reading_step;
mod rule_errors;
mod snapshot;
#[cfg(test)]
mod tests;

/// The engine's maps are looked up several times per reading by short keys (device ids, kinds,
/// rule indexes), where the standard SipHash costs more than the lookup itself. aHash is much
/// faster and still keyed at random per process, so device ids sent by gateways cannot be
/// crafted to collide.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// Strings many devices share (kinds, gateways, maintenance sources), held once.
#[derive(Debug, Default)]
struct Names(HashSet<Arc<str>, ahash::RandomState>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.0.insert(n.clone());
        n
    }

    /// Forgets the names nothing else holds any more.
    fn forget_unused(&mut self) {
        self.0.retain(|n| Arc::strong_count(n) > 1);
    }
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub readings: u64,
    pub evaluations: u64,
    /// Conditions that gave no answer (a point missing from the reading, a type mismatch).
    pub eval_errors: u64,
    /// Idle devices whose state was forgotten.
    pub devices_evicted: u64,
}

/// One alert, and the codes and names it shows in its summary (fault-code and bits rules).
#[derive(Clone, Debug, Default)]
struct Slot {
    alert: Alert,
    detail: Option<(String, String)>,
}

/// A device's alerts: by rule index and, for `per_code` rules, code.
type AlertKey = (usize, Option<i64>);

/// Alerts that are not inactive, by key: a list, since a device has none or a few and an
/// empty `Vec` allocates nothing.
type Slots<K> = Vec<(K, Slot)>;

fn slot<'a, K: Eq>(slots: &'a [(K, Slot)], key: &K) -> Option<&'a Slot> {
    slots.iter().find(|(k, _)| k == key).map(|(_, s)| s)
}

#[derive(Debug)]
struct DeviceState {
    kind: Arc<str>,
    gateway: Arc<str>,
    /// Time of the newest reading; older and repeated readings are ignored.
    last_seen: Ts,
    /// Time of the newest reading with at least one value: what no_data rules watch. A device
    /// whose every point fails to read sends no data.
    last_data: Ts,
    /// The host's time (of the newest tick, or before any the reading's) of its newest reading,
    /// late ones included: how long it has been idle.
    active_at: Ts,
    /// One series per point of its kind's plan.
    windows: Box<[Series]>,
    alerts: Slots<AlertKey>,
    /// The latest answer to each `inhibit_when` condition (by its source) and when it came:
    /// true while the device is in maintenance.
    maintenance: Vec<(Arc<str>, bool, Ts)>,
}

#[derive(Debug, Default)]
struct GatewayState {
    /// By rule index.
    alerts: Slots<usize>,
}

#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    evaluator: Evaluator,
    /// By equipment kind, made at the kind's first reading.
    plans: FastMap<String, KindPlan>,
    devices: FastMap<Box<str>, DeviceState>,
    gateways: FastMap<String, GatewayState>,
    names: Names,
    eviction: evict::Eviction,
    /// Given with `set_attributes`, over the registry's.
    attributes: FastMap<String, BTreeMap<String, Value>>,
    registry: Arc<Registry>,
    schedules: Schedules,
    /// Where due dates fall: the equipment's UTC offset.
    utc_offset_ms: i64,
    /// The newest time `tick` was given.
    now: Option<Ts>,
    stats: EngineStats,
    rule_errors: rule_errors::ErrorsByRule,
    /// Alert id (`{id}`, or `{id}.{code name}` of a per_code rule) to rule index.
    alert_rules: HashMap<String, usize>,
    lifecycle: Lifecycle,
    lifecycle_defaults: LifecycleDefaults,
}

/// A device's `device.…` attributes: its registry row, with those given by
/// [`Engine::set_attributes`] over it.
fn attribute_map<'a>(
    unit: Option<&Unit>,
    given: Option<&'a BTreeMap<String, Value>>,
) -> Option<Cow<'a, BTreeMap<String, Value>>> {
    let Some(unit) = unit else { return given.map(Cow::Borrowed) };
    let mut map = unit.attributes();
    map.extend(given.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    Some(Cow::Owned(map))
}

/// Steps the alert under `key`, creating it only when its condition holds and forgetting it once
/// it is inactive again. Returns the transition with the alert's detail.
fn step_slot<K: Eq + Copy>(
    alerts: &mut Slots<K>,
    key: K,
    matched: bool,
    cleared: bool,
    rule: &Rule,
    ts: Ts,
    detail: Option<(String, String)>,
) -> Option<(Transition, Option<(String, String)>)> {
    let at = match alerts.iter().position(|(k, _)| *k == key) {
        Some(at) => at,
        None if !matched => return None,
        None => {
            alerts.reserve_exact(1);
            alerts.push((key, Slot::default()));
            alerts.len() - 1
        }
    };
    let slot = &mut alerts[at].1;
    if matched && detail.is_some() {
        slot.detail = detail;
    }
    let transition = step(&mut slot.alert, matched, cleared, rule.hold_for.as_millis() as i64, ts);
    let out = transition.map(|t| (t, slot.detail.clone()));
    if slot.alert.state == AlertState::Inactive {
        // `process` drops readings older than the device's newest, so an inactive alert needs
        // no memory of its last step.
        alerts.swap_remove(at);
        if alerts.is_empty() {
            *alerts = Vec::new();
        }
    }
    out
}

/// How long a no-data rule waits, as text for its summary (`{after}`) and in milliseconds.
fn after(rule: &Rule) -> (String, i64) {
    match rule.rule_type {
        RuleType::NoData { after } | RuleType::GatewayNoData { after } => {
            (humantime::format_duration(after).to_string(), after.as_millis().min(i64::MAX as u128) as i64)
        }
        _ => (String::new(), i64::MAX),
    }
}

/// An alert message for `rule` under `alert_rule` (its id, or `{id}.{code name}`); the summary
/// renders with `reading`, which names the device, gateway and kind.
fn message(
    rule: &Rule,
    alert_rule: String,
    reading: &Reading,
    attributes: Option<&BTreeMap<String, Value>>,
    extra: &[(&str, &str)],
    t: Transition,
    ts: Ts,
) -> AlertMessage {
    let (status, active_at, fired_at, resolved_at) = match t {
        Transition::Fired { active_at, fired_at } => (AlertStatus::Firing, active_at, fired_at, None),
        Transition::Resolved { active_at, fired_at, resolved_at } => {
            (AlertStatus::Resolved, active_at, fired_at, Some(resolved_at))
        }
    };
    AlertMessage {
        rule: alert_rule,
        device: reading.device.clone(),
        gateway: reading.gateway.clone(),
        kind: reading.kind.clone(),
        status,
        severity: rule.severity.as_str().to_string(),
        summary: rule.summary.render_with(reading, attributes, extra),
        active_at,
        fired_at: Some(fired_at),
        resolved_at,
        ts,
        source: rule.source.clone(),
        evidence: evidence(rule, reading, extra),
        acknowledged_by: None,
        comment: None,
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        Value::Text(t) => t.as_str().into(),
    }
}

/// What an alert shows as its evidence: the reading's values of the points the rule reads (its
/// code point, or its conditions' variables), and the template extras (an inspection alert's
/// due date and days).
fn evidence(rule: &Rule, reading: &Reading, extra: &[(&str, &str)]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut add = |point: &str| {
        if let Some(v) = reading.values.get(point) {
            out.insert(point.to_string(), json_value(v));
        }
    };
    match &rule.rule_type {
        RuleType::FaultCode(c) | RuleType::Bits(c) => add(&c.point),
        _ => rule.conditions().into_iter().flatten().flat_map(|c| c.variables()).for_each(|v| add(v)),
    }
    for (name, value) in extra {
        out.insert(name.to_string(), serde_json::Value::String(value.to_string()));
    }
    out
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        let mut engine = Engine {
            rules,
            evaluator: Evaluator::new(),
            plans: FastMap::default(),
            devices: FastMap::default(),
            gateways: FastMap::default(),
            names: Names::default(),
            eviction: evict::Eviction::default(),
            attributes: FastMap::default(),
            registry: Arc::default(),
            schedules: Schedules::default(),
            utc_offset_ms: CHINA_UTC_OFFSET_MS,
            now: None,
            stats: EngineStats::default(),
            rule_errors: Default::default(),
            alert_rules: HashMap::new(),
            lifecycle: Lifecycle::default(),
            lifecycle_defaults: LifecycleDefaults::default(),
        };
        engine.index_alerts();
        engine
    }

    /// Rebuilds the alert id index after the rules changed.
    fn index_alerts(&mut self) {
        self.alert_rules = (self.rules.rules.iter().enumerate())
            .flat_map(|(i, r)| r.alert_ids().into_iter().map(move |id| (id, i)))
            .collect();
    }

    /// The key of an alert id in its rule's state: the rule index and, for a per_code rule,
    /// the code.
    fn alert_key(&self, alert_id: &str) -> Option<AlertKey> {
        let &i = self.alert_rules.get(alert_id)?;
        let rule = &self.rules.rules[i];
        match &rule.rule_type {
            RuleType::FaultCode(c) | RuleType::Bits(c) if c.per_code => {
                let name = alert_id.strip_prefix(rule.id.as_str())?.strip_prefix('.')?;
                c.names.iter().find(|(_, n)| *n == name).map(|(&code, _)| (i, Some(code)))
            }
            _ => Some((i, None)),
        }
    }

    /// Every device seen in telemetry: (device, gateway, kind, time of its newest reading).
    pub fn devices_seen(&self) -> impl Iterator<Item = (&str, &str, &str, Ts)> {
        self.devices.iter().map(|(d, s)| (&**d, &*s.gateway, &*s.kind, s.last_seen))
    }

    /// Whether the engine holds state for `device` (it has sent a reading since it was last
    /// evicted or the state was restored).
    pub fn knows_device(&self, device: &str) -> bool {
        self.devices.contains_key(device)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules.rules
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Every loaded rule's evaluation errors, in the rules' order.
    pub fn rule_errors(&self) -> impl Iterator<Item = (&str, &RuleErrors)> {
        self.rule_errors.of(&self.rules.rules)
    }

    /// Sets a device's attributes (`device.rated_pressure_mpa` in conditions), over its
    /// registry row's.
    pub fn set_attributes(&mut self, device: &str, attributes: BTreeMap<String, Value>) {
        self.attributes.insert(device.to_string(), attributes);
    }

    /// The current state of one alert: `rule` as alert messages carry it (`{id}.{code name}`
    /// for `per_code` rules), `device` the device, or the gateway of a gateway rule.
    pub fn state(&self, rule: &str, device: &str) -> AlertState {
        let found = self.alert_key(rule);
        let slot = match found {
            Some((i, _)) if matches!(self.rules.rules[i].rule_type, RuleType::GatewayNoData { .. }) => {
                self.gateways.get(device).and_then(|g| slot(&g.alerts, &i))
            }
            Some((i, _)) if matches!(self.rules.rules[i].rule_type, RuleType::Inspection(_)) => {
                return self.schedules.state(i, device);
            }
            Some(key) => self.devices.get(device).and_then(|d| slot(&d.alerts, &key)),
            None => None,
        };
        slot.map_or(AlertState::Inactive, |s| s.alert.state)
    }

    /// Evaluates every rule of the reading's kind and returns the transitions, through the
    /// alert lifecycle (silences, flapping). A reading no newer than the device's newest (a
    /// late replay, a duplicate) changes nothing.
    pub fn process(&mut self, reading: &Reading) -> Vec<AlertMessage> {
        let raw = self.step_reading(reading);
        self.notify(raw)
    }
}
