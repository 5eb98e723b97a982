//! The async shell around [`Pipeline`], three tasks and a write-ahead log between them:
//!
//! ```text
//! broker ─▶ mqtt::drive ─▶ mqtt::receive ──append+sync──▶ WAL ──▶ writer::run ─▶ TSDB / files
//!                               │ ack to the broker                 │ rules, alerts, dead letters
//! ```
//!
//! A message is acknowledged to the broker only once it is synced in the WAL, and leaves the
//! WAL only once its reading is written. A crash loses nothing acknowledged: the broker
//! redelivers what was not, and the WAL replays what was not written.
//!
//! The writer's periodic jobs are due when `timers` says, a pure schedule with the time passed
//! in; `persist` saves the engine's state and reloads rule files; `commands` serves the
//! console.

mod commands;
mod mqtt;
mod persist;
mod timers;
mod writer;

use std::sync::{Arc, Mutex};

use rumqttc::AsyncClient;
use telemetry::spool::{FolderLock, LockError, Spool, SpoolConfig, WhenFull};
use telemetry::{AlertMessage, Topics};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::IngestConfig;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Stats};
use crate::sink::{LineFiles, Sink, TsdbWriter};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("rules:\n{0}")]
    Rules(String),
    #[error("{0}")]
    Sink(String),
    #[error("wal: {0}")]
    Wal(String),
    #[error("mqtt: {0}")]
    Mqtt(String),
    #[error("http: {0}")]
    Http(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error("alert state: {0}")]
    State(String),
    #[error("console: {0}")]
    Console(String),
    #[error("{0}")]
    Notify(String),
}

/// What the embedding program (the demo, tests) can watch.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Every alert transition, as published.
    pub alerts: Option<mpsc::UnboundedSender<AlertMessage>>,
    pub stats: Arc<Mutex<Stats>>,
    pub metrics: Arc<Metrics>,
}

/// The configured rule files, folders expanded to their `*.toml` files in a stable order.
pub fn rule_files(cfg: &IngestConfig) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for p in &cfg.rules.files {
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut found: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                found.sort();
                files.extend(found);
            }
            Err(_) => files.push(p.clone()),
        }
    }
    files
}

