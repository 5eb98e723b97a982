//! One poller per line: it owns the line's Modbus connection (TCP, serial RTU or RTU over
//! TCP, opened by [`crate::transport`]), polls every device on it at its interval (staggered
//! so devices do not all fire at once) and hands each reading to the publisher. Requests on a
//! line are strictly one at a time, each after the line's silent interval: on a serial bus
//! this one task serializes every slave.

use std::time::{Duration, Instant as StdInstant};

use telemetry::Reading;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::{Reader, Slave, SlaveContext};

use crate::config::{Device, Line, LineConfig};
use crate::planner::ReadRequest;
use crate::profile::Table;
use crate::publisher::{DeviceStatus, Publisher};
use crate::register::decode_block;
pub use crate::transport::{connect, ConnectError, TransportError};

/// How often device health is republished when nothing changes.
const STATUS_EVERY: Duration = Duration::from_secs(30);

struct DeviceState {
    device: Device,
    next_due: Instant,
    seq: u64,
    status: DeviceStatus,
    status_sent: Option<Instant>,
}

/// What one request came back with.
enum Answer {
    Data(Vec<u16>),
    /// The device answered with a Modbus exception: the link is fine, the points are not.
    Exception(String),
    /// We could not talk: timeout or transport error. The connection must be dropped.
    Transport(TransportError),
}

