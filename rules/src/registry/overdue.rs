//! The overdue rate (超期未检率): overdue units ÷ registered units, in total, by town, by kind and
//! by town and kind, for the console and the TSDB (measurement `inspection`).
//!
//! A unit counts as registered when one of its kind's statutory checks applies to it
//! ([`crate::inspection::statutory`]: periodic inspection, mandatory verification; a charging
//! pile only when public), and as overdue when one of them is past its due date. A unit whose
//! row lacks the dates its schedule needs counts as registered and unscheduled, not overdue.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use telemetry::line_protocol::{line, FieldValue};

use super::{Registry, Unit};
use crate::date::Date;
use crate::inspection::{self, Schedule};

/// Where a unit stands against its statutory checks on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No statutory check applies (an unknown kind, a private charging pile).
    NotSubject,
    /// A check applies but the row lacks what its due date needs.
    Unscheduled,
    /// Past a due date: the earliest one missed.
    Overdue(Date),
    /// Every check in date: the next due date.
    InOrder(Date),
}

/// The unit's standing on `today`.
pub fn standing(unit: &Unit, today: Date) -> Standing {
    let mut next: Option<Date> = None;
    let mut unknown = false;
    for &check in inspection::statutory(&unit.kind) {
        match inspection::due_of(check, unit) {
            Schedule::NotApplicable => {}
            Schedule::Unknown(_) => unknown = true,
            Schedule::Due(d) => next = Some(next.map_or(d.due, |n| n.min(d.due))),
        }
    }
    match next {
        Some(due) if due < today => Standing::Overdue(due),
        _ if unknown => Standing::Unscheduled,
        Some(due) => Standing::InOrder(due),
        None => Standing::NotSubject,
    }
}

/// Counts for one group of units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub registered: u64,
    pub overdue: u64,
    pub unscheduled: u64,
}

impl Tally {
    /// Overdue ÷ registered (0 for no units).
    pub fn rate(&self) -> f64 {
        if self.registered == 0 {
            0.0
        } else {
            self.overdue as f64 / self.registered as f64
        }
    }

    fn add(&mut self, standing: Standing) {
        self.registered += 1;
        match standing {
            Standing::Overdue(_) => self.overdue += 1,
            Standing::Unscheduled => self.unscheduled += 1,
            _ => {}
        }
    }
}

/// The overdue rate on one day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OverdueReport {
    pub at: Option<Date>,
    pub total: Tally,
    pub by_town: BTreeMap<String, Tally>,
    pub by_kind: BTreeMap<String, Tally>,
    pub by_town_kind: BTreeMap<(String, String), Tally>,
}

/// The town a unit counts under: `unknown` when the row names none.
fn town(unit: &Unit) -> &str {
    if unit.town.is_empty() {
        "unknown"
    } else {
        &unit.town
    }
}

impl Registry {
    /// The overdue rate on `today`: one pass over the units.
    pub fn overdue_rate(&self, today: Date) -> OverdueReport {
        let mut report = OverdueReport { at: Some(today), ..OverdueReport::default() };
        let mut groups: HashMap<(&str, &str), Tally> = HashMap::new();
        for unit in &self.units {
            let standing = standing(unit, today);
            if standing != Standing::NotSubject {
                groups.entry((town(unit), unit.kind.as_str())).or_default().add(standing);
            }
        }
        for ((town, kind), t) in groups {
            merge(&mut report.total, t);
            merge(report.by_town.entry(town.to_string()).or_default(), t);
            merge(report.by_kind.entry(kind.to_string()).or_default(), t);
            report.by_town_kind.insert((town.to_string(), kind.to_string()), t);
        }
        report
    }

    /// The units overdue on `today`, with the due date each missed first.
    pub fn overdue_units(&self, today: Date) -> Vec<(&Unit, Date)> {
        self.units
            .iter()
            .filter_map(|u| match standing(u, today) {
                Standing::Overdue(due) => Some((u, due)),
                _ => None,
            })
            .collect()
    }
}

fn merge(into: &mut Tally, t: Tally) {
    into.registered += t.registered;
    into.overdue += t.overdue;
    into.unscheduled += t.unscheduled;
}

impl OverdueReport {
    /// InfluxDB line protocol, measurement `inspection`, tags `town` and `kind` (`all` for a
    /// total), fields `registered`, `overdue`, `unscheduled` (integers) and `rate` (overdue ÷
    /// registered), at `ts_ms` (millisecond precision, as ingest writes).
    pub fn to_line_protocol(&self, ts_ms: i64) -> String {
        let mut out = String::new();
        let rows = self
            .by_town_kind
            .iter()
            .map(|((town, kind), t)| (town.as_str(), kind.as_str(), t))
            .chain(self.by_town.iter().map(|(town, t)| (town.as_str(), "all", t)))
            .chain(self.by_kind.iter().map(|(kind, t)| ("all", kind.as_str(), t)))
            .chain(std::iter::once(("all", "all", &self.total)));
        let int = |n: u64| FieldValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
        for (town, kind, t) in rows {
            line(&mut out, "inspection")
                .tag("town", town)
                .tag("kind", kind)
                .field("registered", int(t.registered))
                .field("overdue", int(t.overdue))
                .field("unscheduled", int(t.unscheduled))
                .field("rate", FieldValue::Float(t.rate()))
                .end(ts_ms);
        }
        out
    }

    /// A report for people: the total, then by kind and by town.
    pub fn render(&self) -> String {
        let at = self.at.map(|d| d.to_string()).unwrap_or_default();
        let t = &self.total;
        let mut out = format!(
            "overdue rate on {at}: {} of {} units overdue = {:.2} % ({} unscheduled)\n",
            t.overdue,
            t.registered,
            t.rate() * 100.0,
            t.unscheduled
        );
        let table = |out: &mut String, title: &str, rows: &mut dyn Iterator<Item = (&str, &Tally)>| {
            let _ = writeln!(
                out,
                "\n{:>10} {:>8} {:>8} {:>11}  {title}",
                "registered", "overdue", "rate", "unscheduled"
            );
            for (name, t) in rows {
                let rate = format!("{:.2} %", t.rate() * 100.0);
                let _ = writeln!(
                    out,
                    "{:>10} {:>8} {rate:>8} {:>11}  {name}",
                    t.registered, t.overdue, t.unscheduled
                );
            }
        };
        table(&mut out, "kind", &mut self.by_kind.iter().map(|(k, t)| (k.as_str(), t)));
        table(&mut out, "town", &mut self.by_town.iter().map(|(k, t)| (k.as_str(), t)));
        out
    }
}
