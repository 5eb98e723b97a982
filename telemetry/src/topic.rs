//! Every topic of the wire contract, built and parsed in one place.

use crate::codec::check_id;

/// The partition a device's telemetry goes to: `crc32(device) % partitions`.
pub fn partition_of(device: &str, partitions: u32) -> u32 {
    crc32fast::hash(device.as_bytes()) % partitions.max(1)
}

/// A parsed topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    /// `telemetry/{partition}/{gateway}/{device}`
    Telemetry { partition: u32, gateway: String, device: String },
    /// `status/{gateway}`, retained; the last will sets it offline.
    GatewayStatus { gateway: String },
    /// `status/{gateway}/{device}`, retained device health.
    DeviceStatus { gateway: String, device: String },
    /// `alerts/{device}/{rule}`, retained current state of one alert.
    Alert { device: String, rule: String },
    /// `events/alerts`, every transition.
    AlertEvents,
    /// `ingest/deadletter/{gateway}`
    DeadLetter { gateway: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic `{topic}` does not start with the prefix `{prefix}`")]
    Prefix { topic: String, prefix: String },
    #[error("topic `{topic}` is not part of the v1 contract")]
    Unknown { topic: String },
    #[error("topic `{topic}`: level {level} `{value}` {reason}")]
    BadLevel { topic: String, level: usize, value: String, reason: &'static str },
}

/// Builds and parses topics under an optional prefix (`""`, or `"city/"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// `prefix` is prepended to every topic; a trailing `/` is added when missing.
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Topics { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn build(&self, topic: &Topic) -> String {
        let p = &self.prefix;
        match topic {
            Topic::Telemetry { partition, gateway, device } => {
                format!("{p}telemetry/{partition}/{gateway}/{device}")
            }
            Topic::GatewayStatus { gateway } => format!("{p}status/{gateway}"),
            Topic::DeviceStatus { gateway, device } => format!("{p}status/{gateway}/{device}"),
            Topic::Alert { device, rule } => format!("{p}alerts/{device}/{rule}"),
            Topic::AlertEvents => format!("{p}events/alerts"),
            Topic::DeadLetter { gateway } => format!("{p}ingest/deadletter/{gateway}"),
        }
    }

    /// The telemetry topic of `device` with its partition computed.
    pub fn telemetry(&self, partitions: u32, gateway: &str, device: &str) -> String {
        self.build(&Topic::Telemetry {
            partition: partition_of(device, partitions),
            gateway: gateway.into(),
            device: device.into(),
        })
    }

    /// The subscription filter for one partition, or for all of them.
    pub fn telemetry_filter(&self, partition: Option<u32>) -> String {
        match partition {
            Some(p) => format!("{}telemetry/{p}/+/+", self.prefix),
            None => format!("{}telemetry/+/+/+", self.prefix),
        }
    }

    pub fn parse(&self, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(|| TopicError::Prefix { topic: topic.into(), prefix: self.prefix.clone() })?;
        let levels: Vec<&str> = rest.split('/').collect();
        let id = |level: usize| -> Result<String, TopicError> {
            let value = levels[level];
            check_id(value).map_err(|reason| TopicError::BadLevel {
                topic: topic.into(),
                level,
                value: value.into(),
                reason,
            })?;
            Ok(value.to_string())
        };
        match levels.as_slice() {
            ["telemetry", partition, _, _] => {
                let partition = partition.parse().map_err(|_| TopicError::BadLevel {
                    topic: topic.into(),
                    level: 1,
                    value: partition.to_string(),
                    reason: "is not a partition number",
                })?;
                Ok(Topic::Telemetry { partition, gateway: id(2)?, device: id(3)? })
            }
            ["status", _] => Ok(Topic::GatewayStatus { gateway: id(1)? }),
            ["status", _, _] => Ok(Topic::DeviceStatus { gateway: id(1)?, device: id(2)? }),
            ["alerts", _, _] => Ok(Topic::Alert { device: id(1)?, rule: id(2)? }),
            ["events", "alerts"] => Ok(Topic::AlertEvents),
            ["ingest", "deadletter", _] => Ok(Topic::DeadLetter { gateway: id(2)? }),
            _ => Err(TopicError::Unknown { topic: topic.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_topics() -> Vec<Topic> {
        vec![
            Topic::Telemetry { partition: 7, gateway: "gw-1".into(), device: "elev-000123".into() },
            Topic::GatewayStatus { gateway: "gw-1".into() },
            Topic::DeviceStatus { gateway: "gw-1".into(), device: "boiler-1".into() },
            Topic::Alert { device: "boiler-1".into(), rule: "boiler.over_pressure".into() },
            Topic::AlertEvents,
            Topic::DeadLetter { gateway: "gw-1".into() },
        ]
    }

    #[test]
    fn every_topic_round_trips_with_and_without_prefix() {
        for prefix in ["", "dg", "city/dg/"] {
            let topics = Topics::new(prefix);
            for t in all_topics() {
                let s = topics.build(&t);
                assert_eq!(topics.parse(&s), Ok(t.clone()), "{s}");
            }
        }
    }

    #[test]
    fn telemetry_topic_carries_the_partition_of_the_device() {
        let topics = Topics::default();
        let s = topics.telemetry(16, "gw-1", "elev-000123");
        let Ok(Topic::Telemetry { partition, .. }) = topics.parse(&s) else { panic!("{s}") };
        assert_eq!(partition, crc32fast::hash(b"elev-000123") % 16);
        assert!(partition < 16);
        assert_eq!(topics.telemetry_filter(Some(3)), "telemetry/3/+/+");
        assert_eq!(Topics::new("x").telemetry_filter(None), "x/telemetry/+/+/+");
    }

    #[test]
    fn partitions_spread_devices() {
        let mut seen = [0u32; 16];
        for i in 0..1600 {
            seen[partition_of(&format!("dev-{i}"), 16) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(partition_of("anything", 0), 0, "zero partitions is treated as one");
    }

    #[test]
    fn rejects_topics_outside_the_contract() {
        let topics = Topics::new("city");
        assert!(matches!(topics.parse("telemetry/1/gw/dev"), Err(TopicError::Prefix { .. })));
        let topics = Topics::default();
        for bad in ["telemetry/1/gw", "status", "events/other", "alerts/dev", "foo/bar", ""] {
            assert!(matches!(topics.parse(bad), Err(TopicError::Unknown { .. })), "{bad}");
        }
        assert!(matches!(topics.parse("telemetry/x/gw/dev"), Err(TopicError::BadLevel { level: 1, .. })));
        assert!(matches!(topics.parse("telemetry/1//dev"), Err(TopicError::BadLevel { level: 2, .. })));
        assert!(matches!(topics.parse("status/gw 1"), Err(TopicError::BadLevel { level: 1, .. })));
    }
}
