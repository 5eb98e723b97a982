//! The alert lifecycle after the state machine: what the notifier is told. Every transition of
//! [`Engine::process`] and [`Engine::tick`] passes through here, keyed by (alert id, device):
//!
//! - **acknowledge**: a firing alert records who, when and a comment; no more reminders.
//! - **silences**: matchers (device, gateway, rule, town, kind) over a time window. A firing
//!   transition under an active silence comes out as `Silenced`; the alert still fires in the
//!   engine, and the first tick after the silence ends sends it as `Firing` (owed, once).
//! - **reminders**: an unacknowledged, unsilenced firing alert is sent again every
//!   `repeat_every` (default: 30 min for critical alerts), its summary marked `[reminder]`.
//! - **flapping**: an alert that fires more than `flap_count` times within `flap_window` is
//!   flapping (summary marked `[flapping]`): its resolves are held back, and it resolves only
//!   once its condition stayed clear for `flap_hold` (checked at `tick`).
//!
//! Maintenance inhibition happens before the state machine, in [`Engine::process`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use telemetry::{AlertMessage, AlertStatus, Value};

use super::{attribute_map, Engine};
use crate::alert::Ts;
use crate::rule_file::{Rule, RuleType, Severity};

/// Summary prefix of a reminder.
pub const REMINDER_MARK: &str = "[reminder] ";
/// Summary prefix of a flapping alert's messages.
pub const FLAPPING_MARK: &str = "[flapping] ";

/// The engine-wide defaults of the lifecycle keys a rule leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifecycleDefaults {
    /// Reminders of unacknowledged critical alerts (not inspection alerts); zero: none.
    pub critical_repeat_every: Duration,
    pub flap_count: u32,
    pub flap_window: Duration,
    pub flap_hold: Duration,
}

impl Default for LifecycleDefaults {
    fn default() -> Self {
        LifecycleDefaults {
            critical_repeat_every: Duration::from_secs(30 * 60),
            flap_count: 4,
            flap_window: Duration::from_secs(10 * 60),
            flap_hold: Duration::from_secs(5 * 60),
        }
    }
}

/// What a silence matches; every matcher given must match, at least one must be given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matchers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The gateway: a site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// A rule id, or an alert id (`{id}.{code name}` of a per_code rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The device's `town` registry attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A silence: alerts it matches between `starts_ms` (inclusive) and `ends_ms` (exclusive) are
/// not notified as firing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Empty: the engine names it (`silence-1`, …).
    pub id: String,
    pub matchers: Matchers,
    pub starts_ms: Ts,
    pub ends_ms: Ts,
    pub who: String,
    pub comment: String,
}

/// An acknowledgement of a firing alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub who: String,
    pub at_ms: Ts,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no rule has alert id `{0}`")]
    UnknownRule(String),
    #[error("alert `{rule}` on `{device}` is not firing")]
    NotFiring { rule: String, device: String },
    #[error("silence `{0}`: it must end after it starts")]
    EmptySilence(String),
    #[error("silence `{0}`: give at least one matcher")]
    NoMatchers(String),
    #[error("silence id `{0}` is already in use")]
    DuplicateSilence(String),
}

/// One alert the notifier knows as firing (or silenced).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// The latest firing message, unmarked; its `active_at` and `fired_at` are those notified.
    pub message: AlertMessage,
    /// A `Firing` went out (not only `Silenced`).
    pub notified: bool,
    /// When a `Firing` (or a reminder) last went out.
    pub last_sent: Option<Ts>,
    pub ack: Option<Ack>,
    pub flapping: bool,
    /// A flapping alert's resolve, held back until the condition stays clear for `flap_hold`.
    pub deferred: Option<AlertMessage>,
}

/// The lifecycle state, by (alert id, device).
#[derive(Clone, Debug, Default)]
pub(super) struct Lifecycle {
    pub alerts: BTreeMap<(String, String), Tracked>,
    pub silences: Vec<Silence>,
    /// Firing times within the flap window, per alert.
    pub flaps: BTreeMap<(String, String), VecDeque<Ts>>,
    pub next_silence: u64,
}

/// The lifecycle settings of one rule, defaults applied.
struct Settings {
    repeat_ms: i64,
    flap_count: u32,
    flap_window_ms: i64,
    flap_hold_ms: i64,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn settings(rule: Option<&Rule>, severity: &str, d: &LifecycleDefaults) -> Settings {
    let Some(rule) = rule.filter(|r| !matches!(r.rule_type, RuleType::Inspection(_))) else {
        return Settings { repeat_ms: 0, flap_count: 0, flap_window_ms: 0, flap_hold_ms: 0 };
    };
    let l = &rule.lifecycle;
    let critical = severity == Severity::Critical.as_str();
    let repeat = l.repeat_every.unwrap_or(if critical { d.critical_repeat_every } else { Duration::ZERO });
    Settings {
        repeat_ms: ms(repeat),
        flap_count: l.flap_count.unwrap_or(d.flap_count),
        flap_window_ms: ms(l.flap_window.unwrap_or(d.flap_window)),
        flap_hold_ms: ms(l.flap_hold.unwrap_or(d.flap_hold)),
    }
}

fn marked(m: &AlertMessage, flapping: bool, reminder: bool) -> AlertMessage {
    let mut m = m.clone();
    if flapping {
        m.summary.insert_str(0, FLAPPING_MARK);
    }
    if reminder {
        m.summary.insert_str(0, REMINDER_MARK);
    }
    m
}

impl Engine {
    /// The rule an alert id belongs to.
    pub(super) fn rule_of(&self, alert_id: &str) -> Option<&Rule> {
        self.alert_rules.get(alert_id).map(|&i| &self.rules.rules[i])
    }

