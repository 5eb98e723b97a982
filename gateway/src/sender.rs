//! The sender: reads the spool in order and publishes each record at QoS 1 while the broker
//! is connected, at most [`WINDOW`] unacknowledged at a time. The spool is acknowledged only
//! as far as the broker has acknowledged ([`crate::inflight`]); after a reconnect the sender
//! rewinds to the first unacknowledged record and sends again from there, in order.
//!
//! A reading is marked `replay` when it is sent after an outage: it was polled before the
//! connection it goes out on, and the broker had been unreachable before that connection; or
//! it belongs to an earlier session of the gateway (left in the spool by a crash or a stop).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::inflight::Tag;
use crate::publisher::{Connection, PublishError, Publisher};
use crate::spool::{SpoolHandle, SpoolRecord};

/// Most records sent and not yet acknowledged (below the client's inflight limit of 100, so
/// rumqttc never stops taking requests because of ours).
pub const WINDOW: usize = 64;

/// The broker's acknowledgements are applied to the spool at most this often (each writes the
/// spool's ledger and may delete segments), and at once after a quiet spell, before the spool is
/// read again after a reconnect, and at the stop. Acknowledging later never loses a reading:
/// at worst a crash sends again what the broker had already acknowledged.
pub const ACK_EVERY: Duration = Duration::from_millis(100);

/// How long the sender, woken by a new reading, waits for more before it sends: the devices of
/// a stagger step ([`crate::schedule::STAGGER_STEP`]) are polled back to back, and their
/// readings go out together.
pub const GATHER: Duration = Duration::from_millis(10);

/// Whether a reading polled at `ts_ms` in session `sid` is a replay when sent on `conn` by the
/// gateway session `session`.
pub fn is_replay(sid: u64, ts_ms: i64, session: u64, conn: &Connection) -> bool {
    sid != session || (conn.after_outage && ts_ms < conn.since_ms)
}

/// Topic and payload of a record as it goes out on `conn`, and whether it is a replay. A
/// record the pollers just appended carries its topic, session and poll time: it is decoded
/// only when it must be marked as a replay. One read from disk is decoded to find them.
fn prepare(
    publisher: &Publisher,
    conn: &Connection,
    record: &SpoolRecord,
) -> Result<(String, Arc<Vec<u8>>, bool), String> {
    if let Some(meta) = &record.meta {
        if !is_replay(meta.session, meta.ts_ms, publisher.session(), conn) {
            return Ok((meta.topic.clone(), record.payload.clone(), false));
        }
    }
    let mut reading = telemetry::decode(&record.payload).map_err(|e| e.to_string())?;
    let topic = publisher.topic_of(&reading);
    if is_replay(reading.session, reading.ts_ms, publisher.session(), conn) {
        reading.replay = true;
        Ok((topic, Arc::new(telemetry::encode(&reading)), true))
    } else {
        Ok((topic, record.payload.clone(), false))
    }
}

/// How far the spool is acknowledged, and when it last was.
#[derive(Default)]
struct Acks {
    applied: u64,
    at: Option<Instant>,
}

impl Acks {
    /// When the acknowledgement through `through` is to be applied, if it is not yet.
    fn due(&self, through: u64) -> Option<Instant> {
        (through > self.applied).then(|| self.at.map_or_else(Instant::now, |t| t + ACK_EVERY))
    }

    /// Acknowledges the spool through `through` if it is due (or `now`).
    async fn apply(&mut self, spool: &SpoolHandle, through: u64, now: bool) {
        let Some(due) = self.due(through) else { return };
        if !now && Instant::now() < due {
            return;
        }
        if let Err(e) = spool.ack_through(through).await {
            tracing::error!("{e}");
        }
        self.applied = through;
        self.at = Some(Instant::now());
    }
}

