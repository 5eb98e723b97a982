//! Inspection rules over the registry, on the host's clock. [`Engine::tick`] evaluates every
//! unit once a day (the first tick of each day where the equipment is, and the first after
//! [`Engine::set_registry`]), and in between only the devices whose maintenance signal came
//! in while their maintenance alert was active: due dates move a day at a time.
//!
//! One alert per device and rule, stepped through [`alert::step`]: it fires at the first lead
//! crossed (or overdue), and resolves when the due date is met again (a new inspection date in
//! the registry, maintenance seen in a reading) or the unit leaves the registry. A due date
//! that moves while the alert fires resolves that alert and raises one for the new date if it,
//! too, is near or past. As a due date comes closer and passes, each further stage (another
//! lead crossed, overdue, escalated) sends the firing alert again with its new severity and
//! summary: the retained `alerts/{device}/{rule}` shows the latest.
//!
//! [`alert::step`]: crate::alert::step

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use telemetry::{AlertMessage, Reading, Value};

use super::{attribute_map, message, DeviceState, Engine, FastMap};
use crate::alert::{step, Alert, AlertState, Transition, Ts};
use crate::date::Date;
use crate::inspection::{self, Check, Schedule};
use crate::registry::{Registry, Unit};
use crate::rule_file::{InspectionRule, Rule, RuleType};

/// The gateway of an inspection alert for a device that has sent no reading: the registry.
pub const REGISTRY_GATEWAY: &str = "registry";

/// The maintenance signal of one device, as its readings showed it.
#[derive(Clone, Copy, Debug)]
struct Maintenance {
    /// Its first reading: no maintenance seen since then is as long as we can vouch for.
    since: Ts,
    /// Its newest reading that showed maintenance.
    last: Option<Ts>,
}

/// One inspection alert.
#[derive(Clone, Debug)]
struct Slot {
    alert: Alert,
    /// The unit's kind when it fired, for a unit that leaves the registry.
    kind: String,
    due: Date,
    from: Option<Date>,
    stage: usize,
}

#[derive(Debug, Default)]
pub(super) struct Schedules {
    /// Active alerts by device: (rule index, slot).
    alerts: HashMap<String, Vec<(usize, Slot)>>,
    maintenance: HashMap<String, Maintenance>,
    /// The day of the last full evaluation; none: evaluate everything at the next tick.
    evaluated: Option<Date>,
    /// Devices to evaluate at the next tick.
    dirty: HashSet<String>,
}

/// One inspection alert in a snapshot, by rule id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InspectionAlert {
    pub device: String,
    pub rule: String,
    pub alert: Alert,
    pub kind: String,
    pub due: Date,
    pub from: Option<Date>,
    pub stage: usize,
}

/// The inspection rules' state in a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectionSnapshot {
    pub alerts: Vec<InspectionAlert>,
    /// Device, first reading, newest reading that showed maintenance.
    pub maintenance: Vec<(String, Ts, Option<Ts>)>,
    /// The day of the last full evaluation.
    pub evaluated: Option<Date>,
    pub dirty: Vec<String>,
}

impl Schedules {
    pub(super) fn export(&self, rules: &[Rule]) -> InspectionSnapshot {
        let mut alerts: Vec<InspectionAlert> = (self.alerts.iter())
            .flat_map(|(device, slots)| {
                slots.iter().map(move |(i, s)| InspectionAlert {
                    device: device.clone(),
                    rule: rules[*i].id.clone(),
                    alert: s.alert,
                    kind: s.kind.clone(),
                    due: s.due,
                    from: s.from,
                    stage: s.stage,
                })
            })
            .collect();
        alerts.sort_by(|a, b| (&a.device, &a.rule).cmp(&(&b.device, &b.rule)));
        let mut maintenance: Vec<_> =
            self.maintenance.iter().map(|(d, m)| (d.clone(), m.since, m.last)).collect();
        maintenance.sort();
        let mut dirty: Vec<String> = self.dirty.iter().cloned().collect();
        dirty.sort();
        InspectionSnapshot { alerts, maintenance, evaluated: self.evaluated, dirty }
    }

