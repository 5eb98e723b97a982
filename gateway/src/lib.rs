//! The edge gateway: polls Modbus devices and publishes their readings over MQTT.
//!
//! Module map, in the order data flows:
//! - [`config`]: `gateway.toml` (site, MQTT, lines, devices) with `GATEWAY_*` env overrides;
//!   `build()` loads the profiles and plans each device.
//! - [`line`]: a `[[line]]`'s transport (`tcp`, `rtu`, `rtu-over-tcp`), its keys checked, the
//!   RTU silent interval. Pure.
//! - [`profile`]: equipment models' register maps and firmware limits (`deploy/profiles/`).
//! - [`planner`]: a profile's points to the fewest read requests.
//! - [`transport`]: opens a line (TCP, serial port, TCP to a DTU) as a tokio-modbus context.
//! - [`bus`]: one task per line: connect, poll each device at its interval, decode.
//! - [`register`]: words and bits to point values (and back, for the simulator). Pure.
//! - [`publisher`]: readings and status to MQTT at QoS 1; birth, last will, device health.
//! - [`sim`]: `gateway sim`, simulated equipment of four kinds over Modbus TCP, RTU over TCP or
//!   RTU on a serial device.

pub mod bus;
pub mod config;
pub mod line;
pub mod planner;
pub mod profile;
pub mod publisher;
pub mod register;
pub mod sim;
pub mod transport;

use std::time::Duration;

use tokio::sync::watch;

pub use config::GatewayConfig;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("mqtt: {0}")]
    Mqtt(String),
}

/// Runs the gateway until `shutdown` turns true, then flushes what the broker has not yet
/// acknowledged (for a few seconds at most) and says goodbye.
pub async fn run(cfg: GatewayConfig, shutdown: watch::Receiver<bool>) -> Result<(), RunError> {
    let session = bus::now_ms() as u64;
    let lines = cfg.build()?;
    let (publisher, eventloop, birth) = publisher::Publisher::new(&cfg, session).map_err(RunError::Mqtt)?;
    let (driver_stop, driver_rx) = watch::channel(false);
    let driver = tokio::spawn(publisher::drive(eventloop, publisher.clone(), birth.clone(), driver_rx));
    let devices: usize = lines.iter().map(|l| l.devices.len()).sum();
    tracing::info!(
        "gateway {} polling {devices} devices on {} lines (session {session})",
        cfg.gateway.id,
        lines.len()
    );
    let pollers: Vec<_> = lines
        .into_iter()
        .map(|line| tokio::spawn(bus::run_line(line, publisher.clone(), session, shutdown.clone())))
        .collect();
    for p in pollers {
        let _ = p.await;
    }
    if !publisher.flush(Duration::from_secs(5)).await {
        tracing::warn!("stopping with readings the broker has not acknowledged");
    }
    publisher.goodbye(&birth).await;
    let _ = driver_stop.send(true);
    let _ = driver.await;
    Ok(())
}
