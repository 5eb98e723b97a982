//! `[notify]`: receivers, the routes that choose them, and the timing of grouped notifications.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use telemetry::AlertStatus;

fn default_group_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_max_retry_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_keep_delivered() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// Without receivers, notifications are off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Alerts of a group are collected this long before its first notification.
    #[serde(default = "default_group_wait", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Then a group is notified at most this often.
    #[serde(default = "default_group_interval", with = "humantime_serde")]
    pub group_interval: Duration,
    /// Failed deliveries are retried with exponential backoff up to this.
    #[serde(default = "default_max_retry_backoff", with = "humantime_serde")]
    pub max_retry_backoff: Duration,
    /// How long delivered transitions are remembered, so a replayed one is not sent again.
    #[serde(default = "default_keep_delivered", with = "humantime_serde")]
    pub keep_delivered: Duration,
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            max_retry_backoff: default_max_retry_backoff(),
            keep_delivered: default_keep_delivered(),
            receivers: Vec::new(),
            routes: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverType {
    /// A generic JSON body (Alertmanager-like).
    Webhook,
    /// WeCom (企业微信) group robot.
    Wecom,
    /// DingTalk (钉钉) custom robot, signed.
    Dingtalk,
    /// Feishu / Lark (飞书) custom bot, signed.
    Feishu,
    Email,
}

impl ReceiverType {
    pub const NAMES: &'static str = "webhook, wecom, dingtalk, feishu, email";

    pub fn parse(name: &str) -> Option<ReceiverType> {
        match name {
            "webhook" => Some(ReceiverType::Webhook),
            "wecom" => Some(ReceiverType::Wecom),
            "dingtalk" => Some(ReceiverType::Dingtalk),
            "feishu" => Some(ReceiverType::Feishu),
            "email" => Some(ReceiverType::Email),
            _ => None,
        }
    }

    fn is_http(self) -> bool {
        self != ReceiverType::Email
    }

    fn is_signed(self) -> bool {
        matches!(self, ReceiverType::Dingtalk | ReceiverType::Feishu)
    }
}

/// One receiver; which keys apply depends on `type`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// webhook | wecom | dingtalk | feishu | email (checked by `validate`, to name the field).
    #[serde(rename = "type")]
    pub receiver_type: String,
    /// HTTP receivers: where to POST. For WeCom the robot's key is in it.
    #[serde(default)]
    pub url: Option<String>,
    /// DingTalk and Feishu: the robot's signing secret, or a file holding it.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Generic webhook: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// E-mail: `smtp://host:port`.
    #[serde(default)]
    pub smtp_url: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `smtp://` only: upgrade the connection with STARTTLS and refuse to send without it.
    /// (`smtps://` is TLS from the first byte, port 465 by default.)
    #[serde(default)]
    pub starttls: bool,
}

/// An alert label that can make up a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupLabel {
    Gateway,
    Rule,
    Status,
    Device,
    Town,
    Kind,
    Severity,
}

fn default_statuses() -> Vec<AlertStatus> {
    vec![AlertStatus::Firing, AlertStatus::Resolved, AlertStatus::Acknowledged]
}
fn default_group_by() -> Vec<GroupLabel> {
    vec![GroupLabel::Gateway, GroupLabel::Rule, GroupLabel::Status]
}

/// Which alerts go to which receivers. An empty list matches anything.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub receivers: Vec<String>,
    #[serde(default)]
    pub severities: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub towns: Vec<String>,
    #[serde(default = "default_statuses")]
    pub statuses: Vec<AlertStatus>,
    #[serde(default = "default_group_by")]
    pub group_by: Vec<GroupLabel>,
    /// False: the first matching route wins. True: later routes are tried too.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            receivers: Vec::new(),
            severities: Vec::new(),
            kinds: Vec::new(),
            towns: Vec::new(),
            statuses: default_statuses(),
            group_by: default_group_by(),
            continue_matching: false,
        }
    }
}

impl NotifyConfig {
    /// Every problem, one a line, each with the path of its field.
    pub fn validate(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, d) in
            [("group_interval", self.group_interval), ("max_retry_backoff", self.max_retry_backoff)]
        {
            if d.is_zero() {
                problems.push(format!("notify.{name}: must be more than zero"));
            }
        }
        if self.keep_delivered < self.group_interval {
            problems.push("notify.keep_delivered: must be at least notify.group_interval".into());
        }
        let mut names = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let at = format!("notify.receiver[{i}]");
            if r.name.is_empty() {
                problems.push(format!("{at}.name: must not be empty"));
            } else if !names.insert(r.name.as_str()) {
                problems.push(format!("{at}.name: a receiver named {:?} is defined before", r.name));
            }
            receiver_problems(r, &at, &mut problems);
        }
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("notify.route[{i}]");
            if route.receivers.is_empty() {
                problems.push(format!("{at}.receivers: name at least one receiver"));
            }
            for name in &route.receivers {
                if !names.contains(name.as_str()) {
                    problems.push(format!("{at}.receivers: no receiver named {name:?}"));
                }
            }
            if route.statuses.is_empty() {
                problems.push(format!("{at}.statuses: must not be empty (leave it out for the default)"));
            }
        }
        problems
    }
}

