//! Rule files (TOML). Every problem is reported as `file:line:column: message`, all of them at
//! once, so an engineer fixes a file in one pass.
//!
//! ```toml
//! [[rule]]
//! id = "boiler.over_pressure"
//! kinds = ["boiler"]
//! when = "pressure_mpa > 1.25"
//! clear = "pressure_mpa < 1.19"     # optional hysteresis; default: `when` no longer holds
//! for = "5s"                        # optional; how long `when` must hold before firing
//! severity = "critical"             # critical | major | warning | info
//! summary = "{device.id} over pressure: {pressure_mpa} MPa"
//! source = "TSG 11-2020"            # the regulation or document the rule encodes
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::expr::Condition;
use crate::template::Template;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "critical" => Some(Severity::Critical),
            "major" => Some(Severity::Major),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// A validated rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub kinds: Vec<String>,
    pub when: Condition,
    pub clear: Option<Condition>,
    pub hold_for: Duration,
    pub severity: Severity,
    pub summary: Template,
    pub source: Option<String>,
    /// Where the rule was defined, for messages.
    pub file: String,
    pub line: usize,
}

impl Rule {
    pub fn applies_to(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind || k == "*")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    kinds: Spanned<Vec<String>>,
    when: Spanned<String>,
    #[serde(default)]
    clear: Option<Spanned<String>>,
    #[serde(default, rename = "for")]
    hold_for: Option<Spanned<String>>,
    severity: Spanned<String>,
    summary: Spanned<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// All rules loaded together.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Byte offset in `text` where the content of the string value at `span` starts.
fn content_start(text: &str, span: std::ops::Range<usize>) -> usize {
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

impl RuleSet {
    /// Parses one file's text; `file` names it in diagnostics.
    pub fn parse(file: &str, text: &str) -> Result<RuleSet, Vec<Diagnostic>> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            Diagnostic { file: file.to_string(), line, column, message }
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| vec![at(e.span().map_or(0, |s| s.start), e.message().trim_end().to_string())])?;
        let mut diagnostics = Vec::new();
        let mut rules = Vec::new();
        let mut ids = BTreeSet::new();
        for spanned in raw.rules {
            let rule_start = spanned.span().start;
            let r = spanned.into_inner();
            let before = diagnostics.len();
            let id = r.id.get_ref().clone();
            let id_valid = !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !id_valid {
                diagnostics.push(at(
                    r.id.span().start,
                    format!("rule id `{id}` must be letters, digits, `.`, `_`, `-`"),
                ));
            } else if !ids.insert(id.clone()) {
                diagnostics.push(at(r.id.span().start, format!("rule id `{id}` is used twice")));
            }
            if r.kinds.get_ref().is_empty() {
                diagnostics
                    .push(at(r.kinds.span().start, "kinds must name at least one equipment kind".into()));
            }
            for k in r.kinds.get_ref() {
                if k != "*" && !telemetry::codec::is_kind(k) {
                    diagnostics.push(at(r.kinds.span().start, format!("kind `{k}` is not a kind name")));
                }
            }
            let mut condition = |s: &Spanned<String>, key: &str| match Condition::parse(s.get_ref()) {
                Ok(c) => Some(c),
                Err(e) => {
                    let offset = content_start(text, s.span()) + offset_in(s.get_ref(), e.line, e.column);
                    diagnostics.push(at(offset, format!("{key}: {}", e.message)));
                    None
                }
            };
            let when = condition(&r.when, "when");
            let clear = r.clear.as_ref().map(|c| condition(c, "clear"));
            let hold_for = match &r.hold_for {
                None => Some(Duration::ZERO),
                Some(s) => match humantime::parse_duration(s.get_ref()) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        diagnostics.push(at(s.span().start, format!("for: `{}`: {e}", s.get_ref())));
                        None
                    }
                },
            };
            let severity = Severity::parse(r.severity.get_ref());
            if severity.is_none() {
                diagnostics.push(at(
                    r.severity.span().start,
                    format!("severity `{}` must be critical, major, warning or info", r.severity.get_ref()),
                ));
            }
            let summary = match Template::parse(r.summary.get_ref()) {
                Ok(t) => Some(t),
                Err((offset, why)) => {
                    diagnostics
                        .push(at(content_start(text, r.summary.span()) + offset, format!("summary: {why}")));
                    None
                }
            };
            let _ = r.description;
            if diagnostics.len() > before {
                continue;
            }
            if let (Some(when), Some(clear), Some(hold_for), Some(severity), Some(summary)) =
                (when, clear.map_or(Some(None), |c| c.map(Some)), hold_for, severity, summary)
            {
                rules.push(Rule {
                    id,
                    kinds: r.kinds.into_inner(),
                    when,
                    clear,
                    hold_for,
                    severity,
                    summary,
                    source: r.source,
                    file: file.to_string(),
                    line: line_col(text, rule_start).0,
                });
            }
        }
        if diagnostics.is_empty() {
            Ok(RuleSet { rules })
        } else {
            Err(diagnostics)
        }
    }

    /// Loads and merges rule files; rule ids must be unique across all of them.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<RuleSet, Vec<Diagnostic>> {
        let texts: Vec<(String, Result<String, String>)> = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                (p.display().to_string(), std::fs::read_to_string(p).map_err(|e| e.to_string()))
            })
            .collect();
        let sources: Vec<(&str, &str)> =
            texts.iter().filter_map(|(f, t)| t.as_deref().ok().map(|t| (f.as_str(), t))).collect();
        let mut diagnostics: Vec<Diagnostic> = texts
            .iter()
            .filter_map(|(f, t)| {
                t.as_ref().err().map(|e| Diagnostic {
                    file: f.clone(),
                    line: 0,
                    column: 0,
                    message: e.clone(),
                })
            })
            .collect();
        match RuleSet::merge(&sources) {
            Ok(set) if diagnostics.is_empty() => Ok(set),
            Ok(_) => Err(diagnostics),
            Err(more) => {
                diagnostics.extend(more);
                Err(diagnostics)
            }
        }
    }

    /// Parses several `(file, text)` sources into one set.
    pub fn merge(sources: &[(&str, &str)]) -> Result<RuleSet, Vec<Diagnostic>> {
        let mut all = RuleSet::default();
        let mut diagnostics = Vec::new();
        for (file, text) in sources {
            match RuleSet::parse(file, text) {
                Ok(set) => {
                    for rule in set.rules {
                        if let Some(first) = all.rules.iter().find(|r| r.id == rule.id) {
                            diagnostics.push(Diagnostic {
                                file: rule.file.clone(),
                                line: rule.line,
                                column: 1,
                                message: format!(
                                    "rule id `{}` is already defined at {}:{}",
                                    rule.id, first.file, first.line
                                ),
                            });
                        } else {
                            all.rules.push(rule);
                        }
                    }
                }
                Err(d) => diagnostics.extend(d),
            }
        }
        if diagnostics.is_empty() {
            Ok(all)
        } else {
            Err(diagnostics)
        }
    }
}

#[cfg(test)]
mod tests;
