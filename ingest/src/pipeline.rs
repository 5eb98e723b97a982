//! The pure core of ingest: one MQTT message in, what to do with it out. No I/O, no clock:
//! the shell in [`crate::server`] writes, publishes and acknowledges.

use std::collections::BTreeMap;

use std::sync::Arc;

use rules::{Engine, Registry};
use serde::Serialize;
use telemetry::{AlertMessage, Topic, Topics};

use crate::dedup::{Dedup, Seen};
use crate::limits::{Limits, LimitsConfig, Reason, Refusal};
use crate::line_protocol;

/// What one message turned into.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A valid reading: its line(s) for the TSDB, and the alert transitions it caused.
    Reading { kind: String, gateway: String, lines: String, alerts: Vec<AlertMessage> },
    /// Rejected: publish `payload` on `topic` (the dead-letter topic of the gateway).
    DeadLetter { topic: String, payload: Vec<u8>, reason: String },
    /// Seen before (same device, sid and seq): nothing to do.
    Duplicate,
}

/// The dead-letter message: why, and what was received.
#[derive(Serialize)]
struct DeadLetter<'a> {
    reason: &'a str,
    topic: &'a str,
    /// The payload as text (invalid UTF-8 replaced), cut at 64 KiB.
    payload: &'a str,
    received_at: i64,
}

/// Counters for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub invalid: u64,
    pub readings_by_kind: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub gaps: u64,
    pub alerts_firing: u64,
    pub alerts_resolved: u64,
    /// Dead letters by [`Reason`], indexed by [`Reason::index`].
    pub dead_letters: [u64; Reason::ALL.len()],
}

pub struct Pipeline {
    topics: Topics,
    engine: Engine,
    dedup: Dedup,
    /// With a registry, devices not in it are refused (when `reject_unknown`) and readings are
    /// tagged with their town.
    registry: Option<Arc<Registry>>,
    reject_unknown: bool,
    limits: Limits,
    pub stats: Stats,
    /// Devices idle this long are forgotten (engine and dedup); none: never.
    evict_idle_ms: Option<i64>,
    last_dedup_sweep: Option<i64>,
}

/// Bytes of the original payload a dead letter carries.
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 64 * 1024;
/// The default of `[state] evict_idle_after`.
pub const EVICT_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How often the dedup state is swept for idle devices, in host time.
const DEDUP_SWEEP_EVERY_MS: i64 = 60_000;

impl Pipeline {
    pub fn new(topics: Topics, engine: Engine) -> Self {
        let mut p = Pipeline {
            topics,
            engine,
            dedup: Dedup::default(),
            registry: None,
            reject_unknown: false,
            limits: Limits::default(),
            stats: Stats::default(),
            evict_idle_ms: None,
            last_dedup_sweep: None,
        };
        p.set_evict_idle_after(Some(EVICT_IDLE_AFTER));
        p
    }

    /// Forget devices with no message for `after` (none or zero: never): their dedup state, and
    /// their rules state unless it holds an alert (see `rules::engine` eviction).
    pub fn set_evict_idle_after(&mut self, after: Option<std::time::Duration>) {
        let after = after.filter(|d| !d.is_zero());
        self.engine.set_evict_idle_after(after);
        self.evict_idle_ms = after.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    }

    /// Devices whose dedup state is held.
    pub fn dedup_devices(&self) -> usize {
        self.dedup.len()
    }

    /// Puts `[limits]` in force (the kinds and field names taken so far are forgotten).
    pub fn set_limits(&mut self, cfg: LimitsConfig) {
        self.limits = Limits::new(cfg);
    }

