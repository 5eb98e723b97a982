//! Inspection, verification and service-life schedules, after the regulations DOMAIN.md §1, §2
//! and §7 collect. Pure: a registry [`Unit`] and a date in, a due date and a status out.
//!
//! Each equipment kind has its checks ([`Check`]); the statutory ones (periodic inspection by an
//! inspection body, mandatory verification of a meter) make the overdue rate. For each check,
//! [`due_of`] gives the date it falls due:
//!
//! - the due date on the certificate (`next_inspection`) when the row gives one and no later
//!   inspection has been recorded against it (`last_inspection` before the certificate's early
//!   window, see [`early_months`]);
//! - otherwise the interval of the regulation, counted from the last inspection or verification,
//!   or from commissioning (installation supervisory inspection, first verification).
//!
//! [`status`] places a due date against today: ok, due soon (each lead crossed), overdue, and
//! overdue past the escalation.

use crate::date::Date;
use crate::unit::Unit;

/// What falls due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// 定期检验 by an inspection body: elevators, pressure vessels, lifting machinery.
    PeriodicInspection,
    /// 自行检测, elevators, in the years without a periodic inspection.
    SelfTest,
    /// 维保, elevators, at least every 15 days.
    Maintenance,
    /// 外部检验, boilers, yearly.
    ExternalInspection,
    /// 内部检验, boilers, every 2 years.
    InternalInspection,
    /// 检定: water meters (service life, or periodic verification) and public charging piles.
    Verification,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::PeriodicInspection,
        Check::SelfTest,
        Check::Maintenance,
        Check::ExternalInspection,
        Check::InternalInspection,
        Check::Verification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::PeriodicInspection => "periodic_inspection",
            Check::SelfTest => "self_test",
            Check::Maintenance => "maintenance",
            Check::ExternalInspection => "external_inspection",
            Check::InternalInspection => "internal_inspection",
            Check::Verification => "verification",
        }
    }

    pub fn parse(s: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The equipment kinds that have this check.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Check::PeriodicInspection => &["elevator", "pressure_vessel", "lifting_machinery"],
            Check::SelfTest | Check::Maintenance => &["elevator"],
            Check::ExternalInspection | Check::InternalInspection => &["boiler"],
            Check::Verification => &["water_meter", "charging_pile"],
        }
    }

    /// The regulation behind it, for messages and reports.
    pub fn source(self, kind: &str) -> &'static str {
        match (self, kind) {
            (Check::PeriodicInspection, "elevator") => "TSG T7001-2023 §4.1",
            (Check::PeriodicInspection, "pressure_vessel") => "TSG 21-2016",
            (Check::PeriodicInspection, _) => "TSG Q7015-2016 Art. 5",
            (Check::SelfTest, _) => "TSG T7008-2023",
            (Check::Maintenance, _) => "《特种设备安全监察条例》 Art. 31; TSG T5002-2017",
            (Check::ExternalInspection | Check::InternalInspection, _) => "TSG 11-2020 (TSG G7002-2015)",
            (Check::Verification, "water_meter") => "JJG 162-2019",
            (Check::Verification, _) => "JJG 1148-2022 / JJG 1149-2022",
        }
    }
}

/// The checks whose lapse makes a unit overdue in the overdue rate: periodic inspection and
/// mandatory verification, not self-tests or maintenance.
pub fn statutory(kind: &str) -> &'static [Check] {
    match kind {
        "elevator" | "pressure_vessel" | "lifting_machinery" => &[Check::PeriodicInspection],
        "boiler" => &[Check::ExternalInspection, Check::InternalInspection],
        "water_meter" | "charging_pile" => &[Check::Verification],
        _ => &[],
    }
}

/// When one check of one unit falls due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub due: Date,
    /// The date the interval counts from (last inspection or verification, commissioning), or
    /// none when the certificate's date is used.
    pub from: Option<Date>,
}

/// A check for one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The unit does not have this check (another kind, a private charging pile, an elevator
    /// past its self-test years, no maintenance record).
    NotApplicable,
    /// It has the check, but the row lacks what the due date needs.
    Unknown(&'static str),
    Due(Due),
}

