//! MQTT publishing: readings at QoS 1, a retained birth and last will on `status/{gateway}`,
//! retained device health on `status/{gateway}/{device}`.
//!
//! One task owns the rumqttc `EventLoop` and only polls it ([`drive`]); everything else
//! publishes through the cloneable [`Publisher`]. The session is persistent (clean session off,
//! stable client id), so QoS 1 messages queued while the link is down survive a reconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ClientError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use serde::Serialize;
use telemetry::{Reading, Topic, Topics};
use tokio::sync::watch;

use crate::config::{parse_mqtt_url, GatewayConfig};

/// Counts publishes handed to the client and acknowledged by the broker.
#[derive(Debug, Default)]
pub struct Counters {
    pub queued: AtomicU64,
    pub acked: AtomicU64,
}

#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    topics: Topics,
    partitions: u32,
    gateway: String,
    counters: Arc<Counters>,
}

/// Health of one device, retained on `status/{gateway}/{device}`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeviceStatus {
    pub online: bool,
    pub ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub rtt_ms: u64,
    pub polls: u64,
    pub failed_polls: u64,
    pub overruns: u64,
}

#[derive(Serialize)]
struct GatewayStatus<'a> {
    online: bool,
    sid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    town: Option<&'a str>,
    devices: Vec<BirthDevice<'a>>,
}

#[derive(Serialize)]
struct BirthDevice<'a> {
    id: &'a str,
    kind: &'a str,
    profile: &'a str,
}

impl Publisher {
    /// Creates the client. Nothing is sent until [`drive`] polls the event loop.
    pub fn new(cfg: &GatewayConfig, session: u64) -> Result<(Publisher, EventLoop, Birth), String> {
        let (host, port) = parse_mqtt_url(&cfg.mqtt.url)?;
        let client_id = cfg.mqtt.client_id.clone().unwrap_or_else(|| cfg.gateway.id.clone());
        let topics = Topics::new(&cfg.mqtt.topic_prefix);
        let status_topic = topics.build(&Topic::GatewayStatus { gateway: cfg.gateway.id.clone() });
        let lines = cfg.build().map_err(|e| e.to_string())?;
        let devices: Vec<BirthDevice> = lines
            .iter()
            .flat_map(|l| &l.devices)
            .map(|d| BirthDevice { id: &d.config.id, kind: &d.profile.kind, profile: &d.profile.name })
            .collect();
        let town = cfg.gateway.town.as_deref();
        let birth = serde_json::to_vec(&GatewayStatus { online: true, sid: session, town, devices })
            .map_err(|e| e.to_string())?;
        let will = serde_json::to_vec(&GatewayStatus { online: false, sid: session, town, devices: vec![] })
            .map_err(|e| e.to_string())?;

        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(cfg.mqtt.keep_alive)
            .set_clean_session(false)
            .set_max_packet_size(256 * 1024, 256 * 1024)
            .set_inflight(100)
            .set_last_will(LastWill::new(&status_topic, will.clone(), QoS::AtLeastOnce, true));
        if let Some(user) = &cfg.mqtt.username {
            let password = match (&cfg.mqtt.password, &cfg.mqtt.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| format!("mqtt.password_file {}: {e}", f.display()))?
                    .trim_end()
                    .to_string(),
                (None, None) => String::new(),
            };
            options.set_credentials(user, password);
        }
        let (client, eventloop) = AsyncClient::new(options, 1_000);
        let publisher = Publisher {
            client,
            topics,
            partitions: cfg.mqtt.partitions,
            gateway: cfg.gateway.id.clone(),
            counters: Arc::default(),
        };
        Ok((publisher, eventloop, Birth { topic: status_topic, online: birth, offline: will }))
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub async fn reading(&self, reading: &Reading) -> Result<(), ClientError> {
        let topic = self.topics.telemetry(self.partitions, &self.gateway, &reading.device);
        self.client.publish(topic, QoS::AtLeastOnce, false, telemetry::encode(reading)).await?;
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub async fn device_status(&self, device: &str, status: &DeviceStatus) -> Result<(), ClientError> {
        let topic =
            self.topics.build(&Topic::DeviceStatus { gateway: self.gateway.clone(), device: device.into() });
        let payload = serde_json::to_vec(status).unwrap_or_default();
        self.client.publish(topic, QoS::AtLeastOnce, true, payload).await?;
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until the broker has acknowledged everything queued, or `limit` passes.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let c = &self.counters;
            if c.acked.load(Ordering::Relaxed) >= c.queued.load(Ordering::Relaxed) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes the offline status (a clean stop sends no last will) and disconnects.
    pub async fn goodbye(&self, birth: &Birth) {
        let _ = self.client.publish(&birth.topic, QoS::AtLeastOnce, true, birth.offline.clone()).await;
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.flush(Duration::from_secs(3)).await;
        let _ = self.client.disconnect().await;
    }
}

/// The retained gateway status: the birth message and its offline counterpart.
#[derive(Clone, Debug)]
pub struct Birth {
    pub topic: String,
    pub online: Vec<u8>,
    pub offline: Vec<u8>,
}

/// Polls the event loop until `shutdown`, reconnecting with exponential backoff (rumqttc has
/// none of its own) and publishing the birth message on every connection.
pub async fn drive(
    mut eventloop: EventLoop,
    publisher: Publisher,
    birth: Birth,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.changed() => {
                // Keep polling briefly so the goodbye and the last acks go out.
                let drain = async { while eventloop.poll().await.is_ok() {} };
                let _ = tokio::time::timeout(Duration::from_secs(4), drain).await;
                return;
            }
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(200);
                tracing::info!("connected to the MQTT broker");
                let (client, birth) = (publisher.client.clone(), birth.clone());
                let counters = publisher.counters.clone();
                tokio::spawn(async move {
                    if client.publish(birth.topic, QoS::AtLeastOnce, true, birth.online).await.is_ok() {
                        counters.queued.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                publisher.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {}
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("MQTT connection: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