    pub fn limits(&self) -> &LimitsConfig {
        self.limits.config()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Installs a (re)loaded registry: attributes for the rules, towns for tags, and with
    /// `reject_unknown`, the devices accepted.
    pub fn set_registry(&mut self, registry: Arc<Registry>, reject_unknown: bool) {
        self.engine.set_registry(registry.clone());
        self.registry = Some(registry);
        self.reject_unknown = reject_unknown;
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// Advances the no-data rules to `now_ms`: alerts for devices and gateways gone silent,
    /// with their line protocol. Also forgets idle devices (at most once a minute).
    pub fn tick(&mut self, now_ms: i64) -> (Vec<AlertMessage>, String) {
        let alerts = self.engine.tick(now_ms);
        if let Some(idle_ms) = self.evict_idle_ms {
            if self.last_dedup_sweep.is_none_or(|l| now_ms.saturating_sub(l) >= DEDUP_SWEEP_EVERY_MS) {
                self.last_dedup_sweep = Some(now_ms);
                self.dedup.evict_idle(now_ms, idle_ms);
            }
        }
        let mut lines = String::new();
        for a in &alerts {
            line_protocol::push_alert(&mut lines, a);
            self.count(a);
        }
        (alerts, lines)
    }

    fn count(&mut self, alert: &AlertMessage) {
        match alert.status {
            telemetry::AlertStatus::Firing => self.stats.alerts_firing += 1,
            telemetry::AlertStatus::Resolved => self.stats.alerts_resolved += 1,
            _ => {}
        }
    }

    /// Handles one message received at `now_ms`: the time its timestamp is judged against (so
    /// a WAL replay passes the receive time, not its own) and dead letters are stamped with.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now_ms: i64) -> Outcome {
        self.stats.received += 1;
        let result = match self.limits.check_size(payload.len()) {
            Ok(()) => self.accept(topic, payload, now_ms),
            Err(refusal) => Err((self.gateway_of(topic), refusal)),
        };
        match result {
            Ok(outcome) => outcome,
            Err((gateway, refusal)) => self.dead_letter(topic, payload, gateway, refusal, now_ms),
        }
    }

    /// Handles a message of `len` bytes that was too large to keep whole: only its first
    /// bytes, `head`, are left, for the dead letter.
    pub fn handle_too_large(&mut self, topic: &str, head: &[u8], len: usize, now_ms: i64) -> Outcome {
        self.stats.received += 1;
        let refusal = crate::limits::too_large(len, self.limits.config().max_message_bytes.0);
        self.dead_letter(topic, head, self.gateway_of(topic), refusal, now_ms)
    }

    fn gateway_of(&self, topic: &str) -> Option<String> {
        match self.topics.parse(topic) {
            Ok(Topic::Telemetry { gateway, .. }) => Some(gateway),
            _ => None,
        }
    }

    fn dead_letter(
        &mut self,
        topic: &str,
        payload: &[u8],
        gateway: Option<String>,
        refusal: Refusal,
        now_ms: i64,
    ) -> Outcome {
        self.stats.invalid += 1;
        self.stats.dead_letters[refusal.reason.index()] += 1;
        let reason = refusal.message;
        let text = String::from_utf8_lossy(&payload[..payload.len().min(MAX_DEAD_LETTER_PAYLOAD)]);
        let letter = DeadLetter { reason: &reason, topic, payload: &text, received_at: now_ms };
        Outcome::DeadLetter {
            topic: self
                .topics
                .build(&Topic::DeadLetter { gateway: gateway.unwrap_or_else(|| "unknown".into()) }),
            payload: serde_json::to_vec(&letter).unwrap_or_default(),
            reason,
        }
    }

    fn accept(
        &mut self,
        topic: &str,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<Outcome, (Option<String>, Refusal)> {
        let invalid = |message: String| Refusal { reason: Reason::Invalid, message };
        let (gateway, device) = match self.topics.parse(topic) {
            Ok(Topic::Telemetry { gateway, device, .. }) => (gateway, device),
            Ok(other) => {
                return Err((None, invalid(format!("topic `{topic}` is not a telemetry topic ({other:?})"))))
            }
            Err(e) => {
                let message = e.to_string();
                return Err(match &e {
                    telemetry::TopicError::BadLevel { value, .. }
                        if value.len() > telemetry::codec::MAX_ID_LEN =>
                    {
                        (gateway_level(topic), Refusal { reason: Reason::IdTooLong, message })
                    }
                    _ => (None, invalid(message)),
                });
            }
        };
        let reading = telemetry::decode(payload).map_err(|e| {
            (Some(gateway.clone()), Refusal { reason: Reason::of_payload_error(&e), message: e.to_string() })
        })?;
        if reading.gateway != gateway {
            return Err((
                Some(gateway.clone()),
                invalid(format!(
                    "field `gw`: `{}` differs from the topic's gateway `{gateway}`",
                    reading.gateway
                )),
            ));
        }
        if reading.device != device {
            return Err((
                Some(gateway),
                invalid(format!(
                    "field `dev`: `{}` differs from the topic's device `{device}`",
                    reading.device
                )),
            ));
        }
        let unit = self.registry.as_ref().and_then(|r| r.get(&reading.device));
        if unit.is_none() && self.reject_unknown && self.registry.is_some() {
            let message =
                format!("field `dev`: device `{}` is not in the equipment registry", reading.device);
            return Err((Some(gateway), Refusal { reason: Reason::UnknownDevice, message }));
        }
        let known = unit.is_some() || self.engine.knows_device(&reading.device);
        self.limits.check(&reading, now_ms, known).map_err(|r| (Some(gateway.clone()), r))?;
        let town = unit.map(|u| u.town.clone()).filter(|t| !t.is_empty());
        match self.dedup.observe(&reading.device, reading.session, reading.seq, now_ms) {
            Seen::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(Outcome::Duplicate);
            }
            Seen::New { gaps, .. } => self.stats.gaps += gaps,
        }
        let mut lines = String::new();
        line_protocol::push_reading(&mut lines, &reading, town.as_deref());
        let alerts = self.engine.process(&reading);
        for a in &alerts {
            line_protocol::push_alert(&mut lines, a);
            self.count(a);
        }
        *self.stats.readings_by_kind.entry(reading.kind.clone()).or_default() += 1;
        Ok(Outcome::Reading { kind: reading.kind, gateway: reading.gateway, lines, alerts })
    }
}

/// The gateway of a telemetry-shaped topic that did not parse (a device id too long, say), so
/// its dead letter still reaches that gateway's topic.
fn gateway_level(topic: &str) -> Option<String> {
    let levels: Vec<&str> = topic.split('/').collect();
    let at = levels.iter().position(|l| *l == "telemetry")?;
    let gateway = (levels.len() == at + 4).then(|| levels[at + 2])?;
    telemetry::codec::check_id(gateway).ok().map(|_| gateway.to_string())
}

#[cfg(test)]
mod limit_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::Reading;

