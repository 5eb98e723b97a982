//! When each of a device's point groups is polled. Every group has its own grid of slots,
//! `first + k·interval`; the devices of a line are staggered across the interval so they do not
//! all fire at once, and a slower group's slots are put on its device's main grid so that, when
//! they come, its points are read in the same poll (one reading) as the main group's.
//!
//! The stagger goes in steps of [`STAGGER_STEP`]: the devices of one step are polled back to
//! back. Each wake-up of the gateway (a timer, an answer, a PUBACK) costs more than a poll on
//! the small machines it runs on, and polls that come together share them: with 200 devices a
//! second on a line, steps took the gateway from about 2,000 context switches a second to 600
//! (BENCHMARKS.md).
//!
//! A slot the line was too busy to make is an overrun, counted per group. A poll that failed
//! leaves its groups owed: the retries and probes of [`crate::health`] read them. Pure: time is
//! a parameter; [`crate::bus`] sleeps and polls.

use std::time::Duration;

use tokio::time::Instant;

/// The devices of a line start their interval in steps this far apart (all at once when the
/// interval is no longer).
pub const STAGGER_STEP: Duration = Duration::from_millis(250);

/// One point group's slots and counters.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSlot {
    pub interval: Duration,
    /// The next regular slot.
    pub next_due: Instant,
    /// Its slot was taken but no poll has read it since.
    pub owed: bool,
    pub polls: u64,
    /// Slots missed because the line was busy.
    pub overruns: u64,
}

pub use telemetry::status::GroupStatus;

/// The first slot of the grid `next_due + k·interval` that is after `now`.
pub fn next_slot_after(next_due: Instant, interval: Duration, now: Instant) -> Instant {
    if next_due > now {
        return next_due;
    }
    let behind = (now - next_due).as_nanos() / interval.as_nanos().max(1);
    next_due + interval * (behind as u32 + 1)
}

/// How long a device of a model that wants `pause` after a connection is opened must still
/// wait, the connection having been opened at `connected_at`.
pub fn connect_pause_left(connected_at: Instant, pause: Duration, now: Instant) -> Duration {
    (connected_at + pause).saturating_duration_since(now)
}

/// The slots of one device's groups.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub groups: Vec<GroupSlot>,
}

impl Schedule {
    /// The schedule of device `index` of `count` on a line, from `start`: its main grid
    /// (`main`, the device's interval) starts `main·index/count` in, rounded down to a
    /// [`STAGGER_STEP`]; each group's first slot is that much plus its own share of its
    /// interval, rounded down to the main grid.
    pub fn new(intervals: &[Duration], main: Duration, index: u32, count: u32, start: Instant) -> Schedule {
        let count = count.max(1);
        let spread = main * index / count;
        let offset = STAGGER_STEP * (spread.as_nanos() / STAGGER_STEP.as_nanos()) as u32;
        let groups = intervals
            .iter()
            .map(|&interval| {
                let share = interval * index / count;
                let snapped = if interval > main && !main.is_zero() {
                    main * (share.as_nanos() / main.as_nanos()) as u32
                } else {
                    Duration::ZERO
                };
                GroupSlot { interval, next_due: start + offset + snapped, owed: false, polls: 0, overruns: 0 }
            })
            .collect();
        Schedule { groups }
    }

    /// The earliest regular slot of any group.
    pub fn next_slot(&self) -> Instant {
        self.groups.iter().map(|g| g.next_due).min().unwrap_or_else(Instant::now)
    }

