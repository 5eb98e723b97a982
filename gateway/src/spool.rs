//! The gateway's spool: every reading is appended to a crash-safe disk queue
//! ([`telemetry::spool`]) before it is published, and acknowledged there only once the broker
//! has acknowledged it. This module holds the `[spool]` config section and [`SpoolHandle`],
//! the spool shared by the pollers (append), the sender (read, rewind, acknowledge) and the
//! keeper task ([`keep`]: the group syncs, expiry).
//!
//! An append is a copy into the spool's write buffer: it is made on the poller's own task when
//! the spool is free, and on tokio's blocking pool when another operation holds it (a sync,
//! an acknowledgement). The buffer goes to the page cache in one write once its oldest record
//! is [`FLUSH_EVERY`] old (so a killed gateway loses at most that much of what the broker has
//! not received), and to disk at the group sync. Syncs, acknowledgements (the ledger's
//! overwrite), expiry and reads from disk always run on the blocking pool, never on a task
//! that must stay responsive. The newest
//! records are also kept in memory ([`crate::recent`]), so the sender reads what was just
//! appended without file work and knows its topic without decoding it.
//!
//! One process per spool folder: [`telemetry::spool::FolderLock`], an exclusive lock on the
//! folder's `lock` file, held while the spool is open and released by the system when the
//! process dies, so a crash leaves nothing to clean up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use telemetry::spool::{
    ByteSize, FolderLock, LockError, PendingSync, Spool, SpoolConfig, SpoolError, WhenFull,
};
use tokio::sync::{watch, Notify};

use crate::recent::Recent;
pub use crate::recent::{RecordMeta, SpoolRecord};

/// Appended records are synced to disk together ([`keep`]) at most about this long after they
/// were written.
pub const SYNC_EVERY: Duration = Duration::from_millis(50);
/// Appended records are written to the spool's file (not synced) together, by the first append
/// at least this long after the oldest of them, or by the sync.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// How often records past `max_age` are looked for.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

fn default_max_bytes() -> ByteSize {
    ByteSize(512 * 1024 * 1024)
}
fn default_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// `when_full` in `[spool]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFullSetting {
    /// Delete the oldest records (counted as dropped) to make room.
    #[default]
    DropOldest,
    /// Keep everything; the pollers wait (and miss polls, counted as overruns) until there is room.
    Block,
}

/// The `[spool]` section of `gateway.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSettings {
    /// The spool's folder; relative to the config file. Default: `{temp dir}/gateway-spool/{id}`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Most bytes on disk (`"512MiB"`, or a number of bytes).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Records older than this are dropped (counted); `"0s"` keeps them however old.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub when_full: WhenFullSetting,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: None,
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            when_full: WhenFullSetting::default(),
        }
    }
}

/// The smallest `max_bytes` accepted.
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;

impl SpoolSettings {
    /// The folder for gateway `gateway_id`: `dir`, or the default under the temp dir.
    pub fn folder(&self, gateway_id: &str) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("gateway-spool").join(gateway_id))
    }

    pub fn spool_config(&self) -> SpoolConfig {
        let max_bytes = self.max_bytes.0;
        SpoolConfig {
            max_bytes,
            max_age: (!self.max_age.is_zero()).then_some(self.max_age),
            when_full: match self.when_full {
                WhenFullSetting::DropOldest => WhenFull::DropOldest,
                WhenFullSetting::Block => WhenFull::Block,
            },
            // Several segments fit, so dropping the oldest frees a part, not everything.
            segment_bytes: (max_bytes / 8).clamp(4 * 1024, 16 * 1024 * 1024),
            ..SpoolConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("spool {dir}: in use by {holder} (one gateway per spool folder)")]
    InUse { dir: String, holder: String },
    #[error("spool {0}")]
    Lock(LockError),
}

pub use telemetry::status::SpoolCounters;

/// The spool and when its oldest unsynced and unwritten records were appended.
struct Guarded {
    spool: Spool,
    unsynced_since: Option<Instant>,
    unwritten_since: Option<Instant>,
}

impl Guarded {
    /// Writes out what was appended since the last sync, if anything, and hands back the
    /// file syncs to run without the lock, with when the oldest record they cover was appended.
    fn begin_sync(&mut self) -> Result<Option<(PendingSync, Instant)>, SpoolError> {
        let Some(since) = self.unsynced_since.take() else { return Ok(None) };
        match self.spool.begin_sync() {
            Ok(pending) => {
                self.unwritten_since = None;
                Ok(Some((pending, since)))
            }
            Err(e) => {
                self.unsynced_since = Some(since);
                Err(e)
            }
        }
    }

