//! Ingest's `/metrics`. The rest of ingest updates plain atomics here (readiness and the console
//! read them too); at each scrape they are handed to the `prometheus-client` crate as a
//! [`Collector`], beside its write-latency [`Histogram`], and encoded in the Prometheus text
//! format 0.0.4. Names are stable: dashboards and alerts are built on them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rules::engine::RuleErrors;

use crate::notify::NotifyMetrics;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub invalid: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps: AtomicU64,
    pub written: AtomicU64,
    pub write_batches: AtomicU64,
    pub write_errors: AtomicU64,
    pub rejected_batches: AtomicU64,
    pub write_seconds_total_micros: AtomicU64,
    pub wal_pending: AtomicU64,
    pub wal_bytes: AtomicU64,
    /// Receive time (ms) of the oldest record still in the WAL, 0 when empty.
    pub wal_oldest_ms: AtomicI64,
    pub rule_evaluations: AtomicU64,
    /// Each loaded rule's evaluation errors, copied from the rules engine after each batch.
    pub rule_errors: Mutex<Vec<(String, RuleErrors)>>,
    pub alerts_firing_total: AtomicU64,
    pub alerts_resolved_total: AtomicU64,
    /// Alerts firing right now, by severity, counted from the rules engine's state.
    pub alerts_active: Mutex<rules::engine::Firing>,
    pub rules_loaded: AtomicU64,
    pub rules_reloads: AtomicU64,
    pub rules_reload_failures: AtomicU64,
    /// False while the newest rule files failed to load (the previous rules run on).
    pub rules_reload_ok: AtomicBool,
    /// When the rules were last (re)loaded, ms since the epoch; and why the last reload failed.
    pub rules_last_reload_ms: AtomicI64,
    pub rules_last_error: Mutex<Option<String>>,
    pub console_failed_logins: AtomicU64,
    pub notify: std::sync::Arc<crate::notify::NotifyMetrics>,
    pub registry_units: AtomicU64,
    pub registry_bad_rows: AtomicU64,
    pub mqtt_connected: AtomicBool,
    pub subscribed: AtomicBool,
    /// Dead letters by reason, indexed by [`crate::limits::Reason::index`].
    pub dead_letters: [AtomicU64; crate::limits::Reason::ALL.len()],
    /// Readiness: the thresholds, when the writes started failing (0 while they succeed) and
    /// the newest write error, redacted.
    pub health: Mutex<crate::health::Limits>,
    pub writes_failing_since_ms: AtomicI64,
    pub last_write_error: Mutex<Option<String>>,
    /// Idle devices forgotten, and devices whose rules state is held.
    pub devices_evicted: AtomicU64,
    pub devices_tracked: AtomicU64,
    /// Seconds per write attempt to the TSDB or the line files, failed ones included.
    pub write_duration: WriteDuration,
}

/// The version and the git commit ingest was built from (`build.rs`).
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const BUILD_COMMIT: &str = env!("GIT_COMMIT");

/// Upper bounds (seconds) of `ingest_write_duration_seconds`: a local write takes about a
/// millisecond, and a TSDB that does not answer is given up on after 30 s.
pub const WRITE_DURATION_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// `ingest_write_duration_seconds`; a clone observes into the same histogram.
#[derive(Clone, Debug)]
pub struct WriteDuration(Histogram);

impl Default for WriteDuration {
    fn default() -> Self {
        WriteDuration(Histogram::new(WRITE_DURATION_BUCKETS))
    }
}

impl WriteDuration {
    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }
}

