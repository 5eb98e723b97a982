//! `rules check` against gateway profiles (the built-in ones, or `--profiles DIR`): every point
//! name a rule reads (variables of `when`, `clear`, `inhibit_when` and `signal`, window function
//! points, the `point` of fault_code and bits rules, summary placeholders) must be a point, or a
//! named bit, of a gateway profile of one of the rule's kinds (`*`: of any profile). Profiles
//! are parsed and checked as the gateway does ([`telemetry::profile::Profile`]). A kind with no profile is not checked for points, but warned of ([`unknown_kinds`]):
//! no device of it sends readings; several profiles of one kind (models) count together.
//!
//! Profiles also give summaries their numbers' decimals ([`Profiles::apply_decimals`]): a
//! point's `decimals`, else its `unit`'s default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use telemetry::profile::{Profile, ProfileError};

use crate::rule_file::{line_col, Diagnostic, Rule, RuleSet, RuleType};

/// Placeholders the rule types add to summaries, besides points and `device.` attributes.
const EXTRA_FIELDS: &[&str] =
    &["code", "code_name", "after", "due", "days_left", "days_overdue", "last", "check"];

/// Point names per equipment kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profiles {
    pub by_kind: BTreeMap<String, BTreeSet<String>>,
    /// Kind, point: the decimals its values are shown to (the most any model of the kind asks).
    pub decimals: BTreeMap<(String, String), u8>,
}

fn problem(file: &str, text: &str, offset: usize, message: String) -> Diagnostic {
    let (line, column) = line_col(text, offset);
    Diagnostic { file: file.to_string(), line, column, message }
}

/// A profile's problems as diagnostics: a syntax error at its position, the others (which
/// name their point) at the top of the file.
fn diagnostics(file: &str, e: ProfileError) -> Vec<Diagnostic> {
    let at = |(line, column): (usize, usize), message: String| Diagnostic {
        file: file.to_string(),
        line,
        column,
        message,
    };
    match e {
        ProfileError::Parse { at: position, message, .. } => vec![at(position.unwrap_or((1, 1)), message)],
        ProfileError::Invalid { problems, .. } => problems.into_iter().map(|p| at((1, 1), p)).collect(),
        other => vec![at((1, 1), other.to_string())],
    }
}

impl Profiles {
    /// Adds one profile's text, parsed and checked as the gateway does: its kind and the
    /// names of its points and named bits. Every problem of the profile is a diagnostic.
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), Vec<Diagnostic>> {
        let name = Path::new(file).file_stem().map_or(file.into(), |s| s.to_string_lossy());
        let profile = Profile::parse(&name, file, text).map_err(|e| diagnostics(file, e))?;
        self.add_profile(&profile);
        Ok(())
    }

    /// Adds a parsed profile.
    pub fn add_profile(&mut self, profile: &Profile) {
        let kind = &profile.kind;
        let names = self.by_kind.entry(kind.clone()).or_default();
        for point in &profile.points {
            let by_unit = point.unit.as_deref().and_then(crate::number::decimals_for_unit);
            if let Some(d) = point.decimals.map(|d| d.min(9)).or(by_unit) {
                let at = self.decimals.entry((kind.clone(), point.name.clone())).or_insert(d);
                *at = (*at).max(d);
            }
            names.insert(point.name.clone());
            names.extend(point.bits.values().cloned());
        }
    }

    /// The profiles compiled in ([`telemetry::builtin_profiles::BUILT_IN`]).
    pub fn built_in() -> Profiles {
        let mut profiles = Profiles::default();
        for (name, text) in telemetry::builtin_profiles::BUILT_IN {
            // They parse: `built_in_profiles_parse` below, and gateway's tests.
            let _ = profiles.add(name, text);
        }
        profiles
    }

    /// The `*.toml` profiles of a folder.
    pub fn load_dir(dir: &Path) -> Result<Profiles, Vec<Diagnostic>> {
        let mut profiles = Profiles::default();
        let mut problems = Vec::new();
        for path in crate::rule_file::expand(&[dir]) {
            let file = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => problems.extend(profiles.add(&file, &text).err().into_iter().flatten()),
                Err(e) => problems.push(Diagnostic::cannot_read(file, &e)),
            }
        }
        if problems.is_empty() {
            Ok(profiles)
        } else {
            Err(problems)
        }
    }

    /// Shows the points of every summary to the decimals the profiles of the rule's kinds give
    /// them (the most, where several kinds or models differ).
    pub fn apply_decimals(&self, set: &mut RuleSet) {
        for rule in &mut set.rules {
            let kinds = rule.kinds.clone();
            let mut summaries = vec![&mut rule.summary];
            if let RuleType::Inspection(i) = &mut rule.rule_type {
                summaries.extend(i.due_soon_summary.as_mut());
            }
            for template in summaries {
                let fields: Vec<String> = template.fields().map(str::to_string).collect();
                for field in fields {
                    let decimals = (self.decimals.iter())
                        .filter(|((kind, point), _)| {
                            *point == field && (kinds.contains(kind) || kinds.iter().any(|k| k == "*"))
                        })
                        .map(|(_, d)| *d)
                        .max();
                    if let Some(d) = decimals {
                        template.set_decimals(&field, d);
                    }
                }
            }
        }
    }

    /// The names a rule's kinds offer; `None` when no profile covers any of its kinds.
    fn names_for(&self, rule: &Rule) -> Option<BTreeSet<&str>> {
        let kinds: Vec<&String> = match rule.kinds.iter().any(|k| k == "*") {
            true => self.by_kind.keys().collect(),
            false => rule.kinds.iter().filter(|k| self.by_kind.contains_key(*k)).collect(),
        };
        if kinds.is_empty() {
            return None;
        }
        Some(kinds.into_iter().flat_map(|k| self.by_kind[k].iter().map(String::as_str)).collect())
    }
}

