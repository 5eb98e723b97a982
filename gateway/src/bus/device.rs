//! One device of a line between polls: its schedule, health, request plans and status, and
//! [`DeviceState::record_poll`], the pure step that books a poll's outcome at a given time and
//! says what the shell should report.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Device;
use crate::health::{Health, HealthPolicy, Verdict};
use crate::narrow::DevicePlan;
use crate::poll::PollTally;
use crate::profile::{fmt_duration, Profile};
use crate::publisher::DeviceStatus;
use crate::register::Sink;
use crate::schedule::{GroupStatus, Schedule};
use crate::values::{Layout, Values};

pub(super) struct DeviceState {
    pub device: Device,
    /// Per point group: its requests, narrowed around the points the device refuses.
    pub plans: Vec<DevicePlan>,
    pub schedule: Schedule,
    pub health: Health,
    pub seq: u64,
    /// The connection (by number) this device was last polled on, for `pause_after_connect`.
    pub polled_on: u64,
    pub status: DeviceStatus,
    pub status_sent: Option<Instant>,
    /// The telemetry topic, built once.
    pub topic: String,
    /// Which of the line's [`Values`] (one per profile) this device's polls fill.
    pub values: usize,
}

/// The values of the poll under way, one per profile: a line polls one device at a time, so
/// its devices of a profile share slots allocated once.
pub(super) type ValuesByProfile = Vec<(Arc<Profile>, Values)>;

/// The state of each of a line's `devices`, staggered over the line from `start`, and the
/// values their polls fill. `topic_of` gives a device's telemetry topic.
pub(super) fn line_devices(
    devices: Vec<Device>,
    policy: HealthPolicy,
    topic_of: impl Fn(&str) -> String,
    start: Instant,
) -> (Vec<DeviceState>, ValuesByProfile) {
    let n = devices.len().max(1) as u32;
    let mut by_profile: ValuesByProfile = Vec::new();
    let states = devices
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
                topic: topic_of(&device.config.id),
                values,
                schedule: Schedule::new(&intervals, device.config.interval, i as u32, n, start),
                plans: device.groups.iter().map(|g| DevicePlan::from_requests(g.plan.clone())).collect(),
                health: Health::new(policy, device.config.interval),
                status: DeviceStatus { unit: device.config.unit, ..DeviceStatus::default() },
                device,
                seq: 0,
                polled_on: 0,
                status_sent: None,
            }
        })
        .collect();
    (states, by_profile)
}

/// What one poll of a device came to, as the shell saw it.
#[derive(Debug, Default)]
pub(super) struct PollOutcome {
    /// The poll's wall-clock time, the reading's timestamp.
    pub ts_ms: i64,
    pub rtt: Duration,
    pub tally: PollTally,
    pub transport_error: Option<String>,
    /// The line could not be opened and waits until then: the line's failure, not the device's.
    pub line_down_until: Option<Instant>,
    /// The poll read no value at all.
    pub failed: bool,
}

/// What the shell reports after a poll.
#[derive(Debug, PartialEq)]
pub(super) struct Booked {
    pub verdict: Verdict,
    /// Publish the device's status: it changed, or was last sent `status_every` ago.
    pub publish_status: bool,
}

impl DeviceState {
    /// When the device is next due: its schedule's next slot, or a retry or probe.
    pub fn due(&self) -> Instant {
        self.health.due(self.schedule.next_slot())
    }

    /// `device elev-1 (unit 3) on line tcp-1`
    pub fn name(&self, line: &str) -> String {
        format!("device {} (unit {}) on line {line}", self.device.config.id, self.device.config.unit)
    }

    /// `device … on line …: holding 100..120 not read`: the first request of `groups` that
    /// a line that could not be opened leaves unread.
    pub fn not_read(&self, groups: &[usize], line: &str) -> String {
        match groups.iter().find_map(|&g| self.plans[g].requests.first()) {
            Some(r) => format!("{}: {} {}..{} not read", self.name(line), r.table.name(), r.start, r.end()),
            None => format!("{}: not read", self.name(line)),
        }
    }