impl Metrics {
    /// The exposition text at `now_ms`.
    pub fn render(&self, now_ms: i64) -> String {
        let mut registry = Registry::default();
        registry.register(
            "ingest_write_duration_seconds",
            "Seconds per write attempt to the TSDB or the line files, failed ones included",
            self.write_duration.0.clone(),
        );
        registry.register_collector(Box::new(self.families(now_ms)));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).expect("a String takes every write");
        out
    }

    /// Keeps the engine's per-rule errors for the next scrape and the console.
    pub fn set_rule_errors<'a>(&self, errors: impl Iterator<Item = (&'a str, &'a RuleErrors)>) {
        if let Ok(mut kept) = self.rule_errors.lock() {
            kept.clear();
            kept.extend(errors.map(|(rule, e)| (rule.to_string(), e.clone())));
        }
    }

    /// Every counter and gauge as it is now.
    fn families(&self, now_ms: i64) -> Families {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let up = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
        let mut f = Families::default();
        f.counter("ingest_messages_received_total", "MQTT messages received.", g(&self.received));
        f.counter("ingest_messages_invalid_total", "Messages sent to dead-letter.", g(&self.invalid));
        f.counter(
            "ingest_readings_duplicate_total",
            "Readings dropped as duplicates by (sid, seq).",
            g(&self.duplicates),
        );
        f.counter("ingest_readings_gap_total", "Readings missing between seq numbers seen.", g(&self.gaps));
        f.counter(
            "ingest_readings_written_total",
            "Readings written to the TSDB or files.",
            g(&self.written),
        );
        f.counter("ingest_write_batches_total", "Batches written.", g(&self.write_batches));
        f.counter("ingest_write_errors_total", "Failed write attempts (retried).", g(&self.write_errors));
        f.counter(
            "ingest_write_rejected_batches_total",
            "Batches the TSDB refused, kept in rejected.lp.",
            g(&self.rejected_batches),
        );
        let write_seconds = g(&self.write_seconds_total_micros) as f64 / 1e6;
        f.counter("ingest_write_seconds_total", "Time spent in successful writes.", write_seconds);
        f.gauge("ingest_wal_pending_records", "Records in the WAL not yet written.", g(&self.wal_pending));
        f.gauge("ingest_wal_bytes", "Bytes of WAL segments on disk.", g(&self.wal_bytes));
        let oldest = self.wal_oldest_ms.load(Ordering::Relaxed);
        let age = if oldest > 0 { (now_ms - oldest).max(0) as f64 / 1000.0 } else { 0.0 };
        f.gauge("ingest_wal_oldest_age_seconds", "Age of the oldest record in the WAL.", age);
        f.counter("ingest_rule_evaluations_total", "Rule evaluations.", g(&self.rule_evaluations));
        let rule_errors = self.rule_errors.lock().map(|e| e.clone()).unwrap_or_default();
        f.labelled(
            "ingest_rule_errors_total",
            "Rule conditions that gave no answer, by rule.",
            MetricType::Counter,
            rule_errors.into_iter().map(|(rule, e)| (vec![("rule", rule)], e.count.into())).collect(),
        );
        let transitions = [("firing", &self.alerts_firing_total), ("resolved", &self.alerts_resolved_total)];
        f.labelled(
            "ingest_alert_transitions_total",
            "Alert transitions by state.",
            MetricType::Counter,
            transitions.iter().map(|(state, n)| (vec![("state", state.to_string())], g(n).into())).collect(),
        );
        let firing = self.alerts_active.lock().map(|f| *f).unwrap_or_default();
        f.labelled(
            "ingest_alerts_active",
            "Alerts firing now, by severity.",
            MetricType::Gauge,
            (firing.by_severity().into_iter())
                .map(|(severity, n)| (vec![("severity", severity.as_str().to_string())], Number::from(n)))
                .collect(),
        );
        f.gauge("ingest_rules_loaded", "Rules in force.", g(&self.rules_loaded));
        f.counter("ingest_rules_reloads_total", "Successful rule reloads.", g(&self.rules_reloads));
        f.counter(
            "ingest_rules_reload_failures_total",
            "Rule reloads refused because a file was bad.",
            g(&self.rules_reload_failures),
        );
        f.gauge(
            "ingest_rules_last_reload_ok",
            "0 while the newest rule files failed to load.",
            up(&self.rules_reload_ok),
        );
        f.counter(
            "ingest_console_failed_logins_total",
            "Console logins refused (wrong user or password).",
            g(&self.console_failed_logins),
        );
        describe_notify(&self.notify, &mut f);
        f.gauge("ingest_registry_units", "Units in the equipment registry.", g(&self.registry_units));
        f.gauge("ingest_registry_bad_rows", "Registry rows skipped as invalid.", g(&self.registry_bad_rows));
        f.gauge("ingest_mqtt_connected", "1 while connected to the broker.", up(&self.mqtt_connected));
        f.gauge("ingest_mqtt_subscribed", "1 once the subscriptions are acknowledged.", up(&self.subscribed));
        let reasons = crate::limits::Reason::ALL.iter();
        f.labelled(
            "ingest_dead_letters_total",
            "Messages sent to dead-letter, by reason.",
            MetricType::Counter,
            reasons
                .map(|r| (vec![("reason", r.label().to_string())], g(&self.dead_letters[r.index()]).into()))
                .collect(),
        );
        f.labelled(
            "ingest_build_info",
            "The version and git commit ingest was built from.",
            MetricType::Gauge,
            vec![(
                vec![("version", BUILD_VERSION.to_string()), ("commit", BUILD_COMMIT.to_string())],
                1u64.into(),
            )],
        );
        f.counter(
            "ingest_devices_evicted_total",
            "Idle devices whose state was forgotten ([state] evict_idle_after).",
            g(&self.devices_evicted),
        );
        f.gauge(
            "ingest_devices_tracked",
            "Devices whose rules state ingest holds.",
            g(&self.devices_tracked),
        );
        describe_process(&mut f);
        f
    }
}

