//! Sending one notification to one receiver: HTTP for the webhooks and robots, SMTP for
//! e-mail. A send succeeds only when the receiver said so; anything else is retried.

use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use super::config::{parse_smtp_url, ReceiverConfig, ReceiverType};
use super::format::{self, Notification};
use super::sign;
use crate::redact;

/// Each HTTP request and SMTP session gives up after this long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that lets a generic webhook receiver drop a notification it already has.
pub const NOTIFICATION_ID_HEADER: &str = "X-Notification-Id";

pub struct Receiver {
    pub name: String,
    target: Target,
    /// Its secrets by value (robot keys and signing secrets, passwords, secret headers): masked
    /// in its errors, which go to the log and the outbox.
    secrets: Vec<String>,
}

enum Target {
    Webhook { url: String, headers: HeaderMap },
    Wecom { url: String },
    Dingtalk { url: String, secret: String },
    Feishu { url: String, secret: String },
    Email { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox, to: Vec<Mailbox> },
}

fn read_secret(
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
    at: &str,
) -> Result<String, String> {
    match (inline, file) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(path)) => read_trimmed(path).map_err(|e| format!("{at}_file: {e}")),
        (None, None) => Err(format!("{at}: missing")),
    }
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Receiver {
    /// The receiver `cfg` describes, its secrets read; `at` names it in errors.
    pub fn build(cfg: &ReceiverConfig, at: &str) -> Result<Receiver, String> {
        let kind =
            ReceiverType::parse(&cfg.receiver_type).ok_or_else(|| format!("{at}.type: unknown type"))?;
        let url = || cfg.url.clone().ok_or_else(|| format!("{at}.url: missing"));
        let target = match kind {
            ReceiverType::Webhook => {
                let mut headers = HeaderMap::new();
                for (name, value) in &cfg.headers {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| format!("{at}.headers: {name:?}: {e}"))?;
                    let value =
                        HeaderValue::from_str(value).map_err(|e| format!("{at}.headers.{name}: {e}"))?;
                    headers.insert(name, value);
                }
                Target::Webhook { url: url()?, headers }
            }
            ReceiverType::Wecom => Target::Wecom { url: url()? },
            ReceiverType::Dingtalk => Target::Dingtalk {
                url: url()?,
                secret: read_secret(&cfg.secret, &cfg.secret_file, &format!("{at}.secret"))?,
            },
            ReceiverType::Feishu => Target::Feishu {
                url: url()?,
                secret: read_secret(&cfg.secret, &cfg.secret_file, &format!("{at}.secret"))?,
            },
            ReceiverType::Email => email_target(cfg, at)?,
        };
        let mut secrets: Vec<String> =
            cfg.url.iter().chain(&cfg.smtp_url).flat_map(|u| redact::url_secrets(u)).collect();
        match &target {
            Target::Dingtalk { secret, .. } | Target::Feishu { secret, .. } => secrets.push(secret.clone()),
            Target::Webhook { headers, .. } => secrets.extend(
                (headers.iter())
                    .filter(|(name, _)| redact::secret_name(name.as_str()))
                    .filter_map(|(_, v)| v.to_str().ok().map(str::to_string)),
            ),
            _ => {}
        }
        secrets.extend(email_password(cfg));
        Ok(Receiver { name: cfg.name.clone(), target, secrets })
    }

    /// Delivers `n`; `now_ms` is the time the signatures carry. The error is redacted
    /// ([`redact`]): HTTP clients quote the URL, and with it a robot's token.
    pub async fn send(&self, http: &reqwest::Client, n: &Notification, now_ms: i64) -> Result<(), String> {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        self.deliver(http, n, now_ms).await.map_err(|e| redact::redact_with(&e, &secrets))
    }

    async fn deliver(&self, http: &reqwest::Client, n: &Notification, now_ms: i64) -> Result<(), String> {
        match &self.target {
            Target::Webhook { url, headers } => {
                let request = http
                    .post(url)
                    .headers(headers.clone())
                    .header(NOTIFICATION_ID_HEADER, n.id.as_str())
                    .header(CONTENT_TYPE, "application/json")
                    .body(format::webhook_body(n).to_string());
                post(request, Robot::None).await
            }
            Target::Wecom { url } => post(json_post(http, url, format::wecom_body(n)), Robot::ErrCode).await,
            Target::Dingtalk { url, secret } => {
                let url = sign::dingtalk_signed_url(url, secret, now_ms)?;
                post(json_post(http, &url, format::dingtalk_body(n)), Robot::ErrCode).await
            }
            Target::Feishu { url, secret } => {
                let body = format::feishu_body(n, secret, now_ms.div_euclid(1000));
                post(json_post(http, url, body), Robot::Code).await
            }
            Target::Email { transport, from, to } => {
                let (subject, text) = format::email(n);
                let mut message = Message::builder()
                    .from(from.clone())
                    .subject(subject)
                    .message_id(Some(format!("<{}@ingest.notify>", n.id)));
                for t in to {
                    message = message.to(t.clone());
                }
                let message =
                    message.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| e.to_string())?;
                transport.send(message).await.map(|_| ()).map_err(|e| format!("SMTP: {e}"))
            }
        }
    }
}

/// The SMTP password, inline or from its file, if there is one.
fn email_password(cfg: &ReceiverConfig) -> Option<String> {
    match (&cfg.password, &cfg.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => read_trimmed(path).ok(),
        (None, None) => None,
    }
}

