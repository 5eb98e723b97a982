//! The web console and its JSON API (ingest/API.md), served by ingest's HTTP listener.
//!
//! - [`auth`]: users and roles from configuration, argon2 hashes, sessions with a CSRF token,
//!   API tokens.
//! - [`api`]: the handlers. Reads of the engine's state and changes to the alert lifecycle go
//!   to the writer task as [`Command`]s, so the engine stays single-owner; history, the audit
//!   log and the overdue rate over time are read from [`crate::store`].
//! - [`views`]: what the writer answers: active alerts with their registry row, due and
//!   overdue units, online status.
//! - `assets/`: the single-page console (plain HTML, CSS and JavaScript, no build step).

pub mod api;
pub mod auth;
pub mod views;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use crate::registry::InspectionRecord;
pub use auth::{Role, TokenConfig, UserConfig};

use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

fn default_offline_after() -> Duration {
    Duration::from_secs(300)
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

/// `[console]`: who may log in, and how the console judges online status.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// A device is offline when its newest reading is older than this.
    #[serde(default = "default_offline_after", with = "humantime_serde")]
    pub offline_after: Duration,
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            users: Vec::new(),
            tokens: Vec::new(),
            offline_after: default_offline_after(),
            session_ttl: default_session_ttl(),
        }
    }
}

/// A read of the pipeline's state, run on the writer between batches.
pub type Read = Box<dyn FnOnce(&Pipeline) + Send>;
/// A change of the alert lifecycle at `now`: the transitions it makes, which the writer writes,
/// publishes and saves before answering.
pub type Change =
    Box<dyn FnOnce(&mut Pipeline, i64) -> Result<Vec<telemetry::AlertMessage>, api::ApiError> + Send>;

/// What the HTTP side asks of the writer.
pub enum Command {
    Read(Read),
    Change(Change, oneshot::Sender<Result<Vec<telemetry::AlertMessage>, api::ApiError>>),
    RecordInspection(InspectionRecord, oneshot::Sender<Result<(), api::ApiError>>),
}

/// What the console pushes to browsers (`GET /api/v1/events`).
#[derive(Clone, Debug)]
pub enum Event {
    /// An alert transition as published, with its town.
    Alert(String),
    /// The rules' status after a reload.
    Rules(String),
}

/// The console's shared state: the handlers' `State`.
pub struct Console {
    pub cfg: ConsoleConfig,
    pub auth: auth::Auth,
    pub commands: mpsc::Sender<Command>,
    pub events: broadcast::Sender<Event>,
    /// The state database's console tables; `None` when alert state is off.
    pub store: Option<Mutex<crate::store::ConsoleStore>>,
    pub metrics: Arc<Metrics>,
    /// Password checks running at once.
    pub password_checks: tokio::sync::Semaphore,
}

/// The ends the writer keeps: commands to serve and events to push.
pub struct WriterSide {
    pub commands: mpsc::Receiver<Command>,
    pub events: broadcast::Sender<Event>,
}

impl Console {
    /// The console and the writer's ends of its channels; `Ok(None)` when no user or token is
    /// configured (the console is off).
    pub fn new(
        cfg: &ConsoleConfig,
        state_path: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<(Arc<Console>, WriterSide)>, String> {
        let auth = auth::Auth::new(&cfg.users, &cfg.tokens, cfg.session_ttl)?;
        if auth.is_empty() {
            return Ok(None);
        }
        let store = match state_path {
            Some(p) => Some(Mutex::new(crate::store::ConsoleStore::open(p)?)),
            None => None,
        };
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let console = Console {
            cfg: cfg.clone(),
            auth,
            commands: tx,
            events: events.clone(),
            store,
            metrics,
            password_checks: tokio::sync::Semaphore::new(2),
        };
        Ok(Some((Arc::new(console), WriterSide { commands: rx, events })))
    }
}
