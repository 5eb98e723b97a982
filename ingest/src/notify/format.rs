//! One message per notification, in each receiver's format: a headline that says what the group
//! is ("500 alerts: elevator.no_data firing behind gw-7"), up to ~20 alert lines, "and N more".

use serde::Serialize;
use serde_json::{json, Value};
use telemetry::AlertMessage;

use super::sign;

/// An alert in the queue, with the town of its device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuedAlert {
    #[serde(flatten)]
    pub alert: AlertMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub town: Option<String>,
}

/// What one delivery carries: a group's alerts for one receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    pub alerts: Vec<QueuedAlert>,
}

/// Lines shown in chat messages; the rest are counted.
pub const CHAT_LINES: usize = 20;
/// Lines shown in an e-mail.
pub const EMAIL_LINES: usize = 200;
/// WeCom refuses markdown content over 4096 bytes; keep room for the headline and the tail.
const WECOM_BYTES: usize = 3_800;
/// DingTalk and Feishu take more, but a chat message past this is not read anyway.
const CHAT_BYTES: usize = 12_000;
/// A summary longer than this is cut in a line.
const LINE_CHARS: usize = 200;

fn the_one<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// "12 alerts: elevator.no_data firing behind gw-7": what the alerts have in common.
pub fn headline(alerts: &[QueuedAlert]) -> String {
    let n = alerts.len();
    let rules = distinct(alerts.iter().map(|a| a.alert.rule.as_str()));
    let rules = match rules.as_slice() {
        [one] => one.to_string(),
        many => format!("{} rules", many.len()),
    };
    let statuses = distinct(alerts.iter().map(|a| a.alert.status.as_str())).join("/");
    let mut text = format!("{n} alert{}: {rules} {statuses}", if n == 1 { "" } else { "s" });
    if let Some(device) = the_one(alerts.iter().map(|a| a.alert.device.as_str())) {
        text.push_str(" on ");
        text.push_str(device);
    }
    if let Some(gateway) = the_one(alerts.iter().map(|a| a.alert.gateway.as_str())) {
        text.push_str(" behind ");
        text.push_str(gateway);
    }
    if let Some(Some(town)) = the_one_town(alerts) {
        text.push_str(" in ");
        text.push_str(town);
    }
    text
}

fn the_one_town(alerts: &[QueuedAlert]) -> Option<Option<&str>> {
    let first = alerts.first()?.town.as_deref();
    alerts.iter().all(|a| a.town.as_deref() == first).then_some(first)
}

/// The group's status: the one all its alerts share, else firing if any fires, else resolved.
pub fn group_status(alerts: &[QueuedAlert]) -> &'static str {
    let statuses: Vec<&'static str> = alerts.iter().map(|a| a.alert.status.as_str()).collect();
    match the_one(statuses.iter().copied()) {
        Some(s) => s,
        None if statuses.contains(&"firing") => "firing",
        None => "resolved",
    }
}

/// `[critical] firing elevator.trapped elev-1 (东城街道): summary`
pub fn alert_line(a: &QueuedAlert) -> String {
    let m = &a.alert;
    let town = a.town.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
    let mut summary: String = m.summary.chars().take(LINE_CHARS).collect();
    if summary.len() < m.summary.len() {
        summary.push('…');
    }
    format!("[{}] {} {} {}{town}: {summary}", m.severity, m.status.as_str(), m.rule, m.device)
}

/// Up to `max_lines` alert lines within `max_bytes` in all, each after `prefix`, then
/// "and N more" for the rest.
pub fn alert_lines(alerts: &[QueuedAlert], prefix: &str, max_lines: usize, max_bytes: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut bytes = 0;
    for a in alerts.iter().take(max_lines) {
        let line = format!("{prefix}{}", alert_line(a));
        if bytes + line.len() + 1 > max_bytes {
            break;
        }
        bytes += line.len() + 1;
        lines.push(line);
    }
    let more = alerts.len() - lines.len();
    if more > 0 {
        lines.push(format!("and {more} more"));
    }
    lines
}

/// The generic webhook, after Alertmanager's: the alerts in full with their towns.
pub fn webhook_body(n: &Notification) -> Value {
    json!({
        "receiver": n.receiver,
        "status": group_status(&n.alerts),
        "group_key": n.group_key,
        "notification_id": n.id,
        "title": headline(&n.alerts),
        "count": n.alerts.len(),
        "alerts": n.alerts,
    })
}

/// WeCom group robot, markdown message; the robot's key is in the URL, there is no signing.
/// <https://developer.work.weixin.qq.com/document/path/91770>
pub fn wecom_body(n: &Notification) -> Value {
    let mut content = format!("**{}**", headline(&n.alerts));
    for line in alert_lines(&n.alerts, "> ", CHAT_LINES, WECOM_BYTES.saturating_sub(content.len())) {
        content.push('\n');
        content.push_str(&line);
    }
    json!({ "msgtype": "markdown", "markdown": { "content": content } })
}

/// DingTalk custom robot, markdown message (the signature goes in the URL, see `sign`).
/// <https://open.dingtalk.com/document/group/custom-robot-access>
pub fn dingtalk_body(n: &Notification) -> Value {
    let title = headline(&n.alerts);
    let mut text = format!("#### {title}\n");
    for line in alert_lines(&n.alerts, "- ", CHAT_LINES, CHAT_BYTES) {
        text.push('\n');
        text.push_str(&line);
    }
    json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
}

