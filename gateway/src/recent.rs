//! The spool's newest records, kept in memory as well as on disk, so the sender reads what the
//! pollers just appended without file work and without decoding each reading again to find its
//! topic: each record keeps what the appender knew of it ([`RecordMeta`]).
//!
//! Only a contiguous run of the newest ids is kept, at most [`MAX_RECORDS`] and [`MAX_BYTES`]:
//! after a long outage the oldest unacknowledged records are read from disk (without their
//! meta), and from memory again once the reader has caught up. Records leave when acknowledged.
//! The reader's position (`cursor`) mirrors the spool's own: rewound to the first unacknowledged
//! record, moved past acknowledged ones. Pure; [`crate::spool::SpoolHandle`] does the locking.

use std::collections::VecDeque;
use std::sync::Arc;

/// Most records kept in memory.
pub const MAX_RECORDS: usize = 8192;
/// Most payload bytes kept in memory.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What the sender needs to publish a reading without decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub topic: String,
    /// The reading's session (`sid`) and poll time, for the replay flag.
    pub session: u64,
    pub ts_ms: i64,
}

/// A record read from the spool: from memory (with its meta) or from disk (without).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRecord {
    pub id: u64,
    pub payload: Arc<Vec<u8>>,
    pub meta: Option<RecordMeta>,
}

#[derive(Debug)]
pub struct Recent {
    /// Records of consecutive ids, oldest first.
    records: VecDeque<SpoolRecord>,
    bytes: usize,
    /// The next id to hand to the reader.
    cursor: u64,
    /// The newest id appended (0: none).
    last: u64,
    max_records: usize,
    max_bytes: usize,
}

impl Recent {
    /// For a spool whose records up to `acked` are acknowledged and whose newest is `last`
    /// (those in between are on disk only).
    pub fn new(acked: u64, last: u64) -> Recent {
        Recent::with_limits(acked, last, MAX_RECORDS, MAX_BYTES)
    }

    pub fn with_limits(acked: u64, last: u64, max_records: usize, max_bytes: usize) -> Recent {
        Recent {
            records: VecDeque::new(),
            bytes: 0,
            cursor: acked + 1,
            last: last.max(acked),
            max_records,
            max_bytes,
        }
    }

    /// Record `id` was appended (ids only grow).
    pub fn appended(&mut self, id: u64, payload: Arc<Vec<u8>>, meta: Option<RecordMeta>) {
        if self.records.back().is_some_and(|r| r.id + 1 != id) {
            // Not the next id: keep the run contiguous.
            self.records.clear();
            self.bytes = 0;
        }
        self.bytes += payload.len();
        self.records.push_back(SpoolRecord { id, payload, meta });
        self.last = self.last.max(id);
        while self.records.len() > self.max_records || self.bytes > self.max_bytes {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.records.pop_front() {
            self.bytes -= r.payload.len();
        }
    }

    /// Every record up to `through` is acknowledged (or dropped): forgotten, and the reader
    /// goes on after them.
    pub fn acked(&mut self, through: u64) {
        while self.records.front().is_some_and(|r| r.id <= through) {
            self.pop_front();
        }
        self.cursor = self.cursor.max(through + 1);
    }

    /// The reader starts again after `acked` (the spool was rewound).
    pub fn rewind(&mut self, acked: u64) {
        self.cursor = acked + 1;
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The reader read up to `next` (exclusive) from disk.
    pub fn read_through(&mut self, next: u64) {
        self.cursor = self.cursor.max(next);
    }

    /// Up to `max` records from the cursor on, when they are in memory (or nothing is left to
    /// read); `None` when the next record is on disk only.
    pub fn take(&mut self, max: usize) -> Option<Vec<SpoolRecord>> {
        if self.cursor > self.last {
            return Some(Vec::new());
        }
        let first = self.records.front()?.id;
        if self.cursor < first {
            return None;
        }
        let skip = (self.cursor - first) as usize;
        let out: Vec<SpoolRecord> =
            self.records.range(skip.min(self.records.len())..).take(max).cloned().collect();
        self.cursor += out.len() as u64;
        Some(out)
    }

    /// Records and payload bytes held.
    pub fn held(&self) -> (usize, usize) {
        (self.records.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(r: &mut Recent, id: u64) {
        let meta = RecordMeta { topic: format!("t/{id}"), session: 1, ts_ms: id as i64 };
        r.appended(id, Arc::new(vec![0u8; 10]), Some(meta));
    }

    fn ids(records: &[SpoolRecord]) -> Vec<u64> {
        records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn the_reader_follows_appends_acks_and_rewinds() {
        let mut r = Recent::new(0, 0);
        assert_eq!(r.take(10), Some(vec![]), "nothing appended: nothing to read");
        for id in 1..=5 {
            rec(&mut r, id);
        }
        assert_eq!(ids(&r.take(3).unwrap()), [1, 2, 3]);
        assert_eq!(r.take(3).unwrap()[0].meta.as_ref().unwrap().topic, "t/4");
        assert_eq!(r.take(3), Some(vec![]));
        r.acked(2);
        assert_eq!(r.held(), (3, 30));
        r.rewind(2);
        assert_eq!(ids(&r.take(10).unwrap()), [3, 4, 5], "sent again from the first unacknowledged");
        r.acked(5);
        assert_eq!((r.held(), r.cursor()), ((0, 0), 6));
        rec(&mut r, 6);
        assert_eq!(ids(&r.take(10).unwrap()), [6]);
    }

    #[test]
    fn records_not_in_memory_are_read_from_disk_then_memory_takes_over() {
        // Opened with 7 records waiting from before: on disk only.
        let mut r = Recent::with_limits(3, 10, 4, 1 << 20);
        assert_eq!(r.take(5), None);
        rec(&mut r, 11);
        assert_eq!(r.take(5), None, "4..=10 are still to be read from disk");
        r.read_through(11);
        assert_eq!(ids(&r.take(5).unwrap()), [11]);
        // More than the limit: the oldest leave memory, the reader that fell behind reads disk.
        for id in 12..=20 {
            rec(&mut r, id);
        }
        assert_eq!(r.held().0, 4);
        assert_eq!(r.take(5), None);
        r.read_through(17);
        assert_eq!(ids(&r.take(5).unwrap()), [17, 18, 19, 20]);
        // An ack past what memory holds (records dropped by a cap) moves the reader too.
        r.acked(25);
        assert_eq!((r.held().0, r.cursor()), (0, 26));
    }

    #[test]
    fn a_gap_in_ids_keeps_only_the_newest_run() {
        let mut r = Recent::with_limits(0, 0, 100, 25);
        rec(&mut r, 1);
        rec(&mut r, 2);
        rec(&mut r, 3);
        assert_eq!(r.held(), (2, 20), "bytes capped");
        rec(&mut r, 7);
        assert_eq!(r.held(), (1, 10));
        r.read_through(7);
        assert_eq!(ids(&r.take(5).unwrap()), [7]);
    }
}
