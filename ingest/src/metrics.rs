//! Counters and gauges of ingest, rendered in the Prometheus text format on `/metrics`.
//! Names are stable: dashboards and alerts are built on them.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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
    pub rule_errors: AtomicU64,
    pub alerts_firing_total: AtomicU64,
    pub alerts_resolved_total: AtomicU64,
    /// Alerts firing right now, by severity, counted from the rules engine's state.
    pub alerts_active: std::sync::Mutex<rules::engine::Firing>,
    pub rules_loaded: AtomicU64,
    pub rules_reloads: AtomicU64,
    pub rules_reload_failures: AtomicU64,
    /// False while the newest rule files failed to load (the previous rules run on).
    pub rules_reload_ok: AtomicBool,
    /// When the rules were last (re)loaded, ms since the epoch; and why the last reload failed.
    pub rules_last_reload_ms: AtomicI64,
    pub rules_last_error: std::sync::Mutex<Option<String>>,
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
    pub health: std::sync::Mutex<crate::health::Limits>,
    pub writes_failing_since_ms: AtomicI64,
    pub last_write_error: std::sync::Mutex<Option<String>>,
    /// Idle devices forgotten, and devices whose rules state is held.
    pub devices_evicted: AtomicU64,
    pub devices_tracked: AtomicU64,
}

/// The version and the git commit ingest was built from (`build.rs`).
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const BUILD_COMMIT: &str = env!("GIT_COMMIT");

