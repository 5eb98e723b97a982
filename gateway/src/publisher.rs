//! MQTT publishing: readings at QoS 1 through the spool, a retained gateway status on
//! `status/{gateway}` (birth, periodic, last will), retained device health on
//! `status/{gateway}/{device}`.
//!
//! Three tasks share one [`Publisher`]:
//! - [`drive`] owns the rumqttc `EventLoop` and only polls it: it never waits on anything
//!   else (no publish, no file access; rumqttc#263). It follows each publish from queue to
//!   PUBACK ([`crate::inflight`]) and tells the sender how far the broker has acknowledged.
//! - [`crate::sender::send`] reads the spool in order and publishes while connected.
//! - the pollers append readings to the spool ([`Publisher::reading`]) and hand device health
//!   over ([`Publisher::device_status`]).
//!
//! A publish counts only within its connection. The session is persistent (clean session off,
//! stable client id) but rumqttc's own resending is not used: when the link drops, every
//! publish still queued or unacknowledged is taken out of rumqttc's queue, and after the
//! reconnect the sender sends again from the first record the broker has not acknowledged, in
//! order, and the birth and the latest device health are published again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{AsyncClient, ClientError, Event, EventLoop, Incoming, LastWill, Outgoing, QoS, Request};
use telemetry::backoff::{os_random, Backoff};
pub use telemetry::status::{BirthDevice, DeviceStatus, GatewayStatus, SpoolReport};
use telemetry::{Reading, Topic, Topics};
use tokio::sync::watch;

use crate::config::{Device, GatewayConfig, Line};
use crate::inflight::{Inflight, Tag};
use crate::spool::{RecordMeta, SpoolHandle};
use crate::values::Values;
use telemetry::now_ms;

/// The gateway's own counters (the spool counts the rest).
#[derive(Debug, Default)]
pub struct Counters {
    /// Records handed to the MQTT client (a record sent again after a reconnect counts again).
    pub sent: AtomicU64,
    /// Of those, the ones marked `replay`.
    pub replayed: AtomicU64,
    /// Records that could not be decoded (skipped).
    pub undecodable: AtomicU64,
}

/// The state of the MQTT connection, as the sender sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// Counts connections (ConnAcks) since start.
    pub generation: u64,
    pub connected: bool,
    /// When this connection was acknowledged (ms since the epoch).
    pub since_ms: i64,
    /// Whether the broker was unreachable before this connection (a lost link or failed
    /// attempts): readings polled before `since_ms` are then sent as replays.
    pub after_outage: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("the MQTT client's queue is full")]
    Full,
    #[error("mqtt client: {0}")]
    Client(String),
}

struct LinkState {
    inflight: Inflight,
    connected: bool,
    generation: u64,
}

struct Shared {
    link: Mutex<LinkState>,
    connection: watch::Sender<Connection>,
    /// The highest record id the broker has acknowledged as a prefix.
    acked: watch::Sender<u64>,
    /// The latest health of each device, published again after every reconnect.
    statuses: Mutex<BTreeMap<String, Vec<u8>>>,
    counters: Counters,
    /// The size of the last reading's payload.
    payload_len: AtomicUsize,
    spool: SpoolHandle,
    topics: Topics,
    partitions: u32,
    gateway: String,
    session: u64,
    town: Option<String>,
    devices: Vec<BirthDevice>,
    status_topic: String,
}

