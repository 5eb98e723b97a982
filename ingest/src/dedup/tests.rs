use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

#[test]
fn duplicates_are_dropped_per_device_and_session() {
    let mut d = Dedup::default();
    assert_eq!(d.observe("a", 1, 0, 0), Seen::New { gaps: 0, filled_gap: false });
    assert_eq!(d.observe("a", 1, 1, 0), Seen::New { gaps: 0, filled_gap: false });
    assert_eq!(d.observe("a", 1, 1, 0), Seen::Duplicate);
    assert_eq!(d.observe("b", 1, 1, 0), Seen::New { gaps: 0, filled_gap: false }, "another device");
    assert_eq!(d.observe("a", 2, 1, 0), Seen::New { gaps: 0, filled_gap: false }, "another session");
    assert_eq!(d.observe("a", 1, 0, 0), Seen::Duplicate, "the old session is remembered");
}

#[test]
fn gaps_are_counted_and_filling_them_is_seen() {
    let mut d = Dedup::default();
    d.observe("a", 1, 0, 0);
    assert_eq!(d.observe("a", 1, 5, 0), Seen::New { gaps: 4, filled_gap: false });
    assert_eq!(d.observe("a", 1, 3, 0), Seen::New { gaps: 0, filled_gap: true });
    assert_eq!(d.observe("a", 1, 3, 0), Seen::Duplicate);
}

#[test]
fn the_whole_window_is_remembered_and_older_seqs_are_let_through() {
    let mut d = Dedup::default();
    for seq in 0..10_000 {
        assert_eq!(d.observe("a", 1, seq, 0), Seen::New { gaps: 0, filled_gap: false });
    }
    for seq in 9_999 - (WINDOW - 1)..10_000 {
        assert_eq!(d.observe("a", 1, seq, 0), Seen::Duplicate, "{seq}");
    }
    let too_old = 9_999 - WINDOW;
    assert_eq!(d.observe("a", 1, too_old, 0), Seen::New { gaps: 0, filled_gap: false });
    // A jump further than the window forgets everything before it.
    assert_eq!(d.observe("a", 1, 1_000_000, 0), Seen::New { gaps: 1_000_000 - 10_000, filled_gap: false });
    assert_eq!(d.observe("a", 1, 9_999, 0), Seen::New { gaps: 0, filled_gap: false }, "too old now");
    assert_eq!(d.observe("a", 1, 999_999, 0), Seen::New { gaps: 0, filled_gap: true });
}

#[test]
fn memory_stays_bounded() {
    let mut d = Dedup::default();
    for seq in 0..20_000 {
        d.observe("a", 1, seq, 0);
    }
    assert_eq!(d.devices["a"].sessions[0].bits(), WINDOW);
    for sid in 0..10 {
        d.observe("a", 100 + sid, 0, 0);
    }
    assert_eq!(d.devices["a"].sessions.len(), SESSIONS);
    // A device with a reading or two keeps the smallest ring.
    d.observe("b", 1, 7, 0);
    d.observe("b", 1, 8, 0);
    assert_eq!(d.devices["b"].sessions[0].bits(), 64);
}

#[test]
fn idle_devices_are_forgotten_and_come_back_afresh() {
    let day = 86_400_000;
    let mut d = Dedup::default();
    d.observe("idle", 1, 5, 0);
    d.observe("busy", 1, 5, 0);
    d.observe("busy", 1, 6, day - 1);
    assert_eq!(d.evict_idle(day - 1, day), 0, "not a day yet");
    assert_eq!(d.evict_idle(day, day), 1);
    assert_eq!(d.len(), 1);
    assert_eq!(d.observe("busy", 1, 6, day), Seen::Duplicate, "the busy one is kept");
    assert_eq!(d.observe("idle", 1, 5, day), Seen::New { gaps: 0, filled_gap: false }, "a new start");
    assert_eq!(d.observe("idle", 1, 5, day), Seen::Duplicate);
}

/// The plain model: every seq seen within the window, in a set.
#[derive(Default)]
struct Model {
    devices: HashMap<u8, Vec<(u64, u64, HashSet<u64>)>>,
}

impl Model {
    fn observe(&mut self, device: u8, sid: u64, seq: u64, window: u64) -> Seen {
        let sessions = self.devices.entry(device).or_default();
        let Some(s) = sessions.iter_mut().find(|s| s.0 == sid) else {
            if sessions.len() >= SESSIONS {
                let oldest = sessions.iter().enumerate().min_by_key(|(_, s)| s.0).map_or(0, |(i, _)| i);
                sessions.remove(oldest);
            }
            sessions.push((sid, seq, HashSet::from([seq])));
            return Seen::New { gaps: 0, filled_gap: false };
        };
        let (_, max, seen) = s;
        if seq > *max {
            let gaps = seq - *max - 1;
            *max = seq;
            seen.insert(seq);
            let floor = seq.saturating_sub(window - 1);
            seen.retain(|&x| x >= floor);
            return Seen::New { gaps, filled_gap: false };
        }
        if *max - seq >= window {
            return Seen::New { gaps: 0, filled_gap: false };
        }
        if !seen.insert(seq) {
            return Seen::Duplicate;
        }
        Seen::New { gaps: 0, filled_gap: true }
    }
}

fn seqs() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..700u64, 1 => 0..5_000u64, 1 => Just(u64::MAX - 3), 1 => (u64::MAX - 300)..u64::MAX]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The ring answers as the plain model over any sequence: in order with gaps, replays,
    /// out of order, jumps, several devices and sessions, seqs near `u64::MAX`.
    #[test]
    fn the_ring_answers_as_a_set_within_the_window(
        ops in proptest::collection::vec((0..3u8, 0..6u64, seqs()), 1..400),
        runs in proptest::collection::vec((0..3u8, 0..3u64, 0..600u64, 1..300u64), 0..4),
    ) {
        let window = 128;
        let mut dedup = Dedup::with_window(window);
        let mut model = Model::default();
        // Long in-order runs, to spread the seqs wide enough to grow the ring, then the rest.
        let runs = runs.into_iter().flat_map(|(d, sid, from, n)| (from..from + n).map(move |s| (d, sid, s)));
        for (device, sid, seq) in runs.chain(ops) {
            let want = model.observe(device, sid, seq, window);
            let got = dedup.observe(&device.to_string(), sid, seq, 0);
            prop_assert_eq!(got, want, "device {} sid {} seq {}", device, sid, seq);
        }
    }
}
