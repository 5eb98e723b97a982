use telemetry::AlertStatus;

use super::*;

const RULES: &str = r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "over_pressure || pressure_mpa > 1.25"
clear = "!over_pressure && pressure_mpa < 1.19"
for = "3s"
severity = "critical"
summary = "{device.id} over pressure: {pressure_mpa} MPa"

[[rule]]
id = "boiler.no_data"
kinds = ["boiler"]
type = "no_data"
after = "10s"
severity = "major"
summary = "{device.id} silent for {after}"
"#;

const TEST: &str = r#"
rule_files = ["boiler.toml"]
interval = "1s"

[[series]]
device = "boiler-0001"
kind = "boiler"
values = { pressure_mpa = "1.0 1.0 1.3x10 1.0 _x12 1.0", over_pressure = "false x13 _x12 false" }

[[expect]]
at = "5s"
firing = [{ rule = "boiler.over_pressure", device = "boiler-0001", summary = "boiler-0001 over pressure: 1.3 MPa" }]
fired = [{ rule = "boiler.over_pressure", device = "boiler-0001" }]

[[expect]]
at = "14s"
firing = []
resolved = [{ rule = "boiler.over_pressure", device = "boiler-0001", severity = "critical" }]

[[expect]]
at = "23s"
firing = [{ rule = "boiler.no_data", device = "boiler-0001", summary = "boiler-0001 silent for 10s" }]

[[expect]]
at = "26s"
firing = []
resolved = [{ rule = "boiler.no_data", device = "boiler-0001" }]
"#;

fn outcome(test: &str) -> Outcome {
    let test = UnitTest::parse("t.toml", test).unwrap_or_else(|d| panic!("{d:?}"));
    run(&test, RuleSet::parse("boiler.toml", RULES).unwrap())
}

#[test]
fn a_scenario_on_the_virtual_clock() {
    let o = outcome(TEST);
    assert!(o.passed(), "{}", o.render());
    assert_eq!(o.checked, 4);
    let times: Vec<(i64, &str, AlertStatus)> =
        o.transitions.iter().map(|(t, m)| (*t, m.rule.as_str(), m.status)).collect();
    assert_eq!(
        times,
        [
            (5_000, "boiler.over_pressure", AlertStatus::Firing),
            (13_000, "boiler.over_pressure", AlertStatus::Resolved),
            (23_000, "boiler.no_data", AlertStatus::Firing),
            (26_000, "boiler.no_data", AlertStatus::Resolved),
        ]
    );
    assert!(o.render().starts_with("ok    t.toml (4 expectations, 4 transitions)"));
}

#[test]
fn a_failed_expectation_shows_what_happened_instead() {
    let o = outcome(&TEST.replace("at = \"5s\"", "at = \"4s\"").replace("silent for 10s", "quiet"));
    assert!(!o.passed());
    assert_eq!(o.failures.len(), 2);
    assert_eq!(o.failures[0].line, 10);
    assert_eq!(
        o.failures[0].problems,
        [
            "firing: missing boiler.over_pressure on boiler-0001",
            "fired: missing boiler.over_pressure on boiler-0001"
        ]
    );
    assert_eq!(
        o.failures[1].problems,
        [
            "firing: wanted boiler.no_data on boiler-0001 \"boiler-0001 quiet\", got boiler.no_data on boiler-0001 [major] \"boiler-0001 silent for 10s\""
        ]
    );
    let report = o.render();
    assert!(
        report.starts_with("FAIL  t.toml (2 of 4 expectations failed)\n  t.toml:10: at 4s\n"),
        "{report}"
    );
    assert!(report.contains("    what happened up to 4s:\n      nothing\n"), "{report}");
    assert!(
        report.contains("            5s  FIRING    boiler.over_pressure on boiler-0001 [critical] \"boiler-0001 over pressure: 1.3 MPa\"\n"),
        "{report}"
    );
    let o = outcome(&TEST.replace("firing = []\nresolved", "firing = []\nfired = []\nresolved"));
    assert!(o.passed(), "{}", o.render());
    let o = outcome(&TEST.replace(
        "at = \"14s\"\nfiring = []",
        "at = \"14s\"\nfiring = []\nfired = [{ rule = \"x\", device = \"y\" }]",
    ));
    assert_eq!(o.failures[0].problems, ["fired since 5s: missing x on y"]);
}

