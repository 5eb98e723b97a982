//! One rule file's text to validated rules: the TOML schema, then every key of every rule, with
//! each problem at its `file:line:column`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Codes, Diagnostic, Rule, RuleType, Severity};

mod inspection;
mod lifecycle;
use crate::expr::Condition;
use crate::template::Template;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// The default `inhibit_when` of the file's fault rules.
    #[serde(default)]
    inhibit_when: Option<Spanned<String>>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    id: Spanned<String>,
    kinds: Spanned<Vec<String>>,
    #[serde(default, rename = "type")]
    rule_type: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<String>>,
    #[serde(default)]
    clear: Option<Spanned<String>>,
    #[serde(default)]
    point: Option<Spanned<String>>,
    #[serde(default)]
    codes: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    bits: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    per_code: Option<Spanned<bool>>,
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    check: Option<Spanned<String>>,
    #[serde(default)]
    leads: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    escalate_after: Option<Spanned<String>>,
    #[serde(default)]
    due_soon_severity: Option<Spanned<String>>,
    #[serde(default)]
    escalated_severity: Option<Spanned<String>>,
    #[serde(default)]
    due_soon_summary: Option<Spanned<String>>,
    #[serde(default)]
    signal: Option<Spanned<String>>,
    #[serde(default)]
    inhibit_when: Option<Spanned<String>>,
    #[serde(default)]
    repeat_every: Option<Spanned<String>>,
    #[serde(default)]
    flap_count: Option<Spanned<i64>>,
    #[serde(default)]
    flap_window: Option<Spanned<String>>,
    #[serde(default)]
    flap_hold: Option<Spanned<String>>,
    #[serde(default, rename = "for")]
    hold_for: Option<Spanned<String>>,
    severity: Spanned<String>,
    summary: Spanned<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Byte offset in `text` where the content of the string value at `span` starts.
pub(crate) fn content_start(text: &str, span: std::ops::Range<usize>) -> usize {
    let raw = &text[span.clone()];
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
    span.start + quote
}