/// Feishu / Lark custom bot, text message, signed in the body.
/// <https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot>
pub fn feishu_body(n: &Notification, secret: &str, timestamp_s: i64) -> Value {
    let mut text = headline(&n.alerts);
    for line in alert_lines(&n.alerts, "", CHAT_LINES, CHAT_BYTES) {
        text.push('\n');
        text.push_str(&line);
    }
    json!({
        "timestamp": timestamp_s.to_string(),
        "sign": sign::feishu_sign(secret, timestamp_s),
        "msg_type": "text",
        "content": { "text": text },
    })
}

/// Subject and plain-text body of the e-mail.
pub fn email(n: &Notification) -> (String, String) {
    let subject = headline(&n.alerts);
    let mut body = format!("{subject}\n\n");
    for line in alert_lines(&n.alerts, "", EMAIL_LINES, usize::MAX) {
        body.push_str(&line);
        body.push('\n');
    }
    body.push_str(&format!("\nnotification {} ({})\n", n.id, n.group_key));
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert;
    use telemetry::AlertStatus;

    fn queued(rule: &str, device: &str, gateway: &str, status: AlertStatus, town: &str) -> QueuedAlert {
        QueuedAlert { alert: test_alert(rule, device, gateway, status), town: Some(town.into()) }
    }

    fn no_data(count: usize) -> Notification {
        let alerts = (0..count)
            .map(|i| {
                queued("elevator.no_data", &format!("elev-{i:04}"), "gw-7", AlertStatus::Firing, "东城街道")
            })
            .collect();
        Notification { id: "n1".into(), receiver: "duty".into(), group_key: "gateway=gw-7".into(), alerts }
    }

    #[test]
    fn headlines_say_what_the_group_shares() {
        let n = no_data(12);
        assert_eq!(headline(&n.alerts), "12 alerts: elevator.no_data firing behind gw-7 in 东城街道");
        let one = [queued("elevator.trapped", "elev-1", "gw-1", AlertStatus::Resolved, "南城街道")];
        assert_eq!(headline(&one), "1 alert: elevator.trapped resolved on elev-1 behind gw-1 in 南城街道");
        let mixed = [
            queued("a", "d1", "gw-1", AlertStatus::Firing, "x"),
            queued("b", "d2", "gw-2", AlertStatus::Resolved, "y"),
        ];
        assert_eq!(headline(&mixed), "2 alerts: 2 rules firing/resolved");
        assert_eq!(group_status(&mixed), "firing");
        assert_eq!(group_status(&one), "resolved");
    }

    #[test]
    fn long_groups_show_twenty_lines_and_count_the_rest() {
        let n = no_data(500);
        let body = wecom_body(&n);
        let content = body["markdown"]["content"].as_str().unwrap();
        assert!(content.starts_with("**500 alerts: elevator.no_data firing behind gw-7"), "{content}");
        assert_eq!(content.lines().filter(|l| l.starts_with("> ")).count(), CHAT_LINES);
        assert!(content.ends_with("\nand 480 more"), "{content}");
        assert!(content.len() <= 4096);
    }

    #[test]
    fn wecom_stays_under_its_byte_limit_with_long_summaries() {
        let mut n = no_data(30);
        for a in &mut n.alerts {
            a.alert.summary = "电梯困人".repeat(100);
        }
        let content = wecom_body(&n)["markdown"]["content"].as_str().unwrap().to_string();
        assert!(content.len() <= 4096, "{} bytes", content.len());
        let shown = content.lines().filter(|l| l.starts_with("> ")).count();
        assert!(content.ends_with(&format!("and {} more", 30 - shown)), "{content}");
    }

    #[test]
    fn webhook_body_carries_every_alert_with_its_town() {
        let n = no_data(3);
        let body = webhook_body(&n);
        assert_eq!(body["count"], 3);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "duty");
        assert_eq!(body["group_key"], "gateway=gw-7");
        assert_eq!(body["notification_id"], "n1");
        assert_eq!(body["alerts"][2]["device"], "elev-0002");
        assert_eq!(body["alerts"][2]["town"], "东城街道");
        assert_eq!(body["alerts"][2]["rule"], "elevator.no_data");
        let back: AlertMessage = serde_json::from_value(body["alerts"][0].clone()).unwrap();
        assert_eq!(back, n.alerts[0].alert);
    }

    #[test]
    fn dingtalk_and_feishu_shapes() {
        let n = no_data(2);
        let d = dingtalk_body(&n);
        assert_eq!(d["msgtype"], "markdown");
        assert_eq!(d["markdown"]["title"], headline(&n.alerts));
        assert!(d["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("\n- [critical] firing elevator.no_data elev-0001"));
        let f = feishu_body(&n, "feishu-secret", 1_700_000_000);
        assert_eq!(f["timestamp"], "1700000000");
        assert_eq!(f["sign"], "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=");
        assert_eq!(f["msg_type"], "text");
        assert!(f["content"]["text"].as_str().unwrap().starts_with("2 alerts: elevator.no_data firing"));
    }

    #[test]
    fn email_subject_is_the_headline() {
        let (subject, body) = email(&no_data(250));
        assert_eq!(subject, "250 alerts: elevator.no_data firing behind gw-7 in 东城街道");
        assert_eq!(body.lines().filter(|l| l.starts_with("[critical]")).count(), EMAIL_LINES);
        assert!(body.contains("\nand 50 more\n"));
    }
}