    /// The state of a snapshot, for `rules`: alerts of rules gone (or no longer inspection
    /// rules) are dropped and returned as (rule id, device).
    pub(super) fn import(snapshot: InspectionSnapshot, rules: &[Rule]) -> (Schedules, Vec<(String, String)>) {
        let mut schedules = Schedules {
            maintenance: (snapshot.maintenance.into_iter())
                .map(|(d, since, last)| (d, Maintenance { since, last }))
                .collect(),
            evaluated: snapshot.evaluated,
            dirty: snapshot.dirty.into_iter().collect(),
            ..Schedules::default()
        };
        let mut dropped = Vec::new();
        for a in snapshot.alerts {
            let rule =
                rules.iter().position(|r| r.id == a.rule && matches!(r.rule_type, RuleType::Inspection(_)));
            let Some(i) = rule else {
                dropped.push((a.rule, a.device));
                continue;
            };
            let slot = Slot { alert: a.alert, kind: a.kind, due: a.due, from: a.from, stage: a.stage };
            schedules.alerts.entry(a.device).or_default().push((i, slot));
        }
        (schedules, dropped)
    }

    /// Evaluate every unit again at the next tick.
    pub(super) fn invalidate(&mut self) {
        self.evaluated = None;
    }

    /// A reading of a device whose kind has a maintenance signal; `maintained`: it shows it.
    pub(super) fn saw(&mut self, device: &str, ts: Ts, maintained: bool) {
        if !self.maintenance.contains_key(device) {
            self.maintenance.insert(device.to_string(), Maintenance { since: ts, last: None });
        }
        let m = self.maintenance.get_mut(device).expect("inserted above");
        if maintained {
            m.last = Some(m.last.map_or(ts, |l| l.max(ts)));
            if self.alerts.contains_key(device) {
                self.dirty.insert(device.to_string());
            }
        }
    }

    /// Whether the device has an inspection alert.
    pub(super) fn has_alerts(&self, device: &str) -> bool {
        self.alerts.contains_key(device)
    }

    /// Forgets the maintenance signal seen from a device (evicted; see `engine::evict`).
    pub(super) fn forget(&mut self, device: &str) {
        self.maintenance.remove(device);
        self.dirty.remove(device);
    }

    pub(super) fn state(&self, rule: usize, device: &str) -> AlertState {
        let slots = self.alerts.get(device).into_iter().flatten();
        slots.filter(|(r, _)| *r == rule).map(|(_, s)| s.alert.state).next().unwrap_or_default()
    }
}

/// What one tick's pass needs from the engine, borrowed apart from the schedules it changes.
struct Pass<'e> {
    rules: &'e [Rule],
    devices: &'e FastMap<Box<str>, DeviceState>,
    attributes: &'e FastMap<String, BTreeMap<String, Value>>,
    today: Date,
    now: Ts,
    offset_ms: i64,
}

/// Stage 0: nothing to say; otherwise a stage of [`inspection::Status::stage`].
#[derive(Clone, Copy)]
struct Target {
    due: Date,
    from: Option<Date>,
    stage: usize,
}

