//! The broker side: the task that owns the rumqttc event loop, and the receiver that puts each
//! message in the WAL and acknowledges it once synced.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Publish, QoS};
use telemetry::spool::{Spool, SpoolError};
use tokio::sync::{mpsc, watch, Notify};

use crate::metrics::Metrics;

/// Messages synced to the WAL together, at most (one fsync for all of them).
const GROUP_COMMIT: usize = 1_000;

/// A WAL record: `received_at i64 | topic_len u16 | topic | payload`.
pub fn encode_record(received_at: i64, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(10 + topic.len() + payload.len());
    rec.extend_from_slice(&received_at.to_le_bytes());
    rec.extend_from_slice(&(topic.len().min(u16::MAX as usize) as u16).to_le_bytes());
    rec.extend_from_slice(&topic.as_bytes()[..topic.len().min(u16::MAX as usize)]);
    rec.extend_from_slice(payload);
    rec
}

/// The inverse of [`encode_record`]; `None` for a record too short to be one.
pub fn decode_record(rec: &[u8]) -> Option<(i64, String, &[u8])> {
    let received_at = i64::from_le_bytes(rec.get(..8)?.try_into().ok()?);
    let len = u16::from_le_bytes(rec.get(8..10)?.try_into().ok()?) as usize;
    let topic = String::from_utf8_lossy(rec.get(10..10 + len)?).into_owned();
    Some((received_at, topic, rec.get(10 + len..)?))
}

/// Polls the event loop: subscribes on every new session, forwards publishes, reconnects
/// with backoff (rumqttc has none of its own): [`super::backoff`], at most 5 s, jittered.
pub async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::Sender<Publish>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = super::backoff::Backoff::default();
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
                backoff.connected();
                metrics.mqtt_connected.store(true, Ordering::Relaxed);
                tracing::info!("connected to the MQTT broker (session present: {})", ack.session_present);
                if ack.session_present {
                    metrics.subscribed.store(true, Ordering::Relaxed);
                } else {
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
                metrics.subscribed.store(true, Ordering::Relaxed);
                tracing::info!("subscribed ({:?})", ack.return_codes);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt_connected.store(false, Ordering::Relaxed);
                metrics.subscribed.store(false, Ordering::Relaxed);
                let wait = backoff.failed(super::backoff::jitter());
                tracing::warn!("MQTT connection: {e}; retrying in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Appends messages to the WAL in groups, syncs once per group, then acknowledges the group.
pub async fn receive(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    wal: Arc<Mutex<Spool>>,
    written: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut group: Vec<Publish> = Vec::with_capacity(GROUP_COMMIT);
    loop {
        let first = tokio::select! {
            p = rx.recv() => p,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { return };
        group.push(first);
        while group.len() < GROUP_COMMIT {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let now = super::now_ms();
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = tokio::task::block_in_place(|| {
                let mut wal = wal.lock().map_err(|_| "the WAL lock is poisoned".to_string())?;
                append_all(&mut wal, &group, now).map_err(|e| e.to_string())?;
                Ok::<_, String>((wal.pending(), wal.bytes()))
            });
            match result {
                Ok((pending, bytes)) => {
                    metrics.wal_pending.store(pending, Ordering::Relaxed);
                    metrics.wal_bytes.store(bytes, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    // Full or failing: hold the acks; the broker keeps the messages meanwhile.
                    tracing::warn!("WAL: {e}; retrying in {backoff:?}");
                    if *shutdown.borrow() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        metrics.received.fetch_add(group.len() as u64, Ordering::Relaxed);
        written.notify_one();
        for p in group.drain(..) {
            let _ = client.ack(&p).await;
        }
    }
}

/// Appends the whole group or nothing new (a failed group is retried whole; a record that
/// was appended before the failure is simply written twice, which dedup absorbs).
fn append_all(wal: &mut Spool, group: &[Publish], now: i64) -> Result<(), SpoolError> {
    for p in group {
        match wal.append(&encode_record(now, &p.topic, &p.payload)) {
            Ok(_) => {}
            Err(SpoolError::TooLarge(n)) => {
                tracing::error!("a {n}-byte message on {} is larger than the WAL takes", p.topic)
            }
            Err(e) => return Err(e),
        }
    }
    wal.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_records_round_trip() {
        let rec = encode_record(42, "telemetry/1/gw/dev", b"{\"v\":1}");
        assert_eq!(decode_record(&rec), Some((42, "telemetry/1/gw/dev".to_string(), &b"{\"v\":1}"[..])));
        assert_eq!(decode_record(&rec[..9]), None);
        assert_eq!(decode_record(&encode_record(1, "", b"")), Some((1, String::new(), &b""[..])));
    }
}
