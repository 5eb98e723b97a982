//! Harness for the end-to-end tests: real Mosquitto and VictoriaMetrics processes on free
//! loopback ports in temporary folders, the project's own binaries, and an MQTT recorder.
//!
//! - [`Proc`]: a child process killed on drop, its output in a log file shown on failure.
//! - [`Mosquitto`], [`Victoria`]: the real broker and TSDB; a missing one fails the test with
//!   the command that installs it (never a skip).
//! - [`binary`]: builds `gateway` and `ingest` once and returns their paths.
//! - [`Recorder`]: subscribes and keeps every message with its arrival order.
//! - [`checks`]: readings and alerts out of recorded messages; what VictoriaMetrics holds.

pub mod checks;
pub mod console;
pub mod webdriver;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `f` until it gives `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_for_port(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for(Duration::from_secs(20), what, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    });
}

/// A child process that is killed when dropped. Its stdout and stderr go to `log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err)).stdin(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let out = self.output();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Finds an executable on PATH or in the sbin folders Debian installs daemons into.
fn find_program(name: &str, install: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed; this test needs the real one. Install it with: {install} \
         (or run the tests with scripts/test, which installs what is missing)"
    );
}

/// The shipped broker config, `deploy/mosquitto/mosquitto.conf`, with its listener on
/// loopback `port` and its state in `state`: every setting that keeps messages is the shipped one.
pub fn broker_config(port: u16, state: &Path) -> String {
    let shipped = include_str!("../../deploy/mosquitto/mosquitto.conf");
    let (mut listener, mut location) = (false, false);
    let mut text = String::new();
    for line in shipped.lines() {
        if line.starts_with("listener ") {
            listener = true;
            text.push_str(&format!("listener {port} 127.0.0.1\n"));
        } else if line.starts_with("persistence_location ") {
            location = true;
            text.push_str(&format!("persistence_location {}/\n", state.display()));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(
        listener && location,
        "deploy/mosquitto/mosquitto.conf lost its listener or persistence_location line"
    );
    text
}

/// A real Mosquitto broker on a free port, configured as shipped ([`broker_config`]).
pub struct Mosquitto {
    pub port: u16,
    pub proc: Proc,
    conf: PathBuf,
    dir: PathBuf,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        Mosquitto::start_with(dir, |shipped| shipped)
    }

    /// Starts a broker on a changed shipped config (to show what a setting is for).
    pub fn start_with(dir: &Path, change: impl FnOnce(String) -> String) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, change(broker_config(port, dir))).expect("mosquitto.conf");
        let proc = Self::spawn(&conf, dir);
        wait_for_port(port, "mosquitto to listen");
        Mosquitto { port, proc, conf, dir: dir.to_path_buf() }
    }

    fn spawn(conf: &Path, dir: &Path) -> Proc {
        let bin = find_program("mosquitto", "apt-get install -y mosquitto");
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(conf);
        Proc::spawn("mosquitto", cmd, dir)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and state folder.
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = Self::spawn(&self.conf, &self.dir);
        wait_for_port(self.port, "mosquitto to listen again");
    }

    /// Kills the broker (SIGKILL), as a crash would; [`Mosquitto::start_again`] brings it back.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts the broker again on the same port and state folder after [`Mosquitto::kill`].
    pub fn start_again(&mut self) {
        self.proc = Self::spawn(&self.conf, &self.dir);
        wait_for_port(self.port, "mosquitto to listen again");
    }
}

/// A real VictoriaMetrics, written to through its InfluxDB v2 write API.
pub struct Victoria {
    pub port: u16,
    pub proc: Proc,
    dir: PathBuf,
}

impl Victoria {
    pub fn start(dir: &Path) -> Victoria {
        let port = free_port();
        let proc = Self::spawn(dir, port);
        wait_for_port(port, "victoria-metrics to listen");
        Victoria { port, proc, dir: dir.to_path_buf() }
    }

