//! The writer's upkeep: saving the rules engine's state (and only then acknowledging the WAL
//! it covers), and reloading rule files when they change.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::sync::watch;

use super::writer::{Batch, Writer};
use crate::config::IngestConfig;
use crate::pipeline::Pipeline;

/// Watches the rule files (and the folders holding them) for changes; how often is
/// [`super::timers::Timers`]' business.
pub struct RulesWatch {
    cfg: IngestConfig,
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
}

impl RulesWatch {
    pub fn new(cfg: &IngestConfig) -> RulesWatch {
        let mut w = RulesWatch { cfg: cfg.clone(), stamps: Vec::new() };
        w.stamps = w.current();
        w
    }

    fn current(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        super::rule_files(&self.cfg)
            .into_iter()
            .map(|p| {
                let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                (p, modified)
            })
            .collect()
    }

    /// True when a file was added, removed or modified since the last call.
    fn changed(&mut self) -> bool {
        let now = self.current();
        let changed = now != self.stamps;
        self.stamps = now;
        changed
    }
}

impl Writer {
    /// Saves the engine's state covering the WAL up to `processed`, then acknowledges the WAL
    /// up to there. Without a state store, acknowledges at once.
    pub(super) fn save_state(&mut self, pipeline: &Pipeline) {
        if let Some(state) = self.state.as_mut() {
            let snapshot = pipeline.engine().snapshot();
            if let Err(e) =
                tokio::task::block_in_place(|| state.save(&snapshot, self.processed, telemetry::now_ms()))
            {
                // Keep the WAL: after a restart it replays from the last saved state.
                tracing::error!("alert state: {e}");
                return;
            }
            self.timers.snapshot_saved(tokio::time::Instant::now());
        }
        if self.processed == 0 {
            return;
        }
        let acked = tokio::task::block_in_place(|| match self.wal.lock() {
            Ok(mut w) => w.ack_through(self.processed).map_err(|e| e.to_string()),
            Err(_) => Err("the WAL lock is poisoned".to_string()),
        });
        match acked {
            Ok(()) => self.saved = self.processed,
            Err(e) => tracing::error!("WAL ack: {e}"),
        }
    }

    /// Reloads the rule files if they changed: everything is validated first and swapped in one
    /// step, keeping alert state by rule id; a bad file keeps the old rules running.
    pub(super) async fn reload_rules(
        &mut self,
        pipeline: &mut Pipeline,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        if !self.rules_watch.changed() {
            return;
        }
        let m = &self.hooks.metrics;
        match super::load_rules(&self.cfg) {
            Ok(set) => {
                let n = set.rules.len();
                let alerts = pipeline.engine_mut().replace_rules(set);
                m.rules_loaded.store(n as u64, Ordering::Relaxed);
                m.rules_reloads.fetch_add(1, Ordering::Relaxed);
                m.rules_reload_ok.store(true, Ordering::Relaxed);
                m.rules_last_reload_ms.store(telemetry::now_ms(), Ordering::Relaxed);
                if let Ok(mut e) = m.rules_last_error.lock() {
                    *e = None;
                }
                tracing::info!(
                    "rules reloaded: {n} rules; {} alerts of removed rules resolved",
                    alerts.len()
                );
                if !alerts.is_empty() {
                    let mut lines = String::new();
                    for a in &alerts {
                        crate::line_protocol::push_alert(&mut lines, a);
                    }
                    let mut batch =
                        Batch { chunks: vec![(String::new(), lines)], alerts, ..Batch::default() };
                    if self.write(pipeline, &mut batch, shutdown).await {
                        self.publish(pipeline, &mut batch).await;
                    }
                }
            }
            Err(e) => {
                m.rules_reload_failures.fetch_add(1, Ordering::Relaxed);
                m.rules_reload_ok.store(false, Ordering::Relaxed);
                if let Ok(mut last) = m.rules_last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::error!("rule files not reloaded, the previous rules keep running: {e}");
            }
        }
        self.push_rules_status();
    }
}
