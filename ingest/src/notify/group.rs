//! Grouping, as a pure function of the queue and the time: when each group's next
//! notification is due, and the backoff of a failing one.
//!
//! A group is one receiver and one group key. Its alerts wait until the oldest of them has
//! waited `group_wait`, so a burst (500 devices behind a gateway going silent within seconds)
//! becomes one notification; after a notification, the group waits `group_interval` before the
//! next. A notification whose delivery failed keeps its alerts and its id and is retried at
//! its `retry_at`; alerts that arrive meanwhile wait for the one after it, so a receiver that
//! got a notification whose answer was lost sees the same id again.

use std::time::Duration;

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
}

impl Timing {
    pub fn new(group_wait: Duration, group_interval: Duration) -> Timing {
        Timing { group_wait_ms: millis(group_wait), group_interval_ms: millis(group_interval) }
    }

    /// When the group's next notification is due; `None` when it has nothing to send.
    pub fn due_at(&self, g: &GroupSummary) -> Option<i64> {
        if let Some(in_flight) = &g.in_flight {
            return Some(in_flight.retry_at_ms);
        }
        let oldest = g.oldest_waiting_ms?;
        let after_wait = oldest + self.group_wait_ms;
        Some(match g.last_sent_ms {
            Some(sent) => after_wait.max(sent + self.group_interval_ms),
            None => after_wait,
        })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A notification attempted and not yet delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    pub id: String,
    pub attempts: u32,
    pub retry_at_ms: i64,
}

/// What the queue holds for one group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSummary {
    pub receiver: String,
    pub group_key: String,
    /// Enqueue time of the oldest alert not yet in any notification.
    pub oldest_waiting_ms: Option<i64>,
    /// When the group's last notification was delivered.
    pub last_sent_ms: Option<i64>,
    pub in_flight: Option<InFlight>,
}

/// The groups due at `now`, the longest overdue first.
pub fn due(groups: &[GroupSummary], timing: Timing, now_ms: i64) -> Vec<&GroupSummary> {
    let mut due: Vec<(i64, &GroupSummary)> = groups
        .iter()
        .filter_map(|g| timing.due_at(g).map(|at| (at, g)))
        .filter(|(at, _)| *at <= now_ms)
        .collect();
    due.sort_by_key(|(at, _)| *at);
    due.into_iter().map(|(_, g)| g).collect()
}

/// The earliest time any group is due.
pub fn next_due(groups: &[GroupSummary], timing: Timing) -> Option<i64> {
    groups.iter().filter_map(|g| timing.due_at(g)).min()
}

/// The delay before retrying after `attempts` failed attempts: 1 s, 2 s, 4 s, … up to `max`.
pub fn retry_delay(attempts: u32, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    Duration::from_secs(1).saturating_mul(1 << doublings).min(max)
}

/// A notification's stable id: the same receiver, group and transitions give the same id.
pub fn notification_id(receiver: &str, group_key: &str, transition_keys: &[String]) -> String {
    let mut keys: Vec<&String> = transition_keys.iter().collect();
    keys.sort();
    let mut h = Sha256::new();
    h.update(receiver.as_bytes());
    h.update(b"\n");
    h.update(group_key.as_bytes());
    for k in keys {
        h.update(b"\n");
        h.update(k.as_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing { group_wait_ms: 10_000, group_interval_ms: 60_000 };

    fn group(oldest: Option<i64>, last_sent: Option<i64>, retry_at: Option<i64>) -> GroupSummary {
        GroupSummary {
            receiver: "duty".into(),
            group_key: "gateway=gw-7".into(),
            oldest_waiting_ms: oldest,
            last_sent_ms: last_sent,
            in_flight: retry_at.map(|at| InFlight { id: "n1".into(), attempts: 1, retry_at_ms: at }),
        }
    }

    #[test]
    fn due_times() {
        let cases = [
            ("empty group", group(None, None, None), None),
            ("new group waits group_wait", group(Some(1_000), None, None), Some(11_000)),
            ("after a send, group_interval", group(Some(1_000), Some(5_000), None), Some(65_000)),
            ("long after a send, group_wait again", group(Some(900_000), Some(5_000), None), Some(910_000)),
            ("a failed one at its retry time", group(Some(1_000), None, Some(3_000)), Some(3_000)),
            ("retry even with nothing new", group(None, Some(5_000), Some(70_000)), Some(70_000)),
        ];
        for (what, g, expected) in cases {
            assert_eq!(TIMING.due_at(&g), expected, "{what}");
        }
    }

    #[test]
    fn due_at_now_in_order_and_next_due() {
        let groups = vec![
            group(Some(5_000), None, None),
            group(Some(1_000), None, None),
            group(Some(50_000), None, None),
        ];
        assert!(due(&groups, TIMING, 10_999).is_empty());
        let d = due(&groups, TIMING, 15_000);
        assert_eq!(d.iter().map(|g| g.oldest_waiting_ms).collect::<Vec<_>>(), vec![Some(1_000), Some(5_000)]);
        assert_eq!(next_due(&groups, TIMING), Some(11_000));
        assert_eq!(next_due(&[], TIMING), None);
    }

    #[test]
    fn burst_of_alerts_is_one_notification_then_group_interval() {
        // 500 devices behind one gateway go silent over 3 s: the first notification goes out
        // after group_wait with all of them; stragglers wait for group_interval.
        let mut g = group(None, None, None);
        for i in 0..500 {
            let enqueued = 1_000 + i * 6;
            g.oldest_waiting_ms = Some(g.oldest_waiting_ms.map_or(enqueued, |o: i64| o.min(enqueued)));
        }
        assert_eq!(TIMING.due_at(&g), Some(11_000));
        g.oldest_waiting_ms = Some(12_000);
        g.last_sent_ms = Some(11_000);
        assert_eq!(TIMING.due_at(&g), Some(71_000));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=12).map(|a| retry_delay(a, max).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, max), max);
        assert_eq!(retry_delay(1, Duration::from_millis(200)), Duration::from_millis(200));
    }

    #[test]
    fn notification_ids_are_stable_and_order_free() {
        let a = notification_id("duty", "g", &["k1".into(), "k2".into()]);
        assert_eq!(a, notification_id("duty", "g", &["k2".into(), "k1".into()]));
        assert_ne!(a, notification_id("other", "g", &["k1".into(), "k2".into()]));
        assert_ne!(a, notification_id("duty", "g", &["k1".into()]));
        assert_eq!(a.len(), 32);
    }
}
