//! The WAL's consumer: reads records in order, runs them through the pipeline (validation,
//! dedup, rules), writes the lines until they are durable, publishes alerts and dead letters,
//! and only then removes the records from the WAL.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rumqttc::{AsyncClient, QoS};
use telemetry::backoff::{os_random, Backoff};
use telemetry::spool::Spool;
use telemetry::{AlertMessage, AlertStatus, Topic, Topics};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::mqtt::decode_record;
use super::Hooks;
use crate::config::IngestConfig;
use crate::console::{Command, InspectionRecord, WriterSide};
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, Pipeline};
use crate::registry::RegistryFile;
use crate::sink::{LineFiles, Sink, SinkError};
use crate::state::StateStore;

use super::persist::RulesWatch;
use super::timers::{Job, Timers};

/// Loads the registry file if it changed and installs it; bad rows are logged and skipped.
pub fn reload(
    file: &mut RegistryFile,
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    reject_unknown: bool,
    records: &[InspectionRecord],
) -> Result<(), String> {
    let Some(loaded) = file.load_if_changed() else { return Ok(()) };
    let (registry, problems) = loaded?;
    let registry = crate::registry::with_records(&registry, records);
    for p in &problems {
        tracing::warn!("registry: {p} (row skipped)");
    }
    tracing::info!("registry {}: {} units", file.path().display(), registry.len());
    metrics.registry_units.store(registry.len() as u64, Ordering::Relaxed);
    metrics.registry_bad_rows.store(problems.len() as u64, Ordering::Relaxed);
    pipeline.set_registry(Arc::new(registry), reject_unknown);
    Ok(())
}