    fn pipeline() -> Pipeline {
        Pipeline::new(Topics::default(), Engine::new(rules::default_pack().unwrap()))
    }

    fn boiler(ts: i64, over: bool) -> Vec<u8> {
        telemetry::encode(
            &Reading::new("gw-1", "boiler-0001", "boiler", 1, ts as u64, ts)
                .with_value("pressure_mpa", if over { 1.35 } else { 0.9 })
                .with_value("over_pressure", over),
        )
    }

    #[test]
    fn a_reading_becomes_lines_and_alerts() {
        let mut p = pipeline();
        let topic = Topics::default().telemetry(16, "gw-1", "boiler-0001");
        let Outcome::Reading { lines, alerts, .. } = p.handle(&topic, &boiler(1_000, false), 0) else {
            panic!()
        };
        assert!(
            lines.starts_with("boiler,device=boiler-0001,gateway=gw-1 over_pressure=f,pressure_mpa=0.9 1000")
        );
        assert!(alerts.is_empty());
        p.handle(&topic, &boiler(2_000, true), 0);
        let Outcome::Reading { lines, alerts, .. } = p.handle(&topic, &boiler(6_000, true), 0) else {
            panic!()
        };
        assert_eq!(alerts.len(), 1, "over pressure for 4 s > `for` of 3 s");
        assert_eq!(alerts[0].rule, "boiler.over_pressure");
        assert!(lines.contains("\nalert,rule=boiler.over_pressure"), "{lines}");
        assert_eq!(p.stats.readings_by_kind["boiler"], 3);
        assert_eq!(p.handle(&topic, &boiler(6_000, true), 0), Outcome::Duplicate, "redelivered");
        assert_eq!(p.stats.duplicates, 1);
    }

    proptest::proptest! {
        /// Nothing on the wire makes the pipeline panic: any topic, any payload, valid or not.
        #[test]
        fn any_message_is_handled(topic in "(telemetry|status|x)(/[a-z0-9+# -]{0,6}){0,4}", payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut p = pipeline();
            let _ = p.handle(&topic, &payload, 0);
        }
    }

    #[test]
    fn a_silent_gateway_raises_one_no_data_alert_on_tick_and_data_resolves_it() {
        let mut p = pipeline();
        let topic = Topics::default().telemetry(16, "gw-1", "boiler-0001");
        p.handle(&topic, &boiler(1_000, false), 0);
        let silent = 1_000 + 10 * 60_000;
        let (alerts, lines) = p.tick(silent);
        assert_eq!(alerts.len(), 1, "the gateway's alert holds back its devices': {alerts:?}");
        assert_eq!((alerts[0].rule.as_str(), alerts[0].device.as_str()), ("gateway.no_data", "gw-1"));
        assert_eq!(alerts[0].status, telemetry::AlertStatus::Firing);
        assert!(lines.starts_with("alert,rule=gateway.no_data,device=gw-1"), "{lines}");
        p.handle(&topic, &boiler(silent + 1, false), silent);
        p.tick(silent + 1_000);
        assert_eq!(p.stats.alerts_resolved, 1, "data back resolves it");
    }

