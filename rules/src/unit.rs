//! One registered device: a row of the equipment registry ([`crate::registry`]), which the
//! inspection schedules ([`crate::inspection`]) and the rules' `device.…` attributes read.

use std::collections::BTreeMap;
use std::sync::Arc;

use telemetry::Value;

use crate::date::Date;

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
    pub(crate) fn cell(&self, column: &str) -> String {
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
