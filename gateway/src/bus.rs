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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use telemetry::backoff::{os_random, Backoff};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Device, Line};
use crate::health::{Health, HealthPolicy, Verdict};
use crate::narrow::DevicePlan;
pub use crate::poll::{poll_device, poll_planned, PollError, PollTally};
use crate::profile::fmt_duration;
use crate::publisher::{DeviceStatus, Publisher};
use crate::register::Sink;
use crate::schedule::{connect_pause_left, GroupStatus, Schedule};
pub use crate::transport::{connect, open, ConnectError, Connection, TransportError};
use crate::values::{Layout, Values};

use telemetry::now_ms;

struct DeviceState {
    device: Device,
    /// Per point group: its requests, narrowed around the points the device refuses.
    plans: Vec<DevicePlan>,
    schedule: Schedule,
    health: Health,
    seq: u64,
    /// The connection (by number) this device was last polled on, for `pause_after_connect`.
    polled_on: u64,
    status: DeviceStatus,
    status_sent: Option<Instant>,
    /// The telemetry topic, built once.
    topic: String,
    /// Which of the line's [`Values`] (one per profile) this device's polls fill.
    values: usize,
}

impl DeviceState {
    fn due(&self) -> Instant {
        self.health.due(self.schedule.next_slot())
    }

    /// `device elev-1 (unit 3) on line tcp-1`
    fn name(&self, line: &str) -> String {
        format!("device {} (unit {}) on line {line}", self.device.config.id, self.device.config.unit)
    }

    /// The per-group counters, when the device has more than one group.
    fn group_status(&self) -> Vec<GroupStatus> {
        if self.schedule.groups.len() < 2 {
            return Vec::new();
        }
        self.schedule
            .groups
            .iter()
            .zip(&self.device.groups)
            .zip(&self.plans)
            .map(|((slot, group), plan)| GroupStatus {
                interval: fmt_duration(group.interval),
                points: group.points.len(),
                requests: plan.requests.len(),
                polls: slot.polls,
                overruns: slot.overruns,
            })
            .collect()
    }
}

/// The first wait before opening a line again after it failed to open; doubled each time,
/// jittered, so gateways whose lines share a serial server do not retry in step.
const LINE_RETRY_FIRST: Duration = Duration::from_millis(500);
const LINE_RETRY_MAX: Duration = Duration::from_secs(30);

