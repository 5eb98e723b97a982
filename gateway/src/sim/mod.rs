//! `gateway sim`: simulated elevators, boilers, water meters and DC and AC charging piles on
//! one line, one unit id per device, each with a fault that comes and goes. The line is a Modbus TCP
//! listener, a TCP listener speaking RTU framing (as a DTU would), or a serial device.
//!
//! [`Simulator::answer`] is the pure core (a request and a time in, a response out);
//! [`Simulator::answer_on_bus`] adds what a serial bus does with a unit nobody has (silence).
//! [`LineFaults`] ([`faults`]) adds units that never answer, refuse an address or answer late.
//! The socket and serial shells are in [`serve`]. The registers are written with the same
//! profiles and `register::encode_registers` the poller decodes with.

pub mod faults;
pub mod model;
pub mod serve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_modbus::{ExceptionCode, Request, Response};

pub use faults::{LineFaults, SimCounters};
pub use model::{FaultSchedule, Model};
pub use serve::{serve, serve_rtu_over_tcp, serve_serial, SerialDevice};

use crate::line::Link;
use crate::profile::{Profile, Table};
use crate::register::{encode_registers, encode_text, encode_value};

/// The built-in profile each simulated kind uses: the four kinds of `gateway sim` and `ingest
/// demo`.
pub const KIND_PROFILES: &[(&str, &str)] = &[
    ("elevator", "elevator-box-v1"),
    ("boiler", "boiler-ctl-v1"),
    ("water_meter", "water-meter-v1"),
    ("charging_pile", "charging-pile-dc-v1"),
];

/// Every kind the simulator knows: [`KIND_PROFILES`] and the AC charging pile (`gateway sim
/// --ac-piles`), its profile and the prefix of its devices' ids.
pub const SIM_KINDS: &[(&str, &str, &str)] = &[
    ("elevator", "elevator-box-v1", "elev"),
    ("boiler", "boiler-ctl-v1", "boiler"),
    ("water_meter", "water-meter-v1", "wm"),
    ("charging_pile", "charging-pile-dc-v1", "pile"),
    ("charging_pile_ac", "charging-pile-ac-v1", "acpile"),
];

/// One simulated device.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub id: String,
    pub unit: u8,
    pub profile: Arc<Profile>,
    pub model: Model,
    /// The device's number among those of its kind, so devices of a kind differ.
    pub index: usize,
    pub faults: FaultSchedule,
}

impl SimDevice {
    /// The values a poll at `ts` would read, as a reading carries them (bits of alarm words by
    /// their names), sampled as device number `index` of its kind: for benchmarks and load tools
    /// that skip Modbus.
    pub fn reading_values(&self, index: usize, ts: i64, faulty: bool) -> Vec<(String, telemetry::Value)> {
        use telemetry::Value;
        let mut values = Vec::new();
        for (name, v) in self.model.sample(index, ts, faulty) {
            let Some(point) = self.profile.points.iter().find(|p| p.name == name) else { continue };
            let value = if point.table.is_bits() {
                Value::Bool(v != 0.0)
            } else if point.data_type.is_integer() && point.scale == 1.0 {
                Value::Int(v as i64)
            } else {
                Value::Float(v)
            };
            values.push((name.to_string(), value));
            for (bit, bit_name) in &point.bits {
                values.push((bit_name.clone(), Value::Bool((v as u64 >> bit) & 1 == 1)));
            }
        }
        values
    }
}

/// How many devices of each kind, and when their faults come.
#[derive(Clone, Debug)]
pub struct SimPlan {
    pub counts: Vec<(String, usize)>,
    pub fault_period: Duration,
    pub fault_duration: Duration,
    /// Delay before the first device's first fault; later devices follow `fault_stagger` apart.
    pub fault_delay: Duration,
    pub fault_stagger: Duration,
}

