//! Each step of a reading at explicit times, on rules parsed from text.

use super::*;
use crate::test_support::{boiler, reading, FAULT_CODE_AND_BITS_RULES, OVER_PRESSURE_RULE};
use crate::RuleSet;

fn rules(text: &str) -> Vec<Rule> {
    RuleSet::parse("r.toml", text).unwrap_or_else(|d| panic!("{d:?}")).rules
}

fn device(first: &Reading, plan: &KindPlan, names: &mut Names) -> DeviceState {
    let mut state = DeviceState::first_seen(first, plan, names, first.ts_ms);
    assert!(state.admit(first, plan, names, first.ts_ms));
    state
}

const NO_DATA_RULES: &str = r#"
[[rule]]
id = "boiler.no_data"
kinds = ["boiler"]
type = "no_data"
after = "2m"
severity = "major"
summary = "{device.id} silent for {after}"

[[rule]]
id = "gateway.no_data"
kinds = ["*"]
type = "gateway_no_data"
after = "2m"
severity = "major"
summary = "{device.gateway} silent for {after}"
"#;

const WINDOW_RULE: &str = r#"
inhibit_when = "service_mode == 1"

[[rule]]
id = "boiler.pressure_high_5s"
kinds = ["boiler"]
when = "avg(pressure_mpa, '5s') > 1.2"
severity = "major"
summary = "{device.id} high on average"
"#;

#[test]
fn a_late_or_repeated_reading_is_not_admitted_but_marks_the_device_active() {
    let plan = KindPlan::default();
    let mut names = Names::default();
    let mut d = device(&boiler("b1", 2_000, 1.0), &plan, &mut names);
    assert!(!d.admit(&boiler("b1", 1_000, 1.0), &plan, &mut names, 50_000), "late");
    assert_eq!(d.active_at, 50_000);
    assert!(!d.admit(&boiler("b1", 2_000, 1.0), &plan, &mut names, 60_000), "repeated");
    assert_eq!((d.last_seen, d.last_data, d.active_at), (2_000, 2_000, 60_000));
}

#[test]
fn only_a_reading_with_values_counts_as_data() {
    let plan = KindPlan::default();
    let mut names = Names::default();
    let mut d = device(&boiler("b1", 1_000, 1.0), &plan, &mut names);
    assert!(d.admit(&reading("gw", "b1", "boiler", 5_000), &plan, &mut names, 5_000));
    assert_eq!((d.last_seen, d.last_data), (5_000, 1_000));
    assert!(d.admit(&boiler("b1", 9_000, 1.0), &plan, &mut names, 9_000));
    assert_eq!((d.last_seen, d.last_data), (9_000, 9_000));
}

#[test]
fn a_device_that_changes_kind_or_gateway_starts_its_windows_afresh_on_a_kind_change_only() {
    let rules = rules(WINDOW_RULE);
    let plan = KindPlan::new(&rules, "boiler");
    let mut names = Names::default();
    let first = boiler("b1", 0, 1.3);
    let mut d = device(&first, &plan, &mut names);
    push_windows(&plan, &mut d.windows, &first);
    let moved = reading("gw2", "b1", "boiler", 1_000).with_value("pressure_mpa", 1.3);
    assert!(d.admit(&moved, &plan, &mut names, 1_000));
    assert_eq!(&*d.gateway, "gw2");
    assert!(!d.windows[0].is_empty(), "a new gateway keeps the windows");
    let other_kind = reading("gw2", "b1", "elevator", 2_000).with_value("pressure_mpa", 1.3);
    assert!(d.admit(&other_kind, &plan, &mut names, 2_000));
    assert_eq!(&*d.kind, "elevator");
    assert!(d.windows[0].is_empty(), "a new kind starts afresh");
}

#[test]
fn the_host_time_is_the_newest_tick_unless_the_reading_is_newer() {
    assert_eq!(host_time(None, 5_000), 5_000);
    assert_eq!(host_time(Some(9_000), 5_000), 9_000);
    assert_eq!(host_time(Some(1_000), 5_000), 5_000);
}

