//! No-data rules on the host's clock. The engine has none, so the host calls [`Engine::tick`]
//! periodically (ingest: every second) with its time; readings keep their own timestamps.
//!
//! A device of a `no_data` rule's kinds that has been seen fires when its newest reading with a
//! value is `after` old; such a reading resolves it (unless it is itself that old: a replay). A
//! gateway fires its `gateway_no_data` alert when its newest reading of a device of the rule's
//! kinds, values or not, is `after` old, and while a gateway is that silent the
//! `no_data` alerts of its devices do not fire: one alert for the gateway, not one per device.
//! Stopping data never resolves any other alert: those only move on readings.

use std::collections::HashMap;

use telemetry::{AlertMessage, Reading};

use super::{after, attribute_map, message, slot, step_slot, Engine};
use crate::alert::{AlertState, Ts};
use crate::rule_file::{Rule, RuleType};

/// The reading a gateway alert's summary renders with: `{device.id}` and `{device.gateway}`
/// are the gateway, `{device.kind}` is `gateway`.
pub(super) fn gateway_reading(gateway: &str, now: Ts) -> Reading {
    Reading::new(gateway, gateway, "gateway", 0, 0, now)
}

impl Engine {
    /// Advances the host's clock to `now_ms` and returns the no-data and inspection
    /// transitions, then the lifecycle's (held-back resolves of flapping alerts, alerts whose
    /// silence ended, reminders), and forgets idle devices ([`Engine::set_evict_idle_after`]).
    /// A time no later than the last one given changes nothing.
    /// Costs one pass over the devices seen and the active alerts, and once a day one over the
    /// registry.
    pub fn tick(&mut self, now_ms: Ts) -> Vec<AlertMessage> {
        if self.now.is_some_and(|n| now_ms <= n) {
            return Vec::new();
        }
        self.now = Some(now_ms);
        let mut raw = self.tick_no_data(now_ms);
        raw.extend(self.tick_inspections(now_ms));
        let mut out = self.notify(raw);
        out.extend(self.tick_lifecycle(now_ms));
        self.evict_idle(now_ms);
        out
    }

    fn tick_no_data(&mut self, now: Ts) -> Vec<AlertMessage> {
        let rules = &self.rules.rules;
        let on_the_clock =
            |r: &Rule| matches!(r.rule_type, RuleType::NoData { .. } | RuleType::GatewayNoData { .. });
        if !rules.iter().any(on_the_clock) {
            return Vec::new();
        }
        let gateway_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| matches!(rules[i].rule_type, RuleType::GatewayNoData { .. }))
            .collect();
        // The newest reading per gateway and gateway rule, of devices of the rule's kinds.
        let mut gateway_seen: HashMap<(&str, usize), Ts> = HashMap::new();
        // Device alerts to step: (device, rule, silent).
        let mut device_steps: Vec<(Box<str>, usize, bool)> = Vec::new();
        for device in self.devices.values() {
            for &g in gateway_rules.iter().filter(|&&g| rules[g].applies_to(&device.kind)) {
                let seen = gateway_seen.entry((&*device.gateway, g)).or_insert(device.last_seen);
                *seen = (*seen).max(device.last_seen);
            }
        }
        for (id, device) in &self.devices {
            let Some(plan) = self.plans.get(&*device.kind) else { continue };
            for &i in &plan.no_data {
                let (_, after_ms) = after(&rules[i]);
                let silent = now.saturating_sub(device.last_data) >= after_ms;
                let active =
                    slot(&device.alerts, &(i, None)).is_some_and(|s| s.alert.state != AlertState::Inactive);
                if !silent && !active {
                    continue;
                }
                // Behind a gateway that is itself this silent: the gateway's alert speaks for it.
                let inhibited = silent
                    && gateway_rules.iter().any(|&g| {
                        rules[g].applies_to(&device.kind)
                            && gateway_seen
                                .get(&(&*device.gateway, g))
                                .is_some_and(|&s| now.saturating_sub(s) >= after_ms)
                    });
                if !inhibited {
                    device_steps.push((id.clone(), i, silent));
                }
            }
        }
        let mut out = Vec::new();
        for (&(gateway, g), &seen) in &gateway_seen {
            let rule = &rules[g];
            let (after, after_ms) = after(rule);
            let silent = now.saturating_sub(seen) >= after_ms;
            if !silent && !self.gateways.contains_key(gateway) {
                continue;
            }
            let state = self.gateways.entry(gateway.to_string()).or_default();
            if let Some((t, _)) = step_slot(&mut state.alerts, g, silent, !silent, rule, now, None) {
                let origin = gateway_reading(gateway, now);
                out.push(message(rule, rule.id.clone(), &origin, None, &[("after", &after)], t, now));
            }
        }
        for (id, i, silent) in device_steps {
            let rule = &rules[i];
            let device = self.devices.get_mut(&*id).expect("collected from the devices");
            if let Some((t, _)) = step_slot(&mut device.alerts, (i, None), silent, !silent, rule, now, None) {
                let (after, _) = after(rule);
                let origin = Reading::new(&device.gateway, &id, &device.kind, 0, 0, now);
                let attributes = attribute_map(self.registry.get(&id), self.attributes.get(&*id));
                let extra = [("after", after.as_str())];
                out.push(message(rule, rule.id.clone(), &origin, attributes.as_deref(), &extra, t, now));
            }
        }
        out.sort_by(|a, b| (&a.rule, &a.device).cmp(&(&b.rule, &b.device)));
        out
    }
}
