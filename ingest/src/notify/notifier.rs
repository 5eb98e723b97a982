//! The async shell: the writer queues alerts through a [`NotifyHandle`]; [`Notifier::run`]
//! sends each group when it is due, retries failures with backoff, and purges old rows.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use telemetry::AlertMessage;
use tokio::sync::{watch, Notify};

use super::config::NotifyConfig;
use super::deliver::{Receiver, SEND_TIMEOUT};
use super::format::Notification;
use super::group::{self, GroupSummary, Timing};
use super::metrics::NotifyMetrics;
use super::outbox::Outbox;
use super::route::Router;

/// Notifications sent at the same time, to different groups.
const PARALLEL_SENDS: usize = 8;
/// The loop looks at the queue at least this often, even when nothing wakes it.
const IDLE_CHECK_MS: i64 = 30_000;
const PURGE_EVERY_MS: i64 = 3_600_000;
/// After an outbox error, wait this long before trying again.
const OUTBOX_ERROR_PAUSE: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// What the handle and the delivery task share.
struct Queue {
    outbox: Mutex<Outbox>,
    router: Router,
    wake: Notify,
    metrics: Arc<NotifyMetrics>,
}

impl Queue {
    fn with_outbox<T>(&self, f: impl FnOnce(&mut Outbox) -> Result<T, String>) -> Result<T, String> {
        let mut outbox = self.outbox.lock().map_err(|_| "notify outbox: the lock is poisoned".to_string())?;
        let result = f(&mut outbox);
        if result.is_err() {
            self.metrics.outbox_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Queues alerts for notification; cheap to clone. The default one queues nothing.
#[derive(Clone, Default)]
pub struct NotifyHandle {
    queue: Option<Arc<Queue>>,
}

impl NotifyHandle {
    /// Writes the alerts' rows durably (one per receiver their routes name) and wakes the
    /// delivery task. Transitions queued before are ignored, so replaying them is harmless.
    pub fn enqueue(
        &self,
        alerts: &[AlertMessage],
        town_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let Some(queue) = &self.queue else { return Ok(()) };
        if alerts.is_empty() {
            return Ok(());
        }
        let added = queue.with_outbox(|o| o.enqueue(alerts, town_of, &queue.router, now_ms()))?;
        if added > 0 {
            queue.metrics.enqueued.fetch_add(added as u64, Ordering::Relaxed);
            queue.metrics.queue_depth.fetch_add(added as u64, Ordering::Relaxed);
            queue.wake.notify_one();
        }
        Ok(())
    }
}

pub struct Notifier {
    /// None when no receiver is configured: notifications are off.
    queue: Option<Arc<Queue>>,
    receivers: HashMap<String, Receiver>,
    timing: Timing,
    max_retry_backoff: Duration,
    keep_delivered: Duration,
    http: reqwest::Client,
}

impl Notifier {
    /// Checks the config, reads the receivers' secrets and opens the outbox at `outbox_path`
    /// (not created when no receiver is configured).
    pub fn open(
        cfg: &NotifyConfig,
        outbox_path: &Path,
        metrics: Arc<NotifyMetrics>,
    ) -> Result<Notifier, String> {
        cfg.validate()?;
        let mut receivers = HashMap::new();
        for (i, r) in cfg.receivers.iter().enumerate() {
            receivers.insert(r.name.clone(), Receiver::build(r, &format!("notify.receiver[{i}]"))?);
        }
        let http =
            reqwest::Client::builder().timeout(SEND_TIMEOUT).build().map_err(|e| format!("notify: {e}"))?;
        let queue = if receivers.is_empty() {
            None
        } else {
            if cfg.routes.is_empty() {
                tracing::warn!(
                    "notify: receivers are configured but no [[notify.route]]: nothing will be sent"
                );
            }
            let outbox = Outbox::open(outbox_path)?;
            metrics.queue_depth.store(outbox.depth()?, Ordering::Relaxed);
            Some(Arc::new(Queue {
                outbox: Mutex::new(outbox),
                router: Router::new(&cfg.routes),
                wake: Notify::new(),
                metrics,
            }))
        };
        Ok(Notifier {
            queue,
            receivers,
            timing: Timing::new(cfg.group_wait, cfg.group_interval),
            max_retry_backoff: cfg.max_retry_backoff,
            keep_delivered: cfg.keep_delivered,
            http,
        })
    }

    pub fn handle(&self) -> NotifyHandle {
        NotifyHandle { queue: self.queue.clone() }
    }

    /// Delivers due notifications until `shutdown` turns true (or its sender is dropped).
    /// A notification cut off by the shutdown stays queued and goes out after the restart.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Some(queue) = self.queue.clone() else { return };
        let names: HashSet<String> = self.receivers.keys().cloned().collect();
        let mut last_purge: Option<i64> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = now_ms();
            if last_purge.is_none_or(|t| now - t >= PURGE_EVERY_MS) {
                last_purge = Some(now);
                self.purge(&queue, &names, now);
            }
            let (due, next) = match self.take_due(&queue, &names, now) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!("{e}");
                    tokio::select! {
                        _ = tokio::time::sleep(OUTBOX_ERROR_PAUSE) => continue,
                        _ = shutdown.changed() => continue,
                    }
                }
            };
            if !due.is_empty() {
                let this = &self;
                let mut sends = futures::stream::iter(due)
                    .map(|n| async move {
                        let result = this.send(&n).await;
                        (n, result)
                    })
                    .buffer_unordered(PARALLEL_SENDS);
                let mut all_recorded = true;
                loop {
                    tokio::select! {
                        sent = sends.next() => match sent {
                            Some((n, result)) => all_recorded &= self.record(&queue, &n, result),
                            None => break,
                        },
                        changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                    }
                }
                self.update_depth(&queue);
                if !all_recorded {
                    // An unrecorded attempt looks due again at once: do not hammer the receiver.
                    tokio::select! {
                        _ = tokio::time::sleep(OUTBOX_ERROR_PAUSE) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                continue;
            }
            let wait = next.map_or(IDLE_CHECK_MS, |at| (at - now).clamp(0, IDLE_CHECK_MS));
            tokio::select! {
                _ = queue.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                changed = shutdown.changed() => if changed.is_err() { return },
            }
        }
    }

    /// The notifications due now, and when the next group will be due.
    fn take_due(
        &self,
        queue: &Queue,
        names: &HashSet<String>,
        now: i64,
    ) -> Result<(Vec<Notification>, Option<i64>), String> {
        queue.with_outbox(|outbox| {
            let groups = outbox.groups(names)?;
            let due: Vec<GroupSummary> = group::due(&groups, self.timing, now).into_iter().cloned().collect();
            let mut taken = Vec::new();
            for g in &due {
                taken.extend(outbox.take(g, now)?);
            }
            let due_keys: HashSet<(&str, &str)> =
                due.iter().map(|g| (g.receiver.as_str(), g.group_key.as_str())).collect();
            let rest: Vec<GroupSummary> = groups
                .iter()
                .filter(|g| !due_keys.contains(&(g.receiver.as_str(), g.group_key.as_str())))
                .cloned()
                .collect();
            Ok((taken, group::next_due(&rest, self.timing)))
        })
    }

    async fn send(&self, n: &Notification) -> Result<(), String> {
        match self.receivers.get(&n.receiver) {
            Some(r) => r.send(&self.http, n, now_ms()).await,
            None => Err(format!("no receiver named {:?}", n.receiver)),
        }
    }

    /// Records the outcome of a send; false when the outbox could not be updated.
    fn record(&self, queue: &Queue, n: &Notification, result: Result<(), String>) -> bool {
        let now = now_ms();
        let outcome = match result {
            Ok(()) => {
                let m = &queue.metrics;
                m.delivered_notifications.fetch_add(1, Ordering::Relaxed);
                m.delivered_alerts.fetch_add(n.alerts.len() as u64, Ordering::Relaxed);
                tracing::info!(
                    "notify: {} alerts to {} ({}), notification {}",
                    n.alerts.len(),
                    n.receiver,
                    n.group_key,
                    n.id
                );
                queue.with_outbox(|o| o.mark_delivered(n, now))
            }
            Err(e) => {
                queue.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let max = self.max_retry_backoff;
                let marked = queue.with_outbox(|o| {
                    o.mark_failed(&n.id, &e, |attempts| now + millis(group::retry_delay(attempts, max)))
                });
                if let Ok(attempts) = &marked {
                    tracing::warn!(
                        "notify: {} ({}) failed, attempt {attempts}: {e}; retrying in {:?}",
                        n.receiver,
                        n.group_key,
                        group::retry_delay(*attempts, max)
                    );
                }
                marked.map(|_| ())
            }
        };
        match outcome {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("{e}");
                false
            }
        }
    }

    fn purge(&self, queue: &Queue, names: &HashSet<String>, now: i64) {
        let cutoff = now - millis(self.keep_delivered);
        match queue.with_outbox(|o| o.purge(cutoff, names)) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("notify: forgot {n} alerts delivered more than {:?} ago", self.keep_delivered)
            }
            Err(e) => tracing::error!("{e}"),
        }
        self.update_depth(queue);
    }

    fn update_depth(&self, queue: &Queue) {
        if let Ok(depth) = queue.with_outbox(|o| o.depth()) {
            queue.metrics.queue_depth.store(depth, Ordering::Relaxed);
        }
    }
}