/// Byte offset of 1-based (line, column) inside `s`.
fn offset_in(s: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in s.split('\n').enumerate() {
        if i + 1 == line {
            return offset + l.char_indices().nth(column.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len() + 1;
    }
    s.len()
}

/// The rule types and the keys each one takes besides the common ones.
const TYPES: &[(&str, &[&str])] = &[
    ("threshold", &["when", "clear"]),
    ("fault_code", &["point", "codes", "per_code"]),
    ("bits", &["point", "bits", "per_code"]),
    ("no_data", &["after"]),
    ("gateway_no_data", &["after"]),
    (
        "inspection",
        &[
            "check",
            "leads",
            "escalate_after",
            "due_soon_severity",
            "escalated_severity",
            "due_soon_summary",
            "signal",
        ],
    ),
];

/// Collects the problems of one file; `at` turns a byte offset into a diagnostic.
pub(super) struct Checker<'t> {
    file: &'t str,
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn at(&mut self, offset: usize, message: String) {
        let (line, column) = line_col(self.text, offset);
        self.diagnostics.push(Diagnostic { file: self.file.to_string(), line, column, message });
    }

    pub(super) fn condition(&mut self, s: &Spanned<String>, key: &str) -> Option<Condition> {
        match Condition::parse(s.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                let offset = content_start(self.text, s.span()) + offset_in(s.get_ref(), e.line, e.column);
                self.at(offset, format!("{key}: {}", e.message));
                None
            }
        }
    }

    pub(super) fn duration(&mut self, s: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(s.span().start, format!("{key}: `{}`: {e}", s.get_ref()));
                None
            }
        }
    }

    pub(super) fn required<'a, T>(
        &mut self,
        value: &'a Option<Spanned<T>>,
        key: &str,
        ty: &str,
        rule_start: usize,
    ) -> Option<&'a Spanned<T>> {
        if value.is_none() {
            let article = if ty.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            self.at(rule_start, format!("{article} {ty} rule needs `{key}`"));
        }
        value.as_ref()
    }

    /// `codes` or `bits`: integer keys (bit numbers 0 to 63) to names usable in alert ids.
    fn codes(
        &mut self,
        point: &Spanned<String>,
        table: &Spanned<BTreeMap<String, String>>,
        key: &str,
        per_code: bool,
    ) -> Option<Codes> {
        let before = self.diagnostics.len();
        if !telemetry::codec::is_point_name(point.get_ref()) {
            self.at(point.span().start, format!("point `{}` is not a point name", point.get_ref()));
        }
        if table.get_ref().is_empty() {
            self.at(table.span().start, format!("`{key}` must name at least one"));
        }
        let mut names = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (k, name) in table.get_ref() {
            let code = k.trim().parse::<i64>().ok().filter(|c| key != "bits" || (0..64).contains(c));
            match code {
                Some(code) => {
                    names.insert(code, name.clone());
                }
                None if key == "bits" => {
                    self.at(table.span().start, format!("bits: `{k}` is not a bit number (0 to 63)"))
                }
                None => self.at(table.span().start, format!("codes: `{k}` is not an integer code")),
            }
            if !telemetry::codec::is_point_name(name) {
                self.at(table.span().start, format!("{key}: name `{name}` must be letters, digits and `_`"));
            } else if !seen.insert(name.as_str()) {
                self.at(table.span().start, format!("{key}: name `{name}` is used twice"));
            }
        }
        (self.diagnostics.len() == before).then(|| Codes { point: point.get_ref().clone(), names, per_code })
    }

    /// The type-specific part of a rule: `type` and the keys that go with it.
    fn rule_type(&mut self, r: &RawRule, rule_start: usize) -> Option<RuleType> {
        let ty = r.rule_type.as_ref().map_or("threshold", |t| t.get_ref().as_str());
        match TYPES.iter().find(|(name, _)| *name == ty) {
            None => {
                let known: Vec<&str> = TYPES.iter().map(|(n, _)| *n).collect();
                let offset = r.rule_type.as_ref().map_or(rule_start, |t| t.span().start);
                self.at(offset, format!("type `{ty}` must be one of {}", known.join(", ")));
                None
            }
            Some((_, keys)) => {
                let start = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.span().start);
                let given: [(&str, Option<usize>); 14] = [
                    ("when", r.when.as_ref().map(|s| s.span().start)),
                    ("clear", r.clear.as_ref().map(|s| s.span().start)),
                    ("point", r.point.as_ref().map(|s| s.span().start)),
                    ("codes", r.codes.as_ref().map(|s| s.span().start)),
                    ("bits", r.bits.as_ref().map(|s| s.span().start)),
                    ("per_code", r.per_code.as_ref().map(|s| s.span().start)),
                    ("after", r.after.as_ref().map(|s| s.span().start)),
                    ("check", start(&r.check)),
                    ("leads", r.leads.as_ref().map(|s| s.span().start)),
                    ("escalate_after", start(&r.escalate_after)),
                    ("due_soon_severity", start(&r.due_soon_severity)),
                    ("escalated_severity", start(&r.escalated_severity)),
                    ("due_soon_summary", start(&r.due_soon_summary)),
                    ("signal", start(&r.signal)),
                ];
                for (key, offset) in given {
                    if let (Some(offset), false) = (offset, keys.contains(&key)) {
                        let owners: Vec<&str> =
                            TYPES.iter().filter(|(_, k)| k.contains(&key)).map(|(n, _)| *n).collect();
                        self.at(
                            offset,
                            format!("`{key}` belongs to {} rules, not to {ty} rules", owners.join(" and ")),
                        );
                    }
                }
                let per_code = r.per_code.as_ref().is_some_and(|p| *p.get_ref());
                match ty {
                    "threshold" => {
                        let when = self
                            .required(&r.when, "when", ty, rule_start)
                            .and_then(|w| self.condition(w, "when"));
                        let clear = r.clear.as_ref().map(|s| self.condition(s, "clear"));
                        match (when, clear) {
                            (Some(when), None) => Some(RuleType::Threshold { when, clear: None }),
                            (Some(when), Some(Some(clear))) => {
                                Some(RuleType::Threshold { when, clear: Some(clear) })
                            }
                            _ => None,
                        }
                    }
                    "fault_code" | "bits" => {
                        let table = if ty == "bits" { &r.bits } else { &r.codes };
                        let point = self.required(&r.point, "point", ty, rule_start);
                        let table =
                            self.required(table, if ty == "bits" { "bits" } else { "codes" }, ty, rule_start);
                        match (point, table) {
                            (Some(p), Some(t)) if ty == "bits" => {
                                self.codes(p, t, "bits", per_code).map(RuleType::Bits)
                            }
                            (Some(p), Some(t)) => {
                                self.codes(p, t, "codes", per_code).map(RuleType::FaultCode)
                            }
                            _ => None,
                        }
                    }
                    "inspection" => self.inspection(r, rule_start).map(RuleType::Inspection),
                    _ => {
                        let after = self
                            .required(&r.after, "after", ty, rule_start)
                            .and_then(|a| self.duration(a, "after"));
                        match after {
                            Some(after) if after.is_zero() => {
                                let span = r.after.as_ref().map_or(rule_start, |a| a.span().start);
                                self.at(span, "after: must be longer than 0".into());
                                None
                            }
                            Some(after) if ty == "no_data" => Some(RuleType::NoData { after }),
                            Some(after) => Some(RuleType::GatewayNoData { after }),
                            None => None,
                        }
                    }
                }
            }
        }
    }
}

/// The file-level keys and where each `[[rule]]` table starts, read without the rules' schema.
#[derive(Deserialize)]
struct Outline {
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<toml::Value>>,
}

/// `text` with every byte outside `keep` blanked (line ends stay), so that a part of a file
/// parses on its own with the spans, lines and columns of the whole file.
fn blank_outside(text: &str, keep: std::ops::Range<usize>) -> String {
    let blank = |s: &str| s.bytes().map(|b| if b == b'\n' { '\n' } else { ' ' }).collect::<String>();
    [blank(&text[..keep.start]), text[keep.clone()].to_string(), blank(&text[keep.end..])].concat()
}