/// How far ahead a certificate's next date may be met early without moving (DOMAIN.md §1.1:
/// TSG T7001-2023 allows elevator inspections up to 2 months early; §1.0: everything else is
/// applied for 1 month before expiry, 《特种设备安全法》 Art. 40). An inspection recorded
/// within this window before the certificate's date is that inspection.
pub fn early_months(kind: &str) -> i64 {
    if kind == "elevator" {
        2
    } else {
        1
    }
}

/// The certificate's `next_inspection`, unless a later inspection has been recorded against it.
fn certificate(unit: &Unit) -> Option<Date> {
    let next = unit.next_inspection?;
    let early = next.add_months(-early_months(&unit.kind));
    unit.last_inspection.is_none_or(|last| last < early).then_some(next)
}

/// Years after the installation supervisory inspection in which an elevator gets its periodic
/// inspection: TSG T7001-2023 §4.1(1) (DOMAIN.md §1.1): 1, 4, 7, 9, 11, 13 and 15; every year
/// after 15, §4.1(2).
pub fn elevator_inspection_year(k: i64) -> bool {
    k >= 15 || matches!(k, 1 | 4 | 7 | 9 | 11 | 13)
}

/// The first anniversary `base + k years` (k ≥ 1) of a year that `wanted` picks and that is
/// later than `after`.
fn next_anniversary(base: Date, after: Date, wanted: impl Fn(i64) -> bool) -> Option<Date> {
    let start = (after.year() - base.year() - 1).max(1);
    (start..start + 40).filter(|&k| wanted(k)).map(|k| base.add_years(k)).find(|&a| a > after)
}

fn due(due: Date, from: Option<Date>) -> Schedule {
    Schedule::Due(Due { due, from })
}

/// A text attribute, trimmed and lowercased.
fn word(unit: &Unit, name: &str) -> Option<String> {
    let v = unit.get(name)?.to_string();
    let v = v.trim().to_lowercase();
    (!v.is_empty()).then_some(v)
}

/// A public charging pile: `public` true, 1, yes or 是.
fn is_public(unit: &Unit) -> bool {
    word(unit, "public").is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes" | "y" | "是"))
}

/// The installation supervisory inspection, the base of an elevator's year pattern.
fn elevator_base(unit: &Unit) -> Option<Date> {
    unit.date("install_inspection").or(unit.commissioned)
}

fn elevator_inspection(unit: &Unit) -> Schedule {
    if let Some(next) = certificate(unit) {
        return due(next, None);
    }
    match (elevator_base(unit), unit.last_inspection) {
        (Some(base), last) => {
            // An inspection up to 2 months before its anniversary counts for that year.
            let after = last.map_or(base, |l| l.add_months(early_months("elevator")).max(base));
            // Every year past 15 is an inspection year, so there always is a next one.
            next_anniversary(base, after, elevator_inspection_year)
                .map_or(Schedule::Unknown("no inspection year ahead"), |next| {
                    due(next, Some(last.unwrap_or(base)))
                })
        }
        // No base for the year pattern: yearly, as before 2023 (TSG T7001-2009, DOMAIN.md §1.1).
        (None, Some(last)) => due(last.add_years(1), Some(last)),
        (None, None) => {
            Schedule::Unknown("no install_inspection, commissioned, last_inspection or next_inspection")
        }
    }
}

/// Self-tests in the years without a periodic inspection (TSG T7008-2023, DOMAIN.md §1.1), up to
/// 1 month early; none once the elevator is inspected every year (past 15 years).
fn elevator_self_test(unit: &Unit) -> Schedule {
    let Some(base) = elevator_base(unit) else {
        return Schedule::Unknown("no install_inspection or commissioned");
    };
    let last_test = unit.date("last_self_test");
    let after = [Some(base), last_test.map(|t| t.add_months(1)), unit.last_inspection]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(base);
    match next_anniversary(base, after, |k| k < 15 && !elevator_inspection_year(k)) {
        Some(next) => due(next, last_test),
        None => Schedule::NotApplicable,
    }
}

/// Interval of a pressure vessel after its first inspection, by safety grade (安全状况等级),
/// TSG 21-2016 (DOMAIN.md §1.3): grades 1–2 every 6 years; grade 3 every 3–6 years (3 unless
/// `interval_years` says otherwise); grade 4 monitored use, at most 3 years; grade 5 must not be
/// used (due at once). No grade: 3 years, the shortest regular interval.
fn vessel_interval_years(unit: &Unit) -> i64 {
    let given = unit.number("interval_years").map(|y| y.round() as i64);
    match unit.number("grade").map(|g| g.round() as i64) {
        Some(1 | 2) => 6,
        Some(4) => given.unwrap_or(3).clamp(1, 3),
        Some(5) => 0,
        _ => given.unwrap_or(3).clamp(3, 6),
    }
}