    /// The groups a poll at `now` reads. A regular poll (`on_schedule`) takes every group whose
    /// slot has come: the slot is used, the slots missed since are counted as overruns, and the
    /// group is owed until a poll reads it. A retry or probe reads the groups owed or due, or,
    /// if none is, the one due first.
    pub fn take(&mut self, now: Instant, on_schedule: bool) -> Vec<usize> {
        let mut taken = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            // A retry or probe also reads what a failed poll owes.
            let owed_now = g.owed && !on_schedule;
            if g.next_due > now && !owed_now {
                continue;
            }
            if on_schedule {
                g.next_due += g.interval;
                if g.next_due < now {
                    let missed = ((now - g.next_due).as_nanos() / g.interval.as_nanos().max(1)) as u32 + 1;
                    g.overruns += missed as u64;
                    g.next_due += g.interval * missed;
                }
                g.owed = true;
            }
            taken.push(i);
        }
        if taken.is_empty() {
            if let Some((i, _)) = self.groups.iter().enumerate().min_by_key(|(_, g)| g.next_due) {
                taken.push(i);
            }
        }
        taken
    }

    /// Records the poll of `groups` taken at `now`: when it read something they are no longer
    /// owed, and after a retry or probe their next slot is the first one after `now`.
    pub fn polled(&mut self, groups: &[usize], ok: bool, on_schedule: bool, now: Instant) {
        for &i in groups {
            let g = &mut self.groups[i];
            g.polls += 1;
            if ok {
                g.owed = false;
                if !on_schedule {
                    g.next_due = next_slot_after(g.next_due, g.interval, now);
                }
            }
        }
    }

    /// Overruns of every group.
    pub fn overruns(&self) -> u64 {
        self.groups.iter().map(|g| g.overruns).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn slots_stay_on_their_grid() {
        let t0 = Instant::now();
        assert_eq!(next_slot_after(t0 + MS(500), MS(1000), t0), t0 + MS(500));
        assert_eq!(next_slot_after(t0, MS(1000), t0), t0 + MS(1000));
        assert_eq!(next_slot_after(t0, MS(1000), t0 + MS(2500)), t0 + MS(3000));
        assert_eq!(connect_pause_left(t0, MS(300), t0 + MS(100)), MS(200));
        assert_eq!(connect_pause_left(t0, MS(300), t0 + MS(400)), Duration::ZERO);
    }

    #[test]
    fn devices_are_staggered_and_slow_groups_land_on_the_main_grid() {
        let t0 = Instant::now();
        let intervals = [MS(1000), MS(900_000)];
        let firsts: Vec<Vec<Instant>> = (0..4)
            .map(|i| {
                Schedule::new(&intervals, MS(1000), i, 4, t0).groups.iter().map(|g| g.next_due).collect()
            })
            .collect();
        assert_eq!(firsts[0], [t0, t0]);
        assert_eq!(firsts[1], [t0 + MS(250), t0 + MS(250) + MS(225_000)]);
        assert_eq!(firsts[3], [t0 + MS(750), t0 + MS(750) + MS(675_000)]);
        // Device 1's 15-minute group comes on one of its main slots: both are read in one poll.
        let mut s = Schedule::new(&intervals, MS(1000), 1, 4, t0);
        let slot = s.groups[1].next_due;
        for k in 0..225 {
            let now = t0 + MS(250) + MS(1000) * k;
            assert_eq!(s.take(now, true), [0], "slot {k}");
            s.polled(&[0], true, true, now);
        }
        assert_eq!(s.next_slot(), slot);
        assert_eq!(s.take(slot, true), [0, 1]);
        s.polled(&[0, 1], true, true, slot);
        assert_eq!(s.groups[1].next_due, slot + MS(900_000));
        assert_eq!(s.overruns(), 0);
    }

    #[test]
    fn a_step_holds_the_devices_polled_back_to_back() {
        let t0 = Instant::now();
        let first = |i, n, main| Schedule::new(&[main], main, i, n, t0).next_slot() - t0;
        // 200 devices a second: 50 to a step.
        let offsets: Vec<Duration> = (0..200).map(|i| first(i, 200, MS(1000))).collect();
        assert!(offsets[..50].iter().all(|&o| o == MS(0)), "{:?}", &offsets[..50]);
        assert!(offsets[50..100].iter().all(|&o| o == MS(250)));
        assert_eq!(offsets[199], MS(750));
        // Spread over the second, 0, 200, 400, 600 and 800 ms fall to their steps.
        assert_eq!((0..5).map(|i| first(i, 5, MS(1000))).collect::<Vec<_>>(), [0, 0, 250, 500, 750].map(MS));
        // An interval no longer than a step: all at once.
        assert!((0..4).all(|i| first(i, 4, MS(250)) == MS(0)));
    }

    /// A table of polls at explicit times: slots taken, overruns counted when the line was busy.
    #[test]
    fn missed_slots_are_overruns_of_their_group() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&[MS(1000), MS(5000)], MS(1000), 0, 1, t0);
        let steps: [(u64, &[usize], u64); 5] = [
            (0, &[0, 1], 0),
            (1_400, &[0], 0), // late but within its interval: made, not an overrun
            (4_500, &[0], 2), // the 2 s slot taken late; those at 3 and 4 s are missed
            (5_000, &[0, 1], 2),
            (11_200, &[0, 1], 2 + 5),
        ];
        for (at, groups, overruns) in steps {
            let now = t0 + MS(at);
            assert_eq!(s.take(now, true), groups, "at {at}");
            s.polled(groups, true, true, now);
            assert_eq!(s.overruns(), overruns, "at {at}");
        }
        assert_eq!(s.groups[0].next_due, t0 + MS(12_000));
        assert_eq!(s.groups[1].next_due, t0 + MS(15_000));
    }

    #[test]
    fn a_failed_poll_leaves_its_groups_owed_for_the_retry() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&[MS(1000), MS(60_000)], MS(1000), 0, 1, t0);
        assert_eq!(s.take(t0, true), [0, 1]);
        s.polled(&[0, 1], false, true, t0);
        assert!(s.groups.iter().all(|g| g.owed));
        // The retry 100 ms later reads both again; it succeeds, the grid stands.
        assert_eq!(s.take(t0 + MS(100), false), [0, 1]);
        s.polled(&[0, 1], true, false, t0 + MS(100));
        assert!(s.groups.iter().all(|g| !g.owed));
        assert_eq!(s.groups[0].next_due, t0 + MS(1000));
        // A probe long after (quarantine): every group due is read, and the slots move on.
        let late = t0 + MS(90_500);
        assert_eq!(s.take(late, false), [0, 1]);
        s.polled(&[0, 1], true, false, late);
        assert_eq!(s.groups[0].next_due, t0 + MS(91_000));
        assert_eq!(s.groups[1].next_due, t0 + MS(120_000));
        assert_eq!(s.overruns(), 0, "slots skipped in quarantine are not overruns");
        // Nothing owed or due: a probe reads the group due first.
        assert_eq!(s.take(late + MS(1), false), [0]);
    }
}