    /// The sync begun at `since` failed: what it covered is synced again next time.
    fn sync_failed(&mut self, pending: PendingSync, since: Instant) {
        self.spool.sync_failed(pending);
        self.unsynced_since = Some(self.unsynced_since.map_or(since, |s| s.min(since)));
    }

    /// Writes the appended records out once the oldest of them has waited [`FLUSH_EVERY`]. A
    /// failed write is tried again later; the sync reports it.
    fn flush_if_due(&mut self, now: Instant) {
        let since = *self.unwritten_since.get_or_insert(now);
        if now.duration_since(since) >= FLUSH_EVERY {
            self.unwritten_since = match self.spool.flush() {
                Ok(()) => None,
                Err(_) => Some(now),
            };
        }
    }

    fn counters(&self) -> SpoolCounters {
        let stats = self.spool.stats();
        SpoolCounters {
            spooled: stats.appended,
            acked: stats.acked,
            dropped_full: stats.dropped_full,
            dropped_age: stats.dropped_age,
            corrupt: stats.corrupt,
            pending: self.spool.pending(),
            bytes: self.spool.bytes(),
        }
    }
}

struct Inner {
    spool: Mutex<Guarded>,
    /// The counters after the last operation, readable without waiting for file work.
    snapshot: Mutex<SpoolCounters>,
    dir: PathBuf,
    /// An append happened (the sender waits on it).
    appended: Notify,
    /// Room was made (acknowledged or expired records; appenders blocked on a full spool wait on it).
    room: Notify,
    /// The newest records and the sender's position; locked after `spool` when both are.
    recent: Mutex<Recent>,
    _lock: FolderLock,
}

