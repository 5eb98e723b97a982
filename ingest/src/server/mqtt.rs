//! The broker side: the task that owns the rumqttc event loop, and the receiver that puts each
//! message in the WAL and acknowledges it once synced.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Publish, QoS};
use telemetry::backoff::{os_random, Backoff};
use telemetry::spool::{Spool, SpoolError};
use tokio::sync::{mpsc, watch, Notify};

use crate::metrics::Metrics;

/// Messages synced to the WAL together, at most (one fsync for all of them).
const GROUP_COMMIT: usize = 1_000;

/// The largest MQTT packet: rumqttc is told to take anything, so no message fails the
/// connection (a persistent session would redeliver it forever); ingest's own limit
/// (`limits.max_message_bytes`) then dead-letters and acknowledges it.
pub const MQTT_MAX_PACKET: usize = 268_435_455;

/// Set in a record's topic length when the payload was over the limit and only its head is
/// kept: the payload is then `original length u64 | head`. Topics are cut at 32 KiB (a
/// telemetry topic is a few hundred bytes at most).
const CUT: u16 = 0x8000;
const MAX_TOPIC: usize = (CUT - 1) as usize;

/// A WAL record: `received_at i64 | topic_len u16 | topic | payload`.
pub fn encode_record(received_at: i64, topic: &str, payload: &[u8]) -> Vec<u8> {
    record(received_at, topic, 0, &[payload])
}

/// The record of a message of `len` bytes too large to keep: its first bytes, `head`, only.
pub fn encode_cut_record(received_at: i64, topic: &str, len: usize, head: &[u8]) -> Vec<u8> {
    record(received_at, topic, CUT, &[&(len as u64).to_le_bytes(), head])
}

fn record(received_at: i64, topic: &str, flags: u16, parts: &[&[u8]]) -> Vec<u8> {
    let topic = &topic.as_bytes()[..topic.len().min(MAX_TOPIC)];
    let mut rec = Vec::with_capacity(10 + topic.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    rec.extend_from_slice(&received_at.to_le_bytes());
    rec.extend_from_slice(&(topic.len() as u16 | flags).to_le_bytes());
    rec.extend_from_slice(topic);
    for p in parts {
        rec.extend_from_slice(p);
    }
    rec
}

/// A record read back.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub received_at: i64,
    pub topic: String,
    pub payload: &'a [u8],
    /// The message's length, when `payload` is only its head.
    pub cut_from: Option<usize>,
}

/// The inverse of [`encode_record`] and [`encode_cut_record`]; `None` for a record too short
/// to be one.
pub fn decode_record(rec: &[u8]) -> Option<Record<'_>> {
    let received_at = i64::from_le_bytes(rec.get(..8)?.try_into().ok()?);
    let raw = u16::from_le_bytes(rec.get(8..10)?.try_into().ok()?);
    let len = (raw & !CUT) as usize;
    let topic = String::from_utf8_lossy(rec.get(10..10 + len)?).into_owned();
    let rest = rec.get(10 + len..)?;
    if raw & CUT == 0 {
        return Some(Record { received_at, topic, payload: rest, cut_from: None });
    }
    let full = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    Some(Record { received_at, topic, payload: &rest[8..], cut_from: Some(full as usize) })
}

/// The record of one message: whole, or its head when it is over `max_message` bytes.
fn record_of(received_at: i64, p: &Publish, max_message: usize) -> Vec<u8> {
    if p.payload.len() > max_message {
        let head = &p.payload[..p.payload.len().min(crate::pipeline::MAX_DEAD_LETTER_PAYLOAD)];
        encode_cut_record(received_at, &p.topic, p.payload.len(), head)
    } else {
        encode_record(received_at, &p.topic, &p.payload)
    }
}

