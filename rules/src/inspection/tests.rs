use telemetry::Value;

use super::*;

/// A registry row's cells: (column, value).
type Cells<'a> = &'a [(&'a str, &'a str)];

fn d(s: &str) -> Date {
    Date::parse(s).unwrap_or_else(|| panic!("{s}"))
}

/// A unit of `kind` with `(column, value)` pairs, as a registry row would give them.
fn unit(kind: &str, cells: &[(&str, &str)]) -> Unit {
    let mut u = Unit::new("dev-1", kind);
    for &(column, value) in cells {
        match column {
            "commissioned" => u.commissioned = Some(d(value)),
            "last_inspection" => u.last_inspection = Some(d(value)),
            "next_inspection" => u.next_inspection = Some(d(value)),
            _ => u.set(column, crate::registry::cell_value(value)),
        }
    }
    u
}

fn due_date(check: Check, u: &Unit) -> Option<String> {
    match due_of(check, u) {
        Schedule::Due(due) => Some(due.due.to_string()),
        _ => None,
    }
}

#[test]
fn elevators_follow_the_t7001_year_pattern() {
    let base = ("install_inspection", "2010-03-15");
    let cases: &[(Cells, &str)] = &[
        (&[base], "2011-03-15"),
        // Inspected in year 1: next in year 4, then 7.
        (&[base, ("last_inspection", "2011-03-10")], "2014-03-15"),
        // Up to 2 months early counts for that year.
        (&[base, ("last_inspection", "2014-01-20")], "2017-03-15"),
        (&[base, ("last_inspection", "2017-03-20")], "2019-03-15"),
        (&[base, ("last_inspection", "2023-03-01")], "2025-03-15"),
        // Past 15 years: every year.
        (&[base, ("last_inspection", "2025-03-15")], "2026-03-15"),
        (&[base, ("last_inspection", "2026-03-01")], "2027-03-15"),
        // Overdue: inspected in year 4, never since.
        (&[base, ("last_inspection", "2014-03-01")], "2017-03-15"),
        // commissioned when no install_inspection is given.
        (&[("commissioned", "2024-02-29")], "2025-02-28"),
        // The certificate's date wins, unless an inspection was recorded against it.
        (&[base, ("last_inspection", "2025-09-20"), ("next_inspection", "2026-09-30")], "2026-09-30"),
        (&[base, ("last_inspection", "2026-08-15"), ("next_inspection", "2026-09-30")], "2027-03-15"),
        (&[("next_inspection", "2026-09-30")], "2026-09-30"),
        // No base for the pattern: yearly from the last inspection.
        (&[("last_inspection", "2025-06-01")], "2026-06-01"),
    ];
    for (cells, want) in cases {
        assert_eq!(
            due_date(Check::PeriodicInspection, &unit("elevator", cells)).as_deref(),
            Some(*want),
            "{cells:?}"
        );
    }
    assert!(matches!(due_of(Check::PeriodicInspection, &unit("elevator", &[])), Schedule::Unknown(_)));
}

#[test]
fn elevator_self_tests_fill_the_years_between_inspections() {
    let base = ("install_inspection", "2010-03-15");
    let cases: &[(Cells, Option<&str>)] = &[
        (&[base, ("last_inspection", "2014-03-10")], Some("2015-03-15")),
        (&[base, ("last_inspection", "2014-03-10"), ("last_self_test", "2015-02-20")], Some("2016-03-15")),
        (&[base, ("last_inspection", "2017-03-10"), ("last_self_test", "2016-03-01")], Some("2018-03-15")),
        (&[base], Some("2012-03-15")),
        // Year 14 was the last self-test year.
        (&[base, ("last_inspection", "2023-03-15"), ("last_self_test", "2024-03-10")], None),
    ];
    for (cells, want) in cases {
        assert_eq!(due_date(Check::SelfTest, &unit("elevator", cells)).as_deref(), *want, "{cells:?}");
    }
    assert_eq!(due_of(Check::SelfTest, &unit("boiler", &[base])), Schedule::NotApplicable);
}

#[test]
fn boilers_external_yearly_internal_every_two_years() {
    let start = ("commissioned", "2020-05-10");
    let cases: &[(Cells, &str, &str)] = &[
        (&[start], "2021-05-10", "2021-05-10"),
        (&[start, ("last_inspection", "2024-06-01")], "2025-06-01", "2026-06-01"),
        (
            &[start, ("last_inspection", "2024-06-01"), ("last_internal_inspection", "2023-06-01")],
            "2025-06-01",
            "2025-06-01",
        ),
        (
            &[start, ("last_inspection", "2024-06-01"), ("next_inspection", "2025-05-20")],
            "2025-05-20",
            "2026-06-01",
        ),
        // Power-station boilers: internal with the overhaul cycle.
        (&[start, ("last_inspection", "2024-06-01"), ("interval_years", "4")], "2025-06-01", "2028-06-01"),
    ];
    for (cells, external, internal) in cases {
        let u = unit("boiler", cells);
        assert_eq!(due_date(Check::ExternalInspection, &u).as_deref(), Some(*external), "{cells:?}");
        assert_eq!(due_date(Check::InternalInspection, &u).as_deref(), Some(*internal), "{cells:?}");
    }
}

