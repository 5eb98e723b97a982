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

use std::collections::HashMap;

use telemetry::Value;

use crate::rule_file::Diagnostic;

pub mod csv;
mod overdue;
pub mod synthetic;
#[cfg(test)]
mod tests;

pub use crate::unit::Unit;
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