fn receiver_problems(r: &ReceiverConfig, at: &str, problems: &mut Vec<String>) {
    let Some(kind) = ReceiverType::parse(&r.receiver_type) else {
        problems.push(format!(
            "{at}.type: unknown type {:?} (expected one of {})",
            r.receiver_type,
            ReceiverType::NAMES
        ));
        return;
    };
    let mut not_for = |field: &str, present: bool| {
        if present {
            problems.push(format!("{at}.{field}: not used by a {} receiver", r.receiver_type));
        }
    };
    not_for("headers", !r.headers.is_empty() && kind != ReceiverType::Webhook);
    not_for("secret", r.secret.is_some() && !kind.is_signed());
    not_for("secret_file", r.secret_file.is_some() && !kind.is_signed());
    not_for("url", r.url.is_some() && !kind.is_http());
    let email = kind == ReceiverType::Email;
    not_for("smtp_url", r.smtp_url.is_some() && !email);
    not_for("from", r.from.is_some() && !email);
    not_for("to", !r.to.is_empty() && !email);
    not_for("username", r.username.is_some() && !email);
    not_for("password", r.password.is_some() && !email);
    not_for("password_file", r.password_file.is_some() && !email);
    not_for("starttls", r.starttls && !email);

    if kind.is_http() {
        match r.url.as_deref().map(reqwest::Url::parse) {
            None => problems.push(format!("{at}.url: missing")),
            Some(Err(e)) => problems.push(format!("{at}.url: {e}")),
            Some(Ok(u)) if !matches!(u.scheme(), "http" | "https") => {
                problems.push(format!("{at}.url: must start with http:// or https://"))
            }
            Some(Ok(_)) => {}
        }
    }
    if kind.is_signed() && r.secret.is_some() == r.secret_file.is_some() {
        problems.push(format!("{at}.secret: give the robot's signing secret, or secret_file (one of them)"));
    }
    if email {
        email_problems(r, at, problems);
    }
}

fn email_problems(r: &ReceiverConfig, at: &str, problems: &mut Vec<String>) {
    match r.smtp_url.as_deref() {
        None => problems.push(format!("{at}.smtp_url: missing")),
        Some(u) => {
            if let Err(e) = parse_smtp_url(u) {
                problems.push(format!("{at}.smtp_url: {e}"));
            }
        }
    }
    match r.from.as_deref() {
        None => problems.push(format!("{at}.from: missing")),
        Some(f) => {
            if let Err(e) = f.parse::<lettre::message::Mailbox>() {
                problems.push(format!("{at}.from: {f:?}: {e}"));
            }
        }
    }
    if r.to.is_empty() {
        problems.push(format!("{at}.to: name at least one address"));
    }
    for (j, t) in r.to.iter().enumerate() {
        if let Err(e) = t.parse::<lettre::message::Mailbox>() {
            problems.push(format!("{at}.to[{j}]: {t:?}: {e}"));
        }
    }
    if r.password.is_some() && r.password_file.is_some() {
        problems.push(format!("{at}.password: give password or password_file, not both"));
    }
    if (r.password.is_some() || r.password_file.is_some()) && r.username.is_none() {
        problems.push(format!("{at}.username: missing (a password is given)"));
    }
    if r.starttls && r.smtp_url.as_deref().is_some_and(|u| u.starts_with("smtps://")) {
        problems.push(format!("{at}.starttls: smtps:// is TLS already; starttls is for smtp://"));
    }
}

/// `smtp://host[:port]` (port 25 by default) or `smtps://host[:port]` (TLS, port 465) into
/// host, port, and whether the connection is TLS from the start.
pub fn parse_smtp_url(url: &str) -> Result<(String, u16, bool), String> {
    let u = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let tls = match u.scheme() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(format!("{:?}: must start with smtp:// or smtps://", crate::redact::redact(url))),
    };
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{:?}: no host", crate::redact::redact(url)))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((host, u.port().unwrap_or(if tls { 465 } else { 25 }), tls))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
