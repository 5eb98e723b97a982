//! A registry CSV's text to units: the header, then every row checked, each problem at its
//! `file:line:column` with the column named.

use std::collections::HashMap;
use std::sync::Arc;

use telemetry::Value;

use super::csv::{self, Field, Record};
use super::{cell_value, Registry, Unit, COLUMNS, DATE_ATTRIBUTES, NUMBER_ATTRIBUTES};
use crate::date::Date;
use crate::rule_file::Diagnostic;

/// What one column of the file is.
enum Column {
    Own(&'static str),
    Attribute(Arc<str>),
    /// A column with a problem in the header: its cells are not read.
    Ignored,
}

struct Checker<'a> {
    file: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn at(&mut self, line: usize, column: usize, message: String) {
        self.diagnostics.push(Diagnostic { file: self.file.to_string(), line, column, message });
    }

    fn field(&mut self, f: &Field, message: String) {
        self.at(f.line, f.column, message);
    }

    fn header(&mut self, record: &Record) -> Option<Vec<Column>> {
        let mut columns = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, f) in record.fields.iter().enumerate() {
            let name = f.value.as_str();
            let column = if let Some(&first) = seen.get(name) {
                self.field(f, format!("column `{name}` is already column {}", first + 1));
                Column::Ignored
            } else if let Some(own) = COLUMNS.iter().find(|c| **c == name) {
                Column::Own(own)
            } else if telemetry::codec::is_point_name(name) {
                Column::Attribute(Arc::from(name))
            } else {
                let message = format!(
                    "column name `{name}` must be letters, digits and `_` (it is `device.{name}` in rules)"
                );
                self.field(f, message);
                Column::Ignored
            };
            seen.entry(name).or_insert(i);
            columns.push(column);
        }
        let missing: Vec<&str> = ["device", "kind"].into_iter().filter(|c| !seen.contains_key(c)).collect();
        if !missing.is_empty() {
            self.at(record.line, 1, format!("the header has no `{}` column", missing.join("` or `")));
            return None;
        }
        Some(columns)
    }

    fn date(&mut self, f: &Field, column: &str) -> Option<Option<Date>> {
        if f.value.is_empty() {
            return Some(None);
        }
        match Date::parse(&f.value) {
            Some(d) => Some(Some(d)),
            None => {
                self.field(f, format!("{column}: `{}` is not a date (YYYY-MM-DD)", f.value));
                None
            }
        }
    }

    /// One row to a unit, or `None` after reporting its problems.
    fn row(&mut self, columns: &[Column], record: Record, index: &HashMap<String, usize>) -> Option<Unit> {
        if record.fields.len() != columns.len() {
            let message =
                format!("{} fields, but the header has {} columns", record.fields.len(), columns.len());
            self.at(record.line, 1, message);
            return None;
        }
        let before = self.diagnostics.len();
        let mut unit = Unit::new("", "");
        unit.line = record.line;
        for (column, f) in columns.iter().zip(&record.fields) {
            match column {
                Column::Ignored => {}
                Column::Own("device") => {
                    match telemetry::codec::check_id(&f.value) {
                        Err(why) => self.field(f, format!("device: `{}` {why}", f.value)),
                        Ok(()) => {
                            if let Some(line) = index.get(&f.value) {
                                self.field(f, format!("device: `{}` is already on line {line}", f.value));
                            }
                        }
                    }
                    unit.device = f.value.clone();
                }
                Column::Own("kind") => {
                    if !telemetry::codec::is_kind(&f.value) {
                        let message = format!(
                            "kind: `{}` is not a kind name (lowercase letters, digits, `_`)",
                            f.value
                        );
                        self.field(f, message);
                    }
                    unit.kind = f.value.clone();
                }
                Column::Own("registration_code") => {
                    if !f.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        let message = format!("registration_code: `{}` must be letters and digits", f.value);
                        self.field(f, message);
                    }
                    unit.registration_code = f.value.clone();
                }
                Column::Own("name") => unit.name = f.value.clone(),
                Column::Own("town") => unit.town = f.value.clone(),
                Column::Own("address") => unit.address = f.value.clone(),
                Column::Own(own) => {
                    let date = self.date(f, own).flatten();
                    match *own {
                        "commissioned" => unit.commissioned = date,
                        "last_inspection" => unit.last_inspection = date,
                        _ => unit.next_inspection = date,
                    }
                }
                Column::Attribute(name) => {
                    if f.value.is_empty() {
                        continue;
                    }
                    let value = if DATE_ATTRIBUTES.contains(&&**name) {
                        self.date(f, name);
                        Value::Text(f.value.clone())
                    } else {
                        cell_value(&f.value)
                    };
                    let number = matches!(value, Value::Int(_) | Value::Float(_));
                    if NUMBER_ATTRIBUTES.contains(&&**name) && !number {
                        self.field(f, format!("{name}: `{}` is not a number", f.value));
                    }
                    unit.extra.push((name.clone(), value));
                }
            }
        }
        (self.diagnostics.len() == before).then_some(unit)
    }
}

pub(super) fn parse(file: &str, text: &str) -> (Registry, Vec<Diagnostic>) {
    let mut c = Checker { file, diagnostics: Vec::new() };
    let mut records = csv::records(text).into_iter();
    let columns = loop {
        match records.next() {
            None => {
                c.at(1, 1, "no header: the first line names the columns (device,kind,…)".into());
                return (Registry::default(), c.diagnostics);
            }
            Some(Err(e)) => c.at(e.line, e.column, e.message),
            Some(Ok(header)) => match c.header(&header) {
                Some(columns) => break columns,
                None => return (Registry::default(), c.diagnostics),
            },
        }
    };
    let mut units = Vec::new();
    // Device to the line of its row, for duplicates.
    let mut lines: HashMap<String, usize> = HashMap::new();
    for record in records {
        match record {
            Err(e) => c.at(e.line, e.column, e.message),
            Ok(record) => {
                if let Some(unit) = c.row(&columns, record, &lines) {
                    lines.insert(unit.device.clone(), unit.line);
                    units.push(unit);
                }
            }
        }
    }
    (Registry::from_units(units), c.diagnostics)
}