/// A poll that stopped because we could not talk to the device; the connection must be
/// dropped. (A Modbus exception is not one: it goes into the reading's `errors`.)
#[derive(Debug, thiserror::Error)]
#[error("device {device} (unit {unit}) on line {line}: {table} {start}..{end}: {cause}")]
pub struct PollError {
    pub device: String,
    pub unit: u8,
    pub line: String,
    pub table: &'static str,
    pub start: u16,
    pub end: u32,
    pub cause: TransportError,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn read(ctx: &mut Context, req: &ReadRequest, limit: Duration) -> Answer {
    let bits = |v: Vec<bool>| v.into_iter().map(u16::from).collect::<Vec<_>>();
    let result = match req.table {
        Table::Coil => {
            timeout(limit, ctx.read_coils(req.start, req.count)).await.map(|r| r.map(|r| r.map(bits)))
        }
        Table::Discrete => timeout(limit, ctx.read_discrete_inputs(req.start, req.count))
            .await
            .map(|r| r.map(|r| r.map(bits))),
        Table::Input => timeout(limit, ctx.read_input_registers(req.start, req.count)).await,
        Table::Holding => timeout(limit, ctx.read_holding_registers(req.start, req.count)).await,
    };
    match result {
        Ok(Ok(Ok(words))) => Answer::Data(words),
        Ok(Ok(Err(code))) => Answer::Exception(format!("exception {}: {code}", u8::from(code))),
        Ok(Err(e)) => Answer::Transport(e.into()),
        Err(_) => Answer::Transport(TransportError::Timeout(limit)),
    }
}

/// Reads every planned request of `device` into `reading`: values decoded, Modbus exceptions
/// as point errors. Each request waits for the line's silent interval first and for its
/// answer at most the line's timeout. A transport error or timeout stops the poll and is
/// returned: the caller must drop the connection (a late answer would be taken for the next
/// request's).
pub async fn poll_device(
    ctx: &mut Context,
    line: &LineConfig,
    device: &Device,
    reading: &mut Reading,
) -> Result<(), PollError> {
    ctx.set_slave(Slave(device.config.unit));
    let silent_interval = line.effective_silent_interval();
    for req in &device.plan {
        if !silent_interval.is_zero() {
            tokio::time::sleep(silent_interval).await;
        }
        match read(ctx, req, line.timeout).await {
            Answer::Data(words) => reading.values.extend(decode_block(&device.profile, req, &words)),
            Answer::Exception(why) => {
                tracing::warn!(
                    "device {} (unit {}) on line {}: {} {}..{}: {why}",
                    device.config.id,
                    device.config.unit,
                    line.name,
                    req.table.name(),
                    req.start,
                    req.end()
                );
                for &i in &req.points {
                    reading.errors.insert(device.profile.points[i].name.clone(), why.clone());
                }
            }
            Answer::Transport(cause) => {
                let e = PollError {
                    device: device.config.id.clone(),
                    unit: device.config.unit,
                    line: line.name.clone(),
                    table: req.table.name(),
                    start: req.start,
                    end: req.end(),
                    cause,
                };
                tracing::warn!("{e}; reconnecting");
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Polls every device on `line` until `shutdown` turns true.
pub async fn run_line(line: Line, publisher: Publisher, session: u64, mut shutdown: watch::Receiver<bool>) {
    let cfg = line.config.clone();
    let link = line.link.clone();
    let n = line.devices.len().max(1) as u32;
    let start = Instant::now();
    let mut devices: Vec<DeviceState> = line
        .devices
        .into_iter()
        .enumerate()
        .map(|(i, device)| DeviceState {
            next_due: start + device.config.interval * i as u32 / n,
            device,
            seq: 0,
            status: DeviceStatus {
                online: false,
                ts: 0,
                last_error: None,
                rtt_ms: 0,
                polls: 0,
                failed_polls: 0,
                overruns: 0,
            },
            status_sent: None,
        })
        .collect();
    if devices.is_empty() {
        return;
    }
    let mut ctx: Option<Context> = None;
    let mut last_connect_error: Option<String> = None;
    loop {
        let Some(d) = devices.iter_mut().min_by_key(|d| d.next_due) else { return };
        tokio::select! {
            _ = tokio::time::sleep_until(d.next_due) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let interval = d.device.config.interval;
        d.next_due += interval;
        let now = Instant::now();
        if d.next_due < now {
            let missed = ((now - d.next_due).as_nanos() / interval.as_nanos()) as u32 + 1;
            d.status.overruns += missed as u64;
            d.next_due += interval * missed;
        }

        let ts = now_ms();
        let started = StdInstant::now();
        let mut reading = Reading::new(
            publisher.gateway(),
            &d.device.config.id,
            &d.device.profile.kind,
            session,
            d.seq,
            ts,
        );
        let mut transport_error = None;
        if ctx.is_none() {
            match connect(&link, cfg.timeout).await {
                Ok(c) => {
                    last_connect_error = None;
                    ctx = Some(c);
                }
                Err(e) => {
                    let why = e.to_string();
                    // Once per distinct failure, not once per poll while the line is down.
                    if last_connect_error.as_ref() != Some(&why) {
                        tracing::warn!("line {}: {why}", cfg.name);
                        last_connect_error = Some(why.clone());
                    }
                    transport_error = Some(why);
                }
            }
        }
        if let Some(c) = ctx.as_mut() {
            if let Err(e) = poll_device(c, &cfg, &d.device, &mut reading).await {
                transport_error = Some(e.to_string());
                ctx = None;
            }
        }

        d.status.polls += 1;
        d.status.ts = ts;
        d.status.rtt_ms = started.elapsed().as_millis() as u64;
        let was_online = d.status.online;
        if reading.values.is_empty() {
            d.status.failed_polls += 1;
            d.status.online = false;
            d.status.last_error = transport_error.or_else(|| reading.errors.values().next().cloned());
        } else {
            d.status.online = true;
            if let Some(why) = transport_error {
                for p in &d.device.profile.points {
                    if !reading.values.contains_key(&p.name) {
                        reading.errors.entry(p.name.clone()).or_insert_with(|| why.clone());
                    }
                }
            }
            d.seq += 1;
            if let Err(e) = publisher.reading(&reading).await {
                tracing::error!("device {}: could not queue reading: {e}", d.device.config.id);
            }
        }
        let status_due = d.status_sent.is_none_or(|t| t.elapsed() >= STATUS_EVERY);
        if was_online != d.status.online || status_due {
            d.status_sent = Some(Instant::now());
            let _ = publisher.device_status(&d.device.config.id, &d.status).await;
        }
    }
}
