//! Simulated equipment: each kind's engineering values as a pure function of time and of
//! whether its scripted fault is active.

use std::f64::consts::TAU;

/// When a device's fault is active: windows of `duration` every `period`, the first starting
/// `delay` after the simulator starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultSchedule {
    pub start_ms: i64,
    pub delay_ms: i64,
    pub period_ms: i64,
    pub duration_ms: i64,
}

impl FaultSchedule {
    /// Never faulty.
    pub fn none() -> Self {
        FaultSchedule { start_ms: 0, delay_ms: 0, period_ms: 1, duration_ms: 0 }
    }

    pub fn active(&self, now_ms: i64) -> bool {
        let since = now_ms - self.start_ms - self.delay_ms;
        self.duration_ms > 0 && since >= 0 && since.rem_euclid(self.period_ms.max(1)) < self.duration_ms
    }
}

/// The kinds the simulator knows, each with its own behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Elevator,
    Boiler,
    WaterMeter,
    ChargingPile,
    /// An AC charging pile (profile `charging-pile-ac-v1`).
    ChargingPileAc,
    /// Any profile: every point a value of its type that moves with time (the load benchmark's
    /// 100-point devices). See [`synthetic`].
    Synthetic,
}

impl Model {
    pub fn for_kind(kind: &str) -> Option<Model> {
        match kind {
            "elevator" => Some(Model::Elevator),
            "boiler" => Some(Model::Boiler),
            "water_meter" => Some(Model::WaterMeter),
            "charging_pile" => Some(Model::ChargingPile),
            "charging_pile_ac" => Some(Model::ChargingPileAc),
            _ => None,
        }
    }