/// The point names a rule reads.
pub fn points_used(rule: &Rule) -> BTreeSet<&str> {
    let mut used = BTreeSet::new();
    for c in rule.conditions().into_iter().flatten() {
        used.extend(c.variables().iter().map(String::as_str).filter(|v| *v != "device"));
        used.extend(c.aggregates().iter().map(|a| a.point.as_str()));
    }
    if let RuleType::FaultCode(c) | RuleType::Bits(c) = &rule.rule_type {
        used.insert(c.point.as_str());
    }
    let summaries = match &rule.rule_type {
        RuleType::Inspection(i) => vec![Some(&rule.summary), i.due_soon_summary.as_ref()],
        _ => vec![Some(&rule.summary)],
    };
    for t in summaries.into_iter().flatten() {
        used.extend(t.fields().filter(|f| !f.contains('.') && !EXTRA_FIELDS.contains(f)));
    }
    used
}

/// Edit distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The closest known name, if close enough to be a likely typo.
pub fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let best = known.into_iter().map(|k| (distance(name, k), k)).min()?;
    (best.0 <= (name.chars().count() / 3).max(2)).then_some(best.1)
}

/// Where `name` first appears as a whole word in the rule's lines (from its `[[rule]]` to the
/// next), as a byte offset; the rule's start otherwise.
fn position(text: &str, rule_line: usize, name: &str) -> usize {
    let start: usize = text.split_inclusive('\n').take(rule_line.saturating_sub(1)).map(str::len).sum();
    let body = &text[start.min(text.len())..];
    let end = body.get(1..).and_then(|b| b.find("[[rule]]")).map_or(body.len(), |e| e + 1);
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let body = &body[..end];
    // Past the keys' names: the name inside a value.
    let mut from = 0;
    while let Some(i) = body[from..].find(name).map(|i| i + from) {
        let before = body[..i].chars().next_back();
        let after = body[i + name.len()..].chars().next();
        let value = body[..i].rsplit('\n').next().is_some_and(|l| l.contains('='));
        if !before.is_some_and(word) && !after.is_some_and(word) && value {
            return start + i;
        }
        from = i + name.len();
    }
    start
}

/// Every unknown point name of the rules, against the profiles; `texts` are the rule files'
/// texts by file name, for positions.
pub fn check(rules: &RuleSet, texts: &BTreeMap<String, String>, profiles: &Profiles) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for rule in &rules.rules {
        let Some(known) = profiles.names_for(rule) else { continue };
        let text = texts.get(&rule.file).map_or("", String::as_str);
        for name in points_used(rule).into_iter().filter(|n| !known.contains(n)) {
            let kinds = rule.kinds.join(", ");
            let mut message = format!("rule `{}`: `{name}` is not a point of the {kinds} profiles", rule.id);
            if let Some(close) = suggest(name, known.iter().copied()) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
            out.push(problem(&rule.file, text, position(text, rule.line, name), message));
        }
    }
    out.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    out
}

/// Warnings for rule kinds that no profile has: no device of such a kind sends readings, so
/// the rule never fires (`kinds = ["boilr"]`). Inspection rules are left out: they fire from
/// the registry's units, whose kinds need no profile (`pressure_vessel`).
pub fn unknown_kinds(
    rules: &RuleSet,
    texts: &BTreeMap<String, String>,
    profiles: &Profiles,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let known = || profiles.by_kind.keys().map(String::as_str);
    for rule in rules.rules.iter().filter(|r| !matches!(r.rule_type, RuleType::Inspection(_))) {
        let text = texts.get(&rule.file).map_or("", String::as_str);
        for kind in rule.kinds.iter().filter(|k| *k != "*" && !profiles.by_kind.contains_key(*k)) {
            let mut message =
                format!("rule `{}`: no profile has kind `{kind}`, so the rule never fires", rule.id);
            if let Some(close) = suggest(kind, known()) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
            out.push(problem(&rule.file, text, position(text, rule.line, kind), message));
        }
    }
    out
}

#[cfg(test)]
mod tests;
