//! One alert's state machine (after Prometheus `rules/alerting.go`), stepped at reading time.
//! `for` and hysteresis are timestamp arithmetic; nothing here reads a clock.

use serde::{Deserialize, Serialize};

/// Milliseconds since the epoch, reading time.
pub type Ts = i64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertState {
    #[default]
    Inactive,
    /// The condition holds but has not held for `for` yet.
    Pending {
        active_at: Ts,
    },
    Firing {
        active_at: Ts,
        fired_at: Ts,
    },
}

/// The state of one rule over one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub state: AlertState,
    /// Time of the newest reading this alert was stepped with.
    pub last_ts: Option<Ts>,
}

/// A change the notifier must hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Fired { active_at: Ts, fired_at: Ts },
    Resolved { active_at: Ts, fired_at: Ts, resolved_at: Ts },
}

/// One evaluation step. `matched`: the condition holds; `cleared`: the clear condition holds
/// (without a clear condition, `!matched`). A reading older than or as old as the last one
/// stepped (a late replay, a duplicate) changes nothing, so alerts never move out of order.
pub fn step(alert: &mut Alert, matched: bool, cleared: bool, hold_for_ms: i64, ts: Ts) -> Option<Transition> {
    if alert.last_ts.is_some_and(|last| ts <= last) {
        return None;
    }
    alert.last_ts = Some(ts);
    match alert.state {
        AlertState::Inactive if matched => {
            if hold_for_ms <= 0 {
                alert.state = AlertState::Firing { active_at: ts, fired_at: ts };
                return Some(Transition::Fired { active_at: ts, fired_at: ts });
            }
            alert.state = AlertState::Pending { active_at: ts };
            None
        }
        AlertState::Inactive => None,
        AlertState::Pending { active_at } if matched => {
            if ts - active_at >= hold_for_ms {
                alert.state = AlertState::Firing { active_at, fired_at: ts };
                return Some(Transition::Fired { active_at, fired_at: ts });
            }
            None
        }
        AlertState::Pending { .. } => {
            alert.state = AlertState::Inactive;
            None
        }
        AlertState::Firing { active_at, fired_at } if cleared => {
            alert.state = AlertState::Inactive;
            Some(Transition::Resolved { active_at, fired_at, resolved_at: ts })
        }
        AlertState::Firing { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps through (ts, matched, cleared) and collects the transitions.
    fn run(hold_for_ms: i64, steps: &[(Ts, bool, bool)]) -> Vec<(Ts, Transition)> {
        let mut alert = Alert::default();
        steps
            .iter()
            .filter_map(|&(ts, m, c)| step(&mut alert, m, c, hold_for_ms, ts).map(|t| (ts, t)))
            .collect()
    }

    #[test]
    fn fires_after_for_and_resolves_when_cleared() {
        let t = run(
            5_000,
            &[
                (0, false, true),
                (1_000, true, false),
                (3_000, true, false),
                (6_000, true, false),
                (7_000, false, true),
            ],
        );
        assert_eq!(
            t,
            vec![
                (6_000, Transition::Fired { active_at: 1_000, fired_at: 6_000 }),
                (7_000, Transition::Resolved { active_at: 1_000, fired_at: 6_000, resolved_at: 7_000 }),
            ]
        );
    }

    #[test]
    fn pending_is_reset_when_the_condition_breaks() {
        let t = run(
            5_000,
            &[
                (0, true, false),
                (4_000, false, true),
                (5_000, true, false),
                (9_000, true, false),
                (10_000, true, false),
            ],
        );
        assert_eq!(t, vec![(10_000, Transition::Fired { active_at: 5_000, fired_at: 10_000 })]);
    }

    #[test]
    fn zero_for_fires_at_once() {
        assert_eq!(run(0, &[(5, true, false)]), vec![(5, Transition::Fired { active_at: 5, fired_at: 5 })]);
    }

    #[test]
    fn hysteresis_keeps_firing_until_the_clear_condition() {
        // Condition gone (matched=false) but not cleared: stays firing.
        let t = run(0, &[(0, true, false), (1, false, false), (2, false, false), (3, false, true)]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], (3, Transition::Resolved { active_at: 0, fired_at: 0, resolved_at: 3 }));
    }

    #[test]
    fn late_and_duplicate_readings_change_nothing() {
        let mut a = Alert::default();
        assert!(step(&mut a, true, false, 0, 100).is_some());
        assert_eq!(step(&mut a, false, true, 0, 50), None, "a late reading must not resolve");
        assert_eq!(step(&mut a, false, true, 0, 100), None, "a duplicate must not resolve");
        assert!(matches!(a.state, AlertState::Firing { .. }));
        assert!(step(&mut a, false, true, 0, 101).is_some());
    }
}
