//! What ingest will take from one message, and the reasons it refuses one: the `[limits]`
//! section. Pure: the time is a parameter (the message's receive time), so a WAL replay judges
//! a message as it was judged when it came.
//!
//! Each refusal has a [`Reason`]: its label on `ingest_dead_letters_total{reason=…}` and, with a
//! sentence naming the limit, on the dead letter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use telemetry::spool::ByteSize;
use telemetry::{PayloadError, Reading, Value};

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not a telemetry topic, not JSON, a field missing or of the wrong type.
    Invalid,
    /// Not in the equipment registry (with `reject_unknown_devices`).
    UnknownDevice,
    TooLarge,
    TsFuture,
    TsTooOld,
    TooManyValues,
    KeyTooLong,
    StringTooLong,
    IdTooLong,
    NewDeviceRate,
    TooManyKinds,
    TooManyFields,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Invalid,
        Reason::UnknownDevice,
        Reason::TooLarge,
        Reason::TsFuture,
        Reason::TsTooOld,
        Reason::TooManyValues,
        Reason::KeyTooLong,
        Reason::StringTooLong,
        Reason::IdTooLong,
        Reason::NewDeviceRate,
        Reason::TooManyKinds,
        Reason::TooManyFields,
    ];

    /// The `reason` label: stable, dashboards use it.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Invalid => "invalid",
            Reason::UnknownDevice => "unknown_device",
            Reason::TooLarge => "too_large",
            Reason::TsFuture => "ts_future",
            Reason::TsTooOld => "ts_too_old",
            Reason::TooManyValues => "too_many_values",
            Reason::KeyTooLong => "key_too_long",
            Reason::StringTooLong => "string_too_long",
            Reason::IdTooLong => "id_too_long",
            Reason::NewDeviceRate => "new_device_rate",
            Reason::TooManyKinds => "too_many_kinds",
            Reason::TooManyFields => "too_many_fields",
        }
    }

    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The reason of a payload the codec refused: a length over the format's bound is counted
    /// with the matching limit, the rest as invalid.
    pub fn of_payload_error(e: &PayloadError) -> Reason {
        match e {
            PayloadError::TooLong { field, .. } if field == "gw" || field == "dev" => Reason::IdTooLong,
            PayloadError::TooLong { field, .. } if field.starts_with("values.") => Reason::KeyTooLong,
            _ => Reason::Invalid,
        }
    }
}

/// A refusal: the reason and the sentence for the dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

fn refuse(reason: Reason, message: String) -> Refusal {
    Refusal { reason, message }
}

fn default_max_message() -> ByteSize {
    ByteSize(256 * 1024)
}
fn default_max_future() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_max_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_max_values() -> usize {
    512
}
fn default_max_key() -> usize {
    telemetry::codec::MAX_POINT_NAME_LEN
}
fn default_max_string() -> usize {
    1024
}
fn default_max_id() -> usize {
    telemetry::codec::MAX_ID_LEN
}
fn default_new_devices() -> u32 {
    1_000
}
fn default_max_kinds() -> usize {
    64
}
fn default_max_fields() -> usize {
    1_024
}

/// `[limits]` in `ingest.toml`. Every message over a limit is dead-lettered with the reason and
/// acknowledged; none stops the stream.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest MQTT payload taken. Set the broker's own limit (Mosquitto `message_size_limit`,
    /// `max_packet_size` in 2.x) somewhat above it, so ingest still sees and dead-letters it.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// A `ts` further ahead of the receive time than this is refused.
    #[serde(default = "default_max_future", with = "humantime_serde")]
    pub max_future: Duration,
    /// A `ts` older than this (before the receive time) is refused.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// Values per reading.
    #[serde(default = "default_max_values")]
    pub max_values: usize,
    /// Bytes of a value or point-error name.
    #[serde(default = "default_max_key")]
    pub max_key_bytes: usize,
    /// Bytes of a text value or point-error reason.
    #[serde(default = "default_max_string")]
    pub max_string_bytes: usize,
    /// Bytes of a gateway or device id.
    #[serde(default = "default_max_id")]
    pub max_id_bytes: usize,
    /// Device ids one gateway may introduce per minute (a token bucket holding a minute's worth).
    #[serde(default = "default_new_devices")]
    pub new_devices_per_minute: u32,
    /// Distinct kinds (TSDB measurements) taken.
    #[serde(default = "default_max_kinds")]
    pub max_kinds: usize,
    /// Distinct value names (TSDB fields) per kind.
    #[serde(default = "default_max_fields")]
    pub max_fields_per_kind: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: default_max_message(),
            max_future: default_max_future(),
            max_age: default_max_age(),
            max_values: default_max_values(),
            max_key_bytes: default_max_key(),
            max_string_bytes: default_max_string(),
            max_id_bytes: default_max_id(),
            new_devices_per_minute: default_new_devices(),
            max_kinds: default_max_kinds(),
            max_fields_per_kind: default_max_fields(),
        }
    }
}

