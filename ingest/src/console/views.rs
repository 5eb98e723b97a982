//! What the console shows, computed from the pipeline's state on the writer task: pure
//! functions of the engine, the registry and the time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use rules::engine::Ack;
use rules::registry::Standing;
use rules::{Date, Unit};
use serde::Serialize;
use telemetry::AlertMessage;

use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// An active alert with its unit's registry row.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveAlert {
    #[serde(flatten)]
    pub message: AlertMessage,
    /// `firing`, or `silenced` when it fired under a silence or one covers it now.
    pub state: &'static str,
    pub name: String,
    pub town: String,
    pub address: String,
    pub ack: Option<Ack>,
    pub silenced: bool,
    pub flapping: bool,
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "major" => 1,
        "warning" => 2,
        "minor" => 3,
        _ => 4,
    }
}

/// The active alerts, most severe first, then oldest first.
pub fn active_alerts(p: &Pipeline, now: i64) -> Vec<ActiveAlert> {
    let engine = p.engine();
    let mut out: Vec<ActiveAlert> = engine
        .active_alerts()
        .filter(|t| t.deferred.is_none())
        .map(|t| {
            let unit = p.registry().and_then(|r| r.get(&t.message.device));
            let silenced = !t.notified || engine.is_silenced(&t.message, now);
            let mut message = t.message.clone();
            message.status =
                if silenced { telemetry::AlertStatus::Silenced } else { telemetry::AlertStatus::Firing };
            ActiveAlert {
                message,
                state: if silenced { "silenced" } else { "firing" },
                name: unit.map_or_else(String::new, |u| u.name.clone()),
                town: unit.map_or_else(String::new, |u| u.town.clone()),
                address: unit.map_or_else(String::new, |u| u.address.clone()),
                ack: t.ack.clone(),
                silenced,
                flapping: t.flapping,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (
            severity_rank(&a.message.severity),
            a.message.fired_at.unwrap_or(a.message.active_at),
            &a.message.rule,
        )
            .cmp(&(
                severity_rank(&b.message.severity),
                b.message.fired_at.unwrap_or(b.message.active_at),
                &b.message.rule,
            ))
    });
    out
}

/// A unit due soon or overdue.
#[derive(Clone, Debug, Serialize)]
pub struct DueUnit {
    pub device: String,
    pub kind: String,
    pub name: String,
    pub town: String,
    pub address: String,
    pub registration_code: String,
    pub last_inspection: Option<String>,
    pub due: String,
    /// Days until due; negative when overdue.
    pub days: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Inspections {
    pub today: String,
    pub overdue: Vec<DueUnit>,
    pub due_soon: Vec<DueUnit>,
    pub overdue_total: usize,
    pub due_soon_total: usize,
}

/// At most this many units per list; the totals say how many there are.
pub const LIST_LIMIT: usize = 1_000;

fn due_unit(u: &Unit, due: Date, today: Date) -> DueUnit {
    DueUnit {
        device: u.device.clone(),
        kind: u.kind.clone(),
        name: u.name.clone(),
        town: u.town.clone(),
        address: u.address.clone(),
        registration_code: u.registration_code.clone(),
        last_inspection: u.last_inspection.map(|d| d.to_string()),
        due: due.to_string(),
        days: due.days_since(today),
    }
}

/// Units overdue, and those due within `within_days`, soonest first.
pub fn inspections(p: &Pipeline, today: Date, within_days: i64) -> Inspections {
    let mut overdue = Vec::new();
    let mut due_soon = Vec::new();
    for u in p.registry().map(|r| r.units()).unwrap_or_default() {
        match rules::registry::standing(u, today) {
            Standing::Overdue(due) => overdue.push((due, u)),
            Standing::InOrder(due) if due.days_since(today) <= within_days => due_soon.push((due, u)),
            _ => {}
        }
    }
    let (overdue_total, due_soon_total) = (overdue.len(), due_soon.len());
    let list = |mut v: Vec<(Date, &Unit)>| {
        v.sort_by(|a, b| (a.0, &a.1.device).cmp(&(b.0, &b.1.device)));
        v.into_iter().take(LIST_LIMIT).map(|(due, u)| due_unit(u, due, today)).collect()
    };
    Inspections {
        today: today.to_string(),
        overdue: list(overdue),
        due_soon: list(due_soon),
        overdue_total,
        due_soon_total,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub town: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub registered: u64,
    pub overdue: u64,
    pub rate: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct OverdueRate {
    pub today: String,
    pub total: Rate,
    pub by_town: Vec<Rate>,
    pub by_kind: Vec<Rate>,
}

pub fn overdue_rate(p: &Pipeline, today: Date) -> Option<OverdueRate> {
    let report = p.registry()?.overdue_rate(today);
    let rate = |town: Option<&String>, kind: Option<&String>, t: &rules::registry::Tally| Rate {
        town: town.cloned(),
        kind: kind.cloned(),
        registered: t.registered,
        overdue: t.overdue,
        rate: t.rate(),
    };
    Some(OverdueRate {
        today: today.to_string(),
        total: rate(None, None, &report.total),
        by_town: report.by_town.iter().map(|(town, t)| rate(Some(town), None, t)).collect(),
        by_kind: report.by_kind.iter().map(|(kind, t)| rate(None, Some(kind), t)).collect(),
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct GatewayStatus {
    pub gateway: String,
    pub online: bool,
    pub last_seen: i64,
    pub devices: usize,
    pub devices_online: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceStatus {
    pub device: String,
    pub gateway: String,
    pub kind: String,
    pub online: bool,
    pub last_seen: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RulesStatus {
    pub loaded: u64,
    pub ok: bool,
    pub reloads: u64,
    pub failures: u64,
    pub last_reload_at: Option<i64>,
    pub error: Option<String>,
    /// The loaded rules whose conditions gave no answer since ingest started, most errors first.
    pub eval_errors: Vec<RuleEvalErrors>,
}

/// One rule's evaluation errors, as `ingest_rule_errors_total{rule}` counts them.
#[derive(Clone, Debug, Serialize)]
pub struct RuleEvalErrors {
    pub rule: String,
    pub count: u64,
    /// The newest error's text (refreshed at most once a minute), and its reading time.
    pub last_error: Option<String>,
    pub last_error_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub gateways: Vec<GatewayStatus>,
    /// Offline devices first, then by name; at most [`LIST_LIMIT`].
    pub devices: Vec<DeviceStatus>,
    pub devices_total: usize,
    pub rules: RulesStatus,
    pub wal: BTreeMap<&'static str, u64>,
}

pub fn rules_status(m: &Metrics) -> RulesStatus {
    let last = m.rules_last_reload_ms.load(Ordering::Relaxed);
    RulesStatus {
        loaded: m.rules_loaded.load(Ordering::Relaxed),
        ok: m.rules_reload_ok.load(Ordering::Relaxed),
        reloads: m.rules_reloads.load(Ordering::Relaxed),
        failures: m.rules_reload_failures.load(Ordering::Relaxed),
        last_reload_at: (last > 0).then_some(last),
        error: m.rules_last_error.lock().ok().and_then(|e| e.clone()),
        eval_errors: eval_errors(m),
    }
}

fn eval_errors(m: &Metrics) -> Vec<RuleEvalErrors> {
    let Ok(all) = m.rule_errors.lock() else { return Vec::new() };
    let mut failing: Vec<RuleEvalErrors> = (all.iter())
        .filter(|(_, e)| e.count > 0)
        .map(|(rule, e)| RuleEvalErrors {
            rule: rule.clone(),
            count: e.count,
            last_error: e.last_error.clone(),
            last_error_at: e.last_error_at,
        })
        .collect();
    failing.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
    failing
}

pub fn status(p: &Pipeline, m: &Metrics, now: i64, offline_after_ms: i64) -> Status {
    let mut gateways: BTreeMap<&str, GatewayStatus> = BTreeMap::new();
    // The first LIST_LIMIT devices, offline first, then by name: a bounded max-heap, so a city's
    // millions of devices are walked once and never all copied or sorted.
    let mut first: std::collections::BinaryHeap<(bool, &str, &str, &str, i64)> = Default::default();
    let mut devices_total = 0;
    for (device, gateway, kind, last_seen) in p.engine().devices_seen() {
        devices_total += 1;
        let online = now.saturating_sub(last_seen) < offline_after_ms;
        let g = gateways.entry(gateway).or_insert_with(|| GatewayStatus {
            gateway: gateway.to_string(),
            online: false,
            last_seen: i64::MIN,
            devices: 0,
            devices_online: 0,
        });
        g.devices += 1;
        g.devices_online += usize::from(online);
        g.online |= online;
        g.last_seen = g.last_seen.max(last_seen);
        first.push((online, device, gateway, kind, last_seen));
        if first.len() > LIST_LIMIT {
            first.pop();
        }
    }
    let devices = first
        .into_sorted_vec()
        .into_iter()
        .map(|(online, device, gateway, kind, last_seen)| DeviceStatus {
            device: device.to_string(),
            gateway: gateway.to_string(),
            kind: kind.to_string(),
            online,
            last_seen,
        })
        .collect();
    let wal = BTreeMap::from([
        ("pending", m.wal_pending.load(Ordering::Relaxed)),
        ("bytes", m.wal_bytes.load(Ordering::Relaxed)),
    ]);
    Status { gateways: gateways.into_values().collect(), devices, devices_total, rules: rules_status(m), wal }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_offline_devices_first_and_at_most_the_limit() {
        let engine = rules::Engine::new(rules::default_pack().unwrap());
        let mut p = Pipeline::new(telemetry::Topics::default(), engine);
        let now = 10_000_000;
        let n = LIST_LIMIT + 5;
        for i in 0..n {
            // Devices 7, 500 and 1002 last read an hour ago: offline after 5 min.
            let ts = if [7, 500, 1002].contains(&i) { now - 3_600_000 } else { now - 1_000 };
            let gateway = if i % 2 == 0 { "gw-even" } else { "gw-odd" };
            let r = telemetry::Reading::new(gateway, &format!("wm-{i:05}"), "water_meter", 1, 1, ts)
                .with_value("battery_v", 3.6);
            p.engine_mut().process(&r);
        }
        let s = status(&p, &Metrics::default(), now, 300_000);
        assert_eq!(s.devices_total, n);
        assert_eq!(s.devices.len(), LIST_LIMIT);
        let names: Vec<&str> = s.devices.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(
            names[..4],
            ["wm-00007", "wm-00500", "wm-01002", "wm-00000"],
            "offline first, then by name"
        );
        assert!(s.devices[..3].iter().all(|d| !d.online) && s.devices[3..].iter().all(|d| d.online));
        let even = s.gateways.iter().find(|g| g.gateway == "gw-even").unwrap();
        assert_eq!((even.devices, even.devices_online, even.online), (503, 501, true));
    }

    #[test]
    fn rules_status_lists_the_failing_rules_most_errors_first_with_their_newest_error() {
        let m = Metrics::default();
        let failed = |count, text: &str| rules::engine::RuleErrors {
            count,
            last_error: Some(text.to_string()),
            last_error_at: 5_000,
        };
        *m.rule_errors.lock().unwrap() = vec![
            ("a.fine".to_string(), Default::default()),
            ("b.once".to_string(), failed(1, "b1: no such key")),
            ("c.often".to_string(), failed(7, "b2: no such overload")),
        ];
        let s = rules_status(&m);
        let listed: Vec<(&str, u64)> = s.eval_errors.iter().map(|e| (e.rule.as_str(), e.count)).collect();
        assert_eq!(listed, [("c.often", 7), ("b.once", 1)]);
        assert_eq!(s.eval_errors[0].last_error.as_deref(), Some("b2: no such overload"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["eval_errors"][1]["last_error_at"], 5_000);
    }
}
