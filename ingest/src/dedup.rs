//! Drops duplicate readings by (device, sid, seq) and counts gaps in `seq`. Redelivery after a
//! crash and a gateway's spool replay both send readings twice; this keeps each once.
//!
//! Per session, the seqs seen within [`WINDOW`] of the highest are bits of a ring indexed by
//! seq modulo its size: 64 bits at first, doubled as the seqs seen spread, at most `WINDOW`
//! bits (512 bytes). A seq further below the highest is let through: too old to tell, and the
//! TSDB keeps one point per series and time anyway. Devices idle for a while are forgotten
//! ([`Dedup::evict_idle`]); one that comes back starts afresh.

use std::collections::HashMap;

/// How far below the highest seq of a session duplicates are still recognised (a power of two,
/// at least 64): seqs in `max - WINDOW + 1 ..= max`.
pub const WINDOW: u64 = 4096;
/// Sessions remembered per device (a restarted gateway replays its old session's spool).
const SESSIONS: usize = 4;

struct Session {
    sid: u64,
    max: u64,
    /// The lowest seq recorded: the ring reaches down to it (or to the window's floor).
    low: u64,
    /// Bit `seq % bits` is set for each seq seen in `max - bits + 1 ..= max`.
    ring: Box<[u64]>,
}

impl Session {
    fn new(sid: u64, seq: u64) -> Session {
        let mut s = Session { sid, max: seq, low: seq, ring: vec![0; 1].into_boxed_slice() };
        s.set(seq);
        s
    }

    fn bits(&self) -> u64 {
        self.ring.len() as u64 * 64
    }

    fn position(&self, seq: u64) -> (usize, u64) {
        let b = seq % self.bits();
        ((b / 64) as usize, 1 << (b % 64))
    }

    fn get(&self, seq: u64) -> bool {
        let (w, mask) = self.position(seq);
        self.ring[w] & mask != 0
    }

    fn set(&mut self, seq: u64) {
        let (w, mask) = self.position(seq);
        self.ring[w] |= mask;
    }

    fn clear(&mut self, seq: u64) {
        let (w, mask) = self.position(seq);
        self.ring[w] &= !mask;
    }

    /// Makes the ring at least `needed` bits (at most `window`), keeping the bits it holds.
    fn grow(&mut self, needed: u64, window: u64) {
        let old_bits = self.bits();
        let mut bits = old_bits;
        while bits < needed.min(window) {
            bits *= 2;
        }
        if bits == old_bits {
            return;
        }
        let old = std::mem::replace(&mut self.ring, vec![0; (bits / 64) as usize].into_boxed_slice());
        let top = self.max % old_bits;
        for (w, &word) in old.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let p = w as u64 * 64 + u64::from(rest.trailing_zeros());
                rest &= rest - 1;
                // The seq in `max - old_bits + 1 ..= max` at position p.
                if let Some(seq) = self.max.checked_sub((top + old_bits - p) % old_bits) {
                    self.set(seq);
                }
            }
        }
    }

    fn observe(&mut self, seq: u64, window: u64) -> Seen {
        if seq > self.max {
            let floor = seq.saturating_sub(window - 1);
            self.grow(seq - self.low.max(floor) + 1, window);
            if seq - self.max >= self.bits() {
                self.ring.fill(0);
            } else {
                // The positions of the new seqs held those now below the ring.
                for s in self.max + 1..seq {
                    self.clear(s);
                }
            }
            let gaps = seq - self.max - 1;
            self.max = seq;
            self.set(seq);
            return Seen::New { gaps, filled_gap: false };
        }
        let below = self.max - seq;
        if below >= window {
            return Seen::New { gaps: 0, filled_gap: false };
        }
        // Within the window but below the ring: never seen (the ring reaches down to `low`).
        if below < self.bits() && self.get(seq) {
            return Seen::Duplicate;
        }
        if seq < self.low {
            self.low = seq;
            self.grow(below + 1, window);
        }
        self.set(seq);
        Seen::New { gaps: 0, filled_gap: true }
    }
}

/// What `Dedup::observe` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New { gaps: u64, filled_gap: bool },
    Duplicate,
}

struct Device {
    sessions: Vec<Session>,
    /// The host's time of its newest message, for [`Dedup::evict_idle`].
    seen_at: i64,
}

pub struct Dedup {
    devices: HashMap<Box<str>, Device>,
    window: u64,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup::with_window(WINDOW)
    }
}

impl Dedup {
    /// A dedup whose window is `window` seqs (a power of two, at least 64; tests use small ones).
    pub fn with_window(window: u64) -> Dedup {
        Dedup { devices: HashMap::new(), window: window.next_power_of_two().max(64) }
    }

    /// Records (device, sid, seq), received at the host's time `now_ms`.
    pub fn observe(&mut self, device: &str, sid: u64, seq: u64, now_ms: i64) -> Seen {
        let d = match self.devices.get_mut(device) {
            Some(d) => d,
            None => {
                self.devices.entry(device.into()).or_insert(Device { sessions: Vec::new(), seen_at: now_ms })
            }
        };
        d.seen_at = d.seen_at.max(now_ms);
        let sessions = &mut d.sessions;
        match sessions.iter_mut().find(|s| s.sid == sid) {
            Some(s) => s.observe(seq, self.window),
            None => {
                if sessions.len() >= SESSIONS {
                    let oldest = sessions.iter().enumerate().min_by_key(|(_, s)| s.sid).map_or(0, |(i, _)| i);
                    sessions.remove(oldest);
                }
                // Most devices keep one session: no spare capacity.
                sessions.reserve_exact(1);
                sessions.push(Session::new(sid, seq));
                Seen::New { gaps: 0, filled_gap: false }
            }
        }
    }

    /// Forgets the devices with no message for `idle_ms` before `now_ms`; returns how many.
    pub fn evict_idle(&mut self, now_ms: i64, idle_ms: i64) -> usize {
        let before = self.devices.len();
        self.devices.retain(|_, d| now_ms.saturating_sub(d.seen_at) < idle_ms);
        if self.devices.len() < self.devices.capacity() / 4 {
            self.devices.shrink_to_fit();
        }
        before - self.devices.len()
    }

    /// Devices remembered.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests;
