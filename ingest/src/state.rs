//! Alert state that survives a restart, in SQLite: the rules engine's snapshot with the WAL
//! position it covers, and the keys of alert transitions already published.
//!
//! The writer saves a snapshot every `state.snapshot_every` and only then acknowledges the WAL
//! up to the position it covers. After a crash, the engine restarts from the snapshot and the
//! WAL replays what came after it; transitions whose keys are recorded as published are not
//! published again, so owed notifications go out once.

use std::path::Path;

use rules::engine::EngineSnapshot;
use rusqlite::{params, Connection, OptionalExtension};
use telemetry::AlertMessage;

use crate::store::{self, InspectionRecord};

pub struct StateStore {
    conn: Connection,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A transition's identity: the same reading always gives the same key.
pub fn transition_key(a: &AlertMessage) -> String {
    format!("{}|{}|{}|{}", a.rule, a.device, a.status.as_str(), a.ts)
}

impl StateStore {
    pub fn open(path: &Path) -> Result<StateStore, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The console's connection writes the audit log beside this one.
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), wal_id INTEGER NOT NULL, engine TEXT NOT NULL, saved_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS published (key TEXT PRIMARY KEY, wal_id INTEGER NOT NULL);",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        crate::store::migrate(&conn).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(StateStore { conn })
    }

    /// The last snapshot and the WAL position it covers.
    pub fn load(&self) -> Result<Option<(EngineSnapshot, u64)>, String> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row("SELECT wal_id, engine FROM snapshot WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(err)?;
        match row {
            None => Ok(None),
            Some((wal_id, json)) => {
                let snapshot = serde_json::from_str(&json).map_err(|e| format!("engine snapshot: {e}"))?;
                Ok(Some((snapshot, wal_id as u64)))
            }
        }
    }

    /// Saves the snapshot covering the WAL up to `wal_id`, and forgets published keys that the
    /// snapshot now covers.
    pub fn save(&mut self, snapshot: &EngineSnapshot, wal_id: u64, now_ms: i64) -> Result<(), String> {
        let json = serde_json::to_string(snapshot).map_err(err)?;
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshot (id, wal_id, engine, saved_at) VALUES (1, ?1, ?2, ?3)",
            params![wal_id as i64, json, now_ms],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM published WHERE wal_id <= ?1", params![wal_id as i64]).map_err(err)?;
        tx.commit().map_err(err)?;
        store::forget_history_before(&self.conn, now_ms - store::HISTORY_KEEP_MS).map(|_| ()).map_err(err)
    }

    /// Records an inspection (the console's `POST /api/v1/inspections`).
    pub fn record_inspection(&mut self, record: &InspectionRecord) -> Result<(), String> {
        store::insert_record(&self.conn, record).map_err(err)
    }

    /// Every inspection record, oldest first: applied over the registry file at each load.
    pub fn inspection_records(&self) -> Result<Vec<InspectionRecord>, String> {
        store::records(&self.conn).map_err(err)
    }

    /// Keeps one computation of the overdue rate for the console's chart.
    pub fn save_overdue_rate(&mut self, ts: i64, report: &rules::OverdueReport) -> Result<(), String> {
        store::insert_rate(&mut self.conn, ts, report).map_err(err)
    }

    pub fn was_published(&self, key: &str) -> Result<bool, String> {
        self.conn
            .query_row("SELECT 1 FROM published WHERE key = ?1", params![key], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(err)
    }

    /// Records keys as published by the batch ending at WAL record `wal_id`, and the
    /// transitions (with their towns) in the alert history.
    pub fn mark_published(
        &mut self,
        keys: &[String],
        history: &[(&AlertMessage, &str)],
        wal_id: u64,
    ) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(err)?;
        store::append_history(&tx, history).map_err(err)?;
        for k in keys {
            tx.execute(
                "INSERT OR IGNORE INTO published (key, wal_id) VALUES (?1, ?2)",
                params![k, wal_id as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_and_published_keys_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let engine = rules::Engine::new(rules::default_pack().unwrap());
        {
            let mut store = StateStore::open(&path).unwrap();
            assert!(store.load().unwrap().is_none());
            store.mark_published(&["a|b|firing|1".into()], &[], 10).unwrap();
            store.mark_published(&["a|b|resolved|2".into()], &[], 20).unwrap();
            store.save(&engine.snapshot(), 15, 0).unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        let (snapshot, wal_id) = store.load().unwrap().unwrap();
        assert_eq!(wal_id, 15);
        assert_eq!(snapshot.version, engine.snapshot().version);
        assert!(!store.was_published("a|b|firing|1").unwrap(), "covered by the snapshot: forgotten");
        assert!(store.was_published("a|b|resolved|2").unwrap(), "after the snapshot: remembered");
    }
}
