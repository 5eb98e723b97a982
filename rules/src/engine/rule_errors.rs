//! Evaluation errors per rule: how many, and what the newest one said, for the host's metrics
//! and status page. Kept by rule index and carried across a reload by rule id, so the counts of
//! the rules a reload keeps never go back, and only loaded rules are listed.

use telemetry::Reading;

use crate::alert::Ts;
use crate::expr::{Bindings, Condition, Evaluator};
use crate::rule_file::Rule;

/// One rule's evaluation errors since the engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleErrors {
    pub count: u64,
    /// The newest error's text (with the device), built again at most once per
    /// [`ERROR_TEXT_EVERY_MS`] of reading time, since building it costs a second evaluation.
    pub last_error: Option<String>,
    /// The reading time of `last_error`.
    pub last_error_at: Ts,
}

/// How stale a rule's `last_error` may be while the same rule keeps failing.
pub const ERROR_TEXT_EVERY_MS: Ts = 60_000;

const NONE: RuleErrors = RuleErrors { count: 0, last_error: None, last_error_at: 0 };

/// By rule index; grown on a rule's first error.
#[derive(Debug, Default)]
pub(super) struct ErrorsByRule(Vec<RuleErrors>);

impl ErrorsByRule {
    /// Counts one error of rule `index` at `ts`; `text` is called only when the newest text is
    /// missing or older than [`ERROR_TEXT_EVERY_MS`].
    pub(super) fn record(&mut self, index: usize, ts: Ts, text: impl FnOnce() -> String) {
        if self.0.len() <= index {
            self.0.resize(index + 1, RuleErrors::default());
        }
        let errors = &mut self.0[index];
        errors.count += 1;
        if errors.last_error.is_none() || ts >= errors.last_error_at.saturating_add(ERROR_TEXT_EVERY_MS) {
            errors.last_error = Some(text());
            errors.last_error_at = ts;
        }
    }

    /// Every rule of `rules` (the loaded ones) with its errors, none for a rule without any.
    pub(super) fn of<'a>(&'a self, rules: &'a [Rule]) -> impl Iterator<Item = (&'a str, &'a RuleErrors)> {
        rules.iter().enumerate().map(|(i, r)| (r.id.as_str(), self.0.get(i).unwrap_or(&NONE)))
    }

    /// The errors of the rules `new` keeps (by id), at their new indexes; a new rule starts at 0.
    pub(super) fn reindex(&mut self, old: &[Rule], new: &[Rule]) {
        let mut by_id: std::collections::HashMap<&str, RuleErrors> = old
            .iter()
            .zip(std::mem::take(&mut self.0))
            .map(|(rule, errors)| (rule.id.as_str(), errors))
            .collect();
        self.0 = new.iter().map(|r| by_id.remove(r.id.as_str()).unwrap_or_default()).collect();
    }
}

/// Why `condition` gave no answer for `reading`, as a rule's last error: built only on an
/// error path, since [`Evaluator::check`] builds no text.
pub(super) fn no_answer(
    evaluator: &Evaluator,
    reading: &Reading,
    condition: &Condition,
    bindings: &Bindings<'_>,
) -> String {
    match evaluator.eval(condition, bindings) {
        Err(e) => format!("{}: {e}", reading.device),
        Ok(_) => format!("{}: no answer", reading.device),
    }
}