fn vessel_inspection(unit: &Unit) -> Schedule {
    if let Some(next) = certificate(unit) {
        return due(next, None);
    }
    match (unit.last_inspection, unit.commissioned) {
        (Some(last), _) => due(last.add_years(vessel_interval_years(unit)), Some(last)),
        // First periodic inspection within 3 years of entering service (TSG 21-2016, §1.3).
        (None, Some(start)) => due(start.add_years(3), Some(start)),
        (None, None) => Schedule::Unknown("no commissioned, last_inspection or next_inspection"),
    }
}

/// Lifting machinery by `crane_type`, TSG Q7015-2016 Art. 5 (DOMAIN.md §1.4): tower cranes,
/// construction hoists, mobile cranes and cranes for molten metal yearly; bridge, gantry, portal,
/// light and small, cable, mast, railway and jib cranes, mechanical parking equipment and
/// rubber-tyred container gantry cranes every 2 years. Unknown types: yearly, the shorter.
pub fn crane_interval_years(crane_type: Option<&str>) -> i64 {
    match crane_type {
        Some(
            "bridge"
            | "gantry"
            | "portal"
            | "light"
            | "cable"
            | "mast"
            | "railway"
            | "jib"
            | "parking"
            | "rubber_tyred_container_gantry",
        ) => 2,
        _ => 1,
    }
}

fn crane_inspection(unit: &Unit) -> Schedule {
    if let Some(next) = certificate(unit) {
        return due(next, None);
    }
    let years = crane_interval_years(word(unit, "crane_type").as_deref());
    // Counted from the installation supervisory inspection (DOMAIN.md §1.4).
    match unit.last_inspection.or(unit.date("install_inspection")).or(unit.commissioned) {
        Some(from) => due(from.add_years(years), Some(from)),
        None => Schedule::Unknown("no install_inspection, commissioned, last_inspection or next_inspection"),
    }
}

/// Boilers, TSG 11-2020 (which took in TSG G7002-2015), DOMAIN.md §1.2: external inspection
/// every year; internal inspection every 2 years (`interval_years` for process-unit and
/// power-station boilers, 3–6 years), the first 1 year after commissioning. Without
/// `last_external_inspection` or `last_internal_inspection`, `last_inspection` counts for both.
fn boiler_inspection(unit: &Unit, internal: bool) -> Schedule {
    let (column, years) = if internal {
        (
            "last_internal_inspection",
            unit.number("interval_years").map_or(2, |y| (y.round() as i64).clamp(2, 6)),
        )
    } else {
        if let Some(next) = certificate(unit) {
            return due(next, None);
        }
        ("last_external_inspection", 1)
    };
    match (unit.date(column).or(unit.last_inspection), unit.commissioned) {
        (Some(last), _) => due(last.add_years(years), Some(last)),
        (None, Some(start)) => due(start.add_years(1), Some(start)),
        (None, None) => Schedule::Unknown("no commissioned or last_inspection"),
    }
}

/// Water meters, JJG 162-2019 (DOMAIN.md §2.2), from the first verification: DN ≤ 25 mm a service
/// life of 6 years, 25 < DN ≤ 50 mm 4 years (超期服役 once past it); DN > 50 mm or Q3 > 16 m³/h
/// periodic verification every 2 years.
fn water_meter(unit: &Unit) -> Schedule {
    let Some(dn) = unit.number("dn_mm") else {
        return Schedule::Unknown("no dn_mm");
    };
    let Some(first) = unit.date("first_verification").or(unit.commissioned) else {
        return Schedule::Unknown("no first_verification or commissioned");
    };
    let periodic = dn > 50.0 || unit.number("q3_m3h").is_some_and(|q| q > 16.0);
    if periodic {
        if let Some(next) = certificate(unit) {
            return due(next, None);
        }
        let last = unit.last_inspection.unwrap_or(first).max(first);
        return due(last.add_years(2), Some(last));
    }
    let life = if dn <= 25.0 { 6 } else { 4 };
    due(first.add_years(life), Some(first))
}

