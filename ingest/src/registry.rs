//! The equipment registry file, (re)loaded when it changes. Bad rows are reported with their
//! line numbers and skipped; a file that cannot be read keeps the previous registry in force.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rules::{Date, Diagnostic, Registry};
use serde::{Deserialize, Serialize};

pub struct RegistryFile {
    path: PathBuf,
    modified: Option<SystemTime>,
}

impl RegistryFile {
    pub fn new(path: &Path) -> Self {
        RegistryFile { path: path.to_path_buf(), modified: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The registry and its bad rows, when the file is new or changed since the last load;
    /// `None` when unchanged.
    pub fn load_if_changed(&mut self) -> Option<Result<(Registry, Vec<Diagnostic>), String>> {
        let modified = match std::fs::metadata(&self.path).and_then(|m| m.modified()) {
            Ok(m) => m,
            Err(e) => return Some(Err(format!("{}: {e}", self.path.display()))),
        };
        if self.modified == Some(modified) {
            return None;
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => return Some(Err(format!("{}: {e}", self.path.display()))),
        };
        self.modified = Some(modified);
        Some(Ok(Registry::parse(&self.path.display().to_string(), &text)))
    }
}

/// The registry with inspection records applied: a record newer than its unit's
/// `last_inspection` sets it, and sets `next_inspection` to the record's next due date (none:
/// the schedule computes it from the new date). Records of units not registered are skipped.
pub fn with_records(registry: &Registry, records: &[InspectionRecord]) -> Registry {
    if records.is_empty() {
        return registry.clone();
    }
    let mut units = registry.units().to_vec();
    let index: std::collections::HashMap<&str, usize> =
        registry.units().iter().enumerate().map(|(i, u)| (u.device.as_str(), i)).collect();
    for r in records {
        let (Some(&i), Some(date)) = (index.get(r.device.as_str()), Date::parse(&r.date)) else { continue };
        let unit = &mut units[i];
        if unit.last_inspection.is_none_or(|last| last < date) {
            unit.last_inspection = Some(date);
            unit.next_inspection = r.next_due.as_deref().and_then(Date::parse);
        }
    }
    Registry::from_units(units)
}

/// An inspection or verification carried out, as posted to the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionRecord {
    pub device: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The next due date on the new certificate, when it gives one.
    #[serde(default)]
    pub next_due: Option<String>,
    #[serde(default = "pass")]
    pub result: String,
    #[serde(default)]
    pub inspector: String,
    #[serde(default)]
    pub report_no: String,
    #[serde(default)]
    pub comment: String,
    /// Set by the server: the user who posted it, and when.
    #[serde(default)]
    pub who: String,
    #[serde(default)]
    pub at: i64,
}

fn pass() -> String {
    "pass".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection\n";

    #[test]
    fn loads_once_reports_bad_rows_and_reloads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.csv");
        std::fs::write(&path, format!("{HEADER}b1,boiler,1,锅炉,东城街道,x,2019-05-10,2025-06-01,2026-06-01\nb2,boiler,2,y,z,w,not-a-date,,\n")).unwrap();
        let mut file = RegistryFile::new(&path);
        let (registry, problems) = file.load_if_changed().unwrap().unwrap();
        assert_eq!(registry.len(), 1, "the bad row is skipped, the rest loads");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 3, "{}", problems[0]);
        assert!(file.load_if_changed().is_none(), "unchanged");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            &path,
            format!("{HEADER}b1,boiler,1,锅炉,东城街道,x,2019-05-10,2026-06-01,2027-06-01\n"),
        )
        .unwrap();
        let filetime = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(filetime).unwrap();
        let (registry, problems) = file.load_if_changed().unwrap().unwrap();
        assert!(problems.is_empty());
        assert_eq!(registry.get("b1").unwrap().town, "东城街道");
        std::fs::remove_file(&path).unwrap();
        assert!(
            file.load_if_changed().unwrap().is_err(),
            "a missing file is an error, not an empty registry"
        );
    }

    #[test]
    fn inspection_records_apply_over_older_rows_only() {
        let text = format!("{HEADER}e1,elevator,1,a,t,x,2010-01-01,2024-01-01,2025-01-01\ne2,elevator,2,b,t,x,2010-01-01,2026-06-01,2027-06-01\n");
        let (registry, problems) = Registry::parse("r.csv", &text);
        assert!(problems.is_empty());
        let record = |device: &str, date: &str, next: Option<&str>| InspectionRecord {
            device: device.into(),
            date: date.into(),
            next_due: next.map(Into::into),
            result: "pass".into(),
            inspector: String::new(),
            report_no: String::new(),
            comment: String::new(),
            who: "li".into(),
            at: 0,
        };
        let records = [
            record("e1", "2026-11-20", Some("2027-11-20")),
            record("e2", "2026-01-01", None),
            record("ghost", "2026-01-01", None),
        ];
        let updated = with_records(&registry, &records);
        let e1 = updated.get("e1").unwrap();
        assert_eq!(e1.last_inspection, Date::parse("2026-11-20"));
        assert_eq!(e1.next_inspection, Date::parse("2027-11-20"));
        let e2 = updated.get("e2").unwrap();
        assert_eq!(e2.last_inspection, Date::parse("2026-06-01"), "the CSV is newer: it stands");
        assert_eq!(e2.next_inspection, Date::parse("2027-06-01"));
        assert_eq!(updated.len(), 2, "a record of an unregistered device adds nothing");
    }
}
