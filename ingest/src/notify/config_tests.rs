use super::*;

const EXAMPLE: &str = r#"
[notify]
group_wait = "10s"
group_interval = "1m"
max_retry_backoff = "5m"
keep_delivered = "7d"

[[notify.receiver]]
name = "duty-wecom"
type = "wecom"
url = "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"

[[notify.receiver]]
name = "duty-ding"
type = "dingtalk"
url = "http://127.0.0.1:9/robot/send?access_token=t"
secret = "SECabc"

[[notify.receiver]]
name = "ops-hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
headers = { "X-Api-Key" = "k" }

[[notify.receiver]]
name = "mail"
type = "email"
smtp_url = "smtp://127.0.0.1:2525"
from = "ingest <ingest@example.org>"
to = ["duty@example.org"]

[[notify.route]]
receivers = ["duty-wecom", "duty-ding"]
severities = ["critical"]
kinds = ["elevator"]
towns = ["东城街道"]
group_by = ["gateway", "rule"]
continue = true

[[notify.route]]
receivers = ["ops-hook", "mail"]
"#;

#[derive(Deserialize)]
struct Wrapper {
    notify: NotifyConfig,
}

#[test]
fn example_parses_and_validates() {
    let cfg = toml::from_str::<Wrapper>(EXAMPLE).unwrap().notify;
    cfg.validate().unwrap();
    assert_eq!(cfg.group_interval, Duration::from_secs(60));
    assert_eq!(cfg.keep_delivered, Duration::from_secs(7 * 86400));
    assert_eq!(cfg.receivers.len(), 4);
    assert!(cfg.routes[0].continue_matching);
    assert_eq!(cfg.routes[0].group_by, vec![GroupLabel::Gateway, GroupLabel::Rule]);
    assert_eq!(cfg.routes[1].statuses, default_statuses());
    assert_eq!(cfg.routes[1].group_by, default_group_by());
}

#[test]
fn default_has_no_receivers_and_is_valid() {
    let cfg = NotifyConfig::default();
    assert!(cfg.receivers.is_empty());
    cfg.validate().unwrap();
}

#[test]
fn unknown_keys_are_refused() {
    let text = "[notify]\ngroup_wiat = \"1s\"\n";
    assert!(toml::from_str::<Wrapper>(text).is_err());
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let text = r#"
[notify]
[[notify.receiver]]
name = "a"
type = "slack"
[[notify.receiver]]
name = "b"
type = "dingtalk"
url = "ftp://x"
[[notify.receiver]]
name = "c"
type = "email"
to = ["not an address"]
[[notify.receiver]]
name = "c"
type = "webhook"
secret = "s"
[[notify.route]]
receivers = ["a"]
[[notify.route]]
receivers = ["x"]
"#;
    let err = toml::from_str::<Wrapper>(text).unwrap().notify.validate().unwrap_err();
    for expected in [
        "notify.receiver[0].type: unknown type \"slack\"",
        "notify.receiver[1].url: must start with http:// or https://",
        "notify.receiver[1].secret: give the robot's signing secret",
        "notify.receiver[2].smtp_url: missing",
        "notify.receiver[2].from: missing",
        "notify.receiver[2].to[0]: \"not an address\"",
        "notify.receiver[3].name: a receiver named \"c\" is defined before",
        "notify.receiver[3].secret: not used by a webhook receiver",
        "notify.receiver[3].url: missing",
        "notify.route[1].receivers: no receiver named \"x\"",
    ] {
        assert!(err.contains(expected), "{expected:?} missing in:\n{err}");
    }
    assert!(!err.contains("notify.route[0]"), "{err}");
}

#[test]
fn smtp_urls() {
    assert_eq!(parse_smtp_url("smtp://127.0.0.1:2525").unwrap(), ("127.0.0.1".into(), 2525, false));
    assert_eq!(parse_smtp_url("smtp://mail.example.org").unwrap(), ("mail.example.org".into(), 25, false));
    assert_eq!(parse_smtp_url("smtps://mail.example.org").unwrap(), ("mail.example.org".into(), 465, true));
    assert!(parse_smtp_url("http://mail.example.org").is_err());
    assert!(parse_smtp_url("mail.example.org").is_err());
}
