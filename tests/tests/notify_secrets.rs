//! Secrets never logged or stored: the real ingest binary delivers an alert to receivers that
//! fail (a closed port, a webhook and a DingTalk robot that answer 500 and echo the URL, an SMTP
//! server that is not there), with tokens in their URLs' queries and userinfo, a signing secret
//! and an SMTP password. Its log and its outbox must hold none of them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use system_tests::{free_port, metric, now_ms, publish, start_ingest, wait_for, Mosquitto};
use telemetry::Reading;

/// A receiver that answers every request 500 with the request line in the body, as some
/// servers' error pages do; it keeps the request lines.
fn echoing_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = format!("bad request: {}", request.trim());
            log.lock().expect("lock").push(request.trim().to_string());
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn failing_deliveries_keep_tokens_passwords_and_signatures_out_of_the_log_and_the_outbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let (echo, requests) = echoing_receiver();
    let closed = free_port();
    let http = free_port();
    let secrets = [
        "TOKEN-closed-q1",
        "KEY-closed-q2",
        "PASSWORD-userinfo-3",
        "ACCESS-echo-4",
        "DING-TOKEN-5",
        "SEC-ding-secret-6",
        "SMTP-PASSWORD-7",
    ];
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-secrets\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [batch]\nflush_every = \"50ms\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [notify]\ngroup_wait = \"1s\"\nmax_retry_backoff = \"1s\"\n\n\
         [[notify.receiver]]\nname = \"closed\"\ntype = \"webhook\"\n\
         url = \"http://hook:{}@127.0.0.1:{closed}/hook?token={}&key={}\"\n\n\
         [[notify.receiver]]\nname = \"echo\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{echo}/hook?access_token={}\"\n\n\
         [[notify.receiver]]\nname = \"ding\"\ntype = \"dingtalk\"\n\
         url = \"http://127.0.0.1:{echo}/robot/send?access_token={}\"\nsecret = \"{}\"\n\n\
         [[notify.receiver]]\nname = \"mail\"\ntype = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{closed}\"\n\
         from = \"ingest@example.com\"\nto = [\"duty@example.com\"]\nusername = \"ingest\"\npassword = \"{}\"\n\n\
         [[notify.route]]\nreceivers = [\"closed\", \"echo\", \"ding\", \"mail\"]\n",
        broker.url(),
        d.join("files").display(),
        d.join("wal").display(),
        secrets[2],
        secrets[0],
        secrets[1],
        secrets[3],
        secrets[4],
        secrets[5],
        secrets[6],
    );
    let ingest = start_ingest(d, "ingest", &config);
    let t0 = now_ms() - 10_000;
    let over: Vec<Reading> = (0..5)
        .map(|i| {
            Reading::new("gw-secrets", "boiler-s", "boiler", 1, i, t0 + i as i64 * 1000)
                .with_value("pressure_mpa", 1.4)
                .with_value("over_pressure", true)
        })
        .collect();
    publish(broker.port, "gw-secrets-a", &over);

    // Every receiver failed at least twice.
    wait_for(Duration::from_secs(40), "failed deliveries to every receiver", || {
        let failed = metric(http, "ingest_notify_failed_attempts_total")?;
        let out = ingest.output();
        let all = ["closed", "echo", "ding", "mail"]
            .iter()
            .all(|r| out.matches(&format!("notify: {r} (")).count() >= 2);
        (failed >= 8.0 && all).then_some(())
    });
    // The DingTalk signature the robot was sent: a secret of its own for the minute it is valid.
    let signatures: Vec<String> = (requests.lock().expect("lock").iter())
        .filter_map(|r| r.split("sign=").nth(1).map(|s| s.split([' ', '&']).next().unwrap_or("").to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    assert!(!signatures.is_empty(), "the robot got signed requests: {:?}", requests.lock());
    assert!(requests.lock().expect("lock").iter().any(|r| r.contains(secrets[3])), "the echo got its token");

    let log = ingest.output();
    assert!(
        log.contains("error sending request") && log.contains("HTTP 500"),
        "the failures are logged:\n{log}"
    );
    assert!(log.contains("access_token=***") && log.contains("sign=***"), "redacted, not left out:\n{log}");
    let mut outbox = Vec::new();
    for entry in std::fs::read_dir(d.join("wal")).expect("wal dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("outbox.sqlite") {
            outbox.extend(std::fs::read(entry.path()).expect("outbox file"));
        }
    }
    let outbox = String::from_utf8_lossy(&outbox);
    assert!(outbox.contains("HTTP 500"), "the outbox keeps the last errors");
    for secret in secrets.iter().map(|s| s.to_string()).chain(signatures) {
        assert!(!log.contains(&secret), "{secret} in the log:\n{log}");
        assert!(!outbox.contains(&secret), "{secret} in the outbox");
    }
}