impl LimitsConfig {
    /// What is wrong with these limits, for `IngestConfig::problems`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_message_bytes.0 == 0 {
            out.push("limits.max_message_bytes must be at least 1".into());
        }
        if self.max_key_bytes > telemetry::codec::MAX_POINT_NAME_LEN {
            out.push(format!(
                "limits.max_key_bytes: at most {} (the payload format's bound)",
                telemetry::codec::MAX_POINT_NAME_LEN
            ));
        }
        if self.max_id_bytes > telemetry::codec::MAX_ID_LEN {
            out.push(format!(
                "limits.max_id_bytes: at most {} (the payload format's bound)",
                telemetry::codec::MAX_ID_LEN
            ));
        }
        for (name, v) in [("max_values", self.max_values), ("max_kinds", self.max_kinds)] {
            if v == 0 {
                out.push(format!("limits.{name} must be at least 1"));
            }
        }
        if self.max_fields_per_kind == 0 {
            out.push("limits.max_fields_per_kind must be at least 1".into());
        }
        out
    }
}

const MINUTE_MS: f64 = 60_000.0;

/// One gateway's allowance of new device ids.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// The limits and the little state they need: the kinds and field names taken (bounded by
/// `max_kinds` × `max_fields_per_kind`), and a bucket per gateway that introduced a device in
/// the last minute (a full bucket is the same as none, so those are dropped).
pub struct Limits {
    cfg: LimitsConfig,
    kinds: HashMap<String, HashSet<String>>,
    buckets: HashMap<String, Bucket>,
    /// Buckets are swept when there are this many.
    sweep_at: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitsConfig::default())
    }
}

impl Limits {
    pub fn new(cfg: LimitsConfig) -> Self {
        Limits { cfg, kinds: HashMap::new(), buckets: HashMap::new(), sweep_at: 1_024 }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.cfg
    }

    /// Refuses a payload of `len` bytes over `max_message_bytes`.
    pub fn check_size(&self, len: usize) -> Result<(), Refusal> {
        let max = self.cfg.max_message_bytes.0;
        if len as u64 > max {
            return Err(too_large(len, max));
        }
        Ok(())
    }

