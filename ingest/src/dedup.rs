//! Drops duplicate readings by (device, sid, seq) and counts gaps in `seq`. Redelivery after a
//! crash and a gateway's spool replay both send readings twice; this keeps each once.

use std::collections::{BTreeSet, HashMap};

/// How far below the highest seq of a session duplicates are still recognised.
const WINDOW: u64 = 4096;
/// Sessions remembered per device (a restarted gateway replays its old session's spool).
const SESSIONS: usize = 4;

#[derive(Default)]
struct Session {
    sid: u64,
    max_seq: Option<u64>,
    seen: BTreeSet<u64>,
}

/// What `Dedup::observe` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    New { gaps: u64, filled_gap: bool },
    Duplicate,
}

#[derive(Default)]
pub struct Dedup {
    devices: HashMap<String, Vec<Session>>,
}

impl Dedup {
    pub fn observe(&mut self, device: &str, sid: u64, seq: u64) -> Seen {
        let sessions = self.devices.entry(device.to_string()).or_default();
        let i = match sessions.iter().position(|s| s.sid == sid) {
            Some(i) => i,
            None => {
                if sessions.len() >= SESSIONS {
                    let oldest = sessions.iter().enumerate().min_by_key(|(_, s)| s.sid).map_or(0, |(i, _)| i);
                    sessions.remove(oldest);
                }
                sessions.push(Session { sid, ..Session::default() });
                sessions.len() - 1
            }
        };
        let s = &mut sessions[i];
        if s.seen.contains(&seq) {
            return Seen::Duplicate;
        }
        let floor = s.max_seq.unwrap_or(0).saturating_sub(WINDOW);
        if s.max_seq.is_some() && seq < floor {
            // Too old to tell: let it through; the TSDB keeps one point per series and time.
            return Seen::New { gaps: 0, filled_gap: false };
        }
        let (gaps, filled_gap) = match s.max_seq {
            None => (0, false),
            Some(max) if seq > max => (seq - max - 1, false),
            Some(_) => (0, true),
        };
        s.seen.insert(seq);
        s.max_seq = Some(s.max_seq.map_or(seq, |m| m.max(seq)));
        let floor = s.max_seq.unwrap_or(0).saturating_sub(WINDOW);
        while s.seen.first().is_some_and(|&f| f < floor) {
            s.seen.pop_first();
        }
        Seen::New { gaps, filled_gap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_per_device_and_session() {
        let mut d = Dedup::default();
        assert_eq!(d.observe("a", 1, 0), Seen::New { gaps: 0, filled_gap: false });
        assert_eq!(d.observe("a", 1, 1), Seen::New { gaps: 0, filled_gap: false });
        assert_eq!(d.observe("a", 1, 1), Seen::Duplicate);
        assert_eq!(d.observe("b", 1, 1), Seen::New { gaps: 0, filled_gap: false }, "another device");
        assert_eq!(d.observe("a", 2, 1), Seen::New { gaps: 0, filled_gap: false }, "another session");
        assert_eq!(d.observe("a", 1, 0), Seen::Duplicate, "the old session is remembered");
    }

    #[test]
    fn gaps_are_counted_and_filling_them_is_seen() {
        let mut d = Dedup::default();
        d.observe("a", 1, 0);
        assert_eq!(d.observe("a", 1, 5), Seen::New { gaps: 4, filled_gap: false });
        assert_eq!(d.observe("a", 1, 3), Seen::New { gaps: 0, filled_gap: true });
        assert_eq!(d.observe("a", 1, 3), Seen::Duplicate);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut d = Dedup::default();
        for seq in 0..20_000 {
            d.observe("a", 1, seq);
        }
        assert!(d.devices["a"][0].seen.len() <= WINDOW as usize + 1);
        for sid in 0..10 {
            d.observe("a", 100 + sid, 0);
        }
        assert_eq!(d.devices["a"].len(), SESSIONS);
    }
}