    /// The named engineering values of device number `index` at `now_ms`. Points a model does
    /// not name read as zero.
    pub fn sample(self, index: usize, now_ms: i64, fault: bool) -> Vec<(&'static str, f64)> {
        let t = now_ms as f64 / 1000.0;
        let i = index as f64;
        match self {
            Model::Elevator => {
                // A car shuttling between floors 1 and 12 on a 44 s round trip.
                let phase = (t + i * 7.0).rem_euclid(44.0);
                let (floor, moving, up) = if phase < 22.0 {
                    (1.0 + (phase / 2.0).floor(), phase % 2.0 < 1.2, true)
                } else {
                    (12.0 - ((phase - 22.0) / 2.0).floor(), phase % 2.0 < 1.2, false)
                };
                let floor = floor.min(12.0);
                let moving = moving && !fault;
                vec![
                    ("service_mode", 0.0),
                    ("floor", floor),
                    (
                        "direction",
                        if !moving {
                            0.0
                        } else if up {
                            1.0
                        } else {
                            2.0
                        },
                    ),
                    ("speed_mps", if moving { 1.5 } else { 0.0 }),
                    ("fault_code", if fault { 5.0 } else { 0.0 }),
                    ("run_count", (t / 22.0).floor().rem_euclid(4.0e9) + i * 1000.0),
                    ("load_kg", if fault { 150.0 } else { 75.0 * ((t / 22.0).floor() + i).rem_euclid(8.0) }),
                    ("door_closed", if moving || fault { 1.0 } else { 0.0 }),
                    ("in_door_zone", if moving || fault { 0.0 } else { 1.0 }),
                    ("person_present", if fault { 1.0 } else { 0.0 }),
                    ("safety_circuit_ok", 1.0),
                ]
            }
            Model::Boiler => {
                let kpa = if fault { 1350.0 } else { 900.0 + 50.0 * (TAU * t / 300.0 + i).sin() };
                vec![
                    ("pressure_mpa", kpa / 1000.0),
                    ("water_temp_c", 85.0 + 3.0 * (TAU * t / 600.0).sin()),
                    ("flue_temp_c", 160.0 + 5.0 * (TAU * t / 120.0).cos()),
                    ("water_level_mm", (20.0 * (TAU * t / 90.0).sin()).round()),
                    ("run_hours", (t / 3600.0).floor().rem_euclid(100_000.0)),
                    ("alarm_bits", if fault { 1.0 } else { 0.0 }),
                ]
            }
            Model::WaterMeter => {
                let day = (TAU * t / 86_400.0).sin().max(0.0);
                let flow = if fault { 1.8 } else { 0.2 + 1.2 * day };
                vec![
                    ("forward_total_m3", ((t / 3600.0) * 0.5 + 100.0 * (i + 1.0)).rem_euclid(1.0e6)),
                    ("reverse_total_m3", 0.0),
                    ("flow_m3h", flow),
                    ("pipe_state", 170.0),
                    ("pressure_mpa", 0.32),
                    ("status_bits", if fault { 1.0 } else { 0.0 }),
                    ("battery_v", 3.6),
                ]
            }
            Model::ChargingPile => {
                let charging = !fault;
                vec![
                    ("state", if fault { 5.0 } else { 3.0 }),
                    ("output_voltage_v", if charging { 500.0 } else { 0.0 }),
                    ("output_current_a", if charging { 100.0 } else { 0.0 }),
                    ("energy_kwh", ((t / 3600.0) * 50.0 + 10.0 * i).rem_euclid(4.0e6)),
                    ("insulation_kohm", if fault { 40.0 } else { 500.0 }),
                    ("gun_temp_c", 35.0 + 5.0 * (TAU * t / 900.0).sin()),
                    ("fault_code", if fault { 5.0 } else { 0.0 }),
                    ("emergency_stop", 0.0),
                ]
            }
            Model::ChargingPileAc => {
                // A 7 kW single-phase pile; its fault: the connector overheats.
                let charging = !fault;
                vec![
                    ("state", if fault { 5.0 } else { 3.0 }),
                    ("pilot_state", if fault { 6.0 } else { 3.0 }),
                    ("phases", 1.0),
                    ("gun_locked", 1.0),
                    ("voltage_v", 230.0 + 2.0 * (TAU * t / 60.0 + i).sin()),
                    ("current_a", if charging { 32.0 } else { 0.0 }),
                    ("power_kw", if charging { 7.36 } else { 0.0 }),
                    ("energy_kwh", ((t / 3600.0) * 7.0 + 10.0 * i).rem_euclid(999_999.0)),
                    ("connector_temp_c", if fault { 92.0 } else { 40.0 + 3.0 * (TAU * t / 900.0).sin() }),
                    ("fault_code", if fault { 14.0 } else { 0.0 }),
                    ("firmware", 102.0),
                    ("emergency_stop", 0.0),
                ]
            }
            Model::Synthetic => Vec::new(),
        }
    }

    /// The text values of device number `index` (string points).
    pub fn text(self, index: usize) -> Vec<(&'static str, String)> {
        match self {
            Model::ChargingPileAc => vec![("serial_no", format!("ACP-2024-{:06}", index + 1))],
            _ => Vec::new(),
        }
    }
}

/// A [`Model::Synthetic`] point's value: point `point` of device `index` at `now_ms`, within
/// what the point's type holds, different per point and device and changing every second.
pub fn synthetic(p: &crate::profile::Point, point: usize, index: usize, now_ms: i64) -> telemetry::Value {
    use crate::profile::DataType;
    let step = (now_ms / 1000).rem_euclid(1 << 20) as u64;
    let raw = (index as u64 * 31 + point as u64 * 7 + step) % 1000;
    let raw = match (p.data_type, p.field) {
        (DataType::Bitfield, Some(f)) => raw % (1u64 << f.bit_count().min(32)),
        (DataType::Bool, _) => raw % 2,
        _ => raw,
    };
    match p.data_type {
        DataType::String => telemetry::Value::Text(format!("S{index}-{point}-{raw}")),
        DataType::I16 | DataType::I32 | DataType::I64 => {
            telemetry::Value::Float((raw as f64 - 500.0) * p.scale + p.offset)
        }
        _ => telemetry::Value::Float(raw as f64 * p.scale + p.offset),
    }
}