/// A write failed: readiness counts from the first failure since the last success.
fn write_failed(m: &Metrics, error: &str) {
    let _ = m.writes_failing_since_ms.compare_exchange(
        0,
        telemetry::now_ms(),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    if let Ok(mut last) = m.last_write_error.lock() {
        *last = Some(error.to_string());
    }
}

/// Inspection due dates are calendar days in China (UTC+8).
const CHINA_STANDARD_TIME_MS: i64 = 8 * 3600 * 1000;

pub struct Writer {
    pub cfg: IngestConfig,
    pub registry: Option<RegistryFile>,
    /// Alert state in SQLite; without it the WAL is acknowledged batch by batch.
    pub state: Option<StateStore>,
    /// The newest WAL record written and published.
    pub processed: u64,
    /// The WAL position the last saved snapshot covers (the WAL is acknowledged through it).
    pub saved: u64,
    /// When the periodic jobs and the next snapshot are due.
    pub timers: Timers,
    pub rules_watch: RulesWatch,
    pub wal: Arc<Mutex<Spool>>,
    pub sink: Sink,
    pub files: LineFiles,
    pub client: AsyncClient,
    pub topics: Topics,
    pub hooks: Hooks,
    /// The console's commands and live events, when a console is configured.
    pub console: Option<WriterSide>,
    /// Inspection records posted to the console, applied over each load of the registry file.
    pub records: Vec<InspectionRecord>,
    /// Console changes that came while a write was waiting for the TSDB.
    pub held: std::collections::VecDeque<crate::console::Command>,
    /// Alert notifications to people, through their durable outbox.
    pub notify: crate::notify::NotifyHandle,
}

/// One batch: line-protocol chunks with the gateway they came from (to dead-letter a point the
/// TSDB refuses), alert transitions and dead letters.
#[derive(Default)]
pub(super) struct Batch {
    pub chunks: Vec<(String, String)>,
    pub readings: u64,
    pub alerts: Vec<AlertMessage>,
    pub dead_letters: Vec<(String, Vec<u8>)>,
    /// The newest WAL record the batch came from (0 for alerts of ticks and reloads).
    pub wal_id: u64,
}

/// What ended the idle writer's wait.
pub(super) enum Woken {
    /// The receiver appended to the WAL.
    Written,
    /// Nothing came until the deadline.
    Slept,
    /// `shutdown` changed.
    Shutdown,
    /// Boxed: a command is large next to the other wake-ups.
    Command(Box<Command>),
}

/// Waits for the receiver to append, for a console command, for `shutdown` to change, or
/// until `until`, whichever comes first.
pub(super) async fn wait_for_work(
    written: &Notify,
    until: Instant,
    shutdown: &mut watch::Receiver<bool>,
    console: &mut Option<WriterSide>,
) -> Woken {
    tokio::select! {
        _ = written.notified() => Woken::Written,
        _ = tokio::time::sleep_until(until) => Woken::Slept,
        _ = shutdown.changed() => Woken::Shutdown,
        Some(cmd) = super::commands::next_command(console) => Woken::Command(Box::new(cmd)),
    }
}

impl Writer {
    pub async fn run(
        mut self,
        mut pipeline: Pipeline,
        written: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.count_alerts(&pipeline);
        loop {
            let stopping = *shutdown.borrow();
            for job in self.timers.due(Instant::now()) {
                if stopping {
                    break;
                }
                if job == Job::OverdueRate && pipeline.registry().is_none() {
                    // Computed over a registry: it waits for one.
                    continue;
                }
                self.timers.ran(job, Instant::now());
                match job {
                    Job::Tick => {
                        self.tick(&mut pipeline, &mut shutdown).await;
                        self.count_alerts(&pipeline);
                    }
                    Job::RegistryCheck => self.reload_registry(&mut pipeline),
                    Job::RulesCheck => self.reload_rules(&mut pipeline, &mut shutdown).await,
                    Job::OverdueRate => self.write_overdue_rate(&pipeline, &mut shutdown).await,
                }
            }
            loop {
                let max = self.cfg.batch.max_readings;
                let records = tokio::task::block_in_place(|| match self.wal.lock() {
                    Ok(mut w) => w.read(max).map_err(|e| e.to_string()),
                    Err(_) => Err("the WAL lock is poisoned".to_string()),
                });
                let records = match records {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("WAL read: {e}");
                        break;
                    }
                };
                let Some(last_id) = records.last().map(|r| r.id) else { break };
                let mut batch = Batch { wal_id: last_id, ..Batch::default() };
                for r in &records {
                    let Some(rec) = decode_record(&r.payload) else { continue };
                    let topic = &rec.topic;
                    let outcome = match rec.cut_from {
                        Some(len) => pipeline.handle_too_large(topic, rec.payload, len, rec.received_at),
                        None => pipeline.handle(topic, rec.payload, rec.received_at),
                    };
                    match outcome {
                        Outcome::Reading { gateway, lines, alerts, .. } => {
                            batch.readings += 1;
                            batch.chunks.push((gateway, lines));
                            batch.alerts.extend(alerts);
                        }
                        Outcome::DeadLetter { topic: dl, payload, reason } => {
                            tracing::warn!("dead letter from {topic}: {reason}");
                            batch.dead_letters.push((dl, payload));
                        }
                        Outcome::Duplicate => {}
                    }
                }
                if !self.write(&pipeline, &mut batch, &mut shutdown).await {
                    // Stopping while the TSDB is away: the records stay in the WAL for next time.
                    if let Ok(mut w) = self.wal.lock() {
                        w.rewind();
                    }
                    self.save_state(&pipeline);
                    return;
                }
                let transitions = !batch.alerts.is_empty();
                self.publish(&pipeline, &mut batch).await;
                if transitions {
                    // Also while a backlog keeps the loop from ticking.
                    self.count_alerts(&pipeline);
                }
                self.processed = last_id;
                if self.state.is_none() || self.timers.snapshot_due(Instant::now()) {
                    self.save_state(&pipeline);
                }
                self.update_metrics(&pipeline, batch.readings);
                self.timers.flushed(Instant::now());
                self.serve_waiting(&mut pipeline, &mut shutdown).await;
            }
            if stopping {
                self.save_state(&pipeline);
                return;
            }
            // A stream that went quiet right after a batch still gets it acknowledged in the
            // WAL, once the snapshot is due, rather than at the next batch.
            if self.processed > self.saved && self.timers.snapshot_due(Instant::now()) {
                self.save_state(&pipeline);
                self.update_metrics(&pipeline, 0);
            }
            self.serve_waiting(&mut pipeline, &mut shutdown).await;
            let until = self.timers.next_wake(Instant::now());
            match wait_for_work(&written, until, &mut shutdown, &mut self.console).await {
                Woken::Written | Woken::Slept => {}
                Woken::Shutdown => continue,
                Woken::Command(cmd) => {
                    self.serve(&mut pipeline, *cmd, &mut shutdown).await;
                    continue;
                }
            }
            // Gather up to flush_every unless a full batch is already waiting.
            let pending = self.wal.lock().map(|w| w.pending()).unwrap_or(0);
            if pending < self.cfg.batch.max_readings as u64 {
                if let Some(until) = self.timers.gather_until(Instant::now()) {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Reloads the registry file if it changed; a file that cannot be read keeps the old one.
    pub fn reload_registry(&mut self, pipeline: &mut Pipeline) {
        let Some(file) = self.registry.as_mut() else { return };
        let reject_unknown = self.cfg.registry.reject_unknown_devices;
        if let Err(e) = reload(file, pipeline, &self.hooks.metrics, reject_unknown, &self.records) {
            tracing::error!("registry: {e}; keeping the registry loaded before");
        }
    }

    /// Writes the overdue-inspection rate by town and kind (measurement `inspection`).
    pub(super) async fn write_overdue_rate(
        &mut self,
        pipeline: &Pipeline,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let Some(registry) = pipeline.registry() else { return };
        let now = telemetry::now_ms();
        let report = registry.overdue_rate(rules::Date::from_ms(now, CHINA_STANDARD_TIME_MS));
        tracing::info!(
            "overdue inspections: {} of {} units ({:.2} %)",
            report.total.overdue,
            report.total.registered,
            report.total.rate() * 100.0
        );
        if let Some(state) = self.state.as_mut() {
            if let Err(e) = tokio::task::block_in_place(|| state.save_overdue_rate(now, &report)) {
                tracing::error!("alert state: the overdue rate: {e}");
            }
        }
        let mut batch =
            Batch { chunks: vec![(String::new(), report.to_line_protocol(now))], ..Batch::default() };
        self.write(pipeline, &mut batch, shutdown).await;
    }

    /// Runs the no-data rules on the wall clock; their alerts are written and published like
    /// any other.
    async fn tick(&mut self, pipeline: &mut Pipeline, shutdown: &mut watch::Receiver<bool>) {
        let (alerts, lines) = pipeline.tick(telemetry::now_ms());
        if alerts.is_empty() {
            // Idle devices may have been forgotten.
            self.update_metrics(pipeline, 0);
            return;
        }
        let mut batch = Batch { chunks: vec![(String::new(), lines)], alerts, ..Batch::default() };
        if self.write(pipeline, &mut batch, shutdown).await {
            self.publish(pipeline, &mut batch).await;
        }
        self.update_metrics(pipeline, 0);
    }

    /// Writes every chunk until durable. A batch the server refuses is halved until the refused
    /// chunk is alone; it is kept in `rejected.lp` and dead-lettered, the rest lands. Returns
    /// false only when stopping with the server unavailable.
    pub(super) async fn write(
        &mut self,
        pipeline: &Pipeline,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut todo: Vec<std::ops::Range<usize>> = Vec::new();
        todo.push(0..batch.chunks.len());
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut failing = false;
        while let Some(range) = todo.pop() {
            let body: String = batch.chunks[range.clone()].iter().map(|(_, l)| l.as_str()).collect();
            if body.is_empty() {
                continue;
            }
            let started = Instant::now();
            let result = match &self.sink {
                Sink::Tsdb(w) => w.write(&body).await,
                Sink::Files => self.files.write(&body, SystemTime::now()),
            };
            let m = &self.hooks.metrics;
            match result {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("the TSDB takes writes again");
                    }
                    m.writes_failing_since_ms.store(0, Ordering::Relaxed);
                    m.write_batches.fetch_add(1, Ordering::Relaxed);
                    m.write_seconds_total_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    backoff.reset();
                }
                Err(SinkError::Rejected(why)) if range.len() > 1 => {
                    let mid = range.start + range.len() / 2;
                    tracing::warn!(
                        "the TSDB refused a batch of {} readings ({why}); splitting it",
                        range.len()
                    );
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
                Err(SinkError::Rejected(why)) => {
                    m.rejected_batches.fetch_add(1, Ordering::Relaxed);
                    write_failed(m, &format!("TSDB rejected the batch: {why}"));
                    let (gateway, lines) = &batch.chunks[range.start];
                    match self.files.keep_rejected(lines, &why) {
                        Ok(path) => {
                            tracing::error!("the TSDB refused {lines:?} ({why}); kept in {}", path.display())
                        }
                        Err(e) => tracing::error!(
                            "the TSDB refused {lines:?} ({why}) and it could not be kept: {e}"
                        ),
                    }
                    let letter = serde_json::json!({ "reason": format!("TSDB refused the line: {why}"), "lines": lines });
                    let topic = self.topics.build(&Topic::DeadLetter { gateway: gateway.clone() });
                    batch.dead_letters.push((topic, letter.to_string().into_bytes()));
                }
                Err(e) => {
                    m.write_errors.fetch_add(1, Ordering::Relaxed);
                    let e = crate::redact::redact(&e.to_string()).into_owned();
                    write_failed(m, &e);
                    if *shutdown.borrow() {
                        return false;
                    }
                    failing = true;
                    let wait = backoff.next_delay(os_random);
                    tracing::warn!("{e}; retrying in {wait:?}");
                    todo.push(range);
                    let wait = tokio::time::sleep(wait);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            _ = shutdown.changed() => break,
                            // The console keeps answering while the TSDB is away.
                            Some(cmd) = super::commands::next_command(&mut self.console) => {
                                self.serve_during_write(pipeline, cmd);
                            }
                        }
                    }
                }
            }
        }
        true
    }

    pub(super) async fn publish(&mut self, pipeline: &Pipeline, batch: &mut Batch) {
        for (topic, payload) in batch.dead_letters.drain(..) {
            let _ = self.client.publish(topic, QoS::AtLeastOnce, false, payload).await;
        }
        let events = self.topics.build(&Topic::AlertEvents);
        // Before the published filter below: a transition published just before a crash may
        // not have reached the outbox, and the outbox itself drops the ones it has.
        let town_of = |device: &str| pipeline.registry().and_then(|r| r.get(device)).map(|u| u.town.clone());
        if let Err(e) = self.notify.enqueue(&batch.alerts, &town_of) {
            tracing::error!("notify: {e}; these alerts reach MQTT and the TSDB, not the receivers");
        }
        let mut published = Vec::new();
        let mut history = Vec::new();
        for alert in batch.alerts.drain(..) {
            let key = crate::state::transition_key(&alert);
            if let Some(state) = &self.state {
                if state.was_published(&key).unwrap_or(false) {
                    // Replayed after a restart and already out before it: owed once, sent once.
                    continue;
                }
            }
            published.push(key);
            let json = serde_json::to_vec(&alert).unwrap_or_default();
            let state_topic =
                self.topics.build(&Topic::Alert { device: alert.device.clone(), rule: alert.rule.clone() });
            let retained = if alert.status == AlertStatus::Resolved { Vec::new() } else { json.clone() };
            let _ = self.client.publish(state_topic, QoS::AtLeastOnce, true, retained).await;
            let _ = self.client.publish(&events, QoS::AtLeastOnce, false, json).await;
            tracing::info!(
                "alert {} {} {}: {}",
                alert.status.as_str(),
                alert.rule,
                alert.device,
                alert.summary
            );
            let town = pipeline.registry().and_then(|r| r.get(&alert.device)).map_or("", |u| u.town.as_str());
            self.push_event(&alert, town);
            history.push((alert, town));
        }
        if let Some(tx) = &self.hooks.alerts {
            for (alert, _) in &history {
                let _ = tx.send(alert.clone());
            }
        }
        if let Some(state) = self.state.as_mut() {
            let history: Vec<(&AlertMessage, &str)> = history.iter().map(|(a, t)| (a, *t)).collect();
            if let Err(e) = state.mark_published(&published, &history, batch.wal_id) {
                tracing::error!("alert state: {e}");
            }
        }
    }

    /// Counts the alerts firing now from the engine's state (a pass over every device): at
    /// start, so the figure holds what a restored snapshot holds, once a second, and after a
    /// batch with alert transitions.
    pub(super) fn count_alerts(&self, pipeline: &Pipeline) {
        let firing = pipeline.engine().firing();
        if let Ok(mut a) = self.hooks.metrics.alerts_active.lock() {
            *a = firing;
        }
    }

    pub(super) fn update_metrics(&self, pipeline: &Pipeline, written: u64) {
        let m = &self.hooks.metrics;
        let s = &pipeline.stats;
        m.written.fetch_add(written, Ordering::Relaxed);
        m.invalid.store(s.invalid, Ordering::Relaxed);
        m.duplicates.store(s.duplicates, Ordering::Relaxed);
        m.gaps.store(s.gaps, Ordering::Relaxed);
        for (counter, n) in m.dead_letters.iter().zip(s.dead_letters) {
            counter.store(n, Ordering::Relaxed);
        }
        m.alerts_firing_total.store(s.alerts_firing, Ordering::Relaxed);
        m.alerts_resolved_total.store(s.alerts_resolved, Ordering::Relaxed);
        let e = pipeline.engine().stats();
        m.rule_evaluations.store(e.evaluations, Ordering::Relaxed);
        m.set_rule_errors(pipeline.engine().rule_errors());
        m.devices_evicted.store(e.devices_evicted, Ordering::Relaxed);
        m.devices_tracked.store(pipeline.engine().tracked_devices() as u64, Ordering::Relaxed);
        if let Ok(w) = self.wal.lock() {
            m.wal_pending.store(w.pending(), Ordering::Relaxed);
            m.wal_bytes.store(w.bytes(), Ordering::Relaxed);
        }
        if let Ok(mut stats) = self.hooks.stats.lock() {
            *stats = s.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[tokio::test(start_paused = true)]
    async fn an_idle_writer_sleeps_until_its_deadline_unless_woken_sooner() {
        let written = Arc::new(Notify::new());
        let (stop, mut shutdown) = watch::channel(false);
        let t0 = Instant::now();
        let woken = wait_for_work(&written, t0 + MS(200), &mut shutdown, &mut None).await;
        assert!(matches!(woken, Woken::Slept));
        assert_eq!(Instant::now() - t0, MS(200), "exactly at the deadline, on virtual time");

        let notify = written.clone();
        tokio::spawn(async move {
            tokio::time::sleep(MS(50)).await;
            notify.notify_one();
        });
        let t1 = Instant::now();
        let woken = wait_for_work(&written, t1 + MS(200), &mut shutdown, &mut None).await;
        assert!(matches!(woken, Woken::Written));
        assert_eq!(Instant::now() - t1, MS(50), "at the append");

        tokio::spawn(async move {
            tokio::time::sleep(MS(70)).await;
            stop.send(true).unwrap();
        });
        let t2 = Instant::now();
        let woken = wait_for_work(&written, t2 + MS(200), &mut shutdown, &mut None).await;
        assert!(matches!(woken, Woken::Shutdown));
        assert_eq!(Instant::now() - t2, MS(70));
    }
}
