//! The durable outbox, in SQLite: one row per (receiver, alert transition), kept after
//! delivery for `keep_delivered` so that a transition enqueued again (ingest replays its WAL
//! after a crash) is recognised and not sent twice.
//!
//! A notification is made by assigning a group's waiting rows to it, in the same transaction
//! that records it; retries send exactly those rows under the same id, and delivery marks them
//! all in one transaction.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use telemetry::AlertMessage;

use super::format::{Notification, QueuedAlert};
use super::group::{notification_id, GroupSummary, InFlight};
use super::route::Router;

/// A notification carries at most this many alerts; more wait for the group's next one.
pub const MAX_ALERTS_PER_NOTIFICATION: usize = 1_000;

pub struct Outbox {
    conn: Connection,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("notify outbox: {e}")
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS outbox (
                 receiver TEXT NOT NULL,
                 key TEXT NOT NULL,
                 group_key TEXT NOT NULL,
                 alert TEXT NOT NULL,
                 town TEXT,
                 enqueued_ms INTEGER NOT NULL,
                 notification TEXT,
                 delivered_ms INTEGER,
                 PRIMARY KEY (receiver, key));
             CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (receiver, group_key, enqueued_ms)
                 WHERE delivered_ms IS NULL;
             CREATE INDEX IF NOT EXISTS outbox_notification ON outbox (notification)
                 WHERE notification IS NOT NULL;
             CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_ms)
                 WHERE delivered_ms IS NOT NULL;
             CREATE TABLE IF NOT EXISTS notifications (
                 id TEXT PRIMARY KEY,
                 receiver TEXT NOT NULL,
                 group_key TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 retry_at_ms INTEGER NOT NULL,
                 last_error TEXT,
                 delivered_ms INTEGER);
             CREATE INDEX IF NOT EXISTS notifications_in_flight ON notifications (receiver, group_key)
                 WHERE delivered_ms IS NULL;
             CREATE TABLE IF NOT EXISTS groups (
                 receiver TEXT NOT NULL,
                 group_key TEXT NOT NULL,
                 last_sent_ms INTEGER NOT NULL,
                 PRIMARY KEY (receiver, group_key));",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Outbox { conn })
    }

    /// Queues each alert for each receiver its routes name; a transition already queued for
    /// a receiver (delivered or not) is ignored. Returns the rows added.
    pub fn enqueue(
        &mut self,
        alerts: &[AlertMessage],
        town_of: &dyn Fn(&str) -> Option<String>,
        router: &Router,
        now_ms: i64,
    ) -> Result<usize, String> {
        let tx = self.conn.transaction().map_err(err)?;
        let mut added = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO outbox (receiver, key, group_key, alert, town, enqueued_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for alert in alerts {
                let town = town_of(&alert.device);
                let routes = router.route(alert, town.as_deref());
                if routes.is_empty() {
                    continue;
                }
                let key = crate::state::transition_key(alert);
                let json = serde_json::to_string(alert).map_err(err)?;
                for (receiver, group_key) in routes {
                    added +=
                        insert.execute(params![receiver, key, group_key, json, town, now_ms]).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Every group with something to send, for the receivers given.
    pub fn groups(&self, receivers: &HashSet<String>) -> Result<Vec<GroupSummary>, String> {
        let mut out: Vec<GroupSummary> = Vec::new();
        let mut waiting = self
            .conn
            .prepare_cached(
                "SELECT o.receiver, o.group_key, MIN(o.enqueued_ms), g.last_sent_ms
                 FROM outbox o LEFT JOIN groups g ON g.receiver = o.receiver AND g.group_key = o.group_key
                 WHERE o.delivered_ms IS NULL AND o.notification IS NULL
                 GROUP BY o.receiver, o.group_key",
            )
            .map_err(err)?;
        let rows = waiting
            .query_map([], |r| {
                Ok(GroupSummary {
                    receiver: r.get(0)?,
                    group_key: r.get(1)?,
                    oldest_waiting_ms: r.get(2)?,
                    last_sent_ms: r.get(3)?,
                    in_flight: None,
                })
            })
            .map_err(err)?;
        for g in rows {
            out.push(g.map_err(err)?);
        }
        let mut in_flight = self
            .conn
            .prepare_cached(
                "SELECT receiver, group_key, id, attempts, retry_at_ms FROM notifications
                 WHERE delivered_ms IS NULL",
            )
            .map_err(err)?;
        let rows = in_flight
            .query_map([], |r| {
                let flight = InFlight { id: r.get(2)?, attempts: r.get(3)?, retry_at_ms: r.get(4)? };
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, flight))
            })
            .map_err(err)?;
        for row in rows {
            let (receiver, group_key, flight) = row.map_err(err)?;
            match out.iter_mut().find(|g| g.receiver == receiver && g.group_key == group_key) {
                Some(g) => g.in_flight = Some(flight),
                None => out.push(GroupSummary {
                    receiver,
                    group_key,
                    oldest_waiting_ms: None,
                    last_sent_ms: None,
                    in_flight: Some(flight),
                }),
            }
        }
        out.retain(|g| receivers.contains(&g.receiver));
        Ok(out)
    }

    /// The group's next notification: the one in flight, or a new one made of its oldest
    /// waiting alerts.
    pub fn take(&mut self, group: &GroupSummary, now_ms: i64) -> Result<Option<Notification>, String> {
        if let Some(flight) = &group.in_flight {
            return self.load(&flight.id, group);
        }
        let tx = self.conn.transaction().map_err(err)?;
        let keys: Vec<String> = {
            let mut select = tx
                .prepare_cached(
                    "SELECT key FROM outbox
                     WHERE receiver = ?1 AND group_key = ?2 AND delivered_ms IS NULL AND notification IS NULL
                     ORDER BY enqueued_ms, rowid LIMIT ?3",
                )
                .map_err(err)?;
            let rows = select
                .query_map(
                    params![group.receiver, group.group_key, MAX_ALERTS_PER_NOTIFICATION as i64],
                    |r| r.get(0),
                )
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        if keys.is_empty() {
            return Ok(None);
        }
        let id = notification_id(&group.receiver, &group.group_key, &keys);
        tx.execute(
            "INSERT OR REPLACE INTO notifications (id, receiver, group_key, created_ms, attempts, retry_at_ms)
             VALUES (?1, ?2, ?3, ?4, 0, ?4)",
            params![id, group.receiver, group.group_key, now_ms],
        )
        .map_err(err)?;
        {
            let mut assign = tx
                .prepare_cached("UPDATE outbox SET notification = ?1 WHERE receiver = ?2 AND key = ?3")
                .map_err(err)?;
            for key in &keys {
                assign.execute(params![id, group.receiver, key]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        self.load(&id, group)
    }

    fn load(&self, id: &str, group: &GroupSummary) -> Result<Option<Notification>, String> {
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT alert, town FROM outbox WHERE notification = ?1 AND receiver = ?2
                 ORDER BY enqueued_ms, rowid",
            )
            .map_err(err)?;
        let rows = select
            .query_map(params![id, group.receiver], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(err)?;
        let mut alerts = Vec::new();
        for row in rows {
            let (json, town) = row.map_err(err)?;
            match serde_json::from_str(&json) {
                Ok(alert) => alerts.push(QueuedAlert { alert, town }),
                Err(e) => tracing::error!("notify outbox: a queued alert is unreadable ({e}); skipped"),
            }
        }
        if alerts.is_empty() {
            // Nothing left to send under this id: close it rather than retry it forever.
            self.conn
                .execute("UPDATE notifications SET delivered_ms = retry_at_ms WHERE id = ?1", params![id])
                .map_err(err)?;
            return Ok(None);
        }
        Ok(Some(Notification {
            id: id.to_string(),
            receiver: group.receiver.clone(),
            group_key: group.group_key.clone(),
            alerts,
        }))
    }

    /// Marks the notification and its alerts delivered, and the group sent, at once.
    pub fn mark_delivered(&mut self, n: &Notification, now_ms: i64) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("UPDATE notifications SET delivered_ms = ?2 WHERE id = ?1", params![n.id, now_ms])
            .map_err(err)?;
        tx.execute(
            "UPDATE outbox SET delivered_ms = ?2 WHERE notification = ?1 AND receiver = ?3",
            params![n.id, now_ms, n.receiver],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO groups (receiver, group_key, last_sent_ms) VALUES (?1, ?2, ?3)",
            params![n.receiver, n.group_key, now_ms],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Records a failed attempt; returns the attempts made so far.
    pub fn mark_failed(
        &mut self,
        id: &str,
        error: &str,
        retry_at_ms: impl Fn(u32) -> i64,
    ) -> Result<u32, String> {
        let tx = self.conn.transaction().map_err(err)?;
        let attempts: u32 = tx
            .query_row("SELECT attempts FROM notifications WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(err)?
            .unwrap_or(0)
            + 1;
        tx.execute(
            "UPDATE notifications SET attempts = ?2, retry_at_ms = ?3, last_error = ?4 WHERE id = ?1",
            params![id, attempts, retry_at_ms(attempts), error],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(attempts)
    }

    /// Forgets what was delivered before `cutoff_ms`, and what was queued before it for
    /// receivers no longer configured. Returns the alert rows removed.
    pub fn purge(&mut self, cutoff_ms: i64, receivers: &HashSet<String>) -> Result<usize, String> {
        let tx = self.conn.transaction().map_err(err)?;
        let mut removed =
            tx.execute("DELETE FROM outbox WHERE delivered_ms < ?1", params![cutoff_ms]).map_err(err)?;
        let stale: Vec<String> = {
            let mut select = tx
                .prepare(
                    "SELECT DISTINCT receiver FROM outbox WHERE delivered_ms IS NULL AND enqueued_ms < ?1",
                )
                .map_err(err)?;
            let rows = select.query_map(params![cutoff_ms], |r| r.get(0)).map_err(err)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(err)?
        };
        for receiver in stale.iter().filter(|r| !receivers.contains(*r)) {
            tracing::warn!(
                "notify: dropping alerts queued for {receiver:?}, a receiver no longer configured"
            );
            removed += tx
                .execute(
                    "DELETE FROM outbox WHERE receiver = ?1 AND enqueued_ms < ?2",
                    params![receiver, cutoff_ms],
                )
                .map_err(err)?;
            tx.execute("DELETE FROM notifications WHERE receiver = ?1", params![receiver]).map_err(err)?;
        }
        tx.execute("DELETE FROM notifications WHERE delivered_ms < ?1", params![cutoff_ms]).map_err(err)?;
        tx.execute("DELETE FROM groups WHERE last_sent_ms < ?1", params![cutoff_ms]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(removed)
    }

    /// Alert rows not yet delivered.
    pub fn depth(&self) -> Result<u64, String> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(err)
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
