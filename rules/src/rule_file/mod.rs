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
//!
//! [[rule]]
//! id = "elevator.passenger_trapped"
//! kinds = ["elevator"]
//! type = "fault_code"               # threshold (default) | fault_code | bits | no_data | gateway_no_data | inspection
//! point = "fault_code"
//! codes = { 5 = "passenger_trapped", 8 = "trapped_outside_door_zone" }
//! per_code = false                  # true: one alert per code, rule id `{id}.{code name}`
//! severity = "critical"
//! summary = "{device.id} {code_name} ({code})"
//! ```
//!
//! Alert lifecycle keys (every type but `inspection`), see [`RuleLifecycle`]:
//!
//! ```toml
//! inhibit_when = "service_mode == 1"  # threshold, fault_code, bits: no new alert while the
//!                                     # device's latest answer to it was true (maintenance);
//!                                     # also a file-level key, the default of the file's rules
//! repeat_every = "30m"                # remind of an unacknowledged firing alert ("0s": never;
//!                                     # default: 30m for critical, never otherwise)
//! flap_count = 4                      # more than this many firings within flap_window: the
//! flap_window = "10m"                 # alert is flapping and its resolve waits until the
//! flap_hold = "5m"                    # condition stayed clear for flap_hold (0: no guard)
//! ```
//!
//! `bits` rules take `point` and `bits = { 0 = "over_pressure" }`; `no_data` and
//! `gateway_no_data` rules take `after = "2m"`; `inspection` rules take `check`, `leads`,
//! `escalate_after` and the keys of [`InspectionRule`]. [`parse`] checks one file's text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::expr::Condition;
use crate::inspection::Check;
use crate::template::Template;
use crate::window::Aggregate;

mod parse;

pub(crate) use parse::{content_start, line_col};

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

impl Diagnostic {
    /// A file that cannot be read: `cannot read FILE: No such file or directory`, with no line
    /// (line 0 stands for the whole file).
    pub fn cannot_read(file: impl Into<String>, error: &std::io::Error) -> Diagnostic {
        let file = file.into();
        let message = format!("cannot read {file}: {}", io_reason(error));
        Diagnostic { file, line: 0, column: 0, message }
    }
}

/// An I/O error's text without Rust's ` (os error N)` suffix.
pub fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // About the whole file; the message names it.
            return f.write_str(&self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// The named values of one point: fault codes, or bit numbers of an alarm word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codes {
    pub point: String,
    /// Code (or bit number) to name.
    pub names: BTreeMap<i64, String>,
    /// One alert per code, as rule `{id}.{name}`; otherwise one alert while any code is active.
    pub per_code: bool,
}

/// An inspection rule: due-soon and overdue alerts for one check of the registry's units,
/// stepped by [`crate::Engine::tick`] a day at a time.
#[derive(Debug)]
pub struct InspectionRule {
    pub check: Check,
    /// Days ahead of the due date that warn, longest first: one notification per lead crossed.
    pub lead_days: Vec<i64>,
    /// Overdue this many days or more: the alert escalates.
    pub escalate_after_days: Option<i64>,
    /// Severity while due soon (the rule's `severity` is the one once overdue).
    pub due_soon_severity: Severity,
    pub escalated_severity: Severity,
    /// Summary while due soon; the rule's `summary` otherwise.
    pub due_soon_summary: Option<Template>,
    /// Maintenance: the condition that shows, in a reading, the device in maintenance.
    pub signal: Option<Condition>,
}

impl InspectionRule {
    /// Severity at a stage of [`crate::inspection::Status::stage`].
    pub fn severity(&self, stage: usize, overdue: Severity) -> Severity {
        match stage.saturating_sub(self.lead_days.len()) {
            0 => self.due_soon_severity,
            1 => overdue,
            _ => self.escalated_severity,
        }
    }
}

/// What a rule watches.
#[derive(Debug)]
pub enum RuleType {
    /// A CEL condition over each reading, with optional hysteresis.
    Threshold { when: Condition, clear: Option<Condition> },
    /// The listed values of a fault-code point.
    FaultCode(Codes),
    /// The listed bits of an integer alarm word.
    Bits(Codes),
    /// A device of the rule's kinds that has been seen and sends nothing for `after`.
    NoData { after: Duration },
    /// A gateway whose devices of the rule's kinds all send nothing for `after`; it inhibits
    /// the `no_data` alerts of those devices.
    GatewayNoData { after: Duration },
    /// Due dates of the registry's units (inspection, verification, service life, maintenance).
    Inspection(InspectionRule),
}

impl RuleType {
    pub fn name(&self) -> &'static str {
        match self {
            RuleType::Threshold { .. } => "threshold",
            RuleType::FaultCode(_) => "fault_code",
            RuleType::Bits(_) => "bits",
            RuleType::NoData { .. } => "no_data",
            RuleType::GatewayNoData { .. } => "gateway_no_data",
            RuleType::Inspection(_) => "inspection",
        }
    }
}

/// How a rule's alerts live once raised: maintenance inhibition, reminders and the flapping
/// guard. `None` takes the engine's default ([`crate::engine::LifecycleDefaults`]).
#[derive(Debug, Default)]
pub struct RuleLifecycle {
    /// The device is in maintenance while its latest reading that answered this says true:
    /// the rule raises no alert then (fault rules only).
    pub inhibit_when: Option<Condition>,
    /// How often an unacknowledged firing alert is sent again; zero: never.
    pub repeat_every: Option<Duration>,
    /// Firings within `flap_window` beyond which the alert is flapping; zero: no guard.
    pub flap_count: Option<u32>,
    pub flap_window: Option<Duration>,
    /// How long a flapping alert's condition must stay clear before it resolves.
    pub flap_hold: Option<Duration>,
}

