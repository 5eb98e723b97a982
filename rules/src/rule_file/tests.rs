use super::*;
use crate::test_support::{
    ELEVATOR_NO_DATA_RULE, FAULT_CODE_AND_BITS_RULES, GATEWAY_NO_DATA_RULE, OVER_PRESSURE_RULE,
};

const ELEVATOR_TRAPPED_RULE: &str = r#"
[[rule]]
id = "elevator.trapped"
kinds = ["elevator"]
when = "fault_code == 5"
severity = "critical"
summary = "trapped"
"#;

/// Two threshold rules: boiler.over_pressure with `clear`, `for` and `source` from line 2,
/// elevator.trapped with none of them from line 12.
fn good() -> String {
    [OVER_PRESSURE_RULE, ELEVATOR_TRAPPED_RULE].concat()
}

#[test]
fn parses_a_good_file() {
    let set = RuleSet::parse("good.toml", &good()).unwrap();
    assert_eq!(set.rules.len(), 2);
    let r = &set.rules[0];
    assert_eq!(
        (r.id.as_str(), r.hold_for, r.severity, r.line),
        ("boiler.over_pressure", Duration::from_secs(2), Severity::Critical, 2)
    );
    assert!(matches!(&r.rule_type, RuleType::Threshold { clear: Some(_), .. }));
    assert_eq!(set.rules[1].hold_for, Duration::ZERO);
    assert!(set.rules[1].applies_to("elevator") && !set.rules[1].applies_to("boiler"));
}

fn errors(text: &str) -> Vec<String> {
    RuleSet::parse("f.toml", text).unwrap_err().iter().map(|d| d.to_string()).collect()
}

#[test]
fn expression_errors_point_into_the_expression() {
    let text = good().replace("pressure_mpa > 1.25", "pressure_mpa > > 1.25");
    // `when = "pressure_mpa > > 1.25"` is line 5; the second `>` is column 24.
    assert_eq!(errors(&text).len(), 1);
    assert!(errors(&text)[0].starts_with("f.toml:5:24: when: "), "{:?}", errors(&text));
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let text = good()
        .replace("for = \"2s\"", "for = \"5 parsecs\"")
        .replace(
            "severity = \"critical\"\nsummary = \"trapped\"",
            "severity = \"urgent\"\nsummary = \"trapped {\"",
        )
        .replace("id = \"elevator.trapped\"", "id = \"boiler.over_pressure\"");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.starts_with("f.toml:7:7: for: `5 parsecs`")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.starts_with("f.toml:13:6: rule id `boiler.over_pressure` is used twice")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.starts_with("f.toml:16:12: severity `urgent`")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("f.toml:17:20: summary: `{` is never closed")), "{errs:?}");
}

#[test]
fn schema_errors_name_the_line() {
    let errs = errors(&good().replace("source = ", "sauce = "));
    assert!(errs[0].starts_with("f.toml:10:1: unknown field `sauce`"), "{errs:?}");
    let errs = errors("[[rule]]\nid = \"x\"\n");
    assert!(errs[0].starts_with("f.toml:1:1: missing field"), "{errs:?}");
    let errs = errors("[[rule]\n");
    assert!(errs[0].starts_with("f.toml:1:"), "{errs:?}");
}

#[test]
fn ids_must_be_unique_across_files() {
    let err = RuleSet::merge(&[("a.toml", &good()), ("b.toml", &good())]).unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(
        err[0].to_string(),
        "b.toml:2:1: rule id `boiler.over_pressure` is already defined at a.toml:2"
    );
}

/// One rule of each type but threshold and inspection, from lines 2, 12, 22 and 30: fault_code,
/// bits, no_data, gateway_no_data.
fn rule_types() -> String {
    [FAULT_CODE_AND_BITS_RULES, ELEVATOR_NO_DATA_RULE, GATEWAY_NO_DATA_RULE].concat()
}

#[test]
fn parses_every_rule_type() {
    let set = RuleSet::parse("kinds.toml", &rule_types()).unwrap_or_else(|d| panic!("{d:?}"));
    let types: Vec<&str> = set.rules.iter().map(|r| r.rule_type.name()).collect();
    assert_eq!(types, ["fault_code", "bits", "no_data", "gateway_no_data"]);
    let RuleType::FaultCode(codes) = &set.rules[0].rule_type else { panic!() };
    assert_eq!(codes.point, "fault_code");
    assert_eq!(codes.names.get(&8).map(String::as_str), Some("trapped_outside_door_zone"));
    assert!(!codes.per_code);
    assert_eq!(set.rules[0].alert_ids(), ["elevator.passenger_trapped"]);
    assert_eq!(set.rules[1].alert_ids(), ["boiler.alarm.over_pressure", "boiler.alarm.burner_fault"]);
    assert!(
        matches!(set.rules[2].rule_type, RuleType::NoData { after } if after == Duration::from_secs(120))
    );
}

