//! One poller per line: it owns the line's Modbus connection (TCP, serial RTU or RTU over
//! TCP, opened by [`crate::transport`]), polls every device's point groups at their intervals
//! ([`crate::schedule`]: staggered so devices do not all fire at once; groups due together are
//! read into one reading) and appends each reading to the spool. A model's
//! `pause_after_connect` holds a device's first poll on a new connection. Requests on a
//! line are strictly one at a time, each after the line's silent interval: on a serial bus
//! this one task serializes every slave.
//!
//! Each device has its own health ([`crate::health`]): a failed poll is retried with backoff,
//! a device that keeps failing is quarantined and only probed now and then, so a dead slave
//! costs its neighbours at most one timeout per probe and never a poll (a poll delayed by less
//! than its interval is still made). Each device also keeps its own request plan
//! ([`crate::narrow`]), narrowed around the points it refuses.
//!
//! [`run_line`] is the async shell: it sleeps, opens, polls and publishes. The decisions are
//! pure steps with the time passed in: [`device`] books a poll's outcome (status, health,
//! schedule) and [`line_gate`] holds a line that failed to open until its backoff is over.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::time::Duration;

use telemetry::backoff::os_random;
use telemetry::now_ms;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Line;
use crate::health::{HealthPolicy, Verdict};
pub use crate::poll::{poll_device, poll_planned, PollError, PollTally};
use crate::publisher::Publisher;
use crate::schedule::connect_pause_left;
pub use crate::transport::{connect, open, ConnectError, Connection, TransportError};

mod device;
mod line_gate;
#[cfg(test)]
mod tests;

use device::{line_devices, DeviceState, PollOutcome};
use line_gate::LineGate;

/// How the bus reports.
#[derive(Clone, Copy, Debug)]
pub struct BusOptions {
    /// Device health is republished this often when nothing changes.
    pub status_every: Duration,
    pub policy: HealthPolicy,
}

/// Polls every device on `line` until `shutdown` turns true.
pub async fn run_line(
    line: Line,
    publisher: Publisher,
    options: BusOptions,
    shutdown: watch::Receiver<bool>,
) {
    let (link, cfg) = (line.link.clone(), line.config.clone());
    run_line_on(line, || open(&link, &cfg), publisher, options, shutdown).await
}