impl Pass<'_> {
    fn inspection_rule(&self, i: usize) -> &InspectionRule {
        match &self.rules[i].rule_type {
            RuleType::Inspection(r) => r,
            _ => unreachable!("only inspection rules are passed"),
        }
    }

    /// Where the rule's check of the device stands today.
    fn target(&self, i: usize, unit: Option<&Unit>, maintenance: Option<&Maintenance>) -> Option<Target> {
        let rule = self.inspection_rule(i);
        let (due, from) = match rule.check {
            Check::Maintenance => {
                let recorded = unit.and_then(|u| u.date("last_maintenance"));
                let seen = maintenance.and_then(|m| m.last).map(|t| Date::from_ms(t, self.offset_ms));
                let last = recorded.max(seen);
                let start = last.or_else(|| maintenance.map(|m| Date::from_ms(m.since, self.offset_ms)))?;
                (inspection::maintenance_due(start, unit), last)
            }
            check => match inspection::due_of(check, unit?) {
                Schedule::Due(d) => (d.due, d.from),
                _ => return None,
            },
        };
        let status = inspection::status(due, self.today, &rule.lead_days, rule.escalate_after_days);
        Some(Target { due, from, stage: status.stage(rule.lead_days.len()) })
    }

    fn message(
        &self,
        i: usize,
        device: &str,
        kind: &str,
        unit: Option<&Unit>,
        slot: &Slot,
        t: Transition,
    ) -> AlertMessage {
        let rule = &self.rules[i];
        let ir = self.inspection_rule(i);
        let gateway = self.devices.get(device).map_or(REGISTRY_GATEWAY, |d| &*d.gateway);
        let kind = if kind.is_empty() { slot.kind.as_str() } else { kind };
        let origin = Reading::new(gateway, device, kind, 0, 0, self.now);
        let days_left = slot.due.days_since(self.today);
        let (due, left, overdue) =
            (slot.due.to_string(), days_left.max(0).to_string(), (-days_left).max(0).to_string());
        let last = slot.from.map_or_else(|| "?".to_string(), |d| d.to_string());
        let extra = [
            ("due", due.as_str()),
            ("days_left", left.as_str()),
            ("days_overdue", overdue.as_str()),
            ("last", last.as_str()),
            ("check", ir.check.as_str()),
        ];
        let attributes = attribute_map(unit, self.attributes.get(device));
        let mut m = message(rule, rule.id.clone(), &origin, attributes.as_deref(), &extra, t, self.now);
        m.severity = ir.severity(slot.stage, rule.severity).as_str().to_string();
        if let (Some(soon), true) = (&ir.due_soon_summary, slot.stage <= ir.lead_days.len()) {
            m.summary = soon.render_with(&origin, attributes.as_deref(), &extra);
        }
        m
    }

    /// Steps the device's alert of rule `i` towards `target`.
    fn step(
        &self,
        schedules: &mut Schedules,
        i: usize,
        (device, kind, unit): (&str, &str, Option<&Unit>),
        target: Option<Target>,
        out: &mut Vec<AlertMessage>,
    ) {
        let target = target.filter(|t| t.stage > 0);
        let slots = schedules.alerts.get_mut(device);
        let existing = slots.as_ref().and_then(|s| s.iter().position(|(r, _)| *r == i));
        let mut slots_left = true;
        if let (Some(slots), Some(at)) = (slots, existing) {
            let slot = &mut slots[at].1;
            match target {
                Some(t) if t.due == slot.due => {
                    if t.stage > slot.stage {
                        slot.stage = t.stage;
                        if let AlertState::Firing { active_at, fired_at } = slot.alert.state {
                            let again = Transition::Fired { active_at, fired_at };
                            out.push(self.message(i, device, kind, unit, slot, again));
                        }
                    }
                    return;
                }
                _ => {
                    if let Some(t) = step(&mut slot.alert, false, true, 0, self.now) {
                        out.push(self.message(i, device, kind, unit, slot, t));
                    }
                    slots.remove(at);
                    slots_left = !slots.is_empty();
                }
            }
        }
        if !slots_left {
            schedules.alerts.remove(device);
        }
        if let Some(t) = target {
            let mut slot = Slot {
                alert: Alert::default(),
                kind: kind.to_string(),
                due: t.due,
                from: t.from,
                stage: t.stage,
            };
            if let Some(fired) = step(&mut slot.alert, true, false, 0, self.now) {
                out.push(self.message(i, device, kind, unit, &slot, fired));
                schedules.alerts.entry(device.to_string()).or_default().push((i, slot));
            }
        }
    }

    /// Every inspection rule of the device's kind.
    fn device(
        &self,
        schedules: &mut Schedules,
        rules: &[usize],
        who: (&str, &str, Option<&Unit>),
        out: &mut Vec<AlertMessage>,
    ) {
        let maintenance = schedules.maintenance.get(who.0).copied();
        for &i in rules {
            let target = self.target(i, who.2, maintenance.as_ref());
            self.step(schedules, i, who, target, out);
        }
        // Alerts of rules that no longer apply (the unit changed kind, or left the registry).
        let stale: Vec<usize> = schedules
            .alerts
            .get(who.0)
            .into_iter()
            .flatten()
            .map(|(r, _)| *r)
            .filter(|r| !rules.contains(r))
            .collect();
        for i in stale {
            self.step(schedules, i, who, None, out);
        }
    }
}