/// Polls the event loop: subscribes on every new session, forwards publishes, reconnects
/// with backoff (rumqttc has none of its own): from 200 ms, doubling, at most 5 s, jittered, so
/// that several ingest instances cut off by the same broker restart do not all come back at once
/// and a broker not up yet at start is found within 5 s.
pub async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::Sender<Publish>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
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
                backoff.reset();
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
                let wait = backoff.next_delay(os_random);
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
    max_message: usize,
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
        let now = telemetry::now_ms();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            let result = tokio::task::block_in_place(|| {
                let mut wal = wal.lock().map_err(|_| "the WAL lock is poisoned".to_string())?;
                append_all(&mut wal, &group, now, max_message).map_err(|e| e.to_string())?;
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
                    let wait = backoff.next_delay(os_random);
                    tracing::warn!("WAL: {e}; retrying in {wait:?}");
                    if *shutdown.borrow() {
                        return;
                    }
                    tokio::time::sleep(wait).await;
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
/// was appended before the failure is simply written twice, which dedup absorbs). A message
/// over `max_message` bytes goes in as its head, to be dead-lettered; one the WAL still
/// refuses as too large goes in as its length alone, so it is dead-lettered all the same.
fn append_all(wal: &mut Spool, group: &[Publish], now: i64, max_message: usize) -> Result<(), SpoolError> {
    for p in group {
        match wal.append(&record_of(now, p, max_message)) {
            Ok(_) => {}
            Err(SpoolError::TooLarge(n)) => {
                tracing::warn!(
                    "a {n}-byte record for {} is larger than the WAL takes; keeping its length only",
                    p.topic
                );
                wal.append(&encode_cut_record(now, &p.topic, p.payload.len(), &[]))?;
            }
            Err(e) => return Err(e),
        }
    }
    wal.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(received_at: i64, topic: &str, payload: &[u8]) -> Option<Record<'static>> {
        let payload: &'static [u8] = payload.to_vec().leak();
        Some(Record { received_at, topic: topic.into(), payload, cut_from: None })
    }

    #[test]
    fn wal_records_round_trip() {
        let rec = encode_record(42, "telemetry/1/gw/dev", b"{\"v\":1}");
        assert_eq!(decode_record(&rec), whole(42, "telemetry/1/gw/dev", b"{\"v\":1}"));
        assert_eq!(decode_record(&rec[..9]), None);
        assert_eq!(decode_record(&encode_record(1, "", b"")), whole(1, "", b""));
    }

    #[test]
    fn a_message_over_the_limit_is_kept_as_its_head_and_length() {
        let p = Publish::new("telemetry/1/gw/dev", QoS::AtLeastOnce, vec![b'x'; 1_200_000]);
        let rec = record_of(7, &p, 256 * 1024);
        assert!(rec.len() < 70 * 1024, "{} bytes", rec.len());
        let back = decode_record(&rec).unwrap();
        assert_eq!((back.received_at, back.topic.as_str()), (7, "telemetry/1/gw/dev"));
        assert_eq!(back.cut_from, Some(1_200_000));
        assert_eq!(back.payload.len(), crate::pipeline::MAX_DEAD_LETTER_PAYLOAD);
        let small = Publish::new("t", QoS::AtLeastOnce, b"{}".to_vec());
        assert_eq!(decode_record(&record_of(7, &small, 256 * 1024)), whole(7, "t", b"{}"));
        assert_eq!(decode_record(&encode_cut_record(1, "t", 9, b"")).unwrap().cut_from, Some(9));
        assert_eq!(decode_record(&encode_cut_record(1, "t", 9, b"")[..12]), None, "length cut off");
    }

    #[test]
    fn a_record_the_wal_refuses_still_goes_in_as_a_length() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = telemetry::spool::SpoolConfig { max_record_bytes: 1024, ..Default::default() };
        let mut wal = Spool::open(dir.path(), cfg).unwrap();
        let big = Publish::new("telemetry/1/gw/dev", QoS::AtLeastOnce, vec![b'x'; 4_000]);
        let ok = Publish::new("telemetry/1/gw/dev", QoS::AtLeastOnce, b"{}".to_vec());
        append_all(&mut wal, &[big, ok], 5, 1 << 20).unwrap();
        let records = wal.read(10).unwrap();
        assert_eq!(records.len(), 2, "nothing dropped");
        let first = decode_record(&records[0].payload).unwrap();
        assert_eq!((first.cut_from, first.payload.len()), (Some(4_000), 0));
        assert_eq!(decode_record(&records[1].payload).unwrap().cut_from, None);
    }
}