    /// Kills it (if running) and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = Self::spawn(&self.dir, self.port);
        wait_for_port(self.port, "victoria-metrics to listen again");
    }

    fn spawn(dir: &Path, port: u16) -> Proc {
        let bin = find_program("victoria-metrics", "apt-get install -y victoria-metrics");
        let data = dir.join("vm-data");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", data.display()))
            // InfluxDB keeps one point per series and timestamp; VictoriaMetrics needs this for it.
            .arg("-dedup.minScrapeInterval=1ms")
            .arg("-retentionPeriod=100y");
        Proc::spawn("victoria-metrics", cmd, dir)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every series whose name matches `name_regex`, from `/api/v1/export` (one JSON per line).
    pub fn export(&self, name_regex: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v1/export", self.url());
        let selector = format!("{{__name__=~\"{name_regex}\"}}");
        let body = match ureq::post(&url).send_form(&[("match[]", selector.as_str())]) {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(e) => panic!("victoria-metrics export: {e}"),
        };
        body.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// The path of one of the workspace's binaries (`gateway`, `ingest`, `rules`), built once per
/// test run with the profile the tests were built with.
pub fn binary(name: &str) -> PathBuf {
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // Tests run from target/<profile>/deps, tools (the load test) from target/<profile>.
        let parent = exe.parent().expect("executable folder");
        let profile_dir =
            if parent.ends_with("deps") { parent.parent().unwrap_or(parent) } else { parent }.to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build", "--quiet", "-p", "gateway", "-p", "ingest", "-p", "rules", "-p", "demo", "--bins",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        profile_dir
    });
    dir.join(name)
}

/// One received MQTT message.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Subscribes to `filters` and records every message in arrival order.
pub struct Recorder {
    pub messages: Arc<Mutex<Vec<Message>>>,
    /// Owns the recorder's client task; dropping it stops the task.
    _runtime: tokio::runtime::Runtime,
}

impl Recorder {
    pub fn start(port: u16, client_id: &str, filters: &[&str]) -> Recorder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let messages: Arc<Mutex<Vec<Message>>> = Arc::default();
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_max_packet_size(1024 * 1024, 1024 * 1024).set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (msgs, subs) = (messages.clone(), subscribed.clone());
        runtime.spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                        let (client, filters) = (client.clone(), filters.clone());
                        tokio::spawn(async move {
                            for f in filters {
                                let _ = client.subscribe(f, rumqttc::QoS::AtLeastOnce).await;
                            }
                        });
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        subs.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        msgs.lock().expect("lock").push(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        wait_for(Duration::from_secs(10), "the recorder to subscribe", || {
            subscribed.load(std::sync::atomic::Ordering::SeqCst).then_some(())
        });
        Recorder { messages, _runtime: runtime }
    }

    pub fn snapshot(&self) -> Vec<Message> {
        self.messages.lock().expect("lock").clone()
    }
}

/// Reading `seq` of session `sid` of water meter `wm-load-{device}`, its total `increase` above
/// the meter's starting figure.
pub fn load_reading(
    gateway: &str,
    device: usize,
    (sid, seq): (u64, u64),
    ts: i64,
    increase: f64,
) -> telemetry::Reading {
    telemetry::Reading::new(gateway, &format!("wm-load-{device:04}"), "water_meter", sid, seq, ts)
        .with_value("forward_total_m3", 1000.0 + device as f64 + increase)
        .with_value("battery_v", 3.6)
}

/// Publishes `per_device` readings for each of `devices` water meters of gateway `gateway`
/// at QoS 1, as a gateway would, and returns them once the broker has acknowledged every one.
/// Timestamps are one second apart, starting an hour ago, so they are distinct per device.
pub fn publish_readings(
    port: u16,
    gateway: &str,
    devices: usize,
    per_device: usize,
    pace: Duration,
) -> Vec<telemetry::Reading> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let start = now - 3_600_000;
    let mut readings = Vec::new();
    for i in 0..per_device {
        for d in 0..devices {
            readings.push(load_reading(
                gateway,
                d,
                (start as u64, i as u64),
                start + i as i64 * 1000,
                i as f64 * 0.125,
            ));
        }
    }
    let topics = telemetry::Topics::default();
    let to_send = readings.clone();
    runtime.block_on(async move {
        let mut options = rumqttc::MqttOptions::new(format!("{gateway}-load"), "127.0.0.1", port);
        options.set_clean_session(false).set_keep_alive(Duration::from_secs(10)).set_inflight(100);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
        let total = to_send.len();
        let publisher = tokio::spawn(async move {
            for r in &to_send {
                let topic = topics.telemetry(16, &r.gateway, &r.device);
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, telemetry::encode(r))
                    .await
                    .expect("publish");
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
        });
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while acked < total {
            let event = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .expect("all readings acknowledged in time");
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("load publisher: {e}"),
            }
        }
        publisher.await.expect("publisher task");
    });
    readings
}