    fn settings_of(&self, m: &AlertMessage) -> Settings {
        settings(self.rule_of(&m.rule), &m.severity, &self.lifecycle_defaults)
    }

    /// Sets the defaults of the lifecycle keys rules leave out.
    pub fn set_lifecycle_defaults(&mut self, defaults: LifecycleDefaults) {
        self.lifecycle_defaults = defaults;
    }

    fn silence_matches(&self, s: &Silence, m: &AlertMessage, at: Ts) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w == have);
        let rule_ok = s
            .matchers
            .rule
            .as_ref()
            .is_none_or(|r| *r == m.rule || self.rule_of(&m.rule).is_some_and(|rule| rule.id == *r));
        let town_ok = s.matchers.town.as_ref().is_none_or(|town| {
            let attributes = attribute_map(self.registry.get(&m.device), self.attributes.get(&m.device));
            matches!(attributes.as_deref().and_then(|a| a.get("town")), Some(Value::Text(t)) if t == town)
        });
        (s.starts_ms..s.ends_ms).contains(&at)
            && eq(&s.matchers.device, &m.device)
            && eq(&s.matchers.gateway, &m.gateway)
            && eq(&s.matchers.kind, &m.kind)
            && rule_ok
            && town_ok
    }

    /// Whether an active silence covers the alert of `m` at `at`.
    pub fn is_silenced(&self, m: &AlertMessage, at: Ts) -> bool {
        self.lifecycle.silences.iter().any(|s| self.silence_matches(s, m, at))
    }

    /// Adds a silence and returns its id (the one given, or a new one when empty). It applies
    /// to transitions from then on; an alert already notified gets no reminders while it holds.
    pub fn add_silence(&mut self, mut silence: Silence) -> Result<String, LifecycleError> {
        if silence.id.is_empty() {
            loop {
                self.lifecycle.next_silence += 1;
                let id = format!("silence-{}", self.lifecycle.next_silence);
                if !self.lifecycle.silences.iter().any(|s| s.id == id) {
                    silence.id = id;
                    break;
                }
            }
        } else if self.lifecycle.silences.iter().any(|s| s.id == silence.id) {
            return Err(LifecycleError::DuplicateSilence(silence.id));
        }
        if silence.ends_ms <= silence.starts_ms {
            return Err(LifecycleError::EmptySilence(silence.id));
        }
        if silence.matchers == Matchers::default() {
            return Err(LifecycleError::NoMatchers(silence.id));
        }
        let id = silence.id.clone();
        self.lifecycle.silences.push(silence);
        Ok(id)
    }

    /// Removes a silence; the alerts it held back are sent at the next tick.
    pub fn remove_silence(&mut self, id: &str) -> Option<Silence> {
        let at = self.lifecycle.silences.iter().position(|s| s.id == id)?;
        Some(self.lifecycle.silences.remove(at))
    }

    /// The silences not yet expired at the last tick.
    pub fn silences(&self) -> &[Silence] {
        &self.lifecycle.silences
    }

    /// The alerts the notifier knows as firing, with their acknowledgements and flags.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Tracked> {
        self.lifecycle.alerts.values()
    }

    /// Acknowledges a firing alert (`rule` as alert messages carry it): records who, when and
    /// why, stops its reminders, and returns the `Acknowledged` transition.
    pub fn acknowledge(
        &mut self,
        rule: &str,
        device: &str,
        who: &str,
        comment: &str,
        now_ms: Ts,
    ) -> Result<AlertMessage, LifecycleError> {
        let key = (rule.to_string(), device.to_string());
        let Some(tracked) = self.lifecycle.alerts.get_mut(&key) else {
            return Err(match self.alert_rules.contains_key(rule) {
                true => LifecycleError::NotFiring { rule: rule.to_string(), device: device.to_string() },
                false => LifecycleError::UnknownRule(rule.to_string()),
            });
        };
        tracked.ack = Some(Ack { who: who.to_string(), at_ms: now_ms, comment: comment.to_string() });
        let mut m = marked(&tracked.message, tracked.flapping, false);
        m.status = AlertStatus::Acknowledged;
        m.ts = now_ms;
        m.summary.push_str(&format!(" (acknowledged by {who}"));
        if !comment.is_empty() {
            m.summary.push_str(&format!(": {comment}"));
        }
        m.summary.push(')');
        m.acknowledged_by = Some(who.to_string());
        m.comment = (!comment.is_empty()).then(|| comment.to_string());
        Ok(m)
    }

    /// The acknowledgement of a firing alert, if any.
    pub fn acknowledgement(&self, rule: &str, device: &str) -> Option<&Ack> {
        self.lifecycle.alerts.get(&(rule.to_string(), device.to_string()))?.ack.as_ref()
    }

    /// Passes the state machine's transitions through the lifecycle: what the notifier hears.
    pub(super) fn notify(&mut self, raw: Vec<AlertMessage>) -> Vec<AlertMessage> {
        let mut out = Vec::with_capacity(raw.len());
        for m in raw {
            let key = (m.rule.clone(), m.device.clone());
            let settings = self.settings_of(&m);
            match m.status {
                AlertStatus::Firing => {
                    let silenced = self.is_silenced(&m, m.ts);
                    let lc = &mut self.lifecycle;
                    let existing = lc.alerts.get_mut(&key);
                    if let Some(t) = existing {
                        let again = t.deferred.take().is_none();
                        if !again {
                            // Back while its resolve was held: still firing, as notified.
                            let flaps = lc.flaps.entry(key).or_default();
                            flaps.push_back(m.ts);
                        }
                        let (active_at, fired_at) = (t.message.active_at, t.message.fired_at);
                        t.message = AlertMessage { active_at, fired_at, ..m };
                        if again {
                            // A firing alert sent again (an inspection stage).
                            let mut sent = marked(&t.message, t.flapping, false);
                            if silenced && !t.notified {
                                sent.status = AlertStatus::Silenced;
                            } else {
                                t.notified = true;
                                t.last_sent = Some(sent.ts);
                            }
                            out.push(sent);
                        }
                        continue;
                    }
                    let flaps = lc.flaps.entry(key.clone()).or_default();
                    flaps.push_back(m.ts);
                    while flaps.front().is_some_and(|&f| f < m.ts.saturating_sub(settings.flap_window_ms)) {
                        flaps.pop_front();
                    }
                    let flapping = settings.flap_count > 0 && flaps.len() > settings.flap_count as usize;
                    let mut sent = marked(&m, flapping, false);
                    if silenced {
                        sent.status = AlertStatus::Silenced;
                    }
                    lc.alerts.insert(
                        key,
                        Tracked {
                            message: m,
                            notified: !silenced,
                            last_sent: (!silenced).then_some(sent.ts),
                            ack: None,
                            flapping,
                            deferred: None,
                        },
                    );
                    out.push(sent);
                }
                AlertStatus::Resolved => {
                    let Some(t) = self.lifecycle.alerts.get_mut(&key) else {
                        out.push(m);
                        continue;
                    };
                    if t.flapping && settings.flap_hold_ms > 0 {
                        t.deferred = Some(m);
                        continue;
                    }
                    let t = self.lifecycle.alerts.remove(&key).expect("found above");
                    let resolved =
                        AlertMessage { active_at: t.message.active_at, fired_at: t.message.fired_at, ..m };
                    out.push(marked(&resolved, t.flapping, false));
                }
                _ => out.push(m),
            }
        }
        out
    }

    /// At the host's time: held-back resolves of flapping alerts, alerts whose silence ended,
    /// reminders; expired silences and flap histories are forgotten.
    pub(super) fn tick_lifecycle(&mut self, now: Ts) -> Vec<AlertMessage> {
        self.lifecycle.silences.retain(|s| s.ends_ms > now);
        let keys: Vec<(String, String)> = self.lifecycle.alerts.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            let t = &self.lifecycle.alerts[&key];
            let settings = self.settings_of(&t.message);
            if let Some(d) = &t.deferred {
                let cleared_at = d.resolved_at.unwrap_or(d.ts);
                if now.saturating_sub(cleared_at) >= settings.flap_hold_ms {
                    let t = self.lifecycle.alerts.remove(&key).expect("listed above");
                    let d = t.deferred.expect("checked above");
                    let resolved = AlertMessage {
                        active_at: t.message.active_at,
                        fired_at: t.message.fired_at,
                        ts: now,
                        ..d
                    };
                    out.push(marked(&resolved, true, false));
                    self.lifecycle.flaps.remove(&key);
                }
                continue;
            }
            let silenced = self.is_silenced(&t.message, now);
            let t = self.lifecycle.alerts.get_mut(&key).expect("listed above");
            if silenced {
                continue;
            }
            if !t.notified {
                t.notified = true;
                t.last_sent = Some(now);
                let mut m = marked(&t.message, t.flapping, false);
                m.ts = now;
                out.push(m);
            } else if t.ack.is_none()
                && settings.repeat_ms > 0
                && t.last_sent.is_some_and(|l| now.saturating_sub(l) >= settings.repeat_ms)
            {
                t.last_sent = Some(now);
                let mut m = marked(&t.message, t.flapping, true);
                m.ts = now;
                out.push(m);
            }
        }
        let horizon = now.saturating_sub(ms(self.lifecycle_defaults.flap_window).max(24 * 3_600_000));
        self.lifecycle.flaps.retain(|_, f| f.back().is_some_and(|&last| last >= horizon));
        out
    }
}

#[cfg(test)]
mod tests;