/// [`run_line`], opening the line's connection with `open_line`.
async fn run_line_on<F, Fut>(
    line: Line,
    mut open_line: F,
    publisher: Publisher,
    options: BusOptions,
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Connection, ConnectError>>,
{
    let cfg = line.config.clone();
    let start = Instant::now();
    let (mut devices, mut by_profile) =
        line_devices(line.devices, options.policy, |id| publisher.topic_of_device(id), start);
    if devices.is_empty() {
        return;
    }
    let mut ctx: Option<Connection> = None;
    // When the connection was opened, and its number (for `pause_after_connect`).
    let mut connected_at = start;
    let mut connection = 0u64;
    let mut gate = LineGate::default();
    // The devices by when they are due (the first of the line's order among equals). Only the
    // device just polled changes its due time: it goes back in after its poll.
    let mut queue: BinaryHeap<Reverse<(Instant, usize)>> =
        devices.iter().enumerate().map(|(i, d)| Reverse((d.due(), i))).collect();
    loop {
        let Some(Reverse((due, index))) = queue.pop() else { return };
        let d = &mut devices[index];
        let values = &mut by_profile[d.values].1;
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.changed() => return,
            }
        }
        if *shutdown.borrow() {
            return;
        }
        let on_schedule = d.health.on_schedule();
        let now = Instant::now();
        // The groups whose slot has come (a regular poll counts the slots the line was too
        // busy to make), or those a retry or probe owes.
        let groups = d.schedule.take(now, on_schedule);
        let mut outcome = PollOutcome { ts_ms: now_ms(), ..PollOutcome::default() };
        values.clear();
        // A line that cannot be opened is the line's failure, not the device's: its devices
        // are not quarantined for it, and it is tried again with its own backoff.
        if ctx.is_none() {
            if let Some(why) = gate.waiting(now) {
                outcome.transport_error = Some(format!("{}: {why}", d.not_read(&groups, &cfg.name)));
                outcome.line_down_until = gate.retry_at();
            } else {
                match open_line().await {
                    Ok(c) => {
                        connected_at = Instant::now();
                        if let Some(down_for) = gate.opened(connected_at) {
                            tracing::info!("line {}: open again after {down_for:.1?}", cfg.name);
                        }
                        ctx = Some(c);
                        connection += 1;
                    }
                    Err(e) => {
                        let (why, not_read) = (e.to_string(), d.not_read(&groups, &cfg.name));
                        if gate.failed(why.clone(), Instant::now(), os_random) {
                            tracing::warn!("{not_read}: {why}; trying again with backoff");
                        }
                        d.status.transport_errors += 1;
                        outcome.transport_error = Some(format!("{not_read}: {why}"));
                        outcome.line_down_until = gate.retry_at();
                    }
                }
            }
        }
        if let Some(c) = ctx.as_mut() {
            let pause = d.device.profile.pause_after_connect;
            if d.polled_on != connection && !pause.is_zero() {
                tokio::time::sleep(connect_pause_left(connected_at, pause, Instant::now())).await;
            }
            d.polled_on = connection;
            for &g in &groups {
                let polled =
                    poll_planned(c, &cfg, &d.device, &mut d.plans[g], values, &mut outcome.tally).await;
                if let Err(e) = polled {
                    tracing::warn!("{e}; reconnecting");
                    match e.cause {
                        TransportError::Timeout(_) => d.status.timeouts += 1,
                        _ => d.status.transport_errors += 1,
                    }
                    outcome.transport_error = Some(e.to_string());
                    ctx = None;
                    break;
                }
            }
        }
        outcome.rtt = now.elapsed();
        outcome.failed = values.is_empty();
        if !outcome.failed {
            if let Some(why) = &outcome.transport_error {
                d.mark_unread(&groups, values, why);
            }
            let seq = d.seq;
            d.seq += 1;
            let ts = outcome.ts_ms;
            if let Err(e) = publisher.reading(&d.device, &d.topic, (seq, ts), values, &mut shutdown).await {
                tracing::error!("{}: reading {seq} not spooled: {e}", d.name(&cfg.name));
            }
        }
        let now = Instant::now();
        let booked = d.record_poll(&groups, on_schedule, outcome, now, now_ms(), options.status_every);
        log_verdict(d, &cfg.name, booked.verdict, now, options.policy);
        if booked.publish_status {
            publisher.device_status(&d.device.config.id, &d.status);
        }
        queue.push(Reverse((d.due(), index)));
    }
}

/// Logs what a poll changed in a device's health, once per change.
fn log_verdict(d: &DeviceState, line: &str, verdict: Verdict, now: Instant, policy: HealthPolicy) {
    let last_error = d.status.last_error.as_deref().unwrap_or("no answer");
    match verdict {
        Verdict::Fine => {}
        Verdict::Recovered { failures, was_quarantined } => tracing::info!(
            "{}: answering again after {failures} failed polls{}",
            d.name(line),
            if was_quarantined { "; out of quarantine" } else { "" }
        ),
        Verdict::Retry { failures, at } => {
            tracing::debug!("{}: failed poll {failures} ({last_error}); retrying in {:?}", d.name(line), at - now)
        }
        Verdict::Quarantined { failures, probe_at } => tracing::warn!(
            "{}: quarantined after {failures} failed polls in a row (last: {last_error}); probing in {:?}, then \
             less often, at most every {:?}",
            d.name(line),
            probe_at - now,
            policy.probe_max
        ),
        Verdict::StillQuarantined { failures, probe_at } => tracing::info!(
            "{}: still failing ({failures} polls in a row: {last_error}); next probe in {:?}",
            d.name(line),
            probe_at - now
        ),
    }
}