/// Sends the spool until `stop` turns true.
pub async fn send(publisher: Publisher, mut stop: watch::Receiver<bool>) {
    let spool = publisher.spool().clone();
    let mut conn_rx = publisher.connection();
    let mut acked_rx = publisher.acked();
    let mut acks = Acks::default();
    loop {
        let conn = tokio::select! {
            c = conn_rx.wait_for(|c| c.connected) => c.ok().map(|c| *c),
            _ = stop.changed() => None,
        };
        let Some(conn) = conn else {
            let through = *acked_rx.borrow();
            acks.apply(&spool, through, true).await;
            return;
        };
        // What the broker acknowledged is not read again.
        let through = *acked_rx.borrow_and_update();
        acks.apply(&spool, through, true).await;
        spool.rewind().await;
        let waiting = spool.pending();
        if waiting > 0 {
            tracing::info!("sending {waiting} spooled readings, oldest first");
        }
        'connection: loop {
            let through = *acked_rx.borrow_and_update();
            acks.apply(&spool, through, false).await;
            let now = *conn_rx.borrow_and_update();
            if !now.connected || now.generation != conn.generation {
                break 'connection;
            }
            let room = WINDOW.saturating_sub(publisher.outstanding());
            let records = if room == 0 {
                Vec::new()
            } else {
                match spool.read(room).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("{e}");
                        Vec::new()
                    }
                }
            };
            let read_some = !records.is_empty();
            for record in records {
                let (topic, payload, replay) = match prepare(&publisher, &conn, &record) {
                    Ok(p) => p,
                    Err(why) => {
                        tracing::error!("spool record {} is not a reading ({why}); skipped", record.id);
                        publisher.counters().undecodable.fetch_add(1, Ordering::Relaxed);
                        publisher.skip_record(record.id);
                        continue;
                    }
                };
                loop {
                    let tag = Tag::Record(record.id);
                    match publisher.publish(
                        topic.clone(),
                        false,
                        payload.to_vec(),
                        tag,
                        Some(conn.generation),
                    ) {
                        Ok(()) => {
                            publisher.counters().sent.fetch_add(1, Ordering::Relaxed);
                            if replay {
                                publisher.counters().replayed.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        Err(PublishError::Full) => tokio::time::sleep(Duration::from_millis(10)).await,
                        Err(PublishError::NotConnected) => break 'connection,
                        Err(e @ PublishError::Client(_)) => {
                            tracing::error!("{e}");
                            return;
                        }
                    }
                }
            }
            if read_some {
                continue;
            }
            // An acknowledgement waiting for its time wakes the sender then, not every PUBACK
            // (unless the window is full: then each one may make room).
            let ack_due = acks.due(through);
            tokio::select! {
                // What the pollers append meanwhile goes out with it: the broker then reads the
                // publishes and answers their PUBACKs together, and the gateway wakes for them
                // once per batch rather than once per reading.
                _ = spool.appended() => tokio::time::sleep(GATHER).await,
                _ = acked_rx.changed(), if ack_due.is_none() || room == 0 => {}
                _ = tokio::time::sleep_until(ack_due.unwrap_or_else(Instant::now)), if ack_due.is_some() => {}
                _ = conn_rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {
                    let through = *acked_rx.borrow();
                    acks.apply(&spool, through, true).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_readings_from_before_an_outage_or_an_earlier_session() {
        let first = Connection { generation: 1, connected: true, since_ms: 10_000, after_outage: false };
        let again = Connection { generation: 2, connected: true, since_ms: 20_000, after_outage: true };
        // (sid, ts, connection, replay)
        let table = [
            (7, 9_000, &first, false), // polled while the first connection was being made
            (7, 12_000, &first, false),
            (6, 12_000, &first, true),  // an earlier session's reading
            (7, 19_999, &again, true),  // polled during the outage
            (7, 20_000, &again, false), // polled once the broker was back
            (6, 25_000, &again, true),
        ];
        for (sid, ts, conn, want) in table {
            assert_eq!(is_replay(sid, ts, 7, conn), want, "sid {sid} ts {ts} on {conn:?}");
        }
    }
}
