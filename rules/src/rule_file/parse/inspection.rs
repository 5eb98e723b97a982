//! The keys of an `inspection` rule:
//!
//! ```toml
//! [[rule]]
//! id = "elevator.periodic_inspection"
//! kinds = ["elevator"]
//! type = "inspection"
//! check = "periodic_inspection"     # periodic_inspection | self_test | maintenance |
//!                                   # external_inspection | internal_inspection | verification
//! leads = ["60d", "30d", "7d"]      # optional (this is the default); whole days; [] for none
//! escalate_after = "30d"            # optional: overdue this long escalates
//! severity = "major"                # once overdue
//! due_soon_severity = "warning"     # optional (default warning)
//! escalated_severity = "critical"   # optional (default critical)
//! summary = "{device.name} overdue by {days_overdue} d (due {due})"
//! due_soon_summary = "{device.name} due {due}, in {days_left} d"   # optional
//! signal = "service_mode == 1"      # maintenance only: a reading that shows maintenance
//! source = "TSG T7001-2023 §4.1"
//! ```

use std::time::Duration;

use toml::Spanned;

use super::{Checker, RawRule};
use crate::inspection::Check;
use crate::rule_file::{InspectionRule, Severity};
use crate::template::Template;

const DAY_SECS: u64 = 86_400;

/// The default leads: 60 days (an early inspection may be asked for 2 months ahead, TSG
/// T7001-2023), 30 days (the legal deadline to apply, 《特种设备安全法》 Art. 40) and 7 days
/// (DOMAIN.md §1.0 and §7).
pub const DEFAULT_LEADS: [i64; 3] = [60, 30, 7];

impl Checker<'_> {
    /// A duration of whole days, at least one.
    fn days(&mut self, s: &Spanned<String>, key: &str) -> Option<i64> {
        let d: Duration = self.duration(s, key)?;
        if d.as_secs() < DAY_SECS || !d.as_secs().is_multiple_of(DAY_SECS) || d.subsec_nanos() != 0 {
            self.at(
                s.span().start,
                format!("{key}: `{}` must be whole days (`30d`), at least one", s.get_ref()),
            );
            return None;
        }
        Some((d.as_secs() / DAY_SECS) as i64)
    }

    fn severity_key(
        &mut self,
        s: &Option<Spanned<String>>,
        key: &str,
        default: Severity,
    ) -> Option<Severity> {
        let Some(s) = s else { return Some(default) };
        let severity = Severity::parse(s.get_ref());
        if severity.is_none() {
            let message = format!("{key}: `{}` must be critical, major, warning or info", s.get_ref());
            self.at(s.span().start, message);
        }
        severity
    }

    pub(super) fn inspection(&mut self, r: &RawRule, rule_start: usize) -> Option<InspectionRule> {
        let before = self.diagnostics.len();
        let check = self.required(&r.check, "check", "inspection", rule_start).and_then(|c| {
            let check = Check::parse(c.get_ref());
            if check.is_none() {
                let names: Vec<&str> = Check::ALL.iter().map(|c| c.as_str()).collect();
                self.at(
                    c.span().start,
                    format!("check `{}` must be one of {}", c.get_ref(), names.join(", ")),
                );
            }
            check
        });
        if let Some(check) = check {
            for kind in r.kinds.get_ref().iter().filter(|k| *k != "*") {
                if !check.kinds().contains(&kind.as_str()) {
                    let message = format!(
                        "check `{}` is for {}, not for `{kind}`",
                        check.as_str(),
                        check.kinds().join(" and ")
                    );
                    self.at(r.kinds.span().start, message);
                }
            }
            if let (Some(signal), false) = (&r.signal, check == Check::Maintenance) {
                self.at(signal.span().start, "`signal` goes with check `maintenance` only".into());
            }
        }
        let mut lead_days = Vec::new();
        match &r.leads {
            None => lead_days.extend(DEFAULT_LEADS),
            Some(leads) => {
                for lead in leads.get_ref() {
                    let spanned = Spanned::new(leads.span(), lead.clone());
                    lead_days.extend(self.days(&spanned, "leads"));
                }
            }
        }
        lead_days.sort_unstable_by(|a, b| b.cmp(a));
        lead_days.dedup();
        let escalate_after_days = r.escalate_after.as_ref().and_then(|e| self.days(e, "escalate_after"));
        if let (Some(s), None) = (&r.escalated_severity, &r.escalate_after) {
            self.at(s.span().start, "`escalated_severity` needs `escalate_after`".into());
        }
        let due_soon_severity =
            self.severity_key(&r.due_soon_severity, "due_soon_severity", Severity::Warning);
        let escalated_severity =
            self.severity_key(&r.escalated_severity, "escalated_severity", Severity::Critical);
        let due_soon_summary = r.due_soon_summary.as_ref().and_then(|s| match Template::parse(s.get_ref()) {
            Ok(t) => Some(t),
            Err((offset, why)) => {
                let at = crate::rule_file::content_start(self.text, s.span()) + offset;
                self.at(at, format!("due_soon_summary: {why}"));
                None
            }
        });
        let signal = r.signal.as_ref().and_then(|s| self.condition(s, "signal"));
        if self.diagnostics.len() > before {
            return None;
        }
        Some(InspectionRule {
            check: check?,
            lead_days,
            escalate_after_days,
            due_soon_severity: due_soon_severity?,
            escalated_severity: escalated_severity?,
            due_soon_summary,
            signal,
        })
    }
}