/// The handle every task publishes through. Cloning is cheap.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Publisher {
    /// Creates the client. Nothing is sent until [`drive`] polls the event loop.
    pub fn new(
        cfg: &GatewayConfig,
        lines: &[Line],
        session: u64,
        spool: SpoolHandle,
    ) -> Result<(Publisher, EventLoop), String> {
        let topics = Topics::new(&cfg.mqtt.topic_prefix);
        let status_topic = topics.build(&Topic::GatewayStatus { gateway: cfg.gateway.id.clone() });
        let devices: Vec<BirthDevice> = lines
            .iter()
            .flat_map(|l| l.devices.iter().map(move |d| (l, d)))
            .map(|(l, d)| BirthDevice {
                id: d.config.id.clone(),
                kind: d.profile.kind.clone(),
                profile: d.profile.name.clone(),
                line: l.config.name.clone(),
                unit: d.config.unit,
            })
            .collect();
        let town = cfg.gateway.town.as_deref().map(Cow::Borrowed);
        let will = GatewayStatus { online: false, sid: session, town, ..Default::default() };
        let will = serde_json::to_vec(&will).map_err(|e| e.to_string())?;

        let mut options = cfg.mqtt.options(&cfg.gateway.id)?;
        options.set_max_packet_size(256 * 1024, 256 * 1024).set_inflight(100).set_last_will(LastWill::new(
            &status_topic,
            will,
            QoS::AtLeastOnce,
            true,
        ));
        let (client, eventloop) = AsyncClient::new(options, 1_000);
        let shared = Shared {
            link: Mutex::new(LinkState { inflight: Inflight::new(), connected: false, generation: 0 }),
            connection: watch::Sender::new(Connection::default()),
            acked: watch::Sender::new(0),
            statuses: Mutex::default(),
            counters: Counters::default(),
            payload_len: AtomicUsize::new(0),
            spool,
            topics,
            partitions: cfg.mqtt.partitions,
            gateway: cfg.gateway.id.clone(),
            session,
            town: cfg.gateway.town.clone(),
            devices,
            status_topic,
        };
        Ok((Publisher { client, shared: Arc::new(shared) }, eventloop))
    }

    pub fn gateway(&self) -> &str {
        &self.shared.gateway
    }

    pub fn session(&self) -> u64 {
        self.shared.session
    }

    pub fn spool(&self) -> &SpoolHandle {
        &self.shared.spool
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn report(&self) -> SpoolReport {
        let c = &self.shared.counters;
        SpoolReport {
            spool: self.shared.spool.counters(),
            sent: c.sent.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
        }
    }

    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.shared.connection.subscribe()
    }

    pub fn acked(&self) -> watch::Receiver<u64> {
        self.shared.acked.subscribe()
    }

    /// The telemetry topic of a reading.
    pub fn topic_of(&self, reading: &Reading) -> String {
        self.shared.topics.telemetry(self.shared.partitions, &reading.gateway, &reading.device)
    }

    /// The telemetry topic of device `device` of this gateway.
    pub fn topic_of_device(&self, device: &str) -> String {
        self.shared.topics.telemetry(self.shared.partitions, &self.shared.gateway, device)
    }

    /// Appends one poll of `device` to the spool as a reading (its values, sequence number and
    /// poll time; its telemetry `topic`); the sender publishes it. Waits only when the spool is
    /// full with `when_full = "block"` (until there is room or `stop` turns true).
    pub async fn reading(
        &self,
        device: &Device,
        topic: &str,
        (seq, ts_ms): (u64, i64),
        values: &Values,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<u64, telemetry::spool::SpoolError> {
        let s = &self.shared;
        let meta = RecordMeta { topic: topic.to_string(), session: s.session, ts_ms };
        // Room for a payload a little larger than the last one, so it is written without growing.
        let last = s.payload_len.load(Ordering::Relaxed);
        let mut payload = Vec::with_capacity(last + last / 8);
        let parts =
            values.parts(&s.gateway, &device.config.id, &device.profile.kind, (s.session, seq, ts_ms));
        telemetry::codec::encode_parts(&parts, &mut payload);
        s.payload_len.store(payload.len(), Ordering::Relaxed);
        s.spool.append_with(payload, Some(meta), stop).await
    }

    /// Queues a publish in the client if connected (and, with `generation`, still on that
    /// connection). Never waits.
    pub fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        tag: Tag,
        generation: Option<u64>,
    ) -> Result<(), PublishError> {
        let mut link = lock(&self.shared.link);
        if !link.connected || generation.is_some_and(|g| g != link.generation) {
            return Err(PublishError::NotConnected);
        }
        match self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
            Ok(()) => {
                link.inflight.queued(tag);
                Ok(())
            }
            Err(ClientError::TryRequest(_)) => Err(PublishError::Full),
            Err(e) => Err(PublishError::Client(e.to_string())),
        }
    }

    /// Records sent on this connection and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        lock(&self.shared.link).inflight.outstanding()
    }

    /// Marks a record that cannot be sent as done, so later acknowledgements can pass it.
    pub fn skip_record(&self, id: u64) {
        let moved = lock(&self.shared.link).inflight.skipped(id);
        if let Some(through) = moved {
            self.shared.acked.send_replace(through);
        }
    }

    /// Keeps the latest health of `device` and publishes it (retained) when connected.
    pub fn device_status(&self, device: &str, status: &DeviceStatus) {
        let payload = serde_json::to_vec(status).unwrap_or_default();
        lock(&self.shared.statuses).insert(device.to_string(), payload.clone());
        let topic = self.device_status_topic(device);
        if let Err(e) = self.publish(topic, true, payload, Tag::Other, None) {
            tracing::debug!("device {device}: status not published now ({e}); it is sent again on reconnect");
        }
    }

    fn device_status_topic(&self, device: &str) -> String {
        self.shared
            .topics
            .build(&Topic::DeviceStatus { gateway: self.shared.gateway.clone(), device: device.into() })
    }

    /// The retained gateway status: online, session, devices and the spool's counters.
    pub fn gateway_status(&self, online: bool) -> Vec<u8> {
        let s = &self.shared;
        let status = GatewayStatus {
            online,
            sid: s.session,
            ts: now_ms(),
            town: s.town.as_deref().map(Cow::Borrowed),
            devices: Cow::Borrowed(&s.devices),
            spool: Some(self.report()),
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }

    /// Publishes the gateway status (retained) if connected.
    pub fn publish_gateway_status(&self, online: bool) -> Result<(), PublishError> {
        self.publish(self.shared.status_topic.clone(), true, self.gateway_status(online), Tag::Other, None)
    }

    /// After a (re)connection: the birth, then every device's latest health.
    async fn announce(&self, generation: u64) {
        let mut messages = vec![(self.shared.status_topic.clone(), self.gateway_status(true))];
        let statuses = lock(&self.shared.statuses).clone();
        messages.extend(statuses.into_iter().map(|(d, p)| (self.device_status_topic(&d), p)));
        for (topic, payload) in messages {
            loop {
                match self.publish(topic.clone(), true, payload.clone(), Tag::Other, Some(generation)) {
                    Ok(()) => break,
                    Err(PublishError::Full) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => return,
                }
            }
        }
    }

    /// Waits until the broker has acknowledged every spooled reading and every other publish,
    /// or `limit` passes.
    pub async fn flush(&self, limit: Duration) -> bool {
        self.wait_acknowledged(limit, true).await
    }

    /// Waits until every publish queued is acknowledged (and, with `spool`, every spooled
    /// reading too), or `limit` passes.
    async fn wait_acknowledged(&self, limit: Duration, spool: bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = lock(&self.shared.link).inflight.unacknowledged() == 0;
            if idle && (!spool || self.shared.spool.pending() == 0) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes the offline status (a clean stop sends no last will) and disconnects.
    pub async fn goodbye(&self) {
        if self.publish_gateway_status(false).is_ok() {
            self.wait_acknowledged(Duration::from_secs(3), false).await;
        }
        let _ = self.client.try_disconnect();
    }

    fn connected(&self, after_outage: bool) -> u64 {
        let mut link = lock(&self.shared.link);
        link.connected = true;
        link.generation += 1;
        link.inflight.connection_lost();
        let generation = link.generation;
        self.shared.connection.send_replace(Connection {
            generation,
            connected: true,
            since_ms: now_ms(),
            after_outage,
        });
        generation
    }

    /// The link is gone: forget every publish in flight, in rumqttc's queues too (the sender
    /// sends again from the spool after the reconnect).
    fn connection_lost(&self, eventloop: &mut EventLoop) {
        let mut link = lock(&self.shared.link);
        // With the lock held nothing new is queued: take what is still in the request channel
        // into `pending`, then drop every publish there.
        eventloop.clean();
        eventloop.pending.retain(|r| !matches!(r, Request::Publish(_)));
        link.inflight.connection_lost();
        if link.connected {
            link.connected = false;
            self.shared.connection.send_modify(|c| c.connected = false);
        }
    }
}

/// The first and the longest wait between two connection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Polls the event loop until `stop`, reconnecting with exponential backoff, jittered so that
/// many gateways cut off by one broker restart do not all come back at once (rumqttc has no
/// backoff of its own). Never waits on anything but the event loop and its backoff.
pub async fn drive(mut eventloop: EventLoop, publisher: Publisher, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut outage = false;
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.changed() => {
                // Keep polling briefly so the goodbye and the last acks go out.
                let drain = async {
                    loop {
                        match eventloop.poll().await {
                            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(4), drain).await;
                return;
            }
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff.reset();
                let generation = publisher.connected(outage);
                match down_since.take() {
                    Some(t) => tracing::info!(
                        "connected to the MQTT broker again after {:.1?} (session present: {})",
                        t.elapsed(),
                        ack.session_present
                    ),
                    None => tracing::info!(
                        "connected to the MQTT broker (session present: {})",
                        ack.session_present
                    ),
                }
                outage = false;
                let p = publisher.clone();
                tokio::spawn(async move { p.announce(generation).await });
            }
            // Only the goodbye sends a DISCONNECT: the session ends here.
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                publisher.connection_lost(&mut eventloop);
                return;
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                lock(&publisher.shared.link).inflight.written(pkid)
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let moved = lock(&publisher.shared.link).inflight.acked(ack.pkid);
                if let Some(through) = moved {
                    publisher.shared.acked.send_replace(through);
                }
            }
            Ok(_) => {}
            Err(e) => {
                publisher.connection_lost(&mut eventloop);
                let wait = backoff.next_delay(os_random);
                if !outage {
                    tracing::warn!("MQTT broker unreachable: {e}; readings are spooled until it is back");
                } else {
                    tracing::debug!("MQTT connection: {e}; retrying in {wait:?}");
                }
                outage = true;
                down_since.get_or_insert_with(tokio::time::Instant::now);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Publishes the gateway status (with the spool's counters) every `every`, and logs the
/// counters when they changed, until `stop`.
pub async fn report(publisher: Publisher, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = SpoolReport::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let _ = publisher.publish_gateway_status(true);
        let now = publisher.report();
        if now != last {
            let s = now.spool;
            tracing::info!(
                "spool: spooled {}, sent {}, acked {}, replayed {}, dropped {} (full) {} (age), corrupt {}, \
                 pending {} ({} bytes)",
                s.spooled,
                now.sent,
                s.acked,
                now.replayed,
                s.dropped_full,
                s.dropped_age,
                s.corrupt,
                s.pending,
                s.bytes
            );
            last = now;
        }
    }
}