    /// Checks a decoded reading received at `now_ms`; `known_device` when ingest already holds
    /// state for the device (or the registry lists it), so it costs no new-device allowance.
    /// Only a reading that passes every check is counted (kinds, fields, allowance).
    pub fn check(&mut self, r: &Reading, now_ms: i64, known_device: bool) -> Result<(), Refusal> {
        let c = &self.cfg;
        for (field, id) in [("gw", &r.gateway), ("dev", &r.device)] {
            if id.len() > c.max_id_bytes {
                let msg = format!(
                    "field `{field}`: {} bytes is longer than the limit of {}",
                    id.len(),
                    c.max_id_bytes
                );
                return Err(refuse(Reason::IdTooLong, msg));
            }
        }
        let ahead = r.ts_ms.saturating_sub(now_ms);
        if ahead > c.max_future.as_millis() as i64 {
            let msg = format!(
                "field `ts`: {} is {} ahead of ingest's clock ({now_ms}); at most {} is taken",
                r.ts_ms,
                human(ahead),
                humantime::format_duration(c.max_future)
            );
            return Err(refuse(Reason::TsFuture, msg));
        }
        let age = now_ms.saturating_sub(r.ts_ms);
        if age > c.max_age.as_millis() as i64 {
            let msg = format!(
                "field `ts`: {} is {} old; readings older than {} are not taken",
                r.ts_ms,
                human(age),
                humantime::format_duration(c.max_age)
            );
            return Err(refuse(Reason::TsTooOld, msg));
        }
        let count = r.values.len().max(r.errors.len());
        if count > c.max_values {
            let msg = format!(
                "field `values`: {} values and {} point errors, more than the limit of {} per reading",
                r.values.len(),
                r.errors.len(),
                c.max_values
            );
            return Err(refuse(Reason::TooManyValues, msg));
        }
        let keys = r.values.keys().map(|k| ("values", k)).chain(r.errors.keys().map(|k| ("errors", k)));
        for (map, key) in keys {
            if key.len() > c.max_key_bytes {
                let msg = format!(
                    "field `{map}.{}…`: a {}-byte name, longer than the limit of {}",
                    cut(key, 32),
                    key.len(),
                    c.max_key_bytes
                );
                return Err(refuse(Reason::KeyTooLong, msg));
            }
        }
        let texts = r
            .values
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Text(t) => Some(("values", k, t)),
                _ => None,
            })
            .chain(r.errors.iter().map(|(k, t)| ("errors", k, t)));
        for (map, key, text) in texts {
            if text.len() > c.max_string_bytes {
                let msg = format!(
                    "field `{map}.{key}`: a {}-byte text, longer than the limit of {}",
                    text.len(),
                    c.max_string_bytes
                );
                return Err(refuse(Reason::StringTooLong, msg));
            }
        }
        let new_fields = match self.kinds.get(&r.kind) {
            Some(fields) => r.values.keys().filter(|k| !fields.contains(*k)).count(),
            None if self.kinds.len() >= c.max_kinds => {
                let msg = format!(
                    "field `kind`: `{}` would be kind number {}, more than the limit of {} kinds",
                    r.kind,
                    self.kinds.len() + 1,
                    c.max_kinds
                );
                return Err(refuse(Reason::TooManyKinds, msg));
            }
            None => r.values.len(),
        };
        let known_fields = self.kinds.get(&r.kind).map_or(0, HashSet::len);
        if known_fields + new_fields > c.max_fields_per_kind {
            let msg = format!(
                "field `values`: {new_fields} new names would give kind `{}` {} fields, more than the limit of {}",
                r.kind,
                known_fields + new_fields,
                c.max_fields_per_kind
            );
            return Err(refuse(Reason::TooManyFields, msg));
        }
        if !known_device {
            self.take_new_device(&r.gateway, &r.device, now_ms)?;
        }
        // No allocation for the common case: a known kind with no new names.
        if new_fields > 0 || !self.kinds.contains_key(&r.kind) {
            self.kinds.entry(r.kind.clone()).or_default().extend(r.values.keys().cloned());
        }
        Ok(())
    }

    /// Takes one new-device token of `gateway` at `now_ms`.
    fn take_new_device(&mut self, gateway: &str, device: &str, now_ms: i64) -> Result<(), Refusal> {
        let rate = self.cfg.new_devices_per_minute as f64;
        if self.buckets.len() >= self.sweep_at {
            self.buckets.retain(|_, b| refill(*b, rate, now_ms) < rate);
            self.sweep_at = (self.buckets.len() * 2).max(1_024);
        }
        let bucket =
            self.buckets.entry(gateway.to_string()).or_insert(Bucket { tokens: rate, at_ms: now_ms });
        let tokens = refill(*bucket, rate, now_ms);
        if tokens < 1.0 {
            let msg = format!(
                "field `dev`: `{device}` is a new device id, and gateway `{gateway}` has introduced more than {} new device ids in the last minute",
                self.cfg.new_devices_per_minute
            );
            return Err(refuse(Reason::NewDeviceRate, msg));
        }
        *bucket = Bucket { tokens: tokens - 1.0, at_ms: now_ms.max(bucket.at_ms) };
        Ok(())
    }

    /// Gateways with a bucket that is not full (for tests of the bound).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// The refusal of a `len`-byte message over a `max`-byte limit.
pub fn too_large(len: usize, max: u64) -> Refusal {
    refuse(
        Reason::TooLarge,
        format!("message of {len} bytes is larger than the limit of {max} bytes (limits.max_message_bytes)"),
    )
}

/// The tokens of `b` at `now_ms`, refilled at `rate` per minute up to `rate`.
fn refill(b: Bucket, rate: f64, now_ms: i64) -> f64 {
    let elapsed = now_ms.saturating_sub(b.at_ms).max(0) as f64;
    (b.tokens + elapsed * rate / MINUTE_MS).min(rate)
}

fn human(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs(ms.max(0) as u64 / 1000)).to_string()
}

/// At most `n` bytes of `s`, on a character boundary.
fn cut(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
