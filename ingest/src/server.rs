//! The async shell around [`Pipeline`]: consume MQTT with manual acknowledgements, write
//! batches to the sink, publish alerts and dead letters, and only then acknowledge.
//!
//! A message is acknowledged once its reading is durable in the TSDB or a synced file, so a
//! crash before that means the broker redelivers it (persistent session, QoS 1).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Publish, QoS};
use telemetry::{AlertMessage, AlertStatus, Topic, Topics};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::IngestConfig;
use crate::pipeline::{Outcome, Pipeline, Stats};
use crate::sink::{LineFiles, SinkError, TsdbWriter};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("rules:\n{0}")]
    Rules(String),
    #[error("{0}")]
    Sink(String),
    #[error("mqtt: {0}")]
    Mqtt(String),
}

/// What the embedding program (the demo, tests) can watch.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Every alert transition, as published.
    pub alerts: Option<mpsc::UnboundedSender<AlertMessage>>,
    pub stats: Arc<Mutex<Stats>>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Loads the configured rule files, or the built-in default pack.
pub fn load_rules(cfg: &IngestConfig) -> Result<rules::RuleSet, RunError> {
    let result = if cfg.rules.files.is_empty() {
        rules::default_pack()
    } else {
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
        rules::RuleSet::load(&files)
    };
    result.map_err(|d| RunError::Rules(d.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")))
}

enum Sink {
    Tsdb(TsdbWriter),
    Files,
}

#[derive(Default)]
struct Batch {
    lines: String,
    readings: usize,
    acks: Vec<Publish>,
    alerts: Vec<AlertMessage>,
    dead_letters: Vec<(String, Vec<u8>)>,
    started: Option<Instant>,
}

/// Runs ingest until `shutdown` turns true; then writes and acknowledges what it holds.
pub async fn run(
    cfg: IngestConfig,
    hooks: Hooks,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let engine = rules::Engine::new(load_rules(&cfg)?);
    tracing::info!("loaded {} rules", engine.rules().len());
    let topics = Topics::new(&cfg.mqtt.topic_prefix);
    let mut pipeline = Pipeline::new(topics.clone(), engine);
    let mut files = LineFiles::new(&cfg.files).map_err(|e| RunError::Sink(e.to_string()))?;
    let sink = match &cfg.tsdb {
        Some(t) => Sink::Tsdb(TsdbWriter::new(t).map_err(RunError::Sink)?),
        None => Sink::Files,
    };

    let (host, port) = gateway::config::parse_mqtt_url(&cfg.mqtt.url).map_err(RunError::Mqtt)?;
    let mut options = MqttOptions::new(&cfg.mqtt.client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let Some(user) = &cfg.mqtt.username {
        options.set_credentials(user, cfg.mqtt.password.clone().unwrap_or_default());
    }
    let (client, eventloop) = AsyncClient::new(options, 10_000);
    let (tx, mut rx) = mpsc::channel::<Publish>(10_000);
    let (driver_stop, driver_rx) = watch::channel(false);
    let driver = tokio::spawn(drive(eventloop, client.clone(), cfg.filters(), tx, driver_rx));

    let mut batch = Batch::default();
    loop {
        let deadline = batch.started.map(|t| t + cfg.batch.flush_every);
        tokio::select! {
            _ = shutdown.changed() => break,
            msg = rx.recv() => {
                let Some(publish) = msg else { break };
                match pipeline.handle(&publish.topic, &publish.payload, now_ms()) {
                    Outcome::Reading { lines, alerts, .. } => {
                        batch.lines.push_str(&lines);
                        batch.readings += 1;
                        batch.alerts.extend(alerts);
                    }
                    Outcome::DeadLetter { topic, payload, reason } => {
                        tracing::warn!("dead letter from {}: {reason}", publish.topic);
                        batch.dead_letters.push((topic, payload));
                    }
                }
                batch.acks.push(publish);
                batch.started.get_or_insert_with(Instant::now);
                if batch.readings >= cfg.batch.max_readings {
                    flush(&mut batch, &sink, &mut files, &client, &topics, &hooks, &pipeline, &mut shutdown).await;
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                flush(&mut batch, &sink, &mut files, &client, &topics, &hooks, &pipeline, &mut shutdown).await;
            }
        }
    }
    flush(&mut batch, &sink, &mut files, &client, &topics, &hooks, &pipeline, &mut shutdown).await;
    let _ = driver_stop.send(true);
    let _ = driver.await;
    Ok(())
}

/// Writes the batch until it is durable, publishes its alerts and dead letters, then acks.
#[allow(clippy::too_many_arguments)]
async fn flush(
    batch: &mut Batch,
    sink: &Sink,
    files: &mut LineFiles,
    client: &AsyncClient,
    topics: &Topics,
    hooks: &Hooks,
    pipeline: &Pipeline,
    shutdown: &mut watch::Receiver<bool>,
) {
    if batch.acks.is_empty() {
        return;
    }
    let body = std::mem::take(&mut batch.lines);
    let mut backoff = Duration::from_millis(100);
    while !body.is_empty() {
        let result = match sink {
            Sink::Tsdb(w) => w.write(&body).await,
            Sink::Files => files.write(&body, SystemTime::now()),
        };
        match result {
            Ok(()) => break,
            Err(SinkError::Rejected(why)) => {
                match files.keep_rejected(&body, &why) {
                    Ok(path) => tracing::error!("TSDB rejected a batch ({why}); kept in {}", path.display()),
                    Err(e) => tracing::error!("TSDB rejected a batch ({why}) and it could not be kept: {e}"),
                }
                break;
            }
            Err(e) => {
                tracing::warn!("{e}; retrying in {backoff:?}");
                if *shutdown.borrow() {
                    // Stopping: leave the messages unacknowledged; the broker redelivers them.
                    tracing::warn!(
                        "stopping with {} unacknowledged messages; the broker keeps them",
                        batch.acks.len()
                    );
                    *batch = Batch::default();
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    for (topic, payload) in batch.dead_letters.drain(..) {
        let _ = client.publish(topic, QoS::AtLeastOnce, false, payload).await;
    }
    let events = topics.build(&Topic::AlertEvents);
    for alert in batch.alerts.drain(..) {
        let json = serde_json::to_vec(&alert).unwrap_or_default();
        let state_topic =
            topics.build(&Topic::Alert { device: alert.device.clone(), rule: alert.rule.clone() });
        let retained = if alert.status == AlertStatus::Resolved { Vec::new() } else { json.clone() };
        let _ = client.publish(state_topic, QoS::AtLeastOnce, true, retained).await;
        let _ = client.publish(&events, QoS::AtLeastOnce, false, json).await;
        tracing::info!("alert {} {} {}: {}", alert.status.as_str(), alert.rule, alert.device, alert.summary);
        if let Some(tx) = &hooks.alerts {
            let _ = tx.send(alert);
        }
    }
    for publish in batch.acks.drain(..) {
        let _ = client.ack(&publish).await;
    }
    if let Ok(mut stats) = hooks.stats.lock() {
        *stats = pipeline.stats.clone();
    }
    *batch = Batch::default();
}

/// Polls the event loop: subscribes on every new session, forwards publishes, reconnects
/// with backoff.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::Sender<Publish>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.changed() => {
                // Let the last acks and alerts go out, then leave cleanly.
                let _ = client.disconnect().await;
                let drain = async { while eventloop.poll().await.is_ok() {} };
                let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
                return;
            }
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff = Duration::from_millis(200);
                tracing::info!("connected to the MQTT broker (session present: {})", ack.session_present);
                if !ack.session_present {
                    let (client, filters) = (client.clone(), filters.clone());
                    tokio::spawn(async move {
                        for f in filters {
                            if let Err(e) = client.subscribe(&f, QoS::AtLeastOnce).await {
                                tracing::error!("subscribe {f}: {e}");
                            }
                        }
                    });
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                tracing::info!("subscribed ({:?})", ack.return_codes);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("MQTT connection: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
