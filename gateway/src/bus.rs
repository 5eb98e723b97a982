//! One poller per line: it owns the line's Modbus connection, polls every device on it at
//! its interval (staggered so devices do not all fire at once) and hands each reading to the
//! publisher. Requests on a line are strictly one at a time.

use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use telemetry::Reading;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_modbus::client::{tcp, Context};
use tokio_modbus::prelude::{Reader, Slave, SlaveContext};

use crate::config::{Device, Line, LineConfig};
use crate::planner::ReadRequest;
use crate::profile::Table;
use crate::publisher::{DeviceStatus, Publisher};
use crate::register::decode_block;

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
    Transport(String),
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
        Ok(Err(e)) => Answer::Transport(format!("transport: {e}")),
        Err(_) => Answer::Transport(format!("timeout after {limit:?}")),
    }
}

/// Reads every planned request of `device` into `reading`: values decoded, Modbus exceptions
/// as point errors. A transport error or timeout stops the poll and is returned: the caller
/// must drop the connection (a late answer would be taken for the next request's).
pub async fn poll_device(
    ctx: &mut Context,
    line: &LineConfig,
    device: &Device,
    reading: &mut Reading,
) -> Result<(), String> {
    ctx.set_slave(Slave(device.config.unit));
    for req in &device.plan {
        if !line.silent_interval.is_zero() {
            tokio::time::sleep(line.silent_interval).await;
        }
        let at = || {
            format!(
                "device {} (unit {}) on line {}: {} {}..{}",
                device.config.id,
                device.config.unit,
                line.name,
                req.table.name(),
                req.start,
                req.end()
            )
        };
        match read(ctx, req, line.timeout).await {
            Answer::Data(words) => reading.values.extend(decode_block(&device.profile, req, &words)),
            Answer::Exception(why) => {
                tracing::warn!("{}: {why}", at());
                for &i in &req.points {
                    reading.errors.insert(device.profile.points[i].name.clone(), why.clone());
                }
            }
            Answer::Transport(why) => {
                tracing::warn!("{}: {why}; reconnecting", at());
                return Err(why);
            }
        }
    }
    Ok(())
}

/// Polls every device on `line` until `shutdown` turns true.
pub async fn run_line(line: Line, publisher: Publisher, session: u64, mut shutdown: watch::Receiver<bool>) {
    let cfg = line.config.clone();
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
            match connect(&cfg.address, cfg.timeout).await {
                Ok(c) => ctx = Some(c),
                Err(e) => transport_error = Some(e),
            }
        }
        if let Some(c) = ctx.as_mut() {
            if let Err(why) = poll_device(c, &cfg, &d.device, &mut reading).await {
                transport_error = Some(why);
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

/// Connects to a line's TCP peer within `limit`.
pub async fn connect(address: &str, limit: Duration) -> Result<Context, String> {
    let addr: SocketAddr = match address.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(address)
            .await
            .map_err(|e| format!("resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {address}: no address"))?,
    };
    match timeout(limit, tcp::connect_slave(addr, Slave(1))).await {
        Ok(Ok(ctx)) => Ok(ctx),
        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
        Err(_) => Err(format!("connect {addr}: timeout after {limit:?}")),
    }
}