/// The Prometheus client libraries' standard process metrics, from /proc (Linux; left out
/// elsewhere): what a soak watches, on every dashboard.
/// Adds the notifier's series to a scrape.
fn describe_notify(n: &NotifyMetrics, f: &mut Families) {
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    f.counter("ingest_notify_alerts_enqueued_total", "Alerts queued for a receiver.", g(&n.enqueued));
    f.counter(
        "ingest_notify_notifications_delivered_total",
        "Notifications a receiver accepted.",
        g(&n.delivered_notifications),
    );
    f.counter(
        "ingest_notify_alerts_delivered_total",
        "Alerts in delivered notifications.",
        g(&n.delivered_alerts),
    );
    f.counter(
        "ingest_notify_failed_attempts_total",
        "Delivery attempts that failed (retried with backoff).",
        g(&n.failed_attempts),
    );
    f.gauge("ingest_notify_queue_depth", "Alerts queued and not yet delivered.", g(&n.queue_depth));
    f.counter(
        "ingest_notify_outbox_errors_total",
        "Errors reading or writing the notification outbox.",
        g(&n.outbox_errors),
    );
}

fn describe_process(f: &mut Families) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    if let Some(rss) = kib("VmRSS:") {
        f.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", rss * 1024);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (which may hold spaces): state is field 0, utime 11, stime 12, in
    // clock ticks of 1/100 s (USER_HZ).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
        let seconds = (user + system) as f64 / 100.0;
        f.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", seconds);
    }
}

/// One series' value: counts stay integers in the text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Number {
    Int(u64),
    Float(f64),
}

impl From<u64> for Number {
    fn from(n: u64) -> Self {
        Number::Int(n)
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Number::Float(x)
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    /// As encoded before the type's suffix: a counter's without `_total`.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Number)>,
}

/// The values of one scrape, which prometheus-client encodes as a [`Collector`].
#[derive(Debug, Default)]
pub(crate) struct Families(Vec<Family>);

impl Families {
    /// `name` as exposed, ending in `_total`.
    pub(crate) fn counter(&mut self, name: &'static str, help: &'static str, value: impl Into<Number>) {
        self.labelled(name, help, MetricType::Counter, vec![(Vec::new(), value.into())]);
    }

    pub(crate) fn gauge(&mut self, name: &'static str, help: &'static str, value: impl Into<Number>) {
        self.labelled(name, help, MetricType::Gauge, vec![(Vec::new(), value.into())]);
    }

