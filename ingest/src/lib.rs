//! Ingest: from the broker to the TSDB and the alert sinks.
//!
//! Module map, in the order data flows:
//! - [`config`]: `ingest.toml` with `INGEST_*` env overrides; [`check`]: `ingest check`.
//! - [`server`]: the async shell: MQTT with manual acks into a write-ahead log (a
//!   `telemetry::spool`), and a writer that drains it to the sink; the writer's periodic jobs
//!   (no-data tick, registry and rule file checks, overdue rate, snapshots) come due in a pure
//!   schedule with the time passed in.
//! - [`pipeline`]: the pure core: topic and payload in; line protocol, alert transitions or a
//!   dead letter out. Hosts the [`rules`] engine and [`dedup`].
//! - [`limits`]: the `[limits]` section: what one message may hold, and why it is refused.
//! - [`registry`]: the equipment registry CSV, reloaded when it changes.
//! - [`state`]: the rules engine's state in SQLite, so alerts survive a restart; [`store`]:
//!   the console's tables in the same database (history, inspection records, overdue rate,
//!   audit log).
//! - [`line_protocol`]: readings and alerts as InfluxDB line protocol.
//! - [`sink`]: the InfluxDB v2 write API (influxdb2 crate), or rotated line-protocol files.
//! - [`notify`]: alert notifications (webhooks, WeCom, DingTalk, Feishu, e-mail), grouped and
//!   delivered once through a durable outbox.
//! - [`metrics`] and [`http`]: `/metrics` (encoded by the prometheus-client crate), `/healthz`,
//!   `/readyz`; [`health`] decides readiness.
//! - [`redact`]: secrets (URL query tokens, passwords) out of logs, errors and the outbox.
//! - [`console`]: the web console and its JSON API (login, alerts, acknowledgements, silences,
//!   inspections, overdue rate, status, live events), beside `/metrics`.
//!
//! The demo (the whole system in one process) is the `demo` crate: it links ingest, not the
//! other way round.

pub mod check;
pub mod config;
pub mod console;
pub mod dedup;
pub mod health;
pub mod http;
pub mod limits;
pub mod line_protocol;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod redact;
pub mod registry;
pub mod server;
pub mod sink;
pub mod state;
pub mod store;

pub use config::IngestConfig;