fn counter(out: &mut String, name: &str, help: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

impl Metrics {
    /// The exposition text at `now_ms`.
    pub fn render(&self, now_ms: i64) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        counter(&mut out, "ingest_messages_received_total", "MQTT messages received.", g(&self.received));
        counter(&mut out, "ingest_messages_invalid_total", "Messages sent to dead-letter.", g(&self.invalid));
        counter(
            &mut out,
            "ingest_readings_duplicate_total",
            "Readings dropped as duplicates by (sid, seq).",
            g(&self.duplicates),
        );
        counter(
            &mut out,
            "ingest_readings_gap_total",
            "Readings missing between seq numbers seen.",
            g(&self.gaps),
        );
        counter(
            &mut out,
            "ingest_readings_written_total",
            "Readings written to the TSDB or files.",
            g(&self.written),
        );
        counter(&mut out, "ingest_write_batches_total", "Batches written.", g(&self.write_batches));
        counter(
            &mut out,
            "ingest_write_errors_total",
            "Failed write attempts (retried).",
            g(&self.write_errors),
        );
        counter(
            &mut out,
            "ingest_write_rejected_batches_total",
            "Batches the TSDB refused, kept in rejected.lp.",
            g(&self.rejected_batches),
        );
        let write_seconds = g(&self.write_seconds_total_micros) as f64 / 1e6;
        counter(&mut out, "ingest_write_seconds_total", "Time spent in successful writes.", write_seconds);
        gauge(
            &mut out,
            "ingest_wal_pending_records",
            "Records in the WAL not yet written.",
            g(&self.wal_pending) as f64,
        );
        gauge(&mut out, "ingest_wal_bytes", "Bytes of WAL segments on disk.", g(&self.wal_bytes) as f64);
        let oldest = self.wal_oldest_ms.load(Ordering::Relaxed);
        let age = if oldest > 0 { (now_ms - oldest).max(0) as f64 / 1000.0 } else { 0.0 };
        gauge(&mut out, "ingest_wal_oldest_age_seconds", "Age of the oldest record in the WAL.", age);
        counter(&mut out, "ingest_rule_evaluations_total", "Rule evaluations.", g(&self.rule_evaluations));
        counter(
            &mut out,
            "ingest_rule_errors_total",
            "Rule conditions that gave no answer.",
            g(&self.rule_errors),
        );
        let _ = writeln!(
            out,
            "# HELP ingest_alert_transitions_total Alert transitions by state.\n# TYPE ingest_alert_transitions_total counter\n\
             ingest_alert_transitions_total{{state=\"firing\"}} {}\ningest_alert_transitions_total{{state=\"resolved\"}} {}",
            g(&self.alerts_firing_total),
            g(&self.alerts_resolved_total)
        );
        let firing = self.alerts_active.lock().map(|f| *f).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP ingest_alerts_active Alerts firing now, by severity.\n# TYPE ingest_alerts_active gauge"
        );
        for (severity, n) in firing.by_severity() {
            let _ = writeln!(out, "ingest_alerts_active{{severity=\"{}\"}} {n}", severity.as_str());
        }
        gauge(&mut out, "ingest_rules_loaded", "Rules in force.", g(&self.rules_loaded) as f64);
        counter(&mut out, "ingest_rules_reloads_total", "Successful rule reloads.", g(&self.rules_reloads));
        counter(
            &mut out,
            "ingest_rules_reload_failures_total",
            "Rule reloads refused because a file was bad.",
            g(&self.rules_reload_failures),
        );
        let reload_ok = if self.rules_reload_ok.load(Ordering::Relaxed) { 1.0 } else { 0.0 };
        gauge(
            &mut out,
            "ingest_rules_last_reload_ok",
            "0 while the newest rule files failed to load.",
            reload_ok,
        );
        counter(
            &mut out,
            "ingest_console_failed_logins_total",
            "Console logins refused (wrong user or password).",
            g(&self.console_failed_logins),
        );
        self.notify.render(&mut out);
        gauge(
            &mut out,
            "ingest_registry_units",
            "Units in the equipment registry.",
            g(&self.registry_units) as f64,
        );
        gauge(
            &mut out,
            "ingest_registry_bad_rows",
            "Registry rows skipped as invalid.",
            g(&self.registry_bad_rows) as f64,
        );
        let up = |b: &AtomicBool| if b.load(Ordering::Relaxed) { 1.0 } else { 0.0 };
        gauge(
            &mut out,
            "ingest_mqtt_connected",
            "1 while connected to the broker.",
            up(&self.mqtt_connected),
        );
        gauge(
            &mut out,
            "ingest_mqtt_subscribed",
            "1 once the subscriptions are acknowledged.",
            up(&self.subscribed),
        );
        self.render_dead_letters(&mut out);
        let _ = writeln!(
            out,
            "# HELP ingest_build_info The version and git commit ingest was built from.\n# TYPE ingest_build_info gauge\n\
             ingest_build_info{{version=\"{BUILD_VERSION}\",commit=\"{BUILD_COMMIT}\"}} 1"
        );
        counter(
            &mut out,
            "ingest_devices_evicted_total",
            "Idle devices whose state was forgotten ([state] evict_idle_after).",
            g(&self.devices_evicted),
        );
        gauge(
            &mut out,
            "ingest_devices_tracked",
            "Devices whose rules state ingest holds.",
            g(&self.devices_tracked) as f64,
        );
        render_process(&mut out);
        out
    }

    fn render_dead_letters(&self, out: &mut String) {
        let name = "ingest_dead_letters_total";
        let _ =
            writeln!(out, "# HELP {name} Messages sent to dead-letter, by reason.\n# TYPE {name} counter");
        for r in crate::limits::Reason::ALL {
            let n = self.dead_letters[r.index()].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", r.label());
        }
    }
}

/// The Prometheus client libraries' standard process metrics, from /proc (Linux; left out
/// elsewhere): what a soak watches, on every dashboard.
fn render_process(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    if let Some(rss) = kib("VmRSS:") {
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", (rss * 1024) as f64);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (which may hold spaces): state is field 0, utime 11, stime 12, in
    // clock ticks of 1/100 s (USER_HZ).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
        let seconds = (user + system) as f64 / 100.0;
        counter(
            out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(text.contains("\ningest_messages_received_total 5\n"), "{text}");
        assert!(text.contains("\ningest_write_seconds_total 1.5\n"), "{text}");
        assert!(text.contains("\ningest_wal_oldest_age_seconds 10\n"), "{text}");
        let rss = text.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).unwrap();
        assert!(rss.parse::<f64>().unwrap() > 1e6, "{rss}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\ningest_dead_letters_total{reason=\"ts_future\"} 0\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty() && value.parse::<f64>().is_ok(), "{line}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }
}
