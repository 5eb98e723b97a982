//! E-mail notifications through a real SMTP server: aiosmtpd (Debian package
//! `python3-aiosmtpd`) on a free loopback port, storing what it receives in a Maildir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ingest::notify::config::{ReceiverConfig, RouteConfig};
use ingest::notify::{Notifier, NotifyConfig, NotifyHandle, NotifyMetrics};
use system_tests::{free_port, wait_for, wait_for_port, Proc};
mod common;
use common::offline;
use tokio::sync::watch;

/// A Python that has aiosmtpd: `NOTIFY_TEST_PYTHON`, else the one on PATH, else Debian's.
fn python_with_aiosmtpd() -> String {
    let candidates: Vec<String> = std::env::var("NOTIFY_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_string(), "/usr/bin/python3".to_string()])
        .collect();
    for python in &candidates {
        let ok =
            Command::new(python).args(["-c", "import aiosmtpd"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return python.clone();
        }
    }
    panic!("no Python with aiosmtpd among {candidates:?}; install it with: apt-get install python3-aiosmtpd");
}

struct SmtpServer {
    _proc: Proc,
    port: u16,
    maildir: PathBuf,
}

fn start_smtp(dir: &Path) -> SmtpServer {
    let port = free_port();
    let maildir = dir.join("maildir");
    let mut cmd = Command::new(python_with_aiosmtpd());
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir);
    let proc = Proc::spawn("aiosmtpd", cmd, dir);
    wait_for_port(port, "aiosmtpd");
    SmtpServer { _proc: proc, port, maildir }
}

/// Undoes quoted-printable (RFC 2045 6.7): soft line breaks and `=XX` escapes.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A notifier with one route to `mail`, delivering until `stop` turns true.
fn start_notifier(
    mail: ReceiverConfig,
    group_wait: Duration,
    dir: &Path,
) -> (NotifyHandle, Arc<NotifyMetrics>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let routes = vec![RouteConfig { receivers: vec![mail.name.clone()], ..RouteConfig::default() }];
    let cfg = NotifyConfig { group_wait, routes, receivers: vec![mail], ..NotifyConfig::default() };
    let metrics = Arc::new(NotifyMetrics::default());
    let notifier = Notifier::open(&cfg, &dir.join("outbox.sqlite"), metrics.clone()).unwrap();
    let handle = notifier.handle();
    let (stop, shutdown) = watch::channel(false);
    (handle, metrics, stop, tokio::spawn(notifier.run(shutdown)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_alerts_arrive_as_one_email() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = start_smtp(dir.path());
    let mail = ReceiverConfig {
        name: "duty-mail".into(),
        receiver_type: "email".into(),
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        from: Some("Ingest <ingest@example.org>".into()),
        to: vec!["duty@example.org".into(), "lead@example.org".into()],
        ..ReceiverConfig::default()
    };
    let (handle, metrics, stop, task) = start_notifier(mail, Duration::from_millis(200), dir.path());
    handle.enqueue(&offline(30), &|_| None).unwrap();

    let new = smtp.maildir.join("new");
    let message = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), "a stored e-mail", || {
            let entry = std::fs::read_dir(&new).ok()?.flatten().next()?;
            std::fs::read_to_string(entry.path()).ok()
        })
    })
    .await
    .unwrap();
    stop.send(true).unwrap();
    task.await.unwrap();

    let (head, body) = message.split_once("\n\n").expect("headers and body");
    assert_eq!(header(head, "Subject"), Some("30 alerts: elevator.no_data firing behind gw-7"), "{head}");
    let to = header(head, "To").unwrap();
    assert!(to.contains("duty@example.org") && to.contains("lead@example.org"), "{head}");
    assert!(header(head, "From").unwrap().contains("ingest@example.org"), "{head}");
    let message_id = header(head, "Message-ID").unwrap();
    assert!(message_id.ends_with("@ingest.notify>"), "{head}");
    let body = if header(head, "Content-Transfer-Encoding") == Some("quoted-printable") {
        decode_quoted_printable(body)
    } else {
        body.to_string()
    };
    assert_eq!(
        body.lines().filter(|l| l.starts_with("[critical] firing elevator.no_data")).count(),
        30,
        "{body}"
    );
    assert!(body.contains("elev-0029"), "{body}");
    assert_eq!(std::fs::read_dir(smtp.maildir.join("new")).unwrap().count(), 1, "one e-mail for the group");
    assert_eq!(metrics.delivered_alerts.load(std::sync::atomic::Ordering::Relaxed), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_required_is_never_sent_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    // aiosmtpd without a TLS context does not offer STARTTLS.
    let smtp = start_smtp(dir.path());
    let mail = ReceiverConfig {
        name: "duty-mail".into(),
        receiver_type: "email".into(),
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        from: Some("ingest@example.org".into()),
        to: vec!["duty@example.org".into()],
        starttls: true,
        ..ReceiverConfig::default()
    };
    let (handle, metrics, stop, task) = start_notifier(mail, Duration::from_millis(100), dir.path());
    handle.enqueue(&offline(2), &|_| None).unwrap();
    let failed = metrics.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), "a failed attempt", || {
            (failed.failed_attempts.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(())
        })
    })
    .await
    .unwrap();
    stop.send(true).unwrap();
    task.await.unwrap();
    let stored = std::fs::read_dir(smtp.maildir.join("new")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "nothing sent without TLS");
    assert_eq!(metrics.delivered_alerts.load(std::sync::atomic::Ordering::Relaxed), 0);
}
