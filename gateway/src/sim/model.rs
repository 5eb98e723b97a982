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
}

impl Model {
    pub fn for_kind(kind: &str) -> Option<Model> {
        match kind {
            "elevator" => Some(Model::Elevator),
            "boiler" => Some(Model::Boiler),
            "water_meter" => Some(Model::WaterMeter),
            "charging_pile" => Some(Model::ChargingPile),
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
        }
    }
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
    }
}