/// A line that could not be opened.
struct LineDown {
    why: String,
    since: Instant,
    backoff: Backoff,
    retry_at: Instant,
}

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
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = line.config.clone();
    let link = line.link.clone();
    let n = line.devices.len().max(1) as u32;
    let start = Instant::now();
    // The values of the poll under way, one per profile: the line polls one device at a time,
    // so its devices of a profile share slots allocated once.
    let mut by_profile: Vec<(Arc<crate::profile::Profile>, Values)> = Vec::new();
    let mut devices: Vec<DeviceState> = line
        .devices
        .into_iter()
        .enumerate()
        .map(|(i, device)| {
            let intervals: Vec<Duration> = device.groups.iter().map(|g| g.interval).collect();
            let values =
                by_profile.iter().position(|(p, _)| Arc::ptr_eq(p, &device.profile)).unwrap_or_else(|| {
                    let layout = Arc::new(Layout::new(&device.profile));
                    by_profile.push((device.profile.clone(), Values::new(layout)));
                    by_profile.len() - 1
                });
            DeviceState {
                topic: publisher.topic_of_device(&device.config.id),
                values,
                schedule: Schedule::new(&intervals, device.config.interval, i as u32, n, start),
                plans: device.groups.iter().map(|g| DevicePlan::from_requests(g.plan.clone())).collect(),
                health: Health::new(options.policy, device.config.interval),
                status: DeviceStatus { unit: device.config.unit, ..DeviceStatus::default() },
                device,
                seq: 0,
                polled_on: 0,
                status_sent: None,
            }
        })
        .collect();
    if devices.is_empty() {
        return;
    }
    let mut ctx: Option<Connection> = None;
    // When the connection was opened, and its number (for `pause_after_connect`).
    let mut connected_at = start;
    let mut connection = 0u64;
    let mut line_down: Option<LineDown> = None;
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

        let ts = now_ms();
        let started = Instant::now();
        values.clear();
        let mut transport_error: Option<String> = None;
        let mut tally = PollTally::default();
        // A line that cannot be opened is the line's failure, not the device's: its devices
        // are not quarantined for it, and it is tried again with its own backoff.
        let mut line_failure = false;
        if ctx.is_none() {
            let first = groups.iter().find_map(|&g| d.plans[g].requests.first());
            let not_read = match first {
                Some(r) => {
                    format!("{}: {} {}..{} not read", d.name(&cfg.name), r.table.name(), r.start, r.end())
                }
                None => format!("{}: not read", d.name(&cfg.name)),
            };
            match &line_down {
                Some(down) if now < down.retry_at => {
                    line_failure = true;
                    transport_error = Some(format!("{not_read}: {}", down.why));
                }
                _ => match open(&link, &cfg).await {
                    Ok(c) => {
                        if let Some(down) = line_down.take() {
                            tracing::info!(
                                "line {}: open again after {:.1?}",
                                cfg.name,
                                down.since.elapsed()
                            );
                        }
                        ctx = Some(c);
                        connected_at = Instant::now();
                        connection += 1;
                    }
                    Err(e) => {
                        let why = e.to_string();
                        // Once per distinct failure, not once per poll while the line is down.
                        if line_down.as_ref().is_none_or(|down| down.why != why) {
                            tracing::warn!("{not_read}: {why}; trying again with backoff");
                        }
                        let (since, mut backoff) = match line_down.take() {
                            Some(down) => (down.since, down.backoff),
                            None => (Instant::now(), Backoff::new(LINE_RETRY_FIRST, LINE_RETRY_MAX)),
                        };
                        line_down = Some(LineDown {
                            retry_at: Instant::now() + backoff.next_delay(os_random),
                            backoff,
                            why: why.clone(),
                            since,
                        });
                        d.status.transport_errors += 1;
                        line_failure = true;
                        transport_error = Some(format!("{not_read}: {why}"));
                    }
                },
            }
        }
        if let Some(c) = ctx.as_mut() {
            let pause = d.device.profile.pause_after_connect;
            if d.polled_on != connection && !pause.is_zero() {
                tokio::time::sleep(connect_pause_left(connected_at, pause, Instant::now())).await;
            }
            d.polled_on = connection;
            for &g in &groups {
                let polled = poll_planned(c, &cfg, &d.device, &mut d.plans[g], values, &mut tally).await;
                if let Err(e) = polled {
                    tracing::warn!("{e}; reconnecting");
                    match e.cause {
                        TransportError::Timeout(_) => d.status.timeouts += 1,
                        _ => d.status.transport_errors += 1,
                    }
                    transport_error = Some(e.to_string());
                    ctx = None;
                    break;
                }
            }
        }

        d.status.polls += 1;
        d.status.exceptions += tally.exceptions;
        d.status.ts = ts;
        d.status.rtt_ms = started.elapsed().as_millis() as u64;
        let before = (d.status.online, d.status.quarantined, d.status.bad_points.clone());
        let failed = values.is_empty();
        if failed {
            d.status.failed_polls += 1;
            d.status.online = false;
            d.status.last_error = transport_error.or(tally.last_exception);
        } else {
            d.status.online = true;
            if let Some(why) = transport_error {
                for &g in &groups {
                    for &i in &d.device.groups[g].points {
                        if !values.has_point(i) {
                            values.error_unless_known(&d.device.profile.points[i].name, || why.clone());
                        }
                    }
                }
                d.status.last_error = Some(why);
            } else if let Some(why) = tally.last_exception {
                d.status.last_error = Some(why);
            }
            let seq = d.seq;
            d.seq += 1;
            if let Err(e) = publisher.reading(&d.device, &d.topic, (seq, ts), values, &mut shutdown).await {
                tracing::error!("{}: reading {seq} not spooled: {e}", d.name(&cfg.name));
            }
        }
        let now = Instant::now();
        if line_failure {
            if let Some(down) = &line_down {
                d.health.postpone(down.retry_at);
            }
        }
        let verdict = match (line_failure, failed) {
            (true, _) => Verdict::Fine,
            (false, true) => d.health.failed(now),
            (false, false) => d.health.succeeded(),
        };
        match verdict {
            Verdict::Fine => {}
            Verdict::Recovered { failures, was_quarantined } => {
                tracing::info!(
                    "{}: answering again after {failures} failed polls{}",
                    d.name(&cfg.name),
                    if was_quarantined { "; out of quarantine" } else { "" }
                );
            }
            Verdict::Retry { failures, at } => tracing::debug!(
                "{}: failed poll {failures} ({}); retrying in {:?}",
                d.name(&cfg.name),
                d.status.last_error.as_deref().unwrap_or("no answer"),
                at - now
            ),
            Verdict::Quarantined { failures, probe_at } => tracing::warn!(
                "{}: quarantined after {failures} failed polls in a row (last: {}); probing in {:?}, then less \
                 often, at most every {:?}",
                d.name(&cfg.name),
                d.status.last_error.as_deref().unwrap_or("no answer"),
                probe_at - now,
                options.policy.probe_max
            ),
            Verdict::StillQuarantined { failures, probe_at } => tracing::info!(
                "{}: still failing ({failures} polls in a row: {}); next probe in {:?}",
                d.name(&cfg.name),
                d.status.last_error.as_deref().unwrap_or("no answer"),
                probe_at - now
            ),
        }
        d.schedule.polled(&groups, !failed, on_schedule, now);
        d.status.overruns = d.schedule.overruns();
        d.status.groups = d.group_status();
        d.status.quarantined = d.health.is_quarantined();
        d.status.next_probe_ms = d
            .status
            .quarantined
            .then(|| now_ms() + d.due().saturating_duration_since(now).as_millis() as i64);
        d.status.bad_points = d
            .plans
            .iter()
            .flat_map(|plan| plan.bad.iter())
            .map(|(&i, b)| (d.device.profile.points[i].name.clone(), b.why.clone()))
            .collect();
        let changed = before != (d.status.online, d.status.quarantined, d.status.bad_points.clone());
        let status_due = d.status_sent.is_none_or(|t| t.elapsed() >= options.status_every);
        if changed || status_due {
            d.status_sent = Some(Instant::now());
            publisher.device_status(&d.device.config.id, &d.status);
        }
        queue.push(Reverse((d.due(), index)));
    }
}