/// Appends under the spool's lock and keeps the record in memory too.
fn append_locked(
    g: &mut Guarded,
    recent: &Mutex<Recent>,
    payload: &Arc<Vec<u8>>,
    meta: &Option<RecordMeta>,
) -> Result<u64, SpoolError> {
    let appended = g.spool.append(payload);
    let mut recent = lock(recent);
    // Making room (drop_oldest) may have moved the acknowledged prefix.
    recent.acked(g.spool.acked());
    let id = appended?;
    let now = Instant::now();
    g.unsynced_since.get_or_insert(now);
    g.flush_if_due(now);
    recent.appended(id, payload.clone(), meta.clone());
    Ok(id)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The spool, shared. Cloning is cheap.
#[derive(Clone)]
pub struct SpoolHandle(Arc<Inner>);

impl SpoolHandle {
    /// Opens (or creates) the spool in `dir`, recovering from a crash. Blocking.
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<SpoolHandle, OpenError> {
        let lock = FolderLock::take(dir).map_err(|e| match e {
            LockError::InUse { dir, holder } => OpenError::InUse { dir, holder },
            e => OpenError::Lock(e),
        })?;
        let guarded = Guarded { spool: Spool::open(dir, cfg)?, unsynced_since: None, unwritten_since: None };
        let acked = guarded.spool.acked();
        Ok(SpoolHandle(Arc::new(Inner {
            recent: Mutex::new(Recent::new(acked, acked + guarded.spool.pending())),
            snapshot: Mutex::new(guarded.counters()),
            spool: Mutex::new(guarded),
            dir: dir.to_path_buf(),
            appended: Notify::new(),
            room: Notify::new(),
            _lock: lock,
        })))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Runs `f` on the spool (and its records in memory) on tokio's blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Guarded, &Mutex<Recent>) -> T + Send + 'static,
    ) -> T {
        let inner = self.0.clone();
        let run = move || {
            let mut g = lock(&inner.spool);
            let out = f(&mut g, &inner.recent);
            *lock(&inner.snapshot) = g.counters();
            out
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs `f` on this task if the spool is free; gives `f` back if it is busy.
    fn try_here<T, F>(&self, f: F) -> Result<T, F>
    where
        F: FnOnce(&mut Guarded, &Mutex<Recent>) -> T,
    {
        let mut g = match self.0.spool.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(f),
        };
        let out = f(&mut g, &self.0.recent);
        *lock(&self.0.snapshot) = g.counters();
        Ok(out)
    }

    /// Runs `f`, which works in memory or writes to the page cache (never syncs), on this task
    /// if the spool is free, else on the blocking pool once it is: each trip to the pool wakes
    /// two threads, which costs more than such work.
    async fn quick<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Guarded, &Mutex<Recent>) -> T + Send + 'static,
    ) -> T {
        match self.try_here(f) {
            Ok(out) => out,
            Err(f) => self.with(f).await,
        }
    }

    /// Appends `payload`. Records are synced in groups by [`keep`], every [`SYNC_EVERY`].
    /// With `when_full = "block"` and the spool full, waits for room until `stop` turns true
    /// (then gives the full error back).
    pub async fn append(
        &self,
        payload: Vec<u8>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<u64, SpoolError> {
        self.append_with(payload, None, stop).await
    }

    /// [`SpoolHandle::append`], with what the sender needs to know of the record.
    pub async fn append_with(
        &self,
        payload: Vec<u8>,
        meta: Option<RecordMeta>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<u64, SpoolError> {
        let payload = Arc::new(payload);
        loop {
            let appended = match self.try_here(|g, recent| append_locked(g, recent, &payload, &meta)) {
                Ok(appended) => appended,
                Err(_) => {
                    let (p, m) = (payload.clone(), meta.clone());
                    self.with(move |g, recent| append_locked(g, recent, &p, &m)).await
                }
            };
            match appended {
                Ok(id) => {
                    self.0.appended.notify_one();
                    return Ok(id);
                }
                Err(SpoolError::Full { .. }) if !*stop.borrow() => {
                    tokio::select! {
                        _ = self.0.room.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until something is appended (or returns at once if something was since the last wait).
    pub async fn appended(&self) {
        self.0.appended.notified().await
    }

    /// Up to `max` records not yet read since the last rewind, oldest first: from memory when
    /// they are there, else from disk.
    pub async fn read(&self, max: usize) -> Result<Vec<SpoolRecord>, SpoolError> {
        if let Some(records) = lock(&self.0.recent).take(max) {
            return Ok(records);
        }
        self.with(move |g, recent| {
            // The spool's own position may lag behind records already handed out from memory.
            let from = lock(recent).cursor();
            let mut out = Vec::new();
            while out.is_empty() {
                let records = g.spool.read(max)?;
                if records.is_empty() {
                    break;
                }
                out.extend(records.into_iter().filter(|r| r.id >= from).map(|r| SpoolRecord {
                    id: r.id,
                    payload: Arc::new(r.payload),
                    meta: None,
                }));
            }
            if let Some(last) = out.last() {
                lock(recent).read_through(last.id + 1);
            }
            Ok(out)
        })
        .await
    }

    pub async fn rewind(&self) {
        self.quick(|g, recent| {
            g.spool.rewind();
            lock(recent).rewind(g.spool.acked());
        })
        .await
    }

    pub async fn ack_through(&self, id: u64) -> Result<(), SpoolError> {
        let result = self
            .quick(move |g, recent| {
                let acked = g.spool.ack_through(id);
                lock(recent).acked(g.spool.acked());
                acked
            })
            .await;
        self.0.room.notify_waiters();
        result
    }

    /// Syncs what was appended since the last sync, if anything. The `fdatasync`s run without
    /// the spool's lock, so a slow disk (an SD card, a busy host) holds up no append and so no
    /// poll.
    pub async fn sync(&self) -> Result<(), SpoolError> {
        let Some((pending, since)) = self.quick(|g, _| g.begin_sync()).await? else { return Ok(()) };
        let (synced, pending) = match tokio::task::spawn_blocking(move || (pending.run(), pending)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if let Err(e) = synced {
            self.quick(move |g, _| g.sync_failed(pending, since)).await;
            return Err(e);
        }
        Ok(())
    }

    pub async fn expire(&self) -> Result<u64, SpoolError> {
        let dropped = self
            .with(|g, recent| {
                let dropped = g.spool.expire(SystemTime::now());
                lock(recent).acked(g.spool.acked());
                dropped
            })
            .await?;
        if dropped > 0 {
            self.0.room.notify_waiters();
        }
        Ok(dropped)
    }

    /// Records not yet acknowledged, as of the last operation (never waits for file work).
    pub fn pending(&self) -> u64 {
        lock(&self.0.snapshot).pending
    }

    /// The counters as of the last operation (never waits for file work).
    pub fn counters(&self) -> SpoolCounters {
        *lock(&self.0.snapshot)
    }
}

/// Syncs what was appended since the last sync, every [`SYNC_EVERY`], and drops expired
/// records, until `stop` turns true; then syncs once more.
pub async fn keep(spool: SpoolHandle, mut stop: watch::Receiver<bool>) {
    let mut sync = tokio::time::interval(SYNC_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sync.tick() => {
                if let Err(e) = spool.sync().await {
                    tracing::error!("{e}");
                }
            }
            _ = expire.tick() => match spool.expire().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("spool: dropped {n} readings older than max_age"),
                Err(e) => tracing::error!("{e}"),
            },
            _ = stop.changed() => {
                if let Err(e) = spool.sync().await {
                    tracing::error!("{e}");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
