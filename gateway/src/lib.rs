//! The edge gateway: polls Modbus devices and publishes their readings over MQTT; nothing is
//! lost while the broker is away (readings wait in a spool on disk) and a bad device never
//! holds up its neighbours (backoff, quarantine, narrowing of refused addresses).
//!
//! Module map, in the order data flows:
//! - [`config`]: `gateway.toml` (site, MQTT, spool, lines, devices) with `GATEWAY_*` env
//!   overrides; `build()` loads the profiles and plans each device.
//! - [`line`]: a `[[line]]`'s transport (`tcp`, `rtu`, `rtu-over-tcp`), its keys checked, the
//!   RTU silent interval. Pure.
//! - [`profile`] (from `telemetry`): equipment models' register maps, firmware limits and
//!   pauses (`deploy/profiles/`); [`profile_toml`] writes a profile back; [`csv_import`]:
//!   register sheets (CSV) to profiles (`gateway import-csv`). Pure.
//! - [`planner`]: a profile's points (or one point group's) to the fewest read requests
//!   (around refused points). Pure.
//! - [`transport`]: opens a line (TCP, serial port, TCP to a DTU) as a tokio-modbus context,
//!   or as a [`pipelined`] Modbus TCP connection ([`mbap`] frames, pure) with several reads in
//!   flight; [`transport_error`]: why a line failed, either way.
//! - [`bus`]: one task per line: connect, poll each device's point groups when due, keep its
//!   health; a thin async shell around pure steps (booking a poll, a line's reopen backoff),
//!   tested on a paused clock. [`schedule`]: each group's slots, staggered across devices, overruns. Pure.
//! - [`poll`]: one poll of one device, narrowing refused requests on the spot.
//! - [`health`]: retry backoff, quarantine and probing per device. Pure.
//! - [`narrow`]: bisecting a refused request; a device's plan around its bad points. Pure.
//! - [`register`]: words and bits to point values (and back, for the simulator). Pure.
//! - [`values`]: one poll's values by point, written straight to the payload. Pure.
//! - [`spool`]: the `[spool]` section and the disk queue every reading goes through;
//!   [`recent`]: its newest records in memory, with each one's topic. Pure.
//! - [`publisher`]: the MQTT client: the event-loop task, status messages, birth, last will.
//! - [`inflight`]: which spool record each publish carries, up to its PUBACK. Pure.
//! - [`sender`]: the spool to MQTT in order, replays marked, acknowledged only after PUBACK.
//! - [`sim`]: `gateway sim`, simulated equipment of five kinds over Modbus TCP, RTU over TCP or
//!   RTU on a serial device, with dead, slow and refusing units on demand.

pub mod bus;
pub mod config;
pub mod csv_import;
pub mod health;
pub mod inflight;
pub mod line;
pub mod mbap;
pub mod narrow;
pub mod pipelined;
pub mod planner;
pub mod poll;
pub mod profile_toml;
pub mod publisher;
pub mod recent;
pub mod register;
pub mod schedule;
pub mod sender;
pub mod sim;
pub mod spool;
pub mod transport;
pub mod transport_error;
pub mod values;

/// Profiles are a contract the rules check against too: they live in `telemetry`.
pub use telemetry::profile;

use std::time::Duration;

use tokio::sync::watch;

pub use config::GatewayConfig;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("mqtt: {0}")]
    Mqtt(String),
    #[error(transparent)]
    Spool(#[from] spool::OpenError),
}

/// The runtime `gateway run` runs on: one thread. The gateway mostly waits (on devices, the
/// broker, timers); its file work goes to tokio's blocking pool. One thread spares the
/// hand-offs and wake-ups between worker threads that cost more than the work itself at
/// thousands of Modbus round trips a second.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Runs the gateway until `shutdown` turns true, then sends what the broker has not yet
/// acknowledged (for a few seconds at most; the rest stays in the spool for the next start)
/// and says goodbye.
pub async fn run(cfg: GatewayConfig, shutdown: watch::Receiver<bool>) -> Result<(), RunError> {
    let session = telemetry::now_ms() as u64;
    let lines = cfg.build()?;
    let dir = cfg.spool_dir();
    if cfg.spool.dir.is_none() {
        tracing::info!("no [spool] dir configured: spooling to {}", dir.display());
    }
    let spool_cfg = cfg.spool.spool_config();
    let open_dir = dir.clone();
    let spool =
        match tokio::task::spawn_blocking(move || spool::SpoolHandle::open(&open_dir, spool_cfg)).await {
            Ok(opened) => opened?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
    let waiting = spool.pending();
    if waiting > 0 {
        tracing::info!("spool {}: {waiting} readings from before wait for the broker", dir.display());
    }
    let (publisher, eventloop) =
        publisher::Publisher::new(&cfg, &lines, session, spool.clone()).map_err(RunError::Mqtt)?;
    let (stop, stop_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(publisher::drive(eventloop, publisher.clone(), stop_rx.clone())),
        tokio::spawn(sender::send(publisher.clone(), stop_rx.clone())),
        tokio::spawn(spool::keep(spool.clone(), stop_rx.clone())),
    ];
    // The periodic status stops with the pollers, so it never follows the goodbye.
    let reporter =
        tokio::spawn(publisher::report(publisher.clone(), cfg.gateway.status_every, shutdown.clone()));
    let devices: usize = lines.iter().map(|l| l.devices.len()).sum();
    tracing::info!(
        "gateway {} polling {devices} devices on {} lines (session {session})",
        cfg.gateway.id,
        lines.len()
    );
    let options =
        bus::BusOptions { status_every: cfg.gateway.status_every, policy: health::HealthPolicy::default() };
    let pollers: Vec<_> = lines
        .into_iter()
        .map(|line| tokio::spawn(bus::run_line(line, publisher.clone(), options, shutdown.clone())))
        .collect();
    for p in pollers {
        let _ = p.await;
    }
    let _ = reporter.await;
    if !publisher.flush(Duration::from_secs(5)).await {
        tracing::warn!(
            "stopping with {} readings the broker has not acknowledged; they are sent at the next start",
            spool.pending()
        );
    }
    publisher.goodbye().await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let r = publisher.report();
    tracing::info!(
        "stopped: spooled {}, sent {}, acked {}, replayed {}, dropped {} (full) {} (age), {} left in the spool",
        r.spool.spooled,
        r.sent,
        r.spool.acked,
        r.replayed,
        r.spool.dropped_full,
        r.spool.dropped_age,
        spool.pending()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo spawns the gateway on its runtime: the future must be `Send`.
    #[test]
    fn run_can_be_spawned() {
        fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
        let sim = sim::Simulator::new(&sim::SimPlan::without_faults(&[("boiler", 1)]), 0).unwrap();
        let text = sim.gateway_config(
            "gw-send",
            "127.0.0.1:5020".parse().unwrap(),
            "mqtt://127.0.0.1:1",
            Duration::from_secs(1),
        );
        let cfg = GatewayConfig::from_toml(&text).unwrap();
        spawnable(run(cfg, watch::channel(false).1));
    }
}