    /// Marks the points of `groups` that a poll cut short by a transport error left unread.
    pub fn mark_unread(&self, groups: &[usize], values: &mut Values, why: &str) {
        for &g in groups {
            for &i in &self.device.groups[g].points {
                if !values.has_point(i) {
                    values.error_unless_known(&self.device.profile.points[i].name, || why.to_string());
                }
            }
        }
    }

    /// Books the poll of `groups` (taken `on_schedule` or as a retry or probe) that finished at
    /// `now` (`now_ms` on the wall clock): status counters, health, schedule, and whether the
    /// status is to be published.
    pub fn record_poll(
        &mut self,
        groups: &[usize],
        on_schedule: bool,
        outcome: PollOutcome,
        now: Instant,
        now_ms: i64,
        status_every: Duration,
    ) -> Booked {
        let status = &mut self.status;
        status.polls += 1;
        status.exceptions += outcome.tally.exceptions;
        status.ts = outcome.ts_ms;
        status.rtt_ms = outcome.rtt.as_millis() as u64;
        let before = (status.online, status.quarantined, status.bad_points.clone());
        status.online = !outcome.failed;
        if outcome.failed {
            status.failed_polls += 1;
            status.last_error = outcome.transport_error.or(outcome.tally.last_exception);
        } else if let Some(why) = outcome.transport_error.or(outcome.tally.last_exception) {
            status.last_error = Some(why);
        }
        if let Some(until) = outcome.line_down_until {
            self.health.postpone(until);
        }
        let verdict = match (outcome.line_down_until.is_some(), outcome.failed) {
            (true, _) => Verdict::Fine,
            (false, true) => self.health.failed(now),
            (false, false) => self.health.succeeded(),
        };
        self.schedule.polled(groups, !outcome.failed, on_schedule, now);
        self.status.overruns = self.schedule.overruns();
        self.status.groups = self.group_status();
        self.status.quarantined = self.health.is_quarantined();
        self.status.next_probe_ms = self
            .status
            .quarantined
            .then(|| now_ms + self.due().saturating_duration_since(now).as_millis() as i64);
        self.status.bad_points = self
            .plans
            .iter()
            .flat_map(|plan| plan.bad.iter())
            .map(|(&i, b)| (self.device.profile.points[i].name.clone(), b.why.clone()))
            .collect();
        let status = &self.status;
        let changed = before != (status.online, status.quarantined, status.bad_points.clone());
        let status_due = self.status_sent.is_none_or(|t| now.saturating_duration_since(t) >= status_every);
        let publish_status = changed || status_due;
        if publish_status {
            self.status_sent = Some(now);
        }
        Booked { verdict, publish_status }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimPlan, Simulator};
    use crate::GatewayConfig;

    const EVERY: Duration = Duration::from_secs(60);
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A boiler polled every second, its state from `t0`.
    fn boiler(t0: Instant) -> DeviceState {
        let plan = SimPlan::without_faults(&[("boiler", 1)]);
        let sim = Simulator::new(&plan, 0).unwrap();
        let link = crate::line::Link::Tcp { address: "127.0.0.1:1".into() };
        let text = sim.gateway_config_on("gw-t", &link, "mqtt://127.0.0.1:1", Duration::from_secs(1));
        let line = GatewayConfig::from_toml(&text).unwrap().build().unwrap().remove(0);
        let (mut devices, _) =
            line_devices(line.devices, HealthPolicy::default(), |id| format!("t/{id}"), t0);
        devices.remove(0)
    }

    fn failed(why: &str) -> PollOutcome {
        PollOutcome { transport_error: Some(why.into()), failed: true, ..PollOutcome::default() }
    }