impl Engine {
    /// Replaces the equipment registry: the devices' `device.…` attributes (those given with
    /// [`Engine::set_attributes`] stay on top) and the units the inspection rules watch, all
    /// evaluated again at the next tick. Cheap: the engine keeps the `Arc`.
    pub fn set_registry(&mut self, registry: impl Into<Arc<Registry>>) {
        self.registry = registry.into();
        self.schedules.evaluated = None;
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The UTC offset of the equipment's calendar, for due dates (default UTC+8).
    pub fn set_utc_offset(&mut self, offset_ms: i64) {
        self.utc_offset_ms = offset_ms;
        self.schedules.evaluated = None;
    }

    /// The inspection rules' transitions at `now`.
    pub(super) fn tick_inspections(&mut self, now: Ts) -> Vec<AlertMessage> {
        let today = Date::from_ms(now, self.utc_offset_ms);
        let Engine { rules, devices, attributes, registry, schedules, utc_offset_ms, .. } = self;
        let rules = &rules.rules;
        let inspection: Vec<usize> =
            (0..rules.len()).filter(|&i| matches!(rules[i].rule_type, RuleType::Inspection(_))).collect();
        let full = schedules.evaluated != Some(today);
        if inspection.is_empty() || (!full && schedules.dirty.is_empty()) {
            schedules.evaluated = Some(today);
            return Vec::new();
        }
        let pass = Pass { rules, devices, attributes, today, now, offset_ms: *utc_offset_ms };
        let mut by_kind: HashMap<String, Rc<[usize]>> = HashMap::new();
        let mut rules_of = |kind: &str| -> Rc<[usize]> {
            if let Some(r) = by_kind.get(kind) {
                return Rc::clone(r);
            }
            let r: Rc<[usize]> = inspection.iter().copied().filter(|&i| rules[i].applies_to(kind)).collect();
            by_kind.insert(kind.to_string(), Rc::clone(&r));
            r
        };
        let mut out = Vec::new();
        let mut devices_to_do: Vec<String> = std::mem::take(&mut schedules.dirty).into_iter().collect();
        if full {
            for unit in registry.units() {
                let rules = rules_of(&unit.kind);
                // A kind with no inspection rules: only alerts left from another kind to resolve.
                if !rules.is_empty() || schedules.alerts.contains_key(&unit.device) {
                    pass.device(schedules, &rules, (&unit.device, &unit.kind, Some(unit)), &mut out);
                }
            }
            // Devices known only from telemetry, and alerts of units gone from the registry.
            devices_to_do = schedules
                .maintenance
                .keys()
                .chain(schedules.alerts.keys())
                .filter(|d| registry.get(d).is_none())
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            schedules.evaluated = Some(today);
        }
        devices_to_do.sort();
        for device in devices_to_do {
            let unit = registry.get(&device);
            let kind = match (unit, devices.get(device.as_str())) {
                (Some(u), _) => u.kind.clone(),
                (None, Some(d)) => d.kind.to_string(),
                (None, None) => String::new(),
            };
            // A unit that left the registry: only telemetry's maintenance rules still apply.
            let rules: Rc<[usize]> = match unit {
                Some(_) => rules_of(&kind),
                None => rules_of(&kind)
                    .iter()
                    .copied()
                    .filter(|&i| matches!(&rules[i].rule_type, RuleType::Inspection(r) if r.check == Check::Maintenance))
                    .collect(),
            };
            pass.device(schedules, &rules, (&device, &kind, unit), &mut out);
        }
        out.sort_by(|a, b| (&a.rule, &a.device).cmp(&(&b.rule, &b.device)));
        out
    }
}

#[cfg(test)]
mod tests;

impl Schedules {
    /// The rule index and stage of every inspection alert firing now.
    pub(super) fn firing(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (self.alerts.values().flatten())
            .filter(|(_, s)| matches!(s.alert.state, AlertState::Firing { .. }))
            .map(|(i, s)| (*i, s.stage))
    }
}