#[test]
fn keys_must_fit_the_rule_type() {
    let text = rule_types()
        .replace("type = \"no_data\"\n", "type = \"no_data\"\nwhen = \"x > 1\"\n")
        .replace("bits = { 0 = \"over_pressure\"", "bits = { 64 = \"over_pressure\"")
        .replace("codes = { 5 = \"passenger_trapped\"", "codes = { five = \"passenger_trapped\"")
        .replace("type = \"gateway_no_data\"", "type = \"gateway_silence\"");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.starts_with("f.toml:7:9: codes: `five` is not an integer code")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.starts_with("f.toml:17:8: bits: `64` is not a bit number")), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("f.toml:26:8: `when` belongs to threshold rules, not to no_data rules")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("f.toml:34:8: type `gateway_silence` must be one of")),
        "{errs:?}"
    );
    let errs = errors(
        "[[rule]]\nid = \"x\"\nkinds = [\"boiler\"]\ntype = \"bits\"\nseverity = \"info\"\nsummary = \"x\"\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("f.toml:1:1: a bits rule needs `point`"), "{errs:?}");
    let errs = errors("[[rule]]\nid = \"x\"\nkinds = [\"boiler\"]\nseverity = \"info\"\nsummary = \"x\"\n");
    assert_eq!(errs, ["f.toml:1:1: a threshold rule needs `when`"]);
}

#[test]
fn window_calls_are_checked_where_they_are_written() {
    let text = good().replace("pressure_mpa > 1.25", "avg(pressure_mpa, '5 parsecs') > 1.25");
    let errs = errors(&text);
    assert!(errs[0].starts_with("f.toml:5:9: when: `avg`: window `5 parsecs`"), "{errs:?}");
}

#[test]
fn per_code_alert_ids_must_not_clash_with_rule_ids() {
    let other = r#"
[[rule]]
id = "boiler.alarm.burner_fault"
kinds = ["boiler"]
when = "burner_fault"
severity = "major"
summary = "x"
"#;
    let err = RuleSet::merge(&[("a.toml", &rule_types()), ("b.toml", other)]).unwrap_err();
    assert_eq!(
        err[0].to_string(),
        "b.toml:2:1: alert id `boiler.alarm.burner_fault` of rule `boiler.alarm.burner_fault` is already used by rule `boiler.alarm` at a.toml:12"
    );
    let errs = errors(&format!("{}{other}", rule_types()));
    assert!(errs[0].starts_with("f.toml:39:6: alert id `boiler.alarm.burner_fault`"), "{errs:?}");
}

#[test]
fn every_bad_rule_table_is_reported_and_the_good_ones_are_kept() {
    let text = good().replace("source = ", "sauce = ")
        + "\n[[rule]]\nkinds = [\"boiler\"]\nwhen = \"x > 1\"\nseverity = \"info\"\nsummary = \"x\"\n"
        + "\n[[rule]]\nid = \"c\"\nkinds = [\"boiler\"]\nwhen = \"x > 1\"\nseverity = \"urgent\"\nsummary = \"x\"\n";
    let (set, problems) = RuleSet::merge_partly(&[("f.toml", &text)]);
    let problems: Vec<String> = problems.iter().map(|d| d.to_string()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("f.toml:10:1: unknown field `sauce`"), "{problems:?}");
    assert!(problems[1].starts_with("f.toml:19:1: missing field `id`"), "{problems:?}");
    assert!(problems[2].starts_with("f.toml:29:12: severity `urgent`"), "{problems:?}");
    let kept: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(kept, ["elevator.trapped"]);
}

#[test]
fn a_bad_file_level_key_does_not_hide_the_rules_problems() {
    let text = format!(
        "inhibit_when = 3\nowner = \"me\"\n{}",
        good().replace("for = \"2s\"", "for = \"2 parsecs\"")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("f.toml:1:16: invalid type"), "{errs:?}");
    assert!(errs[1].starts_with("f.toml:9:7: for: `2 parsecs`"), "{errs:?}");
}

#[test]
fn problems_of_two_files_are_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, good().replace("source = ", "sauce = ")).unwrap();
    std::fs::write(
        &b,
        good()
            .replace("boiler.over_pressure", "b.x")
            .replace("elevator.trapped", "b.y")
            .replace("\"critical\"", "\"urgent\""),
    )
    .unwrap();
    let (set, problems) = RuleSet::load_partly(&[&a, &b]);
    let files: Vec<&str> = problems.iter().map(|d| d.file.rsplit('/').next().unwrap()).collect();
    assert_eq!(files, ["a.toml", "b.toml", "b.toml"], "{problems:?}");
    assert_eq!(set.rules.len(), 1, "a.toml's elevator.trapped is valid");
    assert_eq!(RuleSet::load(&[&a, &b]).unwrap_err(), problems);
}