#[test]
fn an_aggregate_has_a_value_only_when_the_reading_carries_its_point() {
    let rules = rules(WINDOW_RULE);
    let plan = KindPlan::new(&rules, "boiler");
    let mut names = Names::default();
    let first = boiler("b1", 0, 1.0);
    let mut d = device(&first, &plan, &mut names);
    push_windows(&plan, &mut d.windows, &first);
    let mut at = |r: Reading| {
        assert!(d.admit(&r, &plan, &mut names, r.ts_ms));
        push_windows(&plan, &mut d.windows, &r);
        aggregates(&plan, &d.windows, &r).into_iter().map(|(v, x)| (v.to_string(), x)).collect::<Vec<_>>()
    };
    assert_eq!(at(boiler("b1", 3_000, 1.0)), Vec::new(), "the samples do not reach back 5 s");
    let [(variable, avg)] = at(boiler("b1", 5_000, 4.0)).try_into().expect("one aggregate");
    assert!(variable.contains("avg(pressure_mpa"), "{variable}");
    assert_eq!(avg, 2.0);
    assert_eq!(at(reading("gw", "b1", "boiler", 6_000).with_value("other", 1.0)), Vec::new());
}

#[test]
fn the_latest_maintenance_answer_per_source_decides_inhibition() {
    let rules = rules(WINDOW_RULE);
    let mut names = Names::default();
    let mut maintenance = Vec::new();
    assert!(!in_maintenance(&maintenance, &rules[0]), "no answer yet");
    note_maintenance(&mut maintenance, "service_mode == 1", true, 1_000, &mut names);
    note_maintenance(&mut maintenance, "other == 1", false, 1_000, &mut names);
    assert!(in_maintenance(&maintenance, &rules[0]));
    note_maintenance(&mut maintenance, "service_mode == 1", false, 2_000, &mut names);
    assert!(!in_maintenance(&maintenance, &rules[0]));
    assert_eq!(maintenance.len(), 2);
    assert_eq!(maintenance[0].2, 2_000);
    let plain = self::rules(OVER_PRESSURE_RULE);
    note_maintenance(&mut maintenance, "service_mode == 1", true, 3_000, &mut names);
    assert!(!in_maintenance(&maintenance, &plain[0]), "a rule without inhibit_when is never inhibited");
}

#[test]
fn checks_use_the_clear_condition_while_firing_and_count_unanswered_ones() {
    let rules = rules(OVER_PRESSURE_RULE);
    let RuleType::Threshold { when, clear } = &rules[0].rule_type else { panic!("a threshold rule") };
    let evaluator = Evaluator::new();
    let mut stats = EngineStats::default();
    let r = boiler("b1", 0, 1.22);
    let bindings = Bindings::new(&r, None, false, &[]);
    let mut errors = ErrorsByRule::default();
    let mut checks = Checks {
        evaluator: &evaluator,
        bindings: &bindings,
        reading: &r,
        stats: &mut stats,
        errors: &mut errors,
    };
    assert_eq!(checks.threshold(0, when, clear.as_ref(), false), Some((false, true)), "below `when`");
    assert_eq!(checks.threshold(0, when, clear.as_ref(), true), Some((true, false)), "not yet below `clear`");
    let empty = reading("gw", "b1", "boiler", 0);
    let bindings = Bindings::new(&empty, None, false, &[]);
    let mut checks = Checks {
        evaluator: &evaluator,
        bindings: &bindings,
        reading: &empty,
        stats: &mut stats,
        errors: &mut errors,
    };
    assert_eq!(checks.threshold(0, when, clear.as_ref(), false), None);
    assert_eq!((stats.evaluations, stats.eval_errors), (3, 1));
    let (rule, counted) = errors.of(&rules).next().expect("one rule");
    assert_eq!((rule, counted.count), (rules[0].id.as_str(), 1), "the error is the rule's: {counted:?}");
    assert!(counted.last_error.as_deref().is_some_and(|e| e.contains("b1")), "{counted:?}");
}

#[test]
fn a_threshold_in_maintenance_never_goes_pending_but_may_clear() {
    let rules = rules(OVER_PRESSURE_RULE);
    let rule = &rules[0];
    let mut alerts = Vec::new();
    assert_eq!(step_threshold(&mut alerts, 0, rule, (true, false), true, 0), None);
    assert!(alerts.is_empty(), "nothing pending");
    assert_eq!(step_threshold(&mut alerts, 0, rule, (true, false), false, 1_000), None);
    let fired = step_threshold(&mut alerts, 0, rule, (true, false), false, 3_000);
    assert_eq!(fired, Some(Transition::Fired { active_at: 1_000, fired_at: 3_000 }));
    let resolved = step_threshold(&mut alerts, 0, rule, (false, true), true, 4_000);
    assert_eq!(
        resolved,
        Some(Transition::Resolved { active_at: 1_000, fired_at: 3_000, resolved_at: 4_000 })
    );
    assert!(alerts.is_empty(), "an inactive alert is forgotten");
}