/// Publishes `readings` at QoS 1 as `client_id` and returns once the broker acknowledged all.
pub fn publish(port: u16, client_id: &str, readings: &[telemetry::Reading]) {
    let topics = telemetry::Topics::default();
    let messages = readings
        .iter()
        .map(|r| (topics.telemetry(16, &r.gateway, &r.device), telemetry::encode(r)))
        .collect();
    publish_raw(port, client_id, messages);
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// `(device, ts) → values` of one series name from a VictoriaMetrics export, and the number of
/// samples returned (more than the map holds means duplicates were stored).
pub fn stored_points(vm: &Victoria, series: &str) -> (std::collections::BTreeMap<(String, i64), f64>, usize) {
    let mut points = std::collections::BTreeMap::new();
    let mut samples = 0;
    for s in vm.export(series) {
        let device = s["metric"]["device"].as_str().unwrap_or_default().to_string();
        let values = s["values"].as_array().cloned().unwrap_or_default();
        let stamps = s["timestamps"].as_array().cloned().unwrap_or_default();
        for (v, t) in values.iter().zip(&stamps) {
            samples += 1;
            points.insert((device.clone(), t.as_i64().unwrap_or_default()), v.as_f64().unwrap_or(f64::NAN));
        }
    }
    (points, samples)
}

/// Kills a process with SIGKILL, as a crash would.
pub fn kill_9(proc: &mut Proc) {
    let _ = Command::new("kill").arg("-9").arg(proc.child.id().to_string()).status();
    let _ = proc.child.wait();
}

/// Writes `config` to `{dir}/{name}.toml`, starts `ingest run` with it and waits until it has
/// subscribed (or found its persistent session), so nothing published later is missed.
pub fn start_ingest(dir: &Path, name: &str, config: &str) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("ingest config");
    let mut cmd = Command::new(binary("ingest"));
    cmd.arg("run").arg("--config").arg(&path);
    let p = Proc::spawn(name, cmd, dir);
    wait_for(Duration::from_secs(20), "ingest to subscribe", || {
        let out = p.output();
        (out.contains("subscribed") || out.contains("session present: true")).then_some(())
    });
    p
}

/// Publishes raw `(topic, payload)` messages in order at QoS 1 as `client_id` (any size up to
/// the MQTT maximum, garbage included) and returns once the broker acknowledged all.
pub fn publish_raw(port: u16, client_id: &str, messages: Vec<(String, Vec<u8>)>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10)).set_max_packet_size(268_435_455, 268_435_455);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
        let total = messages.len();
        // Publishing while the event loop runs: more than the request queue holds would
        // otherwise wait for a loop nobody polls.
        let sender = client.clone();
        let publisher = tokio::spawn(async move {
            for (topic, payload) in messages {
                sender.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.expect("publish");
            }
        });
        let mut acked = 0;
        while acked < total {
            let event =
                tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await.expect("acks in time");
            if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = event {
                acked += 1;
            }
        }
        publisher.await.expect("publisher task");
        let _ = client.disconnect().await;
    });
}

/// The value of one sample line (`name{labels} value`) on ingest's `/metrics` at `http`.
pub fn metric(http: u16, sample: &str) -> Option<f64> {
    let text = ureq::get(&format!("http://127.0.0.1:{http}/metrics")).call().ok()?.into_string().ok()?;
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}
