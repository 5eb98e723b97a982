//! The contract between the edge gateway, ingest and anyone else on the broker.
//!
//! Module map (data flows top to bottom):
//! - [`reading`]: `Reading`, one poll of one device, and its point `Value`s.
//! - [`codec`]: the v1 JSON payload: `encode` for the gateway, `decode` for ingest. A rejected
//!   payload names the field and the reason (`PayloadError`).
//! - [`topic`]: building and parsing every topic of the wire contract, and the partition of a
//!   device (`crc32(device) % partitions`).
//! - [`alert`]: the JSON published on `alerts/{device}/{rule}` and `events/alerts`.
//! - [`status`]: the retained gateway and device status payloads on `status/…`.
//! - [`profile`]: device profiles, the register maps gateway polls by and rules are checked
//!   against; [`builtin_profiles`]: the shipped ones, compiled in.
//! - [`mqtt`]: the `[mqtt]` config section every MQTT client of the project reads.
//! - [`line_protocol`]: InfluxDB line protocol, the one encoder ingest and the rules' reports
//!   write with, and the parser `rules backtest` reads recorded files with.
//! - [`backoff`]: how long to wait before trying again, doubling, capped, with jitter.
//! - [`spool`]: the crash-safe disk queue both sides use (the gateway's spool, ingest's WAL).
//! - [`service`] (feature `service`): what the binaries share: version, logs, one-line errors,
//!   the stop signal, config files with environment overrides, rumqttc options.
//!
//! Without the `service` feature no network code lives here: anything that speaks the
//! contract can link it.

pub mod alert;
pub mod backoff;
pub mod builtin_profiles;
pub mod codec;
pub mod line_protocol;
pub mod mqtt;
pub mod profile;
pub mod reading;
#[cfg(feature = "service")]
pub mod service;
pub mod spool;
pub mod status;
pub mod topic;

pub use alert::{AlertMessage, AlertStatus};
pub use codec::{decode, encode, PayloadError};
pub use reading::{Reading, Value};
pub use topic::{partition_of, Topic, TopicError, Topics};

/// The payload version this crate speaks.
pub const PAYLOAD_VERSION: u64 = 1;

/// Wall-clock time in milliseconds since the Unix epoch (0 before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