#[test]
fn per_code_bits_step_an_alert_per_code_named_after_it() {
    let rules = rules(FAULT_CODE_AND_BITS_RULES);
    let (rule, RuleType::Bits(codes)) = (&rules[1], &rules[1].rule_type) else { panic!("a bits rule") };
    let mut alerts = Vec::new();
    let fired = step_codes(&mut alerts, 1, rule, codes, 0b100001, false, 0);
    let names: Vec<_> = fired.iter().map(|c| (c.per_code.as_deref(), c.code.as_str())).collect();
    assert_eq!(names, [(Some("over_pressure"), "0"), (Some("burner_fault"), "5")]);
    assert_eq!(alerts.len(), 2);
    let resolved = step_codes(&mut alerts, 1, rule, codes, 0b100000, false, 1_000);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].code_name, "over_pressure");
    assert!(matches!(resolved[0].transition, Transition::Resolved { resolved_at: 1_000, .. }));
    assert!(step_codes(&mut alerts, 1, rule, codes, 0b100001, true, 2_000).is_empty(), "inhibited");
}

#[test]
fn one_fault_code_alert_shows_the_codes_active_when_it_last_matched() {
    let rules = rules(FAULT_CODE_AND_BITS_RULES);
    let (rule, RuleType::FaultCode(codes)) = (&rules[0], &rules[0].rule_type) else { panic!("fault_code") };
    let mut alerts = Vec::new();
    assert!(step_codes(&mut alerts, 0, rule, codes, 5, false, 0).is_empty(), "pending for 1 s");
    let fired = step_codes(&mut alerts, 0, rule, codes, 8, false, 1_000);
    assert_eq!(
        fired,
        [CodeTransition {
            transition: Transition::Fired { active_at: 0, fired_at: 1_000 },
            per_code: None,
            code: "8".into(),
            code_name: "trapped_outside_door_zone".into(),
        }]
    );
    let resolved = step_codes(&mut alerts, 0, rule, codes, 7, false, 2_000);
    assert_eq!(
        (resolved[0].code.as_str(), resolved[0].per_code.as_ref()),
        ("8", None),
        "unlisted code 7 resolves"
    );
}

#[test]
fn codes_read_from_integers_whole_floats_and_booleans_only() {
    assert_eq!(integer(&Value::Int(5)), Some(5));
    assert_eq!(integer(&Value::Float(8.0)), Some(8));
    assert_eq!(integer(&Value::Float(8.5)), None);
    assert_eq!(integer(&Value::Bool(true)), Some(1));
    assert_eq!(integer(&Value::Text("5".into())), None);
}

#[test]
fn a_reading_resolves_no_data_only_when_its_data_is_younger_than_after() {
    let rules = rules(NO_DATA_RULES);
    let rule = &rules[0];
    let mut alerts = Vec::new();
    step_slot(&mut alerts, (0, None), true, false, rule, 200_000, None).expect("fires at once");
    assert_eq!(resolve_no_data(&mut alerts, 0, rule, 0, 210_000), None, "a replayed old reading");
    assert_eq!(alerts.len(), 1);
    let resolved = resolve_no_data(&mut alerts, 0, rule, 100_000, 210_000);
    assert_eq!(
        resolved,
        Some(Transition::Resolved { active_at: 200_000, fired_at: 200_000, resolved_at: 210_000 })
    );
    assert!(alerts.is_empty());
}

#[test]
fn a_reading_resolves_its_gateways_no_data_unless_it_is_itself_older_than_after() {
    let rules = rules(NO_DATA_RULES);
    let rule = &rules[1];
    let mut alerts = Vec::new();
    step_slot(&mut alerts, 1, true, false, rule, 300_000, None).expect("fires at once");
    assert_eq!(resolve_gateway_no_data(&mut alerts, 1, rule, 190_000, 310_000), None, "2 min old");
    let resolved = resolve_gateway_no_data(&mut alerts, 1, rule, 190_001, 310_000);
    assert!(matches!(resolved, Some(Transition::Resolved { resolved_at: 310_000, .. })));
}