/// A validated rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub kinds: Vec<String>,
    pub rule_type: RuleType,
    pub hold_for: Duration,
    pub severity: Severity,
    pub summary: Template,
    pub source: Option<String>,
    pub lifecycle: RuleLifecycle,
    /// Where the rule was defined, for messages.
    pub file: String,
    pub line: usize,
}

impl Rule {
    pub fn applies_to(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind || k == "*")
    }

    /// The rule ids its alerts carry: its own, or `{id}.{name}` per code of a `per_code` rule.
    pub fn alert_ids(&self) -> Vec<String> {
        match &self.rule_type {
            RuleType::FaultCode(c) | RuleType::Bits(c) if c.per_code => {
                c.names.values().map(|name| format!("{}.{name}", self.id)).collect()
            }
            _ => vec![self.id.clone()],
        }
    }

    /// The conditions it evaluates over readings.
    pub fn conditions(&self) -> [Option<&Condition>; 3] {
        let inhibit = self.lifecycle.inhibit_when.as_ref();
        match &self.rule_type {
            RuleType::Threshold { when, clear } => [Some(when), clear.as_ref(), inhibit],
            RuleType::Inspection(i) => [i.signal.as_ref(), None, None],
            _ => [inhibit, None, None],
        }
    }

    /// A fault rule: threshold, fault_code or bits, the rules maintenance inhibits.
    pub fn is_fault(&self) -> bool {
        matches!(self.rule_type, RuleType::Threshold { .. } | RuleType::FaultCode(_) | RuleType::Bits(_))
    }

    /// The window aggregates its conditions read.
    pub fn aggregates(&self) -> impl Iterator<Item = &Aggregate> {
        self.conditions().into_iter().flatten().flat_map(|c| c.aggregates())
    }

    /// Whether its conditions read `device`.
    pub fn reads_device(&self) -> bool {
        self.conditions().into_iter().flatten().any(|c| c.variables().iter().any(|v| v == "device"))
    }
}

/// Why two rules cannot live together: an alert id of one is an alert id of the other.
fn id_clash(first: &Rule, second: &Rule) -> Option<String> {
    let theirs = first.alert_ids();
    let clash = second.alert_ids().into_iter().find(|id| theirs.contains(id))?;
    Some(format!(
        "alert id `{clash}` of rule `{}` is already used by rule `{}` at {}:{}",
        second.id, first.id, first.file, first.line
    ))
}

/// All rules loaded together.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// Files named directly, and the `*.toml` files of folders named (not their subfolders), each
/// folder's in name order.
pub fn expand(paths: &[impl AsRef<Path>]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                out.extend(files);
            }
            Err(_) => out.push(p.to_path_buf()),
        }
    }
    out
}

impl RuleSet {
    /// Parses one file's text; `file` names it in diagnostics.
    pub fn parse(file: &str, text: &str) -> Result<RuleSet, Vec<Diagnostic>> {
        match parse::parse(file, text) {
            (rules, diagnostics) if diagnostics.is_empty() => Ok(RuleSet { rules }),
            (_, diagnostics) => Err(diagnostics),
        }
    }

    /// Loads and merges rule files; rule ids must be unique across all of them.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<RuleSet, Vec<Diagnostic>> {
        all_or_nothing(RuleSet::load_partly(paths))
    }

    /// Parses several `(file, text)` sources into one set.
    pub fn merge(sources: &[(&str, &str)]) -> Result<RuleSet, Vec<Diagnostic>> {
        all_or_nothing(RuleSet::merge_partly(sources))
    }

    /// [`RuleSet::load`] that keeps the valid rules beside every problem of every file, so that
    /// `rules check` can check them further (against profiles) in the same run.
    pub fn load_partly(paths: &[impl AsRef<Path>]) -> (RuleSet, Vec<Diagnostic>) {
        let texts: Vec<(String, std::io::Result<String>)> = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                (p.display().to_string(), std::fs::read_to_string(p))
            })
            .collect();
        let sources: Vec<(&str, &str)> =
            texts.iter().filter_map(|(f, t)| t.as_deref().ok().map(|t| (f.as_str(), t))).collect();
        let mut diagnostics: Vec<Diagnostic> = texts
            .iter()
            .filter_map(|(f, t)| t.as_ref().err().map(|e| Diagnostic::cannot_read(f.clone(), e)))
            .collect();
        let (set, more) = RuleSet::merge_partly(&sources);
        diagnostics.extend(more);
        (set, diagnostics)
    }

    /// [`RuleSet::merge`] that keeps the valid rules beside every problem.
    pub fn merge_partly(sources: &[(&str, &str)]) -> (RuleSet, Vec<Diagnostic>) {
        let mut all = RuleSet::default();
        let mut diagnostics = Vec::new();
        for (file, text) in sources {
            let (rules, problems) = parse::parse(file, text);
            diagnostics.extend(problems);
            for rule in rules {
                let message = match all.rules.iter().find(|r| r.id == rule.id) {
                    Some(first) => Some(format!(
                        "rule id `{}` is already defined at {}:{}",
                        rule.id, first.file, first.line
                    )),
                    None => all.rules.iter().find_map(|first| id_clash(first, &rule)),
                };
                match message {
                    Some(message) => diagnostics.push(Diagnostic {
                        file: rule.file.clone(),
                        line: rule.line,
                        column: 1,
                        message,
                    }),
                    None => all.rules.push(rule),
                }
            }
        }
        (all, diagnostics)
    }
}

fn all_or_nothing((set, diagnostics): (RuleSet, Vec<Diagnostic>)) -> Result<RuleSet, Vec<Diagnostic>> {
    if diagnostics.is_empty() {
        Ok(set)
    } else {
        Err(diagnostics)
    }
}

#[cfg(test)]
mod tests;