/// Public charging piles, JJG 1148-2022 (AC) and JJG 1149-2022 (DC), DOMAIN.md §2.3: in-service
/// verification every 3 years, only for piles serving the public for trade settlement (§2.1).
fn charging_pile(unit: &Unit) -> Schedule {
    if !is_public(unit) {
        return Schedule::NotApplicable;
    }
    if let Some(next) = certificate(unit) {
        return due(next, None);
    }
    match unit.last_inspection.or(unit.date("first_verification")).or(unit.commissioned) {
        Some(from) => due(from.add_years(3), Some(from)),
        None => Schedule::Unknown("no commissioned, first_verification, last_inspection or next_inspection"),
    }
}

/// Elevator maintenance at least every 15 days (《特种设备安全监察条例》 Art. 31; TSG T5002-2017's
/// half-monthly items; DOMAIN.md §1.1). `maintenance_interval_days` in the registry overrides it
/// for on-demand maintenance pilots (按需维保, DOMAIN.md §1.1, marked low confidence).
pub const MAINTENANCE_DAYS: i64 = 15;

/// When maintenance falls due after maintenance on `last`.
pub fn maintenance_due(last: Date, unit: Option<&Unit>) -> Date {
    let days = unit
        .and_then(|u| u.number("maintenance_interval_days"))
        .map_or(MAINTENANCE_DAYS, |d| d.round() as i64);
    last.add_days(days.max(1))
}

/// When `check` falls due for `unit`, from the registry alone (maintenance: from its
/// `last_maintenance` column; the engine adds what telemetry shows).
pub fn due_of(check: Check, unit: &Unit) -> Schedule {
    if !check.kinds().contains(&unit.kind.as_str()) {
        return Schedule::NotApplicable;
    }
    match (check, unit.kind.as_str()) {
        (Check::PeriodicInspection, "elevator") => elevator_inspection(unit),
        (Check::PeriodicInspection, "pressure_vessel") => vessel_inspection(unit),
        (Check::PeriodicInspection, _) => crane_inspection(unit),
        (Check::SelfTest, _) => elevator_self_test(unit),
        (Check::Maintenance, _) => match unit.date("last_maintenance") {
            Some(last) => due(maintenance_due(last, Some(unit)), Some(last)),
            None => Schedule::NotApplicable,
        },
        (Check::ExternalInspection, _) => boiler_inspection(unit, false),
        (Check::InternalInspection, _) => boiler_inspection(unit, true),
        (Check::Verification, "water_meter") => water_meter(unit),
        (Check::Verification, _) => charging_pile(unit),
    }
}

/// Where a due date stands on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// `leads` of the leads given have been crossed (1 = the longest), `days_left` ≥ 0.
    DueSoon {
        leads: usize,
        days_left: i64,
    },
    /// Past the due date: the due date itself is the last good day.
    Overdue {
        days: i64,
        escalated: bool,
    },
}

impl Status {
    /// 0 ok, 1 to `leads` due soon, `leads + 1` overdue, `leads + 2` escalated: it only grows
    /// as time passes towards and beyond one due date.
    pub fn stage(self, lead_count: usize) -> usize {
        match self {
            Status::Ok => 0,
            Status::DueSoon { leads, .. } => leads,
            Status::Overdue { escalated: false, .. } => lead_count + 1,
            Status::Overdue { escalated: true, .. } => lead_count + 2,
        }
    }

    pub fn is_overdue(self) -> bool {
        matches!(self, Status::Overdue { .. })
    }
}

/// The status of `due` on `today`. `lead_days`: warnings this many days ahead (any order);
/// `escalate_after_days`: overdue this many days or more escalates.
pub fn status(due: Date, today: Date, lead_days: &[i64], escalate_after_days: Option<i64>) -> Status {
    let days_left = due.days_since(today);
    if days_left < 0 {
        let days = -days_left;
        return Status::Overdue { days, escalated: escalate_after_days.is_some_and(|e| days >= e) };
    }
    match lead_days.iter().filter(|&&lead| days_left <= lead).count() {
        0 => Status::Ok,
        leads => Status::DueSoon { leads, days_left },
    }
}

#[cfg(test)]
mod tests;