#[test]
fn pressure_vessels_by_safety_grade() {
    let start = ("commissioned", "2020-01-01");
    let last = ("last_inspection", "2023-01-01");
    let cases: &[(Cells, &str)] = &[
        (&[start], "2023-01-01"),
        (&[start, last, ("grade", "1")], "2029-01-01"),
        (&[start, last, ("grade", "2")], "2029-01-01"),
        (&[start, last, ("grade", "3")], "2026-01-01"),
        (&[start, last, ("grade", "3"), ("interval_years", "5")], "2028-01-01"),
        (&[start, last, ("grade", "4"), ("interval_years", "2")], "2025-01-01"),
        (&[start, last, ("grade", "4"), ("interval_years", "5")], "2026-01-01"),
        (&[start, last, ("grade", "5")], "2023-01-01"),
        (&[start, last], "2026-01-01"),
    ];
    for (cells, want) in cases {
        assert_eq!(
            due_date(Check::PeriodicInspection, &unit("pressure_vessel", cells)).as_deref(),
            Some(*want),
            "{cells:?}"
        );
    }
}

#[test]
fn lifting_machinery_by_crane_type() {
    let last = ("last_inspection", "2025-04-01");
    for (crane, want) in [
        ("tower", "2026-04-01"),
        ("Bridge", "2027-04-01"),
        ("parking", "2027-04-01"),
        ("molten_metal", "2026-04-01"),
        ("?", "2026-04-01"),
    ] {
        let u = unit("lifting_machinery", &[last, ("crane_type", crane)]);
        assert_eq!(due_date(Check::PeriodicInspection, &u).as_deref(), Some(want), "{crane}");
    }
    let u = unit("lifting_machinery", &[("commissioned", "2025-01-10"), ("crane_type", "gantry")]);
    assert_eq!(due_date(Check::PeriodicInspection, &u).as_deref(), Some("2027-01-10"));
}

#[test]
fn water_meters_by_diameter_and_charging_piles_when_public() {
    let first = ("first_verification", "2020-07-01");
    let cases: &[(Cells, Option<&str>)] = &[
        (&[first, ("dn_mm", "15")], Some("2026-07-01")),
        (&[first, ("dn_mm", "25")], Some("2026-07-01")),
        (&[first, ("dn_mm", "40")], Some("2024-07-01")),
        (&[first, ("dn_mm", "50")], Some("2024-07-01")),
        (&[first, ("dn_mm", "40"), ("q3_m3h", "25")], Some("2022-07-01")),
        (&[first, ("dn_mm", "80")], Some("2022-07-01")),
        (&[first, ("dn_mm", "80"), ("last_inspection", "2024-08-01")], Some("2026-08-01")),
        // Service life is the meter's, whatever a row's next date says.
        (&[first, ("dn_mm", "20"), ("next_inspection", "2030-01-01")], Some("2026-07-01")),
        (&[("commissioned", "2021-01-05"), ("dn_mm", "20")], Some("2027-01-05")),
        (&[first], None),
    ];
    for (cells, want) in cases {
        assert_eq!(due_date(Check::Verification, &unit("water_meter", cells)).as_deref(), *want, "{cells:?}");
    }
    let pile = |public: &str| unit("charging_pile", &[("commissioned", "2023-03-01"), ("public", public)]);
    for yes in ["true", "1", "yes", "是"] {
        assert_eq!(due_date(Check::Verification, &pile(yes)).as_deref(), Some("2026-03-01"), "{yes}");
    }
    for no in ["false", "0", "no"] {
        assert_eq!(due_of(Check::Verification, &pile(no)), Schedule::NotApplicable, "{no}");
    }
    assert_eq!(due_of(Check::Verification, &unit("charging_pile", &[])), Schedule::NotApplicable);
    assert_eq!(pile("1").get("public"), Some(&Value::Int(1)));
}

#[test]
fn maintenance_every_15_days_unless_the_registry_says_otherwise() {
    let u = unit("elevator", &[("last_maintenance", "2026-11-01")]);
    assert_eq!(due_date(Check::Maintenance, &u).as_deref(), Some("2026-11-16"));
    let u = unit("elevator", &[("last_maintenance", "2026-11-01"), ("maintenance_interval_days", "30")]);
    assert_eq!(due_date(Check::Maintenance, &u).as_deref(), Some("2026-12-01"));
    assert_eq!(due_of(Check::Maintenance, &unit("elevator", &[])), Schedule::NotApplicable);
}

#[test]
fn status_by_leads_and_escalation() {
    let due = d("2026-06-30");
    let leads = [60, 30, 7];
    let at = |s: &str| status(due, d(s), &leads, Some(30));
    assert_eq!(at("2026-04-30"), Status::Ok);
    assert_eq!(at("2026-05-01"), Status::DueSoon { leads: 1, days_left: 60 });
    assert_eq!(at("2026-05-31"), Status::DueSoon { leads: 2, days_left: 30 });
    assert_eq!(at("2026-06-23"), Status::DueSoon { leads: 3, days_left: 7 });
    assert_eq!(at("2026-06-30"), Status::DueSoon { leads: 3, days_left: 0 });
    assert_eq!(at("2026-07-01"), Status::Overdue { days: 1, escalated: false });
    assert_eq!(at("2026-07-30"), Status::Overdue { days: 30, escalated: true });
    let stages: Vec<usize> =
        ["2026-04-30", "2026-05-01", "2026-06-01", "2026-06-29", "2026-07-02", "2026-08-01"]
            .iter()
            .map(|s| at(s).stage(3))
            .collect();
    assert_eq!(stages, [0, 1, 2, 3, 4, 5]);
    assert_eq!(status(due, d("2026-07-30"), &[], None), Status::Overdue { days: 30, escalated: false });
    assert_eq!(status(due, d("2026-06-29"), &[], None).stage(0), 0);
}

#[test]
fn checks_by_name_and_kind() {
    for check in Check::ALL {
        assert_eq!(Check::parse(check.as_str()), Some(check));
        for kind in check.kinds() {
            assert!(!check.source(kind).is_empty());
        }
    }
    assert_eq!(statutory("boiler"), [Check::ExternalInspection, Check::InternalInspection]);
    assert!(statutory("gateway").is_empty());
    assert_eq!(crane_interval_years(None), 1);
}