    #[test]
    fn failures_are_retried_then_quarantined_with_the_next_probe_on_the_wall_clock() {
        let t0 = Instant::now();
        let mut d = boiler(t0);
        let groups = d.schedule.take(t0, true);
        let booked = d.record_poll(&groups, true, failed("timeout"), t0, 1_000_000, EVERY);
        assert_eq!(
            booked,
            Booked { verdict: Verdict::Retry { failures: 1, at: t0 + MS(100) }, publish_status: true }
        );
        assert_eq!((d.status.online, d.status.failed_polls, d.status.polls), (false, 1, 1));
        assert_eq!(d.status.last_error.as_deref(), Some("timeout"));
        assert_eq!(d.due(), t0 + MS(100));
        let t1 = t0 + MS(100);
        let booked = d.record_poll(&[], false, failed("timeout"), t1, 1_000_100, EVERY);
        assert_eq!(booked.verdict, Verdict::Retry { failures: 2, at: t1 + MS(200) });
        assert!(!booked.publish_status, "nothing changed and the status went out 100 ms ago");
        let t2 = t1 + MS(200);
        let booked = d.record_poll(&[], false, failed("timeout"), t2, 1_000_300, EVERY);
        assert_eq!(booked.verdict, Verdict::Quarantined { failures: 3, probe_at: t2 + MS(1_000) });
        assert!(booked.publish_status, "quarantine is a change");
        assert!(d.status.quarantined);
        assert_eq!(d.status.next_probe_ms, Some(1_001_300));
    }

    #[test]
    fn a_device_that_answers_again_recovers_and_its_status_goes_out_on_change_or_when_due() {
        let t0 = Instant::now();
        let mut d = boiler(t0);
        d.record_poll(&[0], true, failed("timeout"), t0, 0, EVERY);
        let ok = || PollOutcome { ts_ms: 7, rtt: MS(12), ..PollOutcome::default() };
        let t1 = t0 + MS(100);
        let booked = d.record_poll(&[], false, ok(), t1, 100, EVERY);
        assert_eq!(
            booked,
            Booked {
                verdict: Verdict::Recovered { failures: 1, was_quarantined: false },
                publish_status: true
            }
        );
        assert_eq!((d.status.online, d.status.ts, d.status.rtt_ms), (true, 7, 12));
        assert_eq!(d.status.last_error.as_deref(), Some("timeout"), "the last error stays for the record");
        let booked = d.record_poll(&[0], true, ok(), t1 + MS(1_000), 1_100, EVERY);
        assert_eq!(booked, Booked { verdict: Verdict::Fine, publish_status: false });
        let booked = d.record_poll(&[0], true, ok(), t1 + EVERY, 60_100, EVERY);
        assert_eq!(booked, Booked { verdict: Verdict::Fine, publish_status: true }, "due again");
    }

    #[test]
    fn a_line_that_cannot_open_is_not_the_devices_failure_but_holds_its_retry() {
        let t0 = Instant::now();
        let mut d = boiler(t0);
        d.record_poll(&[0], true, failed("timeout"), t0, 0, EVERY);
        let until = t0 + Duration::from_secs(5);
        let down = PollOutcome { line_down_until: Some(until), ..failed("connect refused") };
        let booked = d.record_poll(&[], false, down, t0 + MS(100), 100, EVERY);
        assert_eq!(booked.verdict, Verdict::Fine);
        assert_eq!(d.health.failures(), 1, "not counted against the device");
        assert_eq!(d.due(), until, "the retry waits for the line");
        assert_eq!(d.status.last_error.as_deref(), Some("connect refused"));
    }

    #[test]
    fn points_left_unread_by_a_transport_error_carry_it_and_an_unopened_line_names_the_request() {
        let t0 = Instant::now();
        let d = boiler(t0);
        let text = d.not_read(&[0], "sim");
        assert!(text.starts_with(&format!(
            "device {} (unit {}) on line sim: ",
            d.device.config.id, d.device.config.unit
        )));
        assert!(text.ends_with(" not read"), "{text}");
        assert!(text.contains(".."), "names the first request's range: {text}");
        let mut values = Values::new(Arc::new(Layout::new(&d.device.profile)));
        d.mark_unread(&[0], &mut values, "timeout");
        assert!(values.is_empty(), "errors are not values");
        let mut reading = telemetry::Reading::new("gw", "b", "boiler", 1, 1, 1);
        values.copy_into(&mut reading);
        assert_eq!(reading.errors.len(), d.device.groups[0].points.len());
        assert!(reading.errors.values().all(|why| why == "timeout"), "{:?}", reading.errors);
    }
}