    fn labelled(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        series: Vec<(Labels, Number)>,
    ) {
        let name = match kind {
            // The encoder appends the suffix.
            MetricType::Counter => name.strip_suffix("_total").expect("a counter's name ends in _total"),
            _ => name,
        };
        self.0.push(Family { name, help, kind, series });
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A family without series (no rules loaded) is left out, as client libraries do.
        for family in self.0.iter().filter(|f| !f.series.is_empty()) {
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.series {
                let series = metric.encode_family(labels)?;
                match (family.kind, *value) {
                    (MetricType::Counter, Number::Int(n)) => ConstCounter::new(n).encode(series)?,
                    (MetricType::Counter, Number::Float(x)) => ConstCounter::new(x).encode(series)?,
                    (_, Number::Int(n)) => ConstGauge::new(n).encode(series)?,
                    (_, Number::Float(x)) => ConstGauge::new(x).encode(series)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series line that starts with `series ` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn renders_every_metric_once_in_text_format() {
        let m = Metrics::default();
        m.received.store(5, Ordering::Relaxed);
        m.write_seconds_total_micros.store(1_500_000, Ordering::Relaxed);
        m.wal_oldest_ms.store(1_000, Ordering::Relaxed);
        *m.alerts_active.lock().unwrap() =
            rules::engine::Firing { critical: 2, info: 1, ..Default::default() };
        let text = m.render(11_000);
        assert!(text.contains("\ningest_alerts_active{severity=\"critical\"} 2\n"), "{text}");
        assert!(text.contains("\ningest_alerts_active{severity=\"major\"} 0\n"), "{text}");
        assert!(text.contains("\ningest_alerts_active{severity=\"info\"} 1\n"), "{text}");
        let build =
            format!("\ningest_build_info{{version=\"{BUILD_VERSION}\",commit=\"{BUILD_COMMIT}\"}} 1\n");
        assert!(text.contains(&build), "{text}");
        assert!(!BUILD_COMMIT.is_empty());
        assert!(text.contains("# HELP ingest_messages_received_total MQTT messages received.\n"), "{text}");
        assert!(text.contains("# TYPE ingest_messages_received_total counter\n"), "{text}");
        assert!(text.contains("\ningest_messages_received_total 5\n"), "{text}");
        assert_eq!(value(&text, "ingest_write_seconds_total"), Some(1.5), "{text}");
        assert_eq!(value(&text, "ingest_wal_oldest_age_seconds"), Some(10.0), "{text}");
        assert!(value(&text, "process_resident_memory_bytes").unwrap() > 1e6, "{text}");
        assert!(value(&text, "process_cpu_seconds_total").is_some(), "{text}");
        assert!(text.contains("\ningest_dead_letters_total{reason=\"ts_future\"} 0\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "text format 0.0.4, not OpenMetrics");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty() && value.parse::<f64>().is_ok(), "{line}");
        }
        let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types.len(), helps);
        let mut names: Vec<&str> = types.iter().map(|t| t.split(' ').next().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), types.len(), "each family once");
    }

    #[test]
    fn a_rule_whose_condition_errors_counts_under_its_own_id() {
        let rules = rules::RuleSet::parse(
            "r.toml",
            r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > 1.25"
severity = "critical"
summary = "over pressure"

[[rule]]
id = "boiler.low_water"
kinds = ["boiler"]
when = "water_level_mm < 100.0"
severity = "major"
summary = "low water"
"#,
        )
        .unwrap();
        let mut engine = rules::Engine::new(rules);
        // A number compared with words: the condition gives no answer.
        let words = telemetry::Reading::new("gw", "b1", "boiler", 1, 1, 1_000)
            .with_value("pressure_mpa", "high")
            .with_value("water_level_mm", 300.0);
        engine.process(&words);
        let m = Metrics::default();
        m.set_rule_errors(engine.rule_errors());
        let text = m.render(0);
        assert!(text.contains("# TYPE ingest_rule_errors_total counter\n"), "{text}");
        assert_eq!(
            value(&text, "ingest_rule_errors_total{rule=\"boiler.over_pressure\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&text, "ingest_rule_errors_total{rule=\"boiler.low_water\"}"), Some(0.0), "{text}");
        let kept = m.rule_errors.lock().unwrap();
        assert!(kept[0].1.last_error.as_deref().is_some_and(|e| e.starts_with("b1: ")), "{kept:?}");
    }

    #[test]
    fn the_write_duration_histogram_has_every_bucket() {
        let m = Metrics::default();
        m.write_duration.observe(Duration::from_millis(3));
        m.write_duration.observe(Duration::from_secs(40));
        let text = m.render(0);
        assert!(text.contains("# TYPE ingest_write_duration_seconds histogram\n"), "{text}");
        let bucket = |le: &str| value(&text, &format!("ingest_write_duration_seconds_bucket{{le=\"{le}\"}}"));
        assert_eq!(bucket("0.001"), Some(0.0), "{text}");
        assert_eq!(bucket("0.005"), Some(1.0), "{text}");
        assert_eq!(bucket("30"), Some(1.0), "{text}");
        assert_eq!(bucket("+Inf"), Some(2.0), "{text}");
        assert_eq!(value(&text, "ingest_write_duration_seconds_count"), Some(2.0), "{text}");
        let buckets = text.lines().filter(|l| l.starts_with("ingest_write_duration_seconds_bucket")).count();
        assert_eq!(buckets, WRITE_DURATION_BUCKETS.len() + 1);
    }

    #[test]
    fn the_notifier_series_are_in_ingests_text() {
        let notify = std::sync::Arc::new(NotifyMetrics::default());
        notify.delivered_alerts.store(500, Ordering::Relaxed);
        let text = Metrics { notify, ..Default::default() }.render(0);
        assert!(text.contains("\ningest_notify_alerts_delivered_total 500\n"), "{text}");
        assert!(text.contains("# TYPE ingest_notify_queue_depth gauge\n"), "{text}");
        assert!(text.contains("# TYPE ingest_notify_outbox_errors_total counter\n"), "{text}");
    }
}
