//! The equipment registry: one CSV row per device (DESIGN.md, "What the files look like"):
//!
//! ```text
//! device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection,rated_pressure_mpa,dn_mm
//! boiler-0001,boiler,10004419002019000123,1号锅炉,东城街道,东城大道 88 号,2019-05-10,2025-06-01,2026-06-01,1.25,
//! ```
//!
//! `device` and `kind` are required; the other columns of [`COLUMNS`] are the registry's own;
//! any further column is a model attribute (`rated_pressure_mpa`, `dn_mm`, `grade`,
//! `crane_type`, `public`, …). Dates are `YYYY-MM-DD`. An attribute cell that is a number becomes
//! a number (`1.25`, `50`; not `007`, which stays text), `true` and `false` booleans, the rest
//! text; an empty cell is no value. The attributes that schedules read are checked:
//! [`DATE_ATTRIBUTES`] must be dates, [`NUMBER_ATTRIBUTES`] numbers.
//!
//! [`Registry::parse`] is pure: a row with a problem is reported (`file:line:column: message`,
//! the column named) and skipped, and the rest loads. The engine takes a registry with
//! [`crate::Engine::set_registry`]: its rows are the devices' `device.…` attributes and the
//! units the inspection rules watch. [`Registry::overdue_rate`] gives the overdue rate,
//! [`synthetic`] a registry of the size of a city for demos and benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use telemetry::Value;

use crate::date::Date;
use crate::rule_file::Diagnostic;

pub mod csv;
mod overdue;
pub mod synthetic;
#[cfg(test)]
mod tests;

pub use overdue::{standing, OverdueReport, Standing, Tally};

/// The registry's own columns, in the order [`Registry::to_csv`] writes them.
pub const COLUMNS: [&str; 9] = [
    "device",
    "kind",
    "registration_code",
    "name",
    "town",
    "address",
    "commissioned",
    "last_inspection",
    "next_inspection",
];

/// Attribute columns the schedules read as dates.
pub const DATE_ATTRIBUTES: &[&str] = &[
    "install_inspection",
    "first_verification",
    "last_self_test",
    "last_maintenance",
    "last_external_inspection",
    "last_internal_inspection",
];

/// Attribute columns the schedules and the default rules read as numbers.
pub const NUMBER_ATTRIBUTES: &[&str] =
    &["rated_pressure_mpa", "dn_mm", "q3_m3h", "grade", "interval_years", "maintenance_interval_days"];

/// One registered device.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub device: String,
    pub kind: String,
    /// 设备注册代码; empty for meters and charging piles, which have none.
    pub registration_code: String,
    pub name: String,
    pub town: String,
    pub address: String,
    pub commissioned: Option<Date>,
    pub last_inspection: Option<Date>,
    /// The due date on the certificate.
    pub next_inspection: Option<Date>,
    /// The attribute columns that have a value, in column order.
    pub extra: Vec<(Arc<str>, Value)>,
    /// Line of its row (0: not from a file).
    pub line: usize,
}

impl Unit {
    pub fn new(device: &str, kind: &str) -> Unit {
        Unit {
            device: device.to_string(),
            kind: kind.to_string(),
            registration_code: String::new(),
            name: String::new(),
            town: String::new(),
            address: String::new(),
            commissioned: None,
            last_inspection: None,
            next_inspection: None,
            extra: Vec::new(),
            line: 0,
        }
    }

    /// An attribute column's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.extra.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    /// Sets an attribute column's value.
    pub fn set(&mut self, name: impl Into<Arc<str>>, value: Value) {
        let name = name.into();
        match self.extra.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.extra.push((name, value)),
        }
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_f64()
    }

    /// A date attribute (`install_inspection`, `last_maintenance`, …).
    pub fn date(&self, name: &str) -> Option<Date> {
        match self.get(name)? {
            Value::Text(t) => Date::parse(t),
            _ => None,
        }
    }

    /// Its `device.…` attributes for conditions and summaries: every column but `device` and
    /// `kind` that has a value (dates as `YYYY-MM-DD` text).
    pub fn attributes(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let texts = [
            ("registration_code", &self.registration_code),
            ("name", &self.name),
            ("town", &self.town),
            ("address", &self.address),
        ];
        for (k, v) in texts.into_iter().filter(|(_, v)| !v.is_empty()) {
            out.insert(k.to_string(), Value::Text(v.clone()));
        }
        let dates = [
            ("commissioned", self.commissioned),
            ("last_inspection", self.last_inspection),
            ("next_inspection", self.next_inspection),
        ];
        for (k, v) in dates {
            if let Some(d) = v {
                out.insert(k.to_string(), Value::Text(d.to_string()));
            }
        }
        for (k, v) in &self.extra {
            out.insert(k.to_string(), v.clone());
        }
        out
    }

    /// A column's value as the CSV writes it.
    fn cell(&self, column: &str) -> String {
        let date = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();
        match column {
            "device" => self.device.clone(),
            "kind" => self.kind.clone(),
            "registration_code" => self.registration_code.clone(),
            "name" => self.name.clone(),
            "town" => self.town.clone(),
            "address" => self.address.clone(),
            "commissioned" => date(self.commissioned),
            "last_inspection" => date(self.last_inspection),
            "next_inspection" => date(self.next_inspection),
            other => self.get(other).map(Value::to_string).unwrap_or_default(),
        }
    }
}

/// An attribute cell's value: a number, a boolean, or text.
pub fn cell_value(s: &str) -> Value {
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    let numeric = digits.starts_with(|c: char| c.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."))
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if numeric {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = s.parse::<f64>() {
            if f.is_finite() {
                return Value::Float(f);
            }
        }
    }
    Value::Text(s.to_string())
}

/// All registered devices, by device id.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    units: Vec<Unit>,
    index: HashMap<String, usize>,
}

impl Registry {
    /// Units in order; a device given twice keeps its last row.
    pub fn from_units(units: impl IntoIterator<Item = Unit>) -> Registry {
        let mut r = Registry::default();
        for unit in units {
            match r.index.get(&unit.device) {
                Some(&i) => r.units[i] = unit,
                None => {
                    r.index.insert(unit.device.clone(), r.units.len());
                    r.units.push(unit);
                }
            }
        }
        r
    }

    /// Parses a registry CSV; `file` names it in diagnostics. Rows with a problem are reported
    /// and left out; the rest loads.
    pub fn parse(file: &str, text: &str) -> (Registry, Vec<Diagnostic>) {
        parse::parse(file, text)
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn get(&self, device: &str) -> Option<&Unit> {
        self.index.get(device).map(|&i| &self.units[i])
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// This registry with `rows` applied: a row replaces the device's row, a new device is
    /// added at the end.
    pub fn updated(&self, rows: &Registry) -> Registry {
        Registry::from_units(self.units.iter().chain(&rows.units).cloned())
    }

    /// The registry as CSV: [`COLUMNS`], then every attribute column in order of first use.
    pub fn to_csv(&self) -> String {
        let mut columns: Vec<&str> = COLUMNS.to_vec();
        for unit in &self.units {
            for (name, _) in &unit.extra {
                if !columns.contains(&&**name) {
                    columns.push(name);
                }
            }
        }
        let mut out = columns.join(",");
        out.push('\n');
        for unit in &self.units {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&csv::quote(&unit.cell(column)));
            }
            out.push('\n');
        }
        out
    }
}

mod parse;
