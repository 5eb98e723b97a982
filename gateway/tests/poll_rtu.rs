//! The poller against the simulator over Modbus RTU: on a real serial line (a socat pty
//! pair, the simulator on one end, the gateway on the other) and as RTU frames over TCP (a
//! DTU). Every point decodes to the exact value the model serves; a unit nobody answers for
//! times out within the line timeout, and a fresh connection then polls on.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    check, check_device, check_fault_values, frozen_sim, poll_line, sim_line, wait_for, ChildGuard, PtyPair,
    TempDir, FROZEN_AT,
};
use gateway::bus::{connect, poll_device, TransportError};
use gateway::config::{Line, Link, SerialFrame};
use gateway::sim::{SerialDevice, Simulator};
use gateway::GatewayConfig;
use telemetry::Reading;
use tokio::sync::watch;

/// Serves `sim` as RTU on the pty pair's simulator end; the returned sender stops it.
fn serve_on_pty(pty: &PtyPair, sim: &Arc<Simulator>) -> watch::Sender<bool> {
    let port = SerialDevice::open(pty.sim.to_str().unwrap(), 9600).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve_serial(port, sim.clone(), stop_rx));
    stop
}

fn pty_link(pty: &PtyPair) -> Link {
    Link::Rtu { port: pty.gw.to_str().unwrap().to_string(), frame: SerialFrame::default() }
}

/// Serves `sim` as RTU over TCP on a free loopback port; the sender stops it.
async fn serve_rtu_over_tcp(sim: &Arc<Simulator>) -> (Link, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve_rtu_over_tcp(listener, sim.clone(), stop_rx));
    (Link::RtuOverTcp { address }, stop)
}

#[tokio::test]
async fn rtu_on_a_serial_line_decodes_every_kind() {
    let pty = PtyPair::start("rtu-values");
    let sim = Arc::new(frozen_sim(false));
    let _stop = serve_on_pty(&pty, &sim);
    let line = sim_line(&sim, &pty_link(&pty), "");
    assert_eq!(line.config.effective_silent_interval(), Duration::from_micros(3646), "9600 8N1");
    let readings = poll_line(&line).await;
    assert_eq!(readings.len(), 8);
    check(&sim, &readings, false);
}

#[tokio::test]
async fn rtu_on_a_serial_line_shows_faults() {
    let pty = PtyPair::start("rtu-faults");
    let sim = Arc::new(frozen_sim(true));
    let _stop = serve_on_pty(&pty, &sim);
    let readings = poll_line(&sim_line(&sim, &pty_link(&pty), "")).await;
    check(&sim, &readings, true);
    check_fault_values(&readings);
}

#[tokio::test]
async fn rtu_over_tcp_decodes_every_kind() {
    let sim = Arc::new(frozen_sim(false));
    let (link, _stop) = serve_rtu_over_tcp(&sim).await;
    let readings = poll_line(&sim_line(&sim, &link, "")).await;
    assert_eq!(readings.len(), 8);
    check(&sim, &readings, false);
}

#[tokio::test]
async fn rtu_over_tcp_shows_faults() {
    let sim = Arc::new(frozen_sim(true));
    let (link, _stop) = serve_rtu_over_tcp(&sim).await;
    let readings = poll_line(&sim_line(&sim, &link, "")).await;
    check(&sim, &readings, true);
    check_fault_values(&readings);
}

/// A device at unit 99, which no simulated device has: on RTU nothing answers it.
const GHOST: &str = r#"
[[device]]
id = "ghost-0001"
line = "sim"
unit = 99
profile = "elevator-box-v1"
"#;

const LINE_TIMEOUT: Duration = Duration::from_millis(300);

/// Polls the ghost (a timeout naming device, unit, table and address, within the line
/// timeout), drops the connection, and polls the first real device on a fresh one.
async fn silent_unit_times_out_then_a_fresh_connection_polls_on(sim: &Simulator, link: &Link) {
    let mut line: Line = sim_line(sim, link, GHOST);
    line.config.timeout = LINE_TIMEOUT;
    let ghost = line.devices.iter().find(|d| d.config.unit == 99).unwrap();
    let mut ctx = connect(&line.link, Duration::from_secs(2)).await.unwrap();
    let mut reading = Reading::new("gw-t", "ghost-0001", "elevator", 1, 0, FROZEN_AT);
    let started = Instant::now();
    let err = poll_device(&mut ctx, &line.config, ghost, &mut reading).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err.cause, TransportError::Timeout(t) if t == LINE_TIMEOUT), "{err}");
    assert!(took >= LINE_TIMEOUT && took < LINE_TIMEOUT * 2, "took {took:?}");
    let first = &ghost.plan[0];
    assert_eq!(
        err.to_string(),
        format!(
            "device ghost-0001 (unit 99) on line sim: {} {}..{}: timeout after 300ms",
            first.table.name(),
            first.start,
            first.end()
        )
    );
    assert!(reading.values.is_empty(), "{:?}", reading.values);
    // As the bus task does: the context is dropped after a timeout, never reused.
    drop(ctx);

    let mut ctx = reconnect(&line.link).await;
    let device = &line.devices[0];
    let mut reading = Reading::new("gw-t", &device.config.id, &device.profile.kind, 1, 0, FROZEN_AT);
    poll_device(&mut ctx, &line.config, device, &mut reading).await.unwrap();
    check_device(sim.devices().next().unwrap(), &reading, false);
}