/// A synthetic profile of `points` points for load tests: every register type and byte order
/// in turn, over the holding and input tables, with a hole now and then (64 registers a
/// request at most, holes of up to 4 read across).
pub fn synthetic_profile(name: &str, points: usize) -> crate::profile::Profile {
    use crate::profile::{BitRange, DataType, Point, Profile, Table, BYTE_ORDERS};
    let types = [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::F32,
        DataType::Bcd16,
        DataType::I32,
        DataType::Bitfield,
        DataType::F64,
        DataType::Bcd32,
        DataType::String,
    ];
    let mut next = [0u16, 0u16];
    let points = (0..points)
        .map(|i| {
            let t = types[i % types.len()];
            let table = if i % 3 == 2 { Table::Input } else { Table::Holding };
            let at = &mut next[usize::from(table == Table::Input)];
            let mut p = Point::new(&format!("p{i:03}"), table, *at, t);
            p.order = if t == DataType::String { BYTE_ORDERS[(i / 10) % 2 * 2] } else { BYTE_ORDERS[i % 4] };
            match t {
                DataType::String => p.length = Some(4),
                DataType::Bitfield => p.field = Some(BitRange { low: 2, high: 9 }),
                DataType::I16 | DataType::U32 => p.scale = 0.1,
                _ => {}
            }
            *at += p.width() + if i % 7 == 0 { 3 } else { 0 };
            p
        })
        .collect();
    let mut profile = Profile::new(name, "synthetic", points);
    profile.description = Some("Synthetic load-test model: every register type and byte order".into());
    profile.max_registers = 64;
    profile.max_gap = 4;
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_windows_come_and_go() {
        let s = FaultSchedule { start_ms: 1_000, delay_ms: 5_000, period_ms: 30_000, duration_ms: 10_000 };
        assert!(!s.active(5_999));
        assert!(s.active(6_000));
        assert!(s.active(15_999));
        assert!(!s.active(16_000));
        assert!(s.active(36_000));
        assert!(!FaultSchedule::none().active(0));
    }

    #[test]
    fn faults_show_in_the_values() {
        let get = |m: Model, fault: bool, name: &str| {
            m.sample(0, 1_000_000, fault).into_iter().find(|(n, _)| *n == name).unwrap().1
        };
        assert_eq!(get(Model::Elevator, true, "fault_code"), 5.0);
        assert_eq!(get(Model::Elevator, false, "fault_code"), 0.0);
        assert!(get(Model::Boiler, true, "pressure_mpa") > 1.25);
        assert!(get(Model::Boiler, false, "pressure_mpa") < 1.0);
        assert_eq!(get(Model::WaterMeter, true, "status_bits"), 1.0);
        assert_eq!(get(Model::ChargingPile, true, "fault_code"), 5.0);
        assert_eq!(get(Model::ChargingPileAc, true, "fault_code"), 14.0);
        assert!(get(Model::ChargingPileAc, true, "connector_temp_c") > 85.0);
        assert_eq!(Model::ChargingPileAc.text(0), vec![("serial_no", "ACP-2024-000001".to_string())]);
    }

    #[test]
    fn the_synthetic_profile_is_valid_and_its_values_decode() {
        let p = synthetic_profile("synthetic-100", 100);
        assert_eq!(p.problems(), Vec::<String>::new());
        let text = crate::profile_toml::to_toml(&p, "synthetic");
        assert_eq!(crate::profile::Profile::parse("synthetic-100", "s", &text).unwrap(), p);
        for (i, point) in p.points.iter().enumerate() {
            let v = synthetic(point, i, 7, 1_795_000_000_000);
            let words = crate::register::encode_value(point, &v);
            let back = crate::register::decode(point, &words).unwrap().remove(0).1;
            match (&v, &back) {
                (telemetry::Value::Text(a), telemetry::Value::Text(b)) => assert!(a.starts_with(b.as_str())),
                _ => assert!((v.as_f64().unwrap() - back.as_f64().unwrap()).abs() < 1e-6, "{i}: {v} {back}"),
            }
        }
    }
}
