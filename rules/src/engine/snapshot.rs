//! Engine state as data, to persist across restarts and to carry across a rule reload.
//!
//! [`Engine::snapshot`] writes every alert (by rule id, or `{id}.{code name}` of a per_code
//! rule, never by index), the devices' last-seen times, window samples and maintenance
//! answers (of the devices held: forgotten idle devices are not in it), the gateways' alerts, the inspection schedules, the lifecycle (acks, silences,
//! flapping histories, reminder times) and the host's time. [`Engine::restore`] takes it back:
//! a firing alert stays firing without a new `Firing`, pending `for` timers continue from their
//! `active_at`, a reading older than an alert's `last_ts` changes nothing. State of rules whose
//! id is gone is dropped; [`Engine::replace_rules`] resolves what was firing under them.
//!
//! The registry, `set_attributes` attributes, the UTC offset and the lifecycle defaults are
//! configuration, not state: the host sets them again (before or after restoring).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use telemetry::{AlertMessage, AlertStatus};

use super::inspection::{InspectionSnapshot, Schedules};
use super::lifecycle::{Lifecycle, Silence, Tracked};
use super::plan::KindPlan;
use super::{slot, DeviceState, Engine, FastMap, GatewayState, Slot};
use crate::alert::{Alert, Ts};
use crate::rule_file::{RuleSet, RuleType};
use crate::window::Series;

/// The snapshot format's version; [`Engine::restore`] accepts this one only.
pub const SNAPSHOT_VERSION: u32 = 1;

/// One alert of a device or gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    /// The alert id, as messages carry it.
    pub rule: String,
    pub alert: Alert,
    /// Codes and names a fault-code or bits alert shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<(String, String)>,
}

/// A window series of one point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowSnapshot {
    pub point: String,
    /// (time, value), oldest first.
    pub samples: Vec<(Ts, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub id: String,
    pub kind: String,
    pub gateway: String,
    pub last_seen: Ts,
    pub last_data: Ts,
    /// The host's time of its newest reading, for eviction; absent in snapshots before it was
    /// kept (then `last_seen` stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_at: Option<Ts>,
    pub windows: Vec<WindowSnapshot>,
    pub alerts: Vec<AlertSnapshot>,
    /// `inhibit_when` source to its latest answer and when it came.
    #[serde(default)]
    pub maintenance: BTreeMap<String, (bool, Ts)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewaySnapshot {
    pub id: String,
    pub alerts: Vec<AlertSnapshot>,
}

/// Firing times of one alert within its flap window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlapSnapshot {
    pub rule: String,
    pub device: String,
    pub fired: Vec<Ts>,
}

/// Everything the engine needs to continue exactly after a restart. Serialize it with
/// `serde_json` (or any serde format); lists are sorted, so equal states give equal text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSnapshot {
    pub version: u32,
    /// The newest time `tick` was given.
    pub now: Option<Ts>,
    pub devices: Vec<DeviceSnapshot>,
    pub gateways: Vec<GatewaySnapshot>,
    pub inspection: InspectionSnapshot,
    /// The alerts notified as firing or silenced, with acks, flags and reminder times.
    pub notified: Vec<Tracked>,
    pub silences: Vec<Silence>,
    pub flaps: Vec<FlapSnapshot>,
    pub next_silence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot version {0} is not {SNAPSHOT_VERSION}")]
    Version(u32),
}

impl Engine {
    /// The alert id of a device alert key.
    fn alert_id(&self, (i, code): (usize, Option<i64>)) -> String {
        let rule = &self.rules.rules[i];
        match (&rule.rule_type, code) {
            (RuleType::FaultCode(c) | RuleType::Bits(c), Some(code)) => {
                format!("{}.{}", rule.id, c.names.get(&code).map_or("?", String::as_str))
            }
            _ => rule.id.clone(),
        }
    }

    /// The engine's state, as data.
    pub fn snapshot(&self) -> EngineSnapshot {
        let alerts = |slots: Vec<(String, &Slot)>| {
            let mut out: Vec<AlertSnapshot> = slots
                .into_iter()
                .map(|(rule, s)| AlertSnapshot { rule, alert: s.alert, detail: s.detail.clone() })
                .collect();
            out.sort_by(|a, b| a.rule.cmp(&b.rule));
            out
        };
        let mut devices: Vec<DeviceSnapshot> = (self.devices.iter())
            .map(|(id, d)| {
                let points = self.plans.get(&*d.kind).map(|p| p.windows.as_slice()).unwrap_or_default();
                let windows = (points.iter().zip(&d.windows))
                    .filter(|(_, s)| !s.is_empty())
                    .map(|((point, _), s)| WindowSnapshot {
                        point: point.clone(),
                        samples: s.samples().collect(),
                    })
                    .collect();
                DeviceSnapshot {
                    id: id.to_string(),
                    kind: d.kind.to_string(),
                    gateway: d.gateway.to_string(),
                    last_seen: d.last_seen,
                    last_data: d.last_data,
                    active_at: Some(d.active_at),
                    windows,
                    alerts: alerts(d.alerts.iter().map(|(k, s)| (self.alert_id(*k), s)).collect()),
                    maintenance: (d.maintenance.iter())
                        .map(|(m, on, at)| (m.to_string(), (*on, *at)))
                        .collect(),
                }
            })
            .collect();
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        let mut gateways: Vec<GatewaySnapshot> = (self.gateways.iter())
            .map(|(id, g)| GatewaySnapshot {
                id: id.clone(),
                alerts: alerts(g.alerts.iter().map(|(i, s)| (self.rules.rules[*i].id.clone(), s)).collect()),
            })
            .collect();
        gateways.sort_by(|a, b| a.id.cmp(&b.id));
        let lc = &self.lifecycle;
        EngineSnapshot {
            version: SNAPSHOT_VERSION,
            now: self.now,
            devices,
            gateways,
            inspection: self.schedules.export(&self.rules.rules),
            notified: lc.alerts.values().cloned().collect(),
            silences: lc.silences.clone(),
            flaps: (lc.flaps.iter())
                .map(|((rule, device), f)| FlapSnapshot {
                    rule: rule.clone(),
                    device: device.clone(),
                    fired: f.iter().copied().collect(),
                })
                .collect(),
            next_silence: lc.next_silence,
        }
    }

