//! Real parts for the publishing tests: a Mosquitto broker started on a free loopback port
//! with its own config and state in a temp folder (stopped and started again on the same port
//! for outages), an MQTT collector that keeps every message it receives, and the `gateway`
//! binary run as a child process (its log shown when a test fails).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use telemetry::Reading;

use super::ChildGuard;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

pub fn now_ms() -> i64 {
    telemetry::now_ms()
}

/// Waits until `ready` holds, checking every 20 ms, or panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn find_mosquitto() -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!("`mosquitto` is not installed; these tests need the real broker: apt-get install -y mosquitto");
}

/// A child process with its output in a log file, killed on drop; the log's tail is printed
/// when the test is failing.
pub struct Proc {
    pub name: String,
    pub child: Option<ChildGuard>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc { name: name.into(), child: Some(ChildGuard(child)), log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").0.id()
    }

    /// Sends `signal` (`TERM`, `KILL`) and waits for the process to end.
    pub fn signal_and_wait(&mut self, signal: &str) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(format!("-{signal}")).arg(c.0.id().to_string()).status();
            let _ = c.0.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.child.take();
        if std::thread::panicking() {
            let out = self.output();
            let lines: Vec<&str> = out.lines().collect();
            eprintln!("---- {} ({}) ----", self.name, self.log.display());
            if lines.len() > 120 {
                eprintln!("{}\n[…]\n{}", lines[..40].join("\n"), lines[lines.len() - 80..].join("\n"));
            } else {
                eprintln!("{out}");
            }
        }
    }
}

/// A real Mosquitto on a free port, persistent (so a clean stop keeps the messages queued
/// for persistent sessions).
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let state = dir.join("mosquitto-state");
        std::fs::create_dir_all(&state).unwrap();
        // Started as root, mosquitto drops to its own user, which must be able to save here.
        std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        std::fs::write(&conf, system_tests::broker_config(port, &state)).unwrap();
        let mut m = Mosquitto { port, conf, dir: dir.to_path_buf(), proc: None };
        m.start_again();
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on its port with its state, and waits until it listens.
    pub fn start_again(&mut self) {
        let mut cmd = Command::new(find_mosquitto());
        cmd.arg("-c").arg(&self.conf);
        let proc = Proc::spawn("mosquitto", cmd, self.dir.join("mosquitto.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.port,
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.proc = Some(proc);
    }

    /// Stops the broker (SIGTERM: it saves its state, as a broker restarted for maintenance
    /// does) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal_and_wait("TERM");
        }
    }
}

/// One message as the collector got it.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Subscribes to everything the gateway publishes (persistent session, QoS 1) and keeps it,
/// in arrival order, across broker restarts.
pub struct Collector {
    messages: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start(port: u16, client_id: &str) -> Collector {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let messages: Arc<Mutex<Vec<Message>>> = Arc::default();
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (store, flag) = (messages.clone(), subscribed.clone());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        if !ack.session_present {
                            let c = client.clone();
                            tokio::spawn(async move {
                                let _ = c.subscribe("telemetry/#", QoS::AtLeastOnce).await;
                                let _ = c.subscribe("status/#", QoS::AtLeastOnce).await;
                            });
                        } else {
                            flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst)
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => store.lock().unwrap().push(Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        wait_until("the collector to subscribe", Duration::from_secs(10), || {
            subscribed.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
        Collector { messages, task }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Every reading received, in arrival order.
    pub fn readings(&self) -> Vec<Reading> {
        self.messages()
            .iter()
            .filter(|m| m.topic.starts_with("telemetry/"))
            .map(|m| telemetry::decode(&m.payload).expect("the gateway publishes valid readings"))
            .collect()
    }

    /// The last message on `topic`, as JSON.
    pub fn last_json(&self, topic: &str) -> Option<serde_json::Value> {
        let messages = self.messages();
        let m = messages.iter().rev().find(|m| m.topic == topic)?;
        serde_json::from_slice(&m.payload).ok()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `gateway` binary, running `gateway run --config {config}`.
pub fn start_gateway(config: &Path, log: PathBuf) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.arg("run").arg("--config").arg(config).env("GATEWAY_LOG", "info").env_remove("RUST_BACKTRACE");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("GATEWAY_") && k != "GATEWAY_LOG") {
        cmd.env_remove(key);
    }
    Proc::spawn("gateway", cmd, log)
}

/// A gateway config polling every device of `sim` over one line reached through `link`,
/// with the line timeout, the status period and the spool folder given.
pub fn gateway_toml(
    sim: &gateway::sim::Simulator,
    gateway_id: &str,
    link: &gateway::config::Link,
    mqtt_url: &str,
    interval: Duration,
    timeout: Duration,
    spool: &Path,
) -> String {
    let text = sim.gateway_config_on(gateway_id, link, mqtt_url, interval);
    let timeout = format!("timeout = \"{}\"", humantime::format_duration(timeout));
    assert!(text.contains("timeout = \"1s\""), "{text}");
    text.replacen("timeout = \"1s\"", &timeout, 1).replacen(
        "[mqtt]",
        &format!(
            "status_every = \"500ms\"\n\n[spool]\ndir = {:?}\nmax_bytes = \"16MiB\"\n\n[mqtt]",
            spool.display().to_string()
        ),
        1,
    )
}

/// Readings of one device in arrival order, by session.
pub fn of_device<'a>(readings: &'a [Reading], device: &str, session: u64) -> Vec<&'a Reading> {
    readings.iter().filter(|r| r.device == device && r.session == session).collect()
}

/// Checks that `readings` (one device, one session, arrival order, duplicates allowed) hold
/// every seq from 0 to the highest, first seen in increasing order. Returns the highest.
pub fn check_complete_and_ordered(device: &str, readings: &[&Reading]) -> u64 {
    let mut firsts: Vec<u64> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in readings {
        if seen.insert(r.seq) {
            firsts.push(r.seq);
        }
    }
    assert!(!firsts.is_empty(), "{device}: no readings");
    let max = *seen.iter().next_back().unwrap();
    let missing: Vec<u64> = (0..=max).filter(|s| !seen.contains(s)).collect();
    assert!(missing.is_empty(), "{device}: seqs lost: {missing:?} (of 0..={max})");
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{device}: out of order: {firsts:?}");
    max
}