#[test]
fn problems_in_a_test_file_have_positions() {
    let errs = |text: &str| -> Vec<String> {
        UnitTest::parse("t.toml", text).unwrap_err().iter().map(ToString::to_string).collect()
    };
    let e = errs(&TEST.replace("1.3x10", "1.3y10"));
    assert!(e[0].starts_with("t.toml:8:36: pressure_mpa: `1.3y10` is not a value"), "{e:?}");
    let e = errs(&TEST.replace("at = \"14s\"", "at = \"3s\""));
    assert_eq!(e, ["t.toml:16:6: at: 3s is not after the previous expectation's 5s"]);
    let e = errs(&TEST.replace("kind = \"boiler\"", "kind = \"Boiler!\""));
    assert!(e[0].starts_with("t.toml:5:1: kind `Boiler!`"), "{e:?}");
    let e = errs(&TEST.replace("firing = []", "fireing = []"));
    assert!(e[0].starts_with("t.toml:17:1: unknown field `fireing`"), "{e:?}");
}

#[test]
fn the_runner_reads_rule_files_relative_to_the_test_file() {
    let dir = std::env::temp_dir().join(format!("rules-unit-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("boiler.toml"), RULES).unwrap();
    std::fs::write(dir.join("tests/boiler.toml"), TEST.replace("[\"boiler.toml\"]", "[\"..\"]")).unwrap();
    let o = run_file(&dir.join("tests/boiler.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(o.as_ref().is_ok_and(Outcome::passed), "{o:?}");
    let missing = run_file(Path::new("/nonexistent/t.toml")).unwrap_err();
    assert_eq!(missing[0].file, "/nonexistent/t.toml");
}

const INSPECTION: &str = r#"
[[rule]]
id = "boiler.external_inspection"
kinds = ["boiler"]
type = "inspection"
check = "external_inspection"
leads = ["7d"]
severity = "major"
summary = "{device.name} overdue, due {due}"
due_soon_summary = "{device.name} due {due}, in {days_left} d"
"#;

const INSPECTION_TEST: &str = r#"
rule_files = ["inspection.toml"]
start = "2026-05-20"
tick = "1d"

[[registry]]
csv = """
device,kind,name,commissioned,last_inspection
b1,boiler,1号锅炉,2019-05-10,2025-06-01
"""

[[registry]]
at = "20d"
csv = """
device,kind,name,commissioned,last_inspection
b1,boiler,1号锅炉,2019-05-10,2026-06-08
"""

[[expect]]
at = "5d"
firing = [{ rule = "boiler.external_inspection", device = "b1", severity = "warning", summary = "1号锅炉 due 2026-06-01, in 7 d" }]

[[expect]]
at = "13d"
firing = [{ rule = "boiler.external_inspection", device = "b1", severity = "major", summary = "1号锅炉 overdue, due 2026-06-01" }]

[[expect]]
at = "20d"
firing = []
resolved = [{ rule = "boiler.external_inspection", device = "b1" }]
"#;

#[test]
fn registry_rows_and_a_start_date_drive_inspection_rules() {
    let test = UnitTest::parse("t.toml", INSPECTION_TEST).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(test.start_ms, 1_779_206_400_000);
    let o = run(&test, RuleSet::parse("inspection.toml", INSPECTION).unwrap());
    assert!(o.passed(), "{}", o.render());
    let times: Vec<i64> = o.transitions.iter().map(|(t, _)| t / 86_400_000).collect();
    assert_eq!(times, [5, 13, 20], "warning, overdue, resolved: on the virtual clock's days");
}

#[test]
fn bad_registry_entries_are_reported_in_the_test_file() {
    let errs = |text: &str| -> Vec<String> {
        UnitTest::parse("t.toml", text).unwrap_err().iter().map(ToString::to_string).collect()
    };
    let e = errs(
        &INSPECTION_TEST
            .replace("b1,boiler,1号锅炉,2019-05-10,2026-06-08", "b1,boiler,1号锅炉,2019-05-10,2026-06-31"),
    );
    assert_eq!(e, ["t.toml:16:27: last_inspection: `2026-06-31` is not a date (YYYY-MM-DD)"]);
    let both = INSPECTION_TEST.replace("at = \"20d\"\ncsv", "at = \"20d\"\nfile = \"r.csv\"\ncsv");
    assert_eq!(errs(&both), ["t.toml:12:1: a [[registry]] entry takes `file` or `csv`, one of them"]);
    let e = errs(&INSPECTION_TEST.replace("2026-05-20", "2026-5-20"));
    assert_eq!(e, ["t.toml:3:9: start: `2026-5-20` is not a date (YYYY-MM-DD)"]);
    let file = "rule_files = [\"inspection.toml\"]\n[[registry]]\nfile = \"r.csv\"\n";
    let mut missing = UnitTest::parse("t.toml", file).unwrap();
    let e = missing.load(Path::new("/nonexistent")).unwrap_err();
    assert_eq!(e[0].file, "/nonexistent/r.csv");
}