/// Loads the configured rule files, or the built-in default pack, with the decimals of the
/// configured (or built-in) profiles.
pub fn load_rules(cfg: &IngestConfig) -> Result<rules::RuleSet, RunError> {
    let profiles = match &cfg.rules.profiles {
        Some(dir) => rules::profiles::Profiles::load_dir(dir),
        None => Ok(rules::profiles::Profiles::built_in()),
    };
    let result = if cfg.rules.files.is_empty() {
        rules::default_pack()
    } else {
        rules::RuleSet::load(&rule_files(cfg))
    };
    let (mut set, profiles) = result
        .and_then(|set| profiles.map(|p| (set, p)))
        .map_err(|d| RunError::Rules(d.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")))?;
    profiles.apply_decimals(&mut set);
    Ok(set)
}

/// Runs ingest until `shutdown` turns true; then writes what the WAL holds (one attempt) and
/// leaves the rest there for the next start.
pub async fn run(cfg: IngestConfig, hooks: Hooks, shutdown: watch::Receiver<bool>) -> Result<(), RunError> {
    // First: a second ingest on the same WAL (and so the same state) stops before touching either.
    let _wal_lock = FolderLock::take(&cfg.wal.dir).map_err(|e| match e {
        LockError::InUse { dir, holder } => {
            RunError::Wal(format!("{dir}: in use by {holder} (one ingest per WAL folder)"))
        }
        e => RunError::Wal(e.to_string()),
    })?;
    let engine = rules::Engine::new(load_rules(&cfg)?);
    tracing::info!("loaded {} rules", engine.rules().len());
    hooks.metrics.rules_loaded.store(engine.rules().len() as u64, std::sync::atomic::Ordering::Relaxed);
    hooks.metrics.rules_reload_ok.store(true, std::sync::atomic::Ordering::Relaxed);
    hooks.metrics.rules_last_reload_ms.store(telemetry::now_ms(), std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut limits) = hooks.metrics.health.lock() {
        *limits = cfg.health.limits(cfg.wal.max_bytes.0);
    }
    let topics = Topics::new(&cfg.mqtt.topic_prefix);
    let mut pipeline = Pipeline::new(topics.clone(), engine);
    pipeline.set_limits(cfg.limits.clone());
    pipeline.set_evict_idle_after(Some(cfg.state.evict_idle_after));
    let state = match cfg.state_path() {
        Some(path) => {
            let store = crate::state::StateStore::open(&path).map_err(RunError::State)?;
            if let Some((snapshot, wal_id)) = store.load().map_err(RunError::State)? {
                pipeline.engine_mut().restore(snapshot).map_err(|e| RunError::State(e.to_string()))?;
                tracing::info!("alert state restored from {} (WAL position {wal_id})", path.display());
            }
            Some(store)
        }
        None => None,
    };
    let records = match &state {
        Some(s) => s.inspection_records().map_err(RunError::State)?,
        None => Vec::new(),
    };
    // The registry is in force before the first message is judged.
    let mut registry_file = cfg.registry.file.as_deref().map(crate::registry::RegistryFile::new);
    if let Some(file) = registry_file.as_mut() {
        writer::reload(file, &mut pipeline, &hooks.metrics, cfg.registry.reject_unknown_devices, &records)
            .map_err(RunError::Registry)?;
    }
    let console =
        crate::console::Console::new(&cfg.console, cfg.state_path().as_deref(), hooks.metrics.clone())
            .map_err(RunError::Console)?;
    let notifier =
        crate::notify::Notifier::open(&cfg.notify, &cfg.outbox_path(), hooks.metrics.notify.clone())
            .map_err(RunError::Notify)?;
    let notify = notifier.handle();
    let notifier = tokio::spawn(notifier.run(shutdown.clone()));
    let (console, console_side) = match console {
        Some((c, side)) => (Some(c), Some(side)),
        None => (None, None),
    };
    let write_duration = hooks.metrics.write_duration.clone();
    let files = LineFiles::new(&cfg.files).map_err(|e| RunError::Sink(e.to_string()))?;
    let files = files.timed_by(write_duration.clone());
    let sink = match &cfg.tsdb {
        Some(t) => Sink::Tsdb(Box::new(TsdbWriter::new(t).map_err(RunError::Sink)?.timed_by(write_duration))),
        None => Sink::Files,
    };
    let wal_cfg = SpoolConfig {
        max_bytes: cfg.wal.max_bytes.0,
        segment_bytes: cfg.wal.segment_bytes.0,
        when_full: WhenFull::Block,
        max_age: None,
        // Room for a whole message at the limit; one over it goes in cut (see mqtt::append_all).
        max_record_bytes: (cfg.limits.max_message_bytes.0 + 128 * 1024).clamp(4 << 20, u32::MAX as u64)
            as u32,
    };
    let wal = Spool::open(&cfg.wal.dir, wal_cfg).map_err(|e| RunError::Wal(e.to_string()))?;
    if wal.pending() > 0 {
        tracing::info!("replaying {} records from the WAL in {}", wal.pending(), cfg.wal.dir.display());
    }
    let wal = Arc::new(Mutex::new(wal));

    let http = match cfg.http.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| RunError::Http(format!("{addr}: {e}")))?;
            let local = listener.local_addr().map_err(|e| RunError::Http(e.to_string()))?;
            match &console {
                Some(_) => tracing::info!("console, API and metrics on http://{local}"),
                None => tracing::warn!(
                    "metrics and health on http://{local}, open to anyone; the console is off (no [[console.user]] or [[console.token]])"
                ),
            }
            let app = match console {
                Some(c) => crate::console::api::router_with_health(c),
                None => crate::http::router(hooks.metrics.clone()),
            };
            Some(tokio::spawn(crate::http::serve(listener, app, shutdown.clone())))
        }
        None => None,
    };

    let mut options = cfg
        .mqtt
        .options(crate::config::DEFAULT_CLIENT_ID)
        .map_err(|e| RunError::Mqtt(crate::redact::redact(&e).into_owned()))?;
    options.set_manual_acks(true).set_max_packet_size(mqtt::MQTT_MAX_PACKET, 1024 * 1024);
    let (client, eventloop) = AsyncClient::new(options, 10_000);
    let (tx, rx) = mpsc::channel(10_000);
    let (driver_stop, driver_rx) = watch::channel(false);
    let driver = tokio::spawn(mqtt::drive(
        eventloop,
        client.clone(),
        cfg.filters(),
        tx,
        hooks.metrics.clone(),
        driver_rx,
    ));
    let written = Arc::new(Notify::new());
    let receiver = tokio::spawn(mqtt::receive(
        rx,
        client.clone(),
        wal.clone(),
        written.clone(),
        hooks.metrics.clone(),
        cfg.limits.max_message_bytes.0.min(usize::MAX as u64) as usize,
        shutdown.clone(),
    ));
    let writer = writer::Writer {
        cfg: cfg.clone(),
        registry: registry_file,
        state,
        processed: 0,
        saved: 0,
        timers: timers::Timers::new(timers::Periods::of(&cfg), tokio::time::Instant::now()),
        rules_watch: persist::RulesWatch::new(&cfg),
        wal: wal.clone(),
        sink,
        files,
        client: client.clone(),
        topics,
        hooks: hooks.clone(),
        console: console_side,
        records,
        held: Default::default(),
        notify,
    };
    let writer = tokio::spawn(writer.run(pipeline, written, shutdown.clone()));

    let _ = receiver.await;
    let _ = writer.await;
    let _ = driver_stop.send(true);
    let _ = driver.await;
    let _ = notifier.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    if let Ok(w) = wal.lock() {
        if w.pending() > 0 {
            tracing::warn!("{} records stay in the WAL for the next start", w.pending());
        }
    }
    Ok(())
}

#[cfg(test)]
mod load_rules_tests {
    use super::*;

    fn over_pressure_summary(cfg: &IngestConfig) -> String {
        let set = load_rules(cfg).unwrap();
        let rule = set.rules.iter().find(|r| r.id == "boiler.over_pressure").unwrap();
        let r = telemetry::Reading::new("gw", "b1", "boiler", 1, 1, 1).with_value("pressure_mpa", 1.3826844);
        rule.summary.render(&r, None)
    }

    #[test]
    fn summaries_take_the_decimals_of_the_profiles() {
        let mut cfg: IngestConfig = toml::from_str("[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n").unwrap();
        assert_eq!(over_pressure_summary(&cfg), "b1 超压 over pressure: 1.38 MPa");
        let dir = tempfile::tempdir().unwrap();
        let profile =
            telemetry::builtin_profiles::BUILT_IN.iter().find(|(n, _)| *n == "boiler-ctl-v1").unwrap().1;
        let profile = profile.replace("unit = \"MPa\"", "unit = \"MPa\"\ndecimals = 4");
        std::fs::write(dir.path().join("boiler.toml"), profile).unwrap();
        cfg.rules.profiles = Some(dir.path().to_path_buf());
        assert_eq!(over_pressure_summary(&cfg), "b1 超压 over pressure: 1.3827 MPa");
        cfg.rules.profiles = Some(dir.path().join("missing"));
        assert!(load_rules(&cfg).is_err());
    }
}