fn email_target(cfg: &ReceiverConfig, at: &str) -> Result<Target, String> {
    let smtp_url = cfg.smtp_url.as_deref().ok_or_else(|| format!("{at}.smtp_url: missing"))?;
    let (host, port, tls) = parse_smtp_url(smtp_url).map_err(|e| format!("{at}.smtp_url: {e}"))?;
    let from = cfg.from.as_deref().ok_or_else(|| format!("{at}.from: missing"))?;
    let from = from.parse().map_err(|e| format!("{at}.from: {from:?}: {e}"))?;
    let to = cfg
        .to
        .iter()
        .map(|t| t.parse::<Mailbox>().map_err(|e| format!("{at}.to: {t:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if to.is_empty() {
        return Err(format!("{at}.to: name at least one address"));
    }
    let builder = match (tls, cfg.starttls) {
        (true, _) => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
        (false, true) => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
        // Plain SMTP, for a relay on the same host or network.
        (false, false) => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)),
    };
    let mut builder =
        builder.map_err(|e| format!("{at}.smtp_url: {e}"))?.port(port).timeout(Some(SEND_TIMEOUT));
    if let Some(user) = &cfg.username {
        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => read_trimmed(path).map_err(|e| format!("{at}.password_file: {e}"))?,
            (None, None) => String::new(),
        };
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(Target::Email { transport: builder.build(), from, to })
}

fn json_post(http: &reqwest::Client, url: &str, body: Value) -> reqwest::RequestBuilder {
    http.post(url).header(CONTENT_TYPE, "application/json").body(body.to_string())
}

/// How a robot says in its answer whether it took the message.
#[derive(Clone, Copy, Debug)]
pub enum Robot {
    /// Only the HTTP status counts.
    None,
    /// WeCom and DingTalk: `{"errcode": 0, "errmsg": "ok"}`.
    ErrCode,
    /// Feishu: `{"code": 0, "msg": "success"}`, or `{"StatusCode": 0}` from older bots.
    Code,
}

async fn post(request: reqwest::RequestBuilder, robot: Robot) -> Result<(), String> {
    let response = request.timeout(SEND_TIMEOUT).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    accepted(status, &body, robot)
}

/// Whether the answer means the message was taken.
pub fn accepted(status: u16, body: &[u8], robot: Robot) -> Result<(), String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", text()));
    }
    let fields: &[&str] = match robot {
        Robot::None => return Ok(()),
        Robot::ErrCode => &["errcode"],
        Robot::Code => &["code", "StatusCode"],
    };
    let answer: Value = serde_json::from_slice(body).map_err(|_| format!("not a JSON answer: {}", text()))?;
    match fields.iter().find_map(|f| answer.get(*f)) {
        Some(code) if code.as_i64() == Some(0) => Ok(()),
        Some(_) => Err(format!("refused: {}", text())),
        None => Err(format!("no {} in the answer: {}", fields[0], text())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_that_mean_delivered() {
        let cases: &[(u16, &str, Robot, bool)] = &[
            (200, "", Robot::None, true),
            (204, "", Robot::None, true),
            (500, "oops", Robot::None, false),
            (404, "", Robot::None, false),
            (200, r#"{"errcode":0,"errmsg":"ok"}"#, Robot::ErrCode, true),
            (200, r#"{"errcode":310000,"errmsg":"sign not match"}"#, Robot::ErrCode, false),
            (200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#, Robot::ErrCode, false),
            (200, "<html>", Robot::ErrCode, false),
            (200, "{}", Robot::ErrCode, false),
            (502, r#"{"errcode":0}"#, Robot::ErrCode, false),
            (200, r#"{"code":0,"msg":"success","data":{}}"#, Robot::Code, true),
            (200, r#"{"StatusCode":0,"StatusMessage":"success"}"#, Robot::Code, true),
            (200, r#"{"code":19021,"msg":"sign match fail"}"#, Robot::Code, false),
        ];
        for (status, body, robot, ok) in cases {
            assert_eq!(accepted(*status, body.as_bytes(), *robot).is_ok(), *ok, "{status} {body} {robot:?}");
        }
    }

    #[test]
    fn receivers_build_from_config_and_read_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "SECfromfile\n").unwrap();
        let cfg = ReceiverConfig {
            name: "ding".into(),
            receiver_type: "dingtalk".into(),
            url: Some("http://127.0.0.1:9/robot/send?access_token=t".into()),
            secret_file: Some(secret),
            ..ReceiverConfig::default()
        };
        let r = Receiver::build(&cfg, "notify.receiver[0]").unwrap();
        assert!(matches!(&r.target, Target::Dingtalk { secret, .. } if secret == "SECfromfile"));

        let missing = ReceiverConfig { secret_file: Some(dir.path().join("nope")), ..cfg };
        let e = Receiver::build(&missing, "notify.receiver[0]").err().unwrap();
        assert!(e.starts_with("notify.receiver[0].secret_file: "), "{e}");

        let bad_header = ReceiverConfig {
            name: "hook".into(),
            receiver_type: "webhook".into(),
            url: Some("http://127.0.0.1:9/".into()),
            headers: [("X-Key".to_string(), "a\nb".to_string())].into(),
            ..ReceiverConfig::default()
        };
        assert!(Receiver::build(&bad_header, "r").err().unwrap().starts_with("r.headers.x-key: "));
    }
}
