//! What the polling tests share: the simulated fleet at a frozen time, a line config that
//! reaches it, polling every device of a line, the exact checks of decoded values against the
//! model, and real serial lines (a socat pty pair) and child processes killed on drop.
//! [`broker`]: a real Mosquitto, an MQTT collector and the `gateway` binary.

// Each test file uses its own part of this module.
#![allow(dead_code)]

pub mod broker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::bus::{open, poll_device};
use gateway::config::{Line, Link};
use gateway::sim::{SimDevice, SimPlan, Simulator, KIND_PROFILES};
use gateway::GatewayConfig;
use telemetry::{Reading, Value};

pub const FROZEN_AT: i64 = 1_795_000_000_000;

/// Two devices of every kind; faults from `fault_delay` on, for 30 s of every minute.
pub fn plan(fault_delay: Duration) -> SimPlan {
    SimPlan {
        counts: KIND_PROFILES.iter().map(|(k, _)| (k.to_string(), 2)).collect(),
        fault_period: Duration::from_secs(60),
        fault_duration: Duration::from_secs(30),
        fault_delay,
        fault_stagger: Duration::ZERO,
    }
}

/// The simulator answering as at [`FROZEN_AT`]: no fault for an hour, or faulty from the start.
pub fn frozen_sim(fault: bool) -> Simulator {
    let delay = if fault { Duration::ZERO } else { Duration::from_secs(3600) };
    Simulator::new(&plan(delay), FROZEN_AT).unwrap().frozen_at(FROZEN_AT)
}

/// The line `sim` of the config the simulator writes for `link`, with `extra` TOML appended.
pub fn sim_line(sim: &Simulator, link: &Link, extra: &str) -> Line {
    let text = sim.gateway_config_on("gw-t", link, "mqtt://127.0.0.1:1", Duration::from_secs(1)) + extra;
    GatewayConfig::from_toml(&text).unwrap().build().unwrap().remove(0)
}

/// Polls every device of `line` once, in order, on one connection (opened as the bus would).
pub async fn poll_line(line: &Line) -> Vec<Reading> {
    let mut ctx = open(&line.link, &line.config).await.unwrap();
    let mut readings = Vec::new();
    for d in &line.devices {
        let mut r = Reading::new("gw-t", &d.config.id, &d.profile.kind, 1, 0, FROZEN_AT);
        poll_device(&mut ctx, &line.config, d, &mut r).await.unwrap();
        readings.push(r);
    }
    readings
}

/// Every point of `d` decoded in `r` to the value its model serves at [`FROZEN_AT`].
pub fn check_device(d: &SimDevice, r: &Reading, fault: bool) {
    assert_eq!(r.device, d.id);
    assert!(r.errors.is_empty(), "{}: {:?}", d.id, r.errors);
    assert_eq!(d.faults.active(FROZEN_AT), fault);
    for (name, want) in d.model.sample(d.index, FROZEN_AT, fault) {
        let point = d.profile.points.iter().find(|p| p.name == name).unwrap();
        let got = r.values.get(name).unwrap_or_else(|| panic!("{}: no {name}", d.id));
        if point.table.is_bits() {
            assert_eq!(got, &Value::Bool(want != 0.0), "{} {name}", d.id);
            continue;
        }
        // The model's value after the register's resolution (scale, integer or f32).
        let served =
            gateway::register::decode_registers(point, &gateway::register::encode_registers(point, want));
        assert_eq!(got, &served[0].1, "{} {name}: model {want}", d.id);
        if point.data_type.is_integer() && point.scale == 1.0 {
            assert!(matches!(got, Value::Int(_)), "{} {name} is an integer", d.id);
        }
        let tolerance = point.scale.abs().max(want.abs() * 1e-6);
        assert!((got.as_f64().unwrap() - want).abs() <= tolerance, "{} {name}: {got} vs {want}", d.id);
    }
    for (name, want) in d.model.text(d.index) {
        assert_eq!(r.values.get(name), Some(&Value::Text(want)), "{} {name}", d.id);
    }
    for p in &d.profile.points {
        for bit_name in p.bits.values() {
            assert!(matches!(r.values.get(bit_name), Some(Value::Bool(_))), "{} {bit_name}", d.id);
        }
    }
}

/// [`check_device`] for every simulated device, one reading each, in unit order.
pub fn check(sim: &Simulator, readings: &[Reading], fault: bool) {
    assert_eq!(readings.len(), sim.devices().count());
    for (d, r) in sim.devices().zip(readings) {
        check_device(d, r, fault);
    }
}

/// The values a fault shows, one per kind.
pub fn check_fault_values(readings: &[Reading]) {
    let value =
        |dev: &str, name: &str| readings.iter().find(|r| r.device == dev).unwrap().values[name].clone();
    assert_eq!(value("elev-0001", "fault_code"), Value::Int(5));
    assert_eq!(value("boiler-0001", "over_pressure"), Value::Bool(true));
    assert_eq!(value("wm-0002", "leak"), Value::Bool(true));
    assert_eq!(value("pile-0001", "fault_code"), Value::Int(5));
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gw-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `ready` holds, polling every 10 ms, or panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A serial line made of two ptys joined by socat: the simulator opens `sim`, the gateway
/// `gw`. Killed on drop, which removes the links.
pub struct PtyPair {
    pub sim: PathBuf,
    pub gw: PathBuf,
    // Dropped in this order: socat first, then its folder.
    _socat: ChildGuard,
    _dir: TempDir,
}

impl PtyPair {
    pub fn start(name: &str) -> PtyPair {
        let dir = TempDir::new(name);
        let (sim, gw) = (dir.0.join("sim"), dir.0.join("gw"));
        let log_path = dir.0.join("socat.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", sim.display()))
            .arg(format!("pty,raw,echo=0,link={}", gw.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => ChildGuard(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("socat is not installed; the RTU tests need it: apt-get install -y socat")
            }
            Err(e) => panic!("start socat: {e}"),
        };
        let mut socat = child;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(sim.exists() && gw.exists()) {
            if let Ok(Some(status)) = socat.0.try_wait() {
                panic!("socat exited ({status}): {}", read(&log_path));
            }
            assert!(Instant::now() < deadline, "socat made no pty pair in 10 s: {}", read(&log_path));
            std::thread::sleep(Duration::from_millis(10));
        }
        PtyPair { sim, gw, _socat: socat, _dir: dir }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