/// Opens `link` again after the last connection was dropped. Other tests in this process
/// spawn children (socat, `gateway sim`); a child forked before it execs holds a copy of
/// every open descriptor, so for that instant the serial port's flock is still held and the
/// open fails with "Unable to acquire exclusive lock". The gateway itself never forks, so
/// only the test waits the instant out.
async fn reconnect(link: &Link) -> gateway::transport::Connection {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match connect(link, Duration::from_secs(2)).await {
            Ok(ctx) => return ctx,
            Err(e) if Instant::now() < deadline && e.to_string().contains("exclusive lock") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn rtu_on_a_serial_line_times_out_on_a_silent_unit_and_recovers() {
    let pty = PtyPair::start("rtu-timeout");
    let sim = Arc::new(frozen_sim(false));
    let _stop = serve_on_pty(&pty, &sim);
    silent_unit_times_out_then_a_fresh_connection_polls_on(&sim, &pty_link(&pty)).await;
}

#[tokio::test]
async fn rtu_over_tcp_times_out_on_a_silent_unit_and_recovers() {
    let sim = Arc::new(frozen_sim(false));
    let (link, _stop) = serve_rtu_over_tcp(&sim).await;
    silent_unit_times_out_then_a_fresh_connection_polls_on(&sim, &link).await;
}

/// Runs `gateway sim` with `args` and `--write-config`, waits for the config it writes, and
/// polls every device of it: all points read, no errors (the clock runs, so values are not
/// checked exactly; the tests above do that).
async fn poll_the_sim_binary(dir: &TempDir, args: &[&str]) {
    let config = dir.0.join("gateway.toml");
    let log_path = dir.0.join("sim.log");
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("sim")
        .args(args)
        .args(["--write-config", config.to_str().unwrap(), "--fault-duration", "0s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    wait_for("gateway sim to write its config", Duration::from_secs(10), || {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "gateway sim exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        config.exists()
    });
    let cfg = GatewayConfig::load(&config).unwrap();
    let line = cfg.build().unwrap().remove(0);
    let readings = poll_line(&line).await;
    assert_eq!(readings.len(), 6, "2 elevators, 1 boiler, 2 water meters, 1 charging pile");
    for (d, r) in line.devices.iter().zip(&readings) {
        assert!(r.errors.is_empty(), "{}: {:?}", d.config.id, r.errors);
        for p in &d.profile.points {
            assert!(r.values.contains_key(&p.name), "{}: no {}", d.config.id, p.name);
        }
    }
}

#[tokio::test]
async fn sim_binary_serves_rtu_on_a_serial_line_and_writes_a_config_for_the_other_end() {
    let pty = PtyPair::start("sim-binary-serial");
    let dir = TempDir::new("sim-binary-serial-cfg");
    let (sim_end, gw_end) = (pty.sim.to_str().unwrap(), pty.gw.to_str().unwrap());
    poll_the_sim_binary(&dir, &["--serial", sim_end, "--baud", "19200", "--client-port", gw_end]).await;
    let cfg = GatewayConfig::load(&dir.0.join("gateway.toml")).unwrap();
    let frame = SerialFrame { baud: 19200, ..SerialFrame::default() };
    assert_eq!(cfg.build().unwrap()[0].link, Link::Rtu { port: gw_end.to_string(), frame });
}

#[tokio::test]
async fn sim_binary_serves_rtu_over_tcp_and_writes_a_config_for_it() {
    let dir = TempDir::new("sim-binary-rtu-over-tcp");
    poll_the_sim_binary(&dir, &["--rtu-over-tcp", "--listen", "127.0.0.1:0"]).await;
    let cfg = GatewayConfig::load(&dir.0.join("gateway.toml")).unwrap();
    assert!(matches!(cfg.build().unwrap()[0].link, Link::RtuOverTcp { .. }));
    assert_eq!(cfg.spool_dir(), dir.0.join("spool"), "the written config's spool is beside it");
}
