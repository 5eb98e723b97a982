//! The alert lifecycle keys of a rule: `inhibit_when` (also a file-level default),
//! `repeat_every`, `flap_count`, `flap_window`, `flap_hold`.

use toml::Spanned;

use super::{Checker, RawRule};
use crate::rule_file::RuleLifecycle;

impl Checker<'_> {
    /// The lifecycle settings of `r`; `file_inhibit` is the file's `inhibit_when`, which fault
    /// rules without their own take. Problems are recorded; `None` if there were any.
    pub(super) fn lifecycle(
        &mut self,
        r: &RawRule,
        file_inhibit: Option<&Spanned<String>>,
    ) -> Option<RuleLifecycle> {
        let before = self.diagnostics.len();
        let ty = r.rule_type.as_ref().map_or("threshold", |t| t.get_ref().as_str());
        let fault = matches!(ty, "threshold" | "fault_code" | "bits");
        if let (Some(i), false) = (&r.inhibit_when, fault) {
            self.at(i.span().start, "`inhibit_when` belongs to threshold, fault_code and bits rules".into());
        }
        if ty == "inspection" {
            let keys = [
                ("repeat_every", r.repeat_every.as_ref().map(|s| s.span().start)),
                ("flap_count", r.flap_count.as_ref().map(|s| s.span().start)),
                ("flap_window", r.flap_window.as_ref().map(|s| s.span().start)),
                ("flap_hold", r.flap_hold.as_ref().map(|s| s.span().start)),
            ];
            for (key, offset) in keys {
                if let Some(offset) = offset {
                    self.at(offset, format!("`{key}` does not apply to inspection rules"));
                }
            }
        }
        let inhibit = r.inhibit_when.as_ref().or(if fault { file_inhibit } else { None });
        let inhibit_when = inhibit.and_then(|s| self.condition(s, "inhibit_when"));
        let repeat_every = r.repeat_every.as_ref().and_then(|s| self.duration(s, "repeat_every"));
        let flap_count = r.flap_count.as_ref().and_then(|c| match u32::try_from(*c.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.at(c.span().start, format!("flap_count: `{}` must be 0 or more", c.get_ref()));
                None
            }
        });
        let flap_window = r.flap_window.as_ref().and_then(|s| self.duration(s, "flap_window"));
        let flap_hold = r.flap_hold.as_ref().and_then(|s| self.duration(s, "flap_hold"));
        (self.diagnostics.len() == before).then_some(RuleLifecycle {
            inhibit_when,
            repeat_every,
            flap_count,
            flap_window,
            flap_hold,
        })
    }
}
