use telemetry::AlertStatus;

use super::*;
use crate::date::CHINA_UTC_OFFSET_MS;
use crate::test_support;
use crate::RuleSet;

const RULES: &str = r#"
[[rule]]
id = "elevator.periodic_inspection"
kinds = ["elevator"]
type = "inspection"
check = "periodic_inspection"
escalate_after = "30d"
severity = "major"
summary = "{device.name} ({device.town}) overdue by {days_overdue} d, due {due}"
due_soon_summary = "{device.name} due {due}, in {days_left} d"

[[rule]]
id = "elevator.maintenance"
kinds = ["elevator"]
type = "inspection"
check = "maintenance"
signal = "service_mode == 1"
leads = []
severity = "major"
summary = "{device.id} maintenance overdue: last {last}, due {due}"

[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > device.rated_pressure_mpa"
severity = "critical"
summary = "{device.name} {pressure_mpa} > {device.rated_pressure_mpa} MPa ({device.town})"
"#;

const REGISTRY: &str = "\
device,kind,name,town,commissioned,last_inspection,next_inspection,rated_pressure_mpa
elev-1,elevator,1号梯,东城街道,2015-01-10,2025-06-20,2026-06-30,
boiler-1,boiler,1号锅炉,南城街道,2019-05-10,2025-06-01,2026-06-01,1.25
";

fn engine() -> Engine {
    let mut e = test_support::engine(RULES);
    e.set_registry(registry(REGISTRY));
    e
}

fn registry(text: &str) -> Registry {
    let (r, errors) = Registry::parse("registry.csv", text);
    assert!(errors.is_empty(), "{errors:?}");
    r
}

/// Ten in the morning, Beijing time, on `date`.
fn at(date: &str) -> Ts {
    Date::parse(date).unwrap().start_ms(CHINA_UTC_OFFSET_MS) + 10 * 3_600_000
}

fn seen(messages: &[AlertMessage]) -> Vec<(AlertStatus, &str, &str, &str)> {
    messages.iter().map(|m| (m.status, m.rule.as_str(), m.severity.as_str(), m.summary.as_str())).collect()
}

#[test]
fn registry_attributes_reach_conditions_and_summaries() {
    let mut e = engine();
    let reading =
        |ts, p| test_support::reading("gw-1", "boiler-1", "boiler", ts).with_value("pressure_mpa", p);
    assert!(e.process(&reading(1_000, 1.2)).is_empty());
    let fired = e.process(&reading(2_000, 1.3));
    assert_eq!(
        seen(&fired),
        [(AlertStatus::Firing, "boiler.over_pressure", "critical", "1号锅炉 1.3 > 1.25 MPa (南城街道)")]
    );
    // Attributes given by the host go over the registry's; a new registry replaces its own.
    e.set_attributes("boiler-1", BTreeMap::from([("rated_pressure_mpa".to_string(), Value::Float(1.6))]));
    let resolved = e.process(&reading(3_000, 1.3));
    assert_eq!(
        seen(&resolved),
        [(AlertStatus::Resolved, "boiler.over_pressure", "critical", "1号锅炉 1.3 > 1.6 MPa (南城街道)")]
    );
    e.set_registry(registry(&REGISTRY.replace("1号锅炉", "一号锅炉")));
    let m = e.process(&reading(4_000, 1.7));
    assert_eq!(m[0].summary, "一号锅炉 1.7 > 1.6 MPa (南城街道)");
    assert_eq!(e.registry().len(), 2);
}

#[test]
fn warns_at_each_lead_escalates_and_a_new_inspection_resolves() {
    let mut e = engine();
    assert!(e.tick(at("2026-04-30")).is_empty(), "61 days ahead");
    let days = [
        ("2026-05-01", "warning", "1号梯 due 2026-06-30, in 60 d"),
        ("2026-05-31", "warning", "1号梯 due 2026-06-30, in 30 d"),
        ("2026-06-23", "warning", "1号梯 due 2026-06-30, in 7 d"),
        ("2026-07-01", "major", "1号梯 (东城街道) overdue by 1 d, due 2026-06-30"),
        ("2026-07-30", "critical", "1号梯 (东城街道) overdue by 30 d, due 2026-06-30"),
    ];
    let mut firing_at = None;
    for (day, severity, summary) in days {
        // Quiet on the days between.
        assert!(e.tick(at(day) - 86_400_000).is_empty(), "{day}");
        let m = e.tick(at(day));
        assert_eq!(
            seen(&m),
            [(AlertStatus::Firing, "elevator.periodic_inspection", severity, summary)],
            "{day}"
        );
        assert_eq!(
            (m[0].device.as_str(), m[0].gateway.as_str(), m[0].kind.as_str()),
            ("elev-1", REGISTRY_GATEWAY, "elevator")
        );
        let active_at = *firing_at.get_or_insert(m[0].active_at);
        assert_eq!(
            (m[0].active_at, m[0].fired_at, m[0].ts),
            (active_at, Some(active_at), at(day)),
            "one alert"
        );
        assert!(e.tick(at(day) + 3_600_000).is_empty(), "once a day");
    }
    assert!(matches!(e.state("elevator.periodic_inspection", "elev-1"), AlertState::Firing { .. }));
    // The inspection passed on 2026-08-03; the registry says so the next day.
    e.set_registry(registry(&REGISTRY.replace("2025-06-20,2026-06-30", "2026-08-03,2027-08-03")));
    let m = e.tick(at("2026-08-04"));
    assert_eq!(
        seen(&m),
        [(
            AlertStatus::Resolved,
            "elevator.periodic_inspection",
            "critical",
            "1号梯 (东城街道) overdue by 35 d, due 2026-06-30"
        )]
    );
    assert_eq!(m[0].resolved_at, Some(at("2026-08-04")));
    assert_eq!(e.state("elevator.periodic_inspection", "elev-1"), AlertState::Inactive);
    assert_eq!(e.tick(at("2027-06-04")).len(), 1, "the next due date's first lead");
}

#[test]
fn a_due_date_that_moves_resolves_the_alert_and_raises_one_for_the_new_date() {
    let mut e = engine();
    assert_eq!(e.tick(at("2026-06-10")).len(), 1);
    // A corrected certificate: due a month later, still within 60 days.
    e.set_registry(registry(&REGISTRY.replace("2026-06-30", "2026-07-30")));
    let m = e.tick(at("2026-06-11"));
    assert_eq!(
        seen(&m),
        [
            (
                AlertStatus::Resolved,
                "elevator.periodic_inspection",
                "warning",
                "1号梯 due 2026-06-30, in 19 d"
            ),
            (AlertStatus::Firing, "elevator.periodic_inspection", "warning", "1号梯 due 2026-07-30, in 49 d"),
        ]
    );
    // Gone from the registry: resolved.
    e.set_registry(registry("device,kind\nboiler-1,boiler\n"));
    let m = e.tick(at("2026-06-12"));
    assert_eq!((m.len(), m[0].status, m[0].kind.as_str()), (1, AlertStatus::Resolved, "elevator"));
}

#[test]
fn maintenance_is_tracked_from_the_signal_and_the_registry() {
    let mut e = engine();
    let lift = |ts: Ts, mode: i64| {
        test_support::reading("gw-1", "elev-1", "elevator", ts).with_value("service_mode", mode)
    };
    e.process(&lift(at("2026-03-01"), 1));
    e.process(&lift(at("2026-03-02"), 0));
    assert!(e.tick(at("2026-03-16")).is_empty(), "15 days after maintenance: due today");
    let m = e.tick(at("2026-03-17"));
    assert_eq!(
        seen(&m),
        [(
            AlertStatus::Firing,
            "elevator.maintenance",
            "major",
            "elev-1 maintenance overdue: last 2026-03-01, due 2026-03-16"
        )]
    );
    assert_eq!(m[0].gateway, "gw-1", "the device's own gateway once it has sent readings");
    // Maintenance mode seen: resolved at the next tick, the same day.
    e.process(&lift(at("2026-03-17") + 60_000, 1));
    let m = e.tick(at("2026-03-17") + 120_000);
    assert_eq!((m.len(), m[0].status), (1, AlertStatus::Resolved));
    // A device the registry does not know: 15 days from its first reading.
    let other =
        |ts: Ts| test_support::reading("gw-1", "elev-x", "elevator", ts).with_value("service_mode", 0);
    e.process(&other(at("2026-03-20")));
    assert!(e.tick(at("2026-04-04")).iter().all(|m| m.device != "elev-x"));
    let m = e.tick(at("2026-04-05"));
    assert!(
        m.iter().any(
            |m| m.device == "elev-x" && m.summary == "elev-x maintenance overdue: last ?, due 2026-04-04"
        ),
        "{m:?}"
    );
    // The registry's last_maintenance seeds a device that sends nothing.
    let mut e = engine();
    e.set_registry(registry("device,kind,last_maintenance\nelev-2,elevator,2026-03-01\n"));
    let m = e.tick(at("2026-03-17"));
    assert_eq!(
        seen(&m),
        [(
            AlertStatus::Firing,
            "elevator.maintenance",
            "major",
            "elev-2 maintenance overdue: last 2026-03-01, due 2026-03-16"
        )]
    );
}

#[test]
fn rules_check_the_inspection_keys() {
    let errors = |text: &str| -> Vec<String> {
        RuleSet::parse("r.toml", text).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    };
    let rule = r#"
[[rule]]
id = "x"
kinds = ["elevator"]
type = "inspection"
check = "periodic_inspection"
leads = ["60d"]
severity = "major"
summary = "s"
"#;
    assert!(errors(rule).is_empty());
    let e = errors(&rule.replace("periodic_inspection", "internal_inspection"));
    assert_eq!(e, ["r.toml:4:9: check `internal_inspection` is for boiler, not for `elevator`"]);
    let e = errors(&rule.replace("\"60d\"", "\"36h\""));
    assert_eq!(e, ["r.toml:7:9: leads: `36h` must be whole days (`30d`), at least one"]);
    let e = errors(&rule.replace("leads = [\"60d\"]", "signal = \"service_mode == 1\"\nfor = \"1d\""));
    assert_eq!(
        e,
        [
            "r.toml:7:10: `signal` goes with check `maintenance` only",
            "r.toml:8:7: `for` does not apply to inspection rules: they move a day at a time"
        ]
    );
    let e = errors(&rule.replace("check = \"periodic_inspection\"\n", "escalated_severity = \"loud\"\n"));
    assert_eq!(
        e,
        [
            "r.toml:2:1: an inspection rule needs `check`",
            "r.toml:6:22: `escalated_severity` needs `escalate_after`",
            "r.toml:6:22: escalated_severity: `loud` must be critical, major, warning or info"
        ]
    );
    let e = errors(&rule.replace("type = \"inspection\"", "type = \"threshold\"\nwhen = \"true\""));
    assert!(
        e.iter().any(|e| e.contains("`check` belongs to inspection rules, not to threshold rules")),
        "{e:?}"
    );
}
