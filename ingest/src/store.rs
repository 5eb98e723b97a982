//! The console's tables in the state database (`state.sqlite`): alert history, inspection
//! records, the overdue rate over time, and the audit log.
//!
//! The writer owns one connection ([`crate::state::StateStore`]) and appends history, records
//! and rates; the HTTP side has its own ([`ConsoleStore`]) to search them and to append to
//! the audit log. SQLite in WAL mode lets both work at once.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use telemetry::AlertMessage;

/// How long alert history is kept.
pub const HISTORY_KEEP_MS: i64 = 180 * 24 * 3_600_000;

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
             rule TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL, severity TEXT NOT NULL,
             town TEXT NOT NULL, summary TEXT NOT NULL, json TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS history_ts ON history (ts);
         CREATE INDEX IF NOT EXISTS history_device ON history (device, ts);
         CREATE TABLE IF NOT EXISTS inspection_record (id INTEGER PRIMARY KEY AUTOINCREMENT,
             device TEXT NOT NULL, date TEXT NOT NULL, next_due TEXT, result TEXT NOT NULL,
             inspector TEXT NOT NULL, report_no TEXT NOT NULL, comment TEXT NOT NULL,
             who TEXT NOT NULL, at INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS overdue_rate (ts INTEGER NOT NULL, town TEXT NOT NULL, kind TEXT NOT NULL,
             registered INTEGER NOT NULL, overdue INTEGER NOT NULL, PRIMARY KEY (town, kind, ts));
         CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
             who TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,
             remote TEXT NOT NULL);",
    )
}

pub use crate::registry::InspectionRecord;

/// Appends published transitions to the history, in the writer's transaction.
pub fn append_history(
    tx: &rusqlite::Transaction<'_>,
    alerts: &[(&AlertMessage, &str)],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO history (ts, rule, device, status, severity, town, summary, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (a, town) in alerts {
        let json = serde_json::to_string(a).unwrap_or_default();
        insert.execute(params![
            a.ts,
            a.rule,
            a.device,
            a.status.as_str(),
            a.severity,
            town,
            a.summary,
            json
        ])?;
    }
    Ok(())
}

pub fn forget_history_before(conn: &Connection, ts: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM history WHERE ts < ?1", params![ts])
}

pub fn insert_record(conn: &Connection, r: &InspectionRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO inspection_record (device, date, next_due, result, inspector, report_no, comment, who, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![r.device, r.date, r.next_due, r.result, r.inspector, r.report_no, r.comment, r.who, r.at],
    )?;
    Ok(())
}

/// Every inspection record, oldest first.
pub fn records(conn: &Connection) -> rusqlite::Result<Vec<InspectionRecord>> {
    let mut q = conn.prepare(
        "SELECT device, date, next_due, result, inspector, report_no, comment, who, at
         FROM inspection_record ORDER BY id",
    )?;
    let rows = q.query_map([], |r| {
        Ok(InspectionRecord {
            device: r.get(0)?,
            date: r.get(1)?,
            next_due: r.get(2)?,
            result: r.get(3)?,
            inspector: r.get(4)?,
            report_no: r.get(5)?,
            comment: r.get(6)?,
            who: r.get(7)?,
            at: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Saves one computation of the overdue rate: the total (town and kind empty), by town (kind
/// empty), by kind (town empty), and by both.
pub fn insert_rate(conn: &mut Connection, ts: i64, report: &rules::OverdueReport) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO overdue_rate (ts, town, kind, registered, overdue) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut put = |town: &str, kind: &str, t: &rules::registry::Tally| {
            insert.execute(params![ts, town, kind, t.registered as i64, t.overdue as i64]).map(|_| ())
        };
        put("", "", &report.total)?;
        for (town, t) in &report.by_town {
            put(town, "", t)?;
        }
        for (kind, t) in &report.by_kind {
            put("", kind, t)?;
        }
        for ((town, kind), t) in &report.by_town_kind {
            put(town, kind, t)?;
        }
    }
    tx.commit()
}

/// One history search; every filter given must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Part of the device, rule or summary.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub town: Option<String>,
    #[serde(default)]
    pub since: Option<i64>,
    #[serde(default)]
    pub until: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub ts: i64,
    pub who: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub remote: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatePoint {
    pub ts: i64,
    pub registered: i64,
    pub overdue: i64,
    pub rate: f64,
}

/// The HTTP side's connection.
pub struct ConsoleStore {
    conn: Connection,
}

impl ConsoleStore {
    pub fn open(path: &Path) -> Result<ConsoleStore, String> {
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;").map_err(err)?;
        migrate(&conn).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ConsoleStore { conn })
    }

    /// Transitions matching `q`, newest first, as JSON objects with `town` added.
    pub fn history(&self, q: &HistoryQuery) -> Result<Vec<serde_json::Value>, String> {
        let like = q.q.as_ref().map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")));
        let limit = q.limit.unwrap_or(200).clamp(1, 5_000);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT json, town FROM history WHERE
                   (?1 IS NULL OR device LIKE ?1 ESCAPE '\\' OR rule LIKE ?1 ESCAPE '\\' OR summary LIKE ?1 ESCAPE '\\')
                   AND (?2 IS NULL OR device = ?2) AND (?3 IS NULL OR rule = ?3)
                   AND (?4 IS NULL OR severity = ?4) AND (?5 IS NULL OR status = ?5)
                   AND (?6 IS NULL OR town = ?6)
                   AND (?7 IS NULL OR ts >= ?7) AND (?8 IS NULL OR ts < ?8)
                 ORDER BY ts DESC, id DESC LIMIT ?9",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(
                params![like, q.device, q.rule, q.severity, q.status, q.town, q.since, q.until, limit],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (json, town) = row.map_err(err)?;
            let mut v: serde_json::Value = serde_json::from_str(&json).map_err(err)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("town".into(), town.into());
            }
            out.push(v);
        }
        Ok(out)
    }

    pub fn audit(&self, entry: &AuditEntry) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO audit (ts, who, action, target, detail, remote) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![entry.ts, entry.who, entry.action, entry.target, entry.detail, entry.remote],
            )
            .map(|_| ())
            .map_err(err)
    }

    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, String> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ts, who, action, target, detail, remote FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![limit.clamp(1, 10_000)], |r| {
                Ok(AuditEntry {
                    ts: r.get(0)?,
                    who: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    detail: r.get(4)?,
                    remote: r.get(5)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// The overdue rate over time for a town and a kind (empty: all), oldest first.
    pub fn rate_history(&self, town: &str, kind: &str, since: i64) -> Result<Vec<RatePoint>, String> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ts, registered, overdue FROM overdue_rate WHERE town = ?1 AND kind = ?2 AND ts >= ?3
                 ORDER BY ts LIMIT 10000",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![town, kind, since], |r| {
                let (ts, registered, overdue): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                let rate = if registered == 0 { 0.0 } else { overdue as f64 / registered as f64 };
                Ok(RatePoint { ts, registered, overdue, rate })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}