impl SimPlan {
    /// `counts` devices of each kind that never fault.
    pub fn without_faults(counts: &[(&str, usize)]) -> SimPlan {
        SimPlan {
            counts: counts.iter().map(|(kind, n)| (kind.to_string(), *n)).collect(),
            fault_period: Duration::from_secs(60),
            fault_duration: Duration::ZERO,
            fault_delay: Duration::ZERO,
            fault_stagger: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator knows no kind `{0}` (it knows elevator, boiler, water_meter, charging_pile, charging_pile_ac)")]
    UnknownKind(String),
    #[error("more than 247 devices on one simulated line")]
    TooManyDevices,
    #[error("unit {0} is not 1 to 247 or is used twice")]
    BadUnit(u8),
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
}

#[derive(Clone, Debug)]
pub struct Simulator {
    devices: BTreeMap<u8, SimDevice>,
    /// A fixed time to answer at instead of the wall clock (tests).
    frozen_at: Option<i64>,
    line_faults: LineFaults,
    counters: Arc<SimCounters>,
}

impl Simulator {
    /// Builds the devices of `plan`, numbered from unit 1, faults counted from `start_ms`.
    pub fn new(plan: &SimPlan, start_ms: i64) -> Result<Simulator, SimError> {
        let mut devices = BTreeMap::new();
        let mut unit: u16 = 0;
        for (kind, count) in &plan.counts {
            let model = Model::for_kind(kind).ok_or_else(|| SimError::UnknownKind(kind.clone()))?;
            let (_, profile_name, prefix) = SIM_KINDS
                .iter()
                .find(|(k, _, _)| k == kind)
                .ok_or_else(|| SimError::UnknownKind(kind.clone()))?;
            let profile = Arc::new(Profile::built_in(profile_name)?);
            for index in 0..*count {
                unit += 1;
                if unit > 247 {
                    return Err(SimError::TooManyDevices);
                }
                let stagger = plan.fault_stagger.as_millis() as i64 * (unit as i64 - 1);
                let faults = FaultSchedule {
                    start_ms,
                    delay_ms: plan.fault_delay.as_millis() as i64 + stagger,
                    period_ms: plan.fault_period.as_millis() as i64,
                    duration_ms: plan.fault_duration.as_millis() as i64,
                };
                let id = format!("{prefix}-{:04}", index + 1);
                devices.insert(
                    unit as u8,
                    SimDevice { id, unit: unit as u8, profile: profile.clone(), model, index, faults },
                );
            }
        }
        Ok(Simulator {
            devices,
            frozen_at: None,
            line_faults: LineFaults::default(),
            counters: Arc::default(),
        })
    }

    /// A simulator of the given devices (their units 1 to 247, each once), for profiles of
    /// one's own (the load benchmark's synthetic devices).
    pub fn of_devices(devices: impl IntoIterator<Item = SimDevice>) -> Result<Simulator, SimError> {
        let mut map = BTreeMap::new();
        for d in devices {
            if !(1..=247).contains(&d.unit) || map.contains_key(&d.unit) {
                return Err(SimError::BadUnit(d.unit));
            }
            map.insert(d.unit, d);
        }
        Ok(Simulator {
            devices: map,
            frozen_at: None,
            line_faults: LineFaults::default(),
            counters: Arc::default(),
        })
    }

    /// Answers every request as at `at_ms`, so tests know the exact values served.
    pub fn frozen_at(mut self, at_ms: i64) -> Self {
        self.frozen_at = Some(at_ms);
        self
    }

    /// Makes units of the line misbehave (see [`LineFaults`]).
    pub fn with_line_faults(mut self, faults: LineFaults) -> Self {
        self.line_faults = faults;
        self
    }

    pub fn line_faults(&self) -> &LineFaults {
        &self.line_faults
    }

    /// What the serve shells answered so far.
    pub fn counters(&self) -> &SimCounters {
        &self.counters
    }

    /// How long `unit` takes to answer (zero but for slow units).
    pub fn delay_for(&self, unit: u8) -> Duration {
        self.line_faults.slow_units.get(&unit).copied().unwrap_or_default()
    }

    pub fn now_ms(&self) -> i64 {
        self.frozen_at.unwrap_or_else(now_ms)
    }

    pub fn devices(&self) -> impl Iterator<Item = &SimDevice> {
        self.devices.values()
    }

    /// The register (or bit) image of one table of a device at `now_ms`: address to word.
    pub fn image(&self, device: &SimDevice, table: Table, now_ms: i64) -> BTreeMap<u16, u16> {
        self.image_of(device, table, 0, u16::MAX as u32, now_ms)
    }

    /// [`Simulator::image`] of the points that overlap `start..=end`.
    fn image_of(
        &self,
        device: &SimDevice,
        table: Table,
        start: u16,
        end: u32,
        now_ms: i64,
    ) -> BTreeMap<u16, u16> {
        let fault = device.faults.active(now_ms);
        let values: BTreeMap<&str, f64> =
            device.model.sample(device.index, now_ms, fault).into_iter().collect();
        let texts: BTreeMap<&str, String> = device.model.text(device.index).into_iter().collect();
        let mut image = BTreeMap::new();
        for (i, p) in device.profile.points.iter().enumerate() {
            if p.table != table || p.end() < start as u32 || p.address as u32 > end {
                continue;
            }
            let words = if device.model == Model::Synthetic {
                encode_value(p, &model::synthetic(p, i, device.index, now_ms))
            } else if let Some(text) = texts.get(p.name.as_str()) {
                encode_text(p, text)
            } else {
                encode_registers(p, values.get(p.name.as_str()).copied().unwrap_or(0.0))
            };
            for (k, w) in words.into_iter().enumerate() {
                // Bit fields share their register: their bits add up.
                *image.entry(p.address + k as u16).or_insert(0) |= w;
            }
        }
        image
    }

    /// Answers one request at `now_ms`. Addresses between a table's first and last point read
    /// as zero when unmapped (so gap-filling requests work); outside that range they are an
    /// illegal data address, as on real firmware, and so is any register read covering an
    /// address of [`LineFaults::illegal_addresses`].
    pub fn answer(&self, unit: u8, request: &Request<'_>, now_ms: i64) -> Result<Response, ExceptionCode> {
        let device = self.devices.get(&unit).ok_or(ExceptionCode::GatewayTargetDevice)?;
        let (table, start, count) = match *request {
            Request::ReadCoils(a, n) => (Table::Coil, a, n),
            Request::ReadDiscreteInputs(a, n) => (Table::Discrete, a, n),
            Request::ReadInputRegisters(a, n) => (Table::Input, a, n),
            Request::ReadHoldingRegisters(a, n) => (Table::Holding, a, n),
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        if count == 0 || count > table.protocol_limit() {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let points = device.profile.points.iter().filter(|p| p.table == table);
        let (Some(first), Some(last)) =
            (points.clone().map(|p| p.address).min(), points.map(|p| p.end()).max())
        else {
            return Err(ExceptionCode::IllegalDataAddress);
        };
        let end = start as u32 + count as u32 - 1;
        if start < first || end > last {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        if !table.is_bits() && self.line_faults.refuses(unit, start, end) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let image = self.image_of(device, table, start, end, now_ms);
        let words = (start as u32..=end).map(|a| image.get(&(a as u16)).copied().unwrap_or(0));
        Ok(match table {
            Table::Coil => Response::ReadCoils(words.map(|w| w != 0).collect()),
            Table::Discrete => Response::ReadDiscreteInputs(words.map(|w| w != 0).collect()),
            Table::Input => Response::ReadInputRegisters(words.collect()),
            Table::Holding => Response::ReadHoldingRegisters(words.collect()),
        })
    }

    /// What a device on a serial bus does with a request to `unit`: the [`Simulator::answer`]
    /// of the device that has it, or `None` (silence, as on a real RS-485 bus) when none has
    /// it, the broadcast address 0 included, or when it is dead.
    pub fn answer_on_bus(
        &self,
        unit: u8,
        request: &Request<'_>,
        now_ms: i64,
    ) -> Option<Result<Response, ExceptionCode>> {
        (self.devices.contains_key(&unit) && !self.line_faults.dead_units.contains(&unit))
            .then(|| self.answer(unit, request, now_ms))
    }

    /// What a Modbus TCP gateway in front of the devices answers: [`Simulator::answer`] (an
    /// unknown unit gets exception 11), or `None` for a dead unit (it times out).
    pub fn answer_on_tcp(
        &self,
        unit: u8,
        request: &Request<'_>,
        now_ms: i64,
    ) -> Option<Result<Response, ExceptionCode>> {
        (!self.line_faults.dead_units.contains(&unit)).then(|| self.answer(unit, request, now_ms))
    }

    /// A gateway config that polls every simulated device at `interval` over one TCP line.
    pub fn gateway_config(
        &self,
        gateway_id: &str,
        modbus: SocketAddr,
        mqtt_url: &str,
        interval: Duration,
    ) -> String {
        self.gateway_config_on(gateway_id, &Link::Tcp { address: modbus.to_string() }, mqtt_url, interval)
    }

    /// A gateway config that polls every simulated device at `interval` over one line, `sim`,
    /// reached through `link`.
    pub fn gateway_config_on(
        &self,
        gateway_id: &str,
        link: &Link,
        mqtt_url: &str,
        interval: Duration,
    ) -> String {
        let mut s = format!(
            "[gateway]\nid = \"{gateway_id}\"\n\n[mqtt]\nurl = \"{mqtt_url}\"\n\n\
             [[line]]\nname = \"sim\"\n{}timeout = \"1s\"\n",
            link.toml_keys()
        );
        for d in self.devices() {
            s += &format!(
                "\n[[device]]\nid = \"{}\"\nline = \"sim\"\nunit = {}\nprofile = \"{}\"\ninterval = \"{}\"\n",
                d.id,
                d.unit,
                d.profile.name,
                humantime::format_duration(interval)
            );
        }
        s
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SimPlan {
        SimPlan {
            counts: KIND_PROFILES.iter().map(|(k, _)| (k.to_string(), 2)).collect(),
            fault_period: Duration::from_secs(60),
            fault_duration: Duration::from_secs(20),
            fault_delay: Duration::from_secs(10),
            fault_stagger: Duration::from_secs(3),
        }
    }

    #[test]
    fn numbers_devices_by_unit_and_names_them_by_kind() {
        let sim = Simulator::new(&plan(), 0).unwrap();
        let ids: Vec<_> = sim.devices().map(|d| (d.unit, d.id.as_str())).collect();
        assert_eq!(ids[0], (1, "elev-0001"));
        assert_eq!(ids[3], (4, "boiler-0002"));
        assert_eq!(ids[7], (8, "pile-0002"));
    }

    #[test]
    fn answers_reads_and_refuses_what_a_device_would() {
        let sim = Simulator::new(&plan(), 0).unwrap();
        let r = sim.answer(3, &Request::ReadHoldingRegisters(100, 21), 1_000).unwrap();
        let Response::ReadHoldingRegisters(words) = r else { panic!() };
        assert_eq!(words.len(), 21);
        assert_eq!(
            sim.answer(3, &Request::ReadHoldingRegisters(99, 2), 0),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            sim.answer(3, &Request::ReadHoldingRegisters(120, 2), 0),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            sim.answer(99, &Request::ReadHoldingRegisters(0, 1), 0),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(sim.answer(1, &Request::ReadCoils(0, 1), 0), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(sim.answer(1, &Request::WriteSingleCoil(0, true), 0), Err(ExceptionCode::IllegalFunction));
    }

    #[test]
    fn on_a_bus_only_an_addressed_device_answers() {
        let sim = Simulator::new(&plan(), 0).unwrap();
        let read = Request::ReadHoldingRegisters(100, 21);
        assert_eq!(sim.answer_on_bus(3, &read, 1_000), Some(sim.answer(3, &read, 1_000)));
        assert_eq!(
            sim.answer_on_bus(3, &Request::ReadHoldingRegisters(99, 2), 0),
            Some(Err(ExceptionCode::IllegalDataAddress)),
            "a device that is there says no"
        );
        assert_eq!(sim.answer_on_bus(99, &read, 0), None, "nobody has unit 99");
        assert_eq!(sim.answer_on_bus(0, &read, 0), None, "broadcast: nobody answers");
    }

    #[test]
    fn dead_units_stay_silent_and_refusing_units_refuse_only_that_address() {
        let faults = LineFaults {
            dead_units: [5].into(),
            illegal_addresses: [(3, 104)].into(),
            slow_units: [(4, Duration::from_millis(300))].into(),
        };
        let sim = Simulator::new(&plan(), 0).unwrap().with_line_faults(faults);
        let block = Request::ReadHoldingRegisters(100, 21);
        assert_eq!(sim.answer_on_tcp(5, &block, 0), None);
        assert_eq!(sim.answer_on_bus(5, &block, 0), None);
        assert_eq!(sim.answer_on_tcp(3, &block, 0), Some(Err(ExceptionCode::IllegalDataAddress)));
        assert_eq!(sim.answer_on_bus(3, &block, 0), Some(Err(ExceptionCode::IllegalDataAddress)));
        assert!(sim.answer(3, &Request::ReadHoldingRegisters(100, 4), 0).is_ok());
        assert!(sim.answer(3, &Request::ReadHoldingRegisters(105, 16), 0).is_ok());
        assert!(sim.answer(4, &block, 0).is_ok(), "another boiler reads 104 fine");
        assert_eq!(sim.delay_for(4), Duration::from_millis(300));
        assert_eq!(sim.delay_for(3), Duration::ZERO);
        assert_eq!(sim.answer_on_tcp(99, &block, 0), Some(Err(ExceptionCode::GatewayTargetDevice)));
    }

    #[test]
    fn writes_a_gateway_config_for_each_transport() {
        let sim = Simulator::new(&plan(), 0).unwrap();
        let frame = crate::line::SerialFrame { baud: 19200, ..Default::default() };
        for link in [
            Link::Tcp { address: "127.0.0.1:5020".into() },
            Link::RtuOverTcp { address: "127.0.0.1:5021".into() },
            Link::Rtu { port: "/tmp/pty/gw".into(), frame },
        ] {
            let text =
                sim.gateway_config_on("gw-sim", &link, "mqtt://127.0.0.1:1883", Duration::from_secs(2));
            let lines = crate::config::GatewayConfig::from_toml(&text).unwrap().build().unwrap();
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0].link, link);
            assert_eq!(lines[0].devices.len(), 8);
            assert_eq!(lines[0].devices[7].config.interval, Duration::from_secs(2));
        }
    }

    #[test]
    fn writes_a_gateway_config_that_loads() {
        let sim = Simulator::new(&plan(), 0).unwrap();
        let text = sim.gateway_config(
            "gw-sim",
            "127.0.0.1:5020".parse().unwrap(),
            "mqtt://127.0.0.1:1883",
            Duration::from_secs(1),
        );
        let cfg = crate::config::GatewayConfig::from_toml(&text).unwrap();
        assert_eq!(cfg.devices.len(), 8);
    }
}