/// The file's schema: its file-level `inhibit_when` and its rules' tables. When serde stops at
/// the first schema error (an unknown key, a missing `id`), each `[[rule]]` table is read again
/// on its own, so that every bad table is reported and the good ones are still checked.
fn read_schema(c: &mut Checker<'_>) -> (Option<Spanned<String>>, Vec<Spanned<RawRule>>) {
    let text = c.text;
    let first_error = match toml::from_str::<RawFile>(text) {
        Ok(raw) => return (raw.inhibit_when, raw.rules),
        Err(e) => e,
    };
    let starts: Option<Vec<usize>> = toml::from_str::<Outline>(text).ok().and_then(|outline| {
        let starts: Vec<usize> = outline.rules.iter().map(|r| r.span().start).collect();
        // Inline tables (`rule = [{ … }]`) cannot be cut apart; only `[[rule]]` headers can.
        starts.iter().all(|&s| text[s..].starts_with("[[")).then_some(starts)
    });
    let report = |c: &mut Checker<'_>, e: toml::de::Error| {
        c.at(e.span().map_or(0, |s| s.start), e.message().trim_end().to_string());
    };
    let Some(starts) = starts else {
        report(c, first_error);
        return (None, Vec::new());
    };
    let before = c.diagnostics.len();
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    let head_end = starts.first().copied().unwrap_or(text.len());
    let inhibit_when = match toml::from_str::<RawFile>(&blank_outside(text, 0..head_end)) {
        Ok(head) => head.inhibit_when,
        Err(e) => {
            report(c, e);
            None
        }
    };
    let mut rules = Vec::new();
    for (start, end) in starts.iter().copied().zip(ends) {
        match toml::from_str::<RawFile>(&blank_outside(text, start..end)) {
            Ok(part) => rules.extend(part.rules),
            Err(e) => report(c, e),
        }
    }
    if c.diagnostics.len() == before {
        report(c, first_error);
    }
    (inhibit_when, rules)
}

/// Parses one file's text; `file` names it in diagnostics. Returns the rules without problems,
/// and every problem.
pub(super) fn parse(file: &str, text: &str) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut c = Checker { file, text, diagnostics: Vec::new() };
    let (inhibit_when, raw_rules) = read_schema(&mut c);
    let mut rules: Vec<Rule> = Vec::new();
    let mut ids = BTreeSet::new();
    for spanned in raw_rules {
        let rule_start = spanned.span().start;
        let r = spanned.into_inner();
        let before = c.diagnostics.len();
        let id = r.id.get_ref().clone();
        let id_valid = !id.is_empty()
            && id.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !id_valid {
            c.at(r.id.span().start, format!("rule id `{id}` must be letters, digits, `.`, `_`, `-`"));
        } else if !ids.insert(id.clone()) {
            c.at(r.id.span().start, format!("rule id `{id}` is used twice"));
        }
        if r.kinds.get_ref().is_empty() {
            c.at(r.kinds.span().start, "kinds must name at least one equipment kind".into());
        }
        for k in r.kinds.get_ref() {
            if k != "*" && !telemetry::codec::is_kind(k) {
                c.at(r.kinds.span().start, format!("kind `{k}` is not a kind name"));
            }
        }
        let rule_type = c.rule_type(&r, rule_start);
        let hold_for = match &r.hold_for {
            None => Some(Duration::ZERO),
            Some(s) if r.rule_type.as_ref().is_some_and(|t| t.get_ref() == "inspection") => {
                c.at(
                    s.span().start,
                    "`for` does not apply to inspection rules: they move a day at a time".into(),
                );
                None
            }
            Some(s) => c.duration(s, "for"),
        };
        let severity = Severity::parse(r.severity.get_ref());
        if severity.is_none() {
            c.at(
                r.severity.span().start,
                format!("severity `{}` must be critical, major, warning or info", r.severity.get_ref()),
            );
        }
        let summary = match Template::parse(r.summary.get_ref()) {
            Ok(t) => Some(t),
            Err((offset, why)) => {
                c.at(content_start(text, r.summary.span()) + offset, format!("summary: {why}"));
                None
            }
        };
        let lifecycle = c.lifecycle(&r, inhibit_when.as_ref());
        let _ = r.description;
        if c.diagnostics.len() > before {
            continue;
        }
        if let (Some(rule_type), Some(hold_for), Some(severity), Some(summary)) =
            (rule_type, hold_for, severity, summary)
        {
            let rule = Rule {
                id,
                kinds: r.kinds.into_inner(),
                rule_type,
                hold_for,
                severity,
                summary,
                source: r.source,
                lifecycle: lifecycle.unwrap_or_default(),
                file: file.to_string(),
                line: line_col(text, rule_start).0,
            };
            if let Some(clash) = rules.iter().find_map(|other| super::id_clash(other, &rule)) {
                c.at(r.id.span().start, clash);
                continue;
            }
            rules.push(rule);
        }
    }
    c.diagnostics.sort_by_key(|d| (d.line, d.column));
    (rules, c.diagnostics)
}