    #[test]
    fn idle_devices_are_forgotten_by_dedup_and_rules_and_come_back_afresh() {
        let day = 86_400_000;
        let mut p = pipeline();
        let topic = Topics::default().telemetry(16, "gw-1", "boiler-0001");
        let odd = Topics::default().telemetry(16, "gw-1", "thing-1");
        let thing = |ts: i64| {
            telemetry::encode(&Reading::new("gw-1", "thing-1", "thing", 1, 7, ts).with_value("x", 1.0))
        };
        p.tick(0);
        assert!(matches!(p.handle(&odd, &thing(1_000), 0), Outcome::Reading { .. }));
        p.handle(&topic, &boiler(1_000, false), 0);
        assert_eq!((p.engine().tracked_devices(), p.dedup_devices()), (2, 2));
        p.tick(day - 1);
        assert_eq!((p.engine().tracked_devices(), p.dedup_devices()), (2, 2), "not a day yet");
        p.tick(day + 60_000);
        // The boiler's no-data alert fires and keeps its rules state; a kind without rules goes.
        assert_eq!(p.engine().tracked_devices(), 1);
        assert_eq!(p.engine().stats().devices_evicted, 1);
        assert_eq!(p.dedup_devices(), 0, "dedup state has no alerts to keep");
        // The same seq again is taken as new: the device starts afresh, and its rules work.
        let back = day + 120_000;
        assert!(matches!(p.handle(&odd, &thing(back), back), Outcome::Reading { .. }));
        p.handle(&topic, &boiler(back, true), back);
        let Outcome::Reading { alerts, .. } = p.handle(&topic, &boiler(back + 4_000, true), back) else {
            panic!()
        };
        let fired: Vec<_> = alerts.iter().map(|a| (a.rule.as_str(), a.status)).collect();
        assert!(fired.contains(&("boiler.over_pressure", telemetry::AlertStatus::Firing)), "{fired:?}");
        assert_eq!(p.handle(&odd, &thing(back), back), Outcome::Duplicate);
    }

    #[test]
    fn with_a_registry_unknown_devices_are_refused_and_readings_carry_their_town() {
        let mut p = pipeline();
        let csv = "device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection\n\
                   boiler-0001,boiler,10004419002019000123,1号锅炉,东城街道,东城大道 88 号,2019-05-10,2025-06-01,2026-06-01\n";
        let (registry, problems) = Registry::parse("registry.csv", csv);
        assert!(problems.is_empty(), "{problems:?}");
        p.set_registry(Arc::new(registry), true);
        let topic = Topics::default().telemetry(16, "gw-1", "boiler-0001");
        let Outcome::Reading { lines, .. } = p.handle(&topic, &boiler(1_000, false), 0) else { panic!() };
        assert!(lines.starts_with("boiler,device=boiler-0001,gateway=gw-1,town=东城街道 "), "{lines}");
        let other = Topics::default().telemetry(16, "gw-1", "boiler-0002");
        let payload = telemetry::encode(
            &Reading::new("gw-1", "boiler-0002", "boiler", 1, 1, 1).with_value("pressure_mpa", 1.0),
        );
        let Outcome::DeadLetter { reason, .. } = p.handle(&other, &payload, 0) else { panic!() };
        assert!(reason.contains("not in the equipment registry"), "{reason}");
    }

    #[test]
    fn bad_input_goes_to_the_gateways_dead_letter_topic_with_the_reason() {
        let mut p = pipeline();
        let topic = Topics::default().telemetry(16, "gw-1", "boiler-0001");
        let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
            (&topic, b"garbage".to_vec(), "ingest/deadletter/gw-1", "not JSON"),
            (&topic, br#"{"v":2}"#.to_vec(), "ingest/deadletter/gw-1", "version 2"),
            (
                "telemetry/1/gw-2/boiler-0001",
                boiler(1, false),
                "ingest/deadletter/gw-2",
                "differs from the topic's gateway",
            ),
            (
                "telemetry/1/gw-1/other",
                boiler(1, false),
                "ingest/deadletter/gw-1",
                "differs from the topic's device",
            ),
            ("telemetry/x/gw-1/d", boiler(1, false), "ingest/deadletter/unknown", "partition"),
        ];
        for (topic, payload, want_topic, want_reason) in cases {
            let Outcome::DeadLetter { topic: dl, payload, reason } = p.handle(topic, &payload, 42) else {
                panic!("{topic}")
            };
            assert_eq!(dl, want_topic);
            assert!(reason.contains(want_reason), "{reason}");
            let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(json["received_at"], 42);
            assert_eq!(json["topic"], topic);
        }
        assert_eq!(p.stats.invalid, 5);
    }
}