    /// Replaces the engine's state with a snapshot's (see the module documentation). State of
    /// rules whose id is gone, or that no longer apply to the device's kind, is dropped.
    pub fn restore(&mut self, snapshot: EngineSnapshot) -> Result<(), SnapshotError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(snapshot.version));
        }
        self.restore_state(snapshot);
        Ok(())
    }

    /// Restores and returns the notified alerts whose state was dropped.
    fn restore_state(&mut self, snapshot: EngineSnapshot) -> Vec<Tracked> {
        let mut dropped: Vec<(String, String)> = Vec::new();
        self.now = snapshot.now;
        self.devices = FastMap::default();
        for d in snapshot.devices {
            if !self.plans.contains_key(&d.kind) {
                self.plans.insert(d.kind.clone(), KindPlan::new(&self.rules.rules, &d.kind));
            }
            let plan = &self.plans[&d.kind];
            let windows = (plan.windows.iter())
                .map(|(point, keep_ms)| {
                    let mut series = Series::default();
                    let samples = d.windows.iter().find(|w| w.point == *point).map(|w| w.samples.as_slice());
                    for &(t, v) in samples.unwrap_or_default() {
                        series.push(t, v, *keep_ms);
                    }
                    series
                })
                .collect::<Box<[Series]>>();
            let mut alerts = Vec::new();
            for a in d.alerts {
                let key = self.alert_key(&a.rule).filter(|&(i, _)| {
                    let rule = &self.rules.rules[i];
                    rule.applies_to(&d.kind)
                        && (rule.is_fault() || matches!(rule.rule_type, RuleType::NoData { .. }))
                });
                match key {
                    Some(key) if slot(&alerts, &key).is_none() => {
                        alerts.push((key, Slot { alert: a.alert, detail: a.detail }));
                    }
                    _ => dropped.push((a.rule, d.id.clone())),
                }
            }
            alerts.shrink_to_fit();
            let maintenance =
                (d.maintenance.iter()).map(|(source, &(on, at))| (self.names.get(source), on, at)).collect();
            let state = DeviceState {
                kind: self.names.get(&d.kind),
                gateway: self.names.get(&d.gateway),
                last_seen: d.last_seen,
                last_data: d.last_data,
                // Before the field was saved: its newest reading's time.
                active_at: d.active_at.unwrap_or(d.last_seen),
                windows,
                alerts,
                maintenance,
            };
            self.devices.insert(d.id.into(), state);
        }
        self.gateways = FastMap::default();
        for g in snapshot.gateways {
            let mut state = GatewayState::default();
            for a in g.alerts {
                let i = self.alert_rules.get(&a.rule).copied();
                match i.filter(|&i| matches!(self.rules.rules[i].rule_type, RuleType::GatewayNoData { .. })) {
                    Some(i) if slot(&state.alerts, &i).is_none() => {
                        state.alerts.push((i, Slot { alert: a.alert, detail: a.detail }));
                    }
                    _ => dropped.push((a.rule, g.id.clone())),
                }
            }
            self.gateways.insert(g.id, state);
        }
        let (schedules, gone) = Schedules::import(snapshot.inspection, &self.rules.rules);
        self.schedules = schedules;
        dropped.extend(gone);
        let mut lifecycle = Lifecycle {
            silences: snapshot.silences,
            next_silence: snapshot.next_silence,
            ..Lifecycle::default()
        };
        let mut lost = Vec::new();
        for t in snapshot.notified {
            let key = (t.message.rule.clone(), t.message.device.clone());
            if !self.alert_rules.contains_key(&key.0) || dropped.contains(&key) {
                lost.push(t);
            } else {
                lifecycle.alerts.insert(key, t);
            }
        }
        for f in snapshot.flaps.into_iter().filter(|f| self.alert_rules.contains_key(&f.rule)) {
            lifecycle.flaps.insert((f.rule, f.device), f.fired.into());
        }
        self.lifecycle = lifecycle;
        lost
    }

    /// Swaps the rules in one step (after the host validated them), keeping every alert's
    /// state by rule id; windows and plans are rebuilt for the new rules. The alerts of rules
    /// that are gone (or no longer apply to their device's kind) resolve: their transitions
    /// are returned. Inspection rules are evaluated again at the next tick.
    pub fn replace_rules(&mut self, rules: RuleSet) -> Vec<AlertMessage> {
        let snapshot = self.snapshot();
        self.rule_errors.reindex(&self.rules.rules, &rules.rules);
        self.rules = rules;
        self.plans.clear();
        self.index_alerts();
        let lost = self.restore_state(snapshot);
        self.schedules.invalidate();
        let mut out: Vec<AlertMessage> = lost
            .into_iter()
            .map(|t| {
                let at = self.now.map_or(t.message.ts, |n| n.max(t.message.ts));
                AlertMessage { status: AlertStatus::Resolved, resolved_at: Some(at), ts: at, ..t.message }
            })
            .collect();
        out.sort_by(|a, b| (&a.rule, &a.device).cmp(&(&b.rule, &b.device)));
        out
    }
}

#[cfg(test)]
mod tests;
