//! The retained status payloads a gateway publishes: its own on `status/{gateway}` (birth,
//! periodic report, and the last will that sets it offline) and each device's health on
//! `status/{gateway}/{device}`. Consumers decode them with `serde_json` into these types;
//! fields added later are optional, so an older reader ignores them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `status/{gateway}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus<'a> {
    pub online: bool,
    /// The gateway's session id: changes at every start.
    pub sid: u64,
    /// When the status was made (ms since the epoch); 0 in the last will.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town: Option<Cow<'a, str>>,
    /// The devices it polls (the birth and periodic reports; empty in the last will).
    #[serde(default)]
    pub devices: Cow<'a, [BirthDevice]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolReport>,
}

/// One device as the gateway's status lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BirthDevice {
    pub id: String,
    pub kind: String,
    pub profile: String,
    pub line: String,
    pub unit: u8,
}

/// The spool's and sender's counters in the gateway status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolReport {
    #[serde(flatten)]
    pub spool: SpoolCounters,
    /// Records handed to the MQTT client (a record sent again after a reconnect counts again).
    pub sent: u64,
    /// Of those, the ones marked `replay`.
    pub replayed: u64,
}

/// What the gateway's spool counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolCounters {
    /// Readings appended since start.
    pub spooled: u64,
    /// Records acknowledged by the broker (and so in the spool).
    pub acked: u64,
    /// Unacknowledged records deleted because the spool was full.
    pub dropped_full: u64,
    /// Unacknowledged records deleted because they were older than `max_age`.
    pub dropped_age: u64,
    /// Records skipped because they were damaged on disk.
    pub corrupt: u64,
    /// Records waiting for the broker's acknowledgement.
    pub pending: u64,
    pub bytes: u64,
}

/// `status/{gateway}/{device}`: the health of one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub online: bool,
    pub ts: i64,
    pub unit: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub rtt_ms: u64,
    pub polls: u64,
    pub failed_polls: u64,
    /// Requests that got no answer in time.
    pub timeouts: u64,
    /// Other transport errors (connection refused or reset, CRC errors on RTU, …).
    pub transport_errors: u64,
    /// Modbus exceptions answered.
    pub exceptions: u64,
    /// Poll slots missed because the line was busy (every group's).
    pub overruns: u64,
    /// Left out of the schedule after failing polls in a row; probed now and then.
    pub quarantined: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_probe_ms: Option<i64>,
    /// Points the device refuses (found by narrowing), with the exception; not read any more.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bad_points: BTreeMap<String, String>,
    /// Per point group (only for devices with more than one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,
}

/// A point group's counters in the device status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// `15m`, as written in the config.
    pub interval: String,
    pub points: usize,
    pub requests: usize,
    pub polls: u64,
    pub overruns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_status_round_trips_and_the_last_will_is_small() {
        let devices = [BirthDevice {
            id: "b-1".into(),
            kind: "boiler".into(),
            profile: "boiler-ctl-v1".into(),
            line: "l1".into(),
            unit: 3,
        }];
        let status = GatewayStatus {
            online: true,
            sid: 7,
            ts: 1_700_000_000_000,
            town: Some("east".into()),
            devices: Cow::Borrowed(&devices),
            spool: Some(SpoolReport {
                spool: SpoolCounters { spooled: 5, pending: 1, ..Default::default() },
                sent: 4,
                replayed: 0,
            }),
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains(r#""spooled":5"#), "spool counters are flat: {json}");
        let back: GatewayStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
        let will = GatewayStatus { online: false, sid: 7, ..Default::default() };
        assert_eq!(serde_json::to_string(&will).unwrap(), r#"{"online":false,"sid":7,"ts":0,"devices":[]}"#);
    }

    #[test]
    fn a_device_status_round_trips_and_leaves_empty_parts_out() {
        let mut status =
            DeviceStatus { online: true, ts: 1, unit: 2, rtt_ms: 12, polls: 10, ..Default::default() };
        let json = serde_json::to_string(&status).unwrap();
        for absent in ["last_error", "next_probe_ms", "bad_points", "groups"] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        status.bad_points.insert("speed".into(), "illegal data address".into());
        status.groups.push(GroupStatus {
            interval: "15m".into(),
            points: 2,
            requests: 1,
            polls: 3,
            overruns: 0,
        });
        let back: DeviceStatus = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(back, status);
    }
}
