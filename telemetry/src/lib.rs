//! The contract between the edge gateway, ingest and anyone else on the broker.
//!
//! Module map (data flows top to bottom):
//! - [`reading`]: `Reading`, one poll of one device, and its point `Value`s.
//! - [`codec`]: the v1 JSON payload: `encode` for the gateway, `decode` for ingest. A rejected
//!   payload names the field and the reason (`PayloadError`).
//! - [`topic`]: building and parsing every topic of the wire contract, and the partition of a
//!   device (`crc32(device) % partitions`).
//! - [`alert`]: the JSON published on `alerts/{device}/{rule}` and `events/alerts`.
//! - [`line_protocol`]: InfluxDB line protocol, the one encoder ingest and the rules' reports
//!   write with, and the parser `rules backtest` reads recorded files with.
//! - [`backoff`]: how long to wait before trying again, doubling, capped, with jitter.
//! - [`spool`]: the crash-safe disk queue both sides use (the gateway's spool, ingest's WAL).
//!
//! No network code lives here: both sides link it.

pub mod alert;
pub mod backoff;
pub mod codec;
pub mod line_protocol;
pub mod reading;
pub mod spool;
pub mod topic;

pub use alert::{AlertMessage, AlertStatus};
pub use codec::{decode, encode, PayloadError};
pub use reading::{Reading, Value};
pub use topic::{partition_of, Topic, TopicError, Topics};

/// The payload version this crate speaks.
pub const PAYLOAD_VERSION: u64 = 1;
