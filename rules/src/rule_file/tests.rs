use super::*;

const GOOD: &str = r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > 1.25"
clear = "pressure_mpa < 1.19"
for = "5s"
severity = "critical"
summary = "{device.id} over pressure {pressure_mpa} MPa"
source = "TSG 11-2020"

[[rule]]
id = "elevator.trapped"
kinds = ["elevator"]
when = "fault_code == 5"
severity = "critical"
summary = "trapped"
"#;

#[test]
fn parses_a_good_file() {
    let set = RuleSet::parse("good.toml", GOOD).unwrap();
    assert_eq!(set.rules.len(), 2);
    let r = &set.rules[0];
    assert_eq!(
        (r.id.as_str(), r.hold_for, r.severity, r.line),
        ("boiler.over_pressure", Duration::from_secs(5), Severity::Critical, 2)
    );
    assert!(r.clear.is_some());
    assert_eq!(set.rules[1].hold_for, Duration::ZERO);
    assert!(set.rules[1].applies_to("elevator") && !set.rules[1].applies_to("boiler"));
}

fn errors(text: &str) -> Vec<String> {
    RuleSet::parse("f.toml", text).unwrap_err().iter().map(|d| d.to_string()).collect()
}

#[test]
fn expression_errors_point_into_the_expression() {
    let text = GOOD.replace("pressure_mpa > 1.25", "pressure_mpa > > 1.25");
    // `when = "pressure_mpa > > 1.25"` is line 5; the second `>` is column 24.
    assert_eq!(errors(&text).len(), 1);
    assert!(errors(&text)[0].starts_with("f.toml:5:24: when: "), "{:?}", errors(&text));
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let text = GOOD
        .replace("for = \"5s\"", "for = \"5 parsecs\"")
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
    let errs = errors(&GOOD.replace("source = ", "sauce = "));
    assert!(errs[0].starts_with("f.toml:10:1: unknown field `sauce`"), "{errs:?}");
    let errs = errors("[[rule]]\nid = \"x\"\n");
    assert!(errs[0].starts_with("f.toml:1:1: missing field"), "{errs:?}");
    let errs = errors("[[rule]\n");
    assert!(errs[0].starts_with("f.toml:1:"), "{errs:?}");
}

#[test]
fn ids_must_be_unique_across_files() {
    let err = RuleSet::merge(&[("a.toml", GOOD), ("b.toml", GOOD)]).unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(
        err[0].to_string(),
        "b.toml:2:1: rule id `boiler.over_pressure` is already defined at a.toml:2"
    );
}
